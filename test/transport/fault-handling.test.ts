/**
 * How the source handles FAULT frames: the feedback limit (4,096 entries, docs/protocol.md), requests
 * for pages already in flight (in-flight waits: feedback only, no onFault, as in the simulator), and
 * the bound on FAULTs waiting for a strategy in a worker thread.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_PENDING_ANSWERS, startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import type { FaultAnswer, RemoteStrategy } from "../../src/transport/remote-strategy.js";
import { ErrorCode, FrameType, MAX_FEEDBACK, PageKind } from "../../src/transport/protocol.js";
import { emptyFrame, errorOf, fakeSource, faultFrame, helloFrame, rawClient, type Frame } from "./raw.js";
import { image, nextN } from "./helpers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const faultDone = (page: number) => (f: Frame) => f.type === FrameType.FaultDone && f.body.readUInt32LE(0) === page;
/** Pages a FAULT_DONE says were predicted and sent. */
const predicted = (f: Frame) => f.body.readUInt16LE(4);

test("a FAULT announcing more than 4,096 feedback entries is a protocol error naming the count", async () => {
  const srv = await startPageServer({ image: image(64), push: "none" });
  const c = rawClient(srv.port);
  try {
    const fb = Array.from({ length: MAX_FEEDBACK + 1 }, (): [number, number] => [1, 0]);
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start), faultFrame(0, fb)]));
    const e = errorOf(await c.inbox.waitFor((f) => f.type === FrameType.Error, 5000, "ERROR frame"));
    assert.equal(e.code, ErrorCode.Malformed);
    assert.match(e.message, /FAULT carries 4097 feedback entries, at most 4096/);
    assert.equal(srv.stats().faultPages, 0, "the fault was not served");
    // exactly at the limit is fine
    const d = rawClient(srv.port);
    d.sock.write(Buffer.concat([helloFrame(2), emptyFrame(FrameType.Start), faultFrame(0, fb.slice(1))]));
    await d.inbox.waitFor(faultDone(0), 5000, "FAULT_DONE");
    assert.equal(d.inbox.count(FrameType.Error), 0);
    d.sock.destroy();
  } finally { c.sock.destroy(); await srv.close(); }
});

test("the destination never puts more than 4,096 feedback entries on a FAULT: the rest rides on the next one", { timeout: 30_000 }, async () => {
  // 5000 pages pushed before the guest starts (its first access is 1 s of guest time in), all touched,
  // then two faults: the first carries 4096 entries, the second the other 904
  const N = 5000, img = image(N + 2, 9);
  const counts: number[] = [];
  const src = await fakeSource(img, {
    onWelcome: (c) => { for (let p = 0; p < N; p++) src.page(c, p, PageKind.Push); },
    onFrame: (c, f) => {
      if (f.type === FrameType.Fault) {
        counts.push(f.body.readUInt16LE(2));
        const p = f.body.readUInt32LE(4);
        if (p >= N) src.page(c, p, PageKind.Fault);
      } else if (f.type === FrameType.Done) c.sock.end();
    },
  });
  try {
    const pages = new Uint32Array(N + 2), gaps = new Uint32Array(N + 2);
    for (let i = 0; i < N + 2; i++) pages[i] = i;
    gaps[0] = 1_000_000; // 1 s at 1e6 instructions per second
    const r = await runMigration({ port: src.port, trace: { pages, gaps }, switchAt: 0, ips: 1e6, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.ok(counts.every((n) => n <= MAX_FEEDBACK), `feedback per FAULT: ${counts.join(", ")}`);
    assert.equal(counts.reduce((a, b) => a + b, 0), N, "every touched prefetched page was reported, once");
    assert.ok(counts.includes(MAX_FEEDBACK), `the limit was reached and the rest split off: ${counts.join(", ")}`);
  } finally { await src.close(); }
});

test("a FAULT for a page already in flight (sent as predicted) delivers its feedback but does not call onFault (the simulator's rule)", async () => {
  const strat = nextN(64, 4);
  const srv = await startPageServer({ image: image(64), push: "none", strategy: () => strat, depth: 4 });
  const c = rawClient(srv.port);
  try {
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start), faultFrame(10)]));
    assert.equal(predicted(await c.inbox.waitFor(faultDone(10))), 4, "pages 11..14 predicted");
    // page 12 is on the wire as a prediction; the destination asks for it anyway, with feedback on 11
    c.sock.write(faultFrame(12, [[11, 0]]));
    assert.equal(predicted(await c.inbox.waitFor(faultDone(12))), 0, "nothing predicted for an in-flight wait");
    assert.equal(strat.faults, 1, "onFault was called for the network fault only");
    assert.equal(strat.touches, 1, "the feedback piggybacked on the in-flight request reached the strategy");
    const st = srv.stats();
    assert.equal(st.pagesSent, 5);
    assert.equal(st.faultPages, 1);
    assert.equal(c.inbox.count(FrameType.Page), 5, "page 12 was not sent twice");
  } finally { c.sock.destroy(); await srv.close(); }
});

/** A strategy "in a worker" whose answers the test releases: records each call. */
function heldRemote(): RemoteStrategy & { calls: { page: number; inflight: boolean; touches: number }[]; release: () => void } {
  const held: (() => void)[] = [];
  let holding = true;
  const r = {
    remote: true as const, name: "held", trainMs: 0,
    calls: [] as { page: number; inflight: boolean; touches: number }[],
    fault(page: number, _stream: number, touches: Uint32Array, inflight = false): Promise<FaultAnswer> {
      r.calls.push({ page, inflight, touches: touches.length / 2 });
      const answer = { pages: Uint32Array.of(page + 1, page + 2), ns: 1000 };
      if (!holding) return Promise.resolve(answer);
      return new Promise((res) => held.push(() => res(answer)));
    },
    present(): void {},
    dispose(): void {},
    release(): void { holding = false; for (const h of held.splice(0)) h(); },
  };
  return r;
}

test("with a strategy in a worker, an in-flight request is sent as feedback only and nothing is predicted for it", async () => {
  const remote = heldRemote();
  remote.release();
  const srv = await startPageServer({ image: image(64), push: "none", strategy: () => remote });
  const c = rawClient(srv.port);
  try {
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start), faultFrame(10)]));
    assert.equal(predicted(await c.inbox.waitFor(faultDone(10))), 2);
    c.sock.write(faultFrame(11, [[11, 0]]));
    assert.equal(predicted(await c.inbox.waitFor(faultDone(11))), 0);
    assert.deepEqual(remote.calls, [{ page: 10, inflight: false, touches: 0 }, { page: 11, inflight: true, touches: 1 }]);
    assert.equal(srv.stats().pagesSent, 3);
  } finally { c.sock.destroy(); await srv.close(); }
});

test(`with a strategy in a worker, at most ${MAX_PENDING_ANSWERS} FAULTs of a connection wait for answers; the rest are not read until they come`, { timeout: 30_000 }, async () => {
  const remote = heldRemote();
  const srv = await startPageServer({ image: image(64), push: "none", strategy: () => remote });
  const c = rawClient(srv.port);
  const N = 500;
  try {
    // page 5 once (sent), then again and again: in flight, nothing written, so no link backpressure
    const faults = Buffer.concat(Array.from({ length: N }, () => faultFrame(5)));
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start), faults]));
    for (let i = 0; i < 200 && remote.calls.length < MAX_PENDING_ANSWERS; i++) await sleep(10);
    await sleep(300); // let a server that does not stop reading go on (it would reach all N at once)
    assert.equal(remote.calls.length, MAX_PENDING_ANSWERS, "requests outstanding at the worker");
    assert.equal(srv.stats().readPauses, 0, "not the link's backpressure: nothing waits to be written");
    remote.release();
    await c.inbox.waitFor(() => c.inbox.count(FrameType.FaultDone) === N, 20_000, `${N} FAULT_DONE frames`);
    assert.equal(remote.calls.length, N);
    assert.equal(srv.stats().pagesSent, 3, "page 5 once, and the two predicted for its first request");
  } finally { c.sock.destroy(); await srv.close(); }
});


test("the faulted page is written before the fault's feedback is learned (a slow onTouch delays no page)", async () => {
  const BUSY_MS = 60;
  let touchedAtNs = 0n;
  const strat = {
    name: "slow-feedback",
    onTouch(): void { touchedAtNs = process.hrtime.bigint(); const end = Date.now() + BUSY_MS; while (Date.now() < end) { /* a model update that takes long */ } },
    onFault: (): number[] => [],
  };
  const srv = await startPageServer({ image: image(64), push: "none", strategy: () => strat });
  const c = rawClient(srv.port);
  try {
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start), faultFrame(7, [[3, 0]])]));
    await c.inbox.waitFor(faultDone(7));
    assert.ok(touchedAtNs > 0n, "the feedback reached the strategy");
    const [m] = srv.sessionMetrics();
    // service = FAULT read -> its page written: not the 60 ms the feedback took
    assert.ok(m.serviceUs.max < (BUSY_MS * 1000) / 2, `service ${m.serviceUs.max} us`);
  } finally { c.sock.destroy(); await srv.close(); }
});

test("the faulted page is written before a steered push re-centres on the fault (a slow re-centring delays no page)", async () => {
  const BUSY_MS = 60;
  let recentred = 0;
  const strat = {
    name: "slow-steering",
    onFault: (): number[] => [],
    steerPush: (base: { next(s: Uint8Array): number; onFault(p: number): void }) => ({
      next: (s: Uint8Array) => base.next(s),
      onFault(p: number): void { recentred++; const end = Date.now() + BUSY_MS; while (Date.now() < end) { /* judging the fault */ } base.onFault(p); },
    }),
  };
  const srv = await startPageServer({ image: image(64), push: "linear", strategy: () => strat });
  const c = rawClient(srv.port);
  try {
    c.sock.write(Buffer.concat([helloFrame(1), emptyFrame(FrameType.Start)]));
    await c.inbox.waitFor((f) => f.type === FrameType.Page);
    // a page the push has not sent yet (it sends in address order)
    c.sock.write(faultFrame(63));
    await c.inbox.waitFor(faultDone(63));
    assert.equal(recentred, 1);
    const [m] = srv.sessionMetrics();
    assert.ok(m.serviceUs.max < (BUSY_MS * 1000) / 2, `service ${m.serviceUs.max} us`);
  } finally { c.sock.destroy(); await srv.close(); }
});
