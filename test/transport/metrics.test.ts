import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, nextN, syntheticTrace } from "./helpers.js";

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
