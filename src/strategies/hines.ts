/**
 * `hines`: Hines & Gopalan's pre-paging (VEE'09). The background push bubbles outward from the latest
 * faulted page (p-1, p+1, p-2, p+2, ...: a page on each side in turn, the paper's single-pivot bubble),
 * re-centring on each new fault. It is a push order, so the strategy carries it ("hines") whatever
 * `--push` says; the fault path itself only carries the faulted page, and the bubbling pages follow
 * it on the link right away.
 */
import type { StrategyContext } from "./types.js";
import type { SimStrategy } from "./context.js";

const NONE = new Uint32Array(0);

export function createHines(_ctx: StrategyContext): SimStrategy {
  return { name: "hines", push: "hines", onFault: () => NONE };
}
