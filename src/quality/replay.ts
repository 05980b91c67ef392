/**
 * The engine's quality replay (no timing, no background push): the strategy trains on the first
 * `switchAt` of the trace (or on the `history` given: a history source derived from it); then every remaining access is replayed in order. A touched page that is
 * absent is a network fault: the faulted page and the pages the strategy returns become present.
 * With `feedback`, the first touch of a prefetched page is reported to the strategy (onTouch), as a
 * destination piggybacking "touched" bits on its next request would.
 *
 * Demand paging takes one fault per distinct page touched after switch-over; the oracle, which sends
 * the next `depth` pages of the true future with every fault, takes about 1/(depth+1) of that.
 */
import type { Strategy } from "../strategies/types.js";

export interface ReplayOptions {
  switchAt?: number;
  feedback?: boolean;
  /**
   * What train() receives: undefined, the trace before the switch-over (every access); an array, that
   * history instead (a history source, src/history/sources.ts); null, no train() call at all.
   */
  history?: Uint32Array | null;
}

export interface ReplayResult {
  faults: number;
  /** Faults of plain demand paging: distinct pages touched after switch-over. */
  demandFaults: number;
  /** faults / demandFaults, in percent. */
  percentOfDemand: number;
  /** Pages sent along with faults. */
  prefetched: number;
  /** Prefetched pages touched before the end / prefetched pages. */
  accuracy: number;
}

export function replay(pages: Uint32Array, pageCount: number, strategy: Strategy, opts: ReplayOptions = {}): ReplayResult {
  const switchAt = opts.switchAt ?? 0.3;
  if (!(switchAt >= 0 && switchAt < 1)) throw new RangeError(`switchAt must be in [0, 1), got ${switchAt}`);
  const split = Math.floor(pages.length * switchAt);
  const history = opts.history === undefined ? pages.subarray(0, split) : opts.history;
  if (history !== null) strategy.train?.(history);
  const present = new Uint8Array(pageCount);
  const prefetched = new Uint8Array(pageCount);
  let faults = 0, sent = 0, used = 0, demand = 0;
  for (let i = split; i < pages.length; i++) {
    const p = pages[i];
    if (present[p]) {
      if (prefetched[p] === 1) {
        prefetched[p] = 2;
        used++;
        demand++;
        if (opts.feedback) strategy.onTouch?.(p, 0);
      }
      continue;
    }
    faults++;
    demand++;
    present[p] = 1;
    const more = strategy.onFault(p, 0);
    for (let j = 0; j < more.length; j++) {
      const q = more[j];
      if (present[q]) throw new Error(`${strategy.name} sent page ${q} twice`);
      present[q] = 1;
      prefetched[q] = 1;
      sent++;
    }
    strategy.maintain?.();
  }
  return { faults, demandFaults: demand, percentOfDemand: demand ? (100 * faults) / demand : 0, prefetched: sent, accuracy: sent ? used / sent : 0 };
}
