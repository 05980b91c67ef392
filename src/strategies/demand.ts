/**
 * `demand`: plain post-copy demand paging, the reference every percentage is taken against. Only the
 * faulted page crosses on the fault path, and it never uses a background push while the guest runs
 * (whatever `--push` says), so its faults are exactly the distinct pages touched after switch-over.
 */
import type { StrategyContext } from "./types.js";
import type { SimStrategy } from "./context.js";

const NONE = new Uint32Array(0);

export function createDemand(_ctx: StrategyContext): SimStrategy {
  return { name: "demand", push: "none", onFault: () => NONE };
}
