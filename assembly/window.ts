// Successor windows: a wide context's first SCAN successors, packed.
//
// Scoring a context reads its SCAN most recently counted successors (predict.ts). Through the
// sibling list that is one node per successor, each load waiting for the one before, and on a
// fault path whose caches the guest has just run over, one cache miss each: the profile put 80% of
// scoring on that load. A window keeps the same successors, in the same order, as a symbol array
// (one cache line) and a count array (another): two independent misses for the whole list. Beside
// them, the successors' node ids: the search then finds the next state's contexts (the children of
// the contexts it has just scored) in the lines it already holds, not in the hash index (childInWindow).
//
// Only contexts with WIN_MIN or more children get one (1-3% of the contexts of the real traces'
// models, and nearly all of the successors the search walks); N_WIN counts a narrower context's
// children so that the WIN_MIN-th is noticed without a walk. Windows are a cache of the lists: every
// change of a list's order or counts updates its window here (increment: one context, no walk;
// ageing and pruning: refreshWindow from the list), so scoring from either gives the same output.
// The window arena is fixed (windowSlots); when it is empty a wide context is marked WIN_WIDE and
// scored from its list, until a prune refreshes every context.
import {
  oWin, gWinSlots, N_CHILD, N_SIBLING, N_SYMBOL, N_COUNT, N_WIN, WIN_MIN, WIN_WIDE,
  WIN_BYTES, W_SYMBOL, W_ID, W_COUNT, W_N, W_OWNER, SCAN, H_WNEXT, H_WFREE, H_WUSED, hdr32, setHdr32,
} from "./layout";
import { nodeAddr as node } from "./trie";

@inline export function winAddr(w: u32): usize { return oWin + <usize>w * WIN_BYTES; }
/** Whether an N_WIN value names a window. */
@inline export function isWindow(f: u32): bool { return f >= WIN_MIN && f != WIN_WIDE; }

function takeWindow(): i32 {
  let w: u32;
  const free = hdr32(H_WFREE);
  if (free != 0) {
    w = free - 1;
    setHdr32(H_WFREE, load<u32>(winAddr(w) + W_OWNER));
  } else {
    w = hdr32(H_WNEXT);
    if (w >= gWinSlots) return -1;
    setHdr32(H_WNEXT, w + 1);
  }
  setHdr32(H_WUSED, hdr32(H_WUSED) + 1);
  return <i32>w;
}

function releaseWindow(w: u32): void {
  const a = winAddr(w);
  store<u32>(a + W_N, 0);
  store<u32>(a + W_OWNER, hdr32(H_WFREE));
  setHdr32(H_WFREE, w + 1);
  setHdr32(H_WUSED, hdr32(H_WUSED) - 1);
}

/** Copy `ctx`'s first SCAN successors (it has at least WIN_MIN) into window w. */
function fillWindow(ctx: u32, w: u32): void {
  const a = winAddr(w);
  let n: u32 = 0;
  for (let c = load<u32>(node(ctx) + N_CHILD); c != 0 && n < SCAN; c = load<u32>(node(c) + N_SIBLING)) {
    store<u32>(a + W_SYMBOL + (<usize>n << 2), load<u32>(node(c) + N_SYMBOL));
    store<u32>(a + W_ID + (<usize>n << 2), c);
    store<u16>(a + W_COUNT + (<usize>n << 1), load<u16>(node(c) + N_COUNT));
    n++;
  }
  store<u32>(a + W_N, n);
  store<u32>(a + W_OWNER, ctx);
}

/** Give wide context `ctx` a window filled from its list, or mark it WIN_WIDE when none is free. */
function openWindow(ctx: u32): void {
  const w = takeWindow();
  if (w < 0) { store<u32>(node(ctx) + N_WIN, WIN_WIDE); return; }
  store<u32>(node(ctx) + N_WIN, WIN_MIN + <u32>w);
  fillWindow(ctx, <u32>w);
}

/** Entries [0, m) of window `a` move one place down; entry 0 becomes (symbol, id, count). */
@inline function shiftIn(a: usize, m: u32, symbol: u32, id: u32, count: u32): void {
  // A loop, not memory.copy: V8 calls out of the Wasm code for memory.copy, costly for a few bytes.
  for (let j = m; j > 0; j--) {
    store<u32>(a + W_SYMBOL + (<usize>j << 2), load<u32>(a + W_SYMBOL + (<usize>(j - 1) << 2)));
    store<u32>(a + W_ID + (<usize>j << 2), load<u32>(a + W_ID + (<usize>(j - 1) << 2)));
    store<u16>(a + W_COUNT + (<usize>j << 1), load<u16>(a + W_COUNT + (<usize>(j - 1) << 1)));
  }
  store<u32>(a + W_SYMBOL, symbol);
  store<u32>(a + W_ID, id);
  store<u16>(a + W_COUNT, count);
}

/** The entry of `symbol` among the n of window `a`, or n. */
@inline function indexIn(a: usize, n: u32, symbol: u32): u32 {
  let j: u32 = 0;
  while (j < n && load<u32>(a + W_SYMBOL + (<usize>j << 2)) != symbol) j++;
  return j;
}

/** `ctx` gained a child `id`, now its first, counted `count` (the page root is WIN_WIDE: nothing to do). */
export function windowAdded(ctx: u32, symbol: u32, id: u32, count: u32): void {
  const f = load<u32>(node(ctx) + N_WIN);
  if (f < WIN_MIN - 1) { store<u32>(node(ctx) + N_WIN, f + 1); return; }
  if (f == WIN_MIN - 1) { openWindow(ctx); return; }
  if (f == WIN_WIDE) return;
  const a = winAddr(f - WIN_MIN);
  const n = load<u32>(a + W_N);
  const m = n < SCAN ? n : SCAN - 1;
  shiftIn(a, m, symbol, id, count);
  store<u32>(a + W_N, m + 1);
}

/** `ctx`'s child `id` (`symbol`) was counted (now `count`) and moved to the front of its list. */
export function windowCounted(ctx: u32, symbol: u32, id: u32, count: u32): void {
  const f = load<u32>(node(ctx) + N_WIN);
  if (!isWindow(f)) return;
  const a = winAddr(f - WIN_MIN);
  const n = load<u32>(a + W_N);
  const j = indexIn(a, n, symbol);
  // Not in the window: it came from beyond the first SCAN (the window is full); the last one drops.
  shiftIn(a, j < n ? j : n - 1, symbol, id, count);
}

/** Bring `ctx`'s N_WIN and window in line with its list after counts were halved or children dropped. */
export function refreshWindow(ctx: u32): void {
  let n: u32 = 0;
  for (let c = load<u32>(node(ctx) + N_CHILD); c != 0 && n < WIN_MIN; c = load<u32>(node(c) + N_SIBLING)) n++;
  const f = load<u32>(node(ctx) + N_WIN);
  if (n < WIN_MIN) {
    if (isWindow(f)) releaseWindow(f - WIN_MIN);
    store<u32>(node(ctx) + N_WIN, n);
  } else if (isWindow(f)) {
    fillWindow(ctx, f - WIN_MIN);
  } else {
    openWindow(ctx);
  }
}

/** A node leaves the model: its window, if any, goes back to the free list. */
export function windowFreed(id: u32): void {
  const f = load<u32>(node(id) + N_WIN);
  if (isWindow(f)) releaseWindow(f - WIN_MIN);
  store<u32>(node(id) + N_WIN, 0);
}

/** compact(), before it moves the records: window `f`'s child ids to their new ids (`to` maps them). */
export function windowRenumber(f: u32, to: usize): void {
  if (!isWindow(f)) return;
  const a = winAddr(f - WIN_MIN);
  const n = load<u32>(a + W_N);
  for (let j: u32 = 0; j < n; j++) {
    const at = a + W_ID + (<usize>j << 2);
    store<u32>(at, load<u32>(node(load<u32>(at)) + <usize>to));
  }
}

/** After compact() moved node records: each window names its owner's new id. */
export function windowOwnersMoved(first: u32, end: u32, extra: u32): void {
  for (let id = first; id < end; id++) {
    const f = load<u32>(node(id) + N_WIN);
    if (isWindow(f)) store<u32>(winAddr(f - WIN_MIN) + W_OWNER, id);
  }
  const f = load<u32>(node(extra) + N_WIN);
  if (isWindow(f)) store<u32>(winAddr(f - WIN_MIN) + W_OWNER, extra);
}

/**
 * The child of context `ctx` for `symbol`, or 0, found in the lines the search's scoring of `ctx`
 * has just read where it can be: its window (all of its children when the window is not full), or a
 * narrow context's short list. Otherwise (a wide context past its window) the caller looks it up.
 * Returns WIN_WIDE for "not known here".
 */
export function childInWindow(ctx: u32, symbol: u32): u32 {
  const f = load<u32>(node(ctx) + N_WIN);
  if (f == WIN_WIDE) return WIN_WIDE;
  if (f < WIN_MIN) {
    for (let c = load<u32>(node(ctx) + N_CHILD); c != 0; c = load<u32>(node(c) + N_SIBLING)) {
      if (load<u32>(node(c) + N_SYMBOL) == symbol) return c;
    }
    return 0;
  }
  const a = winAddr(f - WIN_MIN);
  const n = load<u32>(a + W_N);
  const j = indexIn(a, n, symbol);
  if (j < n) return load<u32>(a + W_ID + (<usize>j << 2));
  return n < SCAN ? 0 : WIN_WIDE;
}
