import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, nextN, syntheticTrace } from "./helpers.js";
import { shareHistory, startRemoteStrategy } from "../../src/transport/remote-strategy.js";
import type { PushOrder } from "../../src/sim/push.js";

const PAGES = 2048;

test("server-side figures: HELLO->WELCOME, per-fault service and a timeline that matches the destination's requests", { timeout: 30_000 }, async () => {
  // the strategy takes 60 ms to be ready (as a worker's training would)
  const srv = await startPageServer({
    image: image(PAGES), push: "linear", timeline: true,
    strategy: ({ pageCount }) => new Promise((r) => setTimeout(() => r(nextN(pageCount, 4)), 60)),
  });
  try {
    const trace = syntheticTrace(6000, PAGES, 11);
    const rs = await Promise.all([1, 2].map(() => runMigration({ port: srv.port, trace, ips: 2e8, timeoutMs: 20_000, timeline: true })));
    const ms = srv.sessionMetrics();
    assert.equal(ms.length, 2);
    for (const r of rs) {
      assert.equal(r.verified, true);
      const m = ms.find((x) => x.id === r.sessionId);
      assert.ok(m, "the source names the session as the destination does");
      assert.ok(m.helloToWelcomeMs >= 50, `HELLO->WELCOME ${m.helloToWelcomeMs} ms`);
      assert.equal(m.faults, r.requests);
      assert.ok(m.faultsWritten <= m.faults && m.faultsWritten > 0);
      assert.ok(m.serviceUs.max >= m.serviceUs.p50 && m.serviceUs.p50 > 0);
      const t = r.timeline!, st = m.timeline!;
      assert.deepEqual(st.page, t.page, "the k-th FAULT read is the k-th request sent");
      for (let k = 0; k < t.page.length; k++) {
        assert.ok(st.read[k] >= t.sentNs[k], "read after sent (one monotonic clock)");
        if (st.written[k] >= 0) assert.ok(st.written[k] >= st.read[k] && t.arrivedNs[k] >= st.written[k]);
      }
      assert.equal(m.pushedPages + m.faultsWritten <= PAGES, true);
    }
    const loop = srv.loopMetrics();
    assert.ok(loop.wallMs > 0 && loop.utilization >= 0 && loop.utilization <= 1);
  } finally { await srv.close(); }
});

test("waitForStrategy false: welcomed at once, faults served on demand until the strategy is ready, then predicted; verified, no duplicates", { timeout: 30_000 }, async () => {
  const made: ReturnType<typeof nextN>[] = [];
  const srv = await startPageServer({
    image: image(PAGES), push: "none", waitForStrategy: false,
    strategy: ({ pageCount }) => new Promise((r) => setTimeout(() => { const s = nextN(pageCount, 4); made.push(s); r(s); }, 150)),
  });
  try {
    // ~20000 accesses of ~150 instructions at 1e7/s: ~300 ms of guest time, the strategy arrives half-way
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(20000, PAGES, 5), ips: 1e7, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    assert.equal(r.duplicatePages, 0);
    const [m] = srv.sessionMetrics();
    assert.ok(m.helloToWelcomeMs < 100, `HELLO->WELCOME ${m.helloToWelcomeMs} ms`);
    assert.ok(m.faultsBeforeStrategy > 0 && m.faultsBeforeStrategy < m.faults, `${m.faultsBeforeStrategy} of ${m.faults} faults before the strategy`);
    assert.ok(r.received.predicted > 0, "predictions once the strategy is ready");
    assert.equal(made[0].faults, m.faults - m.faultsBeforeStrategy);
  } finally { await srv.close(); }
});

test("a strategy that steers the push: the source takes every push page from its order (in process), and a ppm in a worker gets its history-replaying order here", { timeout: 30_000 }, async () => {
  let asked = 0, faults = 0;
  const srv = await startPageServer({
    image: image(PAGES), push: "linear",
    strategy: ({ pageCount }) => Object.assign(nextN(pageCount, 4), {
      steerPush: (base: PushOrder): PushOrder => ({
        next(state) { const p = base.next(state); if (p >= 0) asked++; return p; },
        onFault(p) { faults++; base.onFault(p); },
      }),
    }),
  });
  try {
    const r = await runMigration({ port: srv.port, trace: syntheticTrace(6000, PAGES, 3), ips: 2e8, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    const [m] = srv.sessionMetrics();
    assert.ok(m.pushedPages > 0, "pages were pushed");
    assert.equal(asked, m.pushedPages, "every pushed page came from the steered order");
    assert.equal(faults, m.faultsWritten, "the order hears of every fault whose page it had not sent");
  } finally { await srv.close(); }
  // a steering strategy that arrives after the migration began (waitForStrategy false) takes over the push
  let late = 0;
  const srv2 = await startPageServer({
    image: image(PAGES), push: "linear", waitForStrategy: false, link: { rateGbps: 0.5 }, // the push takes ~140 ms
    strategy: ({ pageCount }) => new Promise((r) => setTimeout(() => r(Object.assign(nextN(pageCount, 4), {
      steerPush: (base: PushOrder): PushOrder => ({ next(state) { const p = base.next(state); if (p >= 0) late++; return p; }, onFault: (p) => base.onFault(p) }),
    })), 30)),
  });
  try {
    const r = await runMigration({ port: srv2.port, trace: syntheticTrace(20000, PAGES, 5), ips: 1e7, timeoutMs: 20_000 });
    assert.equal(r.verified, true);
    const [m] = srv2.sessionMetrics();
    assert.ok(late > 0 && late < m.pushedPages, `${late} of ${m.pushedPages} pushed pages from the late strategy's order`);
  } finally { await srv2.close(); }
  const history = shareHistory({ pages: Uint32Array.from({ length: 4000 }, (_, i) => (i * 7) % 1024) });
  const spec = { kind: "registry", name: "ppm", pageCount: 1024, depth: 8, streams: 1 } as const;
  const withHistory = await startRemoteStrategy({ ...spec, push: "qemu" }, history);
  const noPush = await startRemoteStrategy({ ...spec, push: "none" }, history);
  const noHistory = await startRemoteStrategy({ ...spec, push: "qemu" });
  try {
    assert.equal(typeof withHistory.steerPush, "function");
    assert.equal(noPush.steerPush, undefined);
    assert.equal(noHistory.steerPush, undefined);
  } finally { withHistory.dispose(); noPush.dispose(); noHistory.dispose(); }
});
