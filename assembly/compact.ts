// Compaction: renumber the nodes so that every context's successors sit side by side, in list order.
//
// Nodes are allocated in the order they are first learned, so the successors of one context end up
// scattered across the arena and scoring a context costs a cache miss per successor (on these
// machines ~150-280 ns each once the model outgrows the caches). After compaction the first SCAN
// successors of a context span a few adjacent cache lines of one or two memory pages.
//
// In place, O(nodes), no extra memory: (1) a depth-first walk (parent links make it stackless) gives
// each context's children consecutive new ids, kept in the hash-chain field, which is rebuilt anyway;
// (2) every link (parent, child, sibling, prev, the streams' contexts) is rewritten to new ids;
// (3) records are permuted into place by following cycles; (4) the free list is gone (live nodes are
// a prefix, the bump pointer follows them) and the hash index is rebuilt. No output changes: only ids do.
import {
  oStreams, streamStride, gStreams, gOrder, NODE_BYTES, N_PARENT, N_CHILD, N_SIBLING, N_PREV,
  N_HNEXT, N_WIN, PAGE_ROOT, DELTA_ROOT, FIRST_NODE, FREE_MARK, H_NODES, H_NEXTNODE, H_FREE, hdr32, setHdr32,
} from "./layout";
import { nodeAddr, nGet, nSet, rebuildIndex } from "./trie";
import { windowOwnersMoved, windowRenumber } from "./window";

@inline function newId(id: u32): u32 { return id == 0 ? 0 : nGet(id, N_HNEXT); }

/** Give the children of every context under `root` consecutive ids from `next`; returns the next free id. */
function numberChildren(root: u32, next: u32): u32 {
  let node = root;
  for (;;) {
    for (let c = nGet(node, N_CHILD); c != 0; c = nGet(c, N_SIBLING)) nSet(c, N_HNEXT, next++);
    const first = nGet(node, N_CHILD);
    if (first != 0) { node = first; continue; }
    while (node != root && nGet(node, N_SIBLING) == 0) node = nGet(node, N_PARENT);
    if (node == root) return next;
    node = nGet(node, N_SIBLING);
  }
  return next;
}

@inline function swapRecords(i: u32, j: u32): void {
  const a = nodeAddr(i), b = nodeAddr(j);
  for (let f: usize = 0; f < <usize>NODE_BYTES; f += 4) {
    const x = load<u32>(a + f);
    store<u32>(a + f, load<u32>(b + f));
    store<u32>(b + f, x);
  }
}

export function compact(): void {
  const end = hdr32(H_NEXTNODE);
  const live = hdr32(H_NODES);
  // (1) new ids; the roots keep theirs.
  nSet(PAGE_ROOT, N_HNEXT, PAGE_ROOT);
  nSet(DELTA_ROOT, N_HNEXT, DELTA_ROOT);
  numberChildren(DELTA_ROOT, numberChildren(PAGE_ROOT, FIRST_NODE));
  // (2) links to new ids.
  for (let id: u32 = PAGE_ROOT; id < end; id++) {
    if (id >= FIRST_NODE && nGet(id, N_PARENT) == FREE_MARK) continue;
    nSet(id, N_PARENT, newId(nGet(id, N_PARENT)));
    nSet(id, N_CHILD, newId(nGet(id, N_CHILD)));
    nSet(id, N_SIBLING, newId(nGet(id, N_SIBLING)));
    nSet(id, N_PREV, newId(nGet(id, N_PREV)));
    windowRenumber(nGet(id, N_WIN), N_HNEXT);
  }
  const slots: u32 = 2 * (gOrder + 1);
  for (let s: u32 = 0; s < gStreams; s++) {
    const base = oStreams + <usize>s * streamStride + 4;
    for (let k: u32 = 0; k < slots; k++) store<u32>(base + (<usize>k << 2), newId(load<u32>(base + (<usize>k << 2))));
  }
  // The rehearsal's scratch record (index `streams`) is dead between rehearsals (each one starts by
  // copying a stream's record): empty its contexts rather than map ids it may hold from before.
  memory.fill(oStreams + <usize>gStreams * streamStride + 4, 0, <usize>slots << 2);
  // (3) every live record to its new slot (each swap puts one record in its final place).
  for (let i: u32 = FIRST_NODE; i < end; i++) {
    while (nGet(i, N_PARENT) != FREE_MARK && nGet(i, N_HNEXT) != i) swapRecords(i, nGet(i, N_HNEXT));
  }
  // (4) live nodes are ids FIRST_NODE .. FIRST_NODE + live - 1; rebuild the index over them.
  setHdr32(H_NEXTNODE, FIRST_NODE + live);
  setHdr32(H_FREE, 0);
  nSet(PAGE_ROOT, N_HNEXT, 0);
  nSet(DELTA_ROOT, N_HNEXT, 0);
  rebuildIndex();
  windowOwnersMoved(FIRST_NODE, FIRST_NODE + live, DELTA_ROOT);
}
