// Access kinds (write flags) in traces: the optional `r`/`w` column of the text format, the W blocks of
// binary version 2, how both read next to older traces, and trace-stats' write figures.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  TextTraceParser, TraceBuilder, TraceFormatError, MAX_LINE, formatTraceLines, parseTraceText, readTextTrace, type TraceChunk,
} from "../../src/trace/format.js";
import { BinaryTraceEncoder, BinaryTraceError, decodeBinaryTrace, encodeBinaryTrace, writeBinaryTrace } from "../../src/trace/binary.js";
import { readTrace } from "../../src/trace/read.js";
import { computeTraceStats, formatTraceStats } from "../../src/trace/stats.js";
import { convertTrace } from "../../src/cli/convert.js";
import { Rng } from "../../src/util/random.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(join(tmpdir(), "ppm-kinds-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function randomTrace(n: number, seed: number, withWrites: boolean): TraceChunk {
  const r = new Rng(seed);
  const pages = new Uint32Array(n), gaps = new Uint32Array(n), streams = new Uint16Array(n), writes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    pages[i] = i % 97 === 0 ? 0xffffffff : r.nextU32() % (i % 3 === 0 ? 100 : 0x100000000);
    gaps[i] = i % 101 === 0 ? 0xffffffff : r.below(1000);
    streams[i] = i % 103 === 0 ? 0xffff : r.below(3) === 0 ? r.below(4) : 0;
    writes[i] = r.below(3) === 0 ? 1 : 0;
  }
  return withWrites ? { pages, gaps, streams, writes, length: n } : { pages, gaps, streams, length: n };
}

function samePGS(a: TraceChunk, b: TraceChunk, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  assert.deepEqual(Array.from(a.pages), Array.from(b.pages), `${what}: pages`);
  assert.deepEqual(Array.from(a.gaps), Array.from(b.gaps), `${what}: gaps`);
  assert.deepEqual(Array.from(a.streams), Array.from(b.streams), `${what}: streams`);
}

function sameAll(a: TraceChunk, b: TraceChunk, what: string): void {
  samePGS(a, b, what);
  assert.deepEqual(a.writes && Array.from(a.writes), b.writes && Array.from(b.writes), `${what}: writes`);
}

// ---------------------------------------------------------------------------------------------
// Text

test("text: the kind column is optional; with and without it the same pages, gaps and streams", () => {
  const plain = parseTraceText("# c\n5 10\n0x2a 3 2\n7\n\n9 4 # trailing comment\n");
  const kinds = parseTraceText("# c\n5 10 w\n0x2a 3 2 r\n7 w\n\n9 4 r # trailing comment\n");
  samePGS(kinds, plain, "kinds vs plain");
  assert.deepEqual(Array.from(plain.pages), [5, 42, 7, 9]);
  assert.deepEqual(Array.from(plain.gaps), [10, 3, 1, 4]);
  assert.deepEqual(Array.from(plain.streams), [0, 2, 0, 0]);
  assert.equal(plain.writes, undefined, "no kinds: unknown");
  assert.deepEqual(Array.from(kinds.writes!), [1, 0, 1, 0]);
  // tabs and CRLF, a kind right after the page (gap defaults to 1)
  const t = parseTraceText("1\t2\tw\r\n3 r\r\n");
  assert.deepEqual(Array.from(t.gaps), [2, 1]);
  assert.deepEqual(Array.from(t.writes!), [1, 0]);
  // an empty text has no kinds
  assert.equal(parseTraceText("# nothing\n").writes, undefined);
});

test("text: malformed kinds and mixed files are rejected with the line number and the text", () => {
  const cases: [string, number, RegExp][] = [
    ["1 2 x\n", 1, /stream is not a non-negative integer \(nor an access kind r or w\)/],
    ["1 2 W\n", 1, /nor an access kind r or w/],
    ["1 2 w 3\n", 1, /nothing but a comment may follow the access kind/],
    ["1 2 w w\n", 1, /nothing but a comment may follow the access kind/],
    ["1 2 wr\n", 1, /nor an access kind/],
    ["w 2\n", 1, /page is not a non-negative integer/],
    ["1 2 3 4 w\n", 1, /too many fields/],
    ["1 2 w\n# ok\n3 4\n", 3, /no access kind \(r or w\) on this line, but the earlier lines have one/],
    ["1 2\n3 4 r\n", 2, /an access kind on this line, but the earlier lines have none/],
  ];
  for (const [text, line, re] of cases) {
    assert.throws(() => parseTraceText(text, "k.txt"), (e: unknown) =>
      e instanceof TraceFormatError && e.line === line && re.test(e.message) && e.message.startsWith(`k.txt:${line}: `), JSON.stringify(text));
  }
});

test("text: the parser is incremental with kinds (a mixed file is caught across chunks)", () => {
  const t = randomTrace(3000, 4, true);
  const bytes = Buffer.from(formatTraceLines(t));
  for (const size of [1, 3, 7, 4096, 70_000]) {
    const b = new TraceBuilder();
    const p = new TextTraceParser("x", (c) => b.add(c));
    for (let o = 0; o < bytes.length; o += size) p.push(bytes.subarray(o, o + size));
    p.end();
    sameAll(b.build("x"), t, `chunks of ${size}`);
  }
  // 70,000 lines with kinds, then one without: the parser has already emitted a full chunk when it fails.
  const big = randomTrace(70_000, 5, true);
  const text = formatTraceLines(big) + "1 2\n";
  assert.throws(() => parseTraceText(text, "big"), (e: unknown) => e instanceof TraceFormatError && e.line === 70_001);
});

test("text: a line is at most MAX_LINE bytes: a long comment split over many buffers parses, a file without newlines is refused early", () => {
  // a 300 KB comment line, then data, fed in 1000-byte buffers: the comment grows across 300 of them
  const text = "# " + "c".repeat(300_000) + "\n5\n6 1\n";
  const bytes = Buffer.from(text);
  const b = new TraceBuilder();
  const p = new TextTraceParser("x", (c) => b.add(c));
  for (let o = 0; o < bytes.length; o += 1000) p.push(bytes.subarray(o, o + 1000));
  p.end();
  assert.deepEqual(Array.from(b.build("x").pages), [5, 6]);
  // no newline at all: refused once past MAX_LINE, naming line 2 (after one good line), not after reading everything
  const q = new TextTraceParser("zeros", () => {});
  q.push(Buffer.from("7\n"));
  const block = new Uint8Array(65536);
  let fed = 0;
  assert.throws(() => { for (;;) { q.push(block); fed += block.length; } },
    (e: unknown) => e instanceof TraceFormatError && e.line === 2 && /line longer than 1048576 bytes/.test(e.message));
  assert.ok(fed <= MAX_LINE, `refused after ${fed} bytes`);
});

test("TraceBuilder keeps writes through limits and growth, and refuses chunks that disagree", () => {
  const t = randomTrace(200_000, 6, true);
  const b = new TraceBuilder();
  for (let o = 0; o < t.length; o += 30_000) {
    const e = Math.min(t.length, o + 30_000);
    b.add({ pages: t.pages.subarray(o, e), gaps: t.gaps.subarray(o, e), streams: t.streams.subarray(o, e), writes: t.writes!.subarray(o, e), length: e - o }, 150_001);
  }
  const built = b.build("b");
  assert.equal(built.length, 150_001);
  assert.deepEqual(Array.from(built.writes!), Array.from(t.writes!.subarray(0, 150_001)));
  const mixed = new TraceBuilder();
  mixed.add(randomTrace(10, 1, true));
  assert.throws(() => mixed.add(randomTrace(10, 2, false)), /a chunk without access kinds \(writes\) after chunks with them, at access 10/);
  const mixed2 = new TraceBuilder();
  mixed2.add(randomTrace(0, 1, false)); // an empty chunk decides nothing
  mixed2.add(randomTrace(10, 1, true));
  assert.throws(() => mixed2.add(randomTrace(10, 2, false)), /without access kinds/);
});

// ---------------------------------------------------------------------------------------------
// Binary

test("binary: write flags round-trip across blocks (counts not a multiple of 8); no flags stay no flags", () => {
  for (const n of [0, 1, 7, 8, 9, 65_536, 65_537, 150_003]) {
    const t = randomTrace(n, n + 1, true);
    sameAll(decodeBinaryTrace(encodeBinaryTrace(t)), n === 0 ? { ...t, writes: undefined } : t, `n=${n} with writes`);
    const p = randomTrace(n, n + 1, false);
    const back = decodeBinaryTrace(encodeBinaryTrace(p));
    sameAll(back, p, `n=${n} without writes`);
    assert.equal(back.writes, undefined);
  }
  // The flags cost one bit per record.
  const t = randomTrace(80_000, 9, true);
  const withW = encodeBinaryTrace(t).length;
  const without = encodeBinaryTrace({ ...t, writes: undefined }).length;
  assert.equal(withW - without, 10_000 /* 65536/8 + ceil(14464/8) */);
});

test("binary: a real version-1 file (written by the encoder before write flags) reads as before", async () => {
  // test/trace/sqlite-5k-v1.ppmt: the first 5,000 accesses of test/fixtures/sqlite-300k.txt.gz, encoded by
  // src/trace/binary.ts as of commit afca1b1 (version 1).
  const file = join(ROOT, "test/trace/sqlite-5k-v1.ppmt");
  assert.equal(readFileSync(file)[4], 1, "the fixture is version 1");
  const old = await readTrace(file);
  assert.equal(old.writes, undefined);
  sameAll(old, await readTrace(join(ROOT, "test/fixtures/sqlite-300k.txt.gz"), { limit: 5000 }), "v1 fixture vs text");
  await convertTrace(file, join(dir, "v1.txt"), "text");
  sameAll(await readTrace(join(dir, "v1.txt")), old, "v1 -> text");
});

test("binary: version-1 files (written before write flags) still read, pages and gaps unchanged", () => {
  const t = randomTrace(70_000, 12, false);
  const v2 = new Uint8Array(encodeBinaryTrace(t));
  // A version-1 file is byte for byte a flagless version-2 file with 1 in the version field: the
  // earlier writer produced exactly these blocks (the block format did not change for flagless data).
  const v1 = v2.slice();
  v1[4] = 1;
  const back = decodeBinaryTrace(v1, "old.ppmt");
  sameAll(back, t, "v1");
  assert.equal(back.writes, undefined);
  // In a version-1 file, bit 31 of a block head is not a flag: it makes an oversized block.
  const tw = new Uint8Array(encodeBinaryTrace(randomTrace(100, 3, true)));
  tw[4] = 1;
  assert.throws(() => decodeBinaryTrace(tw, "old.ppmt"), (e: unknown) => e instanceof BinaryTraceError && /exceeds 65536/.test((e as Error).message));
});

test("binary: malformed write flags are rejected with the file and byte offset", () => {
  const withW = new Uint8Array(encodeBinaryTrace(randomTrace(13, 21, true)));
  const noW = new Uint8Array(encodeBinaryTrace(randomTrace(13, 21, false)));
  const cases: [string, Uint8Array, RegExp][] = [
    ["header flags", (() => { const b = withW.slice(); b[6] = 1; return b; })(), /byte 6: unknown header flags 0x1/],
    ["padding bits", (() => {
      const b = withW.slice();
      const len = new DataView(b.buffer).getUint32(12, true);
      b[8 + 8 + len - 1] |= 0x80; // record 15 of a 13-record block
      return b;
    })(), /bits set beyond the block's records/],
    ["zero-record block with W", (() => { const b = noW.slice(); new DataView(b.buffer).setUint32(8, 0x80000000, true); return b; })(), /block of 0 records/],
    ["payload shorter than the bitmap", (() => {
      const b = Buffer.concat([withW.subarray(0, 8), Buffer.from([13, 0, 0, 0x80, 1, 0, 0, 0, 0]), Buffer.from([0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0])]);
      return new Uint8Array(b);
    })(), /too short for 13 records and their write flags/],
  ];
  for (const [name, bytes, re] of cases) {
    assert.throws(() => decodeBinaryTrace(bytes, "k.ppmt"), (e: unknown) => e instanceof BinaryTraceError && re.test((e as Error).message) && (e as Error).message.startsWith("k.ppmt: byte "), name);
  }
  // Blocks that disagree: a flagged block after a flagless one (two encoders' blocks spliced together).
  const a = new BinaryTraceEncoder(), b = new BinaryTraceEncoder();
  const spliced = Buffer.concat([a.header(), a.encode(randomTrace(5, 1, false)), b.encode(randomTrace(5, 2, true)), Buffer.from([0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0])]);
  assert.throws(() => decodeBinaryTrace(spliced, "m"), /block with access kinds after blocks without/);
  // The encoder refuses to write such a file in the first place.
  const e = new BinaryTraceEncoder();
  e.encode(randomTrace(5, 1, true));
  assert.throws(() => e.encode(randomTrace(5, 1, false)), /a chunk without access kinds \(writes\) after chunks with them, at record 5/);
});

test("text <-> binary round trips keep the flags (convert, writeBinaryTrace, readTrace)", async () => {
  const t = randomTrace(70_000, 31, true);
  const txt = join(dir, "k.txt.gz");
  writeFileSync(txt, gzipSync("# kinds\n" + formatTraceLines(t)));
  sameAll(await readTextTrace(txt), t, "text");
  assert.equal(await convertTrace(txt, join(dir, "k.ppmt"), "binary"), 70_000);
  sameAll(await readTrace(join(dir, "k.ppmt")), t, "text -> binary");
  assert.equal(await convertTrace(join(dir, "k.ppmt"), join(dir, "k2.txt"), "text"), 70_000);
  sameAll(await readTrace(join(dir, "k2.txt")), t, "text -> binary -> text");
  assert.match(readFileSync(join(dir, "k2.txt"), "utf8").split("\n")[1], / [rw]$/);
  const halves = [0, 30_000, 70_000].slice(0, 2).map((o, k) => {
    const e = k === 0 ? 30_000 : 70_000;
    return { pages: t.pages.subarray(o, e), gaps: t.gaps.subarray(o, e), streams: t.streams.subarray(o, e), writes: t.writes!.subarray(o, e), length: e - o };
  });
  assert.equal(await writeBinaryTrace(join(dir, "w.ppmt"), halves), 70_000);
  sameAll(decodeBinaryTrace(readFileSync(join(dir, "w.ppmt"))), t, "writeBinaryTrace");
  sameAll(await readTrace(join(dir, "w.ppmt"), { limit: 100 }), { ...t, pages: t.pages.subarray(0, 100), gaps: t.gaps.subarray(0, 100), streams: t.streams.subarray(0, 100), writes: t.writes!.subarray(0, 100), length: 100 }, "limit");
  // A trace without kinds converts both ways without growing one.
  const p = randomTrace(1000, 32, false);
  writeFileSync(join(dir, "p.txt"), formatTraceLines(p));
  await convertTrace(join(dir, "p.txt"), join(dir, "p.ppmt"), "binary");
  await convertTrace(join(dir, "p.ppmt"), join(dir, "p2.txt"), "text");
  const back = await readTrace(join(dir, "p2.txt"));
  sameAll(back, p, "no kinds");
  assert.equal(back.writes, undefined);
});

// ---------------------------------------------------------------------------------------------
// Old traces

/** The data lines of a gzipped text trace, split the slow and obvious way. */
function naiveLines(file: string, max = Infinity): [number, number][] {
  const out: [number, number][] = [];
  for (const line of gunzipSync(readFileSync(file)).toString("latin1").split("\n")) {
    if (out.length >= max) break;
    if (line === "" || line.startsWith("#")) continue;
    const f = line.trim().split(/\s+/);
    out.push([Number(f[0]), Number(f[1] ?? 1)]);
  }
  return out;
}

for (const [rel, limit] of [["test/fixtures/sqlite-300k.txt.gz", Infinity], ["traces/sqlite.txt.gz", 400_000]] as const) {
  test(`old trace ${rel}: reads as before (no kinds), and with a kind column added reads the same pages and gaps`, async () => {
    const file = join(ROOT, rel);
    const want = naiveLines(file, limit);
    const t = await readTrace(file, { limit: Number.isFinite(limit) ? limit : undefined });
    assert.equal(t.writes, undefined, "two columns: kinds unknown");
    assert.equal(t.length, want.length);
    for (let i = 0; i < want.length; i++) {
      if (t.pages[i] !== want[i][0] || t.gaps[i] !== want[i][1]) assert.fail(`line ${i}: ${t.pages[i]} ${t.gaps[i]} vs ${want[i].join(" ")}`);
    }
    assert.equal(computeTraceStats(t).writes, null);
    assert.match(formatTraceStats(computeTraceStats(t)), /writes\s+unknown/);
    // The same accesses with a kind column (every third one written).
    const writes = Uint8Array.from({ length: t.length }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const kinds = parseTraceText(formatTraceLines({ ...t, writes }));
    samePGS(kinds, t, rel);
    assert.deepEqual(kinds.writes, writes);
  });
}

// ---------------------------------------------------------------------------------------------
// trace-stats

test("stats: write lines and written pages; null when unknown", () => {
  const s = computeTraceStats(parseTraceText("1 1 r\n2 1 w\n1 1 w\n3 1 r\n2 1 w\n4 1 r\n"));
  assert.deepEqual(s.writes, { lines: 3, share: 0.5, pages: 2, pageShare: 0.5 });
  assert.match(formatTraceStats(s), /writes\s+3 of 6 accesses \(50\.0%\); 2 of 4 pages written \(50\.0%\)/);
  assert.deepEqual(computeTraceStats(parseTraceText("1 1 r\n")).writes, { lines: 0, share: 0, pages: 0, pageShare: 0 });
  assert.deepEqual(computeTraceStats(parseTraceText("")).writes, null);
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (b) => { stdout += b; });
    p.stderr.on("data", (b) => { stderr += b; });
    p.once("error", reject);
    p.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("trace-stats CLI: write figures for text and binary traces with kinds, unknown without, malformed files exit 2", async () => {
  let text = "# kinds\n";
  for (let i = 0; i < 400; i++) text += `${i % 100} 2 ${i % 4 === 0 ? "w" : "r"}\n`;
  writeFileSync(join(dir, "s.txt.gz"), gzipSync(text));
  await convertTrace(join(dir, "s.txt.gz"), join(dir, "s.ppmt"), "binary");
  for (const f of ["s.txt.gz", "s.ppmt"]) {
    const r = await cli(["trace-stats", join(dir, f)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /writes\s+100 of 400 accesses \(25\.0%\); 25 of 100 pages written \(25\.0%\)/, f);
    const j = JSON.parse((await cli(["trace-stats", join(dir, f), "--json"])).stdout);
    assert.deepEqual(j.writes, { lines: 100, share: 0.25, pages: 25, pageShare: 0.25 });
  }
  writeFileSync(join(dir, "old.txt"), "1 2\n3 4\n");
  const old = await cli(["trace-stats", join(dir, "old.txt"), "--json"]);
  assert.equal(JSON.parse(old.stdout).writes, null);
  writeFileSync(join(dir, "mixed.txt"), "1 2 w\n3 4\n");
  const mixed = await cli(["trace-stats", join(dir, "mixed.txt")]);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /mixed\.txt:2: no access kind/);
  const badBin = new Uint8Array(readFileSync(join(dir, "s.ppmt")));
  badBin[6] = 4;
  writeFileSync(join(dir, "bad.ppmt"), badBin);
  const bb = await cli(["trace-stats", join(dir, "bad.ppmt")]);
  assert.equal(bb.code, 2);
  assert.match(bb.stderr, /bad\.ppmt: byte 6: unknown header flags 0x4/);
});
