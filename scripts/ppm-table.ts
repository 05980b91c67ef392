/**
 * The `ppm` strategy against the anchors on every trace of traces/ and every layout, as one markdown
 * table (RESULTS.md, section 2): per cell, the best anchor's requests and stall (each measure's own
 * best), ppm's, and whether ppm is at or under both. Requests, as in `npm start`'s verdict: network
 * faults plus waits on pages already in flight (the destination sends both and the vCPU blocks on
 * both); each cell shows the network faults in parentheses. With a push the anchors are qemu, hines,
 * leap and readahead; without one, readahead, leap, next8 and markov1.
 *
 *   node --import tsx scripts/ppm-table.ts [--push qemu|linear|hines|none] [--switch-at F[,F...]] [--seed S] [--history SRC] [TRACE...]
 *
 * `--history` is what ppm trains on (default: compare's, sets:10ms, what a hypervisor can record;
 * `full`, every access in order, is what none records).
 *
 * With several switch-over points (e.g. `--switch-at 0.2,0.25,0.3,0.35,0.4`) it prints, instead of
 * the table, how many of each cell's switch-over points ppm wins, and the totals: a cell won at one
 * point only is a margin, not a result.
 */
import { parseArgs } from "node:util";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readTrace } from "../src/trace/read.js";
import { compareStrategies } from "../src/sim/run.js";
import { anchorsFor } from "../src/cli/report.js";
import { PUSH_MODES, type PushMode } from "../src/sim/push.js";
import { DEFAULT_HISTORY, formatHistorySpec, parseHistorySpec, type HistorySpec } from "../src/history/sources.js";

const usage = (why: string): never => { console.error(`ppm-table: ${why}`); process.exit(2); };
let parsed;
try {
  parsed = parseArgs({
    options: { push: { type: "string", default: "qemu" }, "switch-at": { type: "string", default: "0.3" }, seed: { type: "string", default: "1" }, history: { type: "string", default: DEFAULT_HISTORY } },
    allowPositionals: true,
  });
} catch (e) { usage((e as Error).message); }
const { values: v, positionals } = parsed!;
const push = v.push as PushMode;
if (!PUSH_MODES.includes(push)) usage(`--push must be one of ${PUSH_MODES.join(", ")}, got ${JSON.stringify(v.push)}`);
if (!/^\d+$/.test(String(v.seed))) usage(`--seed must be a non-negative integer, got ${JSON.stringify(v.seed)}`);
let history: HistorySpec = { kind: "full" };
try { history = parseHistorySpec(String(v.history)); } catch (e) { usage(`--history: ${(e as Error).message}`); }
for (const f of positionals) if (!existsSync(f)) usage(`cannot read trace '${f}': no such file`);
const switchPoints = String(v["switch-at"]).split(",").map(Number);
if (switchPoints.some((x) => !(x > 0 && x < 1))) usage(`--switch-at: each point must be in (0, 1), got ${v["switch-at"]}`);
const dir = fileURLToPath(new URL("../traces/", import.meta.url));
const files = positionals.length > 0 ? positionals : readdirSync(dir).filter((f) => f.endsWith(".txt.gz")).sort().map((f) => dir + f);
const anchors = anchorsFor(push);
const ms = (s: number) => (s * 1e3).toFixed(1);
const many = switchPoints.length > 1;
console.log(`push ${push}, switch-over at ${switchPoints.join(", ")}, seed ${v.seed}, history ${formatHistorySpec(history)}; requests (network faults) / stall ms; anchors: ${anchors.join(", ")}\n`);
if (many) {
  console.log(`| trace | layout | switch-over points where ppm is at or under both (of ${switchPoints.length}) | ppm's stall / best anchor's, mean |`);
  console.log("|---|---|---:|---:|");
} else {
  console.log("| trace | layout | demand | best anchor requests (faults) | best anchor stall | ppm | qemu | oracle | ppm at or under both |");
  console.log("|---|---|---:|---|---|---|---|---|---|");
}
let cells = 0, wins = 0, ratio = 0, oracleRatio = 0, reqWins = 0, stallWins = 0, reqRatio = 0, faultWins = 0, faultStallWins = 0;
const requests = (r: { faults: number; inflightFaults: number }) => r.faults + r.inflightFaults;
const cell = (r: { faults: number; inflightFaults: number; stallS: number }) => `${requests(r)} (${r.faults}) / ${ms(r.stallS)}`;
for (const f of files) {
  const trace = await readTrace(f);
  for (const layout of ["virtual", "2m", "4k"] as const) {
    let cellWins = 0, cellRatio = 0;
    for (const switchAt of switchPoints) {
      const names = [...new Set([...anchors, "qemu", "ppm", "oracle"])];
      const c = await compareStrategies(trace, names, { layout, push, switchAt, seed: Number(v.seed), history });
      const by = new Map(c.results.map((r) => [r.strategy, r]));
      const rs = anchors.map((a) => by.get(a)!);
      const bf = rs.reduce((a, r) => (requests(r) < requests(a) ? r : a)), bs = rs.reduce((a, r) => (r.stallS < a.stallS ? r : a));
      const p = by.get("ppm")!, q = by.get("qemu")!, o = by.get("oracle")!;
      const okReq = requests(p) <= requests(bf), okStall = p.stallS <= bs.stallS, ok = okReq && okStall;
      cells++; if (ok) wins++; if (okReq) reqWins++; if (okStall) stallWins++;
      if (rs.every((r) => p.faults <= r.faults)) { faultWins++; if (okStall) faultStallWins++; }
      ratio += p.stallS / q.stallS; oracleRatio += o.stallS / q.stallS; reqRatio += requests(p) / requests(bf);
      if (ok) cellWins++;
      cellRatio += p.stallS / bs.stallS;
      const verdict = ok ? "yes" : okStall ? "**no**: requests" : okReq ? "**no**: stall" : "**no**";
      if (!many) console.log(`| ${trace.name} | ${layout} | ${c.demandFaults} | ${requests(bf)} (${bf.faults}) (${bf.strategy}) | ${ms(bs.stallS)} (${bs.strategy}) | ${cell(p)} | ${cell(q)} | ${cell(o)} | ${verdict} |`);
    }
    if (many) console.log(`| ${trace.name} | ${layout} | ${cellWins === switchPoints.length ? cellWins : `**${cellWins}**`} | ${(cellRatio / switchPoints.length).toFixed(3)} |`);
  }
}
const of = `of ${cells} ${many ? "runs (cell x switch-over point)" : "cells"}`;
console.log(`\nppm at or under the best anchor in requests and stall: ${wins} ${of} (requests ${reqWins}, stall ${stallWins}; network faults ${faultWins}, network faults and stall ${faultStallWins}); mean ppm / best anchor requests ${(reqRatio / cells).toFixed(3)}x; mean stall against qemu's: ppm ${(ratio / cells).toFixed(3)}x, oracle ${(oracleRatio / cells).toFixed(3)}x`);
