/**
 * The page server's limits: sessions per server, bytes queued per connection (backpressure), and an
 * event loop that stays responsive while a migration's strategy is built and trained (worker thread).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { shareHistory, startRemoteStrategy, type RemoteStrategy } from "../../src/transport/remote-strategy.js";
import {
  ErrorCode, FrameReader, FrameType, HELLO_BODY, LEN_BYTES, PAGE_SIZE, PROTOCOL_VERSION, encodeEmpty, encodeFault, encodeHello,
} from "../../src/transport/protocol.js";
import { Rng } from "../../src/util/random.js";
import { image, syntheticTrace } from "./helpers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hello(sessionByte: number): Buffer {
  const b = Buffer.alloc(LEN_BYTES + 1 + HELLO_BODY);
  encodeHello(b, 0, { version: PROTOCOL_VERSION, flags: 0, pageSize: PAGE_SIZE, sessionId: Buffer.alloc(16, sessionByte), pageCount: 0, digest: Buffer.alloc(32) });
  return b;
}
function start(): Buffer { const b = Buffer.alloc(5); encodeEmpty(b, 0, FrameType.Start); return b; }
function fault(page: number): Buffer {
  const b = Buffer.alloc(32);
  return b.subarray(0, encodeFault(b, 0, page, 0, new Uint32Array(0), new Uint16Array(0), 0, 0));
}

/** A raw client: the frames it receives, by type. */
function client(port: number): { sock: Socket; first: Promise<{ type: number; code?: number; message?: string }>; frames: number[] } {
  const sock = connect({ port, host: "127.0.0.1" });
  const frames: number[] = [];
  let resolve: (f: { type: number; code?: number; message?: string }) => void = () => {};
  const first = new Promise<{ type: number; code?: number; message?: string }>((r) => { resolve = r; });
  const reader = new FrameReader((t, b, s, e) => {
    frames.push(t);
    resolve(t === FrameType.Error ? { type: t, code: b.readUInt16LE(s), message: b.toString("utf8", s + 2, e) } : { type: t });
  });
  sock.on("data", (c: Buffer) => reader.push(c));
  sock.on("error", () => {});
  return { sock, first, frames };
}

test("--max-sessions: a new session beyond the limit is refused with 'server busy'; resuming an existing one is not", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: image(256), maxSessions: 2 });
  const socks: Socket[] = [];
  try {
    for (const id of [1, 2]) {
      const c = client(srv.port); socks.push(c.sock);
      c.sock.write(hello(id));
      assert.equal((await c.first).type, FrameType.Welcome);
    }
    const third = client(srv.port); socks.push(third.sock);
    third.sock.write(hello(3));
    const f = await third.first;
    assert.equal(f.type, FrameType.Error);
    assert.equal(f.code, ErrorCode.Busy);
    assert.match(f.message!, /^the server already serves its limit of 2 migrations \(--max-sessions\)/, "the frame's text does not repeat the code's name");
    // a migration against the full server fails with that message
    await assert.rejects(runMigration({ port: srv.port, trace: syntheticTrace(100, 256), ips: 0, timeoutMs: 10_000 }), /server busy: .*limit of 2/);
    // the destination of session 1 comes back on a new connection: it is resumed, not refused
    const again = client(srv.port); socks.push(again.sock);
    again.sock.write(hello(1));
    assert.equal((await again.first).type, FrameType.Welcome);
    const st = srv.stats();
    assert.equal(st.sessionsRefused, 2);
    assert.equal(st.sessionsStarted, 2);
    assert.equal(st.resumes, 1);
  } finally { for (const s of socks) s.destroy(); await srv.close(); }
});

test("backpressure: a client that sends FAULTs and does not read is not read either; the queue stays bounded, then drains", { timeout: 30_000 }, async () => {
  const PAGES = 8192; // 32 MiB of answers: more than the kernel's socket buffers hold
  let serverSock: Socket | null = null;
  const srv = await startPageServer({ image: image(PAGES, 4), push: "none", onConnection: (s) => { serverSock = s; } });
  const c = client(srv.port);
  try {
    c.sock.pause(); // never read (until the end)
    c.sock.write(hello(7));
    c.sock.write(start());
    const faults = Buffer.concat(Array.from({ length: PAGES }, (_, p) => fault(p)));
    c.sock.write(faults);
    // wait until the server stops making progress
    let last = -1;
    for (let i = 0; i < 100; i++) {
      await sleep(100);
      const n = srv.stats().faultPages;
      if (n === last && srv.stats().readPauses > 0) break;
      last = n;
    }
    const st = srv.stats();
    const queued = serverSock!.writableLength;
    assert.ok(st.readPauses >= 1, "the server paused reading");
    assert.ok(st.faultPages < PAGES, `the server stopped answering (${st.faultPages} of ${PAGES} faults answered)`);
    assert.ok(queued <= 256 * 1024, `bytes queued for the client: ${queued}`);
    // the client reads again: every fault is answered, each page exactly once
    let pages = 0;
    c.sock.on("data", () => {});
    c.sock.resume();
    const t0 = Date.now();
    while (srv.stats().faultPages < PAGES && Date.now() - t0 < 20_000) await sleep(50);
    pages = srv.stats().faultPages;
    assert.equal(pages, PAGES);
    assert.equal(srv.stats().pagesSent, PAGES);
  } finally { c.sock.destroy(); await srv.close(); }
});

test("training a migration's model runs in a worker thread: the server's event loop stays responsive", { timeout: 60_000 }, async () => {
  const PAGES = 4096;
  // a history of 1.5M scattered accesses: hundreds of milliseconds of training
  const rng = new Rng(3);
  const pages = new Uint32Array(1_500_000);
  for (let i = 0; i < pages.length; i++) pages[i] = rng.below(PAGES);
  const history = shareHistory({ pages }); // as serve passes it: shared memory, not cloned into each worker's message
  let remote: RemoteStrategy | null = null;
  let maxGap = 0, ticks = 0;
  let probing = false;
  const srv = await startPageServer({
    image: image(PAGES, 5),
    strategy: async ({ pageCount }) => {
      // sample the event loop while the worker builds and trains the model
      probing = true;
      let prev = performance.now();
      const probe = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - prev); prev = now; ticks++; }, 1);
      try {
        remote = await startRemoteStrategy({ kind: "engine", options: { pageCount, maxContexts: 1 << 18 } }, history);
      } finally { clearInterval(probe); probing = false; }
      return remote;
    },
  });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(20000, PAGES, 8), ips: 0, timeoutMs: 50_000 });
    assert.equal(r.verified, true);
    assert.equal(r.duplicatePages, 0);
    assert.ok(!probing);
    const trainMs = remote!.trainMs;
    assert.ok(trainMs >= 150, `training took ${trainMs} ms (too short to tell)`);
    // On the event loop the training would be one stall as long as itself, with no turn of the loop in
    // it. (Bounds loose enough for a loaded 2-core machine, where other processes also preempt us.)
    assert.ok(ticks >= 20, `the event loop turned ${ticks} times while the model trained for ${trainMs.toFixed(0)} ms`);
    assert.ok(maxGap < trainMs / 2, `the event loop stalled ${maxGap.toFixed(1)} ms while the model trained for ${trainMs.toFixed(0)} ms`);
    assert.ok(r.predictorUs > 0, "the worker's strategy answered the faults");
  } finally { await srv.close(); }
});

test("a push window smaller than the destination's ACK interval does not stall the push (pages are acknowledged per chunk read)", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: image(1024, 6), pushWindow: 2 });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(3000, 1024, 9), ips: 0, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.pagesReceived, 1024);
    assert.ok(r.received.push > 0, "pages were pushed");
  } finally { await srv.close(); }
});

test("a strategy built in a worker tells the source the push order it steers (ppm: Hines' bubbling; demand: none)", async () => {
  const ppm = await startRemoteStrategy({ kind: "registry", name: "ppm", pageCount: 4096, depth: 8, streams: 1, push: "qemu" });
  const own = await startRemoteStrategy({ kind: "registry", name: "ppm", pageCount: 4096, depth: 8, streams: 1, push: "hines" });
  const demand = await startRemoteStrategy({ kind: "registry", name: "demand", pageCount: 4096, depth: 8, streams: 1, push: "qemu" });
  try {
    assert.equal(ppm.push, "hines");
    assert.equal(own.push, undefined, "already the order it wants");
    assert.equal(demand.push, "none");
  } finally { ppm.dispose(); own.dispose(); demand.dispose(); }
});
