/**
 * A migration counts once at the source: when the orderly close after DONE is lost, the destination
 * reconnects to deliver DONE again (destination.ts sendDone); the source recognises the session it
 * already completed and neither starts nor completes it a second time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

test("DONE re-delivered after a lost orderly close does not count the migration twice", { timeout: 30_000 }, async () => {
  let built = 0;
  const srv = await startPageServer({ image: image(128, 8), push: "linear", strategy: () => { built++; return { name: "none", onFault: () => [] }; } });
  // a relay that loses the first connection's orderly close: when the source ends it (it read DONE),
  // the destination's side is reset instead of being closed in order
  const live = new Set<Socket>();
  let n = 0;
  const relay = createServer((down) => {
    const first = n++ === 0;
    const up = connect({ port: srv.port, host: "127.0.0.1", noDelay: true });
    live.add(down); live.add(up);
    down.pipe(up);
    up.pipe(down, { end: !first });
    if (first) up.on("end", () => down.resetAndDestroy());
    const end = () => { down.destroy(); up.destroy(); };
    down.on("error", end); up.on("error", end); down.on("close", end); up.on("close", end);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
  try {
    const r = await runMigration({ port: (relay.address() as AddressInfo).port, trace: syntheticTrace(1000, 128, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.doneDelivered, true, "DONE was delivered on the reconnection");
    assert.equal(n, 2, "one reconnection, to re-deliver DONE");
    const st = srv.stats();
    assert.equal(st.sessionsStarted, 1);
    assert.equal(st.sessionsCompleted, 1, "the migration counts once");
    assert.equal(st.activeSessions, 0);
    assert.equal(built, 1, "no strategy was built for the re-delivery");
    assert.equal(srv.sessionMetrics().length, 1);
  } finally { for (const s of live) s.destroy(); relay.close(); await srv.close(); }
});
