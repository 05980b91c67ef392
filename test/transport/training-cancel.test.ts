/**
 * Closing the page server (or a session ending) cancels the strategy training of its sessions: those
 * queued for a training slot leave the queue, the one training has its worker terminated.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer, type StrategyFactoryContext } from "../../src/transport/source.js";
import { shareHistory, startRemoteStrategy, type RemoteStrategy } from "../../src/transport/remote-strategy.js";
import { Rng } from "../../src/util/random.js";
import { helloFrame, rawClient } from "./raw.js";
import { image } from "./helpers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("closing the server cancels the training of the sessions still waiting for it (and the one training)", { timeout: 60_000 }, async () => {
  const PAGES = 4096;
  const rng = new Rng(5);
  const pages = new Uint32Array(1_000_000);
  for (let i = 0; i < pages.length; i++) pages[i] = rng.below(PAGES);
  const history = shareHistory({ pages });
  const builds: Promise<RemoteStrategy>[] = [];
  const signals: AbortSignal[] = [];
  const srv = await startPageServer({
    image: image(PAGES, 3),
    strategy: (ctx: StrategyFactoryContext) => {
      signals.push(ctx.signal);
      const p = startRemoteStrategy({ kind: "engine", options: { pageCount: ctx.pageCount, maxContexts: 1 << 18 } }, history, { signal: ctx.signal });
      builds.push(p);
      return p;
    },
  });
  const clients = [1, 2, 3].map((id) => { const c = rawClient(srv.port); c.sock.write(helloFrame(id)); return c; });
  for (let i = 0; i < 250 && builds.length < 3; i++) await sleep(20);
  assert.equal(builds.length, 3, "three sessions asked for a strategy (one trains, two wait for the slot)");
  await srv.close();
  assert.ok(signals.every((s) => s.aborted), "every session's signal was aborted by close()");
  const settled = await Promise.allSettled(builds);
  for (const s of settled) if (s.status === "fulfilled") s.value.dispose();
  assert.deepEqual(settled.map((s) => s.status), ["rejected", "rejected", "rejected"], "no strategy was trained after the server closed");
  for (const s of settled) assert.match(String((s as PromiseRejectedResult).reason), /session [0-9a-f]{8} ended before its strategy was ready/);
  for (const c of clients) c.sock.destroy();
  // the training slot is free again: a new build goes through
  const again = await startRemoteStrategy({ kind: "registry", name: "demand", pageCount: 64, depth: 8, streams: 1 });
  again.dispose();
});

test("startRemoteStrategy with an already aborted signal rejects with its reason and builds nothing", async () => {
  const ac = new AbortController();
  ac.abort(new Error("not wanted any more"));
  await assert.rejects(startRemoteStrategy({ kind: "registry", name: "demand", pageCount: 64, depth: 8, streams: 1 }, undefined, { signal: ac.signal }), /^Error: not wanted any more$/);
});
