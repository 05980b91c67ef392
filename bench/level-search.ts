/**
 * `node --import tsx bench/level-search.ts [--width W] [--ratio R] [TRACE...]`: a design prototype for
 * issue 13, quality only (no timing). The default search expands one state at a time, best first, so
 * a call waits for 8 rounds of cache misses in a row on a model larger than the cache; its expansion
 * tree is only 2-3 levels deep (bench/search-shape.ts). This replaces the reference model's search
 * with one that expands a *level* at a time: the root, then in each round the W most probable
 * unexpanded states (only those at least R times as probable as the best of them), until
 * `lookahead` expansions; then the `depth` most probable absent pages of all states. The states of a
 * round are independent, so a core could look up all their contexts at once: a call would wait for
 * one round of misses per round, not per expansion. Prints, per trace and layout, the replay's faults
 * as % of demand paging for today's search and for the level search, and the rounds per call.
 * Defaults: W 4, R 0.5, every trace in traces/, layouts virtual and 4k, switch-over at 30%.
 */
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createReferencePredictor, ReferencePredictor } from "../src/reference/ppm.js";
import { predictorStrategy } from "../src/strategies/predictor-strategy.js";
import { replay } from "../src/quality/replay.js";
import { readTrace } from "../src/trace/read.js";
import { placePages } from "../src/trace/layout.js";

const { values: v, positionals } = parseArgs({ options: { width: { type: "string", default: "4" }, ratio: { type: "string", default: "0.5" } }, allowPositionals: true });
const W = Number(v.width), R = Number(v.ratio);
if (!(Number.isInteger(W) && W >= 1 && W <= 128)) { console.error(`level-search: --width takes an integer 1..128, got ${JSON.stringify(v.width)}`); process.exit(2); }
if (!(R >= 0 && R <= 1)) { console.error(`level-search: --ratio takes a number in 0..1, got ${JSON.stringify(v.ratio)}`); process.exit(2); }
const dir = fileURLToPath(new URL("../traces/", import.meta.url));
const traces = positionals.length ? positionals : readdirSync(dir).filter((f) => f.endsWith(".txt.gz")).sort().map((f) => dir + f);

const STATES = 128 * 16 + 1; // as the core and the reference model
type State = { p: number; anchor: number; ctx: unknown; done: boolean; order: number };
// The reference model's internals this prototype drives (private there; the same search otherwise).
interface Internals {
  streamStates: { last: number; ctx: unknown[][] }[]; options: { lookahead: number; threshold: number; depth: number };
  present: Set<number>; conf: Float32Array; counters: { predictions: number };
  candidates(st: State, bar: number): [number, number][]; advance(src: State, page: number, p: number): State;
}
let rounds = 0, calls = 0;
function levelSearch(this: Internals, stream: number): number[] {
  const s = this.streamStates[stream];
  const states: State[] = [{ p: 1, anchor: s.last, ctx: [s.ctx[0].slice(), s.ctx[1].slice()], done: false, order: 0 }];
  const followed = new Set<number>([s.last]);
  const byP = (a: State, b: State) => b.p - a.p || a.order - b.order; // ties: the earlier state
  let expansions = 0, round = 0;
  while (expansions < this.options.lookahead) {
    const open = states.filter((x) => !x.done).sort(byP);
    if (open.length === 0) break;
    const take = round === 0 ? open.slice(0, 1) : open.slice(0, Math.min(W, this.options.lookahead - expansions)).filter((x) => x.p >= R * open[0].p);
    round++;
    for (const cur of take) {
      cur.done = true;
      expansions++;
      // No dead-state bar here (-1): the prototype keeps the blend it was measured with.
      for (const [page, q] of this.candidates(cur, -1)) {
        const p = cur.p * q;
        if (p < this.options.threshold) break;
        if (!followed.has(page) && states.length < STATES) { followed.add(page); states.push({ ...this.advance(cur, page, p), done: false, order: states.length }); }
      }
    }
  }
  rounds += round; calls++;
  const out: number[] = [];
  for (const st of states.sort(byP)) {
    if (out.length >= this.options.depth) break;
    if (this.present.has(st.anchor)) continue;
    this.present.add(st.anchor);
    this.conf[out.length] = st.p;
    out.push(st.anchor);
  }
  this.counters.predictions += out.length;
  return out;
}

const proto = ReferencePredictor.prototype as unknown as { search: (s: number) => number[] };
const bestFirst = proto.search;
console.log(`| trace | layout | best first (today) | level search (width ${W}, ratio ${R}) | difference (points) |`);
console.log("|---|---|---:|---:|---:|");
let sumA = 0, sumB = 0, cells = 0, worst = 0;
for (const t of traces) {
  const tr = await readTrace(t);
  for (const layout of ["virtual", "4k"] as const) {
    const placed = placePages(tr.pages, { layout, seed: 1 });
    const pct: number[] = [];
    for (const search of [bestFirst, levelSearch]) {
      proto.search = search as typeof bestFirst;
      const pred = createReferencePredictor({ pageCount: placed.pageCount, streams: 1 });
      const r = replay(placed.pages, placed.pageCount, predictorStrategy(pred, "ppm"), { switchAt: 0.3 });
      pct.push((100 * r.faults) / r.demandFaults);
    }
    proto.search = bestFirst;
    sumA += pct[0]; sumB += pct[1]; cells++; worst = Math.max(worst, pct[1] - pct[0]);
    console.log(`| ${tr.name} | ${layout} | ${pct[0].toFixed(1)}% | ${pct[1].toFixed(1)}% | ${(pct[1] - pct[0]).toFixed(1)} |`);
  }
}
console.log(`\naverage: best first ${(sumA / cells).toFixed(2)}%, level search ${(sumB / cells).toFixed(2)}%; worst cell +${worst.toFixed(2)} points; level search rounds per call ${(rounds / calls).toFixed(2)} (the root's included)`);
