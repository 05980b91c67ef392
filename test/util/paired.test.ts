// Paired-run statistics of the QEMU summaries: exact binomial tails, the median's order-statistic
// interval, the sign test (values checked by hand against the binomial table).
import { test } from "node:test";
import assert from "node:assert/strict";
import { binomialHalfCdf, medianInterval, pairedVerdict, signTest } from "../../src/util/paired.js";

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test("binomialHalfCdf: exact small cases and the bounds", () => {
  close(binomialHalfCdf(5, 0), 1 / 32);
  close(binomialHalfCdf(5, 2), 16 / 32);
  close(binomialHalfCdf(10, 1), 11 / 1024);
  close(binomialHalfCdf(20, 5), 21700 / 1048576);
  assert.equal(binomialHalfCdf(7, -1), 0);
  assert.equal(binomialHalfCdf(7, 7), 1);
  assert.throws(() => binomialHalfCdf(-1, 0), /n must be a non-negative integer, got -1/);
  assert.throws(() => binomialHalfCdf(2.5, 0), RangeError);
});

test("medianInterval: the order statistics the binomial tail allows, and null with too few values", () => {
  // n = 20 at 0.9: P(Bin <= 5) = 0.0207 <= 0.05 < P(Bin <= 6) = 0.0577, so k = 6: 6th smallest and 6th largest.
  const xs = Array.from({ length: 20 }, (_, i) => (19 - i) / 10); // given unsorted
  const ci = medianInterval(xs, 0.9)!;
  assert.equal(ci.lo, 0.5);
  assert.equal(ci.hi, 1.4);
  close(ci.level, 1 - 2 * binomialHalfCdf(20, 5));
  assert.ok(ci.level >= 0.9);
  // 5 values reach 0.9 (1 - 2/32 = 0.9375) with the extremes; 4 do not.
  assert.deepEqual(medianInterval([3, 1, 2, 5, 4], 0.9), { lo: 1, hi: 5, level: 1 - 2 / 32 });
  assert.equal(medianInterval([1, 2, 3, 4], 0.9), null);
  assert.equal(medianInterval([1, 2, 3, 4, 5, 6, 7], 0.99), null);
  assert.notEqual(medianInterval([1, 2, 3, 4, 5, 6, 7, 8], 0.99), null);
  assert.throws(() => medianInterval([1, 2, 3], 1), /level must be in \(0, 1\), got 1/);
});

test("signTest: two-sided, ties dropped", () => {
  assert.deepEqual(signTest([1, 1]), { above: 0, below: 0, p: 1 });
  const t = signTest([0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.2]);
  assert.equal(t.above, 1);
  assert.equal(t.below, 5);
  close(t.p, 2 * (7 / 64)); // P(Bin(6) <= 1) = 7/64
  assert.equal(signTest([2, 0.5]).p, 1);
});

test("non-finite values are refused by name and index", () => {
  assert.throws(() => medianInterval([1, NaN, 2, 3, 4]), /xs\[1\] must be a finite number, got NaN/);
  assert.throws(() => signTest([0.5, Infinity]), /ratios\[1\] must be a finite number, got Infinity/);
  assert.throws(() => binomialHalfCdf(4, NaN), /k must be a number, got NaN/);
  close(binomialHalfCdf(5, 2.7), 16 / 32); // a fractional k is its floor: P(X <= 2.7) = P(X <= 2)
});

test("pairedVerdict: lower, higher, not resolved, too few pairs", () => {
  const lower = pairedVerdict([0.6, 0.7, 0.8, 0.9, 0.95, 0.7, 0.8]);
  assert.equal(lower.verdict, "lower");
  assert.equal(lower.median, 0.8);
  assert.ok(lower.hi < 1);
  assert.equal(pairedVerdict([1.1, 1.2, 1.3, 1.05, 1.4]).verdict, "higher");
  const mixed = pairedVerdict([0.7, 1.3, 0.9, 1.1, 1.0, 0.8]);
  assert.equal(mixed.verdict, "not resolved");
  assert.equal(mixed.median, 0.95);
  assert.deepEqual({ ...pairedVerdict([0.5, 0.6]), lo: 0, hi: 0 }, { median: 0.55, lo: 0, hi: 0, verdict: "too few pairs" });
  assert.equal(pairedVerdict([]).verdict, "too few pairs");
  assert.throws(() => pairedVerdict([1, NaN]), /ratios\[1\] must be a finite number/);
});
