import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration, type MigrationResult } from "../../src/transport/destination.js";
import {
  ErrorCode, FrameReader, FrameType, HELLO_BODY, LEN_BYTES, PAGE_SIZE, PROTOCOL_VERSION, encodeEmpty, encodeFault, encodeHello,
} from "../../src/transport/protocol.js";
import { Rng } from "../../src/util/random.js";
import { image, killAfter, nextN, syntheticTrace } from "./helpers.js";

const PAGES = 2048;

/** Wait (bounded) until the server has seen the destination's last frames. */
async function settle(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}
const IMG = image(PAGES);

function assertComplete(r: MigrationResult, pageCount = PAGES): void {
  assert.equal(r.verified, true, "image verifies");
  assert.equal(r.digest, r.expectedDigest);
  assert.equal(r.duplicatePages, 0, "no page arrives twice");
  assert.equal(r.pagesReceived, pageCount, "every page arrives exactly once");
  assert.equal(r.received.fault + r.received.predicted + r.received.push, pageCount);
}

test("demand paging and next-N over loopback: verified, exactly once, feedback reaches the strategy", { timeout: 30_000 }, async () => {
  const strategies: ReturnType<typeof nextN>[] = [];
  const srv = await startPageServer({ image: IMG, strategy: ({ pageCount }) => { const s = nextN(pageCount, 8); strategies.push(s); return s; } });
  const demand = await startPageServer({ image: IMG });
  try {
    const trace = syntheticTrace(20000, PAGES);
    const a = await runMigration({ port: demand.port, trace, ips: 2e8, timeoutMs: 20_000 });
    assertComplete(a);
    assert.equal(a.received.predicted, 0);
    const b = await runMigration({ port: srv.port, trace, ips: 2e8, timeoutMs: 20_000 });
    assertComplete(b);
    assert.equal(srv.stats().pagesSent, PAGES);
    // faults and in-flight waits are counted per page, as in the simulator: one request each
    assert.ok(b.faults >= 1 && b.faults + b.inflightWaits === b.requests && b.faults === b.received.fault);
    assert.equal(strategies[0].faults, b.requests);
    assert.ok(strategies[0].touches > 0, "touched prefetched pages are fed back");
    assert.ok(b.predictorUs > 0);
    assert.ok(b.completionMs > 0 && b.migrationMs > 0);
    await settle(() => srv.stats().sessionsCompleted === 1);
    assert.equal(srv.stats().sessionsCompleted, 1);
    assert.equal(srv.stats().activeSessions, 0, "the session ends with DONE");
  } finally { await srv.close(); await demand.close(); }
});

test("push none: pages come only on demand and prediction during the replay, the rest afterwards; several vCPUs", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: IMG, push: "none", strategy: ({ pageCount }) => nextN(pageCount, 4) });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(8000, PAGES, 5, 4), ips: 0, timeoutMs: 20_000 });
    assertComplete(r);
    assert.ok(r.received.fault > 10, `faults ${r.received.fault}`);
    assert.ok(r.received.predicted > 10);
    assert.equal(r.faults + r.inflightWaits, r.requests);
    assert.ok(r.stall.count >= r.requests, "several vCPUs may wait for one request");
  } finally { await srv.close(); }
});

test("link failures at random points: the destination reconnects, the source resends only what is missing", { timeout: 60_000 }, async () => {
  const rng = new Rng(42);
  const srv = await startPageServer({ image: IMG, strategy: ({ pageCount }) => nextN(pageCount, 8) });
  try {
    for (let run = 0; run < 4; run++) {
      const kills = 3;
      let drops = 0;
      const r = await runMigration({
        port: srv.port, trace: syntheticTrace(10000, PAGES, 10 + run), ips: 1e8, timeoutMs: 30_000,
        // kill the first `kills` connections after a random number of bytes (usually mid-frame)
        onSocket: (s, attempt) => { if (attempt < kills) { drops++; killAfter(s, 1 + rng.below(PAGES * PAGE_SIZE / 4)); } },
      });
      assertComplete(r);
      assert.ok(r.reconnects >= kills, `reconnects ${r.reconnects} ${JSON.stringify(r)}`);
      assert.equal(drops, kills);
    }
    // the source side drops the link too
    let n = 0;
    const srv2 = await startPageServer({
      image: IMG, strategy: ({ pageCount }) => nextN(pageCount, 8),
      // while pages stream: after the destination's 3rd to 6th chunk (HELLO, then acks and faults).
      // Counted in chunks, not milliseconds: a timer raced the migration's end on an idle machine.
      onConnection: (s) => {
        if (n++ >= 2) return;
        const at = 3 + rng.below(4);
        let chunks = 0;
        s.on("data", () => { if (++chunks === at) setImmediate(() => s.destroy()); });
      },
    });
    try {
      const r = await runMigration({ port: srv2.port, trace: syntheticTrace(10000, PAGES, 99), ips: 1e8, timeoutMs: 30_000 });
      assertComplete(r);
      assert.ok(r.reconnects >= 2, `reconnects ${r.reconnects}`);
      // Both cuts come after the server read the HELLO, so the reconnections resume the session.
      assert.ok(srv2.stats().resumes >= 1, `resumes ${srv2.stats().resumes}`);
      assert.equal(srv2.stats().sessionsStarted, 1, "the reconnection resumes the same session");
    } finally { await srv2.close(); }
  } finally { await srv.close(); }
});

/** Open a raw connection, send bytes, collect the ERROR frame the server answers with. */
function rawExchange(port: number, bytes: Buffer, endAfter = false): Promise<{ code: number; message: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ port, host: "127.0.0.1" });
    let err: { code: number; message: string } | null = null;
    const r = new FrameReader((t, b, st, e) => {
      if (t === FrameType.Error) err = { code: b.readUInt16LE(st), message: b.toString("utf8", st + 2, e) };
    });
    s.on("connect", () => { if (endAfter) s.end(bytes); else s.write(bytes); });
    s.on("data", (c: Buffer) => r.push(c));
    s.on("error", () => {});
    s.on("close", () => (err ? resolve({ ...err, closed: true }) : reject(new Error("closed without an ERROR frame"))));
    setTimeout(() => { s.destroy(); reject(new Error("no answer")); }, 5000).unref();
  });
}

function hello(over: Partial<{ version: number; pageSize: number; pageCount: number; digest: Buffer; magic: number }> = {}): Buffer {
  const b = Buffer.alloc(LEN_BYTES + 1 + HELLO_BODY);
  encodeHello(b, 0, {
    version: over.version ?? PROTOCOL_VERSION, flags: 0, pageSize: over.pageSize ?? PAGE_SIZE, sessionId: Buffer.alloc(16, 9),
    pageCount: over.pageCount ?? 0, digest: over.digest ?? Buffer.alloc(32),
  });
  if (over.magic !== undefined) b.writeUInt32LE(over.magic, 5);
  return b;
}

function startFrame(): Buffer { const b = Buffer.alloc(5); encodeEmpty(b, 0, FrameType.Start); return b; }

function fault(page: number, feedback: number[] = [], lie = 0): Buffer {
  const b = Buffer.alloc(64 + feedback.length * 6);
  const o = encodeFault(b, 0, page, 0, Uint32Array.from(feedback), new Uint16Array(feedback.length), 0, feedback.length);
  if (lie) b.writeUInt16LE(feedback.length + lie, 7);
  return b.subarray(0, o);
}

test("bad frames close that connection with a clear error; the server keeps serving others", { timeout: 60_000 }, async () => {
  const errors: Error[] = [];
  const srv = await startPageServer({ image: IMG, strategy: ({ pageCount }) => nextN(pageCount, 4), onError: (e) => errors.push(e) });
  try {
    // a healthy migration runs while the bad clients come and go
    const good = runMigration({ port: srv.port, trace: syntheticTrace(20000, PAGES, 7), ips: 5e7, timeoutMs: 30_000 });
    const oversized = Buffer.alloc(16); oversized.writeUInt32LE(1 << 30, 0);
    const cases: [string, Buffer, number, RegExp, boolean?][] = [
      ["wrong version", hello({ version: 99 }), ErrorCode.Version, /version 99/],
      ["wrong digest", hello({ digest: Buffer.alloc(32, 1) }), ErrorCode.Digest, /expects image/],
      ["wrong page count", hello({ pageCount: 7 }), ErrorCode.Digest, /7 pages/],
      ["wrong page size", hello({ pageSize: 8192 }), ErrorCode.PageSize, /8192/],
      ["bad magic", hello({ magic: 0xdeadbeef }), ErrorCode.Malformed, /magic/],
      ["oversized", oversized, ErrorCode.Oversized, /exceeds/],
      ["unknown type", Buffer.from([1, 0, 0, 0, 77]), ErrorCode.Malformed, /unknown frame type 77/],
      ["fault before hello", fault(1), ErrorCode.Unexpected, /FAULT in state hello/],
      ["out-of-range fault", Buffer.concat([hello(), startFrame(), fault(PAGES)]), ErrorCode.OutOfRange, /page 2048/],
      ["out-of-range feedback", Buffer.concat([hello(), startFrame(), fault(1, [1 << 30])]), ErrorCode.OutOfRange, /feedback/],
      ["lying feedback count", Buffer.concat([hello(), startFrame(), fault(1, [2, 3], 5)]), ErrorCode.Truncated, /announces 7/],
      ["short hello", Buffer.from([10, 0, 0, 0, FrameType.Hello, 1, 2, 3, 4, 5, 6, 7, 8, 9]), ErrorCode.Malformed, /HELLO body/],
      ["truncated stream", hello().subarray(0, 30), ErrorCode.Truncated, /stream ended/, true],
    ];
    for (const [name, bytes, code, re, end] of cases) {
      const r = await rawExchange(srv.port, bytes, end);
      assert.equal(r.code, code, `${name}: code ${r.code} ${r.message}`);
      assert.match(r.message, re, name);
    }
    assert.equal(errors.length, cases.length);
    assertComplete(await good);
    assert.equal(srv.stats().protocolErrors, cases.length);
  } finally { await srv.close(); }
});

test("a destination refuses a source whose image changed across a reconnection", { timeout: 30_000 }, async () => {
  const a = await startPageServer({ image: IMG });
  const other = Buffer.from(IMG); other[5] ^= 1;
  const b = await startPageServer({ image: other });
  try {
    // connect to a, kill, and point the reconnection at b (same port trick: close a, b listens elsewhere)
    let port = a.port;
    const p = runMigration({
      get port() { return port; }, trace: syntheticTrace(5000, PAGES), ips: 1e7, timeoutMs: 20_000,
      onSocket: (s, attempt) => { if (attempt === 0) { port = b.port; killAfter(s, 5000); } },
    });
    await assert.rejects(p, /image changed|digest/);
  } finally { await a.close(); await b.close(); }
});

test("load: one server, 8 concurrent migrations, each with its own strategy, all verified", { timeout: 60_000 }, async () => {
  let made = 0;
  const srv = await startPageServer({ image: IMG, strategy: ({ pageCount }) => { made++; return nextN(pageCount, 8); } });
  try {
    const runs = Array.from({ length: 8 }, (_, i) => runMigration({ port: srv.port, trace: syntheticTrace(10000, PAGES, 100 + i), ips: 1e8, timeoutMs: 50_000 }));
    const rs = await Promise.all(runs);
    for (const r of rs) assertComplete(r);
    assert.equal(made, 8);
    await settle(() => srv.stats().sessionsCompleted === 8);
    const st = srv.stats();
    assert.equal(st.sessionsCompleted, 8);
    assert.equal(st.pagesSent, 8 * PAGES);
    assert.equal(st.protocolErrors, 0);
  } finally { await srv.close(); }
});

test("a connection that never says HELLO is closed", { timeout: 10_000 }, async () => {
  const srv = await startPageServer({ image: IMG, helloTimeoutMs: 100 });
  try {
    const r = await rawExchange(srv.port, Buffer.alloc(0));
    assert.equal(r.code, ErrorCode.Unexpected);
    assert.match(r.message, /no HELLO within 100 ms/);
  } finally { await srv.close(); }
});

test("a corrupted page fails its checksum: the destination drops the link, reconnects and completes verified", { timeout: 30_000 }, async () => {
  let conns = 0;
  const srv = await startPageServer({
    image: IMG, strategy: ({ pageCount }) => nextN(pageCount, 8),
    // on the first connection, flip one byte of the 50th page's data on its way out (writes are whole frames)
    onConnection: (sock) => {
      if (conns++ > 0) return;
      let pagesOut = 0;
      const write = sock.write.bind(sock) as (c: Buffer, cb?: (e?: Error | null) => void) => boolean;
      (sock as unknown as { write: typeof write }).write = (c: Buffer, cb?: (e?: Error | null) => void) => {
        if (c.length >= 4113 && c[4] === FrameType.Page && ++pagesOut === 50) { c = Buffer.from(c); c[4 + 1 + 12 + 100] ^= 0x5a; }
        return write(c, cb);
      };
    },
  });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(10000, PAGES, 21), ips: 1e8, timeoutMs: 25_000 });
    assertComplete(r);
    assert.equal(r.reconnects, 1);
  } finally { await srv.close(); }
});
