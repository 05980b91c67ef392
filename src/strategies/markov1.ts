/**
 * `markov1`: a first-order Markov successor model over absolute pages, learned from every access of
 * the history and then from the fault (and feedback) stream. A fault is answered by a best-first
 * walk of the successor graph (path probability = product of transition frequencies, at most 64
 * pages expanded) that collects the first `depth` pages not yet sent: the strong form of the baseline,
 * which looks past successors that are already present.
 */
import type { Strategy, StrategyContext } from "./types.js";
import { SentPages } from "./sent-pages.js";

const MAX_EXPANSIONS = 64;

export function createMarkov1(ctx: StrategyContext): Strategy {
  const sent = new SentPages(ctx.pageCount);
  const succ = new Map<number, Map<number, number>>();
  const totals = new Map<number, number>();
  const last = new Map<number, number>(); // per stream
  const learn = (p: number, s: number) => {
    const prev = last.get(s);
    if (prev !== undefined) {
      let m = succ.get(prev);
      if (!m) succ.set(prev, (m = new Map()));
      m.set(p, (m.get(p) ?? 0) + 1);
      totals.set(prev, (totals.get(prev) ?? 0) + 1);
    }
    last.set(s, p);
  };
  return {
    name: "markov1",
    train(pages, streams) {
      for (let i = 0; i < pages.length; i++) learn(pages[i], streams ? streams[i] : 0);
    },
    onTouch: (p, s) => learn(p, s),
    onPresent: (p) => void sent.add(p),
    onFault(p, s) {
      sent.add(p);
      learn(p, s);
      const out: number[] = [];
      const frontier: [number, number][] = [[1, p]];
      const visited = new Set([p]);
      for (let expanded = 0; frontier.length && out.length < ctx.depth && expanded < MAX_EXPANSIONS; expanded++) {
        let bi = 0;
        for (let i = 1; i < frontier.length; i++) if (frontier[i][0] > frontier[bi][0]) bi = i;
        const [prob, u] = frontier[bi];
        frontier.splice(bi, 1);
        const m = succ.get(u);
        if (!m) continue;
        const tot = totals.get(u)!;
        const next = [...m].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
        for (const [v, c] of next) {
          if (visited.has(v)) continue;
          visited.add(v);
          if (sent.add(v)) {
            out.push(v);
            if (out.length >= ctx.depth) break;
          }
          frontier.push([(prob * c) / tot, v]);
        }
      }
      return out;
    },
  };
}
