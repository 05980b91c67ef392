/**
 * The speed / quality frontier of the engine's options (issue #13: the defaults' latency against
 * "quality unchanged"). For each configuration, the quality replay of every trace in traces/ at
 * layouts virtual and 4k (the engine's faults as % of demand paging, as `npm run quality`) and, in
 * the same replay, the time of every fault's call (predictNext, timed one by one; maintain() after
 * it, untimed, as the transport does; between two faults the harness walks the trace, which takes
 * the caches as a guest would). The plain Map-based PPM of bench/map-ppm.ts runs as one more row.
 *
 *   node --import tsx bench/frontier.ts [--json FILE] [--only=NAME,...] [--first] [TRACE...]
 *
 * With --first the engine's rows answer each fault in two parts, predictFirst(fault, 1) then
 * predictRest() (the same pages), and the time columns are the first part's: how long the transport
 * waits for the first predicted page. The rest's median is printed after the table.
 *
 * Per row: the average over the cells, the worst cell against the defaults (points; > 0 is worse),
 * how many cells are more than 0.5 point worse, and the calls' median / p90 / p99 pooled over all
 * cells. Quality is deterministic; times are this machine's at the moment (compare rows of one run).
 */
import { writeFileSync } from "node:fs";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readTrace } from "../src/trace/read.js";
import { placePages } from "../src/trace/layout.js";
import { replay } from "../src/quality/replay.js";
import { createPredictorStrategy, type PredictorStrategy } from "../src/strategies/predictor-strategy.js";
import { pushEngineOptions } from "../src/strategies/ppm-policy.js";
import type { Strategy } from "../src/strategies/types.js";
import type { FullPredictorOptions } from "../src/engine/options.js";
import { MapPpm } from "./map-ppm.js";

type Row = { name: string; engine?: Partial<FullPredictorOptions>; peer?: true };
const ROWS: Row[] = [
  { name: "defaults", engine: {} },
  { name: "lookahead 6", engine: { lookahead: 6 } },
  { name: "lookahead 4", engine: { lookahead: 4 } },
  { name: "lookahead 2", engine: { lookahead: 2 } },
  { name: "lookahead 1", engine: { lookahead: 1 } },
  { name: "order 2", engine: { order: 2 } },
  { name: "order 2, lookahead 4", engine: { order: 2, lookahead: 4 } },
  { name: "threshold 0.001", engine: { threshold: 0.001 } },
  { name: "threshold 0.01", engine: { threshold: 0.01 } },
  { name: "escape C", engine: { escape: "C" } },
  { name: "page alphabet", engine: { alphabet: "page" } },
  { name: "delta alphabet", engine: { alphabet: "delta" } },
  { name: "ppm strategy's engine", engine: pushEngineOptions(8) }, // (depth 2 beside a push)
  { name: "ppm strategy's engine at depth 8", engine: { ...pushEngineOptions(8), depth: 8 } },
  { name: "Map peer (order 3, greedy chain)", peer: true },
  // The parts of a default call, for the time columns (their quality is not a configuration's):
  // learning the fault and finding its contexts only; plus the root's expansion and one page.
  { name: "parts: depth 0 (learning only)", engine: { depth: 0 } },
  { name: "parts: lookahead 1 depth 1", engine: { lookahead: 1, depth: 1 } },
];

/** bench/map-ppm.ts as a Strategy: learns the history, then every fault (no present set of its own beyond what it sent). */
function peerStrategy(depth: number): Strategy {
  const m = new MapPpm(depth, 0.05);
  return {
    name: "map-peer",
    train(pages: Uint32Array) { for (let i = 0; i < pages.length; i++) m.learn(pages[i]); },
    onFault: (p) => Uint32Array.from(m.predict(p)),
    onPresent: (p) => { m.present.add(p); },
  };
}

const args = process.argv.slice(2);
const jsonOut = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;
const firstMode = args.includes("--first");
const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const given = args.filter((a, i) => !a.startsWith("--") && args[i - 1] !== "--json");
const dir = fileURLToPath(new URL("../traces/", import.meta.url));
const paths = given.length ? given : readdirSync(dir).filter((f) => f.endsWith(".txt.gz")).sort().map((f) => dir + f);
const traces = await Promise.all(paths.map((p) => readTrace(p)));
const rows = only ? ROWS.filter((r) => only.includes(r.name)) : ROWS;

const q = (s: Float64Array, f: number) => s[Math.min(s.length - 1, Math.floor(s.length * f))];
type Result = { name: string; cells: Record<string, number>; calls: number; medianUs: number; p90Us: number; p99Us: number; byLayoutMedianUs: Record<string, number>; byLayoutP99Us: Record<string, number> };
const results: Result[] = [];
for (const row of rows) {
  const cells: Record<string, number> = {};
  const times: number[] = [];
  const rest: number[] = [];
  const byLayout: Record<string, number[]> = { virtual: [], "4k": [] };
  for (const tr of traces) for (const layout of ["virtual", "4k"] as const) {
    const placed = placePages(tr.pages, { layout, seed: 1 });
    const inner = row.peer ? peerStrategy(8) : createPredictorStrategy({ pageCount: placed.pageCount, depth: 8, streams: 1, ...row.engine });
    const pred = firstMode && !row.peer ? (inner as PredictorStrategy).predictor : undefined;
    const timed: Strategy = {
      ...inner,
      onFault: pred
        ? (p) => {
          const a = process.hrtime.bigint();
          pred.predictFirst(p, 1);
          const b = process.hrtime.bigint();
          const n = pred.predictRest();
          const ns = Number(b - a); times.push(ns); byLayout[layout].push(ns); rest.push(Number(process.hrtime.bigint() - b));
          return pred.output.slice(0, n);
        }
        : (p, s) => { const a = process.hrtime.bigint(); const r = inner.onFault(p, s); const ns = Number(process.hrtime.bigint() - a); times.push(ns); byLayout[layout].push(ns); return r; },
    };
    const r = replay(placed.pages, placed.pageCount, timed, { switchAt: 0.3 });
    inner.dispose?.();
    cells[`${tr.name}/${layout}`] = r.percentOfDemand;
  }
  const s = Float64Array.from(times).sort();
  const med = (a: number[], f = 0.5) => q(Float64Array.from(a).sort(), f) / 1e3;
  results.push({ name: row.name, cells, calls: s.length, medianUs: q(s, 0.5) / 1e3, p90Us: q(s, 0.9) / 1e3, p99Us: q(s, 0.99) / 1e3,
    byLayoutMedianUs: { virtual: med(byLayout.virtual), "4k": med(byLayout["4k"]) },
    byLayoutP99Us: { virtual: med(byLayout.virtual, 0.99), "4k": med(byLayout["4k"], 0.99) } });
  if (rest.length) process.stderr.write(`${row.name}: predictRest median ${(q(Float64Array.from(rest).sort(), 0.5) / 1e3).toFixed(2)} us\n`);
  process.stderr.write(`${row.name} done\n`);
}

const base = results.find((r) => r.name === "defaults");
console.log(`| configuration | average % of demand | worst cell vs defaults | cells > 0.5 worse | calls | median us | p90 us | p99 us | median (p99) us: virtual / 4k |`);
console.log(`|---|---:|---|---:|---:|---:|---:|---:|---|`);
for (const r of results) {
  const keys = Object.keys(r.cells);
  const avg = keys.reduce((a, k) => a + r.cells[k], 0) / keys.length;
  let worst = "-", over = 0;
  if (base) {
    let wk = keys[0];
    for (const k of keys) if (r.cells[k] - base.cells[k] > r.cells[wk] - base.cells[wk]) wk = k;
    worst = `${(r.cells[wk] - base.cells[wk]).toFixed(2)} (${wk})`;
    over = keys.filter((k) => r.cells[k] - base.cells[k] > 0.5).length;
  }
  console.log(`| ${r.name} | ${avg.toFixed(2)} | ${worst} | ${over} of ${keys.length} | ${r.calls} | ${r.medianUs.toFixed(2)} | ${r.p90Us.toFixed(2)} | ${r.p99Us.toFixed(2)} | ${r.byLayoutMedianUs.virtual.toFixed(2)} (${r.byLayoutP99Us.virtual.toFixed(1)}) / ${r.byLayoutMedianUs["4k"].toFixed(2)} (${r.byLayoutP99Us["4k"].toFixed(1)}) |`);
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ node: process.version, results }, null, 1));
