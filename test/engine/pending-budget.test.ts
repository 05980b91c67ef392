// Memory held on the caller's behalf has a cap: the histories kept for the pending rehearsal share
// one budget across streams (options.pendingBudget), and memoryBytes beyond what Wasm linear memory
// can hold is refused before anything is sized or allocated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor } from "../../src/index.js";
import { createReferencePredictor } from "../../src/reference/ppm.js";
import { PendingHistories, PENDING_BUDGET, REHEARSAL_TAIL, rehearsalLengths } from "../../src/engine/rehearsal.js";

function pages(n: number, seed: number, pageCount = 1 << 20): Uint32Array {
  let x = seed | 1;
  return Uint32Array.from({ length: n }, (_, i) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 28) < 9 ? (seed * 131 + (i % 50) * 7) % pageCount : (x >>> 4) % pageCount;
  });
}

test("the default budget bounds the pending histories of many streams: 8 streams of 2^21 pages keep 2^21 in all, the newest of each", () => {
  assert.equal(PENDING_BUDGET, REHEARSAL_TAIL);
  const ph = new PendingHistories();
  const chunk = pages(REHEARSAL_TAIL, 1);
  for (let s = 0; s < 8; s++) {
    ph.append(s, chunk);
    assert.ok(ph.kept <= PENDING_BUDGET, `kept ${ph.kept} after stream ${s}`);
    assert.ok(ph.held <= 2 * PENDING_BUDGET + 64 * (s + 1), `held ${ph.held} after stream ${s}`);
  }
  assert.equal(ph.pages, 8 * REHEARSAL_TAIL); // the histories' lengths are not cut, only what is kept
  const list = ph.list();
  for (const h of list) {
    assert.ok(h.tail.length >= PENDING_BUDGET / 16 && h.tail.length <= PENDING_BUDGET / 4, `stream ${h.stream} keeps ${h.tail.length}`);
    assert.deepEqual(h.tail, chunk.subarray(chunk.length - h.tail.length)); // the most recent part
  }
  // Before the budget each of them kept 2^21 pages (8 MiB) in a buffer of up to 2^22 (16 MiB).
  assert.ok(ph.held * 4 <= 16 * 2 ** 20 + 8 * 256, `${ph.held * 4} bytes`);
});

test("a budget is shared about evenly, stays a hard cap under any interleaving, and keeps each stream's newest pages", () => {
  const budget = 10000;
  const ph = new PendingHistories(budget);
  const given = new Map<number, number[]>();
  let x = 7;
  for (let call = 0; call < 400; call++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const s = x % 13, n = 1 + ((x >>> 8) % 3000);
    const chunk = Array.from({ length: n }, (_, i) => (call * 4096 + i) % 100000);
    ph.append(s, chunk);
    given.set(s, [...(given.get(s) ?? []), ...chunk].slice(-budget));
    assert.ok(ph.kept <= budget);
    assert.ok(ph.held <= 2 * budget + 64 * 13, `held ${ph.held}`);
  }
  const kept = ph.list().map((h) => {
    const all = given.get(h.stream)!;
    assert.deepEqual(Array.from(h.tail), all.slice(all.length - h.tail.length));
    return h.tail.length;
  });
  assert.equal(kept.length, 13);
  assert.ok(Math.max(...kept) <= 4 * Math.min(...kept) + 64, `shares ${kept.join(" ")}`);
  // The rehearsal stops at the longest suffix a stream still keeps.
  assert.deepEqual(rehearsalLengths(1e6, 7000), [4096, 6144]);
  assert.deepEqual(rehearsalLengths(1e6, 0), []);
});

test("predictors under a budget: Wasm and reference agree, stats count whole histories, a snapshot continues exactly", () => {
  const o = { pageCount: 50000, streams: 3, pendingBudget: 14000 };
  const w = createPredictor(o), r = createReferencePredictor(o);
  for (const p of [w, r]) for (let s = 0; s < 3; s++) p.train(pages(9000 + 3000 * s, s + 2, 50000), s);
  assert.equal(w.stats().pendingHistory, 3 * 9000 + 3000 * 3);
  const snap = w.snapshot();
  const q = restorePredictor(snap);
  // More history after the restore: the same pages are shed in both (the snapshot kept what counts).
  for (const p of [w, r, q]) p.train(pages(9000, 99, 50000), 1);
  assert.equal(Buffer.compare(q.snapshot(), w.snapshot()), 0);
  for (let i = 0; i < 40; i++) {
    const f = (i * 7919) % 50000, s = i % 3;
    const a = Array.from(w.predictNext(f, s));
    assert.deepEqual(Array.from(r.predictNext(f, s)), a, `fault ${i}`);
    assert.deepEqual(Array.from(q.predictNext(f, s)), a, `fault ${i} (restored)`);
  }
  assert.deepEqual(q.stats(), w.stats());
  assert.equal(w.stats().rehearsed, r.stats().rehearsed);
});

test("restore refuses pending histories beyond the options' budget; bad budgets are refused by name", () => {
  const big = new PendingHistories(1 << 20);
  big.append(0, pages(5000, 3, 100));
  big.append(1, pages(5000, 4, 100));
  const bytes = big.encode();
  assert.equal(PendingHistories.decode(bytes, 2, 100, 10000).kept, 10000);
  assert.throws(() => PendingHistories.decode(bytes, 2, 100, 9999), (e: Error) => e instanceof RangeError && /10000 pages kept, more than pendingBudget 9999/.test(e.message));
  assert.throws(() => createPredictor({ pageCount: 10, pendingBudget: -1 }), (e: Error) => e instanceof RangeError && /options.pendingBudget must be in 0..1073741824, got -1/.test(e.message));
  assert.throws(() => createPredictor({ pageCount: 10, pendingBudget: 1.5 }), (e: Error) => e instanceof TypeError && /options.pendingBudget must be an integer, got 1.5/.test(e.message));
  // Budget 0: nothing is kept, the length still counts, the rehearsal learns nothing.
  const none = createPredictor({ pageCount: 1000, pendingBudget: 0 });
  none.train(pages(20000, 5, 1000));
  assert.equal(none.stats().pendingHistory, 20000);
  none.rehearse();
  assert.equal(none.stats().rehearsed, 0);
});

test("memoryBytes beyond 4 GiB is a RangeError before anything is sized or allocated", () => {
  for (const memoryBytes of [2 ** 53, 2 ** 32 + 1, 1e15]) {
    const t0 = performance.now();
    assert.throws(() => createPredictor({ pageCount: 1000, memoryBytes }),
      (e: Error) => e instanceof RangeError && new RegExp(`options.memoryBytes must be at most 4294967296 \\(4 GiB, what Wasm linear memory can hold\\), got ${memoryBytes}`).test(e.message));
    assert.ok(performance.now() - t0 < 100, `${performance.now() - t0} ms`);
  }
  assert.equal(createPredictor({ pageCount: 1000, memoryBytes: 4 << 20 }).stats().memoryBytes <= 4 << 20, true);
});
