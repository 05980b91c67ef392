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
import { helloFrame, emptyFrame, faultFrame } from "./raw.js";

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
