import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { LackeyFilter, remapPages, traceTextBlocks, writeTraceFileAtomic } from "../../src/trace/record.js";
import { parseTraceText, readTextTrace } from "../../src/trace/format.js";
import { Rng } from "../../src/util/random.js";
import { main } from "../../src/cli/main.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

// ---------------------------------------------------------------------------------------------
// A deliberately plain reference: split into strings, regex, BigInt addresses, array LRU.
// Write flags: a line is 1 when its own access or any folded re-touch of its page (while the page stays
// among the recent ones) is a store (S) or modify (M). `lineOf` maps a recent page to its open line.
interface Ref { pages: bigint[]; gaps: number[]; writes: number[]; accesses: number; writeAccesses: number; instructions: number }

function referenceFilter(text: string, window = 8, maxAccesses = Infinity): Ref {
  const out: Ref = { pages: [], gaps: [], writes: [], accesses: 0, writeAccesses: 0, instructions: 0 };
  const recent: bigint[] = [];
  const lineOf = new Map<bigint, number>();
  let since = 0;
  for (const line of text.split("\n")) {
    if (out.accesses >= maxAccesses) break;
    if (line.startsWith("I")) { since++; out.instructions++; continue; }
    const m = /^ ([LSM]) +([0-9a-fA-F]+),/.exec(line);
    if (!m) continue;
    out.accesses++;
    const write = m[1] !== "L";
    if (write) out.writeAccesses++;
    const page = BigInt("0x" + m[2]) >> 12n;
    const k = recent.indexOf(page);
    if (k >= 0) {
      recent.splice(k, 1); recent.unshift(page);
      if (write) out.writes[lineOf.get(page)!] = 1;
      continue;
    }
    recent.unshift(page);
    if (recent.length > window) lineOf.delete(recent.pop()!);
    lineOf.set(page, out.pages.length);
    out.pages.push(page);
    out.gaps.push(since);
    out.writes.push(write ? 1 : 0);
    since = 0;
  }
  return out;
}

function filterChunks(chunks: Uint8Array[], window = 8, maxAccesses?: number): LackeyFilter {
  const f = new LackeyFilter({ window, maxAccesses });
  for (const c of chunks) if (!f.push(c)) break;
  f.end();
  return f;
}

function assertMatches(f: LackeyFilter, ref: Ref, what: string): void {
  const k = f.kept();
  assert.equal(f.accesses, ref.accesses, `${what}: accesses`);
  assert.equal(f.writeAccesses, ref.writeAccesses, `${what}: write accesses`);
  assert.equal(k.length, ref.pages.length, `${what}: kept lines`);
  for (let i = 0; i < k.length; i++) {
    assert.equal(BigInt(k.pages[i]), ref.pages[i], `${what}: page of line ${i}`);
    assert.equal(k.gaps[i], ref.gaps[i], `${what}: gap of line ${i}`);
    assert.equal(k.writes[i], ref.writes[i], `${what}: write flag of line ${i}`);
  }
}

/** Synthetic lackey output: banner, instruction and data lines over a few hot and some far pages. */
function syntheticLackey(rng: Rng, records: number, finalNewline = true): string {
  const bases = [0x108000, 0x4a3f000, 0x1fff000000, 0x5a5a5000, 0x7f00dead0000];
  let s = "==2939== Lackey, an example Valgrind tool\n==2939== Command: /bin/true\n==2939== \n";
  for (let i = 0; i < records; i++) {
    const r = rng.below(10);
    if (r < 5) { s += `I  ${(0x401000 + rng.below(0x3000)).toString(16).padStart(8, "0")},${1 + rng.below(7)}\n`; continue; }
    const base = bases[rng.below(bases.length)];
    const addr = base + rng.below(r < 9 ? 3 : 40) * 4096 + rng.below(4096);
    const kind = "LSM"[rng.below(3)];
    const hex = rng.below(4) === 0 ? addr.toString(16).toUpperCase() : addr.toString(16);
    s += ` ${kind} ${hex.padStart(8, "0")},${[1, 2, 4, 8, 16][rng.below(5)]}\n`;
  }
  s += "==2939== \n==2939== Exit code:       0\n";
  return finalNewline ? s : s.slice(0, -1);
}

test("filter: a hand-made log gives the expected lines", () => {
  const text =
    "==1== banner\n" +
    "I  00400000,3\nI  00400003,2\n L 1fff000768,8\n" + // page 0x1fff000, gap 2
    "I  00400005,1\n S 1fff000760,8\n" + // same page: folded
    "I  00400006,1\n M 00601010,4\n" + // page 0x601, gap 2 (the folded instruction included)
    " L 1fff001000,8\n" + // page 0x1fff001, gap 0
    "I  00400007,1\n L 1fff000ff8,8\n" + // back to 0x1fff000, still among the last 8: folded
    "==1== Exit code: 0\n";
  const f = filterChunks([Buffer.from(text)]);
  const k = f.kept();
  assert.deepEqual(Array.from(k.pages), [0x1fff000, 0x601, 0x1fff001]);
  assert.deepEqual(Array.from(k.gaps), [2, 2, 0]);
  // line 0 was a load, but its page was stored to while folded; the modify of line 1 writes; line 2 loads.
  assert.deepEqual(Array.from(k.writes), [1, 1, 0]);
  assert.equal(f.writeAccesses, 2);
  assert.equal(f.accesses, 5);
  assert.equal(f.instructions, 5);
  assert.equal(f.otherLines, 2);
});

test("filter: re-touch refreshes recency; the 9th distinct page evicts the least recent", () => {
  const line = (p: number) => ` L ${(p * 4096 + 16).toString(16)},4\nI  00400000,1\n`;
  // pages 1..8, then 1 again (refresh), then 9 (evicts 2), then 1 (still recent), 2 (evicted: emitted)
  const seq = [1, 2, 3, 4, 5, 6, 7, 8, 1, 9, 1, 2];
  const f = filterChunks([Buffer.from(seq.map(line).join(""))]);
  assert.deepEqual(Array.from(f.kept().pages), [1, 2, 3, 4, 5, 6, 7, 8, 9, 2]);
  assert.deepEqual(Array.from(f.kept().gaps), [0, 1, 1, 1, 1, 1, 1, 1, 2, 2]);
  assert.deepEqual(Array.from(f.kept().writes), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const w2 = filterChunks([Buffer.from(seq.map(line).join(""))], 2);
  assert.deepEqual(Array.from(w2.kept().pages), [1, 2, 3, 4, 5, 6, 7, 8, 1, 9, 2]);
});

test("filter: a write marks the line of its page's current window stay, not an earlier or later one", () => {
  const ld = (p: number) => ` L ${(p * 4096 + 8).toString(16)},8\nI  00400000,1\n`;
  const st = (p: number) => ` S ${(p * 4096 + 8).toString(16)},8\nI  00400000,1\n`;
  const md = (p: number) => ` M ${(p * 4096 + 8).toString(16)},8\nI  00400000,1\n`;
  // window 2: 1(L, line 0) 2(L, line 1) 1(S: folded, marks line 0) 3(L, line 2; evicts 2) 2(L, line 3; evicts 1)
  // 3(M: folded, marks line 2) 4(L, line 4) 1(L, line 5: a new stay, the old store stays on line 0) 4(L: folded)
  // 5(S, line 6)
  const text = [ld(1), ld(2), st(1), ld(3), ld(2), md(3), ld(4), ld(1), ld(4), st(5)].join("");
  const f = filterChunks([Buffer.from(text)], 2);
  assert.deepEqual(Array.from(f.kept().pages), [1, 2, 3, 2, 4, 1, 5]);
  assert.deepEqual(Array.from(f.kept().writes), [1, 0, 1, 0, 0, 0, 1]);
  assert.equal(f.writeAccesses, 3);
  assert.deepEqual(referenceFilter(text, 2).writes, [1, 0, 1, 0, 0, 0, 1]);
});

test("filter: identical result for every split of the input into two chunks, and byte by byte", () => {
  const rng = new Rng(7);
  const text = syntheticLackey(rng, 160);
  const buf = Buffer.from(text);
  const ref = referenceFilter(text);
  assert.ok(ref.pages.length > 20 && ref.accesses > 50, "the synthetic log exercises the filter");
  for (let cut = 0; cut <= buf.length; cut++) {
    assertMatches(filterChunks([buf.subarray(0, cut), buf.subarray(cut)]), ref, `split at ${cut}`);
  }
  const bytes: Uint8Array[] = [];
  for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
  assertMatches(filterChunks(bytes), ref, "byte by byte");
});

test("filter: three-way splits, random chunkings, windows and access limits agree with the reference", () => {
  const rng = new Rng(11);
  const text = syntheticLackey(rng, 60, false);
  const buf = Buffer.from(text);
  const ref = referenceFilter(text);
  for (let a = 0; a <= buf.length; a += 3) {
    for (let b = a; b <= buf.length; b += 17) {
      assertMatches(filterChunks([buf.subarray(0, a), buf.subarray(a, b), buf.subarray(b)]), ref, `split at ${a},${b}`);
    }
  }
  for (let trial = 0; trial < 40; trial++) {
    const t = syntheticLackey(rng, 400 + rng.below(400));
    const window = 1 + rng.below(12);
    const max = rng.below(3) === 0 ? undefined : 1 + rng.below(300);
    const b = Buffer.from(t);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < b.length;) { const n = 1 + rng.below(64); chunks.push(b.subarray(i, i + n)); i += n; }
    const r = referenceFilter(t, window, max ?? Infinity);
    const f = filterChunks(chunks, window, max);
    assertMatches(f, r, `trial ${trial} (window ${window}, max ${max})`);
    if (max !== undefined && r.accesses === max) assert.equal(f.done, true);
  }
});

test("filter: stops at maxAccesses and ignores the rest", () => {
  const rng = new Rng(3);
  const text = syntheticLackey(rng, 500);
  const f = new LackeyFilter({ maxAccesses: 10 });
  const buf = Buffer.from(text);
  let i = 0;
  for (; i < buf.length; i += 100) if (!f.push(buf.subarray(i, i + 100))) break;
  assert.equal(f.accesses, 10);
  assert.equal(f.done, true);
  assert.ok(i < buf.length - 100, "push returned false before the end of input");
  assert.equal(f.push(buf), false);
  assert.equal(f.accesses, 10);
  assertMatches(f, referenceFilter(text, 8, 10), "limit 10");
});

test("remapPages: 0..N-1 in address order, neighbours stay neighbours", () => {
  const raw = Float64Array.from([0x1fff000, 0x601, 0x602, 0x1fff000, 0x7f00dead0, 0x601, 0x1ffefff]);
  const { indices, distinct } = remapPages(raw);
  assert.deepEqual(Array.from(distinct), [0x601, 0x602, 0x1ffefff, 0x1fff000, 0x7f00dead0]);
  assert.deepEqual(Array.from(indices), [3, 0, 1, 3, 4, 0, 2]);
  assert.equal(remapPages(new Float64Array(0)).distinct.length, 0);
});

test("text writer round-trips through the format parser, atomically and gzipped", async () => {
  const rng = new Rng(5);
  const n = 200_000;
  const pages = new Uint32Array(n);
  const gaps = new Uint32Array(n);
  for (let i = 0; i < n; i++) { pages[i] = rng.nextU32() >>> rng.below(32); gaps[i] = rng.below(5) === 0 ? 0xffffffff : rng.nextU32() >>> rng.below(32); }
  const text = Buffer.concat([...traceTextBlocks("# hello\n", pages, gaps)]);
  const t = parseTraceText(text);
  assert.deepEqual(t.pages, pages);
  assert.deepEqual(t.gaps, gaps);
  assert.equal(t.writes, undefined, "no kind column: kinds unknown");
  // With write flags: a third column w/r, the same pages and gaps.
  const writes = new Uint8Array(n);
  for (let i = 0; i < n; i++) writes[i] = rng.below(3) === 0 ? 1 : 0;
  const tw = parseTraceText(Buffer.concat([...traceTextBlocks("# hello\n", pages, gaps, writes)]));
  assert.deepEqual(tw.pages, pages);
  assert.deepEqual(tw.gaps, gaps);
  assert.deepEqual(tw.writes, writes);
  assert.throws(() => [...traceTextBlocks("", pages, gaps, writes.subarray(1))], /writes has 199999 entries, pages 200000/);
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    const out = join(dir, "x.txt.gz");
    await writeTraceFileAtomic(out, traceTextBlocks("# hello\n", pages, gaps, writes));
    const back = await readTextTrace(out);
    assert.deepEqual(back.pages, pages);
    assert.deepEqual(back.gaps, gaps);
    assert.deepEqual(back.writes, writes);
    assert.deepEqual(readdirSync(dir), ["x.txt.gz"]);
    // A failing source leaves nothing behind.
    function* failing() { yield Buffer.from("1 2\n"); throw new Error("boom"); }
    await assert.rejects(writeTraceFileAtomic(join(dir, "y.gz"), failing()), /boom/);
    assert.deepEqual(readdirSync(dir), ["x.txt.gz"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// CLI: bad options

async function runMain(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const orig = process.stderr.write.bind(process.stderr);
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(env)) { saved[k] = process.env[k]; if (env[k] === undefined) delete process.env[k]; else process.env[k] = env[k]; }
  (process.stderr as { write: unknown }).write = (s: string | Uint8Array) => { stderr += String(s); return true; };
  try {
    const code = await main(argv);
    return { code, stderr };
  } finally {
    (process.stderr as { write: unknown }).write = orig;
    for (const k of Object.keys(saved)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k]; }
  }
}

test("record: bad options exit with code 2 and a message", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    const out = join(dir, "t.gz");
    const cases: [string[], RegExp][] = [
      [["record", "--", "true"], /--out FILE is required/],
      [["record", "--out", out], /missing `-- COMMAND/],
      [["record", "--out", out, "--"], /no command/],
      [["record", "--out", out, "--max-accesses", "0", "--", "true"], /--max-accesses must be an integer/],
      [["record", "--out", out, "--max-accesses", "lots", "--", "true"], /--max-accesses must be an integer/],
      [["record", "--out", out, "--window", "0", "--", "true"], /--window must be an integer/],
      [["record", "--out", out, "--bogus", "--", "true"], /bogus/],
      [["record", "--out", out, "stray", "--", "true"], /stray|positional/i],
      [["record", "--out", join(dir, "no/such/dir/t.gz"), "--", "true"], /does not exist/],
    ];
    for (const [argv, re] of cases) {
      const r = await runMain(argv);
      assert.equal(r.code, 2, `${argv.join(" ")} -> ${r.stderr}`);
      assert.match(r.stderr, re, argv.join(" "));
    }
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("record: without valgrind on PATH, says how to install it and exits 2", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    const r = await runMain(["record", "--out", join(dir, "t.gz"), "--", "true"], { PATH: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /valgrind was not found/);
    assert.match(r.stderr, /apt-get install valgrind/);
    assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, `one line: ${r.stderr}`);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Real recordings

const hasValgrind = spawnSync("valgrind", ["--version"], { stdio: "ignore" }).status === 0;
const noValgrind = hasValgrind ? false : "valgrind is not installed (apt-get install valgrind)";

function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (b) => { stderr += b; });
    p.once("error", reject);
    p.once("close", (code) => resolve({ code, stderr }));
  });
}

/** Independent count from a raw lackey log on disk: distinct addr>>12 over the first `max` L/S/M records. */
async function countRaw(file: string, max = Infinity): Promise<{ accesses: number; instructions: number; distinct: number }> {
  const pages = new Set<string>();
  let accesses = 0;
  let instructions = 0;
  const rl = createInterface({ input: createReadStream(file, "latin1"), crlfDelay: Infinity });
  for await (const line of rl) {
    if (accesses >= max) break;
    if (line[0] === "I") { instructions++; continue; }
    if (line[0] !== " " || !"LSM".includes(line[1])) continue;
    const addr = line.slice(3, line.indexOf(",")).trim().toLowerCase();
    pages.add(addr.length > 3 ? addr.slice(0, -3).replace(/^0+/, "") : "");
    accesses++;
  }
  rl.close();
  return { accesses, instructions, distinct: pages.size };
}

test("record: a real run of gzip matches an independent count from the raw lackey log", { skip: noValgrind, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    const input = join(dir, "input.txt");
    let s = "";
    for (let i = 1; i <= 300; i++) s += `${(i * 7919) % 1009} line ${i}\n`;
    writeFileSync(input, s);
    const cmd = ["gzip", "-c", input];
    const raw = join(dir, "raw.lackey");
    const lk = spawnSync("valgrind", ["--tool=lackey", "--trace-mem=yes", `--log-file=${raw}`, ...cmd], { stdio: "ignore" });
    assert.equal(lk.status, 0);
    const all = await countRaw(raw);
    assert.ok(all.accesses > 50_000, `gzip made ${all.accesses} data accesses`);

    // Whole run.
    const out = join(dir, "gzip.txt.gz");
    const r = await cli(["record", "--out", out, "--", ...cmd]);
    assert.equal(r.code, 0, r.stderr);
    const t = await readTextTrace(out);
    let max = 0;
    for (let i = 0; i < t.length; i++) if (t.pages[i] > max) max = t.pages[i];
    const seen = new Set(t.pages);
    assert.equal(seen.size, all.distinct, "distinct pages = independent count");
    assert.equal(max, seen.size - 1, "pages are 0..N-1");
    for (let i = 1; i < t.length; i++) assert.notEqual(t.pages[i], t.pages[i - 1], `line ${i} repeats the previous page`);
    let gapSum = 0;
    for (let i = 0; i < t.length; i++) gapSum += t.gaps[i];
    assert.ok(gapSum <= all.instructions && gapSum > all.instructions * 0.5, `sum of gaps ${gapSum} vs ${all.instructions} instructions`);
    assert.ok(t.streams.every((x) => x === 0));
    const head = spawnSync("sh", ["-c", `gzip -dc '${out}' | head -6`], { encoding: "utf8" }).stdout;
    assert.match(head, new RegExp(`# Recorded with valgrind lackey \\(${all.accesses} data accesses, whole run, ${all.instructions} guest instructions\\)`));
    assert.match(head, new RegExp(`# lines ${t.length}, distinct pages ${all.distinct},`));
    assert.match(head, /# columns: page gap kind/);
    // Write flags: exactly what the plain reference filter computes from the raw log, line by line.
    const ref = referenceFilter(readFileSync(raw, "latin1"));
    assert.equal(ref.pages.length, t.length);
    assert.ok(t.writes, "a new recording has access kinds");
    assert.deepEqual(Array.from(t.writes!), ref.writes);
    const w = t.writes!.reduce((a, x) => a + x, 0);
    assert.ok(w > 0 && w < t.length, `gzip writes some pages and only reads others: ${w} w lines of ${t.length}`);
    assert.match(head, new RegExp(`# writes: ${ref.writeAccesses} of ${all.accesses} data accesses were stores or modifies; ${w} of ${t.length} lines are w`));

    // Stopped by --max-accesses.
    const limit = Math.floor(all.accesses / 2);
    const part = await countRaw(raw, limit);
    const out2 = join(dir, "gzip-half.txt.gz");
    const r2 = await cli(["record", "--out", out2, "--max-accesses", String(limit), "--", ...cmd]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /stopped at --max-accesses/);
    const t2 = await readTextTrace(out2);
    assert.equal(new Set(t2.pages).size, part.distinct, "distinct pages of the first half = independent count");
    assert.deepEqual(Array.from(t2.writes!), referenceFilter(readFileSync(raw, "latin1"), 8, limit).writes, "write flags of the first half");
    const head2 = spawnSync("sh", ["-c", `gzip -dc '${out2}' | head -3`], { encoding: "utf8" }).stdout;
    assert.match(head2, new RegExp(`\\(${limit} data accesses, stopped at --max-accesses ${limit},`));
    assert.deepEqual(readdirSync(dir).sort(), ["gzip-half.txt.gz", "gzip.txt.gz", "input.txt", "raw.lackey"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("record: a failing command is reported with its exit code and leaves no file", { skip: noValgrind, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    const out = join(dir, "fail.gz");
    const r = await cli(["record", "--out", out, "--", "sh", "-c", "exit 3"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /failed with exit code 3/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("record: an interrupted recording (SIGINT, SIGTERM) keeps the run so far as a valid trace and stops valgrind", { skip: noValgrind, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "rec-test-"));
  try {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      const out = join(dir, `int-${sig}.gz`);
      const marker = `ppm-int-${process.pid}-${sig}`; // names the recorded command, to find a valgrind left behind
      const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "record", "--out", out, "--", "sh", "-c", `while :; do :; done # ${marker}`],
        { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      p.stderr.on("data", (b) => { stderr += b; });
      const closed = new Promise<number | null>((r) => p.once("close", (code) => r(code)));
      await new Promise((r) => setTimeout(r, 4000)); // valgrind starts and records for a while
      p.kill(sig);
      const code = await closed;
      assert.equal(code, 0, stderr);
      assert.match(stderr, new RegExp(`interrupted by ${sig}`));
      const t = await readTextTrace(out);
      assert.ok(t.pages.length > 0, "the trace holds what was recorded");
      await new Promise((r) => setTimeout(r, 300));
      const left = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" }).stdout.trim();
      assert.equal(left, "", `valgrind still running: ${left}`);
      assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".tmp")), [], "no temp file left");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
