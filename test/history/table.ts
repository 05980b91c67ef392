/**
 * RESULTS.md "History sources" from a sweep's JSON lines (test/history/sweep.ts): per push, a table of
 * ppm's faults / stall per history source with the best anchor, then the summary lines (ratios to
 * the full history, cells at or under the best anchor). Not a test.
 *   node --import tsx test/history/table.ts SWEEP.json
 */
import { readFileSync } from "node:fs";

interface Rec { trace: string; layout: string; push: string; strategy: string; history: string; faults: number; stallMs: number }
const recs: Rec[] = readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Rec);
const ANCHORS = ["qemu", "hines", "leap", "readahead"];
const key = (r: { trace: string; layout: string; push: string }) => `${r.trace}|${r.layout}|${r.push}`;
const cellsOf = (push: string) => [...new Set(recs.filter((r) => r.push === push).map(key))];
const order = (h: string) => { const kinds = ["full", "first-touch", "sets", "writes", "write-sets", "earlier", "none"]; const [k, t] = h.split(":"); return kinds.indexOf(k) * 100 + (t ? Math.log10(Number(t)) : 0); };
const sources = [...new Set(recs.filter((r) => r.strategy === "ppm").map((r) => r.history))].sort((a, b) => order(a) - order(b));
const find = (cell: string, strategy: string, history: string) => recs.find((r) => key(r) === cell && r.strategy === strategy && r.history === history);
const best = (cell: string) => {
  const as = ANCHORS.map((a) => find(cell, a, "full")).filter((r): r is Rec => r !== undefined);
  return { faults: Math.min(...as.map((r) => r.faults)), stallMs: Math.min(...as.map((r) => r.stallMs)) };
};
const lines: string[] = [];
for (const push of [...new Set(recs.map((r) => r.push))]) {
  lines.push(`#### push ${push}: ppm's faults / stall ms per history source; best anchor = each measure's best of ${ANCHORS.join(", ")}`, "");
  lines.push(`| trace | layout | best anchor | ${sources.join(" | ")} |`, `|---|---|---|${sources.map(() => "---:").join("|")}|`);
  for (const cell of cellsOf(push)) {
    const [trace, layout] = cell.split("|"), b = best(cell);
    const row = sources.map((h) => { const r = find(cell, "ppm", h); return r ? `${r.faults} / ${r.stallMs.toFixed(1)}` : "-"; });
    lines.push(`| ${trace} | ${layout} | ${b.faults} / ${b.stallMs.toFixed(1)} | ${row.join(" | ")} |`);
  }
  lines.push("");
}
lines.push("```");
for (const push of [...new Set(recs.map((r) => r.push))]) {
  for (const h of sources) {
    let n = 0, fr = 0, fmax = 0, sr = 0, bf = 0, bs = 0, both = 0;
    for (const cell of cellsOf(push)) {
      const r = find(cell, "ppm", h), full = find(cell, "ppm", "full");
      if (!r || !full) continue;
      const b = best(cell);
      n++; fr += r.faults / full.faults; fmax = Math.max(fmax, r.faults / full.faults); sr += r.stallMs / full.stallMs;
      const okF = r.faults <= b.faults, okS = r.stallMs <= b.stallMs;
      if (okF) bf++; if (okS) bs++; if (okF && okS) both++;
    }
    lines.push(`push ${push.padEnd(5)} ${h.padEnd(16)} cells ${n}  faults/full mean ${(fr / n).toFixed(3)} max ${fmax.toFixed(3)}  stall/full mean ${(sr / n).toFixed(3)}  <=best anchor: faults ${bf}/${n} stall ${bs}/${n} both ${both}/${n}`);
  }
}
lines.push("```");
console.log(lines.join("\n"));
