// The training filter: an exact LRU set of the `filter` most recently touched pages. A page found in
// it is a hit (it could never fault in post-copy) and is not learned. Slots hold (page, stamp); a
// small open-addressing index (page -> slot + 1, linear probing, backward-shift deletion) makes the
// common case, a hit, O(1); only a miss scans the stamps for the least recently used slot.
import { oLru, gFilter, H_TICK, NONE, hdr64, setHdr64 } from "./layout";

/** Index slots for a filter of n pages: a power of two >= 4n (load factor <= 1/4). */
export function lruIndexSlots(n: u32): u32 {
  let h: u32 = 8;
  while (h < 4 * n) h <<= 1;
  return h;
}

/** Bytes of the filter's section: pages u32[n], stamps f64[n], index u32[slots]. */
export function lruBytes(n: u32): usize {
  return <usize>n * 12 + <usize>lruIndexSlots(n) * 4;
}

@inline function pageAt(i: u32): usize { return oLru + (<usize>i << 2); }
@inline function stampAt(i: u32): usize { return oLru + (<usize>gFilter << 2) + (<usize>i << 3); }
@inline function indexAt(j: u32): usize { return oLru + <usize>gFilter * 12 + (<usize>j << 2); }
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
  const n = gFilter;
  const mask = lruIndexSlots(n) - 1;
  const tick = hdr64(H_TICK) + 1;
  setHdr64(H_TICK, tick);
  const at = find(page, mask);
  if (at >= 0) {
    store<f64>(stampAt(load<u32>(indexAt(<u32>at)) - 1), tick);
    return true;
  }
  let oldest: u32 = 0;
  let oldestStamp: f64 = Infinity;
  for (let i: u32 = 0; i < n; i++) {
    const st = load<f64>(stampAt(i));
    if (st < oldestStamp) { oldestStamp = st; oldest = i; }
  }
  const evicted = load<u32>(pageAt(oldest));
  if (evicted != NONE) removeAt(<u32>find(evicted, mask), mask);
  store<u32>(pageAt(oldest), page);
  store<f64>(stampAt(oldest), tick);
  insert(page, oldest, mask);
  return false;
}
