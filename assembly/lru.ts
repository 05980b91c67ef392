// The training filter: an exact LRU set of the `filter` most recently touched pages. A page found in
// it is a hit (it could never fault in post-copy) and is not learned. Slots hold pages and sit on a
// doubly linked recency list (most recent first); a small open-addressing index (page -> slot + 1,
// linear probing, backward-shift deletion) finds a page's slot. A hit moves its slot to the front, a
// miss reuses the last slot: both O(1). Initially slot 0 is last, then 1, 2... (the reference model
// evicts the lowest slot among the never-used ones, which is the same order).
import { oLru, gFilter, gLruMask, lruIndexSlots, NONE } from "./layout";


/** Bytes of the filter's section: pages u32[n], links (prev u16, next u16)[n], head, tail, index u32[slots]. */
export function lruBytes(n: u32): usize {
  return <usize>n * 8 + 8 + <usize>lruIndexSlots(n) * 4;
}

@inline function pageAt(i: u32): usize { return oLru + (<usize>i << 2); }
@inline function prevAt(i: u32): usize { return oLru + (<usize>gFilter << 2) + (<usize>i << 2); }
@inline function nextAt(i: u32): usize { return prevAt(i) + 2; }
@inline function headAt(): usize { return oLru + (<usize>gFilter << 3); }
@inline function tailAt(): usize { return headAt() + 4; }
@inline function indexAt(j: u32): usize { return oLru + <usize>gFilter * 8 + 8 + (<usize>j << 2); }
const END: u32 = 0xffff; // no slot (n <= 1024)

/** Empty filter: every slot NONE, recency list n-1 (front) ... 1, 0 (back); index empty. */
export function lruReset(): void {
  const n = gFilter;
  if (n == 0) return;
  for (let i: u32 = 0; i < n; i++) {
    store<u32>(pageAt(i), NONE);
    store<u16>(prevAt(i), i + 1 < n ? i + 1 : END); // toward the front
    store<u16>(nextAt(i), i > 0 ? i - 1 : END); // toward the back
  }
  store<u32>(headAt(), n - 1);
  store<u32>(tailAt(), 0);
  memory.fill(indexAt(0), 0, <usize>lruIndexSlots(n) << 2);
}

/** Move slot i to the front of the recency list. */
function toFront(i: u32): void {
  const head = load<u32>(headAt());
  if (head == i) return;
  const p = <u32>load<u16>(prevAt(i));
  const nx = <u32>load<u16>(nextAt(i));
  store<u16>(nextAt(p), nx);
  if (nx != END) store<u16>(prevAt(nx), p); else store<u32>(tailAt(), p);
  store<u16>(prevAt(i), END);
  store<u16>(nextAt(i), head);
  store<u16>(prevAt(head), i);
  store<u32>(headAt(), i);
}
@inline function home(page: u32, mask: u32): u32 {
  let h = page * 0x9e3779b1;
  h ^= h >> 15;
  return h & mask;
}

/** The index position holding `page`, or -1. */
function find(page: u32, mask: u32): i32 {
  let j = home(page, mask);
  for (;;) {
    const e = load<u32>(indexAt(j));
    if (e == 0) return -1;
    if (load<u32>(pageAt(e - 1)) == page) return <i32>j;
    j = (j + 1) & mask;
  }
  return -1;
}

function insert(page: u32, slot: u32, mask: u32): void {
  let j = home(page, mask);
  while (load<u32>(indexAt(j)) != 0) j = (j + 1) & mask;
  store<u32>(indexAt(j), slot + 1);
}

/** Remove the entry at index position i, shifting later entries of its probe run back. */
function removeAt(i: u32, mask: u32): void {
  let j = i;
  for (;;) {
    j = (j + 1) & mask;
    const e = load<u32>(indexAt(j));
    if (e == 0) break;
    const k = home(load<u32>(pageAt(e - 1)), mask);
    // Move e back to i unless its home lies cyclically in (i, j].
    const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
    if (!inRange) {
      store<u32>(indexAt(i), e);
      i = j;
    }
  }
  store<u32>(indexAt(i), 0);
}

/** True when `page` is among the `filter` most recently touched pages; records the touch either way. */
export function recentlyTouched(page: u32): bool {
  const mask = gLruMask;
  const at = find(page, mask);
  if (at >= 0) {
    toFront(load<u32>(indexAt(<u32>at)) - 1);
    return true;
  }
  const slot = load<u32>(tailAt());
  const evicted = load<u32>(pageAt(slot));
  if (evicted != NONE) removeAt(<u32>find(evicted, mask), mask);
  store<u32>(pageAt(slot), page);
  insert(page, slot, mask);
  toFront(slot);
  return false;
}
