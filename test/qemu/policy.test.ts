/** The QEMU injection policy: the queue gate, the confidence cut, learning, and the model file across migrations. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { createQemuPolicy, defaultsForMachine, loadPolicyEngine, machineVersion, packModel, unpackModel, START_FAULTS } from "../../src/qemu/policy.js";
import { strategyFactory } from "../../src/qemu/strategies.js";
import { readModel, writeModelAtomic } from "../../src/qemu/model.js";

const EMPTY = { outstanding: 1, outstandingInjected: 0 };
// An irregular cycle that repeats: what the walk guest does.
const CYCLE = [907, 13, 4410, 77, 2051, 3999, 512, 1280, 64, 3001, 150, 2222];

function run(p: ReturnType<typeof createQemuPolicy>, seq: number[], present = new Set<number>()) {
  let injected = 0, hits = 0;
  const sent = new Set<number>();
  for (const page of seq) {
    if (sent.has(page) || present.has(page)) { hits++; continue; } // arrived ahead of the fault: no request
    present.add(page);
    const out = Array.from(p.onRequest(page, EMPTY));
    for (const q of out) { sent.add(q); p.onPresent!(q); }
    injected += out.length;
  }
  return { injected, hits };
}

describe("QEMU policy", () => {
  before(async () => { await loadPolicyEngine(); });

  it("learns online from the first faults of a migration and injects at most maxPages sure pages", () => {
    // Within one migration a page faults once: what can be learned online is a pattern (here a stride).
    const p = createQemuPolicy(8192);
    const seq = Array.from({ length: 60 }, (_, i) => 100 + 5 * i);
    const r = run(p, seq);
    assert.ok(r.hits >= seq.length / 2, `the stride is learned within the migration: ${r.hits} of ${seq.length} pages arrived ahead`);
    let maxOut = 0;
    for (let i = 0; i < 40; i++) maxOut = Math.max(maxOut, Array.from(p.onRequest(2000 + 5 * i, EMPTY)).length);
    assert.ok(maxOut > 0 && maxOut <= 2, `at most 2 pages per request, got ${maxOut}`);
    p.dispose!();
  });

  it("injects nothing while injected pages are queued at the source, but keeps learning", () => {
    const p = createQemuPolicy(8192);
    for (let i = 0; i < 5; i++) for (const page of CYCLE) p.onRequest(page, { outstanding: 1, outstandingInjected: 1 });
    assert.equal(p.gated, 5 * CYCLE.length);
    const open = createQemuPolicy(8192);
    for (let i = 0; i < 5; i++) for (const page of CYCLE) open.onRequest(page, { outstanding: 5, outstandingInjected: 0 });
    assert.equal(open.gated, 5 * CYCLE.length, "a long source queue gates too");
    // What it learned while gated: the snapshot restores into a model that predicts the cycle.
    const q = createQemuPolicy(8192, {}, p.snapshot!());
    assert.match(q.origin, /^restored/);
    assert.deepEqual(Array.from(q.onRequest(CYCLE[0], EMPTY)).slice(0, 1), [CYCLE[1]]);
    for (const x of [p, open, q]) x.dispose!();
  });

  it("a saved model with another order or escape than asked is not restored (the command line wins)", () => {
    const p = createQemuPolicy(8192);
    for (let i = 0; i < 3; i++) run(p, CYCLE);
    const saved = p.snapshot!();
    p.dispose!();
    const same = createQemuPolicy(8192, {}, saved);
    assert.match(same.origin, /^restored/);
    const order = createQemuPolicy(8192, { engine: { order: 5 } }, saved);
    assert.match(order.origin, /^new \(saved model has other options: order 3/);
    const escape = createQemuPolicy(8192, { engine: { escape: "A" } }, saved);
    assert.match(escape.origin, /^new \(saved model has other options: .*escape D/);
    for (const x of [same, order, escape]) x.dispose!();
  });

  it("carries what one migration learned into the next through the model file (atomic write)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-model-"));
    try {
      const file = path.join(dir, "vm.model");
      assert.equal(readModel(file), null);
      const first = createQemuPolicy(8192, {}, readModel(file));
      assert.equal(first.origin, "new");
      for (let i = 0; i < 3; i++) run(first, CYCLE);
      writeModelAtomic(file, first.snapshot!());
      first.dispose!();
      assert.deepEqual(fs.readdirSync(dir), ["vm.model"], "no temporary file left");
      // Next migration: pages present again only as they arrive; the model predicts from the first fault.
      const cold = createQemuPolicy(8192);
      const warm = createQemuPolicy(8192, {}, readModel(file));
      assert.match(warm.origin, /^restored/);
      const c = run(cold, CYCLE), w = run(warm, CYCLE);
      assert.equal(c.hits, 0);
      assert.ok(w.hits >= CYCLE.length / 2, `a restored model turns faults into hits: ${w.hits} of ${CYCLE.length}`);
      cold.dispose!();
      warm.dispose!();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without a saved model, injects nothing until its own held-back predictions were right often enough", () => {
    // Faults that never repeat (a first migration of the md5 guest): nothing is ever injected.
    const p = createQemuPolicy(1 << 16);
    let x = 12345, out = 0;
    for (let i = 0; i < 200; i++) {
      x = (x * 1103515245 + 12345) % (1 << 16);
      out += Array.from(p.onRequest(x, EMPTY)).length;
    }
    assert.equal(out, 0, "an untrusted model injects nothing");
    assert.equal(p.feedback!.trusted, false);
    assert.ok(p.feedback!.checked === 0 || p.feedback!.right < p.feedback!.checked * 0.5);
    p.dispose!();
    // A stride is learned online: its held-back predictions are checked right, then it injects.
    const s = createQemuPolicy(8192);
    let first = -1;
    for (let i = 0; i < 40; i++) if (Array.from(s.onRequest(100 + 5 * i, EMPTY)).length > 0 && first < 0) first = i;
    assert.ok(first > 0, `injection starts once trusted (request ${first})`);
    assert.ok(s.feedback!.checked >= 5 && s.feedback!.right >= s.feedback!.checked * 0.5 && s.feedback!.trusted);
    assert.ok(s.feedback!.untrusted > 0);
    s.dispose!();
    // Disabled (trustMinTrials 0): the old behaviour, a new model injects at once.
    const o = createQemuPolicy(8192, { trustMinTrials: 0, trustAccuracy: 0 });
    let any = 0;
    for (let i = 0; i < 10; i++) any += Array.from(o.onRequest(100 + 5 * i, EMPTY)).length;
    assert.ok(any > 0);
    o.dispose!();
  });

  it("trusts a restored model from its first fault", () => {
    const a = createQemuPolicy(8192);
    for (let i = 0; i < 3; i++) run(a, CYCLE);
    const b = createQemuPolicy(8192, {}, a.snapshot!());
    assert.deepEqual(Array.from(b.onRequest(CYCLE[0], EMPTY)).slice(0, 1), [CYCLE[1]]);
    assert.equal(b.feedback!.trusted, true);
    a.dispose!();
    b.dispose!();
  });

  it("remembers the pages migrations fault on and preloads those of at least half of them", () => {
    const a = createQemuPolicy(8192);
    assert.deepEqual(a.preload!(), [], "a new model preloads nothing");
    const first = [300, 301, 7000, 42, 999, 5, 6, 7, 8, 9];
    for (const x of first) a.onRequest(x, EMPTY);
    const bytes = a.snapshot!();
    a.dispose!();
    const un = unpackModel(bytes, 8192);
    assert.deepEqual(un.starts, [first.slice(0, START_FAULTS)]);
    const many = createQemuPolicy(8192);
    for (let i = 0; i < 2 * START_FAULTS; i++) many.onRequest(3 * i, EMPTY);
    assert.equal(unpackModel(many.snapshot!(), 8192).starts[0].length, START_FAULTS, "at most START_FAULTS requests per migration");
    many.dispose!();
    assert.deepEqual(createQemuPolicy(8192, {}, bytes).preload!(), [], "off by default");
    const b = createQemuPolicy(8192, { preloadPages: 32 }, bytes);
    assert.match(b.origin, /^restored/);
    assert.deepEqual(b.preload!(), first, "one earlier migration: its requests, in order");
    // The next migration starts differently; the model now holds two starts: pages of either count.
    for (const x of [300, 301, 1234, 1235]) b.onRequest(x, EMPTY);
    const c = createQemuPolicy(8192, { preloadPages: 32 }, b.snapshot!());
    const un2 = unpackModel(b.snapshot!(), 8192);
    assert.equal(un2.starts.length, 2);
    assert.deepEqual(c.preload!().slice(0, 2), [300, 301], "pages in both starts first");
    b.dispose!();
    c.dispose!();
    // Three starts: a page must be in two of them.
    const empty = unpackModel(createQemuPolicy(8192).snapshot!(), 8192).engine;
    const d = createQemuPolicy(8192, { preloadPages: 8 }, packModel(empty, [[1, 2, 3], [2, 3, 4], [3, 9]]));
    assert.deepEqual(d.preload!(), [3, 2]);
    assert.deepEqual(createQemuPolicy(8192, { preloadPages: 0 }, packModel(empty, [[1, 2]])).preload!(), []);
  });

  it("with preloadRun, preloads each page with the absent pages after it, each page once", () => {
    const empty = unpackModel(createQemuPolicy(8192).snapshot!(), 8192).engine;
    const model = packModel(empty, [[10, 12, 8190, 500]]);
    const plain = createQemuPolicy(8192, { preloadPages: 8 }, model);
    assert.deepEqual(plain.preload!(), [10, 12, 8190, 500]);
    const runs = createQemuPolicy(8192, { preloadPages: 8, preloadRun: 4 }, model);
    runs.onPresent!(502);
    // 10..13, then 12's run without what 10's took (14, 15), 8190..8191 (the guest ends), 500, 501, 503.
    assert.deepEqual(runs.preload!(), [10, 11, 12, 13, 14, 15, 8190, 8191, 500, 501, 503]);
    plain.dispose!();
    runs.dispose!();
  });

  it("takes the steering it is told, except what its options gave", () => {
    const empty = unpackModel(createQemuPolicy(8192).snapshot!(), 8192).engine;
    const model = packModel(empty, [[10, 500]]);
    const told = { runPages: 3, preloadPages: 8, preloadRun: 2 };
    const a = createQemuPolicy(8192, {}, model);
    a.steer!(told);
    assert.deepEqual(a.preload!(), [10, 11, 500, 501], "preload and its runs as told");
    const b = createQemuPolicy(8192, { preloadRun: 1 }, model);
    b.steer!(told);
    assert.deepEqual(b.preload!(), [10, 500], "a given option stays");
    const c = createQemuPolicy(8192, { preloadPages: 0 }, model);
    c.steer!(told);
    assert.deepEqual(c.preload!(), [], "preload 0 given: none");
    // runs: a restored model trusted at once injects each sure page with the pages after it.
    const trained = createQemuPolicy(8192);
    for (let r = 0; r < 6; r++) for (const x of [100, 2000, 300, 4000]) trained.onRequest(x, EMPTY);
    const bytes = trained.snapshot!();
    const d = createQemuPolicy(8192, {}, bytes);
    d.steer!(told);
    const out = Array.from(d.onRequest(100, EMPTY));
    assert.ok(out.includes(2000) && out.includes(2001) && out.includes(2002), `runs of 3 from 2000: ${out}`);
    for (const s of [a, b, c, trained, d]) s.dispose!();
  });

  it("reads a bare engine snapshot and refuses a malformed model header with a reason", () => {
    const e = createQemuPolicy(8192);
    const raw = e.snapshot!();
    const bare = unpackModel(raw, 8192).engine;
    assert.match(createQemuPolicy(8192, {}, bare).origin, /^restored/, "a bare engine snapshot (older files) restores");
    const good = packModel(bare, [[1, 2]]);
    assert.match(createQemuPolicy(8192, {}, good.slice(0, 10)).origin, /saved model refused: model file header/);
    assert.match(createQemuPolicy(4096, {}, packModel(bare, [[5000]])).origin, /saved model refused: .*outside this guest/);
    const notJson = Buffer.from(good);
    notJson[12] = 0x7b ^ 0xff;
    assert.match(createQemuPolicy(8192, {}, new Uint8Array(notJson)).origin, /saved model refused: model file header is not JSON/);
    e.dispose!();
  });

  it("starts empty, saying why, on a model that does not fit or does not parse", () => {
    const p = createQemuPolicy(8192);
    const bytes = p.snapshot!();
    p.dispose!();
    assert.match(createQemuPolicy(4096, {}, bytes).origin, /saved model is for 8192 pages/);
    assert.match(createQemuPolicy(8192, { maxPages: 3 }, bytes).origin, /other options/);
    const bad = bytes.slice();
    bad[0] ^= 0xff;
    assert.match(createQemuPolicy(8192, {}, bad).origin, /saved model refused/);
    assert.match(createQemuPolicy(8192, {}, new Uint8Array(10)).origin, /saved model refused/);
  });

  it("takes its defaults from the migration's QEMU: 2 pages and the scan return before 8.0 or unknown; from 8.0, 4 pages, steering only without preempt", () => {
    assert.deepEqual(machineVersion("pc-i440fx-10.0"), [10, 0]);
    assert.deepEqual(machineVersion("pc-q35-8.2"), [8, 2]);
    assert.deepEqual(machineVersion("pc-i440fx-7.2"), [7, 2]);
    for (const m of ["pc", "microvm", "", null, undefined]) assert.equal(machineVersion(m), null, String(m));
    const d10 = defaultsForMachine("pc-i440fx-10.0"), d8 = defaultsForMachine("pc-q35-8.0");
    const d72 = defaultsForMachine("pc-i440fx-7.2"), dNone = defaultsForMachine(null);
    const plain72 = { scannerReturn: true, runPages: 1, preloadPages: 0, preloadRun: 1 };
    for (const d of [d10, d8]) {
      assert.equal(d.maxPages, 4);
      assert.deepEqual(d.preempt, { scannerReturn: false, runPages: 1, preloadPages: 0, preloadRun: 1 });
      assert.deepEqual(d.single, { scannerReturn: true, runPages: 64, preloadPages: 32, preloadRun: 64 });
    }
    for (const d of [d72, dNone]) assert.deepEqual([d.maxPages, d.preempt, d.single], [2, plain72, plain72]);
    assert.match(d10.basis, />= 8\.0.*pc-i440fx-10\.0/);
    assert.match(dNone.basis, /unknown/);
    // The factory's engine answers up to that many pages (its depth), unless maxPages is given.
    const answers = (machine: string | null, maxPages?: number) => {
      const s = strategyFactory("ppm", { policy: maxPages === undefined ? {} : { maxPages } })(8192, { blocks: [], machine }) as ReturnType<typeof createQemuPolicy>;
      // a long stride: the engine is sure of the next pages, so the answer is as long as maxPages allows
      let most = 0;
      for (let i = 0; i < 80; i++) most = Math.max(most, Array.from(s.onRequest(100 + 3 * i, EMPTY)).length);
      s.dispose!();
      return most;
    };
    assert.equal(answers("pc-i440fx-10.0"), 4);
    assert.equal(answers("pc-i440fx-7.2"), 2);
    assert.equal(answers(null), 2);
    assert.equal(answers("pc-i440fx-10.0", 3), 3);
  });

  it("with runPages, injects each predicted page with the absent pages after it (one ranged request each)", () => {
    // Two policies see the same requests (a stride of 10, which the engine learns and is trusted on):
    // one with runPages 3, one with the default (1).
    const runs = createQemuPolicy(8192, { runPages: 3 }), plain = createQemuPolicy(8192);
    for (let i = 0; i < 39; i++) { runs.onRequest(100 + 10 * i, EMPTY); plain.onRequest(100 + 10 * i, EMPTY); }
    const alone = Array.from(plain.onRequest(490, EMPTY));
    assert.ok(alone.length >= 1 && alone.every((q) => (q - 490) % 10 === 0), `the stride's pages: ${alone}`);
    runs.onPresent!(alone[0] + 1); // already at the destination: not sent again
    const want = alone.flatMap((q) => [q, q + 1, q + 2]).filter((x) => x !== alone[0] + 1);
    assert.deepEqual(Array.from(runs.onRequest(490, EMPTY)), want);
    runs.dispose!(); plain.dispose!();
  });
});
