// Prediction: which absent pages is the guest most likely to touch soon?
//
// One expansion scores the successors of a state (an anchor page and its contexts in both tries).
// In each alphabet, PPM blends orders from K down to 0 (page trie: down to 1): an order's context
// offers its SCAN most recently used successors (counts and escape are taken over those, so a wide
// context costs no more than a narrow one) with the probabilities of the escape method; symbols
// already offered by a longer context are excluded, and the escape probability carries the rest
// down to the next order.
// A delta successor d of anchor a scores page a+d. The two alphabets' scores for a page are merged
// by taking the larger (two estimates of the same event).
//
// Lookahead is a best-first search over such states, so pages come out in order of path probability:
// the most probable state is popped, its page is output if it is absent and unsent, and it is expanded:
// its best BRANCH successors above `threshold` become states whose probability is the product along
// the path (a state's contexts are computed only if it is expanded). Present pages are not output but
// are still expanded, so the search walks through the hot set to the missing pages behind it. After
// `lookahead` expansions the frontier is only drained. It stops at `depth` pages or when no state is
// left. Ties between states go to the one created first. States that could only be popped after the
// search ends are not created (dead states, below predictFrom).
import {
  gOrder, gAlpha, gEscape, gDepth, gPageCount, gLookahead, gThreshold, oOut, oConf, oFront, oCand,
  stateStride, R_STAGE, R_TOP, ALPHA_PAGE, ALPHA_DELTA, ESC_A, ESC_B, ESC_C, PAGE_ROOT, DELTA_ROOT, FAR, STATES, BRANCH, SCAN, MAX_CANDIDATES,
  N_SYMBOL, N_CHILD, N_SIBLING, N_WIN, WIN_MIN, W_N, W_SYMBOL, W_COUNT, H_PREDICTIONS, bump,
} from "./layout";
import { isWindow, winAddr } from "./window";
import { nGet, countOf } from "./trie";
import { T_CAND, T_EXCL, T_SEEN, clearTable, reserveGenerations, slotOf, fresh } from "./scratch";
import { isSet, setBit } from "./bitmap";
import { ctxAddr, streamAddr, deltaSymbol, nextContexts } from "./learn";

// The search's scratch tables (candidate pages, excluded symbols, pages already followed) are
// stamped sets (scratch.ts).

// Candidates of the current expansion: page u32 array then prob f64 array.
let nCand: u32 = 0;
@inline function candPage(i: u32): usize { return oCand + (<usize>i << 2); }
@inline function candProb(i: u32): usize { return oCand + (<usize>MAX_CANDIDATES << 2) + (<usize>i << 3); }

function offer(page: u32, p: f64): void {
  const a = slotOf(T_CAND, page);
  if (fresh) {
    store<u32>(a + 8, nCand);
    store<u32>(candPage(nCand), page);
    store<f64>(candProb(nCand), p);
    nCand++;
  } else {
    const i = load<u32>(a + 8);
    if (load<f64>(candProb(i)) < p) store<f64>(candProb(i), p);
  }
}

// Search states live in an append-only arena at oFront (never more than STATES per search). State
// layout: prob f64 @0, anchor u32 @8, parent u32 @12, contexts u32[2*(K+1)] @16 (filled lazily: only
// states that get expanded need them).
@inline function stateAddr(i: u32): usize { return oFront + <usize>i * stateStride; }
@inline function stateCtx(st: usize, a: u32, k: u32): usize { return st + 16 + ((<usize>(a * (gOrder + 1) + k)) << 2); }

/** State a is popped before state b: more probable, or as probable and created earlier. */
@inline function before(a: u32, b: u32): bool {
  const pa = load<f64>(stateAddr(a));
  const pb = load<f64>(stateAddr(b));
  return pa > pb || (pa == pb && a < b);
}

// The frontier is a set of runs, not a heap. One expansion creates its children consecutively, from
// its candidates best first, so each run of states is already in pop order (probabilities multiply
// by the same path probability, which keeps their order, and ties go to the earlier state). A pop
// takes the best of the runs' heads: at most 1 + lookahead runs, and nothing to sift (pushes, most of
// which are never popped, were the heap's cost). Runs: (next u32, end u32) pairs after the states.
let nRuns: u32 = 0;
@inline function runAddr(r: u32): usize { return oFront + <usize>STATES * stateStride + (<usize>r << 3); }

function addRun(first: u32, end: u32): void {
  if (first == end) return;
  const a = runAddr(nRuns++);
  store<u32>(a, first);
  store<u32>(a + 4, end);
}

/** Take the frontier's best state (there is one: nRuns > 0). */
function popBest(): u32 {
  let best: u32 = 0;
  let s = load<u32>(runAddr(0));
  for (let r: u32 = 1; r < nRuns; r++) {
    const h = load<u32>(runAddr(r));
    if (before(h, s)) { s = h; best = r; }
  }
  const a = runAddr(best);
  const next = s + 1;
  if (next < load<u32>(a + 4)) store<u32>(a, next);
  else { // exhausted: the last run takes its place (run order decides nothing)
    const last = runAddr(--nRuns);
    store<u32>(a, load<u32>(last));
    store<u32>(a + 4, load<u32>(last + 4));
  }
  return s;
}

// The successors of one context that no longer context offered, staged for scoring: SCAN x
// (symbol u32, count u32).
const STAGE: usize = R_STAGE;

/** Score one alphabet's successors of state `st` into the candidate table. */
function scoreAlphabet(st: usize, a: u32, pathP: f64): void {
  const K = gOrder;
  const anchor = load<u32>(st + 8);
  const lowest: u32 = a == 0 ? 1 : 0;
  clearTable(T_EXCL);
  let mult: f64 = 1;
  // No successor scores more than the escape mass that reaches its order, and a candidate whose
  // path probability falls under the threshold is never used: once the mass is below that, the
  // shorter contexts are not worth their cache misses (the margin keeps this exact under rounding).
  const floor = gThreshold * 0.999999;
  const bar = deadBar;
  for (let k = <i32>K; k >= <i32>lowest; k--) {
    if (pathP * mult < floor || pathP * mult <= bar) break;
    const node = k == 0 ? DELTA_ROOT : load<u32>(stateCtx(st, a, <u32>k));
    if (node == 0) continue;
    // One walk of the successors: a context's symbols are distinct, so inserting each into the
    // exclusion table as it is met tells exactly which were offered by a longer context. The new
    // ones are staged (symbol, count) for scoring once their total is known. A wide context's
    // successors come from its window (window.ts), the same ones in the same order. (The staging
    // is written out in both loops: a helper would keep its sum in globals; 1.00-1.05x in two A/Bs.)
    let tot: f64 = 0;
    let d: u32 = 0;
    const f = nGet(node, N_WIN);
    if (isWindow(f)) {
      const w = winAddr(f - WIN_MIN);
      const n = load<u32>(w + W_N);
      for (let j: u32 = 0; j < n; j++) {
        const sym = load<u32>(w + W_SYMBOL + (<usize>j << 2));
        slotOf(T_EXCL, sym);
        if (fresh) {
          const cn = <u32>load<u16>(w + W_COUNT + (<usize>j << 1));
          store<u32>(STAGE + (<usize>d << 3), sym);
          store<u32>(STAGE + (<usize>d << 3) + 4, cn);
          tot += <f64>cn;
          d++;
        }
      }
    } else {
      let c = nGet(node, N_CHILD);
      for (let seen: u32 = 0; c != 0 && seen < SCAN; seen++) {
        const sym = nGet(c, N_SYMBOL);
        slotOf(T_EXCL, sym);
        if (fresh) {
          const n = countOf(c);
          store<u32>(STAGE + (<usize>d << 3), sym);
          store<u32>(STAGE + (<usize>d << 3) + 4, n);
          tot += <f64>n;
          d++;
        }
        c = nGet(c, N_SIBLING);
      }
    }
    if (d == 0) continue;
    const nd = <f64>d;
    let esc: f64;
    let denom: f64;
    if (gEscape == ESC_A) { denom = tot + 1; esc = 1 / denom; }
    else if (gEscape == ESC_B) { denom = tot; esc = nd / tot; }
    else if (gEscape == ESC_C) { denom = tot + nd; esc = nd / denom; }
    else { denom = 2 * tot; esc = nd / denom; }
    for (let j: u32 = 0; j < d; j++) {
      const sym = load<u32>(STAGE + (<usize>j << 3));
      if (a == 1 && sym == FAR) continue;
      const n = <f64>load<u32>(STAGE + (<usize>j << 3) + 4);
      const num = gEscape == ESC_A || gEscape == ESC_C ? n : gEscape == ESC_B ? n - 1 : 2 * n - 1;
      const p = mult * (num / denom);
      if (p > 0 && pathP * p > bar) {
        const page = a == 0 ? sym : anchor + sym;
        const inRange = a == 0 ? sym < gPageCount : (<i64>anchor + <i64><i32>sym >= 0 && <i64>anchor + <i64><i32>sym < <i64>gPageCount);
        if (inRange) offer(page, p);
      }
    }
    mult *= esc < 1 ? esc : 1;
  }
}

/** Fill state `st`'s contexts: its parent's, advanced by touching `st`'s page (no learning). */
function fillContexts(st: usize): void {
  const src = stateAddr(load<u32>(st + 12));
  const page = load<u32>(st + 8);
  if (gAlpha & ALPHA_PAGE) nextContexts(stateCtx(src, 0, 0), stateCtx(st, 0, 0), PAGE_ROOT, page);
  if (gAlpha & ALPHA_DELTA) nextContexts(stateCtx(src, 1, 0), stateCtx(st, 1, 0), DELTA_ROOT, deltaSymbol(load<u32>(src + 8), page));
}

// Top-BRANCH selection buffer (indices into the candidate arrays), best first.
let nTop: u32 = 0;
@inline function topAt(j: u32): u32 { return load<u32>(R_TOP + (<usize>j << 2)); }
@inline function setTop(j: u32, v: u32): void { store<u32>(R_TOP + (<usize>j << 2), v); }

@inline function better(i: u32, j: u32): bool {
  const pi = load<f64>(candProb(i));
  const pj = load<f64>(candProb(j));
  return pi > pj || (pi == pj && i < j);
}

function selectTop(): void {
  nTop = 0;
  for (let i: u32 = 0; i < nCand; i++) {
    if (nTop == BRANCH && !better(i, topAt(BRANCH - 1))) continue;
    let j = nTop < BRANCH ? nTop : BRANCH - 1;
    while (j > 0 && better(i, topAt(j - 1))) { setTop(j, topAt(j - 1)); j--; }
    setTop(j, i);
    if (nTop < BRANCH) nTop++;
  }
}

// drain()'s picks, state indices best first (after ABSENT in the frontier section's spare tail:
// at most OUT_CAPACITY x 4 = 1024 bytes from offset 6144 of its STATES x 4 = 8196). Not in OUT: a
// caller may write into the output view between predictFirst and predictRest.
@inline function pickAddr(j: u32): usize { return oFront + <usize>STATES * stateStride + 6144 + (<usize>j << 2); }

/**
 * The frontier after the last expansion: popping it to the end would output its absent pages in
 * order (most probable first, ties to the earlier state) until `depth`. Pages are distinct among
 * states, so outputting one never changes another: pick those pages in one pass over the runs instead.
 * The picks are kept sorted as state indices (commitPicks outputs their pages); a run is left as
 * soon as one of its states cannot make the picks (the rest of the run ranks lower). Returns how
 * many were picked.
 */
function drain(room: u32): u32 {
  let n: u32 = 0;
  for (let r: u32 = 0; r < nRuns; r++) {
    const end = load<u32>(runAddr(r) + 4);
    for (let s = load<u32>(runAddr(r)); s < end; s++) {
      if (n == room && !before(s, load<u32>(pickAddr(n - 1)))) break;
      if (isSet(load<u32>(stateAddr(s) + 8))) continue;
      let j = n < room ? n : room - 1;
      while (j > 0 && before(s, load<u32>(pickAddr(j - 1)))) {
        store<u32>(pickAddr(j), load<u32>(pickAddr(j - 1)));
        j--;
      }
      store<u32>(pickAddr(j), s);
      if (n < room) n++;
    }
  }
  nRuns = 0;
  return n;
}

/** Output drain()'s picks [from - base, to - base) as OUT[from..to): their pages, marked sent. */
function commitPicks(base: u32, from: u32, to: u32): void {
  for (let j = from; j < to; j++) {
    const st = stateAddr(load<u32>(pickAddr(j - base)));
    const page = load<u32>(st + 8);
    setBit(page);
    store<u32>(oOut + (<usize>j << 2), page);
    store<f32>(oConf + (<usize>j << 2), <f32>load<f64>(st));
  }
}

// Dead states. A state is popped only after every state more probable than it (ties: created
// earlier), and each absent page popped is output. So once the frontier holds `depth - out` absent
// pages at probability >= p, a new state of probability <= p can never be output nor expanded: the
// search ends before it is popped. Such states are not created, and the orders whose escape mass
// cannot reach above that bar are not scored (every successor they offer would be dead).
// ABSENT keeps the best absent probabilities of the frontier, best first, at most `depth - out`
// of them (the rest can never matter again: out only grows).
let deadBar: f64 = -1; // no state at or below this probability can make the output (-1: none yet)
let nAbsent: u32 = 0;
// (After the runs, in the frontier section's spare tail: runs take at most (1 + lookahead) x 8 <= 1032
// of its STATES x 4 bytes, ABSENT at most OUT_CAPACITY x 8 = 2048 from offset 4096.)
@inline function absentAt(j: u32): usize { return oFront + <usize>STATES * stateStride + 4096 + (<usize>j << 3); }

function keepAbsent(p: f64, room: u32): void {
  if (nAbsent == room && p <= load<f64>(absentAt(room - 1))) return;
  let j = nAbsent < room ? nAbsent : room - 1;
  while (j > 0 && load<f64>(absentAt(j - 1)) < p) { store<f64>(absentAt(j), load<f64>(absentAt(j - 1))); j--; }
  store<f64>(absentAt(j), p);
  if (nAbsent < room) nAbsent++;
}

/** The popped absent state was the frontier's best: drop it, and the ranks no longer needed. */
function popAbsent(room: u32): void {
  if (nAbsent == 0) return;
  for (let j: u32 = 1; j < nAbsent; j++) store<f64>(absentAt(j - 1), load<f64>(absentAt(j)));
  nAbsent--;
  if (nAbsent > room) nAbsent = room;
}

@inline function barFor(room: u32): f64 { return room > 0 && nAbsent >= room ? load<f64>(absentAt(room - 1)) : -1; }

// The search can stop once it has output a number of pages and go on later (predictFirst, then
// predictRest): the frontier and the loop's counters stay in these globals between the two, and the
// pages come out in the same order as from one uninterrupted search. Any other call of the ABI
// ends a suspended search (endSearch): it would change the model, the bitmap or the scratch tables
// the frontier relies on.
let searchOpen: bool = false;
let sOut: u32 = 0; // pages output so far (OUT[0..sOut))
let sExpansions: u32 = 0;
let nStates: u32 = 0;
let sPicked: u32 = 0; // after drain(): where its picks end in OUT (0: not drained)
let sPickBase: u32 = 0; // ... and where they begin
const NO_STATE: u32 = 0xffffffff;
let sPending: u32 = NO_STATE; // a state popped (its page output) but not yet expanded

/** Forget a suspended search: predictRest then has nothing to continue. */
export function endSearch(): void { searchOpen = false; }

/** Whether a search stopped at its first pages can go on (predictRest). */
export function searchSuspended(): bool { return searchOpen; }

/** Start the search from `stream`'s current context; runSearch() then outputs its pages. */
export function beginSearch(stream: u32): void {
  const K = gOrder;
  // The root state: the stream's own contexts.
  const s0 = stateAddr(0);
  store<f64>(s0, 1);
  store<u32>(s0 + 8, load<u32>(streamAddr(stream)));
  for (let a: u32 = 0; a < 2; a++) {
    for (let k: u32 = 1; k <= K; k++) store<u32>(stateCtx(s0, a, k), load<u32>(ctxAddr(stream, a, k)));
  }
  reserveGenerations();
  nStates = 1;
  nRuns = 0;
  addRun(0, 1);
  clearTable(T_SEEN);
  slotOf(T_SEEN, load<u32>(s0 + 8));
  sOut = 0;
  sExpansions = 0;
  sPicked = 0;
  sPending = NO_STATE;
  nAbsent = 0;
  deadBar = -1;
  searchOpen = true;
}

/**
 * Run the begun search until it has output `stopAt` pages in all (or `depth`, or the frontier is
 * empty); returns the pages output so far. The search stays open for another call only if it
 * stopped at `stopAt` with pages still to find.
 */
export function runSearch(stopAt: u32): u32 {
  if (!searchOpen) return sOut;
  const depth = gDepth;
  const stop = stopAt < depth ? stopAt : depth;
  const thr = gThreshold;
  let out = sOut;
  const out0 = out;
  let expansions = sExpansions;
  let ns = nStates;
  let done = false;
  let si = sPending;
  while (true) {
    if (si == NO_STATE) {
      if (sPicked != 0) { // the frontier is drained: its picks go out up to `stop`
        const to = sPicked < stop ? sPicked : stop;
        if (to > out) { commitPicks(sPickBase, out, to); out = to; }
        done = out == sPicked;
        break;
      }
      if (out >= depth || nRuns == 0) { done = true; break; }
      if (out >= stop) break;
      if (expansions >= gLookahead) {
        const n = drain(depth - out);
        if (n == 0) { done = true; break; }
        sPickBase = out;
        sPicked = out + n;
        continue;
      }
      // The most probable state: offer its page.
      si = popBest();
      const page = load<u32>(stateAddr(si) + 8);
      if (!isSet(page)) {
        setBit(page);
        store<u32>(oOut + (<usize>out << 2), page);
        store<f32>(oConf + (<usize>out << 2), <f32>load<f64>(stateAddr(si)));
        out++;
        if (out == depth) { done = true; break; } // nothing an expansion finds could be output any more
        if (si != 0) popAbsent(depth - out);
        // Enough for now: the caller sends the page; its expansion waits for the next call.
        if (out >= stop) break;
      }
    }
    const cur = stateAddr(si);
    const pathP = load<f64>(cur);
    deadBar = barFor(depth - out);
    // Expand it (the loop's head hands the frontier to drain() once the budget is spent).
    expansions++;
    if (si != 0) fillContexts(cur);
    clearTable(T_CAND);
    nCand = 0;
    if (gAlpha & ALPHA_PAGE) scoreAlphabet(cur, 0, pathP);
    if (gAlpha & ALPHA_DELTA) scoreAlphabet(cur, 1, pathP);
    selectTop();
    const firstChild = ns;
    for (let t: u32 = 0; t < nTop; t++) {
      const i = topAt(t);
      const next = load<u32>(candPage(i));
      const p = pathP * load<f64>(candProb(i));
      if (p < thr || p <= deadBar) break;
      slotOf(T_SEEN, next);
      if (fresh && ns < STATES) {
        const st = stateAddr(ns);
        store<f64>(st, p);
        store<u32>(st + 8, next);
        store<u32>(st + 12, si);
        ns++;
        if (!isSet(next)) keepAbsent(p, depth - out);
      }
    }
    addRun(firstChild, ns);
    si = NO_STATE;
  }
  sPending = done ? NO_STATE : si;
  sOut = out;
  nStates = ns;
  sExpansions = expansions;
  searchOpen = !done;
  bump(H_PREDICTIONS, <f64>(out - out0));
  return out;
}

/** Run the whole search from `stream`'s current context; returns the number of pages written to OUT. */
export function predictFrom(stream: u32): u32 {
  beginSearch(stream);
  const n = runSearch(gDepth);
  searchOpen = false;
  return n;
}
