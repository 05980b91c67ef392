// warmUp() runs the core on a throwaway predictor once per thread (for V8's tier-up; its effect on
// latency is measured in BENCHMARKS.md, not here). These check that it does that and nothing else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { warmUp } from "../../src/engine/warm-up.js";
import { createPredictor } from "../../src/engine/predictor.js";

const history = Array.from({ length: 4000 }, (_, i) => ((i * 37) % 500) + (i % 7 === 0 ? 9000 : 0));

test("warmUp runs once per thread unless forced, and returns how long it took", () => {
  const first = warmUp(200);
  assert.ok(first > 0, `the first call does the work (${first} ms)`);
  assert.equal(warmUp(200), 0, "a second call returns at once");
  assert.ok(warmUp(50, true) > 0, "force runs it again");
});

test("warmUp leaves other predictors exactly as they were", () => {
  const a = createPredictor({ pageCount: 10_000 });
  const b = createPredictor({ pageCount: 10_000 });
  a.train(history);
  b.train(history);
  const before = a.snapshot();
  warmUp(300, true);
  assert.deepEqual(a.snapshot(), before, "the model is untouched");
  for (const f of [3, 40, 9000, 499, 7]) assert.deepEqual(a.predictNext(f), b.predictNext(f), `same prediction after fault ${f}`);
  a.dispose();
  b.dispose();
});

test("warmUp refuses a bad call count or force flag by name and value", () => {
  for (const bad of [0, -1, 1.5, Number.NaN, 1e8]) {
    assert.throws(() => warmUp(bad, true), (e: unknown) => e instanceof RangeError && /calls/.test(e.message) && e.message.includes(String(bad)), `calls = ${String(bad)}`);
  }
  assert.throws(() => warmUp("10" as unknown as number, true), (e: unknown) => e instanceof TypeError && /calls/.test(e.message) && e.message.includes('"10"'));
  assert.throws(() => warmUp(10, "yes" as unknown as boolean), (e: unknown) => e instanceof TypeError && /force/.test(e.message) && e.message.includes('"yes"'));
  // values JSON cannot print (a BigInt threw inside the message, a Symbol printed as "undefined")
  assert.throws(() => warmUp(5n as unknown as number, true), (e: unknown) => e instanceof TypeError && /^calls must be a number, got 5n$/.test(e.message));
  assert.throws(() => warmUp(Symbol("s") as unknown as number, true), (e: unknown) => e instanceof TypeError && /got Symbol\(s\)$/.test(e.message));
  assert.throws(() => warmUp(10, 1n as unknown as boolean), (e: unknown) => e instanceof TypeError && /^force must be a boolean, got 1n$/.test(e.message));
});
