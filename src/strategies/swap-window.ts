/**
 * The prefetch window of Linux's swap-in readahead (mm/swap_state.c, `__swapin_nr_pages`), which
 * Leap reuses: how many pages (the faulted one included) the next fault reads, from how many pages
 * the previous readahead brought in were touched since ("hits").
 *
 *  - hits + 2 pages, rounded up to a power of two of at least 4;
 *  - Linux only: with no hit, 2 pages when the fault is next to the previous one, else 1 (no
 *    readahead at all); Leap always rounds up (its own prefetcher judges the pattern);
 *  - at most `maxPages` (1 << page_cluster: 8 by default), and never under half the previous
 *    window, so that a burst of misses does not shrink it at once.
 *
 * Also the bookkeeping both need: which absent pages a readahead sent (Linux's PG_readahead flag,
 * cleared by the first touch, which counts a hit), and the address-space state of each page.
 */

/** The largest power of two <= depth + 1 (the faulted page is part of the window): 8 for depth 8. */
export function maxWindowFor(depth: number): number {
  let w = 1;
  while (w * 2 <= depth + 1) w *= 2;
  return w;
}

/** `__swapin_nr_pages`: the next window from the previous fault, the hits and the previous window. */
export function swapinWindow(prevFault: number, fault: number, hits: number, maxPages: number, prevWindow: number, alwaysRound: boolean): number {
  if (maxPages <= 1) return 1;
  let pages = hits + 2;
  if (pages === 2 && !alwaysRound) {
    if (fault !== prevFault + 1 && fault !== prevFault - 1) pages = 1;
  } else {
    let roundup = 4;
    while (roundup < pages) roundup *= 2;
    pages = roundup;
  }
  if (pages > maxPages) pages = maxPages;
  const lastRa = prevWindow >> 1;
  if (pages < lastRa) pages = lastRa;
  return pages;
}

/** Pages present at the destination (or on the wire), and the readahead flag of pages a readahead sent. */
export class ReadaheadPages {
  private readonly present: Uint8Array;
  private readonly flagged: Uint8Array;
  /** Flagged pages touched since the last takeHits(). */
  private hits: number;

  constructor(readonly pageCount: number, initialHits: number) {
    this.present = new Uint8Array(pageCount);
    this.flagged = new Uint8Array(pageCount);
    this.hits = initialHits;
  }

  markPresent(p: number): void { if (p >= 0 && p < this.pageCount) this.present[p] = 1; }

  /** A touch the destination reported: the first touch of a flagged page is a hit. */
  touched(p: number): void {
    if (p >= 0 && p < this.pageCount && this.flagged[p] === 1) { this.flagged[p] = 0; this.hits++; }
  }

  /** The hits since the last call (and start counting again). */
  takeHits(): number { const h = this.hits; this.hits = 0; return h; }

  /** Append page q to `out` if it is a page of the guest, not the fault and not present; flag it. */
  read(q: number, fault: number, out: number[]): void {
    if (q < 0 || q >= this.pageCount || q === fault || this.present[q] === 1 || out.includes(q)) return;
    this.flagged[q] = 1;
    out.push(q);
  }
}
