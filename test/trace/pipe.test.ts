// A trace read from a pipe or a FIFO (`/dev/stdin`, `<(zcat ...)`): the format is sniffed from the
// stream itself, so it reads exactly as the same bytes from a file, gzipped or not, text or binary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { readTrace } from "../../src/trace/read.js";
import { writeBinaryTrace } from "../../src/trace/binary.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const GZ = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");

/** Read `path` through a FIFO that a writer fills from `src` (the reader cannot seek or reopen it). */
async function viaFifo(dir: string, src: string, name: string) {
  const fifo = join(dir, name);
  execFileSync("mkfifo", [fifo]);
  const writer = new Promise<void>((resolve, reject) => {
    const out = createWriteStream(fifo);
    createReadStream(src).pipe(out).on("finish", resolve).on("error", reject);
  });
  const [t] = await Promise.all([readTrace(fifo), writer]);
  return t;
}

test("gzipped text, plain text and binary traces read the same from a FIFO as from the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-fifo-"));
  try {
    const file = await readTrace(GZ);
    const plain = join(dir, "plain.txt");
    writeFileSync(plain, gunzipSync(readFileSync(GZ)));
    const bin = join(dir, "t.ppmt");
    await writeBinaryTrace(bin, [{ pages: file.pages, gaps: file.gaps, streams: file.streams, length: file.length }] as never);
    for (const [src, name] of [[GZ, "a"], [plain, "b"], [bin, "c"]] as const) {
      const t = await viaFifo(dir, src, name);
      assert.equal(t.length, file.length, src);
      assert.deepEqual(Buffer.from(t.pages.buffer, t.pages.byteOffset, t.pages.byteLength), Buffer.from(file.pages.buffer, file.pages.byteOffset, file.pages.byteLength), src);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("compare --trace /dev/stdin reads a gzipped trace piped in", { timeout: 120_000 }, async () => {
  // Through a shell's pipe (Node's own stdio pipes are sockets, which /dev/stdin cannot open).
  const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const cmd = (args: string[]) => [process.execPath, "--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args].map(q).join(" ");
  const run = (line: string) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn("sh", ["-c", line], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => { out += d; });
    p.stderr.on("data", (d) => { err += d; });
    p.on("close", (code) => resolve({ code, out, err }));
  });
  const args = ["--strategies", "demand,qemu", "--layout", "virtual", "--json"];
  const piped = await run(`cat ${q(GZ)} | ${cmd(["compare", "--trace", "/dev/stdin", ...args])}`);
  const file = await run(cmd(["compare", "--trace", GZ, ...args]));
  assert.equal(piped.code, 0, piped.err);
  assert.equal(file.code, 0, file.err);
  const strip = (s: string) => JSON.parse(s).strategies;
  assert.deepEqual(strip(piped.out), strip(file.out));
});
