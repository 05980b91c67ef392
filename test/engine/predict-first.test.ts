// predictFirst / predictRest: one fault's prediction in two parts, so that a transport can send the
// first pages behind the faulted one while the search goes on. The differential test checks on
// random sequences that the parts equal the reference model's; here: that they equal predictInto's
// answer on a real trace (pages, confidences, the model after), that a search stopped at its drain
// (lookahead spent) hands out the drained pages in two parts, that any other call ends a stopped
// search without losing the pages it had not output, and the argument and call-order errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, createReferencePredictor, WasmPredictor } from "../../src/index.js";
import type { FullPredictorOptions } from "../../src/engine/options.js";
import type { Predictor } from "../../src/engine/types.js";
import { readTextTrace } from "../../src/trace/format.js";
import { placePages } from "../../src/trace/layout.js";
import { BUNDLED_TRACES } from "../../src/cli/quality.js";
import { instantiateCore, ABI } from "../../src/engine/wasm.js";
import { resolveOptions } from "../../src/engine/options.js";

const OPTS: FullPredictorOptions = { pageCount: 100, maxContexts: 5000 };
/** 0, 1, ..., 29 three times: after a fault on p the engine predicts p + 1, p + 2, ... */
const HISTORY = [0, 1, 2].flatMap(() => Array.from({ length: 30 }, (_, i) => i));

function trained(o: FullPredictorOptions = OPTS): ReturnType<typeof createPredictor> {
  const p = createPredictor(o);
  p.train(HISTORY);
  p.rehearse();
  return p;
}
const state = (p: { snapshot(): Uint8Array }) => Buffer.from(p.snapshot());

test("on a real trace's replay, predictFirst + predictRest answer every fault as predictInto does", async () => {
  const tr = await readTextTrace(BUNDLED_TRACES[0]);
  const placed = placePages(tr.pages, { layout: "4k", seed: 1 });
  const split = Math.floor(placed.pages.length * 0.3);
  const whole = createPredictor({ pageCount: placed.pageCount, streams: 1 });
  whole.train(placed.pages.subarray(0, split));
  whole.compact();
  whole.rehearse();
  const parts = createPredictor({ pageCount: placed.pageCount, streams: 1 });
  parts.train(placed.pages.subarray(0, split));
  parts.compact();
  parts.rehearse();
  const present = new Uint8Array(placed.pageCount);
  let calls = 0, stopped = 0;
  for (let i = split; i < placed.pages.length && calls < 400; i++) {
    const f = placed.pages[i];
    if (present[f]) continue;
    present[f] = 1;
    const first = 1 + (calls % 4);
    const n = whole.predictInto(f);
    const k = parts.predictFirst(f, first);
    assert.equal(k, Math.min(first, n), `fault ${calls}: pages before predictRest`);
    const m = parts.predictRest();
    assert.equal(m, n, `fault ${calls}: pages in all`);
    assert.deepEqual(Array.from(parts.output.subarray(0, m)), Array.from(whole.output.subarray(0, n)), `fault ${calls}`);
    assert.deepEqual(Array.from(parts.confidence.subarray(0, m)), Array.from(whole.confidence.subarray(0, n)), `fault ${calls}: confidences`);
    if (n > first) stopped++;
    for (let j = 0; j < n; j++) present[whole.output[j]] = 1;
    whole.maintain();
    parts.maintain();
    calls++;
  }
  assert.ok(calls >= 100 && stopped >= 50, `the replay must stop many searches early (${stopped} of ${calls})`);
  assert.ok(state(parts).equals(state(whole)), "the model, bitmap and counters after the replay differ");
});

test("a search that spent its lookahead hands out the drained frontier in two parts", () => {
  // lookahead 1: the root is expanded, then every page comes from the drain in one pass. Page 10
  // has had five different successors.
  const o = { ...OPTS, lookahead: 1 };
  const branching = [0, 1, 2].flatMap(() => [11, 21, 31, 41, 51].flatMap((a) => [5, 10, a, a + 1, a + 2]));
  const make = () => { const p = createPredictor(o); p.train(branching); p.rehearse(); return p; };
  const whole = make(), parts = make();
  const all = Array.from(whole.predictNext(10));
  assert.ok(all.length >= 3, `the drain must output several pages: ${all}`);
  assert.equal(parts.predictFirst(10, 2), 2);
  assert.deepEqual(Array.from(parts.output.subarray(0, 2)), all.slice(0, 2));
  for (const p of all.slice(2)) assert.equal(parts.isPresent(p), false, `page ${p} is marked before predictRest output it`);
  assert.equal(parts.predictRest(), all.length);
  assert.deepEqual(Array.from(parts.output.subarray(0, all.length)), all);
  assert.ok(state(parts).equals(state(whole)));
});

test("any other call ends a stopped search: the pages it had not output stay absent, and the reference agrees", () => {
  const run = (p: Predictor, end: (p: Predictor) => void) => {
    p.train(HISTORY);
    const log: string[] = [];
    const n = p.predictFirst(10, 1);
    log.push(`${n}: ${Array.from(p.output.subarray(0, n))}`);
    end(p);
    try { p.predictRest(); log.push("rest ok"); } catch (e) { log.push(`${(e as Error).constructor.name}: ${(e as Error).message}`); }
    log.push(Array.from({ length: 40 }, (_, i) => (p.isPresent(i) ? 1 : 0)).join(""));
    log.push(Array.from(p.predictNext(11)).join(","));
    const s = p.stats();
    log.push(`${s.predictions} ${s.presentPages} ${s.faults}`);
    return log;
  };
  const enders: [string, (p: Predictor) => void][] = [
    ["markPresent", (p) => p.markPresent(50)],
    ["markPresentRange", (p) => p.markPresentRange(50, 3)],
    ["unsend", (p) => p.unsend(11)],
    ["clearPresent", (p) => p.clearPresent()],
    ["stats", (p) => void p.stats()],
    ["maintain", (p) => void p.maintain()],
    ["compact", (p) => p.compact()],
    ["prune", (p) => p.prune()],
    ["rehearse", (p) => p.rehearse()],
    ["observe", (p) => p.observe(60)],
    ["predictNext", (p) => void p.predictNext(70)],
    ["train", (p) => p.train([3, 4, 5])],
    ["reset", (p) => p.reset()],
  ];
  for (const [name, end] of enders) {
    const log = run(createPredictor(OPTS), end);
    assert.deepEqual(log, run(createReferencePredictor(OPTS), end), `ended by ${name}`);
    assert.match(log[1], /^Error: predictRest\(\): no prediction to go on with/, `ended by ${name}`);
    // 10 faulted and 11 (its first page) went out; 12.. were never output, so they are absent.
    assert.equal(log[0], "1: 11", `ended by ${name}`);
    if (name !== "clearPresent" && name !== "reset" && name !== "unsend") assert.equal(log[2].slice(10, 13), "110", `ended by ${name}: ${log[2]}`);
    else assert.equal(log[2].slice(10, 13), name === "unsend" ? "100" : "000", `ended by ${name}: ${log[2]}`);
  }
  // Reading the output, the confidences or presence does not end it.
  const p = trained(), whole = trained();
  const all = Array.from(whole.predictNext(10));
  const n = p.predictFirst(10, 1);
  void p.output; void p.confidence;
  assert.equal(p.isPresent(all[1]), false, "a page predictRest has not output yet is absent");
  assert.equal(p.predictRest(), all.length);
  assert.equal(p.isPresent(all[1]), true);
  assert.deepEqual(Array.from(p.output.subarray(0, all.length)), all);
  assert.ok(n === 1 && all.length > 1);
});

test("a refused call (bad arguments) changes nothing: a stopped search goes on, in both models", () => {
  const refused = (f: () => void) => { try { f(); } catch (e) { assert.ok(e instanceof TypeError || e instanceof RangeError, String(e)); return; } throw new Error("expected a refusal"); };
  const calls: [string, (p: Predictor) => void][] = [
    ["markPresent(1000)", (p) => p.markPresent(1000)],
    ["observe(-1)", (p) => p.observe(-1)],
    ["observe(1, 99)", (p) => p.observe(1, 99)],
    ["predictFirst(9, 0)", (p) => p.predictFirst(9, 0)],
    ["predictNext(NaN)", (p) => p.predictNext(NaN)],
    ["predictInto(1000)", (p) => p.predictInto(1000)],
    ["markPresentRange(0, -1)", (p) => p.markPresentRange(0, -1)],
    ["unsend(3)", (p) => p.unsend(3)],
    ["train([1000])", (p) => p.train([1000])],
    ["isPresent(-1)", (p) => p.isPresent(-1)],
  ];
  for (const make of [createPredictor, createReferencePredictor]) {
    const whole = make(OPTS);
    whole.train(HISTORY);
    const all = Array.from(whole.predictNext(10));
    for (const [name, call] of calls) {
      const p = make(OPTS);
      p.train(HISTORY);
      assert.equal(p.predictFirst(10, 1), 1);
      refused(() => call(p));
      assert.equal(p.predictRest(), all.length, `after a refused ${name}`);
      assert.deepEqual(Array.from(p.output.subarray(0, all.length)), all, `after a refused ${name}`);
      p.dispose();
    }
  }
});

test("predictRest: an Error before any predictFirst; after a finished search it returns the same count again", () => {
  for (const p of [trained(), createReferencePredictor(OPTS)] as Predictor[]) {
    assert.throws(() => p.predictRest(), (e: Error) => e.constructor === Error && /predictFirst must be the last call/.test(e.message));
  }
  const p = trained(), control = trained();
  const all = p.predictFirst(10, 100); // more than the depth: the whole search
  assert.equal(all, 8);
  assert.equal(p.predictRest(), 8);
  assert.equal(p.predictRest(), 8);
  assert.deepEqual(Array.from(p.output.subarray(0, 8)), Array.from(control.predictNext(10)));
  assert.ok(state(p).equals(state(control)), "predictRest after a finished search changed the state");
});

test("predictFirst's bad arguments are TypeError / RangeError naming them; nothing changes", () => {
  for (const make of [() => trained(), () => { const r = createReferencePredictor(OPTS); r.train(HISTORY); r.rehearse(); return r; }]) {
    const p = make() as Predictor, control = make() as Predictor;
    // The whole state where there is a snapshot (the reference has none: its statistics).
    const sig = (q: Predictor) => q instanceof WasmPredictor ? state(q).toString("base64") : JSON.stringify(q.stats());
    const before = sig(p);
    assert.throws(() => p.predictFirst(10, 0), (e: Error) => e instanceof RangeError && e.message === "first must be at least 1, got 0");
    assert.throws(() => p.predictFirst(10, -3), (e: Error) => e instanceof RangeError && /first must be at least 1, got -3/.test(e.message));
    assert.throws(() => p.predictFirst(10, 1.5), (e: Error) => e instanceof TypeError && /first must be an integer, got 1\.5/.test(e.message));
    assert.throws(() => p.predictFirst(10, "2" as unknown as number), (e: Error) => e instanceof TypeError && /first must be an integer, got/.test(e.message));
    assert.throws(() => p.predictFirst(100, 1), (e: Error) => e instanceof RangeError && /fault/.test(e.message) && /100/.test(e.message));
    assert.throws(() => p.predictFirst(10, 1, 64), (e: Error) => e instanceof RangeError && /stream/.test(e.message));
    assert.equal(sig(p), before, "a refused predictFirst changed the state");
    assert.deepEqual(Array.from(p.predictNext(10)), Array.from(control.predictNext(10)));
  }
});

test("the core itself: every export that changes the model, the bitmap or the scratch ends a stopped search; readers do not", () => {
  // The wrapper refuses predictRest on its own; this is the core's guard behind it (a raw caller,
  // or a wrapper bug, must get "nothing to go on with", never a search over a changed model).
  const o = resolveOptions({ pageCount: 100, maxContexts: 5000 });
  const fresh = () => {
    const core = instantiateCore();
    assert.equal(core.init(o.order, ABI.alpha[o.alphabet], ABI.escape[o.escape], o.depth, o.threshold, o.streams,
      o.maxContexts, o.pageCount, o.deltaRange, o.filter, o.lookahead, o.ageLimit), 1);
    for (const p of HISTORY) core.observe(p, 0);
    core.clearPresent();
    return core;
  };
  type Core = ReturnType<typeof instantiateCore>;
  const changers: [string, (c: Core) => void][] = [
    ["predictNext", (c) => c.predictNext(40, 0)], ["observe", (c) => c.observe(40, 0)], ["train", (c) => c.train(0, 0)],
    ["rehearseBegin", (c) => c.rehearseBegin(0)], ["compact", (c) => c.compact()], ["prune", (c) => c.prune()],
    ["maintain", (c) => c.maintain()], ["markPresent", (c) => c.markPresent(40)], ["unsend", (c) => c.unsend(40)],
    ["clearPresent", (c) => c.clearPresent()], ["markPresentRange", (c) => c.markPresentRange(40, 2)],
    ["settle", (c) => c.settle()], ["validate", (c) => c.validate()], ["attach", (c) => c.attach()], ["clearModel", (c) => c.clearModel()],
  ];
  const readers: [string, (c: Core) => void][] = [
    ["isPresent", (c) => c.isPresent(12)], ["counter", (c) => c.counter(ABI.header)], ["liveContexts", (c) => c.liveContexts()],
    ["usedBytes", (c) => c.usedBytes()], ["validateHeader", (c) => c.validateHeader()], ["capacity", (c) => c.capacity()],
  ];
  for (const [name, call] of [...changers, ...readers]) {
    const core = fresh();
    assert.equal(core.predictFirst(10, 0, 1), 1, name);
    call(core);
    const r = core.predictRest() >>> 0;
    if (changers.some(([n]) => n === name)) assert.equal(r, 0xffffffff, `${name} must end the stopped search`);
    else assert.ok(r > 1 && r <= o.depth, `${name} must leave the stopped search open (predictRest gave ${r})`);
  }
});
