/**
 * `record` as a new user meets it: an output path that cannot be written (a directory, a missing
 * directory) and a command that does not exist are exit 2 before anything runs under valgrind; a
 * failed write names the output file and leaves nothing behind.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync, readdirSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-fresh-record-"));
const f = (name: string) => join(dir, name);

const hasValgrind = spawnSync("valgrind", ["--version"], { stdio: "ignore" }).status === 0;
const noValgrind = hasValgrind ? false : "valgrind is not installed (apt-get install valgrind)";

interface Run { code: number | null; err: string; ms: number }

function record(args: string[]): Promise<Run> {
  const t0 = Date.now();
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, "record", ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PPM_DEBUG: "" } });
  let err = "";
  p.stderr.on("data", (d) => { err += d; });
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  return new Promise((resolve) => p.on("close", (code) => { clearTimeout(timer); resolve({ code, err, ms: Date.now() - t0 }); }));
}

before(() => {
  mkdirSync(f("out"));
  mkdirSync(f("bin"));
  writeFileSync(f("bin/not-executable"), "#!/bin/sh\n");
  chmodSync(f("bin/not-executable"), 0o644);
});
after(() => rmSync(dir, { recursive: true, force: true }));

// `sleep 30` under valgrind: a check made only after the run would take 30 s (the test's bound is 20 s)
test("record --out DIR: exit 2 at once, before the command runs", { skip: noValgrind }, async () => {
  const r = await record(["--out", f("out"), "--", "sleep", "30"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--out: cannot write .*out: it is a directory/);
  assert.doesNotMatch(r.err, /EISDIR|rename/);
  assert.ok(r.ms < 20_000, `${r.ms} ms`);
  assert.deepEqual(readdirSync(f("out")), []);
});

test("record --out into a directory that does not exist: exit 2", async () => {
  const r = await record(["--out", f("nodir/t.gz"), "--", "sleep", "30"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--out: cannot write .*nodir\/t\.gz: directory .*nodir does not exist/);
});

test("record of a command that does not exist: exit 2 with a clear message, nothing written", { skip: noValgrind }, async () => {
  const cases: [string, RegExp][] = [
    ["no-such-program-ppm-xyz", /the command "no-such-program-ppm-xyz" to record was not found \(no executable file of that name on PATH\)/],
    [f("bin/missing"), /the command ".*bin\/missing" to record was not found \(no executable file there\)/],
    [f("bin/not-executable"), /the command ".*bin\/not-executable" to record was not found/],
    [f("bin"), /the command ".*bin" to record was not found/],
  ];
  for (const [cmd, re] of cases) {
    const r = await record(["--out", f("t.gz"), "--", cmd]);
    assert.equal(r.code, 2, `${cmd}: ${r.err}`);
    assert.match(r.err, re);
  }
  assert.deepEqual(readdirSync(dir).sort(), ["bin", "out"]);
});

test("record: a write that fails names the output file and leaves no temporary file", { skip: noValgrind }, async () => {
  // a name one byte over what the filesystem takes (256 bytes): the temporary file beside it is cut
  // to fit and written, the rename onto the name fails, and the temporary file is removed
  const d = mkdtempSync(join(dir, "long-"));
  const out = join(d, "x".repeat(256));
  const r = await record(["--out", out, "--", "true"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`ppm-prefetch record: cannot write ${out}: name too long \\(ENAMETOOLONG\\); no trace written`));
  assert.doesNotMatch(r.err, /tmp-\d+/);
  assert.deepEqual(readdirSync(d), []);
});

test("record: a 250-byte output name is written atomically (its temporary name is cut to fit)", { skip: noValgrind }, async () => {
  const d = mkdtempSync(join(dir, "long-ok-"));
  const out = join(d, "x".repeat(246) + ".txt");
  const r = await record(["--out", out, "--", "true"]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(d), ["x".repeat(246) + ".txt"]);
});
