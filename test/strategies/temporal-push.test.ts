// The history-replaying push (temporal streaming) of the `ppm` policy, and the push-order bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TemporalPush } from "../../src/strategies/temporal-push.js";
import { createPush } from "../../src/sim/push.js";
import { ppmPushSteering } from "../../src/strategies/ppm-policy.js";
import { readTrace } from "../../src/trace/read.js";
import { compareStrategies } from "../../src/sim/run.js";

const footprint = Uint32Array.from({ length: 100 }, (_, i) => i);

/** Take n pages from an order, committing each as the simulator and the source do. */
function take(order: ReturnType<typeof createPush>, state: Uint8Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) { const p = order.next(state); if (p < 0) break; state[p] = 1; out.push(p); }
  return out;
}

test("after a fault the push alternates the spatial order with the history that followed the page's last occurrence", () => {
  const t = new TemporalPush(100);
  t.learn([1, 2, 3, 4, 5, 6, 2, 7, 8, 9]);
  const state = new Uint8Array(100);
  const order = t.steer(createPush("linear", footprint));
  assert.deepEqual(take(order, state, 2), [0, 1], "no fault yet: the spatial order alone");
  order.onFault(2); state[2] = 1;
  // the last 2 is followed by 7, 8, 9; every other page comes from them until they run out
  assert.deepEqual(take(order, state, 8), [3, 7, 4, 8, 5, 9, 6, 10]);
});

test("a fault on a page the history never saw keeps the stream where it was; pages already sent are skipped", () => {
  const t = new TemporalPush(100, { share: 1 });
  t.learn([10, 11, 12, 13, 14, 15, 16]);
  const state = new Uint8Array(100);
  const order = t.steer(createPush("linear", footprint));
  order.onFault(10); state[10] = 1;
  state[12] = 1; // already sent
  assert.deepEqual(take(order, state, 2), [11, 13]);
  order.onFault(50); state[50] = 1; // unseen: the stream goes on
  assert.deepEqual(take(order, state, 3), [14, 15, 16]);
  assert.deepEqual(take(order, state, 2), [0, 1], "stream exhausted: the spatial order");
});

test("the stream skips at most `scan` sent pages per call and stops `span` entries after the fault", () => {
  const t = new TemporalPush(100, { share: 1, scan: 2, span: 4 });
  t.learn([1, 20, 21, 22, 23, 24, 25]);
  const state = new Uint8Array(100);
  state[20] = state[21] = state[22] = 1;
  const order = t.steer(createPush("linear", footprint));
  order.onFault(1); state[1] = 1;
  assert.equal(order.next(state), 0, "two sent pages skipped, then the spatial order's turn");
  state[0] = 1;
  assert.equal(order.next(state), 23, "the stream resumes after what it skipped");
  state[23] = 1;
  assert.equal(order.next(state), 2, "24 is past the span of 4 entries after the fault");
});

test("bad options are refused by name; pages outside the guest are not learned", () => {
  assert.throws(() => new TemporalPush(10, { share: 0 }), /share must be a positive integer, got 0/);
  assert.throws(() => new TemporalPush(10, { span: 1.5 }), /span must be a positive integer, got 1.5/);
  const t = new TemporalPush(10);
  t.learn([3, 99, -1, 4]);
  assert.equal(t.length, 2);
});

test("ppmPushSteering: the same order for a source whose strategy runs in a worker; none without a push of ours", () => {
  assert.equal(ppmPushSteering(100, "none", Uint32Array.of(1, 2, 3)), undefined);
  assert.equal(ppmPushSteering(100, "qemu", Uint32Array.of(1, 2, 3), { ownPush: false }), undefined);
  assert.equal(ppmPushSteering(100, "qemu", Uint32Array.of(1, 2, 3), { historyShare: 0 }), undefined);
  const steer = ppmPushSteering(100, "qemu", Uint32Array.of(5, 6, 40, 41, 42))!;
  const state = new Uint8Array(100);
  const order = steer(createPush("hines", footprint));
  order.onFault(6); state[6] = 1;
  assert.deepEqual(take(order, state, 4), [5, 40, 7, 41], "hines: one back, one forward; the history: 40, 41");
});

test("on real traces scattered at 4 KiB, replaying history takes fewer faults and less stall than the spatial push alone", async () => {
  // (not every cell: perl/4k takes fewer faults, 65 against 72, but 0.8% more stall; RESULTS.md section 2)
  const { DEFAULT_POLICY } = await import("../../src/strategies/ppm-policy.js");
  for (const name of ["gcc", "json"]) {
    const trace = await readTrace(fileURLToPath(new URL(`../../traces/${name}.txt.gz`, import.meta.url)));
    const run = async () => (await compareStrategies(trace, ["ppm"], { layout: "4k", push: "qemu" })).results[0];
    const saved = DEFAULT_POLICY.historyShare;
    let off;
    try { DEFAULT_POLICY.historyShare = 0; off = await run(); } finally { DEFAULT_POLICY.historyShare = saved; }
    const on = await run();
    assert.ok(on.faults < off.faults, `${name}: faults ${on.faults} vs ${off.faults}`);
    assert.ok(on.stallS < off.stallS, `${name}: stall ${on.stallS} vs ${off.stallS}`);
  }
});

test("oracle-push, the bound of push order: no network fault, less stall than QEMU's push; adaptive depth keeps the steered push", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../../traces/awk.txt.gz", import.meta.url)));
  const c = await compareStrategies(trace, ["qemu", "oracle-push"], { layout: "4k", push: "qemu" });
  const [q, o] = c.results;
  assert.equal(o.faults, 0);
  assert.ok(o.stallS < q.stallS, `${o.stallS} vs ${q.stallS}`);
  const a = (await compareStrategies(trace, ["oracle-push"], { layout: "4k", push: "qemu", adaptive: true })).results[0];
  assert.equal(a.faults, 0, "the adaptive wrapper forwards steerPush");
});

test("oracle-history-push, the bound of a history-replaying push: between oracle-push and QEMU's push, and it knows only the history's pages", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../../traces/awk.txt.gz", import.meta.url)));
  const c = await compareStrategies(trace, ["qemu", "oracle-push", "oracle-history-push"], { layout: "4k", push: "qemu" });
  const [q, all, held] = c.results;
  assert.ok(held.stallS < q.stallS, `${held.stallS} vs QEMU's ${q.stallS}`);
  assert.ok(held.stallS > all.stallS, `${held.stallS} vs the full future's ${all.stallS}`);
  assert.ok(held.faults > 0, "pages first touched after the switch-over still fault");
  // With an empty history it knows nothing: its push is Hines' bubbling, fault for fault.
  const none = await compareStrategies(trace, ["hines", "oracle-history-push"], { layout: "4k", push: "qemu", history: { kind: "none" } });
  assert.equal(none.results[1].faults, none.results[0].faults);
  assert.equal(none.results[1].stallS, none.results[0].stallS);
});

test("fork: migrations served from one history share its index but not their positions; learning after a fork copies", () => {
  const t = new TemporalPush(100, { share: 1 });
  t.learn([1, 30, 31, 2, 40, 41]);
  const a = t.fork(), b = t.fork();
  const sa = new Uint8Array(100), sb = new Uint8Array(100);
  const oa = a.steer(createPush("linear", footprint)), ob = b.steer(createPush("linear", footprint));
  oa.onFault(1); sa[1] = 1;
  ob.onFault(2); sb[2] = 1;
  assert.deepEqual(take(oa, sa, 2), [30, 31]);
  assert.deepEqual(take(ob, sb, 2), [40, 41]);
  b.learn([1, 60]); // b's 1 is now followed by 60; a's and t's are not
  const sa2 = new Uint8Array(100), sb2 = new Uint8Array(100);
  const oa2 = a.steer(createPush("linear", footprint)), ob2 = b.steer(createPush("linear", footprint));
  oa2.onFault(1); ob2.onFault(1);
  assert.equal(oa2.next(sa2), 30);
  assert.equal(ob2.next(sb2), 60);
  assert.equal(t.length, 6);
  // the page server's cache: the same history gives independent orders
  const h = Uint32Array.from([5, 6, 7, 8]);
  const s1 = ppmPushSteering(100, "qemu", h)!(createPush("qemu", footprint)), s2 = ppmPushSteering(100, "qemu", h)!(createPush("qemu", footprint));
  const st1 = new Uint8Array(100), st2 = new Uint8Array(100);
  s1.onFault(5); st1[5] = 1;
  assert.deepEqual(take(s1, st1, 2), [6, 7], "QEMU's scan after 5, then the history after 5 (6 is sent: 7)");
  assert.deepEqual(take(s2, st2, 2), [0, 1], "the other migration had no fault: its scan from the start, no stream");
});

test("a history longer than the cap keeps its newest entries and a consistent index", () => {
  const t = new TemporalPush(1 << 20);
  t.learn([1, 2, 3, 4, 5]);
  const cap = 1 << 24;
  const big = new Uint32Array(cap + 3);
  for (let i = 0; i < big.length; i++) big[i] = 1000 + (i % 5000);
  big.set([777777, 777778, 777779], big.length - 3);
  t.learn(big);
  assert.equal(t.length, cap, "the newest cap entries");
  const none = new Uint8Array(1 << 20);
  assert.deepEqual(t.peek(777777, none, 4), [777778, 777779]);
  assert.deepEqual(t.peek(1, none, 1), [], "the oldest are forgotten");
  t.learn([777777, 42]); // and it keeps learning after the trim
  assert.deepEqual(t.peek(777777, none, 1), [42]);
});

// --- the adaptive share: the push follows the order the faults say the guest follows ---------------

/** A fixed pseudo-random permutation of [from, from + n). */
function shuffled(from: number, n: number, seed = 7): number[] {
  const a = Array.from({ length: n }, (_, i) => from + i);
  let x = seed;
  for (let i = n - 1; i > 0; i--) { x = (x * 1103515245 + 12345) >>> 0; const j = x % (i + 1); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

test("adaptive share: faults just ahead of the history's stream move the push toward the history", () => {
  const big = Uint32Array.from({ length: 10000 }, (_, i) => i);
  const hist = shuffled(5000, 1000);
  const t = new TemporalPush(10000, { adaptive: true });
  t.learn(hist);
  assert.equal(t.streamShare, 0.5, "no fault judged yet: the fixed share");
  const state = new Uint8Array(10000);
  const order = t.steer(createPush("hines", big));
  for (let k = 0; k < 600; k += 6) {
    order.onFault(hist[k]); state[hist[k]] = 1;
    take(order, state, 4); // the push runs between faults; the guest outruns it
  }
  assert.ok(t.histCredit > 10 * t.spaceCredit, `credits ${t.histCredit} / ${t.spaceCredit}`);
  assert.equal(t.streamShare, 7 / 8, "the history's share at its ceiling");
  // and the push's pages follow it: in 8 pages after the next fault, 7 from the history's order
  order.onFault(hist[606]); state[hist[606]] = 1;
  const next = take(order, state, 8);
  assert.equal(next.filter((p) => p >= 5000 && p < 6000 && hist.indexOf(p) > 606).length, 7, `pushed ${next}`);
});

test("adaptive share: faults next to the previous one, off the history's order, move the push toward bubbling", () => {
  const big = Uint32Array.from({ length: 10000 }, (_, i) => i);
  const hist = shuffled(5000, 1000);
  const t = new TemporalPush(10000, { adaptive: true });
  t.learn(hist);
  const state = new Uint8Array(10000);
  const order = t.steer(createPush("hines", big));
  // the guest starts where the history did, then scans fresh memory upward (a sort writing a new run)
  order.onFault(hist[0]); state[hist[0]] = 1;
  for (let p = 100; p < 700; p += 6) {
    take(order, state, 2);
    if (state[p]) continue;
    order.onFault(p); state[p] = 1;
  }
  assert.ok(t.spaceCredit > 10 * t.histCredit, `credits ${t.histCredit} / ${t.spaceCredit}`);
  assert.equal(t.streamShare, 1 / 8, "the history's share at its floor: still tried, in case the phase changes back");
});

test("adaptive share: the option is checked; a fork starts from the prior; fixed steering is unchanged", () => {
  assert.throws(() => new TemporalPush(10, { adaptive: 1 as unknown as boolean }), /adaptive must be a boolean, got 1/);
  const t = new TemporalPush(100, { adaptive: true });
  t.learn([1, 2, 3]);
  t.histCredit = 5;
  assert.ok(t.streamShare > 0.5);
  const f = t.fork();
  assert.equal(f.streamShare, 0.5, "a fork (another migration over the same history) judges afresh");
  assert.equal(new TemporalPush(100, { share: 4 }).streamShare, 0.25);
});

test("adaptive share: a fault is credited to the order that was nearer to pushing it (the bubble: p-1, p+1, p-2, p+2, ...)", () => {
  // After the fault at 10 the bubble pushed 9; its next pushes are 11, 8, 12, ... The stream after 10
  // is the history's 20, 21, ... The side with fewer of its own pages still ahead of the fault earns it.
  const judged = (history: number[], fault: number) => {
    const t = new TemporalPush(100, { adaptive: true });
    t.learn(history);
    const order = t.steer(createPush("hines", footprint));
    const state = new Uint8Array(100);
    order.onFault(10); state[10] = 1;
    const p = order.next(state); state[p] = 1;
    assert.equal(p, 9, "the bubble's first page");
    order.onFault(fault);
    return { hist: t.histCredit, space: t.spaceCredit };
  };
  // 8 = p-2: two bubble pushes ahead (11, then 8); four stream pages (20-23) before it in the history
  assert.deepEqual(judged([10, 20, 21, 22, 23, 8, 30], 8), { hist: 0, space: 1 });
  // 12 = p+2: three bubble pushes ahead (11, 8, 12); two stream pages (20, 21) before it
  assert.deepEqual(judged([10, 20, 21, 12, 30], 12), { hist: 1, space: 0 });
});
