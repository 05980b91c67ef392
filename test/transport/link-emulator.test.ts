import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { createLink, nowNs } from "../../src/transport/link-emulator.js";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

async function pair(): Promise<{ a: Socket; b: Socket; close: () => void }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const got = new Promise<Socket>((r) => srv.once("connection", r));
  const a = connect({ port: (srv.address() as AddressInfo).port, host: "127.0.0.1", noDelay: true });
  await new Promise((r) => a.once("connect", r));
  const b = await got;
  return { a, b, close: () => { a.destroy(); b.destroy(); srv.close(); } };
}

test("emulated link: one-way delay and serialization rate", { timeout: 30_000 }, async () => {
  const { a, b, close } = await pair();
  try {
    // delay: a small chunk arrives no sooner than the delay
    const link = createLink(a, { delayUs: 3000 });
    const t0 = nowNs();
    const arrived = new Promise<number>((r) => b.once("data", () => r(nowNs())));
    link.write(Buffer.alloc(10));
    const dt = ((await arrived) - t0) / 1e3;
    assert.ok(dt >= 3000, `arrived after ${dt} us`);
    assert.ok(dt < 3000 + 200_000, `arrived after ${dt} us`);
    // rate: 2 MB at 0.2 Gbit/s takes at least 80 ms; writes report backpressure past the queue
    const rl = createLink(b, { rateGbps: 0.2, queueBytes: 64 * 1024 });
    let n = 0;
    const t1 = nowNs();
    const all = new Promise<number>((r) => a.on("data", (c: Buffer) => { n += c.length; if (n >= 2 << 20) r(nowNs()); }));
    let refused = 0;
    const chunk = Buffer.alloc(32 * 1024);
    for (let i = 0; i < 64; i++) if (!rl.write(chunk)) refused++;
    assert.ok(refused > 0, "writes report backpressure once the queue is full");
    const drained = new Promise<void>((r) => rl.onDrain(r));
    const ms = ((await all) - t1) / 1e6;
    await drained;
    assert.ok(ms >= 2 * 8 * 1024 * 1024 / 0.2e9 * 1e3 * 0.95, `2 MB in ${ms} ms`);
  } finally { close(); }
});

test("over an emulated link every fault costs at least a round trip, and the transfer respects the rate", { timeout: 40_000 }, async () => {
  const pages = 1024;
  const link = { delayUs: 2000, rateGbps: 1 };
  const srv = await startPageServer({ image: image(pages), push: "none", link });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(3000, pages), ips: 1e8, link, timeoutMs: 30_000 });
    assert.equal(r.verified, true);
    assert.ok(r.faults > 0);
    assert.ok(r.stall.p50Us >= 4000 && r.stall.maxUs >= 4000, `stall p50 ${r.stall.p50Us} us`);
    // 4 MiB at 1 Gbit/s: at least 33 ms
    assert.ok(r.migrationMs >= (pages * 4096 * 8) / 1e9 * 1e3, `migration ${r.migrationMs} ms`);
  } finally { await srv.close(); }
});

test("a direct link with a queue under the socket's 16 KiB mark still wakes its writers when the peer reads", { timeout: 30_000 }, async () => {
  for (const queue of [1000, 8192, 65536]) {
    const { a, b, close } = await pair();
    try {
      const link = createLink(a, { queueBytes: queue });
      b.pause(); // the peer does not read yet: the kernel's buffers fill, then the socket's
      let written = 0;
      const chunk = Buffer.alloc(4096, 7);
      for (let i = 0; i < 20000 && link.write(chunk); i++) written += chunk.length;
      // write() said stop: wait for the kernel to fill so that bytes stay in the socket's own queue
      while (a.writableLength < queue) { link.write(chunk); written += chunk.length; }
      const woke = new Promise<void>((r) => link.onDrain(r));
      let received = 0;
      b.on("data", (d: Buffer) => { received += d.length; });
      b.resume();
      await Promise.race([woke, new Promise((_, rej) => setTimeout(() => rej(new Error(`queue ${queue}: onDrain never fired (received ${received} of ${written} bytes)`)), 5000))]);
      assert.ok(a.writableLength < queue, `queue ${queue}: woken with ${a.writableLength} bytes still queued`);
    } finally { close(); }
  }
});
