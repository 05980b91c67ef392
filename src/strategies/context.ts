/**
 * What the simulator gives a strategy beyond StrategyContext: the number of vCPU streams (for
 * per-stream models) and, for the oracle only, the true future (guest-physical pages after
 * switch-over, in trace order, with their streams). No other strategy may look at `future`.
 */
import type { Strategy, StrategyContext } from "./types.js";
import type { PushMode, PushOrder } from "../sim/push.js";
import type { HistoryKind } from "../history/sources.js";

export interface FutureTrace {
  readonly pages: Uint32Array;
  readonly streams: Uint16Array;
}

export interface SimStrategyContext extends StrategyContext {
  /** Distinct stream ids are below this. */
  streams?: number;
  future?: FutureTrace;
  /** The background push that runs beside the fault path (what a push-aware strategy plans around). */
  push?: PushMode;
  /** What train() will receive (src/history/sources.ts): every access (`full`, the default) or a deduplicated record. */
  history?: HistoryKind;
}

/** A strategy that is defined by a background push order (qemu, hines) says so here. */
export type SimStrategy = Strategy & {
  readonly push?: PushMode;
  /** A strategy that reorders the push it is given (where the source owns the push): the order to run instead. */
  steerPush?(base: PushOrder): PushOrder;
};
