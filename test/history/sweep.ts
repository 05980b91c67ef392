/**
 * The history-source sweep behind RESULTS.md "History sources": for each trace, layout and push,
 * `ppm` trained on each history source (full, first-touch/sets/writes/write-sets at each interval,
 * earlier, none), and the anchors (qemu, hines, leap, readahead: they do not train, so one run each).
 *   node --import tsx test/history/sweep.ts OUT.json TRACE... [--intervals 1e5,1e6,1e7] [--push qemu,none]
 *     [--layouts virtual,2m,4k] [--sources full,first-touch,...] [--strategies ppm]
 * Appends one JSON line per run to OUT.json (resumable: a line already there is not run again).
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { readTrace } from "../../src/trace/read.js";
import { prepareRun, runOne, trainingPlan } from "../../src/sim/run.js";
import { formatHistorySpec, parseHistorySpec, needsInterval, needsWrites, type HistorySpec } from "../../src/history/sources.js";
import type { LayoutName } from "../../src/trace/layout.js";
import type { PushMode } from "../../src/sim/push.js";

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(k); if (i < 0) return d; const v = args[i + 1]; args.splice(i, 2); return v; };
const intervals = opt("--intervals", "1e5,1e6,1e7").split(",");
const pushes = opt("--push", "qemu,none").split(",") as PushMode[];
const layouts = opt("--layouts", "virtual,2m,4k").split(",") as LayoutName[];
const kinds = opt("--sources", "full,first-touch,sets,writes,write-sets,earlier,none").split(",");
const strategies = opt("--strategies", "ppm").split(",");
const anchors = opt("--anchors", "qemu,hines,leap,readahead").split(",").filter(Boolean);
const [out, ...traces] = args;
const done = new Set(existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => { const j = JSON.parse(l); return `${j.trace}|${j.layout}|${j.push}|${j.strategy}|${j.history}`; }) : []);

for (const path of traces) {
  const trace = await readTrace(path);
  const specs: HistorySpec[] = [];
  for (const k of kinds) {
    if (needsWrites(k as never) && !trace.writes) continue;
    if (needsInterval(k as never)) for (const t of intervals) specs.push(parseHistorySpec(`${k}:${t}`));
    else specs.push(parseHistorySpec(k));
  }
  for (const push of pushes) {
    for (const layout of layouts) {
      const { prep, params, link } = prepareRun(trace, { layout, push });
      const jobs: [string, HistorySpec][] = [...anchors.map((a) => [a, { kind: "full" }] as [string, HistorySpec])];
      for (const s of strategies) for (const h of specs) jobs.push([s, h]);
      for (const [name, spec] of jobs) {
        const label = formatHistorySpec(spec);
        const key = `${trace.name}|${layout}|${push}|${name}|${label}`;
        if (done.has(key)) continue;
        const t0 = performance.now();
        const plan = trainingPlan(trace, prep, spec);
        const r = await runOne(name, prep, params, link, false, plan);
        const rec = { trace: trace.name, layout, push, strategy: name, history: label, historyPages: plan.derived?.pages.length ?? null, faults: r.faults, stallMs: r.stallS * 1e3, inflight: r.inflightFaults, demand: r.demandFaults, ms: Math.round(performance.now() - t0) };
        appendFileSync(out, JSON.stringify(rec) + "\n");
        process.stderr.write(`${key} faults ${r.faults} stall ${(r.stallS * 1e3).toFixed(1)} ms hist ${rec.historyPages} (${rec.ms} ms)\n`);
      }
    }
  }
}
