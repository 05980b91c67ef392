/**
 * The destination survives the source going away and coming back (killed and restarted, a link
 * outage) with its default reconnection policy: exponential backoff until a deadline.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration, type MigrationResult } from "../../src/transport/destination.js";
import { image, relay, syntheticTrace } from "./helpers.js";

const PAGES = 2048;
const IMG = image(PAGES, 12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function assertComplete(r: MigrationResult): void {
  assert.equal(r.verified, true, "image verifies");
  assert.equal(r.duplicatePages, 0, "no page arrives twice");
  assert.equal(r.pagesReceived, PAGES);
}

test("the source is killed mid-migration and restarted 2 s later on the same port: the migration resumes and verifies", { timeout: 30_000 }, async () => {
  const a = await startPageServer({ image: IMG, push: "none" });
  const port = a.port;
  let b: Awaited<ReturnType<typeof startPageServer>> | null = null;
  try {
    // ~1.2 s of guest time (20000 accesses of ~150 instructions at 2.5M/s), faulting all along
    const mig = runMigration({ port, trace: syntheticTrace(20000, PAGES, 31), ips: 2.5e6, timeoutMs: 25_000 });
    await sleep(300);
    assert.ok(a.stats().faultPages > 0, "the migration was under way");
    await a.close(); // every connection and session gone
    await sleep(2000);
    b = await startPageServer({ image: IMG, push: "none", port });
    const r = await mig;
    assertComplete(r);
    assert.equal(r.reconnects, 1, "one reconnection resumed the migration");
    assert.ok(r.reconnectAttempts >= 2, `${r.reconnectAttempts} attempts: those during the outage were refused`);
    assert.equal(b.stats().sessionsStarted, 1, "the restarted source took the migration over as a new session");
    // the restarted source sends only the missing pages (and those that were in flight when the first died)
    const sent = a.stats().pagesSent + b.stats().pagesSent;
    assert.ok(sent >= PAGES && sent <= PAGES + 64, `${sent} pages sent for ${PAGES}`);
  } finally { await a.close(); await b?.close(); }
});


test("a 1 s link outage mid-migration: connections cut, reconnections refused until the link is back; resumed and verified", { timeout: 30_000 }, async () => {
  const srv = await startPageServer({ image: IMG, push: "none" });
  const link = await relay(srv.port);
  try {
    const mig = runMigration({ port: link.port, trace: syntheticTrace(20000, PAGES, 32), ips: 2.5e6, timeoutMs: 25_000 });
    await sleep(300);
    const t0 = Date.now();
    await link.outage(1000);
    const r = await mig;
    assertComplete(r);
    assert.ok(Date.now() - t0 >= 1000);
    assert.ok(r.reconnects >= 1, `reconnects ${r.reconnects}`);
    assert.ok(r.reconnectAttempts >= 2 && r.reconnectAttempts > r.reconnects, `${r.reconnectAttempts} attempts for ${r.reconnects} reconnections`);
    assert.equal(srv.stats().sessionsStarted, 1, "the same session was resumed");
    assert.ok(srv.stats().resumes >= 1);
    const sent = srv.stats().pagesSent;
    assert.ok(sent >= PAGES && sent <= PAGES + 64, `${sent} pages sent for ${PAGES}: only those in flight at the cut twice`);
  } finally { link.close(); await srv.close(); }
});

test("the reconnection deadline: a source that does not come back fails the migration with one clear message", { timeout: 20_000 }, async () => {
  const srv = await startPageServer({ image: IMG, push: "none" });
  const port = srv.port;
  const mig = runMigration({ port, trace: syntheticTrace(20000, PAGES, 33), ips: 2.5e6, timeoutMs: 15_000, reconnectTimeoutMs: 700 });
  await sleep(300);
  await srv.close();
  const t0 = Date.now();
  await assert.rejects(mig, (e: Error) => {
    assert.match(e.message, new RegExp(`lost the connection to the source 127\\.0\\.0\\.1:${port} and could not resume within 700 ms`));
    return true;
  });
  const waited = Date.now() - t0;
  assert.ok(waited >= 600 && waited < 3000, `gave up after ${waited} ms`);
});

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const FIXTURE = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");

function cli(args: string[], onErr?: (s: string) => void) {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { err += d; onErr?.(err); });
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) => p.on("close", (code, signal) => resolve({ code, signal, out, err })));
  return { p, done, out: () => out };
}

async function listening(s: ReturnType<typeof cli>): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(s.out());
    if (m) return Number(m[1]);
    await sleep(50);
  }
  throw new Error("serve did not start");
}

test("CLI: serve is SIGKILLed mid-migration and restarted; migrate (default options) completes verified", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-reconnect-"));
  const img = join(dir, "img.bin");
  const procs: ReturnType<typeof cli>[] = [];
  try {
    let started = false;
    const serveArgs = ["serve", "--image", img, "--strategy", "demand", "--push", "none", "--history", FIXTURE, "--limit", "60000"];
    const a = cli([...serveArgs, "--generate", "4M", "--port", "0"], (e) => { if (/migration \w+: demand/.test(e)) started = true; });
    procs.push(a);
    const port = await listening(a);
    // about 2 s of guest time after the switch-over
    const mig = cli(["migrate", "--connect", `127.0.0.1:${port}`, "--trace", FIXTURE, "--limit", "60000", "--ips", "4e6", "--json"]);
    procs.push(mig);
    for (let i = 0; i < 200 && !started; i++) await sleep(25);
    assert.ok(started, "the migration started");
    await sleep(200);
    a.p.kill("SIGKILL");
    await a.done;
    const b = cli([...serveArgs, "--port", String(port), "--exit-after", "1"]);
    procs.push(b);
    const m = await mig.done;
    assert.equal(m.code, 0, m.err);
    const r = JSON.parse(m.out);
    assert.equal(r.verified, true);
    assert.equal(r.duplicatePages, 0);
    assert.equal(r.pagesReceived, 1024);
    assert.ok(r.reconnects >= 1);
    const s = await b.done;
    assert.equal(s.code, 0, s.err);
  } finally {
    for (const p of procs) if (p.p.exitCode === null && p.p.signalCode === null) p.p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reconnects counts the reconnections that resumed, not the attempts made while the source was down", { timeout: 60_000 }, async () => {
  const { startPageServer: start } = await import("../../src/transport/source.js");
  const { runMigration: migrate } = await import("../../src/transport/destination.js");
  const { generateImage } = await import("../../src/transport/image.js");
  const PAGES = 64;
  const img = generateImage(PAGES * 4096, 3);
  let server = await start({ image: img, push: "none" });
  const port = server.port;
  const n = 200, pages = new Uint32Array(n), gaps = new Uint32Array(n);
  for (let i = 0; i < n; i++) { pages[i] = (i * 13) % PAGES; gaps[i] = 10_000_000; }
  let sockets = 0;
  // the source goes away for a second: the destination tries several times, and resumes once
  setTimeout(async () => { await server.close(); setTimeout(async () => { server = await start({ image: img, port, push: "none" }); }, 1000); }, 300);
  const r = await migrate({ port, trace: { pages, gaps }, switchAt: 0.2, onSocket: () => { sockets++; } });
  await server.close();
  assert.equal(r.verified, true);
  assert.equal(sockets, 2);
  assert.equal(r.reconnects, 1);
});
