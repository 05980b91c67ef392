/**
 * Predictions are advisory: a strategy that throws on a fault (in process) or whose worker fails
 * does not fail the migration. The faulted page is already out; the source records the error and
 * serves the session on demand from there, and the migration completes, verified.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer, ANSWER_DEADLINE_MS } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

test("a strategy that throws on its 5th fault: the migration goes on on demand and completes", { timeout: 30_000 }, async () => {
  const errors: Error[] = [];
  let faults = 0, disposed = 0;
  const srv = await startPageServer({
    image: image(256, 8), push: "none", onError: (e) => errors.push(e),
    strategy: () => ({
      name: "flaky",
      onFault: (p) => { if (++faults === 5) throw new Error("boom"); return [p + 1, p + 2].filter((q) => q < 256); },
      dispose: () => { disposed++; },
    }),
  });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(2000, 256, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true, "the migration completed");
    assert.equal(faults, 5, "the strategy is not asked again after it failed");
    assert.equal(disposed, 1);
    assert.ok(r.received.predicted > 0, "it predicted before it failed");
    assert.ok(errors.some((e) => /strategy flaky failed, serving on demand from here: boom/.test(e.message)), errors.map((e) => e.message).join("; "));
    assert.equal(srv.stats().sessionsCompleted, 1);
  } finally { await srv.close(); }
});

test("a strategy worker that stops answering: past the answer deadline the session goes on on demand", { timeout: 30_000 }, async () => {
  const errors: Error[] = [];
  let calls = 0, disposed = 0;
  const srv = await startPageServer({
    image: image(256, 8), push: "none", onError: (e) => errors.push(e),
    // a remote strategy (the worker's interface, answered in order) that hangs from its 3rd answer on
    strategy: () => ({
      remote: true as const, name: "hung", trainMs: 0,
      fault: (p: number) => (++calls >= 3 ? new Promise<never>(() => {}) : Promise.resolve({ pages: Uint32Array.from([p + 1].filter((q) => q < 256)), ns: 1000 })),
      present: () => {},
      dispose: () => { disposed++; },
    }),
  });
  try {
    const t0 = Date.now();
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(2000, 256, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(disposed, 1);
    assert.ok(errors.some((e) => new RegExp(`strategy hung failed, serving on demand from here: no answer within ${ANSWER_DEADLINE_MS} ms`).test(e.message)), errors.map((e) => e.message).join("; "));
    assert.ok(Date.now() - t0 < ANSWER_DEADLINE_MS + 8000, "bounded by the deadline, not the idle timeout");
  } finally { await srv.close(); }
});
