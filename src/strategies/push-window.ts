/**
 * Where the background push stands, as the source-side strategy can know it: which absent pages it
 * will deliver soon anyway. A prediction of such a page buys little (the push brings it within a few
 * page times) and costs its slot on the link, so the `ppm` strategy does not spend its depth on them.
 *
 *   qemu    after each fault the scanner continues at the page after the faulted one: the window is
 *           the `size` pages after the latest fault
 *   linear  the scanner walks up from the lowest page: the window is the `size` pages after the
 *           highest page it has pushed so far (pages committed neither by a fault nor a prediction)
 *   hines   bubbling around the latest fault, a page back then a page forward: the window's first
 *           ceil(size / 2) pages before it, the rest after it
 *   none    no window
 */
import type { PushMode } from "../sim/push.js";

export interface PushWindow {
  /** The page `p` will arrive by the push within the window. */
  covers(p: number): boolean;
  /** A fault on `p` reached the source. */
  onFault(p: number): void;
  /** The source committed `p` by the push (not by a fault or a prediction). */
  onPushed(p: number): void;
}

export function createPushWindow(mode: PushMode, size: number): PushWindow {
  let lo = 0, hi = -1; // covered: lo <= p <= hi
  const none = { covers: () => false, onFault: () => undefined, onPushed: () => undefined };
  if (mode === "none" || size <= 0) return none;
  if (mode === "qemu") return { covers: (p) => p >= lo && p <= hi, onFault(p) { lo = p + 1; hi = p + size; }, onPushed: () => undefined };
  if (mode === "hines") {
    const back = Math.ceil(size / 2); // p-1 goes first: an odd window reaches one further back
    return { covers: (p) => p >= lo && p <= hi, onFault(p) { lo = p - back; hi = p + size - back; }, onPushed: () => undefined };
  }
  // linear: the scanner's position is the highest page it pushed.
  let top = -1;
  return {
    covers: (p) => p > top && p <= top + size,
    onFault: () => undefined,
    onPushed(p) { if (p > top) top = p; },
  };
}
