/**
 * The proxy's state machine for a migration's channels, with fake QEMUs over loopback: switch-over,
 * a post-copy pause (main channel lost), a resume through the proxy (`migrate resume=true`),
 * completion, the model saved only then, and service times measured across both channels.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { it } from "node:test";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { MIG_CMD_POSTCOPY_RESUME } from "../../src/qemu/forward.js";
import { encodeMessage, encodeReqPagesId, RP_RESUME_ACK } from "../../src/qemu/returnpath.js";
import type { QemuStrategy } from "../../src/qemu/policy.js";
import { until, connect, acceptingTarget, toPostcopy } from "./harness.js";
import { S } from "./streams.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin"));
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

function fakeStrategy(saved: Uint8Array[]): QemuStrategy {
  return {
    name: "fake", origin: "new", gated: 0,
    onFault: () => [], onRequest: (page) => [page + 1],
    snapshot: () => { const b = new Uint8Array([1, 2, 3]); saved.push(b); return b; },
  };
}

it("pauses when the main channel is lost in post-copy, resumes through the proxy, completes, saves the model", { timeout: 20000 }, async () => {
  const { target, accepted } = await acceptingTarget();
  const saved: Uint8Array[] = [];
  const models: Uint8Array[] = [];
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port,
    makeStrategy: () => fakeStrategy(models), saveModel: (b) => saved.push(b),
  });
  const port = (await proxy.listen()).port;
  let ended: MigrationReport | null = null;
  proxy.on("migration", (r) => { ended = r; });

  // Precopy -> post-copy (the packaged device state), one request served.
  const src = await connect(port);
  src.on("error", () => {});
  src.resume();
  const dst = await toPostcopy(src, HEAD, accepted, proxy);
  dst.write(encodeReqPagesId(0x8000, 4096, "pc.ram"));
  await until(() => proxy.current()!.stats.requests === 1);
  src.write(S.part(S.page(0x8000, "pc.ram"), S.page(0x9000, null)));
  await until(() => proxy.current()!.service.dest.count === 1, "service time of the request");
  assert.equal(proxy.current()!.service.injected.count, 1, "the injected page 9 was seen too");

  // The network drops: both ends of the main channel go away. QEMU pauses; so does the proxy.
  src.destroy();
  dst.destroy();
  await until(() => proxy.current()?.phase === "paused", "paused");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ended, null, "a paused migration is not over");

  // migrate-recover on the destination, migrate resume=true at the proxy: a new main channel that
  // starts with commands, no QEVM header.
  const src2 = await connect(port);
  src2.on("error", () => {});
  const srcGot: Buffer[] = [];
  src2.on("data", (d) => srcGot.push(d));
  src2.write(S.cmd(10, Buffer.from([6, ...Buffer.from("pc.ram")])));
  await until(() => accepted.length === 2);
  const dst2 = accepted[1];
  dst2.resume();
  await until(() => proxy.current()?.phase === "recovering", "recovering");
  dst2.write(encodeMessage(RP_RESUME_ACK, be32(1)));
  src2.write(S.cmd(MIG_CMD_POSTCOPY_RESUME));
  await until(() => proxy.current()?.phase === "postcopy", "postcopy again");
  dst2.write(encodeReqPagesId(0xa000, 4096, "pc.ram"));
  await until(() => Buffer.concat(srcGot).length >= 8 + 23 + 16, "the request and its injection reach the source");
  src2.write(Buffer.concat([S.part(S.page(0xa000, "pc.ram")), S.eof()]));
  await until(() => proxy.current()?.phase === "completed", "completed");
  src2.end();
  dst2.end();
  await until(() => ended !== null, "migration reported");
  const r = ended! as MigrationReport;
  assert.equal(r.phase, "completed");
  assert.equal(r.completedIn, "postcopy");
  assert.deepEqual(r.phases.map((p) => p.phase), ["setup", "precopy", "postcopy", "paused", "recovering", "postcopy", "completed"]);
  assert.equal(r.pauses, 1);
  assert.equal(r.resumes, 1);
  assert.equal(r.stats.requests, 2);
  assert.equal(r.service.dest.count, 2);
  assert.equal(r.modelSaved, 3);
  assert.equal(saved.length, 1);
  assert.equal(r.error, undefined);
  await proxy.close();
  target.close();
});

it("does not save the model of a migration that did not complete", { timeout: 10000 }, async () => {
  const target = net.createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => {}); s.resume(); s.end(); });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const saved: Uint8Array[] = [];
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port,
    makeStrategy: () => fakeStrategy([]), saveModel: (b) => saved.push(b),
  });
  const port = (await proxy.listen()).port;
  const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
  const src = await connect(port);
  src.on("error", () => {});
  src.resume();
  src.end(Buffer.concat([HEAD, S.footer()]));
  const r = await done;
  assert.equal(r.phase, "closed");
  assert.match(String(r.modelSaved), /not saved: the migration ended closed/);
  assert.equal(saved.length, 0);
  await proxy.close();
  target.close();
});

it("requests the model's switch-over pages (preload) when the packaged device state goes by, before any fault", { timeout: 10000 }, async () => {
  const { target, accepted } = await acceptingTarget();
  const strategy: QemuStrategy = { ...fakeStrategy([]), preload: () => [0x20, 0x21, 0x40, 0x1] };
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port,
    makeStrategy: () => strategy,
  });
  const port = (await proxy.listen()).port;
  const src = await connect(port);
  src.on("error", () => {});
  const srcGot: Buffer[] = [];
  src.on("data", (d) => srcGot.push(d));
  src.write(Buffer.concat([HEAD, S.footer(), S.part(S.page(0x1000, "pc.ram"))]));
  await until(() => accepted.length === 1);
  accepted[0].resume();
  await until(() => proxy.current()?.phase === "precopy", "precopy");
  assert.equal(srcGot.length, 0, "nothing before the switch-over");
  src.write(S.packaged(Buffer.from("device state")));
  // Page 1 was already seen going forward (dropped); no preempt channel: the scan's next page (2) ends it.
  const want = Buffer.concat([encodeReqPagesId(0x20000, 0x2000, "pc.ram"), encodeReqPagesId(0x40000, 0x1000, "pc.ram"), encodeReqPagesId(0x2000, 0x1000, "pc.ram")]);
  await until(() => Buffer.concat(srcGot).length >= want.length, "the preload reaches the source");
  assert.deepEqual(Buffer.concat(srcGot), want);
  const r = proxy.current()!;
  assert.equal(r.stats.preloadedPages, 3);
  assert.equal(r.stats.injectedPages, 4);
  assert.equal(r.stats.scannerReturns, 1);
  src.destroy();
  await proxy.close();
  target.close();
});
