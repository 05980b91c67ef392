/**
 * serve/migrate on bad input and network errors: one line on stderr, no stack trace, exit code 2 for
 * bad input and 1 for a runtime failure; images that are not whole pages or too small for the
 * history are refused; --generate leaves no temporary file and writes the seeded image.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateImage, imageChunks, openImageFile, writeImageFile } from "../../src/transport/image.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const FIXTURE = join(ROOT, "test/fixtures/sqlite-300k.txt.gz");

function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { err += d; });
  const t = setTimeout(() => p.kill("SIGKILL"), 30_000);
  return new Promise((resolve) => p.on("close", (code) => { clearTimeout(t); resolve({ code, out, err }); }));
}

/** One line, no stack frames. */
function oneLine(err: string): void {
  assert.equal(err.trimEnd().split("\n").length, 1, `one line expected:\n${err}`);
  assert.doesNotMatch(err, /\n\s+at /);
}

test("serve and migrate: bad input exits 2, network failures exit 1, each with one line", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-cli-errors-"));
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
  const busyPort = (busy.address() as AddressInfo).port;
  try {
    const img = join(dir, "img.bin");
    writeFileSync(img, generateImage(4096 * 64, 2));
    const ragged = join(dir, "ragged.bin");
    writeFileSync(ragged, Buffer.alloc(4096 * 3 + 100));
    const truncatedGz = join(dir, "trunc.txt.gz");
    const gz = readFileSync(FIXTURE);
    writeFileSync(truncatedGz, gz.subarray(0, gz.length >> 1));
    const closed = await new Promise<number>((r) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const p = (s.address() as AddressInfo).port; s.close(() => r(p)); }); });

    const cases: [string, string[], number, RegExp][] = [
      ["image not whole pages", ["serve", "--image", ragged, "--strategy", "demand"], 2, /ragged\.bin is 12388 bytes, not a whole number of 4096-byte pages/],
      ["history wider than the image", ["serve", "--image", img, "--strategy", "demand", "--history", FIXTURE], 2, /spans \d+ pages \(layout virtual\), the image .*img\.bin has 64/],
      ["truncated history", ["serve", "--image", img, "--strategy", "demand", "--history", truncatedGz], 2, /trunc\.txt\.gz/],
      ["bad engine option", ["serve", "--image", img, "--max-contexts", "1"], 2, /--strategy ppm: .*maxContexts/],
      ["bad --generate", ["serve", "--image", join(dir, "g.bin"), "--generate", "17G"], 2, /--generate must be 4K\.\.16G, got "17G"/],
      ["bad --max-sessions", ["serve", "--image", img, "--max-sessions", "0"], 2, /--max-sessions must be an integer in 1\.\.4096, got "0"/],
      ["address in use", ["serve", "--image", img, "--strategy", "demand", "--port", String(busyPort)], 1, /address already in use|EADDRINUSE/],
      ["address not on this host", ["serve", "--image", img, "--strategy", "demand", "--host", "192.0.2.1", "--port", "0"], 2, /192\.0\.2\.1/],
      ["connection refused", ["migrate", "--connect", `127.0.0.1:${closed}`, "--trace", FIXTURE], 1, new RegExp(`127\\.0\\.0\\.1:${closed}.*(connection refused|ECONNREFUSED)`)],
      ["bad --reconnect-timeout", ["migrate", "--connect", "127.0.0.1:1", "--trace", FIXTURE, "--reconnect-timeout=-1"], 2, /--reconnect-timeout must be a number in 0\.\.86400, got "-1"/],
      ["--connect without a port", ["migrate", "--connect", "nohost", "--trace", FIXTURE], 2, /--connect must be HOST:PORT or PORT, with PORT an integer in 1\.\.65535; got "nohost"/],
    ];
    for (const [name, args, code, re] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, `${name}: exit ${r.code}: ${r.err}`);
      assert.match(r.err, re, name);
      oneLine(r.err);
    }
  } finally {
    busy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("images: generated in chunks into a temporary file renamed into place, the same bytes however chunked; read page by page", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-image-"));
  try {
    const path = join(dir, "img.bin");
    const bytes = 4096 * 1000 + 1; // rounds up to 1001 pages
    await writeImageFile(path, bytes, 9);
    assert.deepEqual(readdirSync(dir), ["img.bin"], "no temporary file left behind");
    const whole = generateImage(bytes, 9);
    assert.equal(whole.length, 4096 * 1001);
    assert.ok(readFileSync(path).equals(whole));
    assert.ok(Buffer.concat([...imageChunks(bytes, 9, 7)]).equals(whole), "chunking does not change the image");
    // page 0 and every 16th page are zero
    assert.ok(whole.subarray(16 * 4096, 17 * 4096).every((b) => b === 0));
    assert.ok(!whole.subarray(17 * 4096, 18 * 4096).every((b) => b === 0));
    const img = await openImageFile(path);
    try {
      assert.equal(img.pageCount, 1001);
      const dst = Buffer.alloc(4096 + 10);
      img.readPage(1000, dst, 10);
      assert.ok(dst.subarray(10).equals(whole.subarray(1000 * 4096)));
    } finally { img.close(); }
    // overwriting an existing image replaces it whole
    await writeImageFile(path, 4096 * 3, 1);
    assert.equal(readFileSync(path).length, 4096 * 3);
    assert.deepEqual(readdirSync(dir), ["img.bin"]);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
