/**
 * A page the guest blocks on that the source had already sent as a prediction (in flight, not yet
 * arrived) is an in-flight wait and a used prediction, with feedback, not a fault: the destination
 * classifies it as the simulator does (src/sim/simulator.ts), checked against the simulator itself.
 *
 * The source's link is emulated at ~0.8 Mbit/s so one PAGE frame (4113 bytes) takes ~40 ms to
 * serialize: the fault on page 0 is answered with page 0, then the predicted pages 1, 2, 3, 40 ms
 * apart, so the guest's touch of page 1 right after page 0 arrives finds it still on the wire.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { prepare, simulate } from "../../src/sim/simulator.js";
import type { Strategy } from "../../src/strategies/types.js";
import { PAGE_SIZE, pageFrameSize } from "../../src/transport/protocol.js";
import { image } from "./helpers.js";

const PAGES = 16;
const FRAME = pageFrameSize(PAGE_SIZE);
const PAGE_MS = 40;
const RATE_GBPS = (FRAME * 8) / (PAGE_MS * 1e-3) / 1e9;
const IPS = 1e6; // a gap of 1 instruction is 1 us

/** Predicts a fixed list per faulted page; records the feedback it gets. */
function scripted(predictions: Record<number, number[]>): Strategy & { touches: [number, number][] } {
  const touches: [number, number][] = [];
  return {
    name: "scripted", touches,
    onFault: (p: number) => predictions[p] ?? [],
    onTouch: (p: number, s: number) => { touches.push([p, s]); },
  };
}

// stream, page, gap (us): the guest's accesses after switch-over (switchAt 0: all of them)
const ACCESSES: [number, number, number][] = [
  [0, 0, 1_000], // fault: page 0 is sent, then the predictions 1, 2, 3
  [1, 0, 2_000], // a second vCPU blocks on page 0 too: it waits for the same request, no fault
  [0, 1, 100], // 0.1 ms after page 0 arrived: page 1 is ~40 ms away on the wire (in-flight wait)
  [0, 2, 100_000], // 100 ms later: page 2 has arrived (a used prediction, no wait)
  [0, 5, 10_000], // not predicted: a fault, which carries the feedback for pages 1 and 2
  [0, 1, 1_000], // touched already: nothing new
];
const PREDICT = { 0: [1, 2, 3], 5: [6] };

function trace(): { pages: Uint32Array; gaps: Uint32Array; streams: Uint16Array } {
  const n = ACCESSES.length;
  const t = { pages: new Uint32Array(n), gaps: new Uint32Array(n), streams: new Uint16Array(n) };
  ACCESSES.forEach(([s, p, g], i) => { t.streams[i] = s; t.pages[i] = p; t.gaps[i] = g; });
  return t;
}

test("a touch of a predicted page still in flight: an in-flight wait and a used prediction with feedback, as in the simulator", { timeout: 30_000 }, async () => {
  const sim = scripted(PREDICT);
  const tr = trace();
  const s = simulate(prepare({ name: "scripted", ...tr, pageCount: PAGES }, 0, IPS), sim,
    { bitsPerSecond: RATE_GBPS * 1e9, latencyS: 50e-6, pageSize: PAGE_SIZE, headerBytes: FRAME - PAGE_SIZE },
    { switchAt: 0, ips: IPS, depth: 8, push: "none", feedback: true, queue: "fifo" });
  // the situation is there: the simulator sees one in-flight wait among its requests
  assert.equal(s.inflightFaults, 1, "the simulator's classification of the construction");

  const made: ReturnType<typeof scripted>[] = [];
  const srv = await startPageServer({
    image: image(PAGES, 5), push: "none", link: { rateGbps: RATE_GBPS },
    strategy: () => { const x = scripted(PREDICT); made.push(x); return x; },
  });
  try {
    const r = await runMigration({ port: srv.port, trace: tr, switchAt: 0, ips: IPS, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.faults, s.faults, "faults: requests the source answered by sending the page");
    assert.equal(r.inflightWaits, s.inflightFaults, "in-flight waits: requests for pages already on the wire");
    assert.equal(r.faults, r.received.fault, "each fault brought its page");
    assert.equal(r.faults + r.inflightWaits, r.requests, "every request is one or the other (no reconnection)");
    assert.equal(r.received.predicted, s.predictedPages);
    assert.equal(r.used.predicted, s.prefetchedTouched, "the in-flight predicted page counts as used");
    assert.equal(r.accuracy, s.accuracy);
    assert.equal(r.stall.count, s.stall.count, "every blocked access stalls, whichever kind");
    assert.equal(made.length, 1);
    assert.deepEqual(made[0].touches, sim.touches, "the same feedback reaches the strategy, in-flight page included");
    assert.ok(made[0].touches.some(([p]) => p === ACCESSES[2][1]), "the page waited for in flight is fed back");
  } finally { await srv.close(); }
});
