/**
 * A source that goes silent after the guest's replay has ended, with pages still missing (the push
 * owes them), does not leave the destination hanging: the idle timeout applies there too, the
 * destination reconnects and asks again, and the migration completes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

const REPLAY_DONE = 6;

test("a source silent after the replay ended (pages still missing) is dropped by the idle timeout and the migration completes", { timeout: 40_000 }, async () => {
  // a slow push (0.05 Gbit/s: 2048 pages take ~1.3 s) so that pages are still missing when the replay ends
  const srv = await startPageServer({ image: image(2048, 8), push: "linear", link: { rateGbps: 0.05 }, strategy: () => ({ name: "none", onFault: () => [] }) });
  // a relay that, on the first connection, stops passing the source's bytes once the destination
  // has said REPLAY_DONE (and never closes): the source looks stalled (SIGSTOP-like)
  const live = new Set<Socket>();
  let n = 0;
  let stalled = false;
  const relay = createServer((down) => {
    const first = n++ === 0;
    const up = connect({ port: srv.port, host: "127.0.0.1", noDelay: true });
    live.add(down); live.add(up);
    let acc = Buffer.alloc(0);
    let blackhole = false;
    down.on("data", (d: Buffer) => {
      up.write(d);
      if (!first || blackhole) return;
      acc = Buffer.concat([acc, d]);
      while (acc.length >= 5) { // u32 LE body length (type byte + body), then the type
        const len = acc.readUInt32LE(0);
        if (acc.length < 4 + len) break;
        if (acc[4] === REPLAY_DONE) { blackhole = true; stalled = true; break; }
        acc = acc.subarray(4 + len);
      }
    });
    up.on("data", (d: Buffer) => { if (!blackhole) down.write(d); });
    const end = () => { down.destroy(); up.destroy(); };
    down.on("error", end); up.on("error", end); down.on("close", end); up.on("close", end);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
  try {
    const r = await runMigration({ port: (relay.address() as AddressInfo).port, trace: syntheticTrace(400, 64, 2), switchAt: 0, ips: 0, idleTimeoutMs: 500, timeoutMs: 30_000 });
    assert.ok(stalled, "the relay stalled the source after REPLAY_DONE");
    assert.equal(r.verified, true);
    assert.ok(r.reconnects >= 1, `reconnected after the idle timeout (${r.reconnects})`);
  } finally { for (const s of live) s.destroy(); relay.close(); await srv.close(); }
});
