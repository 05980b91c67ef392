/**
 * The strategy registry: name -> factory, loaded lazily so that one missing or broken module does
 * not take the others down. Every factory takes a SimStrategyContext (pageCount, depth, streams; the
 * oracle alone also reads `future`).
 */
import type { Strategy } from "./types.js";
import type { SimStrategy, SimStrategyContext } from "./context.js";

type Factory = (ctx: SimStrategyContext) => SimStrategy;

export const STRATEGIES: Record<string, { describe: string; load: () => Promise<Factory>; simulatorOnly?: true }> = {
  demand: { describe: "plain post-copy: only the faulted page", load: async () => (await import("./demand.js")).createDemand },
  qemu: { describe: "QEMU: no prediction, background scanner jumps after each fault", load: async () => (await import("./qemu.js")).createQemu },
  readahead: { describe: "Linux's swap-in readahead (VMA-based): a window sized by the hits since the last fault, after, before or around it", load: async () => (await import("./readahead.js")).createReadahead },
  hines: { describe: "Hines & Gopalan pre-paging: push bubbles outward from the latest fault", load: async () => (await import("./hines.js")).createHines },
  leap: { describe: "Leap: a majority trend over the last faults and hits, else the aligned block; Linux's hit-sized window", load: async () => (await import("./leap.js")).createLeap },
  next8: { describe: "the next `depth` absent pages after the fault", load: async () => (await import("./next-pages.js")).createNextPages },
  markov1: { describe: "first-order Markov successors", load: async () => (await import("./markov1.js")).createMarkov1 },
  blend: { describe: "windowed-offset and miss-stream co-touch signals, ranked together", load: async () => (await import("./blend.js")).createBlend },
  ppm: { describe: "PPM engine with a send policy for a real migration: confidence-gated, push-aware", load: async () => (await import("./ppm-policy.js")).createPpmPolicy },
  "ppm-given-push": { describe: "ppm planning around the push it is given (as on QEMU's own scanner: the proxy), not ordering its own", load: async () => (await import("./ppm-policy.js")).createPpmGivenPush },
  "history-push": { describe: "ppm's push order (Hines' bubbling with the history's replay) and no pages with a fault: ppm without its engine", load: async () => (await import("./history-push.js")).createHistoryPush, simulatorOnly: true },
  "ppm-page": { describe: "PPM engine, absolute-page alphabet", load: async () => (await import("./ppm.js")).createPpmPage },
  "ppm-delta": { describe: "PPM engine, delta alphabet", load: async () => (await import("./ppm.js")).createPpmDelta },
  "ppm-hybrid": { describe: "PPM engine, hybrid page/delta alphabet", load: async () => (await import("./ppm.js")).createPpmHybrid },
  "oracle-push": { describe: "no predictions; the push in true future order (the bound of push order)", load: async () => (await import("./oracle.js")).createOraclePush, simulatorOnly: true },
  "oracle-history-push": { describe: "no predictions; the push in true future order of the pages the history holds (the bound of a history-replaying push)", load: async () => (await import("./oracle.js")).createOracleHistoryPush, simulatorOnly: true },
  oracle: { describe: "the next pages in true future order (upper bound)", load: async () => (await import("./oracle.js")).createOracle, simulatorOnly: true },
};

export const STRATEGY_NAMES = Object.keys(STRATEGIES);

/** The strategies a live source can run: not those that read the future, which only the simulator has. */
export const LIVE_STRATEGY_NAMES = STRATEGY_NAMES.filter((n) => !STRATEGIES[n].simulatorOnly);

export function isStrategyName(s: string): boolean {
  return Object.prototype.hasOwnProperty.call(STRATEGIES, s);
}

/** Build a strategy by name (rejects an unknown name with the list of known ones). */
export async function createStrategy(name: string, ctx: SimStrategyContext): Promise<SimStrategy> {
  const entry = STRATEGIES[name];
  if (!entry || !isStrategyName(name)) throw new RangeError(`unknown strategy ${JSON.stringify(name)}; one of ${STRATEGY_NAMES.join(", ")}`);
  const factory = await entry.load();
  return factory(ctx) as Strategy as SimStrategy;
}
