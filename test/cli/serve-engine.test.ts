// serve --strategy ppm with engine flags builds the bare engine: what it trains with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { engineOptions } from "../../src/cli/serve.js";
import { DEFAULT_HISTORY, parseHistorySpec } from "../../src/history/sources.js";
import { createPredictor } from "../../src/index.js";

test("serve's bare engine trains a recorded history without the LRU filter (as the ppm strategy does), every access with it", () => {
  const opts = { order: 2 };
  assert.equal(engineOptions(1024, opts, parseHistorySpec(DEFAULT_HISTORY)).filter, 0);
  assert.equal(engineOptions(1024, opts, parseHistorySpec("first-touch:1e6")).filter, 0);
  assert.equal(engineOptions(1024, opts, parseHistorySpec("full")).filter, undefined, "full: the engine's default filter");
  assert.deepEqual(engineOptions(1024, opts, parseHistorySpec("full")), { pageCount: 1024, order: 2 });
  // what the filter would do to a recorded history: a page repeated in the next interval is dropped
  const sets = Uint32Array.of(1, 2, 3, 1, 2, 3, 1, 2, 3);
  const learned = (o: ReturnType<typeof engineOptions>) => {
    const p = createPredictor({ ...o, maxContexts: 1 << 12, rehearse: false });
    try { p.train(sets); return p.stats(); } finally { p.dispose(); }
  };
  const off = learned(engineOptions(64, {}, parseHistorySpec(DEFAULT_HISTORY)));
  const on = learned(engineOptions(64, {}, parseHistorySpec("full")));
  assert.ok(off.contexts > on.contexts, `unfiltered ${off.contexts} contexts against filtered ${on.contexts}`);
});
