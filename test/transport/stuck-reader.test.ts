/**
 * A destination that stops reading (its answers back up: backpressure) is not read either, and that
 * silence is the source's own doing; but one that reads nothing at all for the idle timeout is gone or
 * stuck, and it must not hold its session slot for ever: the source drops it (ERROR 12), and the slot
 * comes free after the session TTL as for any lost link.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { FrameType } from "../../src/transport/protocol.js";
import { helloFrame, emptyFrame, faultFrame, rawClient } from "./raw.js";

test("a destination that reads nothing while the source has answers for it is dropped after the idle timeout", { timeout: 30_000 }, async () => {
  const errors: Error[] = [];
  const srv = await startPageServer({ image: Buffer.alloc(4096 * 4096, 1), push: "linear", idleTimeoutMs: 1000, sessionTtlMs: 200, maxSessions: 1, onError: (e) => errors.push(e), strategy: () => ({ name: "none", onFault: () => [] }) });
  const sock = connect({ port: srv.port, host: "127.0.0.1" });
  sock.on("error", () => {});
  try {
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.pause(); // never read: the source's writes back up
    sock.write(helloFrame(7));
    await new Promise((r) => setTimeout(r, 300));
    sock.write(emptyFrame(FrameType.Start));
    sock.write(Buffer.concat(Array.from({ length: 4096 }, (_, p) => faultFrame(p)))); // 16 MiB of answers
    const dropped = () => errors.some((e) => /the destination has read nothing for \d+ ms \(idle timeout 1000 ms\)/.test(e.message));
    const t0 = Date.now();
    while (!dropped() && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(dropped(), `the source dropped a destination that read nothing: ${errors.map((e) => e.message).join("; ")}`);
    assert.ok(Date.now() - t0 < 5000, `within a few idle timeouts (${Date.now() - t0} ms)`);
    for (let i = 0; i < 100 && srv.stats().activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(srv.stats().activeSessions, 0, "its slot is free after the TTL");
  } finally { sock.destroy(); await srv.close(); }
});

test("with a strategy worker, answers that come back while the destination does not read go without their pages", { timeout: 30_000 }, async () => {
  const pages = 8192;
  const srv = await startPageServer({
    image: Buffer.alloc(4096 * pages, 2), push: "none", idleTimeoutMs: 0,
    // a worker-like strategy: each answer, 20 ms later, predicts 256 pages
    strategy: () => ({
      remote: true as const, name: "wide", trainMs: 0, present: () => {}, dispose: () => {},
      fault: (p: number) => new Promise((r) => setTimeout(() => r({ pages: Uint32Array.from({ length: 256 }, (_, i) => (p + 1 + i) % pages), ns: 1 }), 20)),
    }),
  });
  const { sock, inbox } = rawClient(srv.port);
  try {
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.pause(); // not read for a while: the first answers fill the link, the later ones find it backed up
    sock.write(helloFrame(9));
    await new Promise((r) => setTimeout(r, 200));
    sock.write(emptyFrame(FrameType.Start));
    sock.write(Buffer.concat(Array.from({ length: 60 }, (_, i) => faultFrame(i * 131))));
    await new Promise((r) => setTimeout(r, 1500));
    sock.resume();
    const dones: number[] = [];
    for (let i = 0; i < 200 && dones.length < 60; i++) {
      await new Promise((r) => setTimeout(r, 25));
      dones.length = 0;
      for (const f of inbox.frames) if (f.type === FrameType.FaultDone) dones.push(f.body.readUInt16LE(4));
    }
    assert.equal(dones.length, 60, "every fault answered");
    const sent = dones.reduce((a, n) => a + n, 0);
    assert.ok(dones.filter((n) => n === 0).length >= 40, `most answers came back while the link was backed up and went without pages: ${dones}`);
    assert.ok(sent <= 8 * 256, `the pages queued for a client that does not read stay bounded (${sent} predicted pages sent)`);
  } finally { sock.destroy(); await srv.close(); }
});
