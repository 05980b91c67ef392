/**
 * `oracle`: the next pages in the true future order. At a fault of stream s it finds the faulting
 * access in s's future and returns the next `depth` pages s will touch that are not present yet. It is
 * the bound no predictor can beat at the same depth (faults >= distinct pages / (depth + 1) on a
 * single stream). It needs the future, which only the simulator's context provides.
 */
import type { Strategy } from "./types.js";
import type { SimStrategy, SimStrategyContext } from "./context.js";

export function createOracle(ctx: SimStrategyContext): Strategy {
  if (!ctx.future) throw new Error("oracle needs the future trace in its context");
  const { pageCount, depth } = ctx;
  const { pages, streams } = ctx.future;
  const present = new Uint8Array(pageCount);
  // Per stream: its accesses, and the positions (in those) of its first touches of each page.
  const byStream = new Map<number, { seq: Uint32Array; first: Uint32Array; cur: number; head: number }>();
  {
    const counts = new Map<number, number>();
    for (let i = 0; i < streams.length; i++) counts.set(streams[i], (counts.get(streams[i]) ?? 0) + 1);
    const fill = new Map<number, number>();
    const seqs = new Map<number, Uint32Array>();
    for (const [s, c] of counts) { seqs.set(s, new Uint32Array(c)); fill.set(s, 0); }
    for (let i = 0; i < pages.length; i++) { const s = streams[i]; const k = fill.get(s)!; seqs.get(s)![k] = pages[i]; fill.set(s, k + 1); }
    for (const [s, seq] of seqs) {
      const seen = new Set<number>();
      const first: number[] = [];
      for (let i = 0; i < seq.length; i++) if (!seen.has(seq[i])) { seen.add(seq[i]); first.push(i); }
      byStream.set(s, { seq, first: Uint32Array.from(first), cur: 0, head: 0 });
    }
  }
  return {
    name: "oracle",
    onPresent(p) { if (p < pageCount) present[p] = 1; },
    onFault(p, s) {
      const st = byStream.get(s);
      if (!st) return [];
      while (st.cur < st.seq.length && st.seq[st.cur] !== p) st.cur++;
      const out: number[] = [];
      while (st.head < st.first.length && (st.first[st.head] <= st.cur || present[st.seq[st.first[st.head]]])) st.head++;
      for (let j = st.head; j < st.first.length && out.length < depth; j++) {
        const q = st.seq[st.first[j]];
        if (!present[q] && q !== p) out.push(q);
      }
      return out;
    },
  };
}

/**
 * `oracle-push`: the bound of push order. No predictions; the push sends pages in the true future
 * order of first touches from the latest fault on (then the given push). With the link the bottleneck,
 * what stall is left under it is the link's, not the order's. Simulator only (it needs the future).
 */
export function createOraclePush(ctx: SimStrategyContext): SimStrategy {
  if (!ctx.future) throw new Error("oracle-push needs the future trace in its context");
  const { pages } = ctx.future;
  // One cursor over the whole future (every stream, in time order); it only skips pages already
  // committed, so a page not yet touched is never passed over (with several streams a fault of one
  // must not move the cursor past the other's pages).
  let cur = 0;
  return {
    name: "oracle-push",
    onFault: () => [],
    steerPush: (base) => ({
      next(state) {
        while (cur < pages.length && state[pages[cur]] !== 0) cur++;
        return cur < pages.length ? pages[cur] : base.next(state);
      },
      onFault: (p) => base.onFault(p),
    }),
  };
}

/**
 * `oracle-history-push`: the bound of a push that replays history. Like `oracle-push`, but it knows
 * the true future order only of the pages the training history holds (all a replayed history can
 * ever offer): after each fault the push sends `LOCAL` pages of Hines' bubbling around it (the
 * spatial neighbours, which it cannot know otherwise), then the history's pages in the order the
 * guest will first touch them, then bubbling again when none is left. Of the mixes measured (one
 * page in two, or all, from the future order; 0-32 bubbling pages after a fault) this one took the
 * least stall: RESULTS.md section 2. Simulator only (it needs the future).
 */
export function createOracleHistoryPush(ctx: SimStrategyContext): SimStrategy {
  if (!ctx.future) throw new Error("oracle-history-push needs the future trace in its context");
  const { pages } = ctx.future;
  const held = new Uint8Array(ctx.pageCount);
  let cur = 0, local = 0;
  return {
    name: "oracle-history-push",
    push: "hines",
    train(h) { for (let i = 0; i < h.length; i++) if (h[i] < ctx.pageCount) held[h[i]] = 1; },
    onFault: () => [],
    steerPush: (base) => ({
      next(state) {
        if (local > 0) { local--; return base.next(state); }
        while (cur < pages.length && (state[pages[cur]] !== 0 || held[pages[cur]] === 0)) cur++;
        return cur < pages.length ? pages[cur] : base.next(state);
      },
      onFault: (p) => { local = LOCAL; base.onFault(p); },
    }),
  };
}
const LOCAL = 2;
