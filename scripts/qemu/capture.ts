/**
 * `node --import tsx scripts/qemu/capture.ts [--qemu PATH] [--preempt] [--out DIR]`: one md5-guest
 * post-copy migration through a pass-through proxy, saving each channel's first bytes in both
 * directions (and the last bytes of the forward direction) to DIR, for test fixtures of a QEMU
 * version's stream (test/qemu/fixtures/). Nothing is injected.
 */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { QemuProxy } from "../../src/qemu/proxy.js";
import { buildGuest } from "./guest.js";
import { qemuBinary, qemuVersion, runMigration } from "./migrate.js";

const { values } = parseArgs({ options: { qemu: { type: "string" }, preempt: { type: "boolean" }, out: { type: "string" }, head: { type: "string" } } });
if (values.qemu) process.env.PPM_QEMU = values.qemu;
const out = values.out ?? "capture";
const HEAD = Number(values.head ?? 65536);
const TAIL = 8192;
fs.mkdirSync(out, { recursive: true });
let n = 0;
const proto = QemuProxy.prototype as unknown as { accept(s: net.Socket): void; wire(c: { client: net.Socket; up: net.Socket }): void };
const accept = proto.accept;
const wire = proto.wire;
const keep = (name: string, s: net.Socket) => {
  const head: Buffer[] = [];
  let len = 0;
  let tail = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    if (len < HEAD) { head.push(d.subarray(0, HEAD - len)); len += Math.min(d.length, HEAD - len); }
    tail = Buffer.concat([tail, d]).subarray(-TAIL);
  });
  s.on("close", () => {
    fs.writeFileSync(path.join(out, `${name}.head.bin`), Buffer.concat(head));
    fs.writeFileSync(path.join(out, `${name}.tail.bin`), tail);
  });
};
proto.accept = function (this: unknown, s: net.Socket) {
  const i = n++;
  (s as net.Socket & { capId: number }).capId = i;
  keep(`conn${i}-forward`, s);
  return accept.call(this, s);
};
proto.wire = function (this: unknown, c: { client: net.Socket; up: net.Socket }) {
  keep(`conn${(c.client as net.Socket & { capId: number }).capId}-return`, c.up);
  return wire.call(this, c);
};
const r = await runMigration({ guest: buildGuest((s) => process.stderr.write(s + "\n"), "md5"), config: "proxy", preempt: !!values.preempt, log: (s) => process.stderr.write(s + "\n") });
process.stderr.write(`QEMU ${qemuVersion(qemuBinary())}: ${r.status} ${r.error ?? ""} requests ${r.requests}, ${n} connection(s) captured in ${out}\n`);
fs.writeFileSync(path.join(out, "report.json"), JSON.stringify({ qemu: qemuVersion(qemuBinary()), preempt: !!values.preempt, status: r.status, error: r.error, followed: r.proxy?.service.followed, messages: r.proxy?.messages }, null, 1));
process.exit(r.error ? 1 : 0);
