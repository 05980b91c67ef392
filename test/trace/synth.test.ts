import { test } from "node:test";
import assert from "node:assert/strict";
import { synthesize, WORKLOADS } from "../../src/trace/synth.js";

test("every workload is reproducible from its seed and stays inside its footprint", () => {
  for (const w of WORKLOADS) {
    const a = synthesize(w, { accesses: 20_000, pages: 1024, seed: 3 });
    const b = synthesize(w, { accesses: 20_000, pages: 1024, seed: 3 });
    const c = synthesize(w, { accesses: 20_000, pages: 1024, seed: 4 });
    assert.equal(a.length, 20_000, w);
    assert.deepEqual(a.pages, b.pages, w);
    assert.deepEqual(a.gaps, b.gaps, w);
    assert.deepEqual(a.streams, b.streams, w);
    assert.ok(a.pages.every((p) => p < 1024), w);
    assert.ok(a.gaps.every((g) => g >= 1 && g < 60), w);
    if (w !== "seq" && w !== "stride" && w !== "matmul") assert.notDeepEqual(a.pages, c.pages, w);
  }
});

test("the patterns are what they claim", () => {
  const seq = synthesize("seq", { accesses: 3000, pages: 1000 });
  assert.deepEqual(Array.from(seq.pages.subarray(995, 1005)), [995, 996, 997, 998, 999, 0, 1, 2, 3, 4]);
  const st = synthesize("stride", { accesses: 100, pages: 1024, stride: 8 });
  for (let i = 1; i < 100; i++) assert.equal(st.pages[i] - st.pages[i - 1], 8);
  const chase = synthesize("chase", { accesses: 2048, pages: 1024 });
  assert.equal(new Set(chase.pages.subarray(0, 1024)).size, 1024, "one cycle through every page");
  assert.deepEqual(chase.pages.subarray(1024), chase.pages.subarray(0, 1024), "then the same cycle again");
  const multi = synthesize("multi", { accesses: 10_000, pages: 1024 });
  assert.deepEqual([...new Set(multi.streams)].sort(), [0, 1, 2, 3]);
  for (let i = 0; i < multi.length; i++) assert.equal(Math.floor(multi.pages[i] / 256), multi.streams[i], "each vCPU on its own quarter");
  const phase = synthesize("phase", { accesses: 10_000, pages: 1024 });
  assert.ok(phase.pages.subarray(0, 5000).every((p) => p < 512));
  assert.ok(phase.pages.subarray(5000).every((p) => p >= 512));
  const zipf = synthesize("zipf", { accesses: 50_000, pages: 1024 });
  const counts = new Map<number, number>();
  for (const p of zipf.pages) counts.set(p, (counts.get(p) ?? 0) + 1);
  const top = Math.max(...counts.values());
  assert.ok(top > 50_000 / 10, "the hottest page takes a large share");
  const mm = synthesize("matmul", { accesses: 20_000, pages: 1200 });
  for (let i = 1; i < mm.length; i++) assert.notEqual(mm.pages[i], mm.pages[i - 1], "re-touches are folded");
  assert.throws(() => synthesize("seq", { pages: 3 }), RangeError);
  assert.throws(() => synthesize("nope" as never), RangeError);
});
