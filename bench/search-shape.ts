/**
 * `node --import tsx bench/search-shape.ts [TRACE...] [--lookahead N]`: the shape of the default
 * search on real fault streams, from the pure-TS reference model (same search as the Wasm core).
 *
 * For every fault of the quality replay (train on the first 30%, rehearse, then each first touch
 * of the rest; returned pages become present), it records how many states the search expanded and
 * how many levels its expansion tree has (the root alone: 1). Levels are what bounds the latency of
 * a search whose lookups overlap: the states on one level can be looked up together, but a level's
 * contexts are only known once the level above has been read, so a call on a model too large for the
 * cache waits for at least (1 + levels) rounds of dependent cache misses (one for learning the fault).
 * Expansions bound its work. Default traces: every trace in traces/. Layouts: virtual and 4k.
 * Then the time of such rounds here: R rounds of 7 overlapped loads (a state's 7 contexts) at random
 * lines of a 64 MiB table, each round's addresses computed from what the round before read.
 */
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createReferencePredictor } from "../src/reference/ppm.js";
import { readTextTrace } from "../src/trace/format.js";
import { placePages } from "../src/trace/layout.js";

const args = process.argv.slice(2);
const la = args.indexOf("--lookahead");
const lookahead = la >= 0 ? Number(args[la + 1]) : undefined;
if (lookahead !== undefined && !(Number.isInteger(lookahead) && lookahead >= 1 && lookahead <= 128)) {
  console.error(`search-shape: --lookahead takes an integer 1..128, got ${JSON.stringify(args[la + 1])}`);
  process.exit(2);
}
const named = args.filter((a, i) => !a.startsWith("--") && (la < 0 || i !== la + 1));
const dir = fileURLToPath(new URL("../traces/", import.meta.url));
const traces = named.length ? named : readdirSync(dir).filter((f) => f.endsWith(".txt.gz")).sort().map((f) => dir + f);

const pct = (s: number[], q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
const all: number[] = [];
console.log("trace/layout            calls  expansions/call  levels: median  p90  max   share of calls with levels <= 3");
for (const t of traces) {
  const tr = await readTextTrace(t);
  for (const layout of ["virtual", "4k"] as const) {
    const placed = placePages(tr.pages, { layout, seed: 1 });
    const split = Math.floor(placed.pages.length * 0.3);
    const r = createReferencePredictor({ pageCount: placed.pageCount, streams: 1, ...(lookahead ? { lookahead } : {}) });
    r.train(placed.pages.subarray(0, split));
    r.rehearse();
    const present = new Uint8Array(placed.pageCount);
    const levels: number[] = [];
    let expansions = 0;
    for (let i = split; i < placed.pages.length; i++) {
      const f = placed.pages[i];
      if (present[f]) continue;
      present[f] = 1;
      for (const p of r.predictNext(f)) present[p] = 1;
      levels.push(r.lastSearch.levels);
      expansions += r.lastSearch.expansions;
    }
    if (levels.length === 0) continue;
    all.push(...levels);
    levels.sort((a, b) => a - b);
    const upTo3 = levels.filter((l) => l <= 3).length / levels.length;
    console.log(`${`${tr.name}/${layout}`.padEnd(22)} ${String(levels.length).padStart(6)}  ${(expansions / levels.length).toFixed(2).padStart(15)}  ${String(pct(levels, 0.5)).padStart(14)}  ${String(pct(levels, 0.9)).padStart(3)}  ${String(levels[levels.length - 1]).padStart(3)}   ${(100 * upTo3).toFixed(0).padStart(5)}%`);
  }
}
all.sort((a, b) => a - b);
console.log(`all faults: ${all.length} calls, levels median ${pct(all, 0.5)}, p90 ${pct(all, 0.9)}, max ${all[all.length - 1]}`);

// What R dependent rounds of 7 overlapped misses cost on this machine: the floor of a search of
// R - 1 levels that lays its lookups out perfectly (one line per context, all of a level at once).
{
  const slots = (64 << 20) >> 2;
  const table = new Uint32Array(slots);
  let x = 1;
  for (let i = 0; i < slots; i += 16) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; table[i] = x; }
  const line = (v: number, k: number) => (Math.imul(v ^ (k * 0x9e3779b1), 0x85ebca77) >>> 0) & (slots - 1) & ~15;
  const calls = 200_000;
  const row: string[] = [];
  for (const rounds of [1, 2, 3, 4, 5, 9]) {
    let seed = 7, sink = 0;
    const t0 = process.hrtime.bigint();
    for (let c = 0; c < calls; c++) {
      let v = seed + c * 0x632be5ab;
      for (let r = 0; r < rounds; r++) {
        const a0 = table[line(v, 0)], a1 = table[line(v, 1)], a2 = table[line(v, 2)], a3 = table[line(v, 3)];
        const a4 = table[line(v, 4)], a5 = table[line(v, 5)], a6 = table[line(v, 6)];
        v = (a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6) >>> 0;
      }
      sink ^= v;
    }
    seed = sink;
    row.push(`${rounds} rounds ${(Number(process.hrtime.bigint() - t0) / calls).toFixed(0)} ns`);
  }
  console.log(`rounds of 7 overlapped misses (64 MiB), per call: ${row.join(", ")}`);
}
