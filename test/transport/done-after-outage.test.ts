/**
 * A destination that finishes its replay while disconnected still ends its session at the source:
 * it completes the reconnection and sends DONE (docs/protocol.md, "End"), or, when the source does
 * not come back in time, it ends without leaving a socket or a timer behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, relay } from "./helpers.js";

const PAGES = 64;
const IMG = image(PAGES, 21);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` accesses over every page of the image, `gapMs` of guest time apart (ips 1e6: gap = us). */
function slowTrace(n: number, gapMs: number): { pages: Uint32Array; gaps: Uint32Array } {
  const pages = new Uint32Array(n), gaps = new Uint32Array(n);
  for (let i = 0; i < n; i++) { pages[i] = i % PAGES; gaps[i] = gapMs * 1000; }
  return { pages, gaps };
}

test("the replay finishes during a link outage: the destination reconnects after it and sends DONE; the session ends at once", { timeout: 30_000 }, async () => {
  // the linear push brings all 64 pages within milliseconds; the replay goes on for ~640 ms
  const srv = await startPageServer({ image: IMG, push: "linear" });
  const link = await relay(srv.port);
  const sockets: Socket[] = [];
  try {
    const t0 = Date.now();
    let resolvedAfter = -1;
    const mig = runMigration({ port: link.port, trace: slowTrace(128, 5), switchAt: 0, ips: 1e6, timeoutMs: 20_000, onSocket: (s) => { sockets.push(s); } })
      .finally(() => { resolvedAfter = Date.now() - t0; });
    await sleep(200);
    assert.equal(srv.stats().pagesSent, PAGES, "every page was sent before the outage");
    // down from 200 ms to 1400 ms: the replay ends (~640 ms) while the destination cannot reach the source
    await link.outage(1200);
    const r = await mig;
    assert.equal(r.verified, true);
    assert.ok(r.completionMs < 1200, `the replay finished during the outage (${r.completionMs} ms)`);
    assert.ok(resolvedAfter >= 1400, `resolved after ${resolvedAfter} ms: it waited for the link to deliver DONE`);
    assert.ok(r.reconnects >= 1, `reconnects ${r.reconnects}`);
    assert.equal(r.doneDelivered, true);
    // DONE was read: the session is over now, not after the source's 60 s TTL
    assert.equal(srv.stats().sessionsCompleted, 1);
    assert.equal(srv.stats().activeSessions, 0);
    assert.ok(sockets.length >= 2 && sockets.every((s) => s.destroyed), "no socket of the destination is left open");
  } finally { link.close(); await srv.close(); }
});

test("the replay finishes while a reconnection waits for its WELCOME (restarted source, strategy still training): DONE follows the WELCOME", { timeout: 30_000 }, async () => {
  const a = await startPageServer({ image: IMG, push: "linear" });
  const port = a.port;
  let b: Awaited<ReturnType<typeof startPageServer>> | null = null;
  const sockets: Socket[] = [];
  try {
    const mig = runMigration({ port, trace: slowTrace(128, 5), switchAt: 0, ips: 1e6, timeoutMs: 20_000, onSocket: (s) => { sockets.push(s); } });
    await sleep(200);
    assert.equal(a.stats().pagesSent, PAGES);
    await a.close();
    // the restarted source accepts the reconnection at once but welcomes it only after its strategy
    // is built (~1.2 s later): the replay ends meanwhile, with the reconnection's HELLO unanswered
    b = await startPageServer({ image: IMG, push: "linear", port, strategy: () => sleep(1200).then(() => ({ name: "slow", onFault: () => [] })) });
    const r = await mig;
    assert.equal(r.verified, true);
    assert.equal(r.doneDelivered, true);
    assert.equal(b.stats().sessionsStarted, 1);
    assert.equal(b.stats().sessionsCompleted, 1, "the restarted source got DONE on the reconnection");
    assert.equal(b.stats().activeSessions, 0);
    assert.equal(b.stats().pagesSent, 0, "the destination's bitmap said every page was there");
    assert.ok(sockets.every((s) => s.destroyed), "no half-open reconnection socket is left behind");
  } finally { await a.close(); await b?.close(); }
});

test("the source never comes back after the replay finished: the destination ends verified at the reconnection deadline, nothing left behind", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: IMG, push: "linear" });
  const sockets: Socket[] = [];
  const before = process.getActiveResourcesInfo().filter((r) => r === "Timeout" || r === "TCPSocketWrap").length;
  const mig = runMigration({ port: srv.port, trace: slowTrace(64, 5), switchAt: 0, ips: 1e6, reconnectTimeoutMs: 800, onSocket: (s) => { sockets.push(s); } });
  await sleep(150);
  await srv.close();
  const t0 = Date.now();
  const r = await mig;
  const waited = Date.now() - t0;
  assert.equal(r.verified, true);
  assert.equal(r.doneDelivered, false, "DONE never reached the source");
  assert.ok(waited >= 700 && waited < 5000, `gave up after ${waited} ms`);
  assert.ok(sockets.every((s) => s.destroyed));
  await sleep(50);
  const after = process.getActiveResourcesInfo().filter((x) => x === "Timeout" || x === "TCPSocketWrap").length;
  assert.ok(after <= before, `no timer or socket left: ${before} before, ${after} after (${process.getActiveResourcesInfo().join(", ")})`);
});
