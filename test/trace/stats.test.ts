import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Trace } from "../../src/trace/format.js";
import { computeTraceStats, majority, reuseDistances } from "../../src/trace/stats.js";
import { Rng } from "../../src/util/random.js";
import { spawn } from "node:child_process";
import { main } from "../../src/cli/main.js";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

function trace(pages: number[], gaps?: number[], streams?: number[]): Trace {
  return {
    name: "t",
    length: pages.length,
    pages: Uint32Array.from(pages),
    gaps: Uint32Array.from(gaps ?? pages.map(() => 1)),
    streams: Uint16Array.from(streams ?? pages.map(() => 0)),
  };
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

test("a sequential scan: every first touch is +1, no reuse, both predictors catch nearly all", () => {
  const s = computeTraceStats(trace(range(1000, (i) => i), range(1000, (i) => i % 7)));
  assert.equal(s.accesses, 1000);
  assert.equal(s.distinctPages, 1000);
  assert.equal(s.footprintMiB, (1000 * 4096) / 2 ** 20);
  assert.equal(s.instructions, range(1000, (i) => i % 7).reduce((a, b) => a + b, 0));
  assert.deepEqual(s.topDeltas, [{ delta: 1, count: 999, share: 1 }]);
  assert.equal(s.reuse.reaccesses, 0);
  assert.equal(s.reuse.cold, 1);
  assert.equal(s.reuse.median, null);
  assert.equal(s.reuse.p90, null);
  assert.deepEqual(s.reuse.within, { "8": 0, "64": 0, "1024": 0 });
  assert.equal(s.predictors.sequential.caught, 999); // all but the very first
  assert.equal(s.predictors.majorityDelta.caught, 998); // it needs one delta of history first
  assert.equal(s.predictors.sequential.share, 999 / 1000);
});

test("strides: +3 is sequential-catchable, +10 and -10 only by the majority-delta predictor", () => {
  const s3 = computeTraceStats(trace(range(100, (i) => 3 * i)));
  assert.equal(s3.predictors.sequential.caught, 99);
  assert.equal(s3.predictors.majorityDelta.caught, 98);
  const s10 = computeTraceStats(trace(range(100, (i) => 10 * i)));
  assert.equal(s10.predictors.sequential.caught, 0);
  assert.equal(s10.predictors.majorityDelta.caught, 98);
  assert.deepEqual(s10.topDeltas, [{ delta: 10, count: 99, share: 1 }]);
  const down = computeTraceStats(trace(range(100, (i) => 5000 - 10 * i)));
  assert.equal(down.predictors.sequential.caught, 0);
  assert.equal(down.predictors.majorityDelta.caught, 98);
  assert.equal(down.topDeltas[0].delta, -10);
});

test("majority-delta predictor: by hand, with a minority delta and a multiple of the majority", () => {
  // first touches 0 10 20 30 35 45 100 65: deltas 10 10 10 5 10 55 -35
  //   10: no history; 20, 30: majority 10 -> caught; 35: +5 is not k*10; 45: majority 10 (3 of 4) -> caught;
  //   100: +55 no; 65: history 10 10 10 5 10 55 (4 of 6) -> -35 no.
  // Re-accesses in between do not change first touches.
  const s = computeTraceStats(trace([0, 10, 0, 20, 10, 30, 35, 45, 0, 100, 65]));
  assert.equal(s.distinctPages, 8);
  assert.equal(s.predictors.majorityDelta.caught, 3);
  assert.equal(s.predictors.sequential.caught, 1); // only +5
  assert.deepEqual(s.topDeltas.map((d) => [d.delta, d.count]), [[10, 4], [5, 1], [-35, 1], [55, 1]]);
  assert.equal(s.topDeltas[0].share, 4 / 7);
  // 0 20 40 60 after deltas of 10: prev + 2*10 is predicted (k = 2)
  const k2 = computeTraceStats(trace([0, 10, 20, 30, 50, 70]));
  assert.equal(k2.predictors.majorityDelta.caught, 4); // 20, 30, 50 (k=2), 70 (history 10 10 10 20 -> 10, k=2)
  // beyond 8 steps is not caught
  const far = computeTraceStats(trace([0, 1, 2, 3, 12, 13]));
  assert.equal(far.predictors.majorityDelta.caught, 3); // 2, 3, 13 (history 1 1 1 9: majority 1); 12 = 3 + 9*1 is k=9
  assert.equal(far.predictors.sequential.caught, 4); // +1 +1 +1 +1; +9 misses
});

test("majority: strictly more than half, non-zero", () => {
  assert.equal(majority([]), null);
  assert.equal(majority([4]), 4);
  assert.equal(majority([1, 2]), null);
  assert.equal(majority([1, 2, 2]), 2);
  assert.equal(majority([3, 3, 1, 1]), null);
  assert.equal(majority([0, 0, 0, 1]), null);
  assert.equal(majority([5, 1, 5, 2, 5]), 5);
});

test("reuse distances: a loop over K pages has distance K-1 for every re-access", () => {
  const K = 50;
  const s = computeTraceStats(trace(range(4 * K, (i) => 1000 + (i % K))));
  assert.equal(s.reuse.reaccesses, 3 * K);
  assert.equal(s.reuse.cold, 0.25);
  assert.equal(s.reuse.median, K - 1);
  assert.equal(s.reuse.p90, K - 1);
  assert.deepEqual(s.reuse.within, { "8": 0, "64": 0.75, "1024": 0.75 });
});

test("reuse distances: by hand, and against a brute-force count on random traces", () => {
  // 5 7 5 5 9 7: cold, cold, 1 ({7}), 0, cold, 2 ({5, 9})
  const s = computeTraceStats(trace([5, 7, 5, 5, 9, 7]));
  assert.equal(s.reuse.reaccesses, 3);
  assert.equal(s.reuse.cold, 0.5);
  assert.equal(s.reuse.median, 1);
  assert.equal(s.reuse.p90, 2);
  assert.equal(s.reuse.within["8"], 0.5);
  const rng = new Rng(42);
  for (let trial = 0; trial < 30; trial++) {
    const n = 1 + rng.below(400);
    const universe = 1 + rng.below(60);
    const big = rng.below(2) === 0; // exercise both the direct table and the sorted remap
    const pages = range(n, () => (big ? 0xfff00000 + rng.below(universe) * 997 : rng.below(universe)));
    const { hist, cold } = reuseDistances(Uint32Array.from(pages));
    const want = new Map<number, number>();
    let wantCold = 0;
    for (let t = 0; t < n; t++) {
      const prev = pages.lastIndexOf(pages[t], t - 1);
      if (t === 0 || prev < 0) { wantCold++; continue; }
      const d = new Set(pages.slice(prev + 1, t)).size;
      want.set(d, (want.get(d) ?? 0) + 1);
    }
    assert.equal(cold, wantCold, `trial ${trial}: cold`);
    for (let d = 0; d < hist.length; d++) assert.equal(hist[d], want.get(d) ?? 0, `trial ${trial}: distance ${d}`);
  }
});

test("streams are counted, and an empty trace has zeros", () => {
  const s = computeTraceStats(trace([1, 2, 3, 4], [1, 1, 1, 1], [0, 300, 0, 7]));
  assert.equal(s.streams, 3);
  const e = computeTraceStats(trace([]));
  assert.equal(e.accesses, 0);
  assert.equal(e.distinctPages, 0);
  assert.equal(e.reuse.median, null);
  assert.deepEqual(e.topDeltas, []);
  assert.equal(e.predictors.sequential.share, 0);
});

/** The CLI in a child process (the test runner reports on this process's stdout, so it cannot be captured here). */
function runMain(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...argv], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b) => { stdout += b; });
    p.stderr.on("data", (b) => { stderr += b; });
    p.once("error", reject);
    p.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** In-process, for runs that only write to stderr. */
async function runMainErr(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const e = process.stderr.write.bind(process.stderr);
  (process.stderr as { write: unknown }).write = (s: string | Uint8Array) => { stderr += String(s); return true; };
  try {
    return { code: await main(argv), stderr };
  } finally {
    (process.stderr as { write: unknown }).write = e;
  }
}

test("trace-stats CLI: text and JSON on a gzipped file; bad options, missing, malformed or empty files exit 2 (README: bad input)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "stats-test-"));
  try {
    const file = join(dir, "scan.txt.gz");
    let text = "# a scan\n";
    for (let i = 0; i < 500; i++) text += `${2 * i} 3\n`;
    writeFileSync(file, gzipSync(text));
    const j = await runMain(["trace-stats", file, "--json"]);
    assert.equal(j.code, 0, j.stderr);
    const s = JSON.parse(j.stdout);
    assert.equal(s.name, "scan");
    assert.equal(s.accesses, 500);
    assert.equal(s.distinctPages, 500);
    assert.equal(s.instructions, 1500);
    assert.deepEqual(s.topDeltas, [{ delta: 2, count: 499, share: 1 }]);
    assert.equal(s.predictors.sequential.caught, 499);
    const lim = JSON.parse((await runMain(["trace-stats", file, "--json", "--limit", "10"])).stdout);
    assert.equal(lim.accesses, 10);
    const t = await runMain(["trace-stats", file]);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /accesses\s+500/);
    assert.match(t.stdout, /distinct pages\s+500/);
    assert.match(t.stdout, /sequential .*99\.8%/);

    for (const argv of [["trace-stats"], ["trace-stats", file, file], ["trace-stats", file, "--limit", "0"], ["trace-stats", file, "--bogus"]]) {
      const r = await runMainErr(argv);
      assert.equal(r.code, 2, argv.join(" "));
      assert.ok(r.stderr.length > 0);
    }
    const missing = await runMainErr(["trace-stats", join(dir, "nope.txt")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.txt/);
    const bad = join(dir, "bad.txt");
    writeFileSync(bad, "1 2\nxyz\n");
    const br = await runMainErr(["trace-stats", bad]);
    assert.equal(br.code, 2);
    assert.match(br.stderr, /bad\.txt:2/);
    const empty = join(dir, "empty.txt");
    writeFileSync(empty, "# nothing\n");
    const er = await runMainErr(["trace-stats", empty]);
    assert.equal(er.code, 2);
    assert.match(er.stderr, /empty\.txt holds no accesses/);
    const neg = await runMainErr(["trace-stats", file, "--limit", "-5"]);
    assert.equal(neg.code, 2);
    assert.match(neg.stderr, /--limit must be an integer in 1\.\.\d+, got "-5"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
