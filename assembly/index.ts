// The exported ABI: a handful of functions over fixed buffers in linear memory. The TypeScript
// wrapper validates every argument before calling in; nothing here allocates after init.
import {
  HEADER, HEADER_BYTES, MAGIC, OUT_BYTES, IN_CAPACITY, STATES, SCRATCH_SLOTS, MAX_CANDIDATES,
  NODE_BYTES, PAGE_ROOT, FIRST_NODE, NONE, AGE_LIMIT_MAX, REHEARSAL_BYTES,
  H_MAGIC, H_ORDER, H_ALPHA, H_ESCAPE, H_DEPTH, H_STREAMS, H_CAPACITY, H_PAGECOUNT, H_RANGE, H_FILTER,
  H_LOOKAHEAD, H_AGELIMIT, H_THRESHOLD, H_O_OUT, H_O_IN, H_O_STREAMS, H_O_LRU, H_O_FRONT, H_O_CAND,
  H_O_SEEN, H_O_BITMAP, H_O_NODES, H_END, H_SLOTS, H_O_BUCKETS, H_NODES, H_NEXTNODE, H_FREE,
  H_FAULTS, H_OBSERVED, H_PRESENT, hdr32, setHdr32, setHdr64, hdr64, bump, attachConfig,
  oOut, oConf, oIn, oStreams, oLru, oBitmap, oNodes, gStreams, gFilter, gPageCount,
  streamStride, gCapacity, stateStride, SECTIONS_START, HEADER_END, SCAN, BRANCH, OUT_CAPACITY,
  REHEARSAL_PAGES, H_PREDICTIONS, H_TRAINED, H_PRUNES, H_REHEARSED, H_PRUNE_DUE, ALPHA_PAGE, ALPHA_DELTA,
  ESC_A, ESC_B, ESC_C, ESC_D, checkLowMap, oSeen, H_O_WIN, WIN_BYTES, windowSlots,
  H_WNEXT, H_WFREE, H_WUSED, N_WIN, WIN_MIN, WIN_WIDE, W_N, W_OWNER,
} from "./layout";
import { learn, trainBatch, advance, settle as settlePending, dropPending } from "./learn";
import { beginRehearsal, openSuffix, scanSuffix, learnSuffix } from "./rehearse";
import { lruBytes, lruReset } from "./lru";
import { predictFrom, beginSearch, runSearch, endSearch, searchSuspended } from "./predict";
import { layoutTables } from "./scratch";
import { isSet, setBit, clearBit, setRange } from "./bitmap";
import { compact as compactNodes } from "./compact";
import { prune as pruneNodes, setDeferPrune } from "./trie";
import { checkHeader, checkHeaderCounters, checkModel, attachChecked, setDetail, validateDetail, V_OK, V_LAYOUT, V_MEMORY } from "./validate";

// The ABI constants the TypeScript wrapper reads (src/engine/wasm.ts: ABI), exported as globals so
// that they are defined once, here and in layout.ts.
export const ABI_VERSION: u32 = 10; // bumped with any change of the memory map or the header
export const ABI_HEADER: u32 = <u32>HEADER;
export const ABI_HEADER_END: u32 = <u32>HEADER_END;
export const ABI_MAGIC: u32 = MAGIC;
export const ABI_OUT_CAPACITY: u32 = OUT_CAPACITY;
export const ABI_IN_CAPACITY: u32 = IN_CAPACITY;
export const ABI_REHEARSAL_PAGES: u32 = REHEARSAL_PAGES;
export const ABI_AGE_LIMIT_MAX: u32 = AGE_LIMIT_MAX;
export const ABI_ALPHA_PAGE: u32 = ALPHA_PAGE;
export const ABI_ALPHA_DELTA: u32 = ALPHA_DELTA;
export const ABI_ESC_A: u32 = ESC_A;
export const ABI_ESC_B: u32 = ESC_B;
export const ABI_ESC_C: u32 = ESC_C;
export const ABI_ESC_D: u32 = ESC_D;
// Header field offsets (counter(field) reads the f64 counters; the rest name fields in errors).
export const ABI_H_ORDER: u32 = H_ORDER;
export const ABI_H_ALPHA: u32 = H_ALPHA;
export const ABI_H_ESCAPE: u32 = H_ESCAPE;
export const ABI_H_DEPTH: u32 = H_DEPTH;
export const ABI_H_STREAMS: u32 = H_STREAMS;
export const ABI_H_CAPACITY: u32 = H_CAPACITY;
export const ABI_H_PAGECOUNT: u32 = H_PAGECOUNT;
export const ABI_H_RANGE: u32 = H_RANGE;
export const ABI_H_FILTER: u32 = H_FILTER;
export const ABI_H_LOOKAHEAD: u32 = H_LOOKAHEAD;
export const ABI_H_AGELIMIT: u32 = H_AGELIMIT;
export const ABI_H_THRESHOLD: u32 = H_THRESHOLD;
export const ABI_H_FAULTS: u32 = H_FAULTS;
export const ABI_H_PREDICTIONS: u32 = H_PREDICTIONS;
export const ABI_H_OBSERVED: u32 = H_OBSERVED;
export const ABI_H_TRAINED: u32 = H_TRAINED;
export const ABI_H_PRUNES: u32 = H_PRUNES;
export const ABI_H_PRESENT: u32 = H_PRESENT;
export const ABI_H_REHEARSED: u32 = H_REHEARSED;
export const ABI_H_PRUNE_DUE: u32 = H_PRUNE_DUE;
// The node arena and the successor windows (window.ts), for tests that inspect a snapshot's image.
export const ABI_H_O_NODES: u32 = H_O_NODES;
export const ABI_H_O_WIN: u32 = H_O_WIN;
export const ABI_H_WNEXT: u32 = H_WNEXT;
export const ABI_H_WFREE: u32 = H_WFREE;
export const ABI_H_WUSED: u32 = H_WUSED;
export const ABI_NODE_BYTES: u32 = NODE_BYTES;
export const ABI_N_WIN: u32 = N_WIN;
export const ABI_WIN_MIN: u32 = WIN_MIN;
export const ABI_WIN_WIDE: u32 = WIN_WIDE;
export const ABI_WIN_BYTES: u32 = WIN_BYTES;
export const ABI_W_N: u32 = W_N;
export const ABI_W_OWNER: u32 = W_OWNER;

@inline function align8(x: u64): u64 { return (x + 7) & ~7; }

// The memory-map walk: a cursor, and what to do with each section's offset: nothing (sizing), store
// it in the header (init), or compare it with the header (validate: the first field that differs).
const SIZE: u32 = 0, WRITE: u32 = 1, CHECK: u32 = 2;
let cursor: u64 = 0;
let mode: u32 = SIZE;
let mismatch: u32 = 0; // header field + 1 of the first section whose stored offset differs
@inline function section(field: u32, bytes: u64): void {
  if (mode == WRITE) setHdr32(field, <u32>cursor);
  else if (mode == CHECK && mismatch == 0 && <u64>hdr32(field) != cursor) mismatch = field + 1;
  cursor += bytes;
}

/**
 * Walk the memory map of a model of this shape: the sections in order, each offset stored in the
 * header when `write` (init, once the total is known to fit). Returns the bytes it needs. One walk
 * for sizing and for laying out, so the two cannot disagree. (No arrays: nothing may allocate in
 * linear memory, which the map owns.)
 */
function placeSections(order: u32, streams: u32, capacity: u32, pageCount: u32, filter: u32, how: u32): u64 {
  const stride: u64 = 4 * (1 + 2 * (<u64>order + 1)); // streams + 1 records: the last is the rehearsal's
  const state: u64 = (16 + 8 * (<u64>order + 1) + 7) & ~7;
  cursor = SECTIONS_START;
  mode = how;
  mismatch = 0;
  section(H_O_OUT, <u64>OUT_BYTES);
  section(H_O_IN, <u64>IN_CAPACITY * 4);
  section(H_O_STREAMS, align8((<u64>streams + 1) * stride));
  section(H_O_LRU, align8(<u64>lruBytes(filter)));
  section(H_O_FRONT, <u64>STATES * (state + 4));
  section(H_O_CAND, <u64>MAX_CANDIDATES * 12);
  section(H_O_SEEN, <u64>SCRATCH_SLOTS * 12 * 3 + <u64>REHEARSAL_BYTES); // oRehearse follows the search's tables
  section(H_O_BITMAP, align8((<u64>pageCount + 7) / 8));
  section(H_O_BUCKETS, (<u64>capacity + FIRST_NODE) * 4);
  section(H_O_NODES, (<u64>capacity + FIRST_NODE) * NODE_BYTES);
  section(H_O_WIN, <u64>windowSlots(capacity) * WIN_BYTES);
  section(H_END, 0);
  return cursor;
}

/** Bytes of linear memory a model of this shape needs (for sizing from a byte budget). */
export function layoutBytes(order: u32, streams: u32, capacity: u32, pageCount: u32, filter: u32): f64 {
  return <f64>placeSections(order, streams, capacity, pageCount, filter, SIZE);
}

/** Lay out and zero the model. Returns 1, or 0 when linear memory cannot grow that far. */
export function init(
  order: u32, alpha: u32, escape: u32, depth: u32, threshold: f64, streams: u32, capacity: u32,
  pageCount: u32, range: u32, filter: u32, lookahead: u32, ageLimit: u32,
): i32 {
  endSearch();
  if (checkLowMap() != 0) return -1; // the memory map's low regions overlap (a build error)
  const total = layoutBytes(order, streams, capacity, pageCount, filter);
  if (total > 4294901760) return 0;
  const needPages = <i32>((<u64>total + 65535) >> 16);
  const have = memory.size();
  if (needPages > have && memory.grow(needPages - have) < 0) return 0;
  // Pages that grow() just added are zero (the Wasm spec; the OS maps them lazily): only the pages
  // this instance had before can hold old bytes. Zeroing fresh pages would touch every one of them
  // (a 64 MiB model: 90-200 ms of page faults in createPredictor) for nothing.
  zeroedFrom = <usize>have << 16;
  memory.fill(HEADER, 0, HEADER_BYTES);
  setHdr32(H_MAGIC, MAGIC);
  setHdr32(H_ORDER, order);
  setHdr32(H_ALPHA, alpha);
  setHdr32(H_ESCAPE, escape);
  setHdr32(H_DEPTH, depth);
  setHdr32(H_STREAMS, streams);
  setHdr32(H_CAPACITY, capacity);
  setHdr32(H_PAGECOUNT, pageCount);
  setHdr32(H_RANGE, range);
  setHdr32(H_FILTER, filter);
  setHdr32(H_LOOKAHEAD, lookahead);
  // Counts are 16-bit: a total may reach ageLimit + 1 (the wrapper validates; this guards the raw ABI).
  setHdr32(H_AGELIMIT, ageLimit < AGE_LIMIT_MAX ? ageLimit : AGE_LIMIT_MAX);
  setHdr64(H_THRESHOLD, threshold);
  placeSections(order, streams, capacity, pageCount, filter, WRITE);
  setHdr32(H_SLOTS, capacity + FIRST_NODE);
  attachConfig();
  // The search's stamped tables, sized for this configuration, must fit their reserved slots.
  if (layoutTables() > oSeen + <usize>SCRATCH_SLOTS * 12 * 3) return -2;
  clearModel();
  return 1;
}

// Linear memory at and above this address is known to be zero (fresh pages after init's grow).
let zeroedFrom: usize = <usize>0xffffffff;

/** Forget everything learned and every present bit; keep the configuration. */
export function clearModel(): void {
  endSearch();
  dropPending();
  const end = <usize>hdr32(H_END);
  const dirtyEnd = end < zeroedFrom ? end : zeroedFrom;
  if (dirtyEnd > SECTIONS_START) memory.fill(SECTIONS_START, 0, dirtyEnd - SECTIONS_START);
  zeroedFrom = <usize>0xffffffff; // from now on the model writes anywhere: reset() zeroes it all
  for (let i: u32 = H_NODES; i < HEADER_BYTES; i += 4) if (i != H_O_WIN) setHdr32(i, 0);
  setHdr32(H_NEXTNODE, FIRST_NODE);
  for (let s: u32 = 0; s <= gStreams; s++) store<u32>(oStreams + <usize>s * streamStride, NONE);
  lruReset();
  // Roots: parent 0, count 0; they are never freed.
  memory.fill(oNodes, 0, <usize>FIRST_NODE * NODE_BYTES);
  store<u32>(oNodes + <usize>PAGE_ROOT * NODE_BYTES + N_WIN, WIN_WIDE); // never a window (layout.ts)
}

/** Reload the cached configuration after the memory was replaced (restore from a snapshot). */
export function attach(): i32 {
  endSearch();
  if (hdr32(H_MAGIC) != MAGIC) return 0;
  dropPending();
  attachConfig();
  layoutTables();
  return 1;
}

/**
 * The header's section offsets against the layout walk for the header's own configuration (which
 * must be in range: checkHeader). Returns 0, or the header field offset + 1 of the first that
 * differs (H_END: the total; H_SLOTS: the arena's slots).
 */
export function validateLayout(): u32 {
  const capacity = hdr32(H_CAPACITY);
  placeSections(hdr32(H_ORDER), hdr32(H_STREAMS), capacity, hdr32(H_PAGECOUNT), hdr32(H_FILTER), CHECK);
  if (mismatch == 0 && hdr32(H_SLOTS) != capacity + FIRST_NODE) mismatch = H_SLOTS + 1;
  return mismatch;
}

/**
 * The header alone (bytes [0, HEADER + HEADER_BYTES)): magic, configuration in range, reserved
 * bytes zero, section offsets equal to the layout walk's for that configuration, counters sane.
 * Returns 0 or a V_* code (validate.ts). Needs no model behind the header: the wrapper runs it on
 * its sizing instance before it allocates anything for untrusted bytes.
 */
export function validateHeader(): i32 {
  const r = checkHeader();
  if (r != V_OK) return r;
  const bad = validateLayout();
  if (bad != 0) { setDetail(bad - 1); return V_LAYOUT; }
  return checkHeaderCounters();
}

/**
 * Validate a memory image before any other use (restore: the image is untrusted), then attach it.
 * Returns 0, or a V_* error code (validate.ts) with validateDetail() saying where. O(model), every
 * loop bounded: a hostile image can neither trap nor hang it, and nothing else runs on an image it
 * refused. It does not write the model (only the cached globals and the scratch registers).
 */
export function validate(): i32 {
  endSearch();
  dropPending();
  const r = validateHeader();
  if (r != V_OK) return r;
  const total = <u64>hdr32(H_END);
  if (total > (<u64>memory.size() << 16)) { setDetail(<u32>total); return V_MEMORY; }
  attachChecked();
  return checkModel();
}
export { validateDetail };

/**
 * Count a fault whose page-trie learning is still deferred (before reading counters or copying the
 * memory). Every call that uses the model starts here, which also ends a search predictFirst stopped.
 */
export function settle(): void { endSearch(); settlePending(); }
export function usedBytes(): u32 { return hdr32(H_END); }
export function outPtr(): u32 { return <u32>oOut; }
export function confPtr(): u32 { return <u32>oConf; }
export function inPtr(): u32 { return <u32>oIn; }

/**
 * A fault on `page` by `stream`: count it in the delta trie, advance the stream's page-trie contexts
 * past it by lookup, mark it present, predict; the page trie counts it afterwards (settle: the next
 * call that uses the model, or maintain()). Returns the pages in OUT.
 */
export function predictNext(page: u32, stream: u32): u32 {
  faultOn(page, stream);
  return predictFrom(stream);
}

function faultOn(page: u32, stream: u32): void {
  settle();
  advance(page, stream);
  setBit(page);
  bump(H_FAULTS, 1);
}

/**
 * predictNext, stopped once `first` pages are out (or the search ends first): the caller sends them
 * and then calls predictRest for the others, which are what predictNext would have returned after
 * them. Returns the pages in OUT so far.
 */
export function predictFirst(page: u32, stream: u32, first: u32): u32 {
  faultOn(page, stream);
  beginSearch(stream);
  return runSearch(first);
}

/** Go on with the search predictFirst stopped, to its end; returns the pages in OUT in all (0xffffffff: no search to go on with). */
export function predictRest(): u32 {
  if (!searchSuspended()) return 0xffffffff;
  return runSearch(0xffffffff);
}

/** A non-faulting access the destination reported (e.g. a prefetched page touched). */
export function observe(page: u32, stream: u32): void {
  settle();
  setDeferPrune(true);
  learn(page, stream);
  setDeferPrune(false);
  setBit(page);
  bump(H_OBSERVED, 1);
}

export function train(count: u32, stream: u32): void { settle(); trainBatch(count, stream); }
// The switch-over rehearsal, driven by the wrapper one suffix at a time (rehearse.ts).
export function rehearseBegin(stream: u32): void { settle(); beginRehearsal(stream); }
export function rehearseOpen(): void { endSearch(); openSuffix(); }
export function rehearseScan(count: u32): i32 { endSearch(); return scanSuffix(count); }
export function rehearseLearn(): i32 { endSearch(); return learnSuffix(); }
/** Renumber the nodes so that each context's successors are adjacent (see compact.ts). */
export function compact(): void { settle(); compactNodes(); }
/** Prune now (what a full arena does by itself): every count halved, zero counts dropped. */
export function prune(): void { settle(); pruneNodes(); }
/**
 * Off-fault-path upkeep, for the transport's idle moments: the prune a full arena asked for on the
 * fault path (H_PRUNE_DUE), which predictNext and observe never run themselves. Returns 1 if it pruned.
 */
export function maintain(): i32 {
  settle();
  pretouchArena();
  if (hdr32(H_PRUNE_DUE) == 0) return 0;
  pruneNodes();
  return 1;
}

// Linear memory is mapped by the OS as it is first written (init does not zero fresh pages), so a
// fault that allocates nodes past every page touched so far takes a page fault inside the call (a
// few microseconds here, more under a busy hypervisor). maintain() writes the pages the bump pointer
// will reach next, off the fault path; a page already mapped costs one load and one store.
const PRETOUCH_BYTES: usize = 256 << 10;
function pretouchArena(): void {
  const from = oNodes + <usize>hdr32(H_NEXTNODE) * NODE_BYTES;
  const end = <usize>hdr32(H_END);
  const to = from + PRETOUCH_BYTES < end ? from + PRETOUCH_BYTES : end;
  // (The page holding `from` is mapped already: the node before it was written.)
  for (let a = (from + 4095) & ~(<usize>4095); a < to; a += 4096) store<u8>(a, load<u8>(a));
}
export function markPresent(page: u32): void { endSearch(); setBit(page); }
/** A page predictNext returned that the caller did not send after all: it may be predicted again. */
export function unsend(page: u32): void { endSearch(); clearBit(page); }
/** Forget which pages are present (a new migration over a model already learned). */
export function clearPresent(): void {
  endSearch();
  memory.fill(oBitmap, 0, <usize>((<u64>gPageCount + 7) >> 3)); // u64: pageCount may be 2^32 - 1
  setHdr64(H_PRESENT, 0);
}
export function markPresentRange(start: u32, count: u32): void { endSearch(); setRange(start, count); }
export function isPresent(page: u32): i32 { return isSet(page) ? 1 : 0; }
/** A counter of the header (field offset), as f64. */
export function counter(field: u32): f64 { return hdr64(field); }
export function liveContexts(): u32 { return hdr32(H_NODES); }
export function capacity(): u32 { return gCapacity; }
