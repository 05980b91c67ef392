// Validation of a memory image before use (restore): a snapshot is untrusted input, and every other
// function of the core trusts the model's structure (ids index the arena, lists end, chains end).
// validateModel() checks the whole model against the invariants the code keeps, in O(model) with
// bounded loops (every walk counts its steps; a walk longer than the node count is a cycle), so a
// hostile image can neither trap nor hang it. It returns 0 or an error code (V_*); validateDetail()
// then says where (a header field offset, a node id, a stream, a bucket, a slot). It reads only.
//
// Checked: the header's configuration fields in range and every section offset equal to what the
// layout walk (index.ts, placeSections) computes for that configuration (the caller has checked
// the configuration against the snapshot's options and the image's length against the layout); the
// counters (finite non-negative integers, present = the bitmap's population); the rehearsal
// registers; the arena: the roots, the free list (in range, acyclic, exactly the free nodes), a
// depth-first walk of both tries from the roots (child/sibling/prev/parent links in range and
// consistent, depth <= order + 1, symbols of the trie's alphabet, counts >= 1, totals = the sum of
// the children's counts, every live node reached once), the hash index (every chain in range,
// acyclic, each node in its own bucket, every live node indexed once); the stream records (last page
// below pageCount or none, contexts 0 or a live node of depth k in the right trie); the LRU filter
// (recency list a permutation of the slots, index entries in range, each page found at its slot);
// the scratch tables (no slot stamped with a generation not yet drawn); the bitmap's padding.
import {
  HEADER, MAGIC, H_MAGIC, H_PRUNE_DUE, H_ORDER, H_ALPHA, H_ESCAPE, H_DEPTH, H_STREAMS, H_CAPACITY, H_PAGECOUNT,
  H_RANGE, H_FILTER, H_LOOKAHEAD, H_AGELIMIT, H_THRESHOLD, H_SLOTS, H_END, H_NODES, H_NEXTNODE, H_FREE,
  H_GEN, H_FAULTS, H_REHEARSED, H_PRESENT, H_RCUR, H_RPREV, H_RFLIP, AGE_LIMIT_MAX, OUT_CAPACITY,
  REHEARSAL_PAGES, REHEARSAL_SLOTS, SCRATCH_SLOTS, NODE_BYTES, N_PARENT, N_SYMBOL, N_COUNT, N_TOTAL,
  N_CHILD, N_SIBLING, N_PREV, N_HNEXT, PAGE_ROOT, DELTA_ROOT, FIRST_NODE, FREE_MARK, NONE, FAR, COUNT_MAX,
  N_WIN, WIN_MIN, WIN_WIDE, W_SYMBOL, W_ID, W_COUNT, W_N, W_OWNER, SCAN, H_WNEXT, H_WFREE, H_WUSED, windowSlots,
  gOrder, gStreams, gPageCount, gRange, gFilter, gLruMask, oStreams, oLru, oSeen, oRehearse,
  oBitmap, oNodes, oBuckets, streamStride, hdr32, hdr64, attachConfig, lruIndexSlots,
} from "./layout";
import { bucketOf } from "./trie";
import { layoutTables, SLOT_BYTES } from "./scratch";
import { isWindow, winAddr } from "./window";

export const V_OK: i32 = 0;
export const V_MAGIC: i32 = 1; // detail: the magic found
export const V_CONFIG: i32 = 2; // detail: header field offset
export const V_LAYOUT: i32 = 3; // detail: header field offset of the section whose offset differs
export const V_MEMORY: i32 = 4; // detail: bytes the layout needs (more than the memory holds)
export const V_COUNTER: i32 = 5; // detail: header field offset
export const V_REHEARSAL: i32 = 6; // detail: header field offset
export const V_ARENA: i32 = 7; // detail: header field offset (nodes, next node, free head)
export const V_ROOT: i32 = 8; // detail: root id
export const V_FREE: i32 = 9; // detail: node id
export const V_LINK: i32 = 10; // detail: node id whose link is out of range or inconsistent
export const V_DEPTH: i32 = 11; // detail: node id
export const V_SYMBOL: i32 = 12; // detail: node id
export const V_COUNT: i32 = 13; // detail: node id (count 0, or total != sum of the children's counts)
export const V_REACH: i32 = 14; // detail: live nodes reached from the roots
export const V_HASH: i32 = 15; // detail: bucket index
export const V_STREAM: i32 = 16; // detail: stream (streams = the rehearsal's record)
export const V_LRU: i32 = 17; // detail: slot or index position
export const V_SCRATCH: i32 = 18; // detail: slot index
export const V_BITMAP: i32 = 19; // detail: present pages counted
export const V_RESERVED: i32 = 20; // detail: byte offset of a non-zero reserved word
export const V_WINDOW: i32 = 21; // detail: node id whose window field or window is wrong (0: the free windows)

let detail: u32 = 0;
export function validateDetail(): u32 { return detail; }
export function setDetail(d: u32): void { detail = d; }
@inline function fail(code: i32, d: u32): i32 { detail = d; return code; }

@inline function ld(id: u32, f: u32): u32 { return load<u32>(oNodes + <usize>id * NODE_BYTES + f); }
@inline function cnt(id: u32): u32 { return load<u16>(oNodes + <usize>id * NODE_BYTES + N_COUNT); }
@inline function tot(id: u32): u32 { return load<u16>(oNodes + <usize>id * NODE_BYTES + N_TOTAL); }

// The arena's extent, set by checkArena: live ids are [FIRST_NODE, end) minus the free ones.
let end: u32 = 0;
let live: u32 = 0;
@inline function isLive(id: u32): bool { return id >= FIRST_NODE && id < end && ld(id, N_PARENT) != FREE_MARK; }

function inRange32(f: u32, lo: u32, hi: u32): bool { const v = hdr32(f); return v >= lo && v <= hi; }

function checkConfig(): i32 {
  if (hdr32(H_MAGIC) != MAGIC) return fail(V_MAGIC, hdr32(H_MAGIC));
  if (!inRange32(H_ORDER, 1, 8)) return fail(V_CONFIG, H_ORDER);
  if (!inRange32(H_ALPHA, 1, 3)) return fail(V_CONFIG, H_ALPHA);
  if (!inRange32(H_ESCAPE, 0, 3)) return fail(V_CONFIG, H_ESCAPE);
  if (!inRange32(H_DEPTH, 0, OUT_CAPACITY)) return fail(V_CONFIG, H_DEPTH);
  if (!inRange32(H_STREAMS, 1, 4096)) return fail(V_CONFIG, H_STREAMS);
  if (!inRange32(H_CAPACITY, 16, 1 << 26)) return fail(V_CONFIG, H_CAPACITY);
  if (!inRange32(H_PAGECOUNT, 1, 0xffffffff)) return fail(V_CONFIG, H_PAGECOUNT);
  if (!inRange32(H_RANGE, 1, 1 << 20)) return fail(V_CONFIG, H_RANGE);
  if (!inRange32(H_FILTER, 0, 1024)) return fail(V_CONFIG, H_FILTER);
  if (!inRange32(H_LOOKAHEAD, 1, 128)) return fail(V_CONFIG, H_LOOKAHEAD);
  if (!inRange32(H_AGELIMIT, 2, AGE_LIMIT_MAX)) return fail(V_CONFIG, H_AGELIMIT);
  const t = hdr64(H_THRESHOLD);
  if (!(t >= 0 && t <= 1)) return fail(V_CONFIG, H_THRESHOLD); // (NaN fails too)
  return V_OK;
}

@inline function isCount(v: f64): bool { return v >= 0 && v <= 9007199254740992 && v == Math.floor(v); }

function checkCounters(): i32 {
  for (let f: u32 = H_FAULTS; f <= H_REHEARSED; f += 8) if (!isCount(hdr64(f))) return fail(V_COUNTER, f);
  if (hdr64(H_PRESENT) > <f64>hdr32(H_PAGECOUNT)) return fail(V_COUNTER, H_PRESENT);
  if (hdr32(H_RCUR) > REHEARSAL_PAGES) return fail(V_REHEARSAL, H_RCUR);
  if (hdr32(H_RPREV) > REHEARSAL_PAGES) return fail(V_REHEARSAL, H_RPREV);
  if (hdr32(H_RFLIP) > 1) return fail(V_REHEARSAL, H_RFLIP);
  // The arena's counters against its capacity.
  const capacity = hdr32(H_CAPACITY);
  if (hdr32(H_SLOTS) != capacity + FIRST_NODE) return fail(V_LAYOUT, H_SLOTS);
  const next = hdr32(H_NEXTNODE);
  if (next < FIRST_NODE || next > FIRST_NODE + capacity) return fail(V_ARENA, H_NEXTNODE);
  if (hdr32(H_NODES) > next - FIRST_NODE) return fail(V_ARENA, H_NODES);
  const free = hdr32(H_FREE);
  if (free != 0 && (free < FIRST_NODE || free >= next)) return fail(V_ARENA, H_FREE);
  // The window arena's counters against its size.
  const wnext = hdr32(H_WNEXT);
  if (wnext > windowSlots(capacity)) return fail(V_ARENA, H_WNEXT);
  if (hdr32(H_WFREE) > wnext) return fail(V_ARENA, H_WFREE);
  if (hdr32(H_WUSED) > wnext) return fail(V_ARENA, H_WUSED);
  return V_OK;
}

/** Bytes no field uses (below the header: zero in every model) and the prune-due flag (0 or 1). */
function checkReserved(): i32 {
  for (let a: usize = 0; a < <usize>HEADER; a += 4) if (load<u32>(a) != 0) return fail(V_RESERVED, <u32>a);
  if (hdr32(H_PRUNE_DUE) > 1) return fail(V_CONFIG, H_PRUNE_DUE); // "its prune-due flag is out of range"
  return V_OK;
}

/** Roots, arena counters, free list. Sets `end` and `live`. */
function checkArena(): i32 {
  end = hdr32(H_NEXTNODE); // in range: checkCounters
  live = hdr32(H_NODES);
  for (let r: u32 = PAGE_ROOT; r <= DELTA_ROOT; r++) {
    if (ld(r, N_PARENT) != 0 || ld(r, N_SIBLING) != 0 || ld(r, N_PREV) != 0 || ld(r, N_HNEXT) != 0) return fail(V_ROOT, r);
    const c = ld(r, N_CHILD);
    if (c != 0 && (c < FIRST_NODE || c >= end)) return fail(V_LINK, r);
  }
  let free: u32 = 0;
  for (let id: u32 = FIRST_NODE; id < end; id++) if (ld(id, N_PARENT) == FREE_MARK) free++;
  if (live != end - FIRST_NODE - free) return fail(V_ARENA, H_NODES);
  let steps: u32 = 0;
  let f = hdr32(H_FREE);
  while (f != 0) {
    if (f < FIRST_NODE || f >= end || ld(f, N_PARENT) != FREE_MARK) return fail(V_FREE, f);
    if (++steps > free) return fail(V_FREE, f); // a cycle
    f = ld(f, N_SIBLING);
  }
  if (steps != free) return fail(V_FREE, 0); // free nodes off the list
  return V_OK;
}

/** A child/sibling link: 0 or a live node. */
@inline function linkOk(id: u32): bool { return id == 0 || isLive(id); }

/** Checks of one node met by the walk at `depth` in trie `trie` (0 page, 1 delta). */
function checkNode(id: u32, depth: u32, trie: u32): i32 {
  if (depth > gOrder + 1) return fail(V_DEPTH, id);
  const sym = ld(id, N_SYMBOL);
  if (trie == 0 ? sym >= gPageCount : sym != FAR && (<i32>sym > gRange || <i32>sym < -gRange)) return fail(V_SYMBOL, id);
  if (cnt(id) == 0) return fail(V_COUNT, id);
  return V_OK;
}

/** The children's counts add up to the node's total (saturating; the page root's is exempt). */
function checkTotal(id: u32): i32 {
  let sum: u32 = 0;
  let steps: u32 = 0;
  for (let c = ld(id, N_CHILD); c != 0; c = ld(c, N_SIBLING)) {
    if (!isLive(c) || ld(c, N_PARENT) != id) return fail(V_LINK, c);
    if (++steps > live) return fail(V_LINK, id); // a cycle
    sum += cnt(c);
  }
  if (id != PAGE_ROOT && tot(id) != (sum < COUNT_MAX ? sum : COUNT_MAX)) return fail(V_COUNT, id);
  return V_OK;
}

/** Stackless depth-first walk of one trie; returns an error code, adds the nodes it meets to `reached`. */
let reached: u32 = 0;
function walkTrie(root: u32, trie: u32): i32 {
  let r = checkTotal(root);
  if (r != V_OK) return r;
  let node = root;
  let depth: u32 = 0;
  for (;;) {
    const c = ld(node, N_CHILD);
    if (c != 0) {
      if (!isLive(c) || ld(c, N_PARENT) != node || ld(c, N_PREV) != 0) return fail(V_LINK, c);
      node = c;
      depth++;
    } else {
      // Up to the nearest ancestor-or-self with a next sibling.
      for (;;) {
        if (node == root) return V_OK;
        const s = ld(node, N_SIBLING);
        if (s != 0) {
          if (!isLive(s) || ld(s, N_PARENT) != ld(node, N_PARENT) || ld(s, N_PREV) != node) return fail(V_LINK, s);
          node = s;
          break;
        }
        node = ld(node, N_PARENT); // consistent with the path: checked on the way down
        depth--;
      }
    }
    if (++reached > live) return fail(V_REACH, reached); // a cycle
    r = checkNode(node, depth, trie);
    if (r != V_OK) return r;
    r = checkTotal(node);
    if (r != V_OK) return r;
  }
  return V_OK;
}

function checkHash(): i32 {
  const slots = hdr32(H_SLOTS);
  let steps: u32 = 0;
  for (let b: u32 = 0; b < slots; b++) {
    const at = oBuckets + (<usize>b << 2);
    let id = load<u32>(at);
    while (id != 0) {
      if (!isLive(id) || bucketOf(ld(id, N_PARENT), ld(id, N_SYMBOL)) != at) return fail(V_HASH, b);
      if (++steps > live) return fail(V_HASH, b); // a cycle
      id = ld(id, N_HNEXT);
    }
  }
  if (steps != live) return fail(V_HASH, slots); // live nodes not indexed
  return V_OK;
}

/** Depth of a live node (<= limit steps up to a root); returns the root in the high bits: root << 8 | depth, or 0. */
function depthOf(id: u32, limit: u32): u32 {
  let d: u32 = 0;
  while (id >= FIRST_NODE) {
    if (!isLive(id) || ++d > limit) return 0;
    id = ld(id, N_PARENT);
  }
  return id << 8 | d;
}

function checkStreams(): i32 {
  const K = gOrder;
  for (let s: u32 = 0; s <= gStreams; s++) {
    const base = oStreams + <usize>s * streamStride;
    const last = load<u32>(base);
    if (last != NONE && last >= gPageCount) return fail(V_STREAM, s);
    for (let a: u32 = 0; a < 2; a++) {
      const root = a == 0 ? PAGE_ROOT : DELTA_ROOT;
      for (let k: u32 = 0; k <= K; k++) {
        const ctx = load<u32>(base + 4 + ((<usize>(a * (K + 1) + k)) << 2));
        if (ctx == 0) continue;
        if (k == 0 || depthOf(ctx, k) != (root << 8 | k)) return fail(V_STREAM, s);
      }
    }
  }
  return V_OK;
}

function checkLru(): i32 {
  const n = gFilter;
  if (n == 0) return V_OK;
  const prevAt = oLru + (<usize>n << 2);
  const head = load<u32>(oLru + (<usize>n << 3));
  const tail = load<u32>(oLru + (<usize>n << 3) + 4);
  const index = oLru + <usize>n * 8 + 8;
  const slots = lruIndexSlots(n);
  const END: u32 = 0xffff;
  if (head >= n || tail >= n) return fail(V_LRU, n);
  // The recency list: from head, n slots, prev links consistent, ending at tail.
  let i = head;
  let prev = END;
  for (let k: u32 = 0; k < n; k++) {
    if (i >= n || <u32>load<u16>(prevAt + (<usize>i << 2)) != prev) return fail(V_LRU, i);
    prev = i;
    i = load<u16>(prevAt + (<usize>i << 2) + 2);
  }
  if (i != END || prev != tail) return fail(V_LRU, tail);
  // Pages, and the index: each non-empty slot's page found (probing from its home) at an entry for it.
  let pages: u32 = 0;
  for (let j: u32 = 0; j < n; j++) {
    const page = load<u32>(oLru + (<usize>j << 2));
    if (page == NONE) continue;
    if (page >= gPageCount) return fail(V_LRU, j);
    pages++;
    let h = page * 0x9e3779b1;
    h ^= h >> 15;
    let at = h & gLruMask;
    let found = false;
    for (let probe: u32 = 0; probe < slots; probe++) {
      const e = load<u32>(index + (<usize>at << 2));
      if (e == 0) break;
      if (e > n) return fail(V_LRU, at);
      if (load<u32>(oLru + (<usize>(e - 1) << 2)) == page) { found = e == j + 1; break; }
      at = (at + 1) & gLruMask;
    }
    if (!found) return fail(V_LRU, j);
  }
  let entries: u32 = 0;
  for (let j: u32 = 0; j < slots; j++) if (load<u32>(index + (<usize>j << 2)) != 0) entries++;
  if (entries != pages) return fail(V_LRU, slots);
  return V_OK;
}

/**
 * Successor windows (window.ts), after the tries passed (lists are sound): every context's N_WIN is
 * its exact child count below WIN_MIN, WIN_WIDE with at least WIN_MIN children, or a window handed
 * out, owned by it and equal to its list's first SCAN (symbol, node, count); the page root's is
 * WIN_WIDE, free nodes' 0; the free windows form a list; owned + free = handed out.
 */
function checkWindowOf(id: u32): i32 {
  const f = ld(id, N_WIN);
  let n: u32 = 0;
  if (isWindow(f)) {
    const w = f - WIN_MIN;
    if (w >= hdr32(H_WNEXT)) return fail(V_WINDOW, id);
    const a = winAddr(w);
    if (load<u32>(a + W_OWNER) != id) return fail(V_WINDOW, id);
    for (let c = ld(id, N_CHILD); c != 0 && n < SCAN; c = ld(c, N_SIBLING)) {
      if (load<u32>(a + W_SYMBOL + (<usize>n << 2)) != ld(c, N_SYMBOL)) return fail(V_WINDOW, id);
      if (load<u32>(a + W_ID + (<usize>n << 2)) != c) return fail(V_WINDOW, id);
      if (<u32>load<u16>(a + W_COUNT + (<usize>n << 1)) != cnt(c)) return fail(V_WINDOW, id);
      n++;
    }
    if (n < WIN_MIN || load<u32>(a + W_N) != n) return fail(V_WINDOW, id);
    owned++;
    return V_OK;
  }
  for (let c = ld(id, N_CHILD); c != 0 && n < WIN_MIN; c = ld(c, N_SIBLING)) n++;
  if (f == WIN_WIDE ? n < WIN_MIN : f != n) return fail(V_WINDOW, id);
  return V_OK;
}

let owned: u32 = 0;
function checkWindows(): i32 {
  if (ld(PAGE_ROOT, N_WIN) != WIN_WIDE) return fail(V_WINDOW, PAGE_ROOT);
  owned = 0;
  let r = checkWindowOf(DELTA_ROOT);
  if (r != V_OK) return r;
  for (let id: u32 = FIRST_NODE; id < end; id++) {
    if (ld(id, N_PARENT) == FREE_MARK) { if (ld(id, N_WIN) != 0) return fail(V_WINDOW, id); continue; }
    r = checkWindowOf(id);
    if (r != V_OK) return r;
  }
  const handed = hdr32(H_WNEXT);
  let free: u32 = 0;
  for (let f = hdr32(H_WFREE); f != 0; f = load<u32>(winAddr(f - 1) + W_OWNER)) {
    if (f > handed || load<u32>(winAddr(f - 1) + W_N) != 0 || ++free > handed) return fail(V_WINDOW, 0);
  }
  if (owned != hdr32(H_WUSED) || owned + free != handed) return fail(V_WINDOW, 0);
  return V_OK;
}

function checkScratch(): i32 {
  const g = hdr32(H_GEN);
  const searchSlots: u32 = SCRATCH_SLOTS * 3;
  for (let i: u32 = 0; i < searchSlots; i++) {
    if (load<u32>(oSeen + <usize>i * SLOT_BYTES + 4) > g) return fail(V_SCRATCH, i);
  }
  for (let i: u32 = 0; i < REHEARSAL_SLOTS; i++) {
    if (load<u32>(oRehearse + <usize>i * SLOT_BYTES + 4) > g) return fail(V_SCRATCH, searchSlots + i);
  }
  return V_OK;
}

function checkBitmap(): i32 {
  const n = gPageCount;
  const full: usize = <usize>(n >> 3); // whole bytes of pages
  const bytes: usize = <usize>(((<u64>n + 7) >> 3) + 7) & ~7; // the section (align8)
  let count: u64 = 0;
  let a: usize = 0;
  for (; a + 8 <= full; a += 8) count += popcnt<u64>(load<u64>(oBitmap + a));
  for (; a < full; a++) count += <u64>popcnt<u32>(<u32>load<u8>(oBitmap + a));
  if ((n & 7) != 0) {
    const last = <u32>load<u8>(oBitmap + full);
    if ((last >> (n & 7)) != 0) return fail(V_BITMAP, <u32>count); // bits past pageCount
    count += <u64>popcnt<u32>(last);
    a = full + 1;
  }
  for (; a < bytes; a++) if (load<u8>(oBitmap + a) != 0) return fail(V_BITMAP, <u32>count);
  if (<f64>count != hdr64(H_PRESENT)) return fail(V_BITMAP, <u32>count);
  return V_OK;
}

/**
 * The structural checks, after the header's (checkHeader, then the layout walk: index.ts) passed and
 * the configuration is attached. Returns 0 or a V_* code.
 */
export function checkModel(): i32 {
  let r = checkArena();
  if (r != V_OK) return r;
  reached = 0;
  r = walkTrie(PAGE_ROOT, 0);
  if (r == V_OK) r = walkTrie(DELTA_ROOT, 1);
  if (r != V_OK) return r;
  if (reached != live) return fail(V_REACH, reached);
  r = checkHash();
  if (r == V_OK) r = checkWindows();
  if (r == V_OK) r = checkStreams();
  if (r == V_OK) r = checkLru();
  if (r == V_OK) r = checkScratch();
  if (r == V_OK) r = checkBitmap();
  return r;
}

/** The header's own checks (magic, configuration in range, reserved bytes), before its offsets are used. */
export function checkHeader(): i32 {
  const r = checkConfig();
  return r != V_OK ? r : checkReserved();
}

/** The header's counters, after the layout walk agreed with it. */
export function checkHeaderCounters(): i32 { return checkCounters(); }

/** Attach the (checked) configuration: globals and scratch registers. */
export function attachChecked(): void {
  attachConfig();
  layoutTables();
}
