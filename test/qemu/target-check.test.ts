/**
 * `qemu-proxy --target` is checked at start, without connecting to it: bad syntax and a host name
 * that does not resolve exit 2 naming the value (they used to start listening and fail only at the
 * first migration); a target that resolves but does not listen yet is fine (QEMU may come up later).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { it } from "node:test";

const ROOT = path.join(import.meta.dirname, "..", "..");

/** Run the proxy; kill it after `ms` (a proxy that started listening does not exit by itself). */
async function cli(args: string[], ms = 10000): Promise<{ code: number | string; err: string }> {
  const p = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/main.ts"), "qemu-proxy", "--listen", "127.0.0.1:0", "--predict", "none", "--once", ...args], { cwd: ROOT });
  let err = "";
  p.stderr.on("data", (d) => {
    err += d;
    if (/listening on/.test(err)) p.kill("SIGTERM"); // started: not refused
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), ms);
  const code = await new Promise<number | string>((r) => p.on("exit", (c, sig) => r(c ?? String(sig))));
  clearTimeout(timer);
  return { code, err };
}

it("a malformed --target host exits 2 naming the value", { timeout: 30000 }, async () => {
  for (const bad of ["no such host:4444", "bad_host!:4444", "a..example:4444"]) {
    const r = await cli(["--target", bad]);
    assert.equal(r.code, 2, `${bad}: ${r.err}`);
    assert.ok(r.err.includes(JSON.stringify(bad)), r.err);
    assert.doesNotMatch(r.err, /listening on/);
  }
});

it("a --target host name that does not resolve exits 2 naming it", { timeout: 60000 }, async () => {
  // .invalid never resolves (RFC 6761)
  const r = await cli(["--target", "no-such-host.invalid:4444"], 25000);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /"no-such-host\.invalid" does not resolve/);
  assert.doesNotMatch(r.err, /listening on/);
});

it("a target that resolves but is not listening yet is accepted at start", { timeout: 30000 }, async () => {
  for (const ok of ["localhost:1", "127.0.0.1:1", "[::1]:1"]) {
    const r = await cli(["--target", ok]);
    assert.match(r.err, /listening on/, `${ok}: ${r.err}`);
  }
});
