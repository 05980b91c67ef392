/**
 * `node --import tsx bench/fault-path.ts [--quick] [--only=A,B,C,D] [--core=FILE.wasm] [--first=N] [--json FILE]`: the fault path,
 * call by call, side by side in one run (--core: another build of the core, e.g. an older commit's, for a before/after).
 *
 *  A. createPredictor with defaults (pageCount 2^20, maxContexts 2^20): wall time per call.
 *  B. predictNext on the post-switch-over faults of the bundled real traces (sqlite, xz; layouts
 *     virtual, 2m, 4k): train on the first 30%, compact(), rehearse(), then every fault of the
 *     quality replay (a touched absent page is a fault; it and the returned pages become present),
 *     each call timed; at the defaults and at the ppm strategy's configuration under a push (page
 *     alphabet, depth 2, lookahead 2, order 2, threshold 0.02: `pushEngineOptions`);
 *     without and with maintain() between faults (untimed: the transport's idle moment; it pre-touches
 *     the arena pages the model will grow into). With maintain(), the same faults again from the
 *     same model answered in two parts, predictFirst(fault, N) (default 1) then predictRest(), each
 *     part timed: how soon the first predicted page can follow the faulted one on the wire.
 *  C. Synthetic models of ~0.1M, ~1M and ~4M contexts (src/trace/mixed-stream.ts, every event learned):
 *     single calls on a fresh fault stream, warm (back to back) and with the caches flushed (64 MiB
 *     touched before each call); a long run's worst call (a full arena's prune, if any). Two controls
 *     timed as often as the calls, so that stalls over 1 ms can be told apart from the host's: a
 *     busy loop of the median call's length (no memory), and dependent random reads over a typed
 *     array as large as the predictor's memory (no Wasm).
 *  D. A raw access stream (every access of xz after the first 30% is a call): the engine against a
 *     plain Map-based order-3 PPM with a greedy 8-page chain (bench/map-ppm.ts), alternating chunks.
 * Figures: median, p90, p99, max per call (process.hrtime.bigint; the timer alone costs 50-70 ns).
 */
import { writeFileSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createPredictor, restorePredictor } from "../src/engine/predictor.js";
import { useCoreModuleForBench } from "../src/engine/wasm.js";
import type { FullPredictorOptions } from "../src/engine/options.js";
import { readTextTrace } from "../src/trace/format.js";
import { placePages } from "../src/trace/layout.js";
import { BUNDLED_TRACES } from "../src/cli/quality.js";
import { mixedStream, BENCH_PAGES } from "../src/trace/mixed-stream.js";
import { MapPpm } from "./map-ppm.js";
import { pushEngineOptions } from "../src/strategies/ppm-policy.js";

const quick = process.argv.includes("--quick");
const coreFile = process.argv.find((a) => a.startsWith("--core="))?.slice(7);
if (coreFile) useCoreModuleForBench(new WebAssembly.Module(readFileSync(coreFile)));
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const jsonAt = process.argv.indexOf("--json");
const results: Record<string, unknown> = { machine: `${cpus()[0]?.model ?? "?"} x${cpus().length}`, node: process.version, date: new Date().toISOString(), load: loadavg()[0] };
const fmt = (ns: number) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1000 ? `${(ns / 1000).toFixed(2)} us` : `${ns.toFixed(0)} ns`);
type Q = { n: number; median: number; p90: number; p99: number; max: number };
function quantiles(a: ArrayLike<number>): Q {
  const s = Float64Array.from(a).sort();
  const q = (x: number) => s[Math.min(s.length - 1, Math.floor(x * s.length))];
  return { n: s.length, median: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] };
}
const show = (q: Q) => `median ${fmt(q.median)}, p90 ${fmt(q.p90)}, p99 ${fmt(q.p99)}, max ${fmt(q.max)} (${q.n} calls)`;
const now = () => process.hrtime.bigint();
const run = (s: string) => !only || only.split(",").includes(s);

// ---- A: createPredictor ----
if (run("A")) {
  const t: number[] = [];
  for (let i = 0; i < (quick ? 3 : 7); i++) {
    const a = now();
    const p = createPredictor({ pageCount: 1 << 20 });
    t.push(Number(now() - a));
    p.dispose();
  }
  const q = quantiles(t);
  results.create = q;
  console.log(`A. createPredictor (defaults, pageCount 2^20): ${show(q)}`);
}

// ---- B: the real traces' post-switch-over faults ----
// The ppm strategy's engine under a push, from the policy itself (page alphabet, depth 2, lookahead 2, order 2, threshold 0.02).
const PPM_ENGINE = pushEngineOptions(8);
const PPM_NAME = `ppm strategy (${PPM_ENGINE.alphabet}, depth ${PPM_ENGINE.depth}, lookahead ${PPM_ENGINE.lookahead}, order ${PPM_ENGINE.order}, threshold ${PPM_ENGINE.threshold})`;
// --first=N: the pages predictFirst returns before predictRest (B, with maintain()).
const FIRST = Number(process.argv.find((a) => a.startsWith("--first="))?.slice(8) ?? 1);
const CONFIGS: [string, Partial<FullPredictorOptions>][] = [["defaults", {}], [PPM_NAME, PPM_ENGINE]];
if (run("B")) {
  const traces = await Promise.all(BUNDLED_TRACES.map((f) => readTextTrace(f)));
  const rows: Record<string, unknown> = {};
  for (const [cname0, extra] of CONFIGS) for (const withMaintain of [false, true]) {
    const cname = `${cname0}${withMaintain ? ", maintain() between faults" : ""}`;
    const all: number[] = [];
    const per: Record<string, Q> = {};
    // The same calls again, back to back (no replay scan between them, which evicts the caches): what a
    // fault thread that keeps its caches would see. Same model, same calls, so the same outputs (checked).
    const allB2B: number[] = [];
    const firstPart: number[] = [], restPart: number[] = [], wholePart: number[] = [];
    let gotFirst = 0; // calls whose predictFirst returned a page
    for (const tr of traces) {
      for (const layout of ["virtual", "2m", "4k"] as const) {
        const placed = placePages(tr.pages, { layout, seed: 1 });
        const split = Math.floor(placed.pages.length * 0.3);
        const p = createPredictor({ pageCount: placed.pageCount, streams: 1, ...extra });
        p.train(placed.pages.subarray(0, split));
        p.compact();
        p.rehearse();
        const present = new Uint8Array(placed.pageCount);
        const t: number[] = [];
        if (withMaintain) p.maintain();
        const before = p.snapshot();
        const faults: number[] = [];
        let hash = 0;
        for (let i = split; i < placed.pages.length; i++) {
          const f = placed.pages[i];
          if (present[f]) continue;
          present[f] = 1;
          const a = now();
          const n = p.predictInto(f);
          t.push(Number(now() - a));
          faults.push(f);
          for (let j = 0; j < n; j++) { present[p.output[j]] = 1; hash = (hash * 31 + p.output[j]) | 0; }
          if (withMaintain) p.maintain(); // the transport's idle moment between two faults (untimed)
        }
        per[`${tr.name}/${layout} (${p.stats().contexts} contexts)`] = quantiles(t);
        all.push(...t);
        p.dispose();
        if (withMaintain) {
          // The same faults from the same model, each answered in two parts: predictFirst(FIRST)
          // (what the transport waits for before the first predicted page can follow the faulted
          // one) then predictRest(); same pages in the same order (checked). Side by side, fault by
          // fault, with a third copy answering each whole (predictInto), so both see the same caches.
          const q = restorePredictor(before);
          const w = restorePredictor(before);
          let h2 = 0;
          for (let i = 0; i < faults.length; i++) {
            const c = now();
            w.predictInto(faults[i]);
            wholePart.push(Number(now() - c));
            w.maintain();
            const a = now();
            const n1 = q.predictFirst(faults[i], FIRST);
            const b = now();
            const n = q.predictRest();
            firstPart.push(Number(b - a));
            restPart.push(Number(now() - b));
            if (n1 > 0) gotFirst++;
            for (let j = 0; j < n; j++) h2 = (h2 * 31 + q.output[j]) | 0;
            q.maintain();
          }
          if (h2 !== hash) throw new Error(`predictFirst/predictRest pass of ${tr.name}/${layout} gave other outputs`);
          q.dispose();
          w.dispose();
        } else {
          const q = restorePredictor(before);
          const tb = new Float64Array(faults.length);
          let h2 = 0;
          for (let i = 0; i < faults.length; i++) {
            const a = now();
            const n = q.predictInto(faults[i]);
            tb[i] = Number(now() - a);
            for (let j = 0; j < n; j++) h2 = (h2 * 31 + q.output[j]) | 0;
          }
          if (h2 !== hash) throw new Error(`back-to-back pass of ${tr.name}/${layout} gave other outputs`);
          allB2B.push(...tb);
          q.dispose();
        }
      }
    }
    const q = quantiles(all);
    rows[cname] = { all: q, per, ...(allB2B.length ? { backToBack: quantiles(allB2B) } : {}),
      ...(firstPart.length ? { predictFirst: { first: FIRST, firstPart: quantiles(firstPart), rest: quantiles(restPart), wholeSideBySide: quantiles(wholePart) } } : {}) };
    console.log(`B. replay faults, ${cname}: ${show(q)}`);
    if (allB2B.length) console.log(`   the same calls back to back (caches kept): ${show(quantiles(allB2B))}`);
    if (firstPart.length) {
      console.log(`   the same calls in two parts, predictFirst(fault, ${FIRST}): ${show(quantiles(firstPart))} (${gotFirst} of ${firstPart.length} calls returned a page there)`);
      console.log(`   then predictRest(): ${show(quantiles(restPart))}`);
      console.log(`   (predictInto on a third copy, fault by fault beside them: ${show(quantiles(wholePart))})`);
    }
    for (const [k, v] of Object.entries(per)) console.log(`     ${k}: median ${fmt(v.median)}, p99 ${fmt(v.p99)}, max ${fmt(v.max)} (${v.n})`);
  }
  results.replay = rows;
}

// ---- C: synthetic models of 0.1M, 1M, 4M contexts ----
if (run("C")) {
  const faults = mixedStream(1 << 20, 2);
  const evict = new Uint8Array(64 << 20);
  const rows: Record<string, unknown> = {};
  const sizes: [string, number, number][] = [["0.1M", 36_000, 1 << 17], ["1M", 450_000, 1 << 21], ["4M", 1_400_000, 1 << 23]];
  for (const [name, events, cap] of sizes) {
    if (quick && name === "4M") continue;
    for (const [cname, extra] of CONFIGS) {
      const p = createPredictor({ pageCount: BENCH_PAGES, maxContexts: cap, filter: 0, ...extra });
      p.train(mixedStream(events, 1));
      p.rehearse();
      p.compact();
      const contexts = p.stats().contexts;
      const N = quick ? 50_000 : name === "1M" && cname === "defaults" ? 1_000_000 : 200_000;
      const warm = new Float64Array(N);
      const maint: number[] = [];
      for (let i = 0; i < N; i++) {
        if (i % 1000 === 0) {
          p.clearPresent();
          const a = now();
          if (p.maintain()) maint.push(Number(now() - a)); // the transport's idle moment: off the fault path
        }
        const f = faults[i & (faults.length - 1)];
        const a = now();
        p.predictInto(f);
        warm[i] = Number(now() - a);
      }
      // Warm again, calls alternating between predictInto and the two parts (predictFirst(FIRST), then
      // predictRest): same model, same kind of faults, side by side.
      const N2 = quick ? 20_000 : 200_000;
      const alt = { whole: new Float64Array(N2 >> 1), first: new Float64Array(N2 >> 1), rest: new Float64Array(N2 >> 1) };
      for (let i = 0; i < N2; i++) {
        if (i % 1000 === 0) {
          p.clearPresent();
          const a = now();
          if (p.maintain()) maint.push(Number(now() - a));
        }
        const f = faults[(N + i) & (faults.length - 1)];
        const a = now();
        if ((i & 1) === 0) { p.predictInto(f); alt.whole[i >> 1] = Number(now() - a); continue; }
        p.predictFirst(f, FIRST);
        const b = now();
        p.predictRest();
        alt.first[i >> 1] = Number(b - a);
        alt.rest[i >> 1] = Number(now() - b);
      }
      const qa = { whole: quantiles(alt.whole), first: quantiles(alt.first), rest: quantiles(alt.rest) };
      const M = quick ? 200 : 1000;
      const cold = new Float64Array(M);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < evict.length; j += 64) evict[j]++;
        const f = faults[(N + N2 + i) & (faults.length - 1)]; // faults the alternating calls did not see
        const a = now();
        p.predictInto(f);
        cold[i] = Number(now() - a);
      }
      // The control: a busy loop as long as the median call (no memory touched), timed as many
      // times, right after: a host that preempts the process hits it as often per unit of time, so
      // its stalls over 1 ms are the machine's, not the engine's.
      let spins = 64, x = 1;
      const spin = (k: number) => { for (let j = 0; j < k; j++) x = (x * 1103515245 + 12345) | 0; return x; };
      const target = quantiles(warm).median;
      for (let r = 0; r < 3; r++) spin(1e6); // optimised before it is calibrated
      for (;;) { const a = now(); spin(spins * 1000); if (Number(now() - a) / 1000 >= target || spins > 1e6) break; spins = Math.ceil(spins * 1.25); }
      const empty = new Float64Array(N);
      for (let i = 0; i < N; i++) { const a = now(); spin(spins); empty[i] = Number(now() - a); }
      // The second control touches memory as the engine does, without Wasm: dependent reads at random
      // over a typed array as large as the predictor's memory, as many per timing as make its median
      // the call's. A host whose memory stalls a process (the hypervisor's paging, compaction) hits
      // this one and not the busy loop.
      const chain = new Uint32Array(p.stats().memoryBytes >>> 2);
      for (let i = 0; i < chain.length; i++) chain[i] = (Math.imul(i + 1, 2654435761) >>> 0) % chain.length;
      let at = 1;
      const touch = (k: number) => { for (let j = 0; j < k; j++) at = chain[(at + j) % chain.length]; return at; };
      let reads = 4;
      for (let r = 0; r < 3; r++) touch(1e5);
      const medianOf = (k: number) => { const t = new Float64Array(301); for (let r = 0; r < t.length; r++) { const a = now(); touch(k); t[r] = Number(now() - a); } return quantiles(t).median; };
      while (medianOf(reads) < target && reads < 1e5) reads = Math.ceil(reads * 1.25);
      const touched = new Float64Array(N);
      for (let i = 0; i < N; i++) { const a = now(); touch(reads); touched[i] = Number(now() - a); }
      const over = (x: Float64Array) => x.reduce((n, v) => n + (v > 1e6 ? 1 : 0), 0);
      const qw = quantiles(warm), qc = quantiles(cold), qt = quantiles(touched);
      rows[`${name} ${cname}`] = { contexts, capacity: cap, warm: qw, cold: qc, twoParts: { firstPages: FIRST, ...qa }, prunes: p.stats().prunes, maintainPrunesNs: maint,
        callsOver1ms: over(warm), emptyRegionsOver1ms: over(empty), emptyRegionMax: quantiles(empty).max,
        memoryControl: { reads, bytes: chain.byteLength, over1ms: over(touched), median: qt.median, max: qt.max } };
      console.log(`   calls over 1 ms: ${over(warm)} of ${N}; the control (a busy loop of the median call's length, median ${fmt(quantiles(empty).median)}, same count): ${over(empty)} over 1 ms, max ${fmt(quantiles(empty).max)}; ` +
        `the memory control (${reads} random reads over ${(chain.byteLength / 2 ** 20).toFixed(0)} MiB, median ${fmt(qt.median)}): ${over(touched)} over 1 ms, max ${fmt(qt.max)}`);
      console.log(`C. ${name} (${contexts} contexts, cap ${cap}) ${cname}: warm ${show(qw)}; flushed ${show(qc)}; ` +
        `maintain() pruned ${maint.length}x between batches (${maint.map((x) => fmt(x)).join(", ")})`);
      console.log(`   warm, alternating calls: predictInto ${show(qa.whole)}; predictFirst(fault, ${FIRST}) ${show(qa.first)}, then predictRest() ${show(qa.rest)}`);
      p.dispose();
    }
  }
  results.synthetic = rows;
}

// ---- D: raw access stream against the Map-based peer ----
if (run("D")) {
  const tr = await readTextTrace(BUNDLED_TRACES[1]);
  const split = Math.floor(tr.length * 0.3);
  const stream = tr.pages.subarray(split, quick ? split + 200_000 : tr.length);
  const engines: [string, Partial<FullPredictorOptions>][] = [
    ["engine, defaults", {}],
    [`engine, ${PPM_NAME}`, PPM_ENGINE],
    ["engine, page, lookahead 1, threshold 0.05", { alphabet: "page", lookahead: 1, threshold: 0.05 }],
  ];
  const contenders: [string, (page: number) => unknown][] = [];
  for (const [name, extra] of engines) {
    const p = createPredictor({ pageCount: 1 << 20, streams: 1, ...extra });
    p.train(tr.pages.subarray(0, split));
    p.compact();
    p.rehearse();
    contenders.push([name, (f) => p.predictInto(f)]);
  }
  const peer = new MapPpm(8, 0.05);
  for (let i = 0; i < split; i++) peer.learn(tr.pages[i]);
  contenders.push(["Map-based PPM peer (order 3, greedy 8-page chain)", (f) => peer.predict(f)]);
  const CHUNK = 2000;
  const perChunk = contenders.map(() => [] as number[]);
  for (let off = 0, r = 0; off + CHUNK <= stream.length; off += CHUNK, r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = (k + r) % contenders.length;
      const fn = contenders[c][1];
      const a = now();
      for (let i = off; i < off + CHUNK; i++) fn(stream[i]);
      perChunk[c].push(Number(now() - a) / CHUNK);
    }
  }
  const rows: Record<string, unknown> = {};
  const peerMed = quantiles(perChunk[contenders.length - 1]).median;
  contenders.forEach(([name], c) => {
    const q = quantiles(perChunk[c]);
    rows[name] = { nsPerCallMedianOfChunks: q.median, p90OfChunks: q.p90, speedVsPeer: peerMed / q.median };
    console.log(`D. raw stream (${stream.length} calls, chunks of ${CHUNK}): ${name}: ${fmt(q.median)} per call (chunk p90 ${fmt(q.p90)}), ${(peerMed / q.median).toFixed(2)}x the peer's speed`);
  });
  results.rawStream = rows;
}

if (jsonAt > 0) writeFileSync(process.argv[jsonAt + 1], JSON.stringify(results, null, 2) + "\n");
