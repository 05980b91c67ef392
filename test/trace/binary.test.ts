import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, readdirSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBinaryTrace, decodeBinaryTrace, BinaryTraceParser, BinaryTraceError, writeBinaryTrace } from "../../src/trace/binary.js";
import { readTrace } from "../../src/trace/read.js";
import { parseTraceText, formatTraceLines, TraceFormatError, type TraceChunk } from "../../src/trace/format.js";
import { convertTrace } from "../../src/cli/convert.js";
import { Rng } from "../../src/util/random.js";

function randomTrace(n: number, seed = 7): TraceChunk {
  const r = new Rng(seed);
  const pages = new Uint32Array(n), gaps = new Uint32Array(n), streams = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    pages[i] = i % 97 === 0 ? 0xffffffff : i % 89 === 0 ? 0 : r.nextU32() % (i % 3 === 0 ? 100 : 0x100000000);
    gaps[i] = i % 101 === 0 ? 0xffffffff : r.below(1000);
    streams[i] = i % 103 === 0 ? 0xffff : r.below(4);
  }
  return { pages, gaps, streams, length: n };
}

const same = (a: TraceChunk, b: TraceChunk) => {
  assert.equal(a.length, b.length);
  assert.deepEqual(Array.from(a.pages), Array.from(b.pages));
  assert.deepEqual(Array.from(a.gaps), Array.from(b.gaps));
  assert.deepEqual(Array.from(a.streams), Array.from(b.streams));
};

const dir = mkdtempSync(join(tmpdir(), "ppm-binary-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("binary round trip keeps every field, extremes included, across several blocks", () => {
  const t = randomTrace(150_000);
  const bytes = encodeBinaryTrace(t);
  same(decodeBinaryTrace(bytes), t);
  const empty = { pages: new Uint32Array(0), gaps: new Uint32Array(0), streams: new Uint16Array(0), length: 0 };
  same(decodeBinaryTrace(encodeBinaryTrace(empty)), empty);
});

test("the decoder is incremental: any split of the byte stream gives the same trace", () => {
  const t = randomTrace(300, 3);
  const bytes = encodeBinaryTrace(t);
  for (const size of [1, 2, 3, 7, 64]) {
    const parts: TraceChunk[] = [];
    const p = new BinaryTraceParser("x", (c) => parts.push(c));
    for (let o = 0; o < bytes.length; o += size) p.push(bytes.subarray(o, o + size));
    p.end();
    assert.equal(parts.reduce((a, c) => a + c.length, 0), 300);
    assert.deepEqual(parts.flatMap((c) => Array.from(c.pages)), Array.from(t.pages));
  }
});

test("the binary format is compact on a sequential trace (<= 3 bytes per access)", () => {
  const n = 10_000;
  const t = { pages: Uint32Array.from({ length: n }, (_, i) => i), gaps: new Uint32Array(n).fill(20), streams: new Uint16Array(n), length: n };
  assert.ok(encodeBinaryTrace(t).length <= 3 * n + 64);
});

test("malformed binary input is rejected with the file and byte offset", () => {
  const good = new Uint8Array(encodeBinaryTrace(randomTrace(50))); // a copy: Buffer#slice would alias
  const cases: [string, Uint8Array, RegExp][] = [
    ["bad magic", Uint8Array.from([0x50, 0x50, 0x4d, 0x58, 1, 0, 0, 0]), /bad magic/],
    ["version", (() => { const b = good.slice(); b[4] = 9; return b; })(), /unsupported version 9/],
    ["truncated", good.subarray(0, good.length - 20), /truncated|past the end/],
    ["no trailer", good.subarray(0, good.length - 12), /no trailer/],
    ["count", (() => { const b = good.slice(); b[b.length - 8] ^= 1; return b; })(), /trailer says/],
    ["extra bytes", Buffer.concat([good, Uint8Array.of(1)]), /after the trailer/],
    ["empty", new Uint8Array(0), /empty file/],
  ];
  for (const [name, bytes, re] of cases) {
    assert.throws(() => decodeBinaryTrace(bytes, "t.ppmt"), (e: unknown) => e instanceof BinaryTraceError && re.test((e as Error).message) && (e as Error).message.startsWith("t.ppmt: byte "), name);
  }
  // a stream id above 65535 inside an otherwise well-formed block
  const bad = Buffer.concat([good.subarray(0, 8), Buffer.from([1, 0, 0, 0, 5, 0, 0, 0, 0, 1, 0x80, 0x80, 0x04]), Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])]);
  assert.throws(() => decodeBinaryTrace(bad, "s"), /stream 65536 exceeds 65535/);
});

test("readTrace detects text, gzipped text, binary and gzipped binary by content", async () => {
  const t = randomTrace(2000, 11);
  const text = "# comment\n" + formatTraceLines(t);
  const files: Record<string, Uint8Array | string> = {
    "a.txt": text, "a.weird": gzipSync(text), "b.ppmt": encodeBinaryTrace(t), "b.ppmt.gz": gzipSync(encodeBinaryTrace(t)),
  };
  for (const [name, data] of Object.entries(files)) {
    writeFileSync(join(dir, name), data);
    same(await readTrace(join(dir, name)), t);
  }
  assert.equal((await readTrace(join(dir, "b.ppmt"), { limit: 10 })).length, 10);
});

test("writeBinaryTrace streams chunks and convert goes text -> binary -> gzipped text losslessly", async () => {
  const t = randomTrace(70_000, 5);
  const halves = [
    { pages: t.pages.subarray(0, 30_000), gaps: t.gaps.subarray(0, 30_000), streams: t.streams.subarray(0, 30_000), length: 30_000 },
    { pages: t.pages.subarray(30_000), gaps: t.gaps.subarray(30_000), streams: t.streams.subarray(30_000), length: 40_000 },
  ];
  assert.equal(await writeBinaryTrace(join(dir, "w.ppmt"), halves), 70_000);
  same(decodeBinaryTrace(readFileSync(join(dir, "w.ppmt"))), t);
  assert.equal(await convertTrace(join(dir, "w.ppmt"), join(dir, "w.txt.gz"), "text"), 70_000);
  assert.equal(await convertTrace(join(dir, "w.txt.gz"), join(dir, "w2.ppmt"), "binary"), 70_000);
  same(decodeBinaryTrace(readFileSync(join(dir, "w2.ppmt"))), t);
  same(await readTrace(join(dir, "w.txt.gz")), t);
});

test("a malformed text line fails the conversion and leaves no output behind", async () => {
  writeFileSync(join(dir, "bad.txt"), "1 2\n3 4\n5 x\n");
  await assert.rejects(convertTrace(join(dir, "bad.txt"), join(dir, "bad.ppmt"), "binary"), (e: unknown) => e instanceof TraceFormatError && /bad\.txt:3/.test((e as Error).message));
  assert.equal(existsSync(join(dir, "bad.ppmt")), false);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".tmp-")), []);
  assert.equal(parseTraceText("0x10 5 2\n").pages[0], 16);
});
