// The proxy outlives what goes wrong in one connection or one migration: a client that sends 1-3
// bytes and leaves, a strategy that throws, and a connection no migration has claimed yet when the
// proxy closes (from a review, each reproduced first; before the fixes: a RangeError that ended the
// process, an uncaught exception, and a close() that never resolved).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { QemuProxy } from "../../src/qemu/proxy.js";
import { encodeReqPagesId } from "../../src/qemu/returnpath.js";

const HEAD = fs.readFileSync(fileURLToPath(new URL("./fixtures/forward-head-7.2.bin", import.meta.url)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake destination: reads everything, and like QEMU closes its side when the source's ends. */
async function target() {
  const accepted: net.Socket[] = [];
  const received: Buffer[][] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const bufs: Buffer[] = [];
    received.push(bufs);
    s.on("error", () => {});
    s.on("data", (d: Buffer) => bufs.push(d));
    s.on("end", () => s.end());
    accepted.push(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { accepted, received, port: (server.address() as net.AddressInfo).port, close: () => { for (const s of accepted) s.destroy(); server.close(); } };
}

function watchUncaught() {
  const seen: string[] = [];
  const on = (e: Error) => { seen.push(e.message); };
  process.on("uncaughtException", on);
  return { seen, stop: () => process.off("uncaughtException", on) };
}

test("a client that sends 2 bytes and closes is passed on, and the proxy goes on serving", { timeout: 20_000 }, async () => {
  const t = await target();
  const u = watchUncaught();
  const proxy = new QemuProxy({ listenPort: 0, targetHost: "127.0.0.1", targetPort: t.port });
  try {
    const port = (await proxy.listen()).port;
    const s = net.connect({ port, host: "127.0.0.1" }, () => s.end(Buffer.from([0x51, 0x45])));
    s.on("error", () => {});
    await sleep(300);
    assert.deepEqual(Buffer.concat(t.received[0] ?? []), Buffer.from([0x51, 0x45]));
    // a real migration's main channel after it is still classified and forwarded
    const m = net.connect({ port, host: "127.0.0.1" }, () => m.write(HEAD));
    m.on("error", () => {});
    await sleep(300);
    assert.equal(Buffer.concat(t.received[1] ?? []).length, HEAD.length);
    assert.equal(proxy.current()?.phase !== undefined, true);
    m.destroy();
    assert.deepEqual(u.seen, []);
  } finally { u.stop(); await proxy.close(); t.close(); }
});

test("a strategy that throws stops prediction for that migration only; the return path is forwarded unchanged", { timeout: 20_000 }, async () => {
  const t = await target();
  const u = watchUncaught();
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: t.port, log: () => {},
    makeStrategy: () => ({ name: "boom", onFault: () => { throw new RangeError("wasm trap: out of bounds memory access"); } }),
  });
  try {
    const port = (await proxy.listen()).port;
    const back: Buffer[] = [];
    const s = net.connect({ port, host: "127.0.0.1" }, () => s.write(HEAD));
    s.on("error", () => {});
    s.on("data", (d: Buffer) => back.push(d));
    await sleep(300);
    const req = encodeReqPagesId(0x1000, 4096, "pc.ram");
    t.accepted[0].write(req);
    await sleep(200);
    const req2 = encodeReqPagesId(0x3000, 4096, "pc.ram");
    t.accepted[0].write(req2);
    await sleep(300);
    assert.deepEqual(u.seen, []);
    assert.deepEqual(Buffer.concat(back), Buffer.concat([req, req2]), "the destination's requests reach the source as they were, nothing injected");
    const r = proxy.current();
    assert.match(r?.predictionError ?? "", /wasm trap/);
  } finally { u.stop(); await proxy.close(); t.close(); }
});

test("close() resolves while a connection no migration has claimed is open", { timeout: 20_000 }, async () => {
  const t = await target();
  const proxy = new QemuProxy({ listenPort: 0, targetHost: "127.0.0.1", targetPort: t.port });
  const port = (await proxy.listen()).port;
  const s = net.connect({ port, host: "127.0.0.1" }); // says nothing, like QEMU 10's preempt channel before its first page
  s.on("error", () => {});
  await sleep(300);
  const r = await Promise.race([proxy.close().then(() => "closed"), sleep(3000).then(() => "still waiting after 3 s")]);
  assert.equal(r, "closed");
  s.destroy(); t.close();
});

test("qemu-proxy --once exits 1 when its migration did not complete (the source left in precopy)", { timeout: 60_000 }, async () => {
  const { spawn } = await import("node:child_process");
  const { S } = await import("./streams.js");
  const t = await target();
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "qemu-proxy", "--listen", "127.0.0.1:0", "--target", `127.0.0.1:${t.port}`, "--predict", "none", "--once"], { cwd: root });
  let err = "";
  p.stderr.on("data", (d) => { err += d; });
  try {
    let port = 0;
    for (let i = 0; i < 400 && !port; i++) { await sleep(50); port = Number(/listening on [\d.]+:(\d+)/.exec(err)?.[1] ?? 0); }
    assert.ok(port > 0, err);
    const s = net.connect({ port, host: "127.0.0.1" }, () => { s.write(Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram"))])); setTimeout(() => s.end(), 300); });
    s.on("error", () => {});
    s.resume();
    const code = await new Promise((r) => p.on("exit", r));
    assert.equal(code, 1, err);
    assert.match(err, /migration 1: closed/);
  } finally { p.kill(); t.close(); }
});

test("writeModelAtomic: a model is replaced whole; a failed save leaves the old file and no temporary file", async () => {
  const { writeModelAtomic } = await import("../../src/qemu/model.js");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-model-"));
  try {
    const file = path.join(dir, "m.ppm");
    const big = Buffer.alloc(3 << 20, 0xab);
    writeModelAtomic(file, big);
    assert.ok(fs.readFileSync(file).equals(big));
    // the rename fails (the name is a non-empty directory): the temporary file is removed
    const blocked = path.join(dir, "blocked");
    fs.mkdirSync(blocked);
    fs.writeFileSync(path.join(blocked, "x"), "x");
    assert.throws(() => writeModelAtomic(blocked, big));
    assert.deepEqual(fs.readdirSync(dir).sort(), ["blocked", "m.ppm"]);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
