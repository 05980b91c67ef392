// The engine's whole state lives in one linear memory, laid out once by `init` and never resized.
// A header at HEADER holds the configuration, the section offsets and the counters, so that a byte
// copy of memory (a snapshot) restores everything; `attach` reloads the cached globals from it.
//
// The memory map (this file is its only definition; init() checks the low regions for overlap):
//
//   [0, 64)                      unused (address 0 stays 0)
//   [HEADER, HEADER + 192)       the header: configuration, section offsets, counters (H_* below)
//   [R_TABLES, +48)              the stamped tables' registers: generation, mask, base x 4 (scratch.ts)
//   [R_STAGE, +SCAN x 8)         one context's successors staged for scoring (predict.ts)
//   [R_TOP, +BRANCH x 4)         the search's top-BRANCH selection (predict.ts)
//   [R_PENDING, +PENDING_BYTES)  the last fault's page-trie learning, deferred past its prediction (learn.ts):
//                                state between two calls, but never in a snapshot (snapshot() settles
//                                it first; attach and validate drop one found in an image)
//   [SECTIONS_START, H_END)      the sections, in placeSections() order (index.ts): OUT (pages, then
//                                f32 confidences), IN (train staging), streams (+1: the rehearsal's),
//                                LRU filter, frontier (states, then runs), candidates, scratch tables
//                                (search: 3 x SCRATCH_SLOTS x 12 bytes; then the rehearsal's
//                                REHEARSAL_BYTES), present bitmap, hash buckets, nodes, windows.
//
// The TypeScript side reads every constant it needs from the module's exported globals (index.ts,
// ABI_*): nothing here is copied by hand into src/engine.

export const HEADER: u32 = 64;
export const MAGIC: u32 = 0x50504d36; // "PPM6"

// Header fields (byte offsets from HEADER).
export const H_MAGIC: u32 = 0;
export const H_ORDER: u32 = 4;
export const H_ALPHA: u32 = 8; // bit 0: page alphabet, bit 1: delta alphabet
export const H_ESCAPE: u32 = 12; // 0..3 = A..D
export const H_DEPTH: u32 = 16;
export const H_STREAMS: u32 = 20;
export const H_CAPACITY: u32 = 24; // context entries (nodes) besides the two roots
export const H_PAGECOUNT: u32 = 28;
export const H_RANGE: u32 = 32; // largest |delta| kept as its own symbol
export const H_FILTER: u32 = 36; // LRU slots of the training filter (0: learn every access)
export const H_LOOKAHEAD: u32 = 40; // states expanded per prediction
export const H_AGELIMIT: u32 = 44;
export const H_THRESHOLD: u32 = 48; // f64
export const H_O_OUT: u32 = 56;
export const H_O_IN: u32 = 60;
export const H_O_STREAMS: u32 = 64;
export const H_O_LRU: u32 = 68;
export const H_O_FRONT: u32 = 72;
export const H_O_CAND: u32 = 76;
export const H_O_SEEN: u32 = 80;
export const H_O_BITMAP: u32 = 84;
export const H_SLOTS: u32 = 88; // node slots (roots included): also the number of hash buckets
export const H_O_NODES: u32 = 92;
export const H_END: u32 = 96;
export const H_O_BUCKETS: u32 = 100;
export const H_NODES: u32 = 104; // live nodes besides the roots
export const H_NEXTNODE: u32 = 108; // bump pointer (node id)
export const H_FREE: u32 = 112; // free-list head (node id, 0 = empty)
export const H_GEN: u32 = 116; // generation of the stamped scratch tables (scratch.ts)
export const H_FAULTS: u32 = 120; // f64 counters from here
export const H_PREDICTIONS: u32 = 128;
export const H_OBSERVED: u32 = 136;
export const H_TRAINED: u32 = 144;
export const H_PRUNES: u32 = 152;
export const H_PRESENT: u32 = 160;
export const H_REHEARSED: u32 = 168; // f64: first touches learned by the switch-over rehearsal
export const H_PRUNE_DUE: u32 = 176; // 1: the arena filled on the fault path; maintain() prunes it (0 or 1)
export const H_RCUR: u32 = 180; // pages in the rehearsal's current first-touch list
export const H_RPREV: u32 = 184; // pages in the previous (shorter) suffix's list
export const H_RFLIP: u32 = 188; // which of the two list buffers is the current one
export const H_O_WIN: u32 = 192; // the windows section (a section offset: clearModel keeps it)
export const H_WNEXT: u32 = 196; // windows: bump pointer (windows ever handed out since the last reset)
export const H_WFREE: u32 = 200; // windows: free-list head (window index + 1, 0 = empty)
export const H_WUSED: u32 = 204; // windows: owned by a context
export const HEADER_BYTES: u32 = 208;
export const HEADER_END: usize = HEADER + HEADER_BYTES;
// Low scratch regions (registers, not state: never read across calls). See the map above.
export const R_TABLES: usize = 512; // the stamped tables' registers (scratch.ts)
export const TABLE_REGISTERS: usize = 48;
export const R_STAGE: usize = R_TABLES + TABLE_REGISTERS; // SCAN x (symbol u32, count u32)
export const R_TOP: usize = 768; // BRANCH u32
// Deferred learning (learn.ts): flag u32, page u32, stream u32, then the stream's page-alphabet
// contexts as they were before the fault (K + 1 u32; K <= 8).
export const R_PENDING: usize = R_TOP + 16 * 4; // after R_TOP's BRANCH (16) entries: checkLowMap checks
export const PENDING_BYTES: usize = 12 + 4 * 9;
export const SECTIONS_START: usize = 1024;

// Alphabets (bits of H_ALPHA) and escape methods (H_ESCAPE).
export const ALPHA_PAGE: u32 = 1;
export const ALPHA_DELTA: u32 = 2;
export const ESC_A: u32 = 0;
export const ESC_B: u32 = 1;
export const ESC_C: u32 = 2;
export const ESC_D: u32 = 3;

export const OUT_CAPACITY: u32 = 256; // most pages one prediction can return
// The OUT section holds OUT_CAPACITY u32 pages, then OUT_CAPACITY f32 confidences (each page's path
// probability: what a caller weighs against the cost of sending it).
export const OUT_BYTES: u32 = OUT_CAPACITY * 8;
export const IN_CAPACITY: u32 = 65536; // pages per train() staging batch
export const STATES: u32 = 128 * 16 + 1; // search states: the root + lookahead(max 128) x BRANCH
export const BRANCH: u32 = 16; // candidates followed from one expanded state
export const SCAN: u32 = 16; // successors of one context considered when scoring (most recent first)
export const SCRATCH_SLOTS: u32 = 4096; // reserved slots per scratch table (predict.ts sizes each to its bound)
export const MAX_CANDIDATES: u32 = 2048; // distinct pages one expansion may score
// Switch-over rehearsal (rehearse.ts): most distinct pages of one suffix (src/engine/rehearsal.ts
// says the same), a stamped page set of twice as many 12-byte slots (scratch.ts), two first-touch lists.
export const REHEARSAL_PAGES: u32 = 16384;
export const REHEARSAL_SLOTS: u32 = 2 * REHEARSAL_PAGES;
export const REHEARSAL_BYTES: usize = <usize>REHEARSAL_SLOTS * 12 + <usize>REHEARSAL_PAGES * 4 * 2;

// Node: 32 bytes (two per cache line, none across a line), plus its 4-byte hash bucket in a dense
// array beside the nodes (one bucket per node slot), plus a share of the windows below: 42 bytes
// per context entry. Counts are 16-bit: ageing keeps every context's total <=
// ageLimit + 1 <= 65535, except the page root's, which is exempt and never read: its children's
// counts saturate. Ids 1 and 2 are the roots of the page and delta tries; 0 is "none".
export const NODE_BYTES: u32 = 32;
export const N_PARENT: u32 = 0;
export const N_SYMBOL: u32 = 4;
export const N_COUNT: u32 = 8; // u16
export const N_TOTAL: u32 = 10; // u16: sum of the children's counts (saturating at the page root)
export const N_CHILD: u32 = 12; // first child (most recently counted first)
export const N_SIBLING: u32 = 16; // next sibling; next free node on the free list
export const N_PREV: u32 = 20; // previous sibling (0: the first child)
export const N_HNEXT: u32 = 24; // next node in the hash bucket
export const N_WIN: u32 = 28; // the context's successor window (window.ts): see WIN_MIN
export const COUNT_MAX: u32 = 0xffff;
export const AGE_LIMIT_MAX: u32 = COUNT_MAX - 1;
// Successor windows (window.ts): a context with WIN_MIN or more children keeps its first SCAN
// successors, in list order, as packed (symbol, child id, count) arrays in one 192-byte window, so
// scoring it reads two cache lines (symbols, counts) instead of one node per successor, and the
// search finds a successor's context in the line of ids beside them instead of the hash index.
// N_WIN holds: below WIN_MIN, the exact number of children (no window); WIN_WIDE, WIN_MIN or more
// children but no window was free; otherwise WIN_MIN + the window's index. The page root is always
// WIN_WIDE: its list is never scored (nor kept in order of use), its children are found by hash.
export const WIN_MIN: u32 = 4;
export const WIN_WIDE: u32 = 0xffffffff;
export const WIN_BYTES: u32 = 192;
export const W_SYMBOL: u32 = 0; // SCAN x u32
export const W_ID: u32 = 64; // SCAN x u32: the child nodes
export const W_COUNT: u32 = 128; // SCAN x u16
export const W_N: u32 = 160; // entries (WIN_MIN..SCAN); 0 on a free window
export const W_OWNER: u32 = 164; // the context that owns it; on a free window, the next free (index + 1)
/** Windows for an arena of `capacity` contexts: wide contexts are 1-3% of a model on the real traces. */
export function windowSlots(capacity: u32): u32 { const w = capacity >> 5; return w > 16 ? w : 16; }
export const PAGE_ROOT: u32 = 1;
export const DELTA_ROOT: u32 = 2;
export const FIRST_NODE: u32 = 3;
export const FREE_MARK: u32 = 0xffffffff; // N_PARENT of a node on the free list

export const NONE: u32 = 0xffffffff; // "no previous page" in a stream
export const FAR: u32 = 0x80000000; // the delta symbol for any |delta| > range

// Mutable config cache, reloaded from the header by attach().
export let gOrder: u32 = 0;
export let gAlpha: u32 = 0;
export let gEscape: u32 = 0;
export let gDepth: u32 = 0;
export let gStreams: u32 = 0;
export let gCapacity: u32 = 0;
export let gPageCount: u32 = 0;
export let gRange: i32 = 0;
export let gFilter: u32 = 0;
export let gLruMask: u32 = 0; // index slots of the training filter - 1 (see lru.ts)
export let gLookahead: u32 = 0;
export let gAgeLimit: u32 = 0;
export let gThreshold: f64 = 0;
export let oOut: usize = 0;
export let oConf: usize = 0; // f32 confidences, beside the pages of OUT
export let oIn: usize = 0;
export let oStreams: usize = 0;
export let oLru: usize = 0;
export let oFront: usize = 0;
export let oCand: usize = 0;
export let oSeen: usize = 0;
export let oRehearse: usize = 0; // right after the search's scratch tables
export let oBitmap: usize = 0;
export let oNodes: usize = 0;
export let gSlots: u32 = 0; // node slots = hash buckets
export let oBuckets: usize = 0;
export let oWin: usize = 0;
export let gWinSlots: u32 = 0;
export let streamStride: usize = 0; // bytes per stream record
export let stateStride: usize = 0; // bytes per frontier state

@inline export function hdr32(f: u32): u32 { return load<u32>(HEADER + f); }
@inline export function setHdr32(f: u32, v: u32): void { store<u32>(HEADER + f, v); }
@inline export function hdr64(f: u32): f64 { return load<f64>(HEADER + f); }
@inline export function setHdr64(f: u32, v: f64): void { store<f64>(HEADER + f, v); }
@inline export function bump(f: u32, by: f64): void { store<f64>(HEADER + f, load<f64>(HEADER + f) + by); }

export function attachConfig(): void {
  gOrder = hdr32(H_ORDER);
  gAlpha = hdr32(H_ALPHA);
  gEscape = hdr32(H_ESCAPE);
  gDepth = hdr32(H_DEPTH);
  gStreams = hdr32(H_STREAMS);
  gCapacity = hdr32(H_CAPACITY);
  gPageCount = hdr32(H_PAGECOUNT);
  gRange = <i32>hdr32(H_RANGE);
  gFilter = hdr32(H_FILTER);
  gLruMask = lruIndexSlots(gFilter) - 1;
  gLookahead = hdr32(H_LOOKAHEAD);
  gAgeLimit = hdr32(H_AGELIMIT);
  gThreshold = hdr64(H_THRESHOLD);
  oOut = hdr32(H_O_OUT);
  oConf = oOut + <usize>OUT_CAPACITY * 4;
  oIn = hdr32(H_O_IN);
  oStreams = hdr32(H_O_STREAMS);
  oLru = hdr32(H_O_LRU);
  oFront = hdr32(H_O_FRONT);
  oCand = hdr32(H_O_CAND);
  oSeen = hdr32(H_O_SEEN);
  oRehearse = oSeen + <usize>SCRATCH_SLOTS * 12 * 3;
  oBitmap = hdr32(H_O_BITMAP);
  oNodes = hdr32(H_O_NODES);
  gSlots = hdr32(H_SLOTS);
  oBuckets = hdr32(H_O_BUCKETS);
  oWin = hdr32(H_O_WIN);
  gWinSlots = windowSlots(gCapacity);
  streamStride = 4 * (1 + 2 * (gOrder + 1));
  stateStride = (16 + 8 * (gOrder + 1) + 7) & ~7;
}

/** Index slots of the training filter for n pages: a power of two >= 4n (load factor <= 1/4). */
export function lruIndexSlots(n: u32): u32 {
  let h: u32 = 8;
  while (h < 4 * n) h <<= 1;
  return h;
}

/**
 * The low regions of the map in order, each within its neighbours: 0 when they do not overlap and
 * the last ends before the sections, else the number of the first region that overruns (init refuses).
 */
export function checkLowMap(): u32 {
  if (HEADER_END > R_TABLES) return 1;
  if (R_TABLES + TABLE_REGISTERS > R_STAGE) return 2;
  if (R_STAGE + <usize>SCAN * 8 > R_TOP) return 3;
  if (R_TOP + <usize>BRANCH * 4 > R_PENDING) return 4;
  if (R_PENDING + PENDING_BYTES > SECTIONS_START) return 5;
  return 0;
}
