/**
 * A/B of two or more builds of the Wasm core in one process:
 *   node --import tsx bench/ab-core.ts a.wasm b.wasm [--reps=N] [--syn] [--maintain] [--pollute=MiB] [--ppm | --engine=JSON]
 * (build a variant with `npx asc assembly/index.ts --config asconfig.json --target release -o x.wasm`).
 * Jobs: the quality replay's faults of sqlite and xz (virtual, 4k; train 30%, compact, rehearse), the
 * first 100k accesses of xz after the split as a raw stream (per call, medians over chunks of 1000),
 * and with --syn 64k faults on the ~1.3M-context synthetic model. Each job's model is snapshotted per
 * build and restored for every rep; builds alternate. Prints median and p99 per call, the ratio to
 * the first build, and a hash of every output page and confidence (equal hashes: equal outputs).
 */
import { readFileSync } from "node:fs";
import { createPredictor, restorePredictor } from "../src/engine/predictor.js";
import { useCoreModuleForBench } from "../src/engine/wasm.js";
import { readTextTrace } from "../src/trace/format.js";
import { placePages } from "../src/trace/layout.js";
import { BUNDLED_TRACES } from "../src/cli/quality.js";
import { mixedStream, BENCH_PAGES } from "../src/trace/mixed-stream.js";
import { pushEngineOptions } from "../src/strategies/ppm-policy.js";
const files = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const reps = Number(process.argv.find((a) => a.startsWith("--reps="))?.slice(7) ?? 3);
const doSyn = process.argv.includes("--syn");
// --maintain: maintain() after each replay and synthetic call, untimed (the transport's idle moment after a fault).
const doMaintain = process.argv.includes("--maintain");
// --ppm: every job at the ppm strategy's engine options under a push (pushEngineOptions) instead of the defaults.
// --engine=JSON: options for every job instead (e.g. the QEMU proxy's: '{"depth":2,"threshold":0.25}').
// --pollute=MiB: before each timed replay or synthetic call, read and write one word per cache line of a
// buffer that large (untimed): the guest runs between two faults and takes the caches. (The synthetic
// job then times its first 8192 faults only.)
const polluteMiB = Number(process.argv.find((a) => a.startsWith("--pollute="))?.slice(10) ?? 0);
const junk = new Uint32Array((polluteMiB * 2 ** 20) >>> 2);
let junkSum = 0;
const pollute = () => { for (let i = 0; i < junk.length; i += 16) junkSum += junk[i]++; };
const engineArg = process.argv.find((a) => a.startsWith("--engine="))?.slice(9);
const extra = engineArg ? JSON.parse(engineArg) : process.argv.includes("--ppm") ? pushEngineOptions(8) : {};
const mods = files.map((f) => new WebAssembly.Module(readFileSync(f)));
const traces = await Promise.all(BUNDLED_TRACES.map((f) => readTextTrace(f)));
const med = (a: number[]) => { const s = Float64Array.from(a).sort(); return s[s.length >> 1] / 1000; };
const p99 = (a: number[]) => { const s = Float64Array.from(a).sort(); return s[Math.floor(s.length * 0.99)] / 1000; };
type Job = { name: string; make: () => any; run: (p: any, ts: number[]) => number };
const jobs: Job[] = [];
for (const tr of traces) for (const layout of ["virtual", "4k"] as const) {
  const placed = placePages(tr.pages, { layout, seed: 1 });
  const split = Math.floor(placed.pages.length * 0.3);
  jobs.push({ name: `replay ${tr.name}/${layout}`, make: () => { const p = createPredictor({ pageCount: placed.pageCount, streams: 1, ...extra }); p.train(placed.pages.subarray(0, split)); p.compact(); p.rehearse(); return p; },
    run: (p, ts) => { let h = 0; const present = new Uint8Array(placed.pageCount);
      for (let i = split; i < placed.pages.length; i++) { const f = placed.pages[i]; if (present[f]) continue; present[f] = 1;
        if (polluteMiB) pollute();
        const a = process.hrtime.bigint(); const n = p.predictInto(f); ts.push(Number(process.hrtime.bigint() - a));
        for (let j = 0; j < n; j++) { present[p.output[j]] = 1; h = (h * 31 + p.output[j] + Math.round(p.confidence[j] * 1e6)) | 0; }
        if (doMaintain) p.maintain(); }
      return h; } });
}
{
  const tr = traces[1]; const split = Math.floor(tr.length * 0.3); const stream = tr.pages.subarray(split, split + 100000);
  jobs.push({ name: "raw xz 100k", make: () => { const p = createPredictor({ pageCount: 1 << 20, streams: 1, ...extra }); p.train(tr.pages.subarray(0, split)); p.compact(); p.rehearse(); return p; },
    run: (p, ts) => { let h = 0; for (let off = 0; off < stream.length; off += 1000) { const a = process.hrtime.bigint();
      for (let i = off; i < off + 1000; i++) { const n = p.predictInto(stream[i]); for (let j = 0; j < n; j++) h = (h * 31 + p.output[j] + Math.round(p.confidence[j] * 1e6)) | 0; }
      ts.push(Number(process.hrtime.bigint() - a) / 1000); } return h; } });
}
if (doSyn) {
  const faults = mixedStream(1 << 16, 2);
  jobs.push({ name: "synthetic 1M", make: () => { const p = createPredictor({ pageCount: BENCH_PAGES, maxContexts: 1 << 21, filter: 0, ...extra }); p.train(mixedStream(450000, 1)); p.rehearse(); p.compact(); return p; },
    run: (p, ts) => { let h = 0; for (let i = 0; i < (polluteMiB ? 8192 : faults.length); i++) { if (i % 1000 === 0) { p.clearPresent(); p.maintain(); }
      if (polluteMiB) pollute();
      const a = process.hrtime.bigint(); const n = p.predictInto(faults[i]); ts.push(Number(process.hrtime.bigint() - a));
      for (let j = 0; j < n; j++) h = (h * 31 + p.output[j] + Math.round(p.confidence[j] * 1e6)) | 0;
      if (doMaintain) p.maintain(); } return h; } });
}
// snapshots per (job, build), then restore fresh for each rep
const snaps = jobs.map((j) => mods.map((m) => { useCoreModuleForBench(m); const p = j.make(); const s = p.snapshot(); p.dispose(); return s; }));
const times = jobs.map(() => mods.map(() => [] as number[]));
const hashes = jobs.map(() => mods.map(() => new Set<number>()));
for (let r = 0; r < reps; r++) for (let ji = 0; ji < jobs.length; ji++) for (let k = 0; k < mods.length; k++) {
  const b = (k + r) % mods.length; useCoreModuleForBench(mods[b]);
  const p = restorePredictor(snaps[ji][b]); hashes[ji][b].add(jobs[ji].run(p, times[ji][b])); p.dispose();
}
for (let ji = 0; ji < jobs.length; ji++) {
  const base = med(times[ji][0]);
  console.log(jobs[ji].name.padEnd(22), mods.map((_, b) => `${files[b].split("/").pop()}: med ${med(times[ji][b]).toFixed(2)} p99 ${p99(times[ji][b]).toFixed(2)} (${(med(times[ji][b]) / base).toFixed(2)}x) h=${[...hashes[ji][b]].join("/")}`).join(" | "));
}
if (junkSum === -1) console.log(""); // keeps the pollution reads
