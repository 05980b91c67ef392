/**
 * A migration that cannot go on (the destination gives up: its trace does not fit the image, or the
 * source found its frames bad) frees its session slot at once instead of holding it for the session
 * TTL, so a correct migration that follows is not refused as busy. An ERROR the destination recovers
 * from (an idle timeout) still keeps the session for its reconnection.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, syntheticTrace } from "./helpers.js";

test("a destination that gives up (its trace spans more than the image) frees the session slot at once", { timeout: 30_000 }, async () => {
  const errors: Error[] = [];
  const srv = await startPageServer({ image: image(128, 8), push: "linear", maxSessions: 1, sessionTtlMs: 60_000, onError: (e) => errors.push(e), strategy: () => ({ name: "none", onFault: () => [] }) });
  try {
    await assert.rejects(runMigration({ port: srv.port, trace: syntheticTrace(1000, 256, 2), switchAt: 0, ips: 0, timeoutMs: 10_000 }), /spans|pages/);
    for (let i = 0; i < 100 && srv.stats().activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(srv.stats().activeSessions, 0, "the slot is free, not held for the 60 s TTL");
    assert.ok(errors.some((e) => /page out of range/.test(e.message)), `the source heard why: ${errors.map((e) => e.message)}`);
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(1000, 128, 2), switchAt: 0, ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true, "the next migration is served, not refused as busy");
  } finally { await srv.close(); }
});
