// Stamped scratch tables: open-addressing sets of u32 keys (slots of key u32, generation u32, value
// u32), each emptied in O(1) by drawing a new generation from one shared counter. The search uses
// three (predict.ts): candidate pages, excluded symbols, pages already followed; the switch-over
// rehearsal one (rehearse.ts): the pages of the current suffix. Each is sized to twice the most keys
// one use can insert (one expansion offers at most SCAN successors per context: SCAN x (2K + 1)
// candidates, SCAN x (K + 1) excluded symbols per alphabet; one search follows at most
// 1 + lookahead x BRANCH pages; one suffix holds at most REHEARSAL_PAGES + 1), so no table fills up
// and a probe always ends; the search's small tables stay in the L1/L2 caches.
import {
  R_TABLES, TABLE_REGISTERS, H_GEN, SCAN, BRANCH, SCRATCH_SLOTS, REHEARSAL_SLOTS, gOrder, gLookahead, oSeen, oRehearse,
  hdr32, setHdr32,
} from "./layout";

export const SLOT_BYTES: usize = 12;
export const T_CAND: u32 = 0;
export const T_EXCL: u32 = 1;
export const T_SEEN: u32 = 2;
export const T_REHEARSE: u32 = 3;
// Per-table generation, slot mask and base address: 3 x 4 u32 registers at R_TABLES (layout.ts).
@inline function tableGen(t: u32): usize { return R_TABLES + (<usize>t << 2); }
@inline function tableMask(t: u32): u32 { return load<u32>(R_TABLES + 16 + (<usize>t << 2)); }
@inline function tableBase(t: u32): usize { return <usize>load<u32>(R_TABLES + 32 + (<usize>t << 2)); }
export { TABLE_REGISTERS };

@inline function slotsFor(keys: u32): u32 {
  let n: u32 = 16;
  while (n < 2 * keys) n <<= 1;
  return n;
}

@inline function placeTable(t: u32, slots: u32, base: usize): usize {
  store<u32>(R_TABLES + 16 + (<usize>t << 2), slots - 1);
  store<u32>(R_TABLES + 32 + (<usize>t << 2), <u32>base);
  return base + <usize>slots * SLOT_BYTES;
}

/** Size the tables for this configuration: once per init or attach, not per use. */
export function layoutTables(): usize {
  let base = placeTable(T_CAND, slotsFor(SCAN * (2 * gOrder + 1)), oSeen);
  base = placeTable(T_EXCL, slotsFor(SCAN * (gOrder + 1)), base);
  base = placeTable(T_SEEN, slotsFor(1 + gLookahead * BRANCH), base);
  placeTable(T_REHEARSE, REHEARSAL_SLOTS, oRehearse);
  return base; // the end of the search's tables: init checks it against their reserved slots
}

/**
 * Generations only grow; long before they could wrap, wipe every table. Called before a use that
 * draws generations (one search draws at most 1 + 3 x lookahead, one suffix 1), never during one.
 */
export function reserveGenerations(): void {
  if (hdr32(H_GEN) <= 0x7fff0000) return;
  memory.fill(oSeen, 0, <usize>SCRATCH_SLOTS * SLOT_BYTES * 3);
  memory.fill(oRehearse, 0, <usize>REHEARSAL_SLOTS * SLOT_BYTES);
  setHdr32(H_GEN, 0);
}

/** Empty table t. */
export function clearTable(t: u32): void {
  const g = hdr32(H_GEN) + 1;
  setHdr32(H_GEN, g);
  store<u32>(tableGen(t), g);
}

@inline function mix(k: u32, mask: u32): u32 {
  let h = k * 0x9e3779b1;
  h ^= h >> 16;
  return h & mask;
}

/** Whether the last slotOf inserted its key (it was not in the table). */
export let fresh = false;

/** Find or insert `key` in table t; returns the slot address (its value u32 is at +8); sets `fresh`. */
export function slotOf(t: u32, key: u32): usize {
  const base = tableBase(t);
  const mask = tableMask(t);
  const g = load<u32>(tableGen(t));
  let i = mix(key, mask);
  for (;;) {
    const a = base + <usize>i * SLOT_BYTES;
    if (load<u32>(a + 4) != g) {
      store<u32>(a, key);
      store<u32>(a + 4, g);
      fresh = true;
      return a;
    }
    if (load<u32>(a) == key) { fresh = false; return a; }
    i = (i + 1) & mask;
  }
  return 0;
}
