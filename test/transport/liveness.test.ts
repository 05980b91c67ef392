/**
 * Liveness (docs/protocol.md, "Liveness"): the source closes a welcomed connection that stays silent
 * past its idle timeout (its session then waits out the TTL), the destination keeps a quiet migration
 * alive with keepalive ACKs, and gives up on a source that stops answering its requests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration, SAME_FAILURE_LIMIT } from "../../src/transport/destination.js";
import { ErrorCode, FrameType } from "../../src/transport/protocol.js";
import { emptyFrame, errorOf, fakeSource, helloFrame, rawClient } from "./raw.js";
import { image } from "./helpers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a client that sends HELLO and goes silent is closed at the idle timeout with ERROR 12, and its session slot is freed after the TTL", { timeout: 20_000 }, async () => {
  const errors: Error[] = [];
  const srv = await startPageServer({ image: image(64), idleTimeoutMs: 300, sessionTtlMs: 100, maxSessions: 1, onError: (e) => errors.push(e) });
  const c = rawClient(srv.port);
  try {
    c.sock.write(helloFrame(1));
    await c.inbox.waitFor((f) => f.type === FrameType.Welcome);
    const e = errorOf(await c.inbox.waitFor((f) => f.type === FrameType.Error, 5000, "ERROR frame (idle timeout)"));
    assert.equal(e.code, ErrorCode.Idle);
    assert.match(e.message, /^no frame from the destination for \d+ ms in state bitmap \(idle timeout 300 ms\)$/);
    await c.closed;
    assert.match(errors[0].message, /^idle timeout: /);
    for (let i = 0; i < 100 && srv.stats().activeSessions > 0; i++) await sleep(20);
    assert.equal(srv.stats().activeSessions, 0, "the session ended at its TTL: the slot is free");
    // the one slot is free again for a new migration
    const d = rawClient(srv.port);
    d.sock.write(helloFrame(2));
    assert.equal((await d.inbox.waitFor(() => true)).type, FrameType.Welcome);
    d.sock.destroy();
  } finally { c.sock.destroy(); await srv.close(); }
});

test("silence while the server does not read the connection (its strategy is being built) is not idleness", { timeout: 20_000 }, async () => {
  const srv = await startPageServer({ image: image(64), idleTimeoutMs: 150, strategy: () => sleep(500).then(() => ({ name: "slow", onFault: () => [] })) });
  const c = rawClient(srv.port);
  try {
    c.sock.write(helloFrame(1));
    await c.inbox.waitFor((f) => f.type === FrameType.Welcome);
    c.sock.write(emptyFrame(FrameType.Start)); // then silent for good
    const e = errorOf(await c.inbox.waitFor((f) => f.type === FrameType.Error, 5000, "ERROR frame"));
    assert.equal(e.code, ErrorCode.Idle);
    assert.match(e.message, /in state serving/);
  } finally { c.sock.destroy(); await srv.close(); }
});

test("a live migration that sends nothing for longer than the source's idle timeout is kept alive by keepalive ACKs", { timeout: 20_000 }, async () => {
  const PAGES = 64;
  const errors: Error[] = [];
  const srv = await startPageServer({ image: image(PAGES, 3), push: "linear", idleTimeoutMs: 500, onError: (e) => errors.push(e) });
  try {
    // every page is pushed within milliseconds; the guest then runs ~1 s without a fault
    const n = 200, pages = new Uint32Array(n), gaps = new Uint32Array(n);
    for (let i = 0; i < n; i++) { pages[i] = i % PAGES; gaps[i] = 5000; }
    const r = await runMigration({ port: srv.port, trace: { pages, gaps }, switchAt: 0, ips: 1e6, keepAliveMs: 60, timeoutMs: 15_000 });
    assert.equal(r.verified, true);
    assert.equal(r.reconnects, 0, "the source never closed the connection");
    assert.deepEqual(errors.map((e) => e.message), []);
    assert.equal(srv.stats().sessionsCompleted, 1);
  } finally { await srv.close(); }
});

test("a destination with keepalive off that the source closes for idleness reconnects and completes (ERROR 12 is not fatal)", { timeout: 20_000 }, async () => {
  const PAGES = 64;
  const srv = await startPageServer({ image: image(PAGES, 3), push: "linear", idleTimeoutMs: 200 });
  try {
    const n = 200, pages = new Uint32Array(n), gaps = new Uint32Array(n);
    for (let i = 0; i < n; i++) { pages[i] = i % PAGES; gaps[i] = 5000; }
    const r = await runMigration({ port: srv.port, trace: { pages, gaps }, switchAt: 0, ips: 1e6, keepAliveMs: 0, timeoutMs: 15_000 });
    assert.equal(r.verified, true);
    assert.ok(r.reconnects >= 1, `reconnects ${r.reconnects}`);
    assert.equal(r.doneDelivered, true);
    assert.equal(srv.stats().sessionsCompleted, 1);
  } finally { await srv.close(); }
});

test("a source that welcomes and then never answers a request: the destination drops it at its idle timeout, and gives up after repeated ones naming the page", { timeout: 20_000 }, async () => {
  const src = await fakeSource(image(16, 4));
  try {
    const pages = Uint32Array.from({ length: 10 }, (_, i) => i);
    const err = await runMigration({ port: src.port, trace: { pages }, switchAt: 0, ips: 0, idleTimeoutMs: 100, keepAliveMs: 0, timeoutMs: 15_000 }).then(
      () => assert.fail("the migration should fail"), (e: Error) => e);
    assert.match(err.message, new RegExp(`^idle timeout: no frame from the source for \\d+ ms while waiting for page 0 \\(idle timeout 100 ms\\); ${SAME_FAILURE_LIMIT} connections in a row failed this way`));
    assert.equal(src.conns.length, SAME_FAILURE_LIMIT, "one connection per idle timeout");
    // each dropped connection named the reason to the source (docs/protocol.md, "Errors")
    const named = src.conns.filter((c) => c.inbox.frames.some((f) => f.type === FrameType.Error && errorOf(f).code === ErrorCode.Idle));
    assert.ok(named.length >= SAME_FAILURE_LIMIT - 1, `${named.length} connections got an ERROR frame`);
  } finally { await src.close(); }
});

test("bad idle and keepalive options are errors naming the value", async () => {
  await assert.rejects(startPageServer({ image: image(4), idleTimeoutMs: -1 }), /idleTimeoutMs must be a number of ms >= 0 .*got -1/);
  await assert.rejects(runMigration({ port: 1, trace: { pages: new Uint32Array(1) }, keepAliveMs: Number.NaN }), /keepAliveMs must be a number of ms >= 0 .*got NaN/);
  await assert.rejects(runMigration({ port: 1, trace: { pages: new Uint32Array(1) }, idleTimeoutMs: "5" as unknown as number }), /idleTimeoutMs .*got 5/);
});
