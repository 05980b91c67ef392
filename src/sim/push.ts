/**
 * Background push orders over the migrated pages (the trace's footprint in guest-physical address
 * order). Pages outside the footprint are zero pages a real source sends as a bare header; the push
 * skips them, so "linear" is QEMU's bitmap scan with zero pages elided.
 *
 *   none    nothing is pushed while the guest runs (what is left is flushed when it finishes)
 *   linear  ascending address order
 *   qemu    ascending, but after each fault the scanner jumps to the first page after the faulted one
 *           (QEMU's postcopy spatial hint)
 *   hines   Hines & Gopalan's bubbling (VEE'09, the single pivot): outward from the latest fault p,
 *           a page on each side in turn, p-1, p+1, p-2, p+2, ... (each step of the paper's loop grows
 *           the bubble by its left page, then its right one), re-centring on every fault; when both
 *           edges are exhausted, ascending order
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
    let f = n, b = -1, fwd = false;
    return {
      next(state) {
        for (;;) {
          if (fwd && f < n) {
            fwd = false;
            const p = footprint[f++];
            if (state[p] === 0) return p;
            continue;
          }
          if (!fwd && b >= 0) {
            fwd = true;
            const p = footprint[b--];
            if (state[p] === 0) return p;
            continue;
          }
          if (f >= n && b < 0) return fromLow(state);
          fwd = !fwd; // one side exhausted: use the other
        }
      },
      onFault(page) {
        const c = lowerBound(footprint, page);
        f = c < n && footprint[c] === page ? c + 1 : c; // the pivot itself went with the fault
        b = c - 1;
        fwd = false;
      },
    };
  }
  throw new RangeError(`push must be one of ${PUSH_MODES.join(", ")}, got ${JSON.stringify(mode)}`);
}
