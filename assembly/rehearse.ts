// Switch-over rehearsal: train() also learns, for suffixes of the history of growing length, the
// pages of the suffix in order of first touch: the fault stream a switch-over at the suffix's start
// would have produced (why: src/engine/rehearsal.ts). The wrapper chooses the suffixes and feeds
// each one's new part, from its start to where the previous (shorter) suffix began, through the
// input buffer; the core keeps the first-touch list of the previous suffix, so each page of the
// longest suffix rehearsed (at most half the history) is scanned once, and each list is merged once:
//   firstTouches(longer) = firstTouches(new part) ++ (firstTouches(shorter) minus the new part's pages).
// The lists are learned on a scratch stream record (index `streams`) that starts as a copy of the
// trained stream's: the real stream keeps the context the history left it in.
//
// Memory (fixed, after the search's scratch tables): the suffix's pages in a stamped set (scratch.ts,
// emptied per suffix by a new generation) and two lists of REHEARSAL_PAGES pages.
import {
  oRehearse, oIn, oStreams, streamStride, gStreams, REHEARSAL_PAGES, REHEARSAL_SLOTS,
  H_RCUR, H_RPREV, H_RFLIP, H_REHEARSED, hdr32, setHdr32, bump,
} from "./layout";
import { learn } from "./learn";
import { T_REHEARSE, SLOT_BYTES, clearTable, reserveGenerations, slotOf, fresh } from "./scratch";

@inline function listAddr(which: u32): usize {
  return oRehearse + <usize>REHEARSAL_SLOTS * SLOT_BYTES + <usize>which * REHEARSAL_PAGES * 4;
}
@inline function curList(): usize { return listAddr(hdr32(H_RFLIP)); }
@inline function prevList(): usize { return listAddr(hdr32(H_RFLIP) ^ 1); }

/** Whether `page` is new to the current suffix's set (it is in the set afterwards either way). */
@inline function firstSeen(page: u32): bool {
  slotOf(T_REHEARSE, page);
  return fresh;
}

/** Start a rehearsal of `stream`'s history: the scratch stream takes its context, no list yet. */
export function beginRehearsal(stream: u32): void {
  memory.copy(oStreams + <usize>gStreams * streamStride, oStreams + <usize>stream * streamStride, streamStride);
  setHdr32(H_RPREV, 0);
  setHdr32(H_RCUR, 0);
}

/** Start the next (longer) suffix: an empty set and an empty current list. */
export function openSuffix(): void {
  reserveGenerations();
  clearTable(T_REHEARSE);
  setHdr32(H_RCUR, 0);
}

/**
 * The next `count` pages of the suffix's new part, staged in the input buffer. Returns 0 when the
 * suffix holds more than REHEARSAL_PAGES distinct pages (the rehearsal ends there), else 1.
 */
export function scanSuffix(count: u32): i32 {
  const list = curList();
  let n = hdr32(H_RCUR);
  for (let i: u32 = 0; i < count; i++) {
    const page = load<u32>(oIn + (<usize>i << 2));
    if (!firstSeen(page)) continue;
    if (n == REHEARSAL_PAGES) { setHdr32(H_RCUR, n); return 0; }
    store<u32>(list + (<usize>n << 2), page);
    n++;
  }
  setHdr32(H_RCUR, n);
  return 1;
}

/**
 * Complete the suffix's first-touch list with the shorter suffix's pages not in the new part, learn
 * it on the scratch stream, and keep it for the next suffix. Returns 0 (nothing learned) when the
 * list would exceed REHEARSAL_PAGES, else 1.
 */
export function learnSuffix(): i32 {
  const list = curList();
  const prev = prevList();
  let n = hdr32(H_RCUR);
  const m = hdr32(H_RPREV);
  for (let i: u32 = 0; i < m; i++) {
    const page = load<u32>(prev + (<usize>i << 2));
    if (!firstSeen(page)) continue; // (the shorter list's pages are distinct: adding them changes no answer)
    if (n == REHEARSAL_PAGES) return 0;
    store<u32>(list + (<usize>n << 2), page);
    n++;
  }
  for (let i: u32 = 0; i < n; i++) learn(load<u32>(list + (<usize>i << 2)), gStreams);
  bump(H_REHEARSED, <f64>n);
  setHdr32(H_RPREV, n);
  setHdr32(H_RFLIP, hdr32(H_RFLIP) ^ 1);
  return 1;
}
