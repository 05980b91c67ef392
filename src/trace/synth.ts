/**
 * Seeded synthetic workloads whose right answer is known, for tests and for the simulator's tables.
 * Every generator is a pure function of its options: the same (name, accesses, pages, seed) gives the
 * same trace, byte for byte.
 *
 *   seq     sequential scan over the footprint, looping
 *   stride  column-major walk: page deltas of `stride` (default 8), wrapping to the next column
 *   random  uniform random pages
 *   zipf    a zipf(1.0) hot set; ranks are scattered over the footprint by a random permutation
 *   chase   pointer chasing: one random cyclic permutation of the footprint, followed again and again
 *   matmul  blocked matrix multiply C += A x B (doubles), element accesses folded to page accesses
 *   multi   four vCPUs on disjoint quarters: seq, stride, zipf and chase, interleaved at random
 *   phase   chase over one half of the footprint, then (halfway) a sequential scan over the other half
 *
 * Gaps are uniform in 1..2*gap-1 (mean `gap` instructions per access).
 */
import { Rng } from "../util/random.js";
import type { Trace } from "./format.js";
import { lowerBound } from "../util/search.js";

export const WORKLOADS = ["seq", "stride", "random", "zipf", "chase", "matmul", "multi", "phase"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface SynthOptions {
  /** Accesses (lines) to generate. Default 200,000. */
  accesses?: number;
  /** Footprint in pages (the generator may touch fewer). Default 4096. */
  pages?: number;
  seed?: number;
  /** Mean guest instructions between accesses. Default 30. */
  gap?: number;
  /** Page delta of `stride`. Default 8. */
  stride?: number;
}

export function isWorkloadName(s: string): s is WorkloadName {
  return (WORKLOADS as readonly string[]).includes(s);
}

type Gen = () => number; // next page

export function synthesize(name: WorkloadName, opts: SynthOptions = {}): Trace {
  const n = opts.accesses ?? 200_000;
  const pages = opts.pages ?? 4096;
  const seed = opts.seed ?? 1;
  const gap = opts.gap ?? 30;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`accesses must be a positive integer, got ${n}`);
  if (!Number.isInteger(pages) || pages < 16 || pages > 1 << 28) throw new RangeError(`pages must be an integer in 16..2^28, got ${pages}`);
  if (!Number.isInteger(gap) || gap < 1) throw new RangeError(`gap must be a positive integer, got ${gap}`);
  const rng = new Rng(seed);
  const out = { pages: new Uint32Array(n), gaps: new Uint32Array(n), streams: new Uint16Array(n) };
  const gapOf = () => 1 + rng.below(2 * gap - 1);
  const fill = (gen: Gen, from = 0, to = n, stream = 0) => {
    for (let i = from; i < to; i++) { out.pages[i] = gen(); out.gaps[i] = gapOf(); out.streams[i] = stream; }
  };
  const stride = opts.stride ?? 8;
  switch (name) {
    case "seq": fill(seqGen(0, pages)); break;
    case "stride": fill(strideGen(0, pages, stride)); break;
    case "random": fill(() => rng.below(pages)); break;
    case "zipf": fill(zipfGen(new Rng(seed + 1), 0, pages)); break;
    case "chase": fill(chaseGen(new Rng(seed + 1), 0, pages)); break;
    case "matmul": fill(matmulGen(pages)); break;
    case "phase": {
      const half = n >> 1, hp = pages >> 1;
      fill(chaseGen(new Rng(seed + 1), 0, hp), 0, half);
      fill(seqGen(hp, pages - hp), half, n);
      break;
    }
    case "multi": {
      const q = pages >> 2;
      const gens: Gen[] = [seqGen(0, q), strideGen(q, q, stride), zipfGen(new Rng(seed + 1), 2 * q, q), chaseGen(new Rng(seed + 2), 3 * q, q)];
      for (let i = 0; i < n; i++) {
        const s = rng.below(4);
        out.pages[i] = gens[s](); out.gaps[i] = gapOf(); out.streams[i] = s;
      }
      break;
    }
    default: throw new RangeError(`unknown workload ${JSON.stringify(name)}; one of ${WORKLOADS.join(", ")}`);
  }
  return { name, length: n, ...out };
}

function seqGen(base: number, count: number): Gen {
  let i = 0;
  return () => { const p = base + i; i = (i + 1) % count; return p; };
}

/** Column-major walk over `count` pages seen as rows of `stride` columns. */
function strideGen(base: number, count: number, stride: number): Gen {
  const rows = Math.max(1, Math.floor(count / stride));
  let k = 0;
  return () => {
    const p = base + (k % rows) * stride + (Math.floor(k / rows) % stride);
    k = (k + 1) % (rows * stride);
    return p;
  };
}

function permutation(rng: Rng, n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) { const j = rng.below(i + 1); const t = a[i]; a[i] = a[j]; a[j] = t; }
  return a;
}

function zipfGen(rng: Rng, base: number, count: number): Gen {
  const perm = permutation(rng, count);
  const cdf = new Float64Array(count);
  let s = 0;
  for (let r = 0; r < count; r++) { s += 1 / (r + 1); cdf[r] = s; }
  return () => {
    const u = rng.next() * s;
    return base + perm[lowerBound(cdf, u, count - 1)];
  };
}

function chaseGen(rng: Rng, base: number, count: number): Gen {
  // A single cycle through every page: Sattolo's shuffle of the successor table.
  const next = new Uint32Array(count);
  const order = permutation(rng, count);
  for (let i = 0; i < count; i++) next[order[i]] = order[(i + 1) % count];
  let p = order[0];
  return () => { const r = base + p; p = next[p]; return r; };
}

/** Blocked C += A x B over n x n doubles, three matrices filling the footprint; re-touches of the last 8 distinct pages are folded. */
function matmulGen(pages: number): Gen {
  const perMatrix = Math.floor(pages / 3);
  // n is capped so that a 200k-access trace runs through several block rows of the product.
  const n = Math.max(8, Math.min(256, Math.floor(Math.sqrt((perMatrix * 4096) / 8))));
  const bs = Math.max(4, Math.min(32, n >> 3));
  const pageOf = (m: number, r: number, c: number) => m * perMatrix + Math.floor(((r * n + c) * 8) / 4096);
  let ii = 0, jj = 0, kk = 0, i = 0, j = 0, k = 0, which = 0;
  const recent = [-1, -1, -1, -1, -1, -1, -1, -1]; // the last 8 distinct pages, as the real traces fold them
  const step = (): number => {
    const p = which === 0 ? pageOf(0, ii + i, kk + k) : which === 1 ? pageOf(1, kk + k, jj + j) : pageOf(2, ii + i, jj + j);
    if (++which === 3) {
      which = 0;
      if (++k === Math.min(bs, n - kk)) { k = 0;
        if (++j === Math.min(bs, n - jj)) { j = 0;
          if (++i === Math.min(bs, n - ii)) { i = 0;
            if ((kk += bs) >= n) { kk = 0;
              if ((jj += bs) >= n) { jj = 0;
                if ((ii += bs) >= n) ii = 0; } } } } }
    }
    return p;
  };
  return () => {
    for (;;) {
      const p = step();
      const at = recent.indexOf(p);
      if (at >= 0) { recent.splice(at, 1); recent.unshift(p); continue; }
      recent.pop(); recent.unshift(p);
      return p;
    }
  };
}
