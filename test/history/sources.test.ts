// History sources derived from hand-made traces: every source gives exactly the expected sequence;
// traces with and without the write flag read the same pages; old traces keep working.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { deriveHistory, parseHistorySpec, formatHistorySpec, type HistorySpec } from "../../src/history/sources.js";
import { parseTraceText } from "../../src/trace/format.js";
import { readTrace } from "../../src/trace/read.js";
import { compareStrategies, prepareRun, earlierMigration, trainingPlan } from "../../src/sim/run.js";
import { replay } from "../../src/quality/replay.js";
import { qualityHistory } from "../../src/quality/table.js";
import { parseCompareArgs } from "../../src/cli/compare.js";
import { createStrategy } from "../../src/strategies/index.js";
import type { Strategy } from "../../src/strategies/types.js";

// page gap kind; one stream; with T = 10 the intervals are [0,10) [10,20) [20,30) guest instructions.
const TEXT_W = `# hand-made
1 2 r
2 3 w
1 1 w
3 5 r
2 2 r
1 1 r
3 4 w
2 5 w
4 1 r
2 1 w
`;
const TEXT_PLAIN = TEXT_W.replace(/ [rw]$/gm, "");
const input = (t = parseTraceText(TEXT_W)) => ({ pages: t.pages, gaps: t.gaps, streams: t.streams, writes: t.writes });
const pagesOf = (spec: string) => Array.from(deriveHistory(input(), parseHistorySpec(spec)).pages);

test("each source of the hand-made trace gives exactly the expected sequence", () => {
  assert.deepEqual(pagesOf("full"), [1, 2, 1, 3, 2, 1, 3, 2, 4, 2]);
  assert.deepEqual(pagesOf("none"), []);
  assert.deepEqual(pagesOf("first-touch:10"), [1, 2, /**/ 3, 2, 1, /**/ 2, 4]);
  assert.deepEqual(pagesOf("sets:10"), [1, 2, /**/ 1, 2, 3, /**/ 2, 4]);
  assert.deepEqual(pagesOf("writes:10"), [2, 1, /**/ 3, /**/ 2]);
  assert.deepEqual(pagesOf("write-sets:10"), [1, 2, /**/ 3, /**/ 2]);
  assert.deepEqual(pagesOf("first-touch:1"), [1, 2, 1, 3, 2, 1, 3, 2, 4, 2], "one access per interval: every access");
  assert.deepEqual(pagesOf("first-touch:1e9"), [1, 2, 3, 4], "one interval: first touches");
  assert.deepEqual(pagesOf("sets:1e9"), [1, 2, 3, 4]);
  assert.deepEqual(pagesOf("writes:1e9"), [2, 1, 3]);
  // times 2 5 6 | 11 13 | 14 18 | 23 24 25 with T = 7: an access at t = 14 opens interval [14, 21)
  assert.deepEqual(pagesOf("first-touch:7"), [1, 2, /**/ 3, 2, /**/ 1, 3, /**/ 2, 4]);
  for (const s of ["first-touch:10", "sets:10", "writes:10"]) {
    const h = deriveHistory(input(), parseHistorySpec(s));
    assert.equal(h.streams.length, h.pages.length);
  }
});

test("intervals count per stream; entries come in (interval, trace order); sets have no vCPU", () => {
  // page gap stream: s0 at t=5, 8, 9; s1 at t=12, 13
  const t = parseTraceText("10 5 0\n20 12 1\n11 3 0\n10 1 1\n20 1 0\n");
  const ft = deriveHistory(input(t), parseHistorySpec("first-touch:10"));
  assert.deepEqual(Array.from(ft.pages), [10, 11, 20, 20, 10]);
  assert.deepEqual(Array.from(ft.streams), [0, 0, 0, 1, 1]);
  const sets = deriveHistory(input(t), parseHistorySpec("sets:10"));
  assert.deepEqual(Array.from(sets.pages), [10, 11, 20, 10, 20]);
  assert.deepEqual(Array.from(sets.streams), [0, 0, 0, 0, 0]);
});

test("history specs parse, with times at the given instructions per second, and bad ones are named", () => {
  assert.deepEqual(parseHistorySpec("first-touch:1e7"), { kind: "first-touch", interval: 1e7 });
  assert.deepEqual(parseHistorySpec("sets:10ms"), { kind: "sets", interval: 1e7 });
  assert.deepEqual(parseHistorySpec("writes:100us", 2e9), { kind: "writes", interval: 2e5 });
  assert.deepEqual(parseHistorySpec("earlier"), { kind: "earlier" });
  assert.equal(formatHistorySpec(parseHistorySpec("write-sets:1000000")), "write-sets:1e6");
  for (const bad of ["", "partial", "first-touch", "sets:0", "sets:-5", "sets:abc", "none:5", "full:1e7", "writes:1ms5"]) {
    assert.throws(() => parseHistorySpec(bad), RangeError, bad);
  }
  assert.throws(() => deriveHistory(input(parseTraceText(TEXT_PLAIN)), parseHistorySpec("writes:10")), /records writes/);
});

test("trace text with and without the write flag reads the same pages, gaps and streams", () => {
  const w = parseTraceText(TEXT_W), plain = parseTraceText(TEXT_PLAIN);
  assert.deepEqual(Array.from(w.pages), Array.from(plain.pages));
  assert.deepEqual(Array.from(w.gaps), Array.from(plain.gaps));
  assert.deepEqual(Array.from(w.streams), Array.from(plain.streams));
  assert.equal(plain.writes, undefined);
  assert.deepEqual(Array.from(w.writes!), [0, 1, 1, 0, 0, 0, 1, 1, 0, 1]);
  for (const s of ["first-touch:10", "sets:10", "full"]) {
    assert.deepEqual(Array.from(deriveHistory(input(plain), parseHistorySpec(s)).pages), pagesOf(s), s);
  }
});

const FIXTURE = fileURLToPath(new URL("../fixtures/sqlite-300k.txt.gz", import.meta.url));

test("an old trace (no write flag) keeps working: --history full is the default, writes are refused by name", async () => {
  const trace = await readTrace(FIXTURE, { limit: 60_000 });
  assert.equal(trace.writes, undefined);
  const names = ["ppm", "qemu"];
  const a = await compareStrategies(trace, names, { layout: "4k" });
  const b = await compareStrategies(trace, names, { layout: "4k", history: { kind: "full" } });
  assert.deepEqual(a.results.map((r) => [r.faults, r.stallS]), b.results.map((r) => [r.faults, r.stallS]));
  assert.equal(a.historyPages, Math.floor(trace.length * 0.3));
  await assert.rejects(compareStrategies(trace, names, { layout: "4k", history: { kind: "writes", interval: 1e6 } }), /records writes/);
  await assert.rejects(parseCompareArgs(["--trace", FIXTURE, "--limit", "1000", "--history", "writes:1e6"]), /records writes/);
  await assert.rejects(parseCompareArgs(["--trace", FIXTURE, "--limit", "1000", "--history", "bogus"]), /--history/);
  const none = await compareStrategies(trace, ["qemu"], { layout: "4k", history: { kind: "none" } });
  assert.equal(none.results[0].faults, a.results[1].faults, "qemu does not train: the history changes nothing");
});

test("earlier: demand paging's earlier migration saw every pre-switch-over page once, in first-touch order", async () => {
  const trace = parseTraceText("5 1\n6 1\n5 1\n7 1\n6 1\n8 1\n9 1\n5 1\n9 1\n10 1\n");
  const { prep, params, link } = prepareRun(trace, { push: "none", switchAt: 0.6 }); // history: the first 6
  const h = await earlierMigration("demand", prep, params, link);
  assert.deepEqual(Array.from(h.pages), [5, 6, 7, 8]);
  // the sources derived from the trace agree on this one
  assert.deepEqual(Array.from(trainingPlan(trace, prep, { kind: "first-touch", interval: 1e9 }).derived!.pages), [5, 6, 7, 8]);
  // the quality replay's earlier migration sees the same
  const made: Strategy[] = [];
  const make = () => { const s = { name: "demand", onFault: () => [] }; made.push(s); return s as Strategy; };
  assert.deepEqual(Array.from(qualityHistory(trace, trace.pages, 16, make, { switchAt: 0.6, history: { kind: "earlier" } })!), [5, 6, 7, 8]);
});

test("none: train() is never called; earlier/first-touch feed train() the derived pages", async () => {
  const trace = parseTraceText("5 1\n6 1\n5 1\n7 1\n6 1\n8 1\n9 1\n5 1\n9 1\n10 1\n");
  const calls: number[][] = [];
  const spy = (): Strategy => ({ name: "spy", train: (p) => { calls.push(Array.from(p)); }, onFault: () => [] });
  replay(trace.pages, 16, spy(), { switchAt: 0.6, history: qualityHistory(trace, trace.pages, 16, spy, { switchAt: 0.6, history: { kind: "none" } }) });
  assert.deepEqual(calls, []);
  replay(trace.pages, 16, spy(), { switchAt: 0.6, history: qualityHistory(trace, trace.pages, 16, spy, { switchAt: 0.6, history: { kind: "first-touch", interval: 3 } }) });
  assert.deepEqual(calls, [[5, 6, 5, 7, 6, 8]]);
  calls.length = 0;
  replay(trace.pages, 16, spy(), { switchAt: 0.6 });
  assert.deepEqual(calls, [[5, 6, 5, 7, 6, 8]], "default: every pre-switch-over access");
});

test("the simulator runs every source on a small real trace (ppm), and a wider interval gives fewer history pages", async () => {
  const trace = await readTrace(FIXTURE, { limit: 40_000 });
  const specs: HistorySpec[] = [{ kind: "full" }, { kind: "first-touch", interval: 1e5 }, { kind: "first-touch", interval: 1e6 }, { kind: "sets", interval: 1e6 }, { kind: "earlier" }, { kind: "none" }];
  const sizes: number[] = [];
  for (const history of specs) {
    const c = await compareStrategies(trace, ["ppm"], { layout: "virtual", history });
    assert.ok(c.results[0].faults > 0 && c.results[0].faults <= c.demandFaults, formatHistorySpec(history));
    if (c.historyPages !== undefined) sizes.push(c.historyPages);
  }
  assert.ok(sizes[0] > sizes[1] && sizes[1] > sizes[2], `history pages ${sizes}`);
  void createStrategy;
});
