// The `ppm` strategy: the engine under the push-aware, confidence-gated send policy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createPushWindow } from "../../src/strategies/push-window.js";
import { createPpmPolicy, DEFAULT_POLICY, pushEngineOptions } from "../../src/strategies/ppm-policy.js";
import { createPredictor } from "../../src/engine/predictor.js";
import { readTrace } from "../../src/trace/read.js";
import { compareStrategies } from "../../src/sim/run.js";
import { STRATEGY_NAMES } from "../../src/strategies/index.js";

test("the push window: qemu covers the pages after the latest fault, hines around it, linear after the scanner, none nothing", () => {
  const q = createPushWindow("qemu", 4);
  assert.equal(q.covers(11), false, "nothing before the first fault");
  q.onFault(10);
  assert.deepEqual([10, 11, 14, 15].map((p) => q.covers(p)), [false, true, true, false]);
  q.onFault(100);
  assert.equal(q.covers(11), false, "the scanner jumped");
  const h = createPushWindow("hines", 6);
  h.onFault(50);
  assert.deepEqual([46, 47, 53, 54].map((p) => h.covers(p)), [false, true, true, false]); // p-3..p+3: the next 6 pushes
  const odd = createPushWindow("hines", 5); // the bubble's next 5: p-1, p+1, p-2, p+2, p-3
  odd.onFault(50);
  assert.deepEqual([46, 47, 52, 53].map((p) => odd.covers(p)), [false, true, true, false]);
  const one = createPushWindow("hines", 1);
  one.onFault(50);
  assert.deepEqual([49, 51].map((p) => one.covers(p)), [true, false], "a window of one: p-1, the bubble's first page");
  const l = createPushWindow("linear", 3);
  l.onPushed(5); l.onPushed(7); l.onPushed(6);
  assert.deepEqual([7, 8, 10, 11].map((p) => l.covers(p)), [false, true, true, false]);
  l.onFault(1000);
  assert.equal(l.covers(8), true, "a fault does not move a linear scanner");
  const n = createPushWindow("none", 8);
  n.onFault(3);
  assert.equal(n.covers(4), false);
});

/** A history that repeats a scattered cycle, so the engine is confident about each page's successor. */
const cycle = [5000, 120, 9000, 77, 3100, 640, 12000, 2200, 15000, 401, 8080, 999];
const history = Uint32Array.from({ length: 60 * cycle.length }, (_, i) => cycle[i % cycle.length]);

test("with a push, ppm sends at most pushDepth pages, none in the push window", () => {
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "qemu" }, { ownPush: false });
  s.train!(history);
  let sent = 0;
  for (let i = 0; i < cycle.length; i++) {
    const f = cycle[i];
    s.onPresent!(f);
    const out = Array.from(s.onFault(f, 0));
    assert.ok(out.length <= DEFAULT_POLICY.pushDepth, `fault ${f}: ${out}`);
    for (const q of out) assert.ok(!(q > f && q <= f + 8), `fault ${f}: ${q} is in the push window`);
    sent += out.length;
  }
  assert.ok(sent > 0, "a confident model sends something");
  s.dispose!();
});

test("the policy's cut follows the engine's confidences (same pages, in order, while confident)", () => {
  // the twin runs the engine as the policy does under a push, with the test's bar as its threshold
  const p = createPredictor({ pageCount: 1 << 14, streams: 1, ...pushEngineOptions(8, { minConfidence: 0.5 }) });
  p.train(history); p.rehearse(); p.compact();
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "qemu" }, { ownPush: false, minConfidence: 0.5 });
  s.train!(history);
  let wanted = 0;
  for (const f of cycle.slice(0, 6)) {
    const n = p.predictInto(f, 0);
    const want: number[] = [];
    for (let i = 0; i < n && p.confidence[i] >= 0.5; i++) want.push(p.output[i]);
    s.onPresent!(f);
    assert.deepEqual(Array.from(s.onFault(f, 0)), want, `fault ${f}`);
    wanted += want.length;
  }
  assert.ok(wanted > 0, "some prediction clears the bar");
  p.dispose(); s.dispose!();
});

test("ppm steers a push it owns into Hines' bubbling, and plans around one it does not own", () => {
  const ctx = { pageCount: 1 << 10, depth: 8 };
  for (const push of ["linear", "qemu"] as const) assert.equal(createPpmPolicy({ ...ctx, push }).push, "hines", push);
  for (const push of ["hines", "none"] as const) assert.equal(createPpmPolicy({ ...ctx, push }).push, undefined, push);
  for (const push of ["linear", "qemu"] as const) assert.equal(createPpmPolicy({ ...ctx, push }, { ownPush: false }).push, undefined, push);
});

test("the training filter is on for a full access stream and off for a deduplicated history", () => {
  const ctx = { pageCount: 1 << 10, depth: 8, push: "qemu" as const };
  const full = createPpmPolicy(ctx), ft = createPpmPolicy({ ...ctx, history: "first-touch" }), sets = createPpmPolicy({ ...ctx, history: "sets" });
  assert.equal(full.predictor.options.filter, 256);
  assert.equal(ft.predictor.options.filter, 0);
  assert.equal(sets.predictor.options.filter, 0);
  for (const s of [full, ft, sets]) s.dispose!();
});

test("without a push, ppm uses the full depth", () => {
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "none" });
  s.train!(history);
  s.onPresent!(cycle[0]);
  assert.ok(s.onFault(cycle[0], 0).length > DEFAULT_POLICY.pushDepth);
  s.dispose!();
});

test("without a push, a fault's pages replay the history after the page's last occurrence first, then the engine's fill the depth", () => {
  // the history: a scattered cycle, then 7 once, followed by 300, 301, 302 (the last time 7 was seen)
  const h = Uint32Array.from([...history, 7, 300, 301, 302]);
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "none" });
  s.train!(h);
  s.onPresent!(301); // already at the destination: skipped
  const out = Array.from(s.onFault(7, 0));
  assert.deepEqual(out.slice(0, 2), [300, 302], "what followed 7, 301 skipped; the history ends there");
  assert.equal(out.length, 8, "the engine's pages fill the depth");
  assert.equal(new Set(out).size, 8, "no page twice");
  assert.ok(!out.includes(7) && !out.includes(301));
  s.dispose!();
});

test("without a push, what the history and the engine leave of the depth goes to the absent pages after the fault", () => {
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "none" });
  s.train!(Uint32Array.from([42])); // nothing to go on: no history after 5000, no delta learned
  s.onPresent!(5002);
  const out = Array.from(s.onFault(5000, 0));
  assert.deepEqual(out, [5001, 5003, 5004, 5005, 5006, 5007, 5008, 5009], "5002 is there already");
  s.dispose!();
});

test("without a push, the pages after a fault pass the engine's when the guest touched the earlier ones (feedback), not otherwise", () => {
  const P = 5000, X = 9000, Z = 9500;
  const h: number[] = [];
  for (let i = 0; i < 20; i++) h.push(P, i % 2 ? X : Z, 100 + i, 200 + i); // P is followed by X or Z: each about 1/2
  h.push(P); // P's last occurrence ends the history: the replay has nothing after it
  const answer = (touched: boolean): number[] => {
    const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "none" });
    s.train!(Uint32Array.from(h));
    for (let k = 0; k < 10; k++) { // faults on pages the model knows nothing of: the pages after them are sent
      const f = 12000 + k * 100;
      s.onPresent!(f);
      const out = Array.from(s.onFault(f, 0));
      for (const q of out) s.onPresent!(q);
      if (touched) for (const q of out) s.onTouch!(q, 0);
    }
    s.onPresent!(P);
    const out = Array.from(s.onFault(P, 0));
    s.dispose!();
    return out;
  };
  const cold = answer(false), warm = answer(true);
  assert.ok(cold.indexOf(X) >= 0 && cold.indexOf(Z) >= 0 && cold.indexOf(Z) < cold.indexOf(P + 1), `the engine's first: ${cold}`);
  assert.deepEqual(warm.slice(0, 8), [P + 1, P + 2, P + 3, P + 4, P + 5, P + 6, P + 7, P + 8], `the after-pages first: ${warm}`);
});

test("without a push on a real trace scattered at 4 KiB, replaying history takes fewer faults than the engine alone", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../../traces/sort.txt.gz", import.meta.url)));
  const run = async () => (await compareStrategies(trace, ["ppm"], { layout: "4k", push: "none" })).results[0];
  const on = await run();
  const saved = DEFAULT_POLICY.historyShare;
  let off;
  try { DEFAULT_POLICY.historyShare = 0; off = await run(); } finally { DEFAULT_POLICY.historyShare = saved; }
  assert.ok(on.faults < off.faults * 0.8, `faults ${on.faults} vs ${off.faults}`);
  assert.ok(on.stallS < off.stallS, `stall ${on.stallS} vs ${off.stallS}`);
});

test("the history's pages are marked sent only when onPresent says so: an answer cut by the caller leaves them free", () => {
  const h = Uint32Array.from([...history, 7, 300, 301, 302]);
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "none" });
  s.train!(h);
  assert.deepEqual(Array.from(s.onFault(7, 0)).slice(0, 3), [300, 301, 302]);
  // the caller sent none of them (e.g. adaptive depth cut the answer): asked again, the history offers them again
  assert.deepEqual(Array.from(s.onFault(7, 0)).slice(0, 3), [300, 301, 302]);
  s.onPresent!(300); s.onPresent!(301);
  assert.equal(Array.from(s.onFault(7, 0))[0], 302, "sent ones are skipped");
  s.dispose!();
});

test("with a push of ours, the pages sent with a fault are the history's next ones first, none the push's window brings", () => {
  // after 7 the history went to 8 (next to the fault: the bubbling push brings it), 3000, 4000
  const h = Uint32Array.from([...history, 7, 8, 3000, 4000]);
  const s = createPpmPolicy({ pageCount: 1 << 14, depth: 8, push: "qemu" });
  s.train!(h);
  // the history's first 2 after 7 are 8 (in the push's window: skipped) and 3000; the engine's own
  // 4000 is less likely than the 8 the push brings, so it is not worth a slot
  assert.deepEqual(Array.from(s.onFault(7, 0)), [3000]);
  s.dispose!();
});

test("ppm is listed first among the PPM strategies", () => {
  assert.equal(STRATEGY_NAMES.find((n) => n.startsWith("ppm")), "ppm");
});

test("with QEMU's push on a real trace, ppm takes no more faults and stall than QEMU alone in every layout, and fewer where memory is scattered", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../fixtures/sqlite-300k.txt.gz", import.meta.url)));
  for (const layout of ["virtual", "4k"] as const) {
    const c = await compareStrategies(trace, ["qemu", "ppm"], { layout, push: "qemu" });
    const [q, p] = c.results;
    assert.ok(p.faults <= q.faults && p.stallS <= q.stallS, `${layout}: ppm ${p.faults}/${p.stallS} vs qemu ${q.faults}/${q.stallS}`);
    if (layout === "4k") assert.ok(p.faults < q.faults && p.stallS < q.stallS, `4k: ppm ${p.faults}/${p.stallS} vs qemu ${q.faults}/${q.stallS}`);
  }
});

test("the engine's upkeep runs between faults: the simulator calls maintain() once per fault, and the adapter prunes a full arena there", async () => {
  const { predictorStrategy } = await import("../../src/strategies/predictor-strategy.js");
  const { synthesize } = await import("../../src/trace/synth.js");
  // a tiny arena fills on the fault path; maintain() prunes it
  const pred = createPredictor({ pageCount: 1 << 16, maxContexts: 64, streams: 1 });
  const s = predictorStrategy(pred);
  for (let i = 0; i < 400 && !pred.stats().pruneDue; i++) s.onFault((i * 7919) % (1 << 16), 0);
  assert.equal(pred.stats().pruneDue, true, "the fault path flagged the prune");
  const prunes = pred.stats().prunes;
  s.maintain!();
  assert.equal(pred.stats().pruneDue, false);
  assert.equal(pred.stats().prunes, prunes + 1);
  s.dispose!();
  // the simulator calls it after every network fault
  let faults = 0, upkeep = 0;
  const counting = { name: "counting", onFault: () => { faults++; return []; }, maintain: () => { upkeep++; } };
  const { prepare, simulate } = await import("../../src/sim/simulator.js");
  const t = synthesize("seq", { accesses: 5000, pages: 512, seed: 2 });
  const prep = prepare({ name: "seq", pages: t.pages, gaps: t.gaps, streams: t.streams, pageCount: 512 }, 0.3, 1e9);
  const r = simulate(prep, counting, { bitsPerSecond: 1e9, latencyS: 50e-6, pageSize: 4096, headerBytes: 16 }, { switchAt: 0.3, ips: 1e9, depth: 8, push: "none", feedback: false, queue: "fifo" });
  assert.ok(faults > 0);
  assert.equal(upkeep, faults);
  assert.equal(r.faults, faults);
});

test("under a push the engine runs the policy's short search (page alphabet, pushDepth pages, pushLookahead expansions, pushOrder, the confidence bar as threshold); without one, its defaults", () => {
  const ctx = { pageCount: 1 << 10, depth: 8 };
  for (const push of ["qemu", "linear", "hines"] as const) {
    const s = createPpmPolicy({ ...ctx, push });
    const o = s.predictor.options;
    assert.deepEqual([o.alphabet, o.depth, o.lookahead, o.order, o.threshold],
      ["page", DEFAULT_POLICY.pushDepth, DEFAULT_POLICY.pushLookahead, DEFAULT_POLICY.pushOrder, DEFAULT_POLICY.minConfidence], push);
    s.dispose!();
  }
  const custom = createPpmPolicy({ ...ctx, push: "qemu" }, { pushLookahead: 5, pushDepth: 3 });
  assert.deepEqual([custom.predictor.options.depth, custom.predictor.options.lookahead], [3, 5]);
  custom.dispose!();
  const none = createPpmPolicy({ ...ctx, push: "none" });
  assert.deepEqual([none.predictor.options.alphabet, none.predictor.options.depth, none.predictor.options.lookahead, none.predictor.options.order], ["hybrid", 8, 8, 3]);
  none.dispose!();
});

test("the parts of ppm: history-push orders ppm's push and sends nothing with a fault; ppm-given-push runs on the push it is given", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../fixtures/sqlite-300k.txt.gz", import.meta.url)));
  const names = ["demand", "hines", "history-push", "ppm", "ppm-given-push"];
  const c = await compareStrategies(trace, names, { layout: "4k" });
  const by = new Map(c.results.map((r) => [r.strategy, r]));
  const hp = by.get("history-push")!, hines = by.get("hines")!, ppm = by.get("ppm")!, given = by.get("ppm-given-push")!;
  assert.equal(hp.predictedPages, 0, "history-push sends no page with a fault");
  assert.ok(hp.pushedPages > 0);
  // the history's replay changes the push's order: not Hines' alone
  assert.notDeepEqual([hp.faults, hp.stallS], [hines.faults, hines.stallS]);
  // ppm-given-push predicts (its engine runs) but on the given push: not ppm's results
  assert.ok(given.predictedPages > 0);
  assert.notDeepEqual([given.faults, given.stallS], [ppm.faults, ppm.stallS]);
  // without a push there is nothing to order: history-push is demand paging
  const none = await compareStrategies(trace, ["demand", "history-push"], { layout: "4k", push: "none" });
  const [d, h] = ["demand", "history-push"].map((n) => none.results.find((r) => r.strategy === n)!);
  assert.deepEqual([h.faults, h.stallS], [d.faults, d.stallS]);
});
