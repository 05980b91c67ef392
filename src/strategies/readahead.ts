/**
 * `readahead`: a Linux-style readahead window (mm/readahead.c in spirit).
 *
 * State: the last window [start, start + size) sent after a fault. A fault that lands inside that
 * window or right after it means the guest is streaming and the window was too short: the window
 * doubles (up to `depth`). A fault elsewhere is a miss of the sequential guess: the window halves (at
 * least one page). Feedback helps too: when at least half of the last window was touched, the next
 * window doubles even if the fault looks random. The window starts at min(4, depth) pages after the
 * faulted page, skipping pages already present.
 */
import type { Strategy, StrategyContext } from "./types.js";

export interface Readahead extends Strategy {
  /** The current window size (for leap's fallback and tests). */
  readonly size: number;
  /** Change the most pages per fault (adaptive depth). */
  setDepth(d: number): void;
}

export function createReadahead(ctx: StrategyContext, name = "readahead"): Readahead {
  const { pageCount } = ctx;
  let depth = ctx.depth;
  const present = new Uint8Array(pageCount);
  const initial = Math.min(4, depth);
  let start = -1, size = 0, hits = 0;
  return {
    name,
    get size() { return size; },
    setDepth(d) { depth = d; if (size > d) size = d; },
    onPresent(p) { if (p < pageCount) present[p] = 1; },
    onTouch(p) { if (p >= start && p < start + size) hits++; },
    onFault(p) {
      if (depth === 0) return [];
      const sequential = start >= 0 && p >= start && p <= start + size;
      if (size === 0) size = initial;
      else if (sequential || hits * 2 >= size) size = Math.min(depth, size * 2);
      else size = Math.max(1, size >> 1);
      hits = 0;
      const out: number[] = [];
      const limit = Math.min(pageCount, p + 1 + 4 * size);
      for (let q = p + 1; q < limit && out.length < size; q++) if (!present[q]) out.push(q);
      start = p + 1;
      return out;
    },
  };
}
