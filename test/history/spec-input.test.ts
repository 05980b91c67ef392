// History spec input: an interval of guest instructions is a whole number (no silent rounding of
// 0.5 to 1); times convert at the given rate and must come to at least one instruction.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseHistorySpec, INTERVAL_KINDS } from "../../src/history/sources.js";

test("a fractional instruction count is a RangeError naming the value, for every interval kind", () => {
  for (const kind of INTERVAL_KINDS) {
    for (const t of ["0.5", "1.5", "2.5e0", "10000000.5"]) {
      assert.throws(() => parseHistorySpec(`${kind}:${t}`), (e: Error) => e instanceof RangeError && e.message.includes(JSON.stringify(t)) && /whole number/.test(e.message), `${kind}:${t}`);
    }
    // Integers in any notation still parse, to the same count.
    assert.deepEqual(parseHistorySpec(`${kind}:1e7`), { kind, interval: 1e7 });
    assert.deepEqual(parseHistorySpec(`${kind}:2.5e3`), { kind, interval: 2500 });
    assert.deepEqual(parseHistorySpec(`${kind}:1`), { kind, interval: 1 });
    assert.throws(() => parseHistorySpec(`${kind}:1e30`), /1 \.\. 2\^53/);
  }
});

test("a time comes to whole instructions at the rate given, at least one", () => {
  assert.deepEqual(parseHistorySpec("first-touch:1ns"), { kind: "first-touch", interval: 1 });
  assert.deepEqual(parseHistorySpec("first-touch:1ns", 3.3e9), { kind: "first-touch", interval: 3 });
  assert.deepEqual(parseHistorySpec("sets:1us", 3.3e9), { kind: "sets", interval: 3300 });
  assert.deepEqual(parseHistorySpec("sets:1.5ms"), { kind: "sets", interval: 1.5e6 });
  for (const t of ["0.5ns", "0.3ns"]) {
    assert.throws(() => parseHistorySpec(`first-touch:${t}`), (e: Error) => e instanceof RangeError && e.message.includes(JSON.stringify(t)) && /at least 1 guest instruction/.test(e.message), t);
  }
});

test("a spec that is not a string, or a bad rate, is named", () => {
  assert.throws(() => parseHistorySpec(5 as unknown as string), (e: Error) => e instanceof TypeError && /history must be a string.*number/.test(e.message));
  assert.throws(() => parseHistorySpec(null as unknown as string), (e: Error) => e instanceof TypeError && /null/.test(e.message));
  for (const ips of [0, -1, NaN, Infinity]) {
    assert.throws(() => parseHistorySpec("sets:10ms", ips), (e: Error) => e instanceof RangeError && e.message.includes(`ips must be a positive number`) && e.message.includes(String(ips)), String(ips));
  }
});
