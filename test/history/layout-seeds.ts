/**
 * Is "at or under the best anchor in every cell" a property a strategy can have, or a draw? The
 * 2m and 4k layouts place pages with a seed (src/trace/layout.ts); this runs `ppm` and the anchors
 * over several seeds of one history source and counts, per cell, the seeds at which each strategy is
 * at or under the best of the anchors in both faults and stall, and each one's mean stall against
 * QEMU's. Behind RESULTS.md section 5 ("No history: which anchor wins is the layout's draw").
 *   node --import tsx test/history/layout-seeds.ts TRACE... [--seeds 1-8] [--history none]
 *     [--layouts virtual,2m,4k] [--push qemu] [--strategies ppm]
 */
import { readTrace } from "../../src/trace/read.js";
import { prepareRun, runOne } from "../../src/sim/run.js";
import { formatHistorySpec, parseHistorySpec } from "../../src/history/sources.js";
import type { LayoutName } from "../../src/trace/layout.js";
import type { PushMode } from "../../src/sim/push.js";

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(k); if (i < 0) return d; const v = args[i + 1]; args.splice(i, 2); return v; };
const [lo, hi = lo] = opt("--seeds", "1-8").split("-").map(Number);
const spec = parseHistorySpec(opt("--history", "none"));
const layouts = opt("--layouts", "virtual,2m,4k").split(",") as LayoutName[];
const push = opt("--push", "qemu") as PushMode;
const mine = opt("--strategies", "ppm").split(",");
const anchors = ["qemu", "hines", "leap", "readahead"];
if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi < lo) throw new RangeError(`--seeds must be A-B with 0 <= A <= B, got ${lo}-${hi}`);
if (args.length === 0) throw new TypeError("give at least one trace file");

const names = [...anchors, ...mine];
const total = new Map<string, { runs: number; wins: Map<string, number>; stall: Map<string, number> }>();
console.log(`history ${formatHistorySpec(spec)}, push ${push}, seeds ${lo}-${hi}; per cell: seeds at or under the best anchor (faults and stall) / mean stall vs qemu`);
console.log(["cell".padEnd(22), ...names.map((n) => n.padStart(16))].join(""));
for (const path of args) {
  const trace = await readTrace(path);
  for (const layout of layouts) {
    // The virtual layout has no seed: one run stands for all.
    const seeds = layout === "virtual" ? [lo] : Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    const wins = new Map(names.map((n) => [n, 0])), stall = new Map(names.map((n) => [n, 0]));
    for (const seed of seeds) {
      const { prep, params, link, plan } = prepareRun(trace, { layout, seed, push, history: spec });
      const r = new Map<string, { faults: number; stall: number }>();
      for (const n of names) {
        const res = await runOne(n, prep, params, link, false, anchors.includes(n) ? undefined : plan);
        r.set(n, { faults: res.faults, stall: res.stallS });
      }
      const bf = Math.min(...anchors.map((a) => r.get(a)!.faults)), bs = Math.min(...anchors.map((a) => r.get(a)!.stall));
      for (const n of names) {
        const x = r.get(n)!;
        if (x.faults <= bf && x.stall <= bs * (1 + 1e-12)) wins.set(n, wins.get(n)! + 1);
        stall.set(n, stall.get(n)! + x.stall / r.get("qemu")!.stall);
      }
    }
    const t = total.get(layout) ?? { runs: 0, wins: new Map(names.map((n) => [n, 0])), stall: new Map(names.map((n) => [n, 0])) };
    t.runs += seeds.length;
    for (const n of names) { t.wins.set(n, t.wins.get(n)! + wins.get(n)!); t.stall.set(n, t.stall.get(n)! + stall.get(n)!); }
    total.set(layout, t);
    console.log([`${trace.name} ${layout}`.padEnd(22), ...names.map((n) => `${wins.get(n)}/${seeds.length} ${(stall.get(n)! / seeds.length).toFixed(3)}`.padStart(16))].join(""));
  }
}
for (const [layout, t] of total) {
  console.log([`all ${layout}`.padEnd(22), ...names.map((n) => `${t.wins.get(n)}/${t.runs} ${(t.stall.get(n)! / t.runs).toFixed(3)}`.padStart(16))].join(""));
}
