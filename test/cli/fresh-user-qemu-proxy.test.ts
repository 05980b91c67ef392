/**
 * `qemu-proxy --model FILE` as a new user meets it: a file that is not a model (it would be replaced
 * by the first completed migration) and a directory that does not exist are refused at start with
 * exit 2; a model a migration saved and an absent file start the proxy; the save replaces only a
 * model (one of another snapshot format too: the migration starts empty and the save replaces it). Addresses: a target port 0 is refused, an out-of-range port is named.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkModelFile, replaceModel } from "../../src/qemu/model.js";
import { createQemuPolicy, loadPolicyEngine, modelProblem, unpackModel } from "../../src/qemu/policy.js";
import { FORMAT_VERSION } from "../../src/engine/snapshot.js";
import { crc32 } from "../../src/util/crc32.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-fresh-qemu-"));
const f = (name: string) => join(dir, name);

interface Run { code: number | null; out: string; err: string }

/** Run the proxy; when it starts listening, stop it with SIGTERM (it exits 0 then). */
function proxy(args: string[]): Promise<Run & { listened: boolean }> {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, "qemu-proxy", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PPM_DEBUG: "" } });
  let out = "", err = "", listened = false;
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => {
    err += d;
    if (!listened && /qemu-proxy: listening on/.test(err)) { listened = true; p.kill("SIGTERM"); }
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  return new Promise((resolve) => p.on("close", (code) => { clearTimeout(timer); resolve({ code, out, err, listened }); }));
}
const base = ["--listen", "127.0.0.1:0", "--target", "127.0.0.1:4444"];

let model: Uint8Array;

before(async () => {
  await loadPolicyEngine();
  const p = createQemuPolicy(8192);
  for (let r = 0; r < 3; r++) for (const page of [5, 9, 100, 7, 42]) p.onRequest(page, { outstanding: 0, outstandingInjected: 0 });
  model = p.snapshot!();
  p.dispose!();
  mkdirSync(f("adir"));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("--model naming a file that is not a model: exit 2 at start, naming the file and why; the file is kept", async () => {
  writeFileSync(f("notes.txt"), "important data\n");
  const r = await proxy([...base, "--model", f("notes.txt")]);
  assert.equal(r.code, 2, r.err);
  assert.equal(r.listened, false);
  assert.match(r.err, /--model .*notes\.txt: not a model file \(bytes is not a ppm-prefetch snapshot/);
  assert.equal(readFileSync(f("notes.txt"), "utf8"), "important data\n");
});

test("--model refuses a corrupted model, an empty file and a directory (exit 2)", async () => {
  const bad = Buffer.from(model);
  bad[bad.length - 10] ^= 0xff;
  writeFileSync(f("corrupt.model"), bad);
  writeFileSync(f("empty.model"), "");
  const cases: [string, RegExp][] = [
    [f("corrupt.model"), /corrupt\.model: not a model file \(.*(corrupted|checksum)/],
    [f("empty.model"), /empty\.model: not a model file \(it is empty\)/],
    [f("adir"), /adir: not a regular file \(a directory\)/],
  ];
  for (const [file, re] of cases) {
    const r = await proxy([...base, "--model", file]);
    assert.equal(r.code, 2, `${file}: ${r.err}`);
    assert.match(r.err, re);
  }
  assert.deepEqual(readFileSync(f("corrupt.model")), bad);
});

test("--model in a directory that does not exist: exit 2 at start", async () => {
  const r = await proxy([...base, "--model", f("nodir/m.bin")]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--model .*nodir\/m\.bin: directory .*nodir does not exist/);
  assert.equal(existsSync(f("nodir")), false);
});

test("--model with a saved model, or an absent file in an existing directory, starts", async () => {
  writeFileSync(f("vm.model"), model);
  const a = await proxy([...base, "--model", f("vm.model")]);
  assert.ok(a.listened, a.err);
  assert.equal(a.code, 0, a.err);
  assert.match(a.err, new RegExp(`vm\\.model: ${model.length} bytes, used when it fits the guest`));
  assert.deepEqual(new Uint8Array(readFileSync(f("vm.model"))), model);
  const b = await proxy([...base, "--model", f("new.model")]);
  assert.ok(b.listened, b.err);
  assert.equal(b.code, 0, b.err);
  assert.match(b.err, /new\.model: absent, starting empty/);
  assert.equal(existsSync(f("new.model")), false);
});

test("checkModelFile and replaceModel: only a model is replaced", async () => {
  await loadPolicyEngine();
  assert.equal(modelProblem(model), null);
  assert.match(String(modelProblem(new Uint8Array(Buffer.from("important data\n")))), /not a ppm-prefetch snapshot/);
  const d = mkdtempSync(join(dir, "save-"));
  const file = join(d, "vm.model");
  assert.equal(await checkModelFile(file), null);
  replaceModel(file, model); // absent: written
  assert.deepEqual(await checkModelFile(file), model);
  replaceModel(file, model); // a model: replaced
  writeFileSync(file, "put there since the start\n");
  assert.throws(() => replaceModel(file, model), /vm\.model is no longer a model file .*; not replaced/);
  assert.equal(readFileSync(file, "utf8"), "put there since the start\n");
  assert.deepEqual(readdirSync(d), ["vm.model"], "no temporary file left");
  await assert.rejects(checkModelFile(file), /not a model file/);
});

test("a model another version saved (another snapshot format) is a model: the migration starts empty, saying why, and the save replaces it", async () => {
  await loadPolicyEngine();
  // The same model with its engine snapshot's format version set one lower (checksum recomputed).
  const snap = unpackModel(model, 8192).engine;
  const at = model.length - snap.length;
  const older = model.slice();
  const dv = new DataView(older.buffer, older.byteOffset + at, snap.length);
  dv.setUint32(4, FORMAT_VERSION - 1, true);
  dv.setUint32(snap.length - 4, crc32(older.subarray(at, older.length - 4)), true);
  assert.equal(modelProblem(older), null);
  const p = createQemuPolicy(8192, {}, older);
  assert.match(p.origin, new RegExp(`^new \\(saved model refused: bytes has snapshot format version ${FORMAT_VERSION - 1}; this build reads version ${FORMAT_VERSION}\\)`));
  p.dispose!();
  const d = mkdtempSync(join(dir, "older-"));
  const file = join(d, "vm.model");
  writeFileSync(file, older);
  assert.deepEqual(await checkModelFile(file), older);
  replaceModel(file, model);
  assert.deepEqual(new Uint8Array(readFileSync(file)), model);
  // A snapshot of the current format that fails its checks is still refused.
  const bad = Buffer.from(model);
  bad[bad.length - 10] ^= 0xff;
  assert.notEqual(modelProblem(bad), null);
});

test("--target port 0 is refused; an out-of-range port is named", async () => {
  const t = await proxy(["--listen", "127.0.0.1:0", "--target", "127.0.0.1:0"]);
  assert.equal(t.code, 2, t.err);
  assert.match(t.err, /--target must be HOST:PORT with PORT in 1\.\.65535, got "127\.0\.0\.1:0"/);
  const l = await proxy(["--listen", "127.0.0.1:99999", "--target", "127.0.0.1:4444"]);
  assert.equal(l.code, 2, l.err);
  assert.match(l.err, /--listen must be HOST:PORT with PORT in 0\.\.65535, got "127\.0\.0\.1:99999"/);
});
