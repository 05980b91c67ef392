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
  oStreams, streamStride, gOrder, gAlpha, gRange, gFilter, oIn, R_PENDING,
  PAGE_ROOT, DELTA_ROOT, ALPHA_PAGE, ALPHA_DELTA, NONE, FAR, H_TRAINED, N_CHILD, N_PARENT, WIN_WIDE, bump,
} from "./layout";
import { increment, bucketOf, nodeAddr, findChild, setDeferPrune } from "./trie";
import { recentlyTouched } from "./lru";
import { childInWindow } from "./window";

@inline export function streamAddr(stream: u32): usize { return oStreams + <usize>stream * streamStride; }
/** Address of the stream's order-k context in alphabet a (0 = page, 1 = delta). */
@inline export function ctxAddr(stream: u32, a: u32, k: u32): usize {
  return streamAddr(stream) + 4 + ((<usize>(a * (gOrder + 1) + k)) << 2);
}

/** The delta symbol from page `from` to page `to`. */
@inline export function deltaSymbol(from: u32, to: u32): u32 {
  // In 64 bits: on a guest of nearly 2^32 pages a 32-bit difference wraps, and a jump across the
  // whole guest would read as a small delta.
  const d = <i64>to - <i64>from;
  return d > <i64>gRange || d < -<i64>gRange ? FAR : <u32>d;
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

// The K + 1 counts the page trie updates are independent lookups (every order's context is known
// before the first), but each is a chain of cache misses (context node, hash bucket, child node) that
// the CPU would take one after the other. Touching all the buckets first, then all the nodes they
// lead to, lets those misses overlap; the updates that follow find their lines in cache. (The delta
// trie is small and stays cached: touching it too measured 10% slower.)
let touched: u32 = 0;
function touchPageLookups(stream: u32, page: u32): void {
  let x: u32 = 0;
  for (let k: u32 = 0; k <= gOrder; k++) {
    const ctx = k == 0 ? PAGE_ROOT : load<u32>(ctxAddr(stream, 0, k));
    if (ctx != 0) x += load<u32>(bucketOf(ctx, page)) + load<u32>(nodeAddr(ctx) + N_CHILD);
  }
  for (let k: u32 = 0; k <= gOrder; k++) {
    const ctx = k == 0 ? PAGE_ROOT : load<u32>(ctxAddr(stream, 0, k));
    if (ctx == 0) continue;
    const id = load<u32>(bucketOf(ctx, page)); // in cache now: the second wave's addresses
    if (id != 0) x += load<u32>(nodeAddr(id) + N_PARENT);
  }
  touched += x;
}

/** Learn that `stream` touched `page` next. */
export function learn(page: u32, stream: u32): void {
  const s = streamAddr(stream);
  const last = load<u32>(s);
  if (gAlpha & ALPHA_PAGE) {
    touchPageLookups(stream, page);
    updateAlphabet(stream, 0, PAGE_ROOT, page);
  }
  if (gAlpha & ALPHA_DELTA) learnDelta(stream, last, page);
  store<u32>(s, page);
}

function learnDelta(stream: u32, last: u32, page: u32): void {
  if (last == NONE) {
    // No previous page: the delta context starts empty (only the root).
    for (let k: u32 = 1; k <= gOrder; k++) store<u32>(ctxAddr(stream, 1, k), 0);
  } else {
    updateAlphabet(stream, 1, DELTA_ROOT, deltaSymbol(last, page));
  }
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

// Deferred learning. A fault's prediction needs the stream's new contexts, not the new counts. The
// page trie is the large one (its lookups and updates miss the caches): its contexts are found by
// lookup alone, the prediction runs, and its counting waits (R_PENDING) until the next call that
// uses the model, or maintain(), which the transport calls once the fault's pages are on the wire.
// The delta trie is small and cached, and is counted at once: in a run its contexts before and after
// the fault are the same nodes (+1, +1, +1), so deferring it would change what the prediction sees.
// The page alphabet's prediction sees the counts from before the fault (a context the fault would
// create is empty then, and an empty context offers nothing either way); the model ends up as if the
// fault had been learned first, the delta trie before the page trie.

/** Advance `stream` past `page`: count it in the delta trie, find its page-trie contexts, defer the rest. */
export function advance(page: u32, stream: u32): void {
  const s = streamAddr(stream);
  const last = load<u32>(s);
  if (gAlpha & ALPHA_DELTA) {
    setDeferPrune(true);
    learnDelta(stream, last, page);
    setDeferPrune(false);
  }
  if (gAlpha & ALPHA_PAGE) {
    memory.copy(R_PENDING + 12, ctxAddr(stream, 0, 0), (<usize>gOrder + 1) << 2);
    store<u32>(R_PENDING + 4, page);
    store<u32>(R_PENDING + 8, stream);
    store<u32>(R_PENDING, 1);
    // No touchPageLookups here: nextContexts finds most children in windows, so touching every
    // order's hash bucket first only adds misses (measured 0.93-0.95x without it on 1.3M contexts).
    const ctxs = ctxAddr(stream, 0, 0);
    nextContexts(ctxs, ctxs, PAGE_ROOT, page);
  }
  store<u32>(s, page);
}

/**
 * The contexts after `symbol`, without learning: for each order, the child of the order below (the
 * root's for order 1), or 0. `from` and `to` are order-0 slots of u32 context arrays (a stream's or
 * a search state's, one alphabet); they may be the same (orders are done from the highest down).
 */
export function nextContexts(from: usize, to: usize, root: u32, symbol: u32): void {
  for (let k = <i32>gOrder - 1; k >= 0; k--) {
    const ctx = k == 0 ? root : load<u32>(from + (<usize>k << 2));
    let c: u32 = 0;
    if (ctx != 0) {
      // A context's window (or short list) usually holds the child, in lines scoring has just read;
      // the hash index (a bucket, then a node: two misses) only when it cannot tell.
      c = childInWindow(ctx, symbol);
      if (c == WIN_WIDE) c = findChild(ctx, symbol);
    }
    store<u32>(to + (<usize>(k + 1) << 2), c);
  }
}

/** Count the fault whose page-trie learning advance() deferred, if any (as the fault path: no prune). */
export function settle(): void {
  if (load<u32>(R_PENDING) == 0) return;
  store<u32>(R_PENDING, 0);
  const stream = load<u32>(R_PENDING + 8);
  const page = load<u32>(R_PENDING + 4);
  memory.copy(ctxAddr(stream, 0, 0), R_PENDING + 12, (<usize>gOrder + 1) << 2);
  setDeferPrune(true);
  touchPageLookups(stream, page);
  updateAlphabet(stream, 0, PAGE_ROOT, page);
  setDeferPrune(false);
}

/** Forget a deferred learning (a new model, or an image from outside: its ids are not trusted). */
export function dropPending(): void { store<u32>(R_PENDING, 0); }
