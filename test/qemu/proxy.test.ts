/** The proxy over loopback with fake QEMUs: byte-exact forwarding, injection, second channel, errors. */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, it } from "node:test";
import { QemuProxy, type MigrationReport } from "../../src/qemu/proxy.js";
import { encodeMessage, encodeReqPages, encodeReqPagesId, RP_PONG, RP_SHUT } from "../../src/qemu/returnpath.js";
import { strategyFactory } from "../../src/qemu/strategies.js";

const HEAD = fs.readFileSync(path.join(import.meta.dirname, "fixtures", "forward-head-7.2.bin"));
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const collect = (s: net.Socket) => { const bufs: Buffer[] = []; s.on("data", (d) => bufs.push(d)); return () => Buffer.concat(bufs); };

async function setup(delayMs = 0) {
  const accepted: net.Socket[] = [];
  const target = net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const proxy = new QemuProxy({
    listenPort: 0, targetHost: "127.0.0.1", targetPort: (target.address() as net.AddressInfo).port, delayMs,
    makeStrategy: strategyFactory("next8"),
  });
  const port = (await proxy.listen()).port;
  const done = new Promise<MigrationReport>((r) => proxy.once("migration", r));
  return { proxy, target, accepted, port, done };
}

const connect = (port: number) => new Promise<net.Socket>((r) => { const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => r(s)); });
const until = async (f: () => boolean) => { for (let i = 0; i < 400 && !f(); i++) await new Promise((r) => setTimeout(r, 10)); assert.ok(f()); };

describe("qemu proxy", () => {
  for (const delayMs of [0, 3]) {
    it(`forwards byte for byte and injects after requests (delay ${delayMs} ms)`, async () => {
      const { proxy, target, accepted, port, done } = await setup(delayMs);
      const src = await connect(port);
      const srcGot = collect(src);
      const body = Buffer.alloc(300000);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
      const fwd = Buffer.concat([HEAD, body]);
      src.write(fwd.subarray(0, 100));
      await until(() => accepted.length === 1);
      const dst = accepted[0];
      const dstGot = collect(dst);
      src.write(fwd.subarray(100));
      // Second channel (postcopy-preempt): no magic, forwarded raw.
      const src2 = await connect(port);
      src2.write("preempt-bytes");
      await until(() => accepted.length === 2);
      const dst2Got = collect(accepted[1]);
      await until(() => dstGot().length === fwd.length);
      assert.deepEqual(dstGot(), fwd);
      // Return path split mid-message.
      const rp = Buffer.concat([encodeMessage(RP_PONG, be32(1)), encodeReqPagesId(0x10000, 4096, "pc.ram"), encodeReqPages(0x20000, 4096), encodeMessage(RP_SHUT, be32(0))]);
      dst.write(rp.subarray(0, 13));
      await new Promise((r) => setTimeout(r, 20));
      dst.write(rp.subarray(13));
      const want = Buffer.concat([
        encodeMessage(RP_PONG, be32(1)), encodeReqPagesId(0x10000, 4096, "pc.ram"), encodeReqPages(0x11000, 8 * 4096),
        encodeReqPages(0x20000, 4096), encodeReqPages(0x21000, 8 * 4096), encodeMessage(RP_SHUT, be32(0)),
      ]);
      await until(() => srcGot().length === want.length);
      assert.deepEqual(srcGot(), want);
      await until(() => dst2Got().toString() === "preempt-bytes");
      for (const s of [src, src2]) s.end();
      for (const s of accepted) s.end();
      const r = await done;
      assert.equal(r.error, undefined);
      assert.equal(r.connections, 2);
      assert.equal(r.layoutSource, "stream");
      assert.equal(r.stats.requests, 2);
      assert.equal(r.stats.injectedPages, 16);
      await proxy.close();
      target.close();
    });
  }

  it("closes the migration on a malformed return-path message", async () => {
    const { proxy, target, accepted, port, done } = await setup();
    const src = await connect(port);
    const srcGot = collect(src);
    const srcClosed = new Promise((r) => src.on("end", r));
    src.write(HEAD);
    await until(() => accepted.length === 1);
    const dstClosed = new Promise((r) => accepted[0].on("end", r)); // EOF from the proxy
    accepted[0].resume();
    accepted[0].on("error", () => {});
    src.on("error", () => {});
    accepted[0].write(Buffer.concat([encodeMessage(RP_PONG, be32(1)), Buffer.from([0, 4, 0, 5, 1, 2, 3, 4, 5])]));
    const r = await done;
    assert.match(r.error ?? "", /REQ_PAGES with payload length 5/);
    await srcClosed;
    await dstClosed;
    assert.ok(srcGot().length <= 8, "the malformed message is never forwarded");
    await proxy.close();
    target.close();
  });
});
