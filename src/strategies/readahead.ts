/**
 * `readahead`: Linux's readahead for page faults on anonymous memory, the VMA-based swap readahead
 * (mm/swap_state.c: `swap_ra_info`, `swap_vma_readahead`; the default since Linux 4.14). A post-copy
 * fault is the same event as a swap-in: anonymous guest memory whose page lives elsewhere.
 *
 * At each fault the window (swap-window.ts) comes from the hits since the previous fault: how many
 * of the pages the previous readaheads brought in were touched (the destination's feedback). Its
 * place: forward from the fault when the fault is right after the last page looked up (the previous
 * fault, or the last read-ahead page touched since: Linux moves the readahead's address on every
 * swap-cache hit), backward when right before it, else centred on it ((window - 1) / 2 pages
 * before). It is clamped to the fault's 2 MiB region (Linux reads the PTEs of one page-table page). Every absent page of it is read; pages
 * already present cost nothing and are not replaced by others. The first fault starts with 4 hits,
 * as Linux's VMA state does ("a small window" to start).
 */
import type { Strategy, StrategyContext } from "./types.js";
import { maxWindowFor, swapinWindow, ReadaheadPages } from "./swap-window.js";

/** Pages per page-table page (2 MiB of 4 KiB pages): the readahead stays within the fault's. */
const PMD_PAGES = 512;

export interface Readahead extends Strategy {
  /** The window of the latest fault, the faulted page included (for tests). */
  readonly size: number;
  /** Change the most pages per fault (adaptive depth). */
  setDepth(d: number): void;
}

export function createReadahead(ctx: StrategyContext, name = "readahead"): Readahead {
  const { pageCount } = ctx;
  let maxWin = maxWindowFor(ctx.depth);
  const pages = new ReadaheadPages(pageCount, 4);
  let prevFault = 0, prevWin = 0;
  return {
    name,
    get size() { return prevWin; },
    setDepth(d) { maxWin = maxWindowFor(d); },
    onPresent: (p) => pages.markPresent(p),
    // A touch of a read-ahead page is a swap-cache hit: Linux counts it and moves the readahead's
    // address to it (`lookup_swap_cache`), so a stream the readahead keeps up with reads forward.
    onTouch: (p) => { pages.touched(p); if (p >= 0 && p < pageCount) prevFault = p; },
    onFault(f) {
      const win = swapinWindow(prevFault, f, pages.takeHits(), maxWin, prevWin, false);
      const prev = prevFault;
      prevFault = f;
      prevWin = win;
      const out: number[] = [];
      if (win <= 1) return out;
      let lo: number, hi: number;
      if (f === prev + 1) { lo = f; hi = f + win; }
      else if (prev === f + 1) { lo = f - win + 1; hi = f + 1; }
      else { const left = (win - 1) >> 1; lo = f - left; hi = f + win - left; }
      const pmd = f - (f % PMD_PAGES);
      lo = Math.max(lo, pmd, 0);
      hi = Math.min(hi, pmd + PMD_PAGES, pageCount);
      for (let q = lo; q < hi; q++) pages.read(q, f, out);
      return out;
    },
  };
}
