/**
 * `leap`: Leap's prefetcher (Al Maruf & Chowdhury, ATC'20). It keeps the last 32 fault deltas and looks
 * for a majority delta (Boyer-Moore vote) in the most recent 8, then 16, then 32 of them. With a trend
 * d it prefetches p+d, p+2d, ... (depth pages, skipping present ones); without one it falls back to
 * readahead. Like Leap, which sees hits in its prefetch cache as well as faults, it records the
 * touched prefetched pages the destination reports (feedback) in its delta history, in the order
 * they come, before the fault that carried them. Without feedback it sees faults only: once it
 * prefetches a stride d, the faults come (depth + 1) x d apart and that is the trend it then follows.
 */
import type { Strategy, StrategyContext } from "./types.js";
import { createReadahead } from "./readahead.js";

const H = 32;

export function createLeap(ctx: StrategyContext): Strategy & { setDepth(d: number): void } {
  const { pageCount } = ctx;
  let depth = ctx.depth;
  const present = new Uint8Array(pageCount);
  const fallback = createReadahead(ctx, "leap");
  const deltas = new Float64Array(H);
  let n = 0, prev = -1;

  const record = (p: number) => {
    if (prev >= 0) { deltas[n % H] = p - prev; n++; }
    prev = p;
  };

  const trend = (): number => {
    for (let w = 8; w <= H; w *= 2) {
      const m = Math.min(w, n);
      let cand = 0, votes = 0;
      for (let i = 0; i < m; i++) {
        const d = deltas[(n - 1 - i) % H];
        if (votes === 0) { cand = d; votes = 1; } else if (d === cand) votes++; else votes--;
      }
      let count = 0;
      for (let i = 0; i < m; i++) if (deltas[(n - 1 - i) % H] === cand) count++;
      if (m > 0 && count * 2 > m && cand !== 0) return cand;
      if (m < w) break;
    }
    return 0;
  };

  return {
    name: "leap",
    setDepth(d) { depth = d; fallback.setDepth(d); },
    onPresent(p) { if (p < pageCount) present[p] = 1; fallback.onPresent!(p); },
    onTouch(p, s) { record(p); fallback.onTouch!(p, s); },
    onFault(p, s) {
      record(p);
      const d = trend();
      if (d === 0) return fallback.onFault(p, s);
      const out: number[] = [];
      for (let k = 1, q = p + d; out.length < depth && k <= 4 * depth && q >= 0 && q < pageCount; k++, q += d) if (!present[q]) out.push(q);
      return out;
    },
  };
}
