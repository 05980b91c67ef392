/**
 * `npm run bench`: the engine's speed, side by side in one run (these machines are shared and noisy,
 * so ratios between tasks of the same run mean more than absolute figures).
 *
 *  1. predictNext on a model holding >= 1M contexts (order 3, hybrid, depth 8): tinybench, 1000 calls
 *     per iteration (the timer's floor is far above one call), after compact() and without it; the
 *     present bitmap is cleared before each batch so that every batch predicts on the same terms.
 *  2. The same calls timed one by one with process.hrtime.bigint() over a 1M-call run: median, p99;
 *     then with the caches emptied before each call (the field case); and the machine's cost of one
 *     cache miss (a dependent random load), the floor under every figure above, and an idealised
 *     learning step (one overlapped miss per order, no search): the floor of any model update.
 *     2b. predictNext in the quality replay of the real xz trace, compacted and not, call by call.
 *     2c. single calls with a smaller search budget (lookahead 1, 2, 4).
 *     2d. what a single call is made of: the timer alone, learning alone (observe), predictNext.
 *  3. train throughput: the real traces' histories (LRU-filtered, the normal case; with and without
 *     the switch-over rehearsal, alternating) and a synthetic stream where every event is a miss
 *     (the worst case).
 *  4. Wasm core against the TypeScript reference model: same model, same faults.
 *  5. Memory: bytes per context entry and the resident memory of a 1M-context model.
 * Writes bench/results.json; BENCHMARKS.md records the figures.
 */
import { Bench } from "tinybench";
import { writeFileSync, renameSync } from "node:fs";
import { cpus } from "node:os";
import { createPredictor, restorePredictor } from "../src/engine/predictor.js";
import { createReferencePredictor } from "../src/reference/ppm.js";
import { readTextTrace } from "../src/trace/format.js";
import { placePages } from "../src/trace/layout.js";
import { BUNDLED_TRACES } from "../src/cli/quality.js";
import { mixedStream, BENCH_PAGES } from "../src/trace/mixed-stream.js";

const quick = process.argv.includes("--quick");
const results: Record<string, unknown> = {
  machine: `${cpus()[0]?.model ?? "?"} x${cpus().length}`,
  node: process.version,
  date: new Date().toISOString(),
};
const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} us` : `${ns.toFixed(0)} ns`);
function quantiles(a: Float64Array | number[]) {
  const s = Float64Array.from(a).sort();
  const q = (x: number) => s[Math.min(s.length - 1, Math.floor(x * s.length))];
  return { median: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] };
}

// ---- 1 + 2: predictNext on a >= 1M-context model ----
const rssBefore = process.memoryUsage().rss;
const big = createPredictor({ pageCount: BENCH_PAGES, maxContexts: 1 << 21, filter: 0 });
const history = mixedStream(quick ? 200_000 : 450_000, 1);
big.train(history);
big.rehearse();
const rssModel = process.memoryUsage().rss - rssBefore;
const contexts = big.stats().contexts;
console.log(`model: ${contexts} contexts, ${(big.stats().memoryBytes / 2 ** 20).toFixed(1)} MiB linear memory`);
const loose = restorePredictor(big.snapshot()); // the same model, not compacted
{
  const a = process.hrtime.bigint();
  big.compact();
  const ns = Number(process.hrtime.bigint() - a);
  results.compact = { contexts, ms: ns / 1e6, nsPerContext: ns / contexts };
  console.log(`compact(): ${(ns / 1e6).toFixed(0)} ms for ${contexts} contexts (${fmt(ns / contexts)} per context)`);
}
{
  // The whole-model prune a full arena triggers inside the call that finds it full: the stall.
  const q = restorePredictor(big.snapshot());
  const a = process.hrtime.bigint();
  q.prune();
  const ns = Number(process.hrtime.bigint() - a);
  results.prune = { contexts, after: q.stats().contexts, ms: ns / 1e6 };
  console.log(`prune(): ${(ns / 1e6).toFixed(0)} ms for ${contexts} contexts (${q.stats().contexts} left)`);
  q.dispose();
}
const faults = mixedStream(1 << 20, 2);
const BATCH = 1000;
const snapshotOfModel = big.snapshot(); // the single-call runs start from the same (compacted) model

const bench = new Bench({ time: quick ? 500 : 3000, warmupTime: 200 });
for (const [name, p] of [["after compact()", big], ["not compacted", loose]] as const) {
  let cursor = 0;
  bench.add(`wasm predictNext x${BATCH} (${name})`, () => {
    p.clearPresent();
    for (let i = 0; i < BATCH; i++) p.predictInto(faults[(cursor++) & (faults.length - 1)]);
  });
}
await bench.run();
const perCall = (i: number) => {
  const r = bench.tasks[i].result as { latency: { p50: number; mad: number } };
  return { medianNsPerCall: (r.latency.p50 * 1e6) / BATCH, madNsPerCall: (r.latency.mad * 1e6) / BATCH };
};
results.predictBatch = { callsPerIteration: BATCH, contexts, compacted: perCall(0), notCompacted: perCall(1), compactSpeedup: perCall(1).medianNsPerCall / perCall(0).medianNsPerCall };
console.log(`predictNext (tinybench, per call): median ${fmt(perCall(0).medianNsPerCall)} (MAD ${fmt(perCall(0).madNsPerCall)}) after compact(), ${fmt(perCall(1).medianNsPerCall)} (MAD ${fmt(perCall(1).madNsPerCall)}) without`);

type Engine = ReturnType<typeof createPredictor>;
/**
 * `count` single calls of `op` (predictNext by default) on the fault stream, each timed; the bitmap
 * is cleared every BATCH calls, and maintain() runs there (the transport's idle moment: the prune a
 * full arena flagged on the fault path), timed apart into `maintainNs`.
 */
const maintainNs: number[] = [];
function timeSingleCalls(p: Engine, count: number, op: (p: Engine, f: number) => unknown = (q, f) => q.predictInto(f)): Float64Array {
  const t = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    if (i % BATCH === 0) {
      p.clearPresent();
      const a = process.hrtime.bigint();
      if (p.maintain()) maintainNs.push(Number(process.hrtime.bigint() - a));
    }
    const f = faults[i & (faults.length - 1)];
    const a = process.hrtime.bigint();
    op(p, f);
    t[i] = Number(process.hrtime.bigint() - a);
  }
  return t;
}
const single = restorePredictor(snapshotOfModel);
const N = quick ? 100_000 : 1_000_000;
maintainNs.length = 0;
const sq = quantiles(timeSingleCalls(single, N));
results.predictSingle = { calls: N, ...sq, prunesByMaintain: maintainNs.slice() };
console.log(`predictNext (single calls, hrtime, ${N}): median ${fmt(sq.median)}, p90 ${fmt(sq.p90)}, p99 ${fmt(sq.p99)}, max ${fmt(sq.max)}; ` +
  `maintain() between batches pruned ${maintainNs.length} times (${maintainNs.map((x) => fmt(x)).join(", ")}), off the timed calls`);

// The same calls with the caches emptied before each one (64 MiB touched), as in a hypervisor where
// the guest and the network stack run between two faults: what the fault path costs in the field.
{
  const evict = new Uint8Array(64 << 20);
  const M = quick ? 300 : 2000;
  const cold = new Float64Array(M);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < evict.length; j += 64) evict[j]++;
    const f = faults[(N + i) & (faults.length - 1)];
    const a = process.hrtime.bigint();
    single.predictInto(f);
    cold[i] = Number(process.hrtime.bigint() - a);
  }
  const cq = quantiles(cold);
  results.predictCold = { calls: M, ...cq };
  console.log(`predictNext (single calls, caches emptied before each, ${M}): median ${fmt(cq.median)}, p90 ${fmt(cq.p90)}, p99 ${fmt(cq.p99)}`);
}

// The search's budget: the same single calls with fewer expansions per fault (lookahead 8 is the
// default, above). Each model is trained from the same history and compacted.
{
  const rows: Record<string, ReturnType<typeof quantiles>> = {};
  for (const lookahead of [1, 2, 4]) {
    const p = createPredictor({ pageCount: BENCH_PAGES, maxContexts: 1 << 21, filter: 0, lookahead });
    p.train(history);
    p.rehearse();
    p.compact();
    rows[`lookahead ${lookahead}`] = quantiles(timeSingleCalls(p, quick ? 50_000 : 300_000));
    p.dispose();
  }
  results.predictByLookahead = rows;
  console.log(`predictNext single calls by lookahead: ${Object.entries(rows).map(([k, q]) => `${k}: median ${fmt(q.median)}, p99 ${fmt(q.p99)}`).join("; ")}`);
}

// What a call is made of, on the same model and faults: the timer alone (an empty timed region),
// learning alone (observe(): the same model update as predictNext, no search), then predictNext at
// lookahead 1 (above) and 8 (the default). Learning is the floor of any predictNext that learns.
{
  const rows: Record<string, ReturnType<typeof quantiles>> = {};
  const M = quick ? 50_000 : 300_000;
  const parts: [string, (p: Engine, f: number) => unknown][] = [
    ["timer only", () => 0],
    ["observe (learn only)", (p, f) => p.observe(f)],
    ["predictNext", (p, f) => p.predictInto(f)],
  ];
  for (const [name, op] of parts) {
    const p = restorePredictor(snapshotOfModel);
    rows[name] = quantiles(timeSingleCalls(p, M, op));
    p.dispose();
  }
  results.predictParts = rows;
  console.log(`single calls, ${M} each: ${Object.entries(rows).map(([k, q]) => `${k}: median ${fmt(q.median)}, p99 ${fmt(q.p99)}`).join("; ")}`);
}

// The floor under all of it: one dependent random load (a cache miss) over arrays of growing size.
{
  const floor: Record<string, number> = {};
  for (const mib of [0.25, 4, 64]) {
    const n = (mib * 2 ** 20) >> 2;
    const next = new Uint32Array(n);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    let x = 12345;
    for (let i = n - 1; i > 0; i--) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const k = x % (i + 1);
      const tmp = order[i]; order[i] = order[k]; order[k] = tmp;
    }
    for (let i = 0; i < n; i++) next[order[i]] = order[(i + 1) % n];
    const steps = quick ? 200_000 : 2_000_000;
    let at = 0;
    const a = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) at = next[at];
    floor[`${mib} MiB`] = Number(process.hrtime.bigint() - a) / steps + (at & 0);
  }
  results.memoryLatency = floor;
  console.log(`one dependent random load: ${Object.entries(floor).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}`);
}

// The floor of any model update on a model this size: an idealised learning step that reads and
// writes one cache line per order (K + 1 = 4), all four addresses known up front so their misses
// overlap, and no search at all. No layout of a >= 1M-context model does less per fault.
{
  const slots = (64 << 20) >> 2;
  const table = new Uint32Array(slots);
  const steps = quick ? 300_000 : 2_000_000;
  const pages = mixedStream(steps, 9);
  const line = (ctx: number, page: number) => {
    let h = Math.imul(ctx, 0x9e3779b1) ^ Math.imul(page + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15; h = Math.imul(h, 0x2c1b3c6d); h ^= h >>> 12;
    return (h >>> 0) & (slots - 1) & ~15; // a 64-byte line
  };
  let c1 = 1, c2 = 2, c3 = 3, sink = 0;
  const a = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) {
    const p = pages[i];
    const s0 = line(0, p), s1 = line(c1, p), s2 = line(c2, p), s3 = line(c3, p);
    const v0 = table[s0], v1 = table[s1], v2 = table[s2], v3 = table[s3];
    table[s0] = v0 + 1; table[s1] = v1 + 1; table[s2] = v2 + 1; table[s3] = v3 + 1;
    c3 = s2; c2 = s1; c1 = s0; sink += v0 + v1 + v2 + v3;
  }
  const ns = Number(process.hrtime.bigint() - a) / steps + (sink & 0);
  results.idealLearnStep = ns;
  console.log(`an idealised learning step (4 overlapped misses in 64 MiB, no search): ${fmt(ns)}`);
}

// ---- 2b: predictNext in the real replay (xz, both layouts): compacted and not, call by call ----
// Two predictors hold the same trained model, one compacted; each fault of the quality replay goes
// to both, in alternating order (their outputs are identical, so they see the same faults). Between
// two faults the replay walks the trace, as a guest runs between faults: caches are not warm.
{
  const tr = await readTextTrace(BUNDLED_TRACES[1]);
  const rows: Record<string, unknown> = {};
  for (const layout of ["virtual", "4k"] as const) {
    const placed = placePages(tr.pages, { layout, seed: 1 });
    const split = Math.floor(placed.pages.length * 0.3);
    const a = createPredictor({ pageCount: placed.pageCount, streams: 1 });
    a.train(placed.pages.subarray(0, split));
    a.rehearse();
    const b = restorePredictor(a.snapshot());
    a.compact();
    const ta: number[] = [], tb: number[] = [];
    const present = new Uint8Array(placed.pageCount);
    let k = 0;
    for (let i = split; i < placed.pages.length; i++) {
      const f = placed.pages[i];
      if (present[f]) continue;
      present[f] = 1;
      const order = (k++ & 1) === 0 ? [a, b] : [b, a];
      let n = 0;
      for (const p of order) {
        const t0 = process.hrtime.bigint();
        n = p.predictInto(f);
        (p === a ? ta : tb).push(Number(process.hrtime.bigint() - t0));
      }
      for (let j = 0; j < n; j++) present[a.output[j]] = 1;
    }
    const qa = quantiles(ta), qb = quantiles(tb);
    rows[layout] = { contexts: a.stats().contexts, calls: ta.length, compacted: qa, notCompacted: qb, speedup: qb.median / qa.median };
    console.log(`predictNext in the xz/${layout} replay (${ta.length} faults, ${a.stats().contexts} contexts): median ${fmt(qa.median)} (p99 ${fmt(qa.p99)}) after compact(), ${fmt(qb.median)} (p99 ${fmt(qb.p99)}) without: ${(qb.median / qa.median).toFixed(2)}x`);
    a.dispose();
    b.dispose();
  }
  results.predictReplay = rows;
}

// ---- 3: train throughput ----
const trainRows: Record<string, number> = {};
for (const path of BUNDLED_TRACES) {
  const tr = await readTextTrace(path);
  const h = tr.pages.subarray(0, Math.floor(tr.length * 0.3));
  // The defaults, and the same without the switch-over rehearsal, alternating (what the rehearsal costs).
  const reps: number[][] = [[], []];
  let rehearsed = 0;
  for (let r = 0; r < (quick ? 1 : 7); r++) {
    for (const k of r & 1 ? [1, 0] : [0, 1]) {
      const p = createPredictor({ pageCount: 1 << 20, rehearse: k === 0 });
      const a = process.hrtime.bigint();
      p.train(h);
      p.rehearse(); // the switch-over rehearsal (a no-op without it) is part of learning a history
      reps[k].push(h.length / (Number(process.hrtime.bigint() - a) / 1e9));
      if (k === 0) rehearsed = p.stats().rehearsed;
      p.dispose();
    }
  }
  const [on, off] = reps.map((x) => quantiles(x).median);
  trainRows[tr.name] = on;
  trainRows[`${tr.name}, without the rehearsal`] = off;
  console.log(`train ${tr.name} history (${h.length} events, LRU-filtered, ${rehearsed} first touches rehearsed): ` +
    `${(on / 1e6).toFixed(1)} M events/s (median of ${reps[0].length}); without the rehearsal ${(off / 1e6).toFixed(1)}: ${(on / off).toFixed(2)}x`);
}
{
  const h = mixedStream(400_000, 3);
  const p = createPredictor({ pageCount: BENCH_PAGES, maxContexts: 1 << 21, filter: 0 });
  const a = process.hrtime.bigint();
  p.train(h);
  p.rehearse();
  trainRows["synthetic, every event a miss"] = h.length / (Number(process.hrtime.bigint() - a) / 1e9);
  console.log(`train synthetic (every event learned): ${(trainRows["synthetic, every event a miss"] / 1e6).toFixed(2)} M events/s`);
}
results.train = trainRows;

// ---- 4: Wasm vs reference, same inputs ----
{
  const tr = await readTextTrace(BUNDLED_TRACES[1]);
  const split = Math.floor(tr.length * 0.3);
  const h = tr.pages.subarray(0, split);
  const seen = new Set<number>();
  const fs: number[] = [];
  for (let i = split; i < tr.length && fs.length < (quick ? 200 : 500); i++) if (!seen.has(tr.pages[i])) { seen.add(tr.pages[i]); fs.push(tr.pages[i]); }
  const w = createPredictor({ pageCount: 1 << 20 });
  const r = createReferencePredictor({ pageCount: 1 << 20 });
  const tw0 = process.hrtime.bigint(); w.train(h); w.rehearse(); const tw = Number(process.hrtime.bigint() - tw0);
  const tr0 = process.hrtime.bigint(); r.train(h); r.rehearse(); const trr = Number(process.hrtime.bigint() - tr0);
  const cmp = new Bench({ time: quick ? 300 : 2000, iterations: 8, warmupIterations: 2 });
  cmp.add("wasm", () => { w.clearPresent(); for (const f of fs) w.predictInto(f); });
  cmp.add("reference", () => { r.clearPresent(); for (const f of fs) r.predictNext(f); });
  await cmp.run();
  const med = (i: number) => (cmp.tasks[i].result as { latency: { p50: number } }).latency.p50;
  results.versusReference = { faults: fs.length, predictRatio: med(1) / med(0), trainRatio: trr / tw };
  console.log(`wasm vs reference (xz, ${fs.length} faults per iteration): predictNext ${(med(1) / med(0)).toFixed(1)}x faster, train ${(trr / tw).toFixed(1)}x faster`);
}

// ---- 5: memory ----
{
  const cap = big.stats().capacity;
  const bytes = big.stats().memoryBytes;
  results.memory = { capacity: cap, linearMemoryBytes: bytes, bytesPerContextEntry: bytes / cap, rssDeltaBytesForModel: rssModel };
  console.log(`memory: ${cap} entries in ${(bytes / 2 ** 20).toFixed(1)} MiB = ${(bytes / cap).toFixed(1)} bytes per entry (node 32 + index 4 + a 192-byte successor window per 32 entries, plus bitmap/scratch); RSS of the model +${(rssModel / 2 ** 20).toFixed(1)} MiB`);
}

writeFileSync("bench/results.json.tmp", JSON.stringify(results, null, 2) + "\n");
renameSync("bench/results.json.tmp", "bench/results.json");
