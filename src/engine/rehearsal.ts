/**
 * Switch-over rehearsal: what `train` learns besides the history's LRU misses.
 *
 * Post-copy serves the first touches that follow a switch-over. A history can say what those look
 * like: had the switch-over happened `len` accesses before the end of the history, the faults would
 * have been the pages of that suffix in order of first touch. `train` learns that sequence for
 * suffixes of growing length (4096, 6144, 8192, 12288, ... accesses, up to half the history), shortest
 * first, so the recent past, which every suffix contains, weighs most. The LRU-filtered history alone
 * cannot teach this: a hot page never misses the LRU filter, yet after a switch-over the hot set is
 * the first thing to fault, in an order only first touches show.
 *
 * A suffix whose distinct pages exceed REHEARSAL_PAGES ends the rehearsal (the core's scratch
 * tables are sized for that at creation); it and longer ones are not learned.
 */
export const REHEARSAL_MIN = 4096;
export const REHEARSAL_PAGES = 16384;

/** Suffix lengths rehearsed for a history of n pages, shortest first: 1, 1.5, 2, 3, 4, 6, ... x REHEARSAL_MIN, at most n / 2. */
export function rehearsalLengths(n: number): number[] {
  const out: number[] = [];
  for (let k = 0; ; k++) {
    const base = REHEARSAL_MIN * 2 ** (k >> 1);
    const len = k & 1 ? base + base / 2 : base;
    if (len > n / 2) return out;
    out.push(len);
  }
}
