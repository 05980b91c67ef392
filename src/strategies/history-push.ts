/**
 * `history-push`: the `ppm` strategy's push without its engine. No page is sent with a fault; where a
 * push runs, it is ordered as `ppm` orders its own (Hines' bubbling around each fault, with the history's
 * replay after the faulted page's last occurrence in its share: temporal-push.ts). Beside `ppm` it shows
 * how much of `ppm`'s lead is the push order and how much the engine's pages; without a push it is
 * demand paging.
 */
import type { SimStrategy, SimStrategyContext } from "./context.js";
import { TemporalPush } from "./temporal-push.js";
import { DEFAULT_POLICY } from "./ppm-policy.js";

export function createHistoryPush(ctx: SimStrategyContext): SimStrategy {
  const pushing = (ctx.push ?? "qemu") !== "none";
  const history = pushing ? new TemporalPush(ctx.pageCount, { share: DEFAULT_POLICY.historyShare, adaptive: DEFAULT_POLICY.adaptiveShare }) : null;
  return {
    name: "history-push",
    push: pushing ? "hines" : undefined,
    steerPush: history ? (base) => history.steer(base) : undefined,
    train(pages) { history?.learn(pages); },
    onFault: () => [],
  };
}
