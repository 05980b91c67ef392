import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const FIXTURE = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");

function cli(args: string[], onStdout?: (s: string) => void): { done: Promise<{ code: number; out: string; err: string }>; kill: () => void } {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  p.stdout.on("data", (d) => { out += d; onStdout?.(out); });
  p.stderr.on("data", (d) => { err += d; });
  const done = new Promise<{ code: number; out: string; err: string }>((resolve) => p.on("close", (code) => resolve({ code: code ?? -1, out, err })));
  return { done, kill: () => p.kill() };
}

test("serve + migrate CLIs: a verified migration of the sqlite fixture, --json record, usage errors", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-transport-"));
  try {
    let resolvePort: (p: number) => void = () => {};
    const port = new Promise<number>((r) => { resolvePort = r; });
    const serve = cli(["serve", "--image", join(dir, "img.bin"), "--generate", "4M", "--port", "0", "--strategy", "demand",
      "--history", FIXTURE, "--limit", "100000", "--exit-after", "1", "--delay-us", "20", "--rate-gbps", "10"], (s) => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(s);
      if (m) resolvePort(Number(m[1]));
    });
    const timer = setTimeout(() => serve.kill(), 50_000);
    const p = await Promise.race([port, serve.done.then((r) => { throw new Error(`serve exited ${r.code}: ${r.err}`); })]);
    const mig = await cli(["migrate", "--connect", `127.0.0.1:${p}`, "--trace", FIXTURE, "--limit", "100000", "--json", "--delay-us", "20", "--rate-gbps", "10"]).done;
    assert.equal(mig.code, 0, mig.err);
    const r = JSON.parse(mig.out);
    assert.deepEqual(Object.keys(r), ["verified", "faults", "inflightWaits", "stallMs", "completionMs", "migrationMs", "pagesReceived", "duplicatePages", "reconnects", "predictorUs", "doneDelivered"]);
    assert.equal(r.verified, true);
    assert.equal(r.doneDelivered, true, "the source acknowledged DONE");
    assert.ok(Number.isInteger(r.inflightWaits) && r.inflightWaits >= 0, `inflightWaits ${r.inflightWaits}`);
    assert.equal(r.pagesReceived, 1024);
    assert.equal(r.duplicatePages, 0);
    const s = await serve.done;
    clearTimeout(timer);
    assert.equal(s.code, 0, s.err);
    assert.match(s.err, /1 migration\(s\) completed/);
    const bad = await cli(["migrate", "--connect", "127.0.0.1:1", "--trace", FIXTURE, "--switch-at", "2"]).done;
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--switch-at must be a number in 0\.\.1/);
    const bad2 = await cli(["serve", "--image", join(dir, "nope.bin")]).done;
    assert.equal(bad2.code, 2);
    assert.match(bad2.err, /^ppm-prefetch serve: cannot read --image '.*nope\.bin': no such file \(use --generate SIZE to create one\)$/m);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test("serve --history-source: each migration's model trains on the recorded history (fewer pages than every access); bad sources exit 2", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-transport-"));
  try {
    const img = join(dir, "img.bin");
    const trained = async (source: string[]): Promise<number> => {
      let resolvePort: (p: number) => void = () => {};
      const port = new Promise<number>((r) => { resolvePort = r; });
      const serve = cli(["serve", "--image", img, ...(existsSync(img) ? [] : ["--generate", "4M"]), "--port", "0", "--strategy", "ppm", "--push", "qemu",
        "--history", FIXTURE, "--limit", "100000", ...source, "--exit-after", "1"], (s) => {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(s);
        if (m) resolvePort(Number(m[1]));
      });
      const p = await Promise.race([port, serve.done.then((r) => { throw new Error(`serve exited ${r.code}: ${r.err}`); })]);
      const mig = await cli(["migrate", "--connect", `127.0.0.1:${p}`, "--trace", FIXTURE, "--limit", "100000", "--json"]).done;
      assert.equal(mig.code, 0, mig.err);
      assert.equal(JSON.parse(mig.out).verified, true);
      const s = await serve.done;
      const m = /trained on (\d+) accesses/.exec(s.err);
      assert.ok(m, s.err);
      return Number(m[1]);
    };
    const full = await trained(["--history-source", "full"]);
    const ft = await trained(["--history-source", "first-touch:1e6"]);
    const byDefault = await trained([]), sets = await trained(["--history-source", "sets:10ms"]);
    assert.equal(full, 30000);
    assert.ok(ft > 0 && ft < full / 3, `first touches per 1e6 instructions: ${ft} of ${full}`);
    assert.equal(byDefault, sets, "the default is compare's: sets:10ms");
    assert.ok(byDefault > 0 && byDefault < full, `sets per 10 ms: ${byDefault} of ${full}`);
    for (const [args, re] of [
      [["--history-source", "bogus"], /--history-source/],
      [["--history-source", "earlier"], /--model FILE/],
      [["--history-source", "writes:1e6"], /records writes/],
    ] as const) {
      const r = await cli(["serve", "--image", img, "--port", "0", "--history", FIXTURE, "--limit", "1000", ...args]).done;
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
      assert.equal(r.err.trim().split("\n").length, 1);
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
