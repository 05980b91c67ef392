/**
 * Paired comparisons of noisy runs (QEMU migrations: blocktime of identical runs varies 2-5x), without
 * assuming any distribution: a confidence interval for the median of the paired ratios from order
 * statistics, and the two-sided sign test of "the ratio is as often above 1 as below". Deterministic,
 * so a table reprinted from the same runs is the same table.
 */

/** P(X <= k) for X ~ Binomial(n, 1/2). */
export function binomialHalfCdf(n: number, k: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (Number.isNaN(k)) throw new RangeError(`k must be a number, got ${k}`);
  k = Math.floor(k);
  if (k < 0) return 0;
  if (k >= n) return 1;
  // Sum C(n, i) / 2^n in logs: exact enough for the few hundred pairs a batch can have.
  let logC = 0, sum = 0;
  const log2n = n * Math.LN2;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    sum += Math.exp(logC - log2n);
  }
  return Math.min(1, sum);
}

/**
 * The distribution-free interval for the median of `xs` at confidence >= `level`: the k-th smallest and
 * k-th largest values, k the largest with P(Bin(n, 1/2) <= k - 1) <= (1 - level) / 2. null when there are
 * too few values for that level (0.9 needs at least 5, 0.99 at least 8).
 */
export function medianInterval(xs: readonly number[], level = 0.9): { lo: number; hi: number; level: number } | null {
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`);
  finite("xs", xs);
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const tail = (1 - level) / 2;
  let k = 0;
  while (k + 1 <= n / 2 && binomialHalfCdf(n, k) <= tail) k++;
  if (k === 0) return null;
  return { lo: s[k - 1], hi: s[n - k], level: 1 - 2 * binomialHalfCdf(n, k - 1) };
}

/**
 * Two-sided sign test of ratios against 1 (ties dropped): the probability, were each pair as likely to
 * go either way, of a split at least this uneven. 1 when nothing is left after the ties.
 */
export function signTest(ratios: readonly number[]): { above: number; below: number; p: number } {
  finite("ratios", ratios);
  const above = ratios.filter((r) => r > 1).length, below = ratios.filter((r) => r < 1).length;
  const n = above + below;
  if (n === 0) return { above, below, p: 1 };
  return { above, below, p: Math.min(1, 2 * binomialHalfCdf(n, Math.min(above, below))) };
}

/** A NaN or infinite value would sort anywhere and count as neither side: refuse it by name. */
function finite(name: string, xs: readonly number[]): void {
  const i = xs.findIndex((x) => !Number.isFinite(x));
  if (i >= 0) throw new RangeError(`${name}[${i}] must be a finite number, got ${xs[i]}`);
}

/**
 * One line's worth of a paired comparison: the median ratio, its 90% interval and what it resolves
 * ("lower" or "higher" when the interval lies wholly under or over 1, else "not resolved"; "too few
 * pairs" under 5).
 */
export function pairedVerdict(ratios: readonly number[], level = 0.9): { median: number; lo: number; hi: number; verdict: string } {
  finite("ratios", ratios);
  const s = [...ratios].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const ci = medianInterval(s, level);
  if (!ci) return { median, lo: NaN, hi: NaN, verdict: "too few pairs" };
  return { median, lo: ci.lo, hi: ci.hi, verdict: ci.hi < 1 ? "lower" : ci.lo > 1 ? "higher" : "not resolved" };
}
