/**
 * `leap`: Leap's prefetcher (Al Maruf & Chowdhury, ATC'20), as its kernel code does it
 * (mm/swap_state.c of the Leap patch: `log_swap_trend`, `find_trend`, `swapin_readahead`).
 *
 * Every swap-cache lookup is logged in a ring of 32 (page, delta to the previous entry): the faults
 * and the first touches of prefetched pages (the destination's feedback). The ring starts zeroed, so
 * until it fills its unused entries count as delta 0. `find_trend` looks for a majority delta
 * (Boyer-Moore vote, then a count over half) in the newest 8 entries, then 16, then 32.
 * The window is Linux's swap-in window (swap-window.ts) with Leap's change: always rounded up to a
 * power of two of at least 4 pages, from the hits since the previous fault (the global counter
 * starts at 4, as Linux's does). With a trend d the fault reads p + d, p + 2d, ... up to window - 1
 * pages (a trend of 0 reads nothing: every offset is the faulted page); without one, the aligned
 * block of `window` pages around the fault (page 0 excepted, Linux's swap header). Pages already
 * present are skipped, not replaced.
 */
import type { Strategy, StrategyContext } from "./types.js";
import { maxWindowFor, swapinWindow, ReadaheadPages } from "./swap-window.js";

const H = 32;

export function createLeap(ctx: StrategyContext): Strategy & { setDepth(d: number): void } {
  const { pageCount } = ctx;
  let maxPages = maxWindowFor(ctx.depth);
  const pages = new ReadaheadPages(pageCount, 4);
  const delta = new Float64Array(H);
  const entry = new Float64Array(H);
  let head = 0, size = 0, prevWin = 0;

  const log = (p: number) => {
    const prev = (head + H - 1) % H;
    delta[head] = size > 0 ? p - entry[prev] : 0;
    entry[head] = p;
    head = (head + 1) % H;
    if (size < H) size++;
  };

  /** The majority delta of the newest `n` entries (the ring's order, zeros included), or null. */
  const majority = (n: number): number | null => {
    const back = (i: number) => (i + H - 1) % H;
    let maj = back(head), count = 1;
    for (let i = back(maj), j = 1; j < n; i = back(i), j++) {
      if (delta[maj] === delta[i]) count++; else count--;
      if (count === 0) { maj = i; count = 1; }
    }
    const cand = delta[maj];
    let c = 0;
    for (let i = back(head), j = 0; j < n; i = back(i), j++) if (delta[i] === cand) c++;
    return c > Math.floor(n / 2) ? cand : null;
  };

  const trend = (): number | null => {
    for (let n = H / 4; n <= H; n *= 2) {
      const d = majority(n);
      if (d !== null) return d;
    }
    return null;
  };

  return {
    name: "leap",
    setDepth(d) { maxPages = maxWindowFor(d); },
    onPresent: (p) => pages.markPresent(p),
    onTouch(p) { pages.touched(p); log(p); },
    onFault(f) {
      log(f);
      const win = swapinWindow(0, f, pages.takeHits(), maxPages, prevWin, true);
      prevWin = win;
      const mask = win - 1;
      const out: number[] = [];
      const d = trend();
      if (d !== null) {
        for (let k = 1; k <= mask; k++) pages.read(f + k * d, f, out);
        return out;
      }
      const lo = Math.max(1, f - (f % win)), hi = f - (f % win) + mask;
      for (let q = lo; q <= hi; q++) pages.read(q, f, out);
      return out;
    },
  };
}
