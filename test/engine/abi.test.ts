// The wrapper's view of the core's ABI comes from the module's exported globals (assembly/index.ts,
// ABI_*), not from copies: these checks catch a module and a wrapper that disagree on the map.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ABI, COUNTER, OUT_CAPACITY, IN_CAPACITY, instantiateCore } from "../../src/engine/wasm.js";
import { REHEARSAL_PAGES } from "../../src/engine/rehearsal.js";
import { ALPHA_BITS, ESCAPE_CODE, CORE_HEADER, HEADER_END } from "../../src/engine/core-check.js";
import { createPredictor } from "../../src/engine/predictor.js";

test("the ABI is read from the module: header, counters, capacities and codes are consistent", () => {
  assert.equal(CORE_HEADER, ABI.header);
  assert.ok(HEADER_END > CORE_HEADER);
  const counters = Object.values(COUNTER);
  assert.equal(new Set(counters).size, counters.length, "counter offsets are distinct");
  for (const c of counters) assert.ok(c % 8 === 0 && CORE_HEADER + c + 8 <= HEADER_END, `counter at +${c} lies in the header`);
  const fields = Object.values(ABI.field);
  assert.equal(new Set(fields).size, fields.length, "header fields are distinct");
  assert.ok(OUT_CAPACITY >= 256, "depth goes up to 256");
  assert.ok(IN_CAPACITY > 0 && REHEARSAL_PAGES === ABI.rehearsalPages);
  assert.equal(ALPHA_BITS.hybrid, ALPHA_BITS.page | ALPHA_BITS.delta);
  assert.equal(new Set(Object.values(ESCAPE_CODE)).size, 4);
});

test("the views the wrapper keeps lie inside the layout, and a counter reads what the core counts", () => {
  const p = createPredictor({ pageCount: 1000 });
  p.train([1, 2, 3, 4, 5, 6]);
  p.predictNext(7);
  p.observe(8);
  const s = p.stats();
  assert.equal(s.faults, 1);
  assert.equal(s.observed, 1);
  assert.equal(s.trained, 6);
  const core = instantiateCore();
  assert.equal(core.init(3, ALPHA_BITS.hybrid, ESCAPE_CODE.D, 8, 1e-4, 1, 1024, 1000, 64, 0, 8, 100), 1, "init accepts its own memory map");
  assert.ok(core.outPtr() >= HEADER_END && core.inPtr() >= core.outPtr() + OUT_CAPACITY * 8);
  assert.ok(core.inPtr() + IN_CAPACITY * 4 <= core.usedBytes());
  assert.equal(new Uint32Array(core.memory.buffer, CORE_HEADER, 1)[0], ABI.magic);
});
