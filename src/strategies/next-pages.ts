/** `next8`: after a fault on p, send p+1..p+depth (those not already sent): plain spatial readahead. */
import type { Strategy, StrategyContext } from "./types.js";
import { SentPages } from "./sent-pages.js";

export function createNextPages(ctx: StrategyContext): Strategy {
  const sent = new SentPages(ctx.pageCount);
  return {
    name: `next${ctx.depth}`,
    onFault(p) {
      sent.add(p);
      const out: number[] = [];
      for (let d = 1; d <= ctx.depth && p + d < ctx.pageCount; d++) if (sent.add(p + d)) out.push(p + d);
      return out;
    },
    onPresent: (p) => void sent.add(p),
  };
}
