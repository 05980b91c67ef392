/**
 * Background push orders over the migrated pages (the trace's footprint in guest-physical address
 * order). Pages outside the footprint are zero pages a real source sends as a bare header; the push
 * skips them, so "linear" is QEMU's bitmap scan with zero pages elided.
 *
 *   none    nothing is pushed while the guest runs (what is left is flushed when it finishes)
 *   linear  ascending address order
 *   qemu    ascending, but after each fault the scanner jumps to the first page after the faulted one
 *           (QEMU's postcopy spatial hint)
 *   hines   Hines & Gopalan's bubbling: outward from the latest fault, two pages forward for each one
 *           backward, re-centring on every fault; when both edges are exhausted, ascending order
 */
import { lowerBound } from "../util/search.js";
export type PushMode = "none" | "linear" | "qemu" | "hines";
export const PUSH_MODES: readonly PushMode[] = ["none", "linear", "qemu", "hines"];

export interface PushOrder {
  /** The next page to push whose state is 0 (not yet committed), or -1 when none is left. */
  next(state: Uint8Array): number;
  /** A fault on `page` reached the source. */
  onFault(page: number): void;
}


export function createPush(mode: PushMode, footprint: Uint32Array): PushOrder {
  const n = footprint.length;
  // `low`: every footprint page below this index is committed; the scan restarts there after a wrap.
  let low = 0;
  const fromLow = (state: Uint8Array): number => {
    while (low < n && state[footprint[low]] !== 0) low++;
    return low < n ? footprint[low++] : -1;
  };
  if (mode === "none") return { next: () => -1, onFault: () => undefined };
  if (mode === "linear") return { next: fromLow, onFault: () => undefined };
  if (mode === "qemu") {
    let cur = 0;
    return {
      next(state) {
        while (cur < n && state[footprint[cur]] !== 0) cur++;
        if (cur < n) return footprint[cur++];
        return fromLow(state);
      },
      onFault(page) { cur = lowerBound(footprint, page + 1); },
    };
  }
  if (mode === "hines") {
    let f = n, b = -1, turn = 0;
    return {
      next(state) {
        for (;;) {
          const fwd = turn < 2;
          if (fwd && f < n) {
            turn++;
            const p = footprint[f++];
            if (state[p] === 0) return p;
            continue;
          }
          if (!fwd && b >= 0) {
            turn = 0;
            const p = footprint[b--];
            if (state[p] === 0) return p;
            continue;
          }
          if (f >= n && b < 0) return fromLow(state);
          turn = fwd ? 2 : 0; // one side exhausted: use the other
        }
      },
      onFault(page) { const c = lowerBound(footprint, page); f = c; b = c - 1; turn = 0; },
    };
  }
  throw new RangeError(`push must be one of ${PUSH_MODES.join(", ")}, got ${JSON.stringify(mode)}`);
}
