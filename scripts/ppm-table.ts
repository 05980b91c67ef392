/**
 * The `ppm` strategy against the anchors on every trace of traces/ and every layout, as one markdown
 * table (RESULTS.md, section 2): per cell, the best anchor's faults and stall (each measure's own
 * best), ppm's, and whether ppm is at or under both. With a push the anchors are qemu, hines, leap
 * and readahead; without one, readahead, leap, next8 and markov1.
 *
 *   node --import tsx scripts/ppm-table.ts [--push qemu|linear|hines|none] [--switch-at F] [--seed S] [TRACE...]
 */
import { parseArgs } from "node:util";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readTrace } from "../src/trace/read.js";
import { compareStrategies } from "../src/sim/run.js";
import { anchorsFor } from "../src/cli/report.js";
import type { PushMode } from "../src/sim/push.js";

const { values: v, positionals } = parseArgs({
  options: { push: { type: "string", default: "qemu" }, "switch-at": { type: "string", default: "0.3" }, seed: { type: "string", default: "1" } },
  allowPositionals: true,
});
const push = v.push as PushMode;
const dir = fileURLToPath(new URL("../traces/", import.meta.url));
const files = positionals.length > 0 ? positionals : readdirSync(dir).filter((f) => f.endsWith(".txt.gz")).sort().map((f) => dir + f);
const anchors = anchorsFor(push);
const ms = (s: number) => (s * 1e3).toFixed(1);
console.log(`push ${push}, switch-over at ${v["switch-at"]}, seed ${v.seed}; faults / stall ms; anchors: ${anchors.join(", ")}\n`);
console.log("| trace | layout | demand | best anchor faults | best anchor stall | ppm | qemu | oracle | ppm at or under both |");
console.log("|---|---|---:|---|---|---|---|---|---|");
let cells = 0, wins = 0, ratio = 0, oracleRatio = 0;
for (const f of files) {
  const trace = await readTrace(f);
  for (const layout of ["virtual", "2m", "4k"] as const) {
    const names = [...new Set([...anchors, "qemu", "ppm", "oracle"])];
    const c = await compareStrategies(trace, names, { layout, push, switchAt: Number(v["switch-at"]), seed: Number(v.seed) });
    const by = new Map(c.results.map((r) => [r.strategy, r]));
    const rs = anchors.map((a) => by.get(a)!);
    const bf = rs.reduce((a, r) => (r.faults < a.faults ? r : a)), bs = rs.reduce((a, r) => (r.stallS < a.stallS ? r : a));
    const p = by.get("ppm")!, q = by.get("qemu")!, o = by.get("oracle")!;
    const ok = p.faults <= bf.faults && p.stallS <= bs.stallS;
    cells++; if (ok) wins++;
    ratio += p.stallS / q.stallS; oracleRatio += o.stallS / q.stallS;
    console.log(`| ${trace.name} | ${layout} | ${c.demandFaults} | ${bf.faults} (${bf.strategy}) | ${ms(bs.stallS)} (${bs.strategy}) | ${p.faults} / ${ms(p.stallS)} | ${q.faults} / ${ms(q.stallS)} | ${o.faults} / ${ms(o.stallS)} | ${ok ? "yes" : "**no**"} |`);
  }
}
console.log(`\nppm at or under the best anchor in faults and stall: ${wins} of ${cells} cells; mean stall against qemu's: ppm ${(ratio / cells).toFixed(3)}x, oracle ${(oracleRatio / cells).toFixed(3)}x`);
