/**
 * `blend`: the obvious non-PPM design from shared/research/findings.md, built as a baseline the
 * PPM engine must beat. Two signals, ranked together by estimated probability:
 *  - windowed offset: how often page p+d is first-touched within the next WINDOW first touches
 *    after p (|d| <= RANGE), from the history and then online. On contiguous memory it learns
 *    readahead; on scattered memory its probabilities flatten and it falls silent.
 *  - co-touch: over the miss stream of a small LRU (LRU_SLOTS pages), the pages that follow p within
 *    the next COTOUCH misses, weighted 1/distance.
 */
import type { Strategy, StrategyContext } from "./types.js";
import { SentPages } from "./sent-pages.js";

const WINDOW = 32;
const RANGE = 64;
const LRU_SLOTS = 64;
const COTOUCH = 8;
const MIN_PROBABILITY = 0.02;

export function createBlend(ctx: StrategyContext): Strategy {
  const sent = new SentPages(ctx.pageCount);
  const offsets = new Float64Array(2 * RANGE + 1);
  let firstTouches = 0;
  const recentFirst: number[] = [];
  const cotouch = new Map<number, Map<number, number>>();
  const cotouchTotal = new Map<number, number>();
  const recentMiss: number[] = [];
  const firstTouch = (p: number) => {
    for (const q of recentFirst) {
      const d = p - q;
      if (d !== 0 && d >= -RANGE && d <= RANGE) offsets[d + RANGE]++;
    }
    recentFirst.push(p);
    if (recentFirst.length > WINDOW) recentFirst.shift();
    firstTouches++;
  };
  const miss = (p: number) => {
    for (let j = 0; j < recentMiss.length; j++) {
      const q = recentMiss[recentMiss.length - 1 - j];
      if (q === p) continue;
      const w = 1 / (j + 1);
      let m = cotouch.get(q);
      if (!m) cotouch.set(q, (m = new Map()));
      m.set(p, (m.get(p) ?? 0) + w);
      cotouchTotal.set(q, (cotouchTotal.get(q) ?? 0) + w);
    }
    recentMiss.push(p);
    if (recentMiss.length > COTOUCH) recentMiss.shift();
  };
  return {
    name: "blend",
    train(pages) {
      const seen = new Set<number>();
      const stamp = new Map<number, number>();
      let tick = 0;
      for (const p of pages) {
        if (!seen.has(p)) { seen.add(p); firstTouch(p); }
        const s = stamp.get(p);
        if (s === undefined || s + LRU_SLOTS <= tick) { tick++; miss(p); }
        stamp.set(p, tick);
      }
    },
    onTouch(p) { firstTouch(p); miss(p); },
    onPresent: (p) => void sent.add(p),
    onFault(p) {
      sent.add(p);
      firstTouch(p);
      miss(p);
      const cand = new Map<number, number>();
      for (let d = -RANGE; d <= RANGE; d++) {
        const q = p + d;
        if (d === 0 || q < 0 || q >= ctx.pageCount || sent.has(q)) continue;
        const pr = offsets[d + RANGE] / Math.max(1, firstTouches);
        if (pr > 0) cand.set(q, pr);
      }
      const m = cotouch.get(p);
      if (m) {
        const tot = cotouchTotal.get(p)!;
        for (const [q, w] of m) if (!sent.has(q)) cand.set(q, Math.max(cand.get(q) ?? 0, w / tot));
      }
      const out = [...cand].filter((x) => x[1] >= MIN_PROBABILITY).sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, ctx.depth).map((x) => x[0]);
      for (const q of out) sent.add(q);
      return out;
    },
  };
}
