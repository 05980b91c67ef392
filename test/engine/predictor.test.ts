// The public predictor: bad input leaves state untouched, dispose, snapshots, the bitmap, streams,
// pruning under a tiny arena, and memory sizing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor, createReferencePredictor } from "../../src/index.js";
import type { FullPredictorOptions } from "../../src/engine/options.js";
import type { Predictor } from "../../src/engine/types.js";

const OPTS: FullPredictorOptions = { pageCount: 1000, order: 3, streams: 4, maxContexts: 5000 };

/** A history with structure: strided runs and a repeated loop. */
function history(n = 3000): number[] {
  const h: number[] = [];
  for (let i = 0; h.length < n; i++) {
    for (let k = 0; k < 20; k++) h.push((i * 37 + k) % 1000);
    h.push(500, 617, 733, 849);
  }
  return h.slice(0, n);
}

/** Feed the same faults to predictors and collect every output. */
function drive(p: Predictor, faults: number[], stream = 0): number[][] {
  return faults.map((f) => Array.from(p.predictNext(f, stream)));
}

const FAULTS = Array.from({ length: 60 }, (_, i) => (i * 131 + 7) % 1000);

test("predictNext returns absent pages, never the same page twice, and marks them present", () => {
  const p = createPredictor(OPTS);
  p.train(history());
  const seen = new Set<number>();
  for (const f of FAULTS) {
    const wasPresent = new Set<number>();
    for (let q = 0; q < 1000; q++) if (p.isPresent(q)) wasPresent.add(q);
    const out = Array.from(p.predictNext(f));
    assert.ok(out.length <= 8);
    for (const q of out) {
      assert.ok(!wasPresent.has(q), `page ${q} was already present`);
      assert.ok(!seen.has(q), `page ${q} predicted twice`);
      assert.ok(p.isPresent(q));
      seen.add(q);
    }
    assert.ok(p.isPresent(f));
  }
  assert.ok(seen.size > 0, "the structured history must yield predictions");
  const s = p.stats();
  assert.equal(s.faults, FAULTS.length);
  assert.equal(s.predictions, seen.size);
});

test("the returned array is a view the next call overwrites (documented); slice() keeps it", () => {
  const p = createPredictor(OPTS);
  p.train(history());
  const first = p.predictNext(3);
  const kept = first.slice();
  p.predictNext(400);
  assert.equal(first.buffer, p.predictNext(401).buffer, "one shared output buffer");
  assert.ok(kept.length === 0 || kept.every((q) => p.isPresent(q)));
});

test("a sequential delta pattern is predicted on pages never seen before", () => {
  const p = createPredictor({ pageCount: 100000, alphabet: "delta" });
  const h: number[] = [];
  for (let i = 0; i < 2000; i++) h.push(10 + i);
  p.train(h);
  assert.deepEqual(Array.from(p.predictNext(50000)), [50001, 50002, 50003, 50004, 50005, 50006, 50007, 50008]);
});

test("streams keep their own contexts over shared statistics", () => {
  // Stream 0 walks +1, stream 1 walks +7, interleaved access by access.
  const p = createPredictor({ pageCount: 1 << 20, alphabet: "delta", streams: 2, depth: 4 });
  for (let i = 0; i < 500; i++) {
    p.train([1000 + i], 0);
    p.train([200000 + 7 * i], 1);
  }
  // Each stream's next fault continues its own walk, and its own context predicts its own stride.
  assert.deepEqual(Array.from(p.predictNext(1500, 0)), [1501, 1502, 1503, 1504]);
  assert.deepEqual(Array.from(p.predictNext(200000 + 7 * 500, 1)), [203507, 203514, 203521, 203528]);
  // The same interleaving as one stream destroys both patterns: every delta is a far jump.
  const q = createPredictor({ pageCount: 1 << 20, alphabet: "delta", streams: 1, depth: 4 });
  for (let i = 0; i < 500; i++) q.train([1000 + i, 200000 + 7 * i]);
  assert.notDeepEqual(Array.from(q.predictNext(1500)), [1501, 1502, 1503, 1504]);
});

test("a tiny arena prunes instead of trapping and stays within capacity", () => {
  const p = createPredictor({ pageCount: 1 << 16, maxContexts: 64 });
  let x = 1;
  const h = Array.from({ length: 20000 }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 65536);
  p.train(h);
  for (let i = 0; i < 2000; i++) p.predictNext(h[i] ^ 1);
  const s = p.stats();
  assert.ok(s.prunes > 0);
  assert.ok(s.contexts <= 64 && s.capacity === 64);
});

test("the fault path never prunes: a full arena is flagged, maintain() prunes it, and a snapshot keeps the flag", () => {
  const p = createPredictor({ pageCount: 1 << 16, maxContexts: 64 });
  let x = 7;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 65536;
  assert.equal(p.maintain(), false, "nothing due on an empty model");
  for (let i = 0; i < 500; i++) p.predictNext(rnd());
  const s = p.stats();
  assert.equal(s.prunes, 0, "predictNext did not prune");
  assert.equal(s.pruneDue, true);
  assert.ok(s.contexts <= 64);
  const q = restorePredictor(p.snapshot());
  assert.equal(q.stats().pruneDue, true);
  for (let i = 0; i < 200; i++) p.observe(rnd());
  assert.equal(p.stats().prunes, 0, "observe did not prune");
  assert.equal(p.maintain(), true);
  assert.equal(p.stats().prunes, 1);
  assert.equal(p.stats().pruneDue, false);
  assert.equal(p.maintain(), false);
  assert.ok(p.stats().contexts < 64);
  assert.equal(q.maintain(), true);
});

test("memoryBytes sizes the arena to the budget", () => {
  const budget = 8 << 20;
  const p = createPredictor({ pageCount: 1 << 20, memoryBytes: budget });
  const s = p.stats();
  assert.ok(s.capacity > 150000, `capacity ${s.capacity}`);
  assert.ok(s.memoryBytes <= budget, `memory ${s.memoryBytes} within the budget`);
  // Budgets that are not whole Wasm pages (the memory is): the linear memory stays within them.
  for (const b of [3_000_000, 40_000_000, 40_042_495]) {
    const q = createPredictor({ pageCount: 1 << 16, memoryBytes: b });
    assert.ok(q.stats().memoryBytes <= b, `budget ${b}: memory ${q.stats().memoryBytes}`);
    q.dispose();
  }
  assert.throws(() => createPredictor({ pageCount: 1 << 20, memoryBytes: 1000 }), /options\.memoryBytes 1000 is too small/);
});

test("markPresent and markPresentRange: present pages are never predicted, but the search walks through them", () => {
  const p = createPredictor({ pageCount: 100000, alphabet: "delta", lookahead: 16 });
  p.train(Array.from({ length: 1000 }, (_, i) => 10 + i));
  p.markPresentRange(50001, 3); // 50001..50003
  p.markPresent(50005);
  assert.deepEqual(Array.from(p.predictNext(50000)), [50004, 50006, 50007, 50008, 50009, 50010, 50011, 50012]);
  // Unaligned ranges across byte boundaries.
  p.markPresentRange(7, 21);
  for (let q = 0; q < 40; q++) assert.equal(p.isPresent(q), q >= 7 && q < 28, `page ${q}`);
  assert.equal(p.stats().presentPages, 1 + 8 + 3 + 1 + 21);
  // A new migration over the same model: nothing is present, the same pages come back.
  p.clearPresent();
  assert.equal(p.stats().presentPages, 0);
  assert.ok(!p.isPresent(50001));
  assert.deepEqual(Array.from(p.predictNext(50000)), [50001, 50002, 50003, 50004, 50005, 50006, 50007, 50008]);
});

test("rehearsal: train learns the order in which the hot set faults after a switch-over", () => {
  // The hot set (40 pages scattered over 1M) is first touched in one order A at startup, then used
  // over and over in another order B. It never leaves a 128-page LRU, so the filtered history knows
  // only A. After a switch-over the guest runs B: each of its pages faults in B's order. The
  // rehearsal learns B's first-touch order from the history's suffixes; without it the model offers A.
  let seed = 3;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const A = Array.from({ length: 40 }, () => Math.floor(rnd() * (1 << 20)));
  const B = [...A].sort((x, y) => ((x * 2654435761) >>> 0) - ((y * 2654435761) >>> 0));
  const hist = [...A, ...Array.from({ length: 20000 }, (_, i) => B[i % 40])];
  const firstPrediction = (rehearse: boolean) => {
    const p = createPredictor({ pageCount: 1 << 20, rehearse });
    p.train(hist);
    assert.equal(p.stats().rehearsed, 0, "the rehearsal waits for the switch-over (the first fault)");
    const out = Array.from(p.predictNext(B[0]));
    const s = p.stats();
    p.dispose();
    return { out, rehearsed: s.rehearsed };
  };
  const withIt = firstPrediction(true);
  const without = firstPrediction(false);
  assert.deepEqual(withIt.out.slice(0, 6), B.slice(1, 7), "with the rehearsal: B's next pages, in order");
  assert.ok(withIt.out.filter((p) => B.slice(1, 9).includes(p)).length >= 7, `${withIt.out} vs ${B.slice(1, 9)}`);
  assert.equal(withIt.rehearsed, 40 * 3, "3 suffixes (4096, 6144, 8192 of 20040), each holding the 40 hot pages");
  assert.equal(without.rehearsed, 0);
  assert.equal(without.out[0], A[A.indexOf(B[0]) + 1], "without: the startup order's successor");
});

test("snapshot: the restored predictor continues exactly as the original", () => {
  const p = createPredictor({ ...OPTS, alphabet: "hybrid" });
  p.train(history(12000)); // long enough to be rehearsed
  drive(p, FAULTS.slice(0, 20));
  assert.ok(p.stats().rehearsed > 0);
  const bytes = p.snapshot();
  const q = restorePredictor(bytes);
  assert.deepEqual(q.options, p.options);
  const rest = FAULTS.slice(20);
  assert.deepEqual(drive(q, rest, 1), drive(p, rest, 1));
  assert.deepEqual(q.stats(), p.stats());
});

test("snapshot: a history awaiting its rehearsal is kept, and the restored predictor rehearses it as the original does", () => {
  const p = createPredictor({ ...OPTS, alphabet: "hybrid" });
  p.train(history(9000));
  p.train(history(12000).slice(9000)); // two calls, one pending history
  assert.equal(p.stats().rehearsed, 0);
  const pendingSnapshot = p.snapshot();
  const q = restorePredictor(pendingSnapshot);
  const r = restorePredictor(pendingSnapshot);
  r.rehearse(); // explicitly, before the first fault: the same model as the first fault's own rehearsal
  const outs = [p, q, r].map((x) => drive(x, FAULTS));
  assert.ok(p.stats().rehearsed > 0);
  assert.deepEqual(outs[1], outs[0]);
  assert.deepEqual(outs[2], outs[0]);
  assert.deepEqual(q.stats(), p.stats());
  // The pending history (12000 pages) travels in the snapshot; once rehearsed, nothing is pending.
  assert.equal(pendingSnapshot.length - p.snapshot().length, 16 + 4 * 12000);
});

test("snapshot: truncated, corrupted, foreign and mistyped bytes are refused with a clear error", () => {
  const p = createPredictor(OPTS);
  p.train(history(500));
  const bytes = p.snapshot();
  assert.throws(() => restorePredictor(bytes.subarray(0, bytes.length - 1)), (e: Error) => e instanceof RangeError && /bytes is truncated/.test(e.message));
  assert.throws(() => restorePredictor(bytes.subarray(0, 10)), (e: Error) => e instanceof RangeError && /shorter than the header/.test(e.message));
  const bad = bytes.slice();
  bad[bad.length >> 1] ^= 0x40;
  assert.throws(() => restorePredictor(bad), (e: Error) => e instanceof RangeError && /bytes is corrupted: checksum/.test(e.message));
  const foreign = new Uint8Array(100).fill(7);
  assert.throws(() => restorePredictor(foreign), (e: Error) => e instanceof RangeError && /not a ppm-prefetch snapshot: magic/.test(e.message));
  const future = bytes.slice();
  future[4] = 99;
  assert.throws(() => restorePredictor(future), (e: Error) => e instanceof RangeError && /format version 99/.test(e.message));
  assert.throws(() => restorePredictor("abc" as unknown as Uint8Array), (e: Error) => e instanceof TypeError && /bytes must be a Uint8Array, got string/.test(e.message));
});

/** A twin pair: the same history; after bad calls on `p`, both must predict identically. */
function twins(): [Predictor, Predictor] {
  const p = createPredictor(OPTS), q = createPredictor(OPTS);
  p.train(history());
  q.train(history());
  return [p, q];
}

const BAD_PAGES: [unknown, RegExp, Function][] = [
  [NaN, /must be an integer page number, got NaN/, TypeError],
  [-1, /must be in 0\.\.999, got -1/, RangeError],
  [1.5, /must be an integer page number, got 1\.5/, TypeError],
  [1000, /must be in 0\.\.999, got 1000/, RangeError],
  ["3", /must be an integer page number, got "3"/, TypeError],
  [Infinity, /got Infinity/, TypeError],
];

test("bad pages and streams: TypeError/RangeError naming argument and value, state unchanged", () => {
  const [p, q] = twins();
  for (const [v, msg, type] of BAD_PAGES) {
    assert.throws(() => p.predictNext(v as number), (e: Error) => e instanceof type && e.message.startsWith("fault ") && msg.test(e.message));
    assert.throws(() => p.observe(v as number), (e: Error) => e instanceof type && e.message.startsWith("page ") && msg.test(e.message));
    assert.throws(() => p.markPresent(v as number), (e: Error) => e instanceof type && msg.test(e.message));
    // start may be pageCount (the empty range at the end), so 1000 with a count of 1 is a bad count.
    assert.throws(() => p.markPresentRange(v as number, 1), (e: Error) => e instanceof type && e.message.startsWith(v === 1000 ? "count must be in 0..0 (start 1000" : "start "));
  }
  assert.throws(() => p.markPresentRange(1001, 0), (e: Error) => e instanceof RangeError && e.message === "start must be in 0..1000, got 1001");
  p.markPresentRange(1000, 0); // the empty range at the end: nothing to do, nothing wrong
  q.markPresentRange(1000, 0);
  for (const s of [4, -1, 0.5, NaN, "0"]) {
    assert.throws(() => p.predictNext(10, s as number), (e: Error) => (e instanceof TypeError || e instanceof RangeError) && /^stream must be/.test(e.message) && e.message.includes(String(s)));
    assert.throws(() => p.train([1, 2], s as number), /stream must be/);
  }
  assert.throws(() => p.markPresentRange(990, 11), (e: Error) => e instanceof RangeError && /count must be in 0\.\.10 .* got 11/.test(e.message));
  assert.throws(() => p.markPresentRange(990, -1), RangeError);
  assert.deepEqual(p.stats(), q.stats());
  assert.deepEqual(drive(p, FAULTS), drive(q, FAULTS));
});

test("train with a wrong type or a bad element trains nothing", () => {
  const [p, q] = twins();
  assert.throws(() => p.train("1 2 3" as unknown as number[]), (e: Error) => e instanceof TypeError && /pages must be a Uint32Array or an array/.test(e.message));
  assert.throws(() => p.train(new Float64Array([1, 2]) as unknown as number[]), TypeError);
  assert.throws(() => p.train([5, 6, 7, -2, 8]), (e: Error) => e instanceof RangeError && /pages\[3\] must be in 0\.\.999, got -2/.test(e.message));
  assert.throws(() => p.train([5, 6, NaN]), (e: Error) => e instanceof TypeError && /pages\[2\] .* got NaN/.test(e.message));
  assert.throws(() => p.train(Uint32Array.from([5, 6, 7000])), (e: Error) => e instanceof RangeError && /pages\[2\] must be in 0\.\.999, got 7000/.test(e.message));
  assert.deepEqual(p.stats(), q.stats());
  assert.deepEqual(drive(p, FAULTS), drive(q, FAULTS));
});

test("bad options name the option and the value", () => {
  const cases: [FullPredictorOptions, Function, RegExp][] = [
    [{} as FullPredictorOptions, TypeError, /options\.pageCount is required/],
    [{ pageCount: 0 }, RangeError, /options\.pageCount must be in 1\.\.4294967295, got 0/],
    [{ pageCount: 10, order: 9 }, RangeError, /options\.order must be in 1\.\.8, got 9/],
    [{ pageCount: 10, order: 2.5 }, TypeError, /options\.order must be an integer, got 2\.5/],
    [{ pageCount: 10, alphabet: "bytes" as "page" }, RangeError, /options\.alphabet must be one of page, delta, hybrid, got "bytes"/],
    [{ pageCount: 10, escape: "E" as "A" }, RangeError, /options\.escape must be one of A, B, C, D, got "E"/],
    [{ pageCount: 10, depth: 257 }, RangeError, /options\.depth must be in 0\.\.256, got 257/],
    [{ pageCount: 10, threshold: NaN }, TypeError, /options\.threshold must be a number, got NaN/],
    [{ pageCount: 10, threshold: 2 }, RangeError, /options\.threshold must be in 0\.\.1, got 2/],
    [{ pageCount: 10, streams: 0 }, RangeError, /options\.streams must be in 1\.\.4096, got 0/],
    [{ pageCount: 10, maxContexts: 1 }, RangeError, /options\.maxContexts must be in/],
    [{ pageCount: 10, maxContexts: 100, memoryBytes: 1 << 20 }, TypeError, /exclude each other/],
    [{ pageCount: 10, colour: "red" } as FullPredictorOptions, TypeError, /options\.colour is not an option/],
    [{ pageCount: 10, rehearse: "yes" as unknown as boolean }, TypeError, /options\.rehearse must be a boolean, got "yes"/],
  ];
  for (const [o, type, msg] of cases) assert.throws(() => createPredictor(o), (e: Error) => e instanceof type && msg.test(e.message), JSON.stringify(o));
  assert.throws(() => createPredictor(null as unknown as FullPredictorOptions), /options must be an object, got null/);
});

test("every call after dispose() throws a TypeError naming the call (both models)", () => {
  for (const make of [createPredictor, createReferencePredictor]) {
    const p = make(OPTS);
    p.dispose();
    const calls: [string, () => unknown][] = [
      ["predictNext", () => p.predictNext(1)], ["predictInto", () => p.predictInto(1)], ["predictFirst", () => p.predictFirst(1, 1)],
      ["predictRest", () => p.predictRest()], ["train", () => p.train([1])], ["observe", () => p.observe(1)],
      ["markPresent", () => p.markPresent(1)], ["markPresentRange", () => p.markPresentRange(1, 1)], ["unsend", () => p.unsend(1)],
      ["isPresent", () => p.isPresent(1)], ["clearPresent", () => p.clearPresent()], ["stats", () => p.stats()], ["snapshot", () => p.snapshot()], ["reset", () => p.reset()],
      ["compact", () => p.compact()], ["prune", () => p.prune()], ["rehearse", () => p.rehearse()], ["maintain", () => p.maintain()],
    ];
    for (const [name, call] of calls) {
      if (name === "snapshot" && make === createReferencePredictor) continue; // it has no snapshot format at all
      assert.throws(call, (e: Error) => e instanceof TypeError && e.message === `predictor.${name}() called after dispose()`, `${make.name}: ${name}`);
    }
  }
});

test("prune() halves the model now, as a full arena would: singletons go, repeated contexts stay", () => {
  const p = createPredictor({ pageCount: 100, alphabet: "page", order: 1, filter: 0 });
  // 1 -> 2 eight times (counts survive a halving), 5 -> 6 -> 7 once each (counts of 1 drop).
  p.train([1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 5, 6, 7]);
  const before = p.stats();
  p.prune();
  const after = p.stats();
  assert.equal(after.prunes, before.prunes + 1);
  assert.ok(after.contexts < before.contexts, `contexts ${before.contexts} -> ${after.contexts}`);
  p.clearPresent();
  assert.deepEqual(Array.from(p.predictNext(1)), [2], "the repeated successor survives");
  assert.deepEqual(Array.from(p.predictNext(6)), [], "a singleton successor is gone");
});

test("reset forgets the model and the present pages but keeps the options", () => {
  const [p] = twins();
  const fresh = createPredictor(OPTS);
  drive(p, FAULTS.slice(0, 10));
  p.reset();
  assert.equal(p.stats().contexts, 0);
  assert.equal(p.stats().presentPages, 0);
  const h = history();
  p.train(h);
  fresh.train(h);
  assert.deepEqual(drive(p, FAULTS), drive(fresh, FAULTS));
});

test("a 2^32 - 1 page guest: ranges reach the bitmap's last page and clearPresent clears all of it", () => {
  // Page arithmetic near 2^32 must not wrap: the range's byte loop once compared p + 8 <= end (which
  // wraps to 0 for the top pages and never ended), and clearPresent's byte count wrapped to 0.
  const pageCount = 2 ** 32 - 1;
  const p = createPredictor({ pageCount, maxContexts: 16, streams: 1 }); // a 512 MiB bitmap
  const start = pageCount - 25; // not byte-aligned; whole bytes in the middle; ends at the last page
  p.markPresentRange(start, 25);
  assert.equal(p.stats().presentPages, 25);
  for (const q of [start - 1, start, start + 1, pageCount - 8, pageCount - 1]) assert.equal(p.isPresent(q), q >= start, `page ${q}`);
  p.markPresent(5);
  p.clearPresent();
  for (const q of [5, start, pageCount - 1]) assert.equal(p.isPresent(q), false, `page ${q} after clearPresent`);
  assert.equal(p.stats().presentPages, 0);
  p.dispose();
});

test("predictInto and output: the same pages as predictNext, on the core and on the reference model", async () => {
  const { createReferencePredictor } = await import("../../src/reference/ppm.js");
  const makers = [() => createPredictor(OPTS), () => createReferencePredictor(OPTS)];
  for (const make of makers) {
    const [a, b] = [make(), make()];
    a.train(history());
    b.train(history());
    for (const f of FAULTS) {
      const viaView = Array.from(a.predictNext(f));
      const n = b.predictInto(f);
      assert.deepEqual(Array.from(b.output.subarray(0, n)), viaView);
    }
    b.dispose();
    assert.throws(() => b.output, /predictor\.output\(\) called after dispose\(\)/);
  }
});

test("a snapshot restores after an empty train() and with options given as -0", () => {
  const a = createPredictor({ pageCount: 1000 });
  a.train([1, 2, 3, 4, 5]);
  a.train([], 3);
  a.train(new Uint32Array(0));
  const r = restorePredictor(a.snapshot());
  assert.deepEqual(r.snapshot(), a.snapshot());
  const b = createPredictor({ pageCount: 1000, threshold: -0, filter: -0 });
  b.train([7, 8, 9, 7, 8, 9]);
  assert.ok(Object.is(b.options.threshold, 0) && Object.is(b.options.filter, 0), "-0 is stored as 0");
  assert.deepEqual(Array.from(restorePredictor(b.snapshot()).predictNext(7)), Array.from(b.predictNext(7)));
  for (const p of [a, r, b]) p.dispose();
});
