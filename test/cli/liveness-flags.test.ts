/**
 * The transport's liveness settings from the command line: `serve --idle-timeout S` closes a silent
 * connection with ERROR 12 after S seconds; `migrate --keepalive S` keeps a quiet migration from
 * being taken for silent, and `--keepalive 0` does not; bad values are refused by name (exit 2).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, FrameType } from "../../src/transport/protocol.js";
import { errorOf, helloFrame, rawClient } from "../transport/raw.js";
import { LISTENING } from "../transport/helpers.js";
import { cli as spawnCli } from "./spawn-cli.js";

const dir = mkdtempSync(join(tmpdir(), "ppm-liveness-flags-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The CLI, and for `serve` the port its listening line names (rejected if it exits first). */
function cli(args: string[]) {
  const p = spawnCli(args);
  let exited = false;
  void p.done.then(() => { exited = true; });
  const port = (async () => {
    while (!LISTENING.test(p.out())) {
      if (exited) throw new Error(`${args[0]} exited before listening: ${p.err()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const m = LISTENING.exec(p.out())!;
    return Number(m[1] ?? m[2]);
  })();
  port.catch(() => undefined); // only serve listens: a command that does not is awaited by `done`
  return { done: p.done, port, stop: () => p.kill("SIGTERM") };
}

test("serve --idle-timeout 0.3: a client that sends HELLO and goes silent gets ERROR 12 after 300 ms", { timeout: 60_000 }, async () => {
  const s = cli(["serve", "--image", join(dir, "a.img"), "--generate", "64K", "--port", "0", "--idle-timeout", "0.3"]);
  const c = rawClient(await s.port);
  try {
    c.sock.write(helloFrame(1));
    await c.inbox.waitFor((f) => f.type === FrameType.Welcome);
    const e = errorOf(await c.inbox.waitFor((f) => f.type === FrameType.Error, 10_000, "ERROR frame (idle timeout)"));
    assert.equal(e.code, ErrorCode.Idle);
    assert.match(e.message, /\(idle timeout 300 ms\)$/);
  } finally { c.sock.destroy(); s.stop(); await s.done; }
});

test("migrate --keepalive keeps a quiet migration open under serve's idle timeout; --keepalive 0 lets it be cut", { timeout: 90_000 }, async () => {
  // 16 pages touched, then ~1.5 s of guest time on page 0 (no fault: the push has brought everything)
  const lines = Array.from({ length: 16 }, (_, i) => `${i} 1`);
  for (let i = 0; i < 15; i++) lines.push("0 10");
  const trace = join(dir, "quiet.txt");
  writeFileSync(trace, lines.join("\n") + "\n");
  const img = join(dir, "b.img");
  for (const [keepalive, cut] of [["0.1", false], ["0", true]] as const) {
    const s = cli(["serve", "--image", img, "--generate", "64K", "--port", "0", "--push", "linear", "--strategy", "demand", "--idle-timeout", "0.5", "--exit-after", "1"]);
    const m = cli(["migrate", "--connect", String(await s.port), "--trace", trace, "--switch-at", "0", "--ips", "100", "--keepalive", keepalive, "--json"]);
    const r = await m.done;
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).verified, true);
    const sr = await s.done;
    assert.equal(/idle timeout/.test(sr.err), cut, `--keepalive ${keepalive}: serve said ${JSON.stringify(sr.err)}`);
  }
});

test("bad --idle-timeout and --keepalive values are refused by name with exit code 2", { timeout: 60_000 }, async () => {
  const a = await cli(["serve", "--image", join(dir, "c.img"), "--generate", "4K", "--port", "0", "--idle-timeout", "-1"]).done;
  assert.equal(a.code, 2);
  assert.match(a.err, /--idle-timeout/);
  assert.match(a.err, /-1/);
  const b = await cli(["migrate", "--connect", "1", "--trace", "x.txt", "--keepalive", "soon"]).done;
  assert.equal(b.code, 2);
  assert.match(b.err, /--keepalive/);
  assert.match(b.err, /soon/);
});
