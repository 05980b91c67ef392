/**
 * DONE means every page is present and verified (docs/protocol.md): a destination whose memory does
 * not match the image's digest sends ERROR 3 instead, and the source does not count the migration as
 * completed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

test("a memory that fails verification is not reported DONE: ERROR 3 to the source, which does not complete the session", { timeout: 30_000 }, async () => {
  const img = image(128, 8);
  const errors: Error[] = [];
  const srv = await startPageServer({ image: img, push: "linear", onError: (e) => errors.push(e), strategy: () => ({ name: "none", onFault: () => [] }) });
  img.fill(0x5a, 100 * 4096, 101 * 4096); // page 100 changes after the source took the image's digest
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(1000, 128, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, false);
    assert.equal(r.doneDelivered, false, "no DONE for a memory that failed verification");
    for (let i = 0; i < 100 && srv.stats().activeSessions === 1 && errors.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
    const st = srv.stats();
    assert.equal(st.sessionsCompleted, 0, "the source does not count it completed");
    assert.ok(errors.some((e) => /image digest mismatch/.test(e.message)), `the source heard why: ${errors.map((e) => e.message)}`);
  } finally { await srv.close(); }
});

test("a verified memory is still reported DONE and completes the session", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: image(128, 8), push: "linear", strategy: () => ({ name: "none", onFault: () => [] }) });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(1000, 128, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.doneDelivered, true);
    for (let i = 0; i < 100 && srv.stats().sessionsCompleted === 0; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(srv.stats().sessionsCompleted, 1);
  } finally { await srv.close(); }
});
