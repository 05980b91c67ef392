/** `ppm-prefetch qemu-proxy` as a process, against fake QEMUs. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { it } from "node:test";
import { encodeMessage, encodeReqPagesId, RP_SHUT } from "../../src/qemu/returnpath.js";

const ROOT = path.join(import.meta.dirname, "..", "..");
const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin"));

function cli(args: string[]) {
  const p = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/main.ts"), "qemu-proxy", ...args], { cwd: ROOT });
  let out = "", err = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (err += d));
  const exit = new Promise<number>((r) => p.on("exit", (c) => r(c ?? -1)));
  return { p, exit, out: () => out, err: () => err };
}

it("rejects bad options with exit code 2", async () => {
  const c = cli(["--listen", "nowhere", "--target", "127.0.0.1:1"]);
  assert.equal(await c.exit, 2);
  assert.match(c.err(), /--listen must be HOST:PORT/);
  const d = cli(["--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--predict", "magic"]);
  assert.equal(await d.exit, 2);
  assert.match(d.err(), /--predict must be one of/);
  const e = cli(["--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--scan-return", "maybe"]);
  assert.equal(await e.exit, 2);
  assert.match(e.err(), /--scan-return must be one of.*maybe/);
});

it("proxies one migration with --once --json and reports it", { timeout: 30000 }, async () => {
  const accepted: net.Socket[] = [];
  const target = net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const c = cli(["--listen", "127.0.0.1:0", "--target", `127.0.0.1:${(target.address() as net.AddressInfo).port}`, "--predict", "next8", "--once", "--json"]);
  for (let i = 0; i < 200 && !/listening on/.test(c.err()); i++) await new Promise((r) => setTimeout(r, 50));
  const port = Number(/listening on [^:]+:(\d+)/.exec(c.err())?.[1]);
  const src = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  src.resume();
  // The fixture's head ends with the ram setup (section 2); then its footer and QEMU_VM_EOF.
  src.write(Buffer.concat([HEAD, Buffer.from([0x7e, 0, 0, 0, 2, 0x00])]));
  for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const dst = accepted[0];
  dst.resume();
  dst.end(Buffer.concat([encodeReqPagesId(0x1000, 4096, "pc.ram"), encodeMessage(RP_SHUT, Buffer.alloc(4))]));
  src.on("end", () => src.end());
  assert.equal(await c.exit, 0, c.err());
  const rep = JSON.parse(c.out().trim().split("\n")[0]);
  assert.equal(rep.stats.requests, 1);
  assert.equal(rep.phase, "completed", JSON.stringify(rep.phases));
  assert.ok(rep.service && rep.service.followed.main === "followed to the end", JSON.stringify(rep.service?.followed));
  assert.equal(rep.stats.injectedPages, 8);
  assert.match(c.err(), /requests 1 /);
  target.close();
});
