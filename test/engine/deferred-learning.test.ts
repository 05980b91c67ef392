// Deferred learning (assembly/learn.ts): predictNext advances the stream's contexts, predicts, and
// counts the fault afterwards (at the next call that uses the model, or maintain()). Nothing may be
// lost or counted differently on the way: the model must end up as if each fault had been learned
// first, whatever comes next (another fault, observe, stats, a snapshot, maintain).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor } from "../../src/engine/predictor.js";
import { mixedStream, BENCH_PAGES } from "../../src/trace/mixed-stream.js";

const OPTIONS = { pageCount: BENCH_PAGES, maxContexts: 1 << 16, streams: 2 };

test("predictNext learns each fault exactly as observe does, only after predicting", () => {
  const faulted = createPredictor(OPTIONS);
  const observed = createPredictor(OPTIONS);
  for (const p of [faulted, observed]) { p.train(mixedStream(20000, 1)); p.rehearse(); }
  const faults = mixedStream(3000, 2);
  for (let i = 0; i < faults.length; i++) {
    faulted.predictNext(faults[i], i % 2);
    observed.observe(faults[i], i % 2);
    // stats() counts the deferred fault: the contexts it creates are there at once.
    if (i % 97 === 0) assert.equal(faulted.stats().contexts, observed.stats().contexts, `after fault ${i}`);
  }
  assert.equal(faulted.stats().contexts, observed.stats().contexts);
  // Same model: from the same present pages, the same predictions.
  faulted.clearPresent();
  observed.clearPresent();
  for (const q of mixedStream(300, 3)) assert.deepEqual(Array.from(faulted.predictNext(q)), Array.from(observed.predictNext(q)));
});

test("a snapshot taken right after predictNext holds that fault's learning; the restored copy goes on alike", () => {
  const p = createPredictor(OPTIONS);
  p.train(mixedStream(20000, 1));
  const faults = mixedStream(600, 4);
  for (let i = 0; i < 300; i++) p.predictNext(faults[i], i % 2);
  const copy = restorePredictor(p.snapshot());
  assert.deepEqual(copy.stats(), p.stats());
  for (let i = 300; i < faults.length; i++) {
    assert.deepEqual(Array.from(copy.predictNext(faults[i], i % 2)), Array.from(p.predictNext(faults[i], i % 2)), `fault ${i}`);
    if (i % 50 === 0) { p.maintain(); copy.observe(faults[i - 1], 0); p.observe(faults[i - 1], 0); }
  }
  assert.deepEqual(copy.stats(), p.stats());
});

test("maintain() between faults changes no prediction (it only does the counting earlier)", () => {
  // (An arena large enough that no prune falls due: a prune that maintain() runs changes the model.)
  const a = createPredictor({ ...OPTIONS, maxContexts: 1 << 20 });
  const b = createPredictor({ ...OPTIONS, maxContexts: 1 << 20 });
  for (const p of [a, b]) { p.train(mixedStream(20000, 5)); p.rehearse(); }
  for (const f of mixedStream(2000, 6)) {
    const x = Array.from(a.predictNext(f));
    b.maintain();
    assert.deepEqual(Array.from(b.predictNext(f)), x);
  }
  assert.deepEqual(a.stats(), b.stats());
  assert.equal(a.stats().pruneDue, false);
});
