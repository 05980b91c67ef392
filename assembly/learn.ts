// Learning: each stream (vCPU) keeps its previous page and its current context in both tries, over
// one shared set of statistics. A new page of a stream is counted as a successor of every order of
// the stream's context (orders K..0; order 0 is the root), and the child reached from order k becomes
// the stream's order k+1 context. Orders are updated from the highest down so that a stream record
// can be rewritten in place.
//
// train() first passes the history through a small LRU filter: a page still among the `filter` most
// recently touched pages can never fault in post-copy, so only the misses are learned. The model then
// learns the stream it will serve (faults are misses), not the ping-pong between hot pages.
import {
  oStreams, streamStride, gOrder, gAlpha, gRange, gFilter, oLru, oIn,
  PAGE_ROOT, DELTA_ROOT, NONE, FAR, H_TICK, H_TRAINED, hdr64, setHdr64, bump,
} from "./layout";
import { increment } from "./trie";

@inline export function streamAddr(stream: u32): usize { return oStreams + <usize>stream * streamStride; }
/** Address of the stream's order-k context in alphabet a (0 = page, 1 = delta). */
@inline export function ctxAddr(stream: u32, a: u32, k: u32): usize {
  return streamAddr(stream) + 4 + ((<usize>(a * (gOrder + 1) + k)) << 2);
}

/** The delta symbol from page `from` to page `to`. */
@inline export function deltaSymbol(from: u32, to: u32): u32 {
  const d = <i32>(to - from);
  return d > gRange || d < -gRange ? FAR : <u32>d;
}

function updateAlphabet(stream: u32, a: u32, root: u32, symbol: u32): void {
  const K = gOrder;
  const top = load<u32>(ctxAddr(stream, a, K));
  if (top != 0) increment(top, symbol);
  for (let k = <i32>K - 1; k >= 0; k--) {
    const ctx = k == 0 ? root : load<u32>(ctxAddr(stream, a, <u32>k));
    store<u32>(ctxAddr(stream, a, <u32>k + 1), ctx != 0 ? increment(ctx, symbol) : 0);
  }
}

/** Learn that `stream` touched `page` next. */
export function learn(page: u32, stream: u32): void {
  const s = streamAddr(stream);
  const last = load<u32>(s);
  if (gAlpha & 1) updateAlphabet(stream, 0, PAGE_ROOT, page);
  if (gAlpha & 2) {
    if (last == NONE) {
      // No previous page: the delta context starts empty (only the root).
      for (let k: u32 = 1; k <= gOrder; k++) store<u32>(ctxAddr(stream, 1, k), 0);
    } else {
      updateAlphabet(stream, 1, DELTA_ROOT, deltaSymbol(last, page));
    }
  }
  store<u32>(s, page);
}

/** True when `page` is among the `filter` most recently touched pages (and refreshes it). */
function recentlyTouched(page: u32): bool {
  const n = gFilter;
  const tick = hdr64(H_TICK) + 1;
  setHdr64(H_TICK, tick);
  const pages = oLru;
  const stamps = oLru + (<usize>n << 2);
  let oldest: u32 = 0;
  let oldestStamp: f64 = Infinity;
  for (let i: u32 = 0; i < n; i++) {
    if (load<u32>(pages + (<usize>i << 2)) == page) {
      store<f64>(stamps + (<usize>i << 3), tick);
      return true;
    }
  }
  for (let i: u32 = 0; i < n; i++) {
    const st = load<f64>(stamps + (<usize>i << 3));
    if (st < oldestStamp) { oldestStamp = st; oldest = i; }
  }
  store<u32>(pages + (<usize>oldest << 2), page);
  store<f64>(stamps + (<usize>oldest << 3), tick);
  return false;
}

/** Learn the misses among the `count` pages staged in the input buffer. */
export function trainBatch(count: u32, stream: u32): void {
  for (let i: u32 = 0; i < count; i++) {
    const page = load<u32>(oIn + (<usize>i << 2));
    if (gFilter != 0 && recentlyTouched(page)) continue;
    learn(page, stream);
  }
  bump(H_TRAINED, <f64>count);
}
