/**
 * The benchmarks' workload (bench/, and the tests that need a model past 1M contexts): a seeded page
 * stream with the mix real guests show (sequential runs, strided walks, a hot loop, random jumps)
 * over a 4 GiB guest, long enough to fill a model past 1M contexts.
 */
import { Rng } from "../util/random.js";

export const BENCH_PAGES = 1 << 20;

export function mixedStream(length: number, seed: number): Uint32Array {
  const rng = new Rng(seed);
  const out = new Uint32Array(length);
  const loop = Array.from({ length: 12 }, () => rng.below(BENCH_PAGES));
  let i = 0;
  while (i < length) {
    const kind = rng.below(4);
    const start = rng.below(BENCH_PAGES);
    const len = 4 + rng.below(28);
    for (let k = 0; k < len && i < length; k++) {
      if (kind === 0) out[i++] = (start + k) % BENCH_PAGES;
      else if (kind === 1) out[i++] = (start + k * (2 + (start & 7))) % BENCH_PAGES;
      else if (kind === 2) out[i++] = loop[k % loop.length];
      else out[i++] = rng.below(BENCH_PAGES);
    }
  }
  return out;
}
