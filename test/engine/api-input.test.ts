// The public predictor's input rules: unsend releases only a page a prediction marked sent (and not
// marked present since), anything else is a RangeError naming the page that changes nothing; a null
// option is a TypeError naming the option (undefined means the default).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPredictor, restorePredictor, createReferencePredictor, WasmPredictor, PREDICTOR_DEFAULTS } from "../../src/index.js";
import type { FullPredictorOptions } from "../../src/engine/options.js";
import type { Predictor } from "../../src/engine/types.js";

const OPTS: FullPredictorOptions = { pageCount: 100, maxContexts: 5000 };
/** 0, 1, ..., 29 three times: after a fault on p the engine predicts p + 1, p + 2, ... */
const HISTORY = [...Array.from({ length: 30 }, (_, i) => i), ...Array.from({ length: 30 }, (_, i) => i), ...Array.from({ length: 30 }, (_, i) => i)];

function trained(): ReturnType<typeof createPredictor> {
  const p = createPredictor(OPTS);
  p.train(HISTORY);
  p.rehearse();
  return p;
}

/** Bytes of the predictor's whole state (model, bitmap, counters). */
const state = (p: ReturnType<typeof createPredictor>) => Buffer.from(p.snapshot());

test("unsend of the page that faulted is a RangeError naming it; nothing changes and it is never predicted", () => {
  const p = trained();
  const control = trained();
  assert.deepEqual(Array.from(p.predictNext(10)), Array.from(control.predictNext(10)));
  const before = state(p);
  assert.throws(() => p.unsend(10), (e: Error) => e instanceof RangeError && /page 10\b/.test(e.message) && /present/.test(e.message));
  assert.ok(state(p).equals(before), "a rejected unsend changed the state");
  assert.equal(p.isPresent(10), true);
  const out = Array.from(p.predictNext(9));
  assert.ok(!out.includes(10), `the faulted page 10 was predicted again: ${out}`);
  assert.deepEqual(out, Array.from(control.predictNext(9)));
  assert.ok(state(p).equals(state(control)));
});

test("unsend of a page marked present, observed, or never predicted is a RangeError; nothing changes", () => {
  const p = trained();
  const out = Array.from(p.predictNext(3)); // 4, 5, ...
  assert.ok(out.includes(4) && out.includes(5), `expected the run after 3: ${out}`);
  p.markPresent(11);
  p.markPresent(4); // sent, then arrived: no longer releasable
  p.observe(5); // a prefetched page touched at the destination
  p.markPresentRange(out[2], 1);
  const before = state(p);
  for (const page of [11, 4, 5, out[2]]) {
    assert.throws(() => p.unsend(page), (e: Error) => e instanceof RangeError && new RegExp(`page ${page}\\b`).test(e.message) && /present/.test(e.message), `unsend(${page})`);
    assert.equal(p.isPresent(page), true, `page ${page} was cleared by a rejected unsend`);
  }
  assert.throws(() => p.unsend(77), (e: Error) => e instanceof RangeError && /page 77\b/.test(e.message) && /did not return it/.test(e.message));
  assert.ok(state(p).equals(before), "a rejected unsend changed the state");
  // Argument errors as before.
  assert.throws(() => p.unsend(100), RangeError);
  assert.throws(() => p.unsend(1.5 as number), TypeError);
  assert.ok(state(p).equals(before));
});

test("a page predictNext returned can be unsent once: absent again, predicted again", () => {
  const p = trained();
  const out = Array.from(p.predictNext(20)); // 21, 22, ...
  const q = out[out.length - 1];
  p.unsend(q);
  assert.equal(p.isPresent(q), false);
  assert.throws(() => p.unsend(q), (e: Error) => e instanceof RangeError && new RegExp(`page ${q}\\b`).test(e.message) && /unsent already/.test(e.message));
  const again = Array.from(p.predictNext(out[out.length - 2]));
  assert.ok(again.includes(q), `unsent page ${q} was not offered again: ${again}`);
  p.unsend(q); // sent by this prediction: releasable again
  // predictInto marks its output the same way.
  const n = p.predictInto(1);
  const pages = Array.from(p.output.subarray(0, n));
  assert.ok(n > 0);
  for (const x of pages) p.unsend(x);
  for (const x of pages) assert.equal(p.isPresent(x), false);
});

test("clearPresent and reset forget which pages were sent", () => {
  for (const clear of ["clearPresent", "reset"] as const) {
    const p = trained();
    const out = Array.from(p.predictNext(3));
    p[clear]();
    assert.throws(() => p.unsend(out[0]), RangeError, clear);
    assert.equal(p.isPresent(out[0]), false);
  }
});

test("a restored predictor: its bitmap is the snapshot's; unsend accepts only pages predicted since the restore", () => {
  const p = trained();
  const before = Array.from(p.predictNext(3));
  const r = restorePredictor(p.snapshot());
  for (const x of before) assert.equal(r.isPresent(x), true);
  assert.throws(() => r.unsend(before[0]), (e: Error) => e instanceof RangeError && new RegExp(`page ${before[0]}\\b`).test(e.message) && /restorePredictor/.test(e.message));
  assert.equal(r.isPresent(before[0]), true);
  p.unsend(before[0]); // the original still knows it sent it
  const since = Array.from(r.predictNext(20));
  assert.ok(since.length > 0);
  r.unsend(since[0]);
  assert.equal(r.isPresent(since[0]), false);
});

test("the reference model accepts and refuses the same unsend calls", () => {
  const run = (p: Predictor) => {
    p.train(HISTORY);
    const log: string[] = [];
    const tryUnsend = (x: number) => {
      try { p.unsend(x); log.push(`ok ${x}`); } catch (e) { log.push(`${(e as Error).constructor.name} ${(e as Error).message}`); }
    };
    const out = Array.from(p.predictNext(10));
    log.push(out.join(","));
    tryUnsend(10); tryUnsend(out[0]); tryUnsend(out[0]); tryUnsend(60);
    p.markPresent(out[1]); tryUnsend(out[1]);
    p.observe(out[2]); tryUnsend(out[2]);
    tryUnsend(out[3]);
    log.push(Array.from(p.predictNext(9)).join(","));
    log.push(String(p.stats().presentPages));
    return log;
  };
  const log = run(createPredictor(OPTS));
  assert.deepEqual(log, run(createReferencePredictor(OPTS)));
  // predictions, unsend(10) (the fault), out[0] twice, 60 (never predicted), out[1], out[2], out[3], ...
  assert.deepEqual(log.slice(1, 8).map((l) => l.split(" ")[0]), ["RangeError", "ok", "RangeError", "RangeError", "RangeError", "RangeError", "ok"]);
});

test("a null option is a TypeError naming the option; undefined is the default", () => {
  const keys = ["order", "alphabet", "escape", "depth", "threshold", "streams", "maxContexts", "memoryBytes", "deltaRange", "filter", "lookahead", "ageLimit", "rehearse", "pendingBudget"] as const;
  for (const k of keys) {
    const o = { pageCount: 100, maxContexts: 64, [k]: null } as unknown as FullPredictorOptions;
    if (k === "maxContexts" || k === "memoryBytes") delete (o as { maxContexts?: number }).maxContexts;
    if (k === "maxContexts" || k === "memoryBytes") (o as unknown as Record<string, unknown>)[k] = null;
    // (The reference model refuses memoryBytes whatever its value.)
    for (const create of k === "memoryBytes" ? [createPredictor] : [createPredictor, createReferencePredictor]) {
      assert.throws(() => create(o), (e: Error) => e instanceof TypeError && e.message.startsWith(`options.${k} must not be null, got null`), `${create.name} ${k}: null`);
    }
    const u = { pageCount: 100, maxContexts: 64, [k]: undefined } as unknown as FullPredictorOptions;
    const p = createPredictor(u);
    if (k !== "maxContexts" && k !== "memoryBytes") assert.deepEqual(p.options, createPredictor({ pageCount: 100, maxContexts: 64 }).options, `${k}: undefined`);
    p.dispose();
  }
  assert.throws(() => createPredictor({ pageCount: null } as unknown as FullPredictorOptions), /options\.pageCount must be an integer, got null/);
});

test("train reads an array once: a Proxy that answers differently on a second read trains what was checked", () => {
  for (const make of [createPredictor, createReferencePredictor] as const) {
    const p = make(OPTS) as Predictor;
    const control = make(OPTS) as Predictor;
    // The first read of each element is a valid page; any later read is out of range. A train()
    // that checked one read and learned another would learn page 1000 (or trap in the core).
    const reads = new Map<number, number>();
    const tricky = new Proxy(HISTORY.slice(), {
      get(target, key, recv) {
        if (typeof key === "string" && /^\d+$/.test(key)) {
          const i = Number(key);
          const n = (reads.get(i) ?? 0) + 1;
          reads.set(i, n);
          return n === 1 ? target[i] : 1000;
        }
        return Reflect.get(target, key, recv);
      },
    });
    p.train(tricky);
    control.train(HISTORY);
    assert.ok(Math.max(...reads.values()) === 1, `${make.name}: an element was read ${Math.max(...reads.values())} times`);
    p.rehearse(); control.rehearse();
    if (p instanceof WasmPredictor) {
      assert.ok(Buffer.from(p.snapshot()).equals(Buffer.from((control as WasmPredictor).snapshot())), "the model differs from one trained on the plain array");
    }
    for (const f of [10, 20, 3, 29, 0]) assert.deepEqual(Array.from(p.predictNext(f)), Array.from(control.predictNext(f)), `${make.name}, fault ${f}`);
  }
});

test("train refuses a Proxy posing as a Uint32Array unless it is an array; a bad element names its index", () => {
  const p = createPredictor(OPTS);
  const before = Buffer.from(p.snapshot());
  const fake = new Proxy(new Uint32Array([1, 2, 3]), {});
  assert.throws(() => p.train(fake as unknown as Uint32Array), (e: Error) => e instanceof TypeError && /pages must be/.test(e.message));
  assert.throws(() => p.train([1, 2, 100]), (e: Error) => e instanceof RangeError && /pages\[2\]/.test(e.message) && /100/.test(e.message));
  assert.ok(Buffer.from(p.snapshot()).equals(before), "a refused train() changed the state");
});

test("train uses what it checked: a Uint32Array subclass overriding subarray() or length trains its real elements", () => {
  // The pages are read through a plain view of the array's memory: the overrides never run.
  class Sneaky extends Uint32Array {
    override subarray(a?: number, b?: number): Uint32Array<ArrayBuffer> { const r = new Uint32Array(super.subarray(a, b)); r.fill(5000); return r; }
    override get length(): number { return 2; }
  }
  const pages = [1, 2, 3, 4, 5, 6, 7, 8];
  for (const make of [createPredictor, createReferencePredictor]) {
    const a = make({ ...OPTS, filter: 0 });
    const b = make({ ...OPTS, filter: 0 });
    a.train(new Sneaky(pages));
    b.train(Uint32Array.from(pages));
    assert.equal(a.stats().trained, 8);
    assert.deepEqual(Array.from(a.predictNext(1)), Array.from(b.predictNext(1)));
    if (make === createPredictor) assert.doesNotThrow(() => restorePredictor(a.snapshot()).dispose());
    // and a subclass hiding a bad element behind its length is still refused, naming the element
    const bad = new Sneaky([1, 2, 100_000]);
    assert.throws(() => a.train(bad), (e: Error) => e instanceof RangeError && /pages\[2\]/.test(e.message) && /100000/.test(e.message));
    a.dispose();
    b.dispose();
  }
});

test("PREDICTOR_DEFAULTS cannot be changed by a caller (later predictors keep the real defaults)", () => {
  assert.ok(Object.isFrozen(PREDICTOR_DEFAULTS));
  assert.throws(() => { (PREDICTOR_DEFAULTS as { depth: number }).depth = 3; }, TypeError); // modules are strict
  const p = createPredictor({ pageCount: 100 });
  assert.equal(p.options.depth, 8);
  assert.equal(p.options.order, PREDICTOR_DEFAULTS.order);
  p.dispose();
});

test("new WasmPredictor(options) checks and completes options as createPredictor does", () => {
  assert.throws(() => new WasmPredictor({ pageCount: 100, order: 0 }), (e: Error) => e instanceof RangeError && /options\.order/.test(e.message) && /\b0\b/.test(e.message));
  assert.throws(() => new WasmPredictor({ pageCount: 100, depth: "8" } as unknown as FullPredictorOptions), (e: Error) => e instanceof TypeError && /options\.depth/.test(e.message));
  assert.throws(() => new WasmPredictor({} as FullPredictorOptions), (e: Error) => e instanceof TypeError && /pageCount/.test(e.message));
  const p = new WasmPredictor({ pageCount: 100, maxContexts: 5000 });
  const q = createPredictor({ pageCount: 100, maxContexts: 5000 });
  assert.deepEqual(p.options, q.options);
  const sized = new WasmPredictor({ pageCount: 100, memoryBytes: 4 << 20 });
  assert.equal(sized.options.maxContexts, createPredictor({ pageCount: 100, memoryBytes: 4 << 20 }).options.maxContexts);
  p.train(HISTORY); q.train(HISTORY); p.rehearse(); q.rehearse();
  assert.deepEqual(Array.from(p.predictNext(10)), Array.from(q.predictNext(10)));
});
