/**
 * How predictable a trace is, at a glance. All figures are over the whole trace as one sequence
 * (the stream column is counted but otherwise ignored).
 *
 * Definitions (the "first touches" of a trace are the accesses to a page never accessed before; in
 * post-copy they are the faults a prefetcher tries to prevent, and there are exactly `distinctPages`):
 *   - topDeltas: the most common differences page[f_i] - page[f_{i-1}] between consecutive first
 *     touches f_0 < f_1 < ...; `share` is count / (distinctPages - 1).
 *   - reuse distance of an access to page P whose previous access was at time t': the number of
 *     distinct pages other than P accessed strictly between t' and now (an immediate repeat has 0).
 *     A first touch has no reuse distance (it is "cold"). `median` and `p90` are over the re-accesses;
 *     `within[k]` is the share of ALL accesses with reuse distance < k, i.e. the hit rate of a k-page
 *     LRU cache; `cold` is the share of accesses that are first touches.
 *   - sequential predictor: after first touch f_{i-1} it predicts pages page[f_{i-1}]+1 .. +8. First touch
 *     f_i (i >= 1) is caught when 1 <= page[f_i] - page[f_{i-1}] <= 8.
 *   - majority-delta predictor (Leap-like): it keeps the last 8 first-touch deltas (fewer at the start).
 *     When one delta d != 0 occurs in strictly more than half of them, it predicts
 *     page[f_{i-1}] + k*d for k = 1..8; first touch f_i is caught when page[f_i] is one of those.
 *     Without a majority it predicts nothing.
 *   Both shares are caught / distinctPages (the first first touch can never be caught).
 *   - writes (only when the trace has access kinds, src/trace/format.ts; else null = unknown): `lines`
 *     is the number of accesses of kind `w` (the page was written during the line's stretch), `share`
 *     lines / accesses; `pages` the distinct pages with at least one `w` line, `pageShare` pages /
 *     distinctPages (what a dirty log of the whole trace would hold).
 */
import type { Trace } from "./format.js";
import { lowerBound } from "../util/search.js";

export const PREDICT_DEPTH = 8;
export const DELTA_HISTORY = 8;
export const TOP_DELTAS = 10;
export const WITHIN = [8, 64, 1024] as const;

export interface TraceStats {
  name: string;
  accesses: number;
  streams: number;
  distinctPages: number;
  footprintMiB: number;
  instructions: number;
  topDeltas: { delta: number; count: number; share: number }[];
  reuse: {
    reaccesses: number;
    /** Share of accesses that are first touches. */
    cold: number;
    /** Over re-accesses; null when there are none. */
    median: number | null;
    p90: number | null;
    /** within["8"] = share of all accesses with reuse distance < 8. */
    within: Record<string, number>;
  };
  predictors: {
    sequential: { caught: number; share: number };
    majorityDelta: { caught: number; share: number };
  };
  /** Null when the trace has no access kinds (unknown). */
  writes: { lines: number; share: number; pages: number; pageShare: number } | null;
}

/** The write figures of {@link TraceStats} (null when the trace has no access kinds). */
export function writeStats(trace: Trace): TraceStats["writes"] {
  const w = trace.writes;
  if (w === undefined) return null;
  const n = trace.length;
  const { ids, distinct } = densify(trace.pages.subarray(0, n));
  const written = new Uint8Array(distinct);
  let lines = 0;
  let pages = 0;
  for (let i = 0; i < n; i++) {
    if (!w[i]) continue;
    lines++;
    if (!written[ids[i]]) { written[ids[i]] = 1; pages++; }
  }
  return { lines, share: n ? lines / n : 0, pages, pageShare: distinct ? pages / distinct : 0 };
}

/** Dense ids 0..D-1 for the pages (in page order) and D. */
function densify(pages: Uint32Array): { ids: Uint32Array; distinct: number } {
  const n = pages.length;
  let max = 0;
  for (let i = 0; i < n; i++) if (pages[i] > max) max = pages[i];
  const ids = new Uint32Array(n);
  if (max < Math.max(1 << 20, 4 * n)) {
    // Small page numbers (recorded traces are already 0..N-1): a direct table.
    const map = new Int32Array(max + 1).fill(-1);
    for (let i = 0; i < n; i++) map[pages[i]] = 0;
    let d = 0;
    for (let p = 0; p <= max; p++) if (map[p] === 0) map[p] = d++;
    for (let i = 0; i < n; i++) ids[i] = map[pages[i]];
    return { ids, distinct: d };
  }
  const sorted = pages.slice().sort();
  let d = 0;
  for (let i = 0; i < n; i++) if (d === 0 || sorted[i] !== sorted[d - 1]) sorted[d++] = sorted[i];
  for (let i = 0; i < n; i++) {
    const p = pages[i];
    ids[i] = lowerBound(sorted, p, d - 1);
  }
  return { ids, distinct: d };
}

/** Histogram of reuse distances (index = distance) and the number of cold accesses. Fenwick tree over time. */
export function reuseDistances(pages: Uint32Array): { hist: Float64Array; cold: number } {
  const n = pages.length;
  const { ids, distinct } = densify(pages);
  const last = new Int32Array(distinct).fill(-1);
  const tree = new Int32Array(n + 1); // marks at the time of each page's latest access
  const hist = new Float64Array(distinct + 1);
  let cold = 0;
  let live = 0; // number of marks = distinct pages seen so far
  for (let t = 0; t < n; t++) {
    const id = ids[t];
    const prev = last[id];
    if (prev < 0) {
      cold++;
    } else {
      // marks at positions > prev = pages whose latest access is after prev (P's own mark is at prev)
      let upto = 0; // marks at positions <= prev
      for (let i = prev + 1; i > 0; i -= i & -i) upto += tree[i];
      hist[live - upto]++;
      for (let i = prev + 1; i <= n; i += i & -i) tree[i]--;
      live--;
    }
    for (let i = t + 1; i <= n; i += i & -i) tree[i]++;
    live++;
    last[id] = t;
  }
  return { hist, cold };
}

/** Smallest distance d such that at least q of the re-accesses have distance <= d. */
function quantile(hist: Float64Array, total: number, q: number): number | null {
  if (total === 0) return null;
  const need = Math.ceil(q * total);
  let acc = 0;
  for (let d = 0; d < hist.length; d++) {
    acc += hist[d];
    if (acc >= need && acc > 0) return d;
  }
  return hist.length - 1;
}

export function computeTraceStats(trace: Trace): TraceStats {
  const n = trace.length;
  const pages = trace.pages.subarray(0, n);
  let instructions = 0;
  for (let i = 0; i < n; i++) instructions += trace.gaps[i];
  const streamSeen = new Uint8Array(0x10000);
  let streams = 0;
  for (let i = 0; i < n; i++) {
    const st = trace.streams[i];
    if (!streamSeen[st]) { streamSeen[st] = 1; streams++; }
  }

  // First touches, in order.
  const { hist, cold } = reuseDistances(pages);
  const distinct = cold;
  const first = firstTouches(pages);

  // Deltas between consecutive first touches.
  const deltaCount = new Map<number, number>();
  for (let i = 1; i < first.length; i++) {
    const d = first[i] - first[i - 1];
    deltaCount.set(d, (deltaCount.get(d) ?? 0) + 1);
  }
  const nDeltas = Math.max(0, first.length - 1);
  const topDeltas = [...deltaCount.entries()]
    .sort((a, b) => b[1] - a[1] || Math.abs(a[0]) - Math.abs(b[0]) || a[0] - b[0])
    .slice(0, TOP_DELTAS)
    .map(([delta, count]) => ({ delta, count, share: count / nDeltas }));

  const seq = sequentialCaught(first);
  const maj = majorityDeltaCaught(first);

  const reaccesses = n - cold;
  const within: Record<string, number> = {};
  for (const k of WITHIN) {
    let s = 0;
    for (let d = 0; d < Math.min(k, hist.length); d++) s += hist[d];
    within[String(k)] = n ? s / n : 0;
  }
  return {
    name: trace.name,
    accesses: n,
    streams,
    distinctPages: distinct,
    footprintMiB: (distinct * 4096) / 2 ** 20,
    instructions,
    topDeltas,
    reuse: {
      reaccesses,
      cold: n ? cold / n : 0,
      median: quantile(hist, reaccesses, 0.5),
      p90: quantile(hist, reaccesses, 0.9),
      within,
    },
    predictors: {
      sequential: { caught: seq, share: distinct ? seq / distinct : 0 },
      majorityDelta: { caught: maj, share: distinct ? maj / distinct : 0 },
    },
    writes: writeStats(trace),
  };
}

/** The pages of the first touches, in trace order (as float64 so that deltas are exact and signed). */
export function firstTouches(pages: Uint32Array): Float64Array {
  const { ids, distinct } = densify(pages);
  const seen = new Uint8Array(distinct);
  const out = new Float64Array(distinct);
  let k = 0;
  for (let i = 0; i < pages.length; i++) {
    if (!seen[ids[i]]) { seen[ids[i]] = 1; out[k++] = pages[i]; }
  }
  return out;
}

/** First touches caught by "next 1..8 pages after the previous first touch". */
export function sequentialCaught(first: Float64Array): number {
  let caught = 0;
  for (let i = 1; i < first.length; i++) {
    const d = first[i] - first[i - 1];
    if (d >= 1 && d <= PREDICT_DEPTH) caught++;
  }
  return caught;
}

/** First touches caught by the majority-delta predictor (see the header comment). */
export function majorityDeltaCaught(first: Float64Array): number {
  const hist: number[] = []; // last DELTA_HISTORY deltas, oldest first
  let caught = 0;
  for (let i = 1; i < first.length; i++) {
    // Predict from the history before seeing first[i].
    const d = majority(hist);
    if (d !== null) {
      const off = first[i] - first[i - 1];
      const k = off / d;
      if (Number.isInteger(k) && k >= 1 && k <= PREDICT_DEPTH) caught++;
    }
    hist.push(first[i] - first[i - 1]);
    if (hist.length > DELTA_HISTORY) hist.shift();
  }
  return caught;
}

/** The value occurring in strictly more than half of `xs`, if it is non-zero; else null. */
export function majority(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  // Boyer-Moore vote, then verify.
  let cand = 0;
  let c = 0;
  for (const x of xs) {
    if (c === 0) { cand = x; c = 1; } else if (x === cand) c++; else c--;
  }
  let count = 0;
  for (const x of xs) if (x === cand) count++;
  return count * 2 > xs.length && cand !== 0 ? cand : null;
}

/** Human-readable report. */
export function formatTraceStats(s: TraceStats): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const int = (x: number) => Math.round(x).toLocaleString("en-US");
  const lines = [
    `trace ${s.name}`,
    `  accesses        ${int(s.accesses)}${s.streams > 1 ? ` (${s.streams} streams)` : ""}`,
    `  distinct pages  ${int(s.distinctPages)} (footprint ${s.footprintMiB.toFixed(1)} MiB)`,
    `  instructions    ${int(s.instructions)} (sum of gaps)`,
    s.writes === null
      ? `  writes          unknown (the trace has no access kinds)`
      : `  writes          ${int(s.writes.lines)} of ${int(s.accesses)} accesses (${pct(s.writes.share)}); ${int(s.writes.pages)} of ${int(s.distinctPages)} pages written (${pct(s.writes.pageShare)})`,
    `  reuse distance  (distinct pages between re-accesses; ${int(s.reuse.reaccesses)} re-accesses)`,
    `    median ${s.reuse.median ?? "-"}, p90 ${s.reuse.p90 ?? "-"}; ` +
      Object.entries(s.reuse.within).map(([k, v]) => `within ${k}: ${pct(v)}`).join(", ") + `, cold: ${pct(s.reuse.cold)}`,
    `  first-touch deltas (top ${s.topDeltas.length} of ${int(Math.max(0, s.distinctPages - 1))} deltas)`,
    ...s.topDeltas.map((d) => `    ${String(d.delta > 0 ? `+${d.delta}` : d.delta).padStart(12)}  ${int(d.count).padStart(12)}  ${pct(d.share).padStart(6)}`),
    `  first touches a predictor would catch (of ${int(s.distinctPages)})`,
    `    ${`sequential (next 1..${PREDICT_DEPTH} pages)`.padEnd(44)}${pct(s.predictors.sequential.share).padStart(6)}  (${int(s.predictors.sequential.caught)})`,
    `    ${`majority delta (last ${DELTA_HISTORY} deltas, 1..${PREDICT_DEPTH} steps)`.padEnd(44)}${pct(s.predictors.majorityDelta.share).padStart(6)}  (${int(s.predictors.majorityDelta.caught)})`,
  ];
  return lines.join("\n") + "\n";
}
