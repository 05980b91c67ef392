import { test } from "node:test";
import assert from "node:assert/strict";
import { synthesize } from "../../src/trace/synth.js";
import { readTrace } from "../../src/trace/read.js";
import { fileURLToPath } from "node:url";
import { prepareRun, runOne, compareStrategies } from "../../src/sim/run.js";
import { scaledBitsPerSecond } from "../../src/sim/link.js";
import { createPush } from "../../src/sim/push.js";
import { lowerBound } from "../../src/util/search.js";
import { parseTraceText } from "../../src/trace/format.js";
import type { SimResult } from "../../src/sim/metrics.js";

const SMALL = { accesses: 20_000, pages: 1024, seed: 2 };

function distinctAfter(pages: Uint32Array, from: number): number {
  return new Set(pages.subarray(from)).size;
}

test("demand faults equal the distinct pages touched after switch-over, in every layout and with several vCPUs", async () => {
  for (const w of ["random", "multi", "zipf"] as const) {
    const t = synthesize(w, SMALL);
    for (const layout of ["virtual", "2m", "4k"] as const) {
      const c = await compareStrategies(t, ["demand"], { layout, switchAt: 0.3 });
      const r = c.results[0];
      assert.equal(r.faults, distinctAfter(t.pages, Math.floor(t.length * 0.3)), `${w} ${layout}`);
      assert.equal(r.faults, r.demandFaults);
      assert.equal(r.inflightFaults, 0);
      assert.equal(r.coverage, 0);
    }
  }
});

test("accounting: every footprint page crosses exactly once, bytes = pages x (page + header) + zero-page headers", async () => {
  const t = synthesize("multi", SMALL);
  for (const push of ["none", "linear", "qemu", "hines"] as const) {
    for (const [layout, queue] of [["virtual", "fifo"], ["4k", "newest"], ["2m", "replace"], ["virtual", "replace"]] as const) {
      const c = await compareStrategies(t, ["demand", "qemu", "readahead", "leap", "oracle"], { layout, push, queue, pageSize: 4096, headerBytes: 16 });
      for (const r of c.results) {
        const tag = `${push} ${layout} ${queue} ${r.strategy}`;
        assert.equal(r.footprintPagesSent, r.footprintPages, tag);
        assert.equal(r.footprintPages, new Set(t.pages).size, tag);
        assert.equal(r.demandPages + r.predictedPages + r.pushedPages, r.footprintPages + r.zeroPages, tag);
        assert.equal(r.bytesOnWire, r.footprintPages * (4096 + 16) + r.zeroPages * 16, tag);
        assert.equal(r.faults, r.demandPages, `${tag}: a fault is a request the source had to serve`);
        assert.equal(r.faultPathPages, r.demandPages + r.predictedPages, tag);
        assert.ok(r.prefetchedTouched <= r.predictedPages, tag);
        assert.ok(r.migrationS >= r.footprintPages * (4096 + 16) * 8 / r.bitsPerSecond - 1e-12, `${tag}: the link is never faster than its bandwidth`);
      }
    }
  }
});

test("time: a single vCPU completes at baseline + stall; stalls are non-negative; runs are deterministic", async () => {
  const t = synthesize("zipf", SMALL);
  const a = await compareStrategies(t, ["demand", "readahead", "oracle"], { layout: "2m" });
  const b = await compareStrategies(t, ["demand", "readahead", "oracle"], { layout: "2m" });
  for (let i = 0; i < a.results.length; i++) {
    const r = a.results[i];
    assert.ok(Math.abs(r.completionS - (r.baselineS + r.stallS)) < 1e-9 * Math.max(1, r.completionS), r.strategy);
    assert.ok(r.stall.p50 >= 0 && r.stall.p50 <= r.stall.p99 && r.stall.p99 <= r.stall.max);
    assert.equal(r.stall.histogram.reduce((x, h) => x + h.count, 0), r.stall.count);
    const { wallMs: _a, ...ra } = r;
    const { wallMs: _b, ...rb } = b.results[i];
    assert.deepEqual(ra, rb);
  }
  // With several vCPUs the slowest stream decides: completion never exceeds baseline + total stall.
  const m = await compareStrategies(synthesize("multi", SMALL), ["demand"], {});
  assert.ok(m.results[0].completionS <= m.results[0].baselineS + m.results[0].stallS + 1e-12);
  assert.ok(m.results[0].completionS > m.results[0].baselineS);
});

test("a demand fault stalls one round trip plus one page's transmission", async () => {
  // one stream, two pages, the second touched after switch-over only
  const t = parseTraceText("0 1000\n0 1000\n0 1000\n1 1000\n", "tiny");
  const c = await compareStrategies(t, ["demand"], { switchAt: 0.5, rawBandwidth: true, bandwidthGbps: 1, latencyUs: 50, pageSize: 4096, headerBytes: 16, ips: 1e9 });
  const r = c.results[0];
  assert.equal(r.faults, 2);
  const perFault = 100e-6 + ((4096 + 16) * 8) / 1e9;
  assert.ok(Math.abs(r.stallS - 2 * perFault) < 1e-12, `stall ${r.stallS}`);
  assert.ok(Math.abs(r.completionS - (2e-6 + 2 * perFault)) < 1e-12);
});

test("a background push fast enough to outrun the guest removes the faults; a slow one does not", async () => {
  const t = synthesize("random", { ...SMALL, gap: 2000 });
  const fast = await compareStrategies(t, ["readahead"], { push: "linear", rawBandwidth: true, bandwidthGbps: 10_000 });
  const slow = await compareStrategies(t, ["readahead"], { push: "linear", rawBandwidth: true, bandwidthGbps: 0.1 });
  assert.ok(fast.results[0].faults < 5, `fast: ${fast.results[0].faults}`);
  assert.ok(slow.results[0].faults > 100, `slow: ${slow.results[0].faults}`);
});

test("the pressure rule: at the nominal 10 Gbit/s the footprint takes exactly the run time", () => {
  const bps = scaledBitsPerSecond(10, 1000, 4096, 0.5);
  assert.equal((1000 * 4096 * 8) / bps, 0.5);
  assert.equal(scaledBitsPerSecond(20, 1000, 4096, 0.5), 2 * bps);
  const t = synthesize("seq", SMALL);
  const { prep, link } = prepareRun(t, {});
  assert.ok(Math.abs((prep.footprint.length * 4096 * 8) / link.bitsPerSecond - prep.baselineS) < 1e-12);
});

test("push orders: linear ascends, qemu jumps after the fault, hines bubbles a page each side in turn", () => {
  const fp = Uint32Array.from([10, 20, 30, 40, 50, 60, 70, 80]);
  const state = new Uint8Array(100);
  const take = (o: ReturnType<typeof createPush>, n: number) => { const out: number[] = []; for (let i = 0; i < n; i++) { const p = o.next(state); if (p < 0) break; state[p] = 2; out.push(p); } return out; };
  assert.deepEqual(take(createPush("linear", fp), 3), [10, 20, 30]);
  state.fill(0);
  const q = createPush("qemu", fp);
  q.onFault(55);
  assert.deepEqual(take(q, 8), [60, 70, 80, 10, 20, 30, 40, 50]);
  state.fill(0);
  const h = createPush("hines", fp);
  h.onFault(50); // the fault took 50 itself: the pivot is not pushed again
  state[50] = 2;
  assert.deepEqual(take(h, 7), [40, 60, 30, 70, 20, 80, 10], "p-1, p+1, p-2, p+2, ... (Hines & Gopalan's single pivot)");
  state.fill(0);
  h.onFault(75); // a page outside the footprint (a zero page): the bubble starts from its neighbours
  assert.deepEqual(take(h, 8), [70, 80, 60, 50, 40, 30, 20, 10], "the forward edge exhausted: the backward one alone");
  state.fill(0);
  h.onFault(10); state[10] = 2; // the lowest page: nothing behind it
  assert.deepEqual(take(h, 3), [20, 30, 40]);
  state.fill(0);
  state[40] = state[60] = 2; // a page already sent is skipped and uses up its side's turn, as in the paper's loop
  h.onFault(50); state[50] = 2;
  assert.deepEqual(take(h, 4), [30, 70, 20, 80]);
  assert.equal(createPush("hines", new Uint32Array(0)).next(new Uint8Array(4)), -1, "an empty footprint pushes nothing");
  const lone = createPush("hines", Uint32Array.of(3));
  lone.onFault(3);
  assert.equal(lone.next(Uint8Array.of(0, 0, 0, 2)), -1, "the one page went with the fault");
  lone.onFault(1);
  assert.equal(lone.next(new Uint8Array(4)), 3);
  assert.equal(createPush("none", fp).next(state), -1);
  assert.equal(lowerBound(fp, 45), 4);
});

test("a 1M-access trace simulates every built-in strategy quickly", async () => {
  const t = synthesize("multi", { accesses: 1_000_000, pages: 16_384, seed: 5 });
  const t0 = performance.now();
  const c = await compareStrategies(t, ["demand", "qemu", "hines", "readahead", "leap", "oracle"], { layout: "4k" });
  const ms = performance.now() - t0;
  assert.ok(ms < 15_000, `${ms} ms`);
  const byName = new Map<string, SimResult>(c.results.map((r) => [r.strategy, r]));
  assert.ok(byName.get("oracle")!.faults <= byName.get("demand")!.faults);
});

test("requestOverheadUs: without a push every fault's round trip is longer by exactly the overhead", async () => {
  const trace = synthesize("random", { accesses: 20_000, pages: 512, seed: 3 });
  const run = async (requestOverheadUs: number) => (await compareStrategies(trace, ["demand"], { push: "none", requestOverheadUs })).results[0];
  const a = await run(0), b = await run(200);
  assert.equal(b.faults, a.faults);
  assert.ok(Math.abs(b.stallS - a.stallS - a.faults * 200e-6) < 1e-9, `${b.stallS} - ${a.stallS} vs ${a.faults} x 200 us`);
});

test("linkQueueBytes: a fault's page waits behind the push pages the link already queued, so each fault costs more and the push brings more", async () => {
  const trace = await readTrace(fileURLToPath(new URL("../../traces/perl.txt.gz", import.meta.url)));
  const run = async (linkQueueBytes?: number) => (await compareStrategies(trace, ["qemu"], { push: "qemu", linkQueueBytes })).results[0];
  const a = await run(), zero = await run(0), b = await run(64 * 1024);
  assert.deepEqual([zero.faults, zero.stallS], [a.faults, a.stallS], "0 is the default model");
  assert.ok(a.faults < a.demandFaults, "the push brings pages");
  assert.ok(b.stallS / b.faults > a.stallS / a.faults, `stall per fault ${b.stallS / b.faults} vs ${a.stallS / a.faults}`);
  assert.ok(b.faults <= a.faults, `faults ${b.faults} vs ${a.faults}`);
});
