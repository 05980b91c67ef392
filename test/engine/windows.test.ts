// Successor windows (assembly/window.ts): a cache of each wide context's first SCAN successors that
// scoring reads instead of the sibling list. The differential tests check that outputs equal the
// reference model's (which has no windows) and the validate-property test that every image the
// engine makes passes the restore-time check (which compares every window with its list). Here:
// that windows are in fact used, that an arena with too few windows falls back (WIN_WIDE) and
// recovers them after a prune without changing any output, that a window disagreeing with its list
// or broken window counts are refused on restore, and that a snapshot of the format before windows is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor } from "../../src/engine/predictor.js";
import { createReferencePredictor } from "../../src/reference/ppm.js";
import { instantiateCore, ABI } from "../../src/engine/wasm.js";
import { decodeSnapshot, encodeSnapshot, FORMAT_VERSION } from "../../src/engine/snapshot.js";
import { crc32 } from "../../src/util/crc32.js";

const x = instantiateCore() as unknown as Record<string, WebAssembly.Global>;
const g = (name: string): number => (x[`ABI_${name}`].value as number) >>> 0;
const H = ABI.header;
const [H_O_NODES, H_O_WIN, H_WNEXT, H_WFREE, H_WUSED] = ["H_O_NODES", "H_O_WIN", "H_WNEXT", "H_WFREE", "H_WUSED"].map(g);
const [NODE_BYTES, N_WIN, WIN_MIN, WIN_WIDE, WIN_BYTES, W_N, W_OWNER] = ["NODE_BYTES", "N_WIN", "WIN_MIN", "WIN_WIDE", "WIN_BYTES", "W_N", "W_OWNER"].map(g);

const u32 = (img: Uint8Array, at: number) => new DataView(img.buffer, img.byteOffset, img.byteLength).getUint32(at, true);
const setU32 = (img: Uint8Array, at: number, v: number) => new DataView(img.buffer, img.byteOffset, img.byteLength).setUint32(at, v, true);

/** The core's memory image in a snapshot (a view), and a snapshot of an edited copy of it. */
const imageOf = (snap: Uint8Array) => decodeSnapshot(snap).memory;
function edited(snap: Uint8Array, edit: (img: Uint8Array) => void): Uint8Array {
  const { options, memory, pending } = decodeSnapshot(snap);
  const img = memory.slice();
  edit(img);
  return encodeSnapshot(options, img, pending);
}

/** N_WIN of every node slot handed out (roots included). */
function windowFields(img: Uint8Array): number[] {
  const nodes = u32(img, H + H_O_NODES);
  const next = u32(img, H + 108); // H_NEXTNODE
  return Array.from({ length: next }, (_, id) => u32(img, nodes + id * NODE_BYTES + N_WIN));
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** A stream whose contexts fan out: `hot` pages, each followed by any of the others. */
function fanOut(n: number, pageCount: number, seed: number, hot = 6): Uint32Array {
  const r = seeded(seed);
  return Uint32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? Math.floor(r() * hot) : hot + Math.floor(r() * (pageCount - hot))));
}

test("wide contexts get windows; narrow ones keep their child count; the image validates", () => {
  const p = createPredictor({ pageCount: 4000, streams: 1, maxContexts: 1 << 14 });
  p.train(fanOut(20000, 4000, 1));
  const snap = p.snapshot();
  const img = imageOf(snap);
  const used = u32(img, H + H_WUSED);
  assert.ok(used > 0, "no window in use");
  const fields = windowFields(img);
  assert.equal(fields[1], WIN_WIDE, "the page root is never given a window (its children are found by hash)");
  const owned = fields.filter((f) => f >= WIN_MIN && f !== WIN_WIDE);
  assert.equal(owned.length, used);
  assert.equal(fields.filter((f, id) => id !== 1 && f === WIN_WIDE).length, 0, "the arena had windows to spare");
  assert.ok(fields.some((f) => f > 0 && f < WIN_MIN), "narrow contexts count their children");
  restorePredictor(snap); // validates every window against its list
});

test("too few windows: wide contexts fall back to their lists, a prune hands windows out again, outputs equal the reference", () => {
  // 600 contexts: 18 windows; 50 pages in random order make every page's context wide.
  const opts = { pageCount: 300, streams: 1, maxContexts: 600, filter: 0, order: 1 } as const;
  const p = createPredictor(opts);
  const r = createReferencePredictor(opts);
  const rnd = seeded(2);
  const hist = Uint32Array.from({ length: 3000 }, () => Math.floor(rnd() * 50));
  let sawWide = false, sawFree = false;
  for (let i = 0; i < hist.length; i += 100) {
    const part = hist.subarray(i, i + 100);
    p.train(part);
    r.train(part);
    const snap = p.snapshot();
    const img = imageOf(snap);
    const fields = windowFields(img);
    sawWide ||= fields.some((f, id) => id !== 1 && f === WIN_WIDE); // (the page root always is)
    sawFree ||= u32(img, H + H_WFREE) !== 0;
    assert.ok(u32(img, H + H_WUSED) <= 18);
    restorePredictor(snap);
    const f = hist[(i * 7) % hist.length];
    assert.deepEqual(Array.from(p.predictNext(f)), Array.from(r.predictNext(f)), `after ${i + 100} pages`);
  }
  assert.ok(sawWide, "no context was ever WIN_WIDE");
  assert.ok(sawFree, "no window was ever freed (prunes and ageing free them)");
});

test("restore refuses a window that disagrees with its list, and a broken window free list", () => {
  const p = createPredictor({ pageCount: 4000, streams: 1, maxContexts: 1 << 14 });
  p.train(fanOut(20000, 4000, 3));
  const snap = p.snapshot();
  const img = imageOf(snap);
  const fields = windowFields(img);
  const owner = fields.findIndex((f) => f >= WIN_MIN && f !== WIN_WIDE);
  const win = u32(img, H + H_O_WIN) + (fields[owner] - WIN_MIN) * WIN_BYTES;
  assert.equal(u32(img, win + W_OWNER), owner);
  assert.ok(u32(img, win + W_N) >= WIN_MIN);

  const badSymbol = edited(snap, (m) => setU32(m, win, u32(m, win) ^ 1)); // its first successor's symbol
  assert.throws(() => restorePredictor(badSymbol), (e: Error) => e instanceof RangeError && e.message.includes(`node ${owner}'s successor window`));
  const badCount = edited(snap, (m) => setU32(m, win + W_N, u32(m, win + W_N) - 1));
  assert.throws(() => restorePredictor(badCount), /successor window/);
  const narrow = fields.findIndex((f, id) => id > 2 && f > 0 && f < WIN_MIN);
  const nodes = u32(img, H + H_O_NODES);
  const badField = edited(snap, (m) => setU32(m, nodes + narrow * NODE_BYTES + N_WIN, fields[narrow] + 1)); // a wrong child count
  assert.throws(() => restorePredictor(badField), new RegExp(`node ${narrow}'s successor window`));
  const badUsed = edited(snap, (m) => setU32(m, H + H_WUSED, u32(m, H + H_WUSED) - 1));
  assert.throws(() => restorePredictor(badUsed), /successor windows' free list or counts/);
  const badNext = edited(snap, (m) => setU32(m, H + H_WNEXT, 1 << 30));
  assert.throws(() => restorePredictor(badNext), /windows handed out/);
  restorePredictor(snap); // the original still passes
});

test("a snapshot of the format before windows (version 8) is refused, naming both versions", () => {
  const snap = createPredictor({ pageCount: 100, streams: 1, maxContexts: 64 }).snapshot();
  const fixed = snap.slice();
  const dv = new DataView(fixed.buffer);
  dv.setUint32(4, FORMAT_VERSION - 1, true);
  dv.setUint32(fixed.length - 4, crc32(fixed.subarray(0, fixed.length - 4)), true);
  assert.throws(() => restorePredictor(fixed), new RegExp(`snapshot format version ${FORMAT_VERSION - 1}; this build reads version ${FORMAT_VERSION}`));
  const foreign = edited(snap, (m) => setU32(m, H, 0x12345678));
  assert.throws(() => restorePredictor(foreign), /without the engine's header: magic 0x12345678/);
});
