// Snapshots are untrusted input (models travel between hosts as files): bytes that pass the CRC but
// were not written by snapshot() must be refused with a RangeError naming what is wrong, or restore a
// model that works. Never a Wasm trap, never a hang. Seeded and bounded: a few seconds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor } from "../../src/index.js";
import { decodeSnapshot, encodeSnapshot } from "../../src/engine/snapshot.js";
import { crc32 } from "../../src/util/crc32.js";
import type { WasmPredictor } from "../../src/engine/predictor.js";

const SEED = 0x5eed2026;
const CASE_MS = 1000; // per case: restore, then train/predictNext/observe/compact/snapshot

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

/** A model with every structure in use: pruned (a free list), streams, the filter, a pending history. */
function model(): WasmPredictor {
  const rnd = rng(SEED);
  const pageCount = 5000;
  const p = createPredictor({ pageCount, maxContexts: 1024, streams: 3, filter: 64, order: 3 });
  const hot = Array.from({ length: 40 }, () => Math.floor(rnd() * pageCount));
  const h = Uint32Array.from({ length: 24000 }, (_, i) => (rnd() < 0.6 ? hot[(i * 7) % 40] : Math.floor(rnd() * pageCount)));
  p.train(h.subarray(0, 16000), 0);
  p.train(h.subarray(16000), 1);
  for (let i = 0; i < 60; i++) p.predictNext(h[(i * 7919) % h.length], i % 3); // runs the rehearsal
  for (let i = 0; i < 20; i++) p.observe(h[(i * 104729) % h.length], 2);
  p.markPresentRange(100, 300);
  p.train(h.subarray(0, 9000), 2); // pending again
  assert.ok(p.stats().prunes > 0 && p.stats().pendingHistory === 9000);
  return p;
}

// CRC-32 is affine: flipping bits `mask` of byte p of an n-byte message changes its CRC by
// T(mask) x^(8(n-p-1)) mod P, whatever the other bytes are (zlib's crc32_combine arithmetic). The
// flips below use it to keep each case's CRC right without hashing the megabyte again.
const POLY = 0xedb88320;
function multmodp(a: number, b: number): number {
  let m = 0x80000000, p = 0;
  for (;;) {
    if (a & m) { p ^= b; if ((a & (m - 1)) === 0) break; }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multmodp(X2N[k - 1], X2N[k - 1]));
function x8nmodp(n: number): number { // x^(8n) mod P
  let p = 0x80000000, k = 3;
  for (; n > 0; n = Math.floor(n / 2), k++) if (n % 2) p = multmodp(X2N[k & 31], p);
  return p;
}
function byteTerm(b: number): number {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  return c >>> 0;
}
/** Flip bits `mask` of bytes[at] in place and patch the stored CRC to match (its own inverse). */
function flip(bytes: Uint8Array, at: number, mask: number): void {
  const n = bytes.length - 4;
  bytes[at] ^= mask;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  dv.setUint32(n, (dv.getUint32(n, true) ^ multmodp(x8nmodp(n - at - 1), byteTerm(mask))) >>> 0, true);
}

interface Tally { refused: number; restored: number; reasons: Map<string, number>; slowest: number }

/** One case: a RangeError, or a model that works (within CASE_MS), whose own snapshot restores. */
function runCase(bytes: Uint8Array, tally: Tally, label: string, roundTrip: boolean): void {
  const t0 = performance.now();
  let q: WasmPredictor;
  try {
    q = restorePredictor(bytes);
  } catch (e) {
    assert.ok(e instanceof RangeError, `${label}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match(e.message, /^bytes /, label);
    tally.refused++;
    const reason = e.message.replace(/[0-9]+/g, "N").replace(/0xN?[a-f0-9N]*/g, "0xN");
    tally.reasons.set(reason, (tally.reasons.get(reason) ?? 0) + 1);
    return;
  }
  tally.restored++;
  const pc = q.options.pageCount;
  try {
    q.train(Uint32Array.from({ length: 300 }, (_, i) => (i * 37) % pc), 1);
    for (let i = 0; i < 12; i++) {
      const out = q.predictNext((i * 613) % pc, i % q.options.streams);
      for (const page of out) assert.ok(page < pc, `${label}: predicted page ${page}`);
    }
    q.observe(7 % pc, 0);
    q.compact();
    q.predictNext(11 % pc, 0);
    const again = q.snapshot();
    if (roundTrip) restorePredictor(again); // a model that ran must still validate
  } catch (e) {
    assert.fail(`${label}: a restored model failed: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
  const ms = performance.now() - t0;
  tally.slowest = Math.max(tally.slowest, ms);
  assert.ok(ms < CASE_MS, `${label}: ${ms.toFixed(0)} ms`);
}

function newTally(): Tally { return { refused: 0, restored: 0, reasons: new Map(), slowest: 0 }; }

const base = model();
const good = base.snapshot();
const parts = decodeSnapshot(good);
const memAt = 20 + new DataView(good.buffer).getUint32(8, true); // the memory image's offset in the snapshot
const memLen = parts.memory.length;
const pendingAt = memAt + memLen;
const work = good.slice(); // flipped in place, case by case, and flipped back

test("the CRC patch of a flip is the CRC of the flipped bytes", () => {
  for (const at of [0, 25, memAt + 3, memAt + 70000, good.length - 5]) {
    flip(work, at, 0x24);
    assert.equal(new DataView(work.buffer).getUint32(work.length - 4, true), crc32(work.subarray(0, work.length - 4)));
    flip(work, at, 0x24);
  }
  assert.deepEqual(work, good);
});

/** One flipped case, in place. */
function flipCase(at: number, mask: number, tally: Tally, label: string, roundTrip: boolean): void {
  flip(work, at, mask);
  try { runCase(work, tally, label, roundTrip); } finally { flip(work, at, mask); }
}

test("fuzz: every bit of the core header (bytes 0-255 of the image) flipped, CRC recomputed", { timeout: 120_000 }, () => {
  const tally = newTally();
  const t0 = performance.now();
  for (let bit = 0; bit < 256 * 8; bit++) flipCase(memAt + (bit >> 3), 1 << (bit & 7), tally, `header bit ${bit}`, bit % 16 === 0);
  assert.equal(tally.refused + tally.restored, 2048);
  assert.ok(tally.refused > 1500, `refused ${tally.refused}`); // configuration, offsets, reserved bytes, arena counters
  console.log(`header bits: ${tally.refused} refused, ${tally.restored} restored and worked; slowest case ${tally.slowest.toFixed(1)} ms; ${(performance.now() - t0).toFixed(0)} ms`);
  console.log([...tally.reasons].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([r, n]) => `  ${n} x ${r}`).join("\n"));
});

test("fuzz: a seeded sample of body bits (arena, buckets, streams, filter, bitmap, scratch, pending, options) flipped", { timeout: 120_000 }, () => {
  const tally = newTally();
  const rnd = rng(SEED ^ 0xb0d7);
  const dv = new DataView(parts.memory.buffer, parts.memory.byteOffset);
  const off = (f: number) => dv.getUint32(64 + f, true);
  // Sections that hold state, weighted toward the node arena and the index: [start, end).
  const nodes = off(92), buckets = off(100), streams = off(64), lru = off(68), bitmap = off(84);
  const liveEnd = nodes + off(108) * 28;
  const regions: [string, number, number, number][] = [ // name, start, end (bytes of the image), cases
    ["nodes", nodes, liveEnd, 160],
    ["buckets", buckets, buckets + off(88) * 4, 40],
    ["streams", streams, lru, 40],
    ["filter", lru, off(72), 30],
    ["bitmap", bitmap, buckets, 10],
    ["scratch", off(80), bitmap, 10],
    ["anywhere", 256, memLen, 20],
  ];
  const t0 = performance.now();
  let n = 0;
  for (const [name, start, end, cases] of regions) {
    for (let k = 0; k < cases; k++, n++) {
      const byte = start + Math.floor(rnd() * (end - start));
      flipCase(memAt + byte, 1 << Math.floor(rnd() * 8), tally, `${name} byte ${byte}`, k % 8 === 0);
    }
  }
  // The pending histories and the options JSON.
  for (let k = 0; k < 40; k++, n++) {
    const at = k < 30 ? pendingAt + Math.floor(rnd() * (good.length - 4 - pendingAt)) : 20 + Math.floor(rnd() * (memAt - 20));
    flipCase(at, 1 << Math.floor(rnd() * 8), tally, `envelope byte ${at}`, false);
  }
  assert.equal(tally.refused + tally.restored, n);
  assert.ok(tally.refused > n / 3, `refused ${tally.refused} of ${n}`);
  console.log(`body bits: ${n} cases, ${tally.refused} refused, ${tally.restored} restored and worked; slowest case ${tally.slowest.toFixed(1)} ms; ${(performance.now() - t0).toFixed(0)} ms`);
  console.log([...tally.reasons].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([r, n]) => `  ${n} x ${r}`).join("\n"));
});

test("fuzz: random cores (random bytes; a valid header over a random body; a random arena) are refused", { timeout: 60_000 }, () => {
  const tally = newTally();
  const rnd = rng(SEED ^ 0xc0de);
  const random = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
  const dv = new DataView(parts.memory.buffer, parts.memory.byteOffset);
  const nodes = dv.getUint32(64 + 92, true);
  for (let k = 0; k < 24; k++) {
    const mem = random(memLen);
    if (k % 3 >= 1) mem.set(parts.memory.subarray(0, 256)); // the real header
    if (k % 3 === 2) { mem.set(parts.memory); mem.set(random(dv.getUint32(64 + 108, true) * 28), nodes); } // only the arena random
    if (k % 6 === 0) mem.set(parts.memory.subarray(64, 68), 64); // the magic only
    runCase(encodeSnapshot(parts.options, mem, parts.pending), tally, `random core ${k}`, true);
  }
  assert.equal(tally.restored, 0);
  console.log([...tally.reasons].map(([r, n]) => `  ${n} x ${r}`).join("\n"));
});

test("restore: the envelope's options must agree with the core header (each field named)", () => {
  const o = parts.options as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ depth: 9 }, /bytes holds a core whose depth is 8, but its options say 9/],
    [{ order: 2 }, /bytes holds a core whose order is 3, but its options say 2/], // named, though the layout changes size too
    [{ filter: 32 }, /bytes holds a core whose filter is 64, but its options say 32/],
    [{ memoryBytes: 1 << 24 }, /bytes holds invalid options: memoryBytes \(a snapshot stores the arena size/],
    [{ lookahead: 9 }, /core whose lookahead is 8, but its options say 9/],
    [{ threshold: 0.001 }, /core whose threshold is 0.0001, but its options say 0.001/],
    [{ escape: "C" }, /core whose escape is "D", but its options say "C"/],
    [{ ageLimit: 1000 }, /core whose ageLimit is 65534, but its options say 1000/],
    [{ deltaRange: 65 }, /core whose deltaRange is 64, but its options say 65/],
  ];
  for (const [change, msg] of cases) {
    assert.throws(() => restorePredictor(encodeSnapshot({ ...o, ...change }, parts.memory, parts.pending)),
      (e: Error) => e instanceof RangeError && msg.test(e.message), `${JSON.stringify(change)}: ${msg}`);
  }
  // A 65536-page core under options of 65535 pages: the same memory size, refused by name.
  const big = createPredictor({ pageCount: 65536, maxContexts: 64 });
  const bp = decodeSnapshot(big.snapshot());
  assert.throws(() => restorePredictor(encodeSnapshot({ ...(bp.options as object), pageCount: 65535 }, bp.memory, bp.pending)),
    /bytes holds a core whose pageCount is 65536, but its options say 65535/);
});
