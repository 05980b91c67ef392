// Training in chunks: train() calls add up, the rehearsal waits for the switch-over, and the
// histories kept for it (PendingHistories) hold exactly the end of what was trained.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createPredictor } from "../../src/index.js";
import { createReferencePredictor } from "../../src/reference/ppm.js";
import { PendingHistories, REHEARSAL_TAIL, rehearsalLengths } from "../../src/engine/rehearsal.js";
import type { Predictor } from "../../src/engine/types.js";

function outputs(p: Predictor, faults: number[], streams = 1): number[][] {
  return faults.map((f, i) => Array.from(p.predictNext(f, i % streams)));
}

/** A history with a hot set in a drifting order, runs and random pages. */
function history(length: number, pageCount: number, seed: number): Uint32Array {
  let x = seed | 1;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296);
  const hot = Array.from({ length: 60 }, () => Math.floor(rnd() * pageCount));
  return Uint32Array.from({ length }, (_, i) => {
    const r = rnd();
    return r < 0.6 ? hot[(i * 7 + Math.floor(i / 700)) % 60] : r < 0.8 ? (i * 3) % pageCount : Math.floor(rnd() * pageCount);
  });
}

/** Cut [0, n) at the given points (sorted, deduplicated). */
function chunks(n: number, cuts: number[]): [number, number][] {
  const at = [...new Set(cuts.map((c) => c % (n + 1)))].sort((a, b) => a - b);
  const out: [number, number][] = [];
  let from = 0;
  for (const c of [...at, n]) { out.push([from, c]); from = c; }
  return out;
}

test("property: a history trained in chunks predicts exactly as the same history in one call (Wasm and reference)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 8192, max: 40000 }), fc.array(fc.nat(), { maxLength: 12 }), fc.nat(), fc.boolean(),
    (length, cuts, seed, asArray) => {
      const pageCount = 20000;
      const h = history(length, pageCount, seed);
      const faults = Array.from({ length: 150 }, (_, i) => h[(i * 7919) % length]);
      for (const make of [createPredictor, createReferencePredictor]) {
        const once = make({ pageCount });
        once.train(h);
        const split = make({ pageCount });
        for (const [a, b] of chunks(length, cuts)) split.train(asArray ? Array.from(h.subarray(a, b)) : h.subarray(a, b));
        assert.deepEqual(outputs(split, faults), outputs(once, faults));
        assert.deepEqual(split.stats(), once.stats());
        assert.ok(once.stats().rehearsed > 0);
      }
    }), { numRuns: 12, seed: 20261126 });
});

test("snapshots of the same model are the same bytes, however its history was fed", () => {
  const pageCount = 20000;
  const h = history(30000, pageCount, 8);
  const once = createPredictor({ pageCount });
  once.train(h);
  const pieces = createPredictor({ pageCount });
  for (let at = 0; at < h.length; at += 7000) pieces.train(Array.from(h.subarray(at, Math.min(h.length, at + 7000))));
  // (Compared by first differing byte: a diff of two 35 MB arrays would not fit in the heap.)
  const firstDifference = (a: Uint8Array, b: Uint8Array) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
    return a.length === b.length ? -1 : Math.min(a.length, b.length);
  };
  assert.equal(firstDifference(pieces.snapshot(), once.snapshot()), -1); // a pending history included
  once.compact();
  pieces.compact();
  assert.equal(firstDifference(pieces.snapshot(), once.snapshot()), -1);
});

test("the rehearsal runs once per switch-over: at the first fault or observe, or at rehearse(); compact() leaves it pending; train after it starts a new history", () => {
  const pageCount = 20000;
  const h = history(30000, pageCount, 5);
  const byFault = createPredictor({ pageCount });
  const byObserve = createPredictor({ pageCount });
  const byCall = createPredictor({ pageCount });
  for (const p of [byFault, byObserve, byCall]) p.train(h);
  assert.deepEqual([byFault, byObserve, byCall].map((p) => p.stats().rehearsed), [0, 0, 0]);
  assert.equal(byCall.stats().pendingHistory, 30000);
  const byCompact = createPredictor({ pageCount });
  byCompact.train(h);
  byFault.predictNext(h[0]);
  byObserve.observe(h[0]);
  byCall.rehearse();
  byCompact.compact(); // a layout: training goes on, the rehearsal stays pending
  const once = byFault.stats().rehearsed;
  assert.ok(once > 0);
  assert.deepEqual([byFault, byObserve, byCall, byCompact].map((p) => p.stats().pendingHistory), [0, 0, 0, 30000]);
  assert.equal(byObserve.stats().rehearsed, once);
  assert.equal(byCall.stats().rehearsed, once);
  assert.equal(byCompact.stats().rehearsed, 0);
  // Compacting in the middle of the history changes nothing: the pieces still add up.
  const faults = Array.from({ length: 60 }, (_, i) => h[(i * 7919) % h.length]);
  const mid = createPredictor({ pageCount });
  mid.train(h.subarray(0, 12000));
  mid.compact();
  mid.train(h.subarray(12000));
  const whole = createPredictor({ pageCount });
  whole.train(h);
  assert.deepEqual(outputs(mid, faults), outputs(whole, faults));
  assert.equal(mid.stats().rehearsed, once);
  byCall.rehearse(); // nothing pending: nothing happens
  byCall.predictNext(h[0]);
  assert.equal(byCall.stats().rehearsed, once);
  // A second migration's history is its own: 30000 more pages rehearse as a 30000-page history.
  const fresh = createPredictor({ pageCount });
  fresh.train(h);
  fresh.rehearse();
  byCall.train(h);
  byCall.rehearse();
  const twice = byCall.stats().rehearsed - once;
  assert.equal(twice, fresh.stats().rehearsed, "rehearsed as a 30000-page history");
  assert.ok(rehearsalLengths(60000).length > rehearsalLengths(30000).length, "(a 60000-page one has more suffixes)");
  // reset() forgets a pending history with the rest of the model.
  const r = createPredictor({ pageCount });
  r.train(h);
  r.reset();
  r.rehearse();
  assert.equal(r.stats().rehearsed, 0);
  // Without the rehearsal nothing is kept or run.
  const off = createPredictor({ pageCount, rehearse: false });
  off.train(h);
  off.rehearse();
  off.predictNext(h[0]);
  assert.equal(off.stats().rehearsed, 0);
});

test("several streams: pending histories are rehearsed in stream order, the core and the reference agree", () => {
  const pageCount = 20000;
  const hs = [0, 1, 2].map((s) => history(9000 + 4000 * s, pageCount, 11 + s));
  const faults = Array.from({ length: 120 }, (_, i) => hs[i % 3][(i * 7919) % 9000]);
  const ws = createPredictor({ pageCount, streams: 3 });
  const rs = createReferencePredictor({ pageCount, streams: 3 });
  for (const p of [ws, rs]) {
    // Streams trained out of order and in pieces: each stream's calls add up.
    p.train(hs[2].subarray(0, 5000), 2); p.train(hs[0], 0); p.train(hs[2].subarray(5000), 2); p.train(hs[1], 1);
  }
  assert.deepEqual(outputs(ws, faults, 3), outputs(rs, faults, 3));
  const { memoryBytes: _w, ...wStats } = ws.stats();
  const { memoryBytes: _r, ...rStats } = rs.stats();
  assert.deepEqual(wStats, rStats);
  assert.ok(wStats.rehearsed > 0);
});

test("PendingHistories keeps the last REHEARSAL_TAIL pages of any sequence of appends", () => {
  let x = 9;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) % n);
  const ph = new PendingHistories();
  let total = 0;
  // Sizes from tiny to past the tail, so the buffer grows, drops its oldest pages, and is replaced.
  for (const size of [1, 1000, 70000, REHEARSAL_TAIL - 5, 3, 900000, REHEARSAL_TAIL + 17, 5, 1500000, 1500000, 7]) {
    const chunk = Uint32Array.from({ length: size }, (_, i) => (total + i) % 4294967291);
    ph.append(4, size & 1 ? chunk : Array.from(chunk));
    total += size;
    const [h] = ph.list();
    assert.equal(h.stream, 4);
    assert.equal(h.length, total);
    const kept = Math.min(total, REHEARSAL_TAIL);
    assert.equal(h.tail.length, kept);
    // The tail is the last `kept` pages: page i of the history is i mod 4294967291.
    for (const i of [0, 1, kept >> 1, kept - 1, rnd(kept)].filter((k) => k < kept)) assert.equal(h.tail[i], (total - kept + i) % 4294967291, `size ${size}, index ${i}`);
  }
});

test("PendingHistories.encode/decode round-trip, and bad bytes are refused naming the problem", () => {
  const ph = new PendingHistories();
  ph.append(2, [5, 6, 7]);
  ph.append(0, Uint32Array.from([9]));
  const bytes = ph.encode();
  const back = PendingHistories.decode(bytes, 4, 10);
  assert.deepEqual(back.list().map((h) => [h.stream, h.length, Array.from(h.tail)]), [[0, 1, [9]], [2, 3, [5, 6, 7]]]);
  const bad = (b: Uint8Array, streams: number, pageCount: number, msg: RegExp) =>
    assert.throws(() => PendingHistories.decode(b, streams, pageCount), (e: Error) => e instanceof RangeError && msg.test(e.message), String(msg));
  bad(bytes, 2, 10, /stream 2/);
  bad(bytes, 4, 8, /page 9 of stream 0 is not below pageCount 8/);
  bad(bytes.subarray(0, bytes.length - 2), 4, 10, /truncated in stream 2's pages/);
  bad(bytes.subarray(0, 10), 4, 10, /truncated at stream 0 of 2/);
  bad(Uint8Array.from([...bytes, 0]), 4, 10, /1 trailing bytes/);
  const lying = bytes.slice();
  new DataView(lying.buffer).setFloat64(8, 0, true); // stream 0 claims 0 pages, keeps 1 (fewer kept than the length is legal: the budget)
  bad(lying, 4, 10, /length 0 with 1 pages kept/);
});

test("restore refuses a pending history in bytes whose predictor has no rehearsal, and a pending history is checked like the rest", async () => {
  const { decodeSnapshot, encodeSnapshot } = await import("../../src/engine/snapshot.js");
  const { restorePredictor } = await import("../../src/index.js");
  const off = createPredictor({ pageCount: 100, rehearse: false });
  const { options, memory } = decodeSnapshot(off.snapshot());
  const ph = new PendingHistories();
  ph.append(0, [1, 2, 3]);
  assert.throws(() => restorePredictor(encodeSnapshot(options, memory, ph.encode())),
    (e: Error) => e instanceof RangeError && e.message === "bytes holds a pending history for a predictor without the rehearsal");
  // With the rehearsal on, the same bytes are a valid snapshot; a page past pageCount is not.
  const on = createPredictor({ pageCount: 100 });
  const parts = decodeSnapshot(on.snapshot());
  assert.equal(restorePredictor(encodeSnapshot(parts.options, parts.memory, ph.encode())).stats().trained, 0);
  const far = new PendingHistories();
  far.append(0, [1, 100]);
  assert.throws(() => restorePredictor(encodeSnapshot(parts.options, parts.memory, far.encode())), /page 100 of stream 0 is not below pageCount 100/);
});

test("a 6.6M-page history in pieces across the 2^21 and 2^22 tail boundaries predicts as the whole (the suffix cap applies)", () => {
  const pageCount = 16000; // few enough distinct pages that every suffix up to the cap is rehearsed
  const h = history(6_600_000, pageCount, 21);
  // Half the history would admit the next suffix (3 x 2^20); the cap stops at 2^21, all the tail keeps.
  assert.ok(rehearsalLengths(h.length).at(-1) === REHEARSAL_TAIL && h.length / 2 >= 1.5 * REHEARSAL_TAIL, "the cap, not half the history, bounds the suffixes");
  const faults = Array.from({ length: 100 }, (_, i) => h[(i * 7919) % h.length]);
  const once = createPredictor({ pageCount });
  once.train(h);
  const pieces = createPredictor({ pageCount });
  for (const [a, b] of chunks(h.length, [1, REHEARSAL_TAIL - 3, REHEARSAL_TAIL + 5, 2 * REHEARSAL_TAIL + 1, 3_500_000])) pieces.train(h.subarray(a, b));
  assert.equal(pieces.stats().pendingHistory, h.length);
  assert.deepEqual(outputs(pieces, faults), outputs(once, faults));
  assert.deepEqual(pieces.stats(), once.stats());
});
