// The PPM context trie.
//
// A node is a context: the path from a root to it is the sequence of symbols that forms the context,
// and its children are the symbols seen right after that context, each with a count. Two tries share
// one arena: the page trie (symbols are page numbers) and the delta trie (symbols are the signed
// distance to the previous page of the same stream, with every |delta| > range folded into FAR).
// A hash index over (parent, symbol) finds a child in O(1); children also form a doubly linked list
// in order of last use (most recently counted first; the page root's: newest first), so a
// context's most recent successors are enumerated first and a move to the front is O(1).
//
// Memory is fixed: when a new node is needed and the arena is full, the whole trie is pruned (every
// count halved, zero-count subtrees dropped onto a free list and out of the index) rather than
// trapping.
// Counts also age locally: when a context's children add up to more than the age limit, they are
// halved and those that fall to zero are dropped with their subtrees, so recent behaviour outweighs
// old history and a wide context cannot keep re-triggering its own ageing. The page root is exempt:
// its counts (order 0 of the page alphabet) decide nothing, and ageing it would forget whole contexts.
import {
  oNodes, oBuckets, gSlots, gCapacity, gAgeLimit, oStreams, streamStride, gStreams, gOrder,
  NODE_BYTES, N_PARENT, N_SYMBOL, N_COUNT, N_TOTAL, N_CHILD, N_SIBLING, N_PREV, N_HNEXT, N_WIN, COUNT_MAX,
  PAGE_ROOT, DELTA_ROOT, FIRST_NODE, FREE_MARK, H_NODES, H_NEXTNODE, H_FREE, H_PRUNES, H_PRUNE_DUE,
  hdr32, setHdr32, bump,
} from "./layout";
import { windowAdded, windowCounted, refreshWindow, windowFreed } from "./window";

@inline export function nodeAddr(id: u32): usize { return oNodes + <usize>id * NODE_BYTES; }
@inline export function nGet(id: u32, f: u32): u32 { return load<u32>(nodeAddr(id) + f); }
@inline export function nSet(id: u32, f: u32, v: u32): void { store<u32>(nodeAddr(id) + f, v); }

@inline export function countOf(id: u32): u32 { return load<u16>(nodeAddr(id) + N_COUNT); }
@inline function setCount(id: u32, v: u32): void { store<u16>(nodeAddr(id) + N_COUNT, v); }
@inline function totalOf(id: u32): u32 { return load<u16>(nodeAddr(id) + N_TOTAL); }
@inline function setTotal(id: u32, v: u32): void { store<u16>(nodeAddr(id) + N_TOTAL, v < COUNT_MAX ? v : COUNT_MAX); }

/** Address of the head of the hash bucket of (parent, symbol): bucket h * slots / 2^32. */
@inline export function bucketOf(parent: u32, symbol: u32): usize {
  let h = parent * 0x9e3779b1 ^ (symbol + 0x7f4a7c15) * 0x85ebca77;
  h ^= h >> 15;
  h *= 0x2c1b3c6d;
  h ^= h >> 12;
  return oBuckets + (<usize>((<u64>h * <u64>gSlots) >> 32) << 2);
}

/** The child of `parent` for `symbol`, or 0. */
export function findChild(parent: u32, symbol: u32): u32 {
  let id = load<u32>(bucketOf(parent, symbol));
  while (id != 0) {
    const a = nodeAddr(id);
    if (load<u32>(a + N_PARENT) == parent && load<u32>(a + N_SYMBOL) == symbol) return id;
    id = load<u32>(a + N_HNEXT);
  }
  return 0;
}

function unindexNode(id: u32): void {
  const b = bucketOf(nGet(id, N_PARENT), nGet(id, N_SYMBOL));
  let cur = load<u32>(b);
  if (cur == id) { store<u32>(b, nGet(id, N_HNEXT)); return; }
  while (cur != 0) {
    const next = nGet(cur, N_HNEXT);
    if (next == id) { nSet(cur, N_HNEXT, nGet(id, N_HNEXT)); return; }
    cur = next;
  }
}

export function indexNode(id: u32): void {
  const b = bucketOf(nGet(id, N_PARENT), nGet(id, N_SYMBOL));
  nSet(id, N_HNEXT, load<u32>(b));
  store<u32>(b, id);
}

/** Take a node from the free list or the bump pointer; 0 when the arena is full. */
function allocNode(): u32 {
  const free = hdr32(H_FREE);
  if (free != 0) {
    setHdr32(H_FREE, nGet(free, N_SIBLING));
    return free;
  }
  const next = hdr32(H_NEXTNODE);
  if (next >= FIRST_NODE + gCapacity) return 0;
  setHdr32(H_NEXTNODE, next + 1);
  return next;
}

function unlinkSibling(parent: u32, c: u32): void {
  const prev = nGet(c, N_PREV);
  const next = nGet(c, N_SIBLING);
  if (prev == 0) nSet(parent, N_CHILD, next); else nSet(prev, N_SIBLING, next);
  if (next != 0) nSet(next, N_PREV, prev);
}

function pushFront(parent: u32, c: u32): void {
  const head = nGet(parent, N_CHILD);
  nSet(c, N_PREV, 0);
  nSet(c, N_SIBLING, head);
  if (head != 0) nSet(head, N_PREV, c);
  nSet(parent, N_CHILD, c);
}

/**
 * Set while the core serves the fault path (predictNext, observe): a full arena is then not pruned
 * in the call (an O(model) stall) but flagged (H_PRUNE_DUE) for maintain(); the call goes on without
 * the new context (increment returns 0: the longer orders escape, as after a prune dropped them).
 */
export let deferPrune = false;
export function setDeferPrune(on: bool): void { deferPrune = on; }

/** Count one more `symbol` after context `parent`; creates the child if needed. Returns it, or 0. */
export function increment(parent: u32, symbol: u32): u32 {
  // A context's most recent successor is its first child: a repeat is found without the hash probe
  // (two cache misses saved; the page root's list is not kept in order of use, so it always probes).
  const head = nGet(parent, N_CHILD);
  let id = parent != PAGE_ROOT && head != 0 && nGet(head, N_SYMBOL) == symbol ? head : findChild(parent, symbol);
  const created = id == 0;
  if (created) {
    if (hdr32(H_NODES) >= gCapacity) {
      if (deferPrune) { setHdr32(H_PRUNE_DUE, 1); return 0; }
      prune();
      if (nGet(parent, N_PARENT) == FREE_MARK) return 0; // the context itself was pruned away
    }
    id = allocNode();
    if (id == 0) return 0;
    const a = nodeAddr(id);
    store<u32>(a + N_PARENT, parent);
    store<u32>(a + N_SYMBOL, symbol);
    store<u32>(a + N_COUNT, 0); // count and total
    store<u32>(a + N_CHILD, 0);
    store<u32>(a + N_WIN, 0);
    pushFront(parent, id);
    indexNode(id);
    setHdr32(H_NODES, hdr32(H_NODES) + 1);
  } else if (parent != PAGE_ROOT && nGet(parent, N_CHILD) != id) {
    // (The page root's children are order-1 contexts, never scored: their order decides nothing.)
    unlinkSibling(parent, id);
    pushFront(parent, id);
  }
  const n = countOf(id);
  if (n < COUNT_MAX) setCount(id, n + 1); // saturates only under the page root (see layout)
  if (created) windowAdded(parent, symbol, id, n + 1); // (the page root's: WIN_WIDE, nothing to do)
  else windowCounted(parent, symbol, id, n + 1);
  const total = totalOf(parent) + 1;
  setTotal(parent, total);
  if (total > gAgeLimit && parent != PAGE_ROOT) {
    age(parent);
    if (nGet(id, N_PARENT) == FREE_MARK) return 0;
  }
  return id;
}

/**
 * Ageing of one context: halve its children's counts; children that reach zero are dropped with
 * their subtrees.
 */
function age(parent: u32): void {
  let total: u32 = 0;
  let dropped = false;
  let c = nGet(parent, N_CHILD);
  while (c != 0) {
    const next = nGet(c, N_SIBLING);
    const n = countOf(c) >> 1;
    if (n == 0) {
      unlinkSibling(parent, c);
      freeSubtree(c);
      dropped = true;
    } else {
      setCount(c, n);
      total += n;
    }
    c = next;
  }
  setTotal(parent, total);
  refreshWindow(parent);
  if (dropped) forgetFreedContexts();
}

function freeSubtree(id: u32): void {
  let c = nGet(id, N_CHILD);
  while (c != 0) {
    const next = nGet(c, N_SIBLING);
    freeSubtree(c);
    c = next;
  }
  unindexNode(id);
  freeNode(id);
}

function freeNode(id: u32): void {
  windowFreed(id);
  nSet(id, N_PARENT, FREE_MARK);
  nSet(id, N_SIBLING, hdr32(H_FREE));
  setHdr32(H_FREE, id);
  setHdr32(H_NODES, hdr32(H_NODES) - 1);
}

/**
 * The arena is full: halve every count and drop every node whose count falls to zero, with its
 * subtree. Done in two passes over the arena in id order, not by walking the trie: a walk follows
 * sibling links, one dependent cache miss per node once the free list has scattered the arena.
 * (1) Totals restart, and a node is marked dead (count 0) when its count would halve to zero (<= 1)
 * or an ancestor's would: the walk up is at most K steps, and the upper levels stay cached; an
 * ancestor already marked reads 0, one not yet visited still has its own count, so the test is the
 * same either way. (2) With the hash index emptied, live nodes halve, add to their parent's total
 * and are entered in the index; dead nodes leave a live parent's sibling list (the survivors keep
 * their order) and go to the free list. Ids decide no output, so this drops exactly what a walk would.
 */
export function prune(): void {
  const end = hdr32(H_NEXTNODE);
  setTotal(PAGE_ROOT, 0);
  setTotal(DELTA_ROOT, 0);
  for (let id: u32 = FIRST_NODE; id < end; id++) {
    if (nGet(id, N_PARENT) == FREE_MARK) continue;
    setTotal(id, 0);
    let up = id;
    while (up >= FIRST_NODE && countOf(up) > 1) up = nGet(up, N_PARENT);
    if (up >= FIRST_NODE) setCount(id, 0); // it or an ancestor dies
  }
  memory.fill(oBuckets, 0, <usize>gSlots << 2);
  for (let id: u32 = FIRST_NODE; id < end; id++) {
    const parent = nGet(id, N_PARENT);
    if (parent == FREE_MARK) continue;
    const n = countOf(id);
    if (n != 0) {
      setCount(id, n >> 1);
      setTotal(parent, totalOf(parent) + (n >> 1));
      indexNode(id);
    } else {
      // Out of a live parent's list first (a live parent has a count: halved or not yet); a dead
      // parent's list is never walked again. Freeing keeps the count at zero, so the node's own
      // children still see it dead.
      if (parent < FIRST_NODE || countOf(parent) != 0) unlinkSibling(parent, id);
      freeNode(id);
    }
  }
  // (3) Every surviving context's window from its list (counts halved, children gone).
  refreshWindow(DELTA_ROOT);
  for (let id: u32 = FIRST_NODE; id < end; id++) if (nGet(id, N_PARENT) != FREE_MARK) refreshWindow(id);
  bump(H_PRUNES, 1);
  setHdr32(H_PRUNE_DUE, 0);
  forgetFreedContexts();
}

/** Empty the hash index and enter every live node: one sequential pass, independent cache misses. */
export function rebuildIndex(): void {
  memory.fill(oBuckets, 0, <usize>gSlots << 2);
  const end = hdr32(H_NEXTNODE);
  for (let id: u32 = FIRST_NODE; id < end; id++) {
    if (nGet(id, N_PARENT) != FREE_MARK) indexNode(id);
  }
}

/** Stream contexts that point at dropped nodes escape to shorter orders (the rehearsal's record too). */
function forgetFreedContexts(): void {
  const slots: u32 = 2 * (gOrder + 1);
  for (let s: u32 = 0; s <= gStreams; s++) {
    const base = oStreams + <usize>s * streamStride + 4;
    for (let i: u32 = 0; i < slots; i++) {
      const a = base + (<usize>i << 2);
      const id = load<u32>(a);
      if (id >= FIRST_NODE && nGet(id, N_PARENT) == FREE_MARK) store<u32>(a, 0);
    }
  }
}
