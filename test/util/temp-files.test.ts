// Atomic writes go through a temporary file beside the output; a name near the filesystem's limit
// must still be writable (its `.tmp-PID` twin would be over 255 bytes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { tempPathFor } from "../../src/util/temp-files.js";
import { writeAtomic } from "../../src/cli/report.js";
import { writeTraceFileAtomic } from "../../src/trace/record.js";
import { convertTrace } from "../../src/cli/convert.js";
import { readTraceFile } from "../../src/cli/input.js";

const bytes = (s: string) => Buffer.byteLength(s);

test("tempPathFor: PATH.tmp-PID beside PATH; a long name is cut to 255 bytes, whole characters, suffix kept", () => {
  assert.equal(tempPathFor("/a/b/out.txt"), `/a/b/out.txt.tmp-${process.pid}`);
  const long = "x".repeat(250);
  const t = tempPathFor(`/a/${long}`);
  assert.equal(dirname(t), "/a");
  assert.equal(bytes(basename(t)), 255);
  assert.ok(basename(t).endsWith(`.tmp-${process.pid}`));
  // multi-byte characters (3 bytes each in UTF-8, and a 4-byte one) are never split
  const wide = "é".repeat(60) + "界".repeat(40) + "😀";
  const w = basename(tempPathFor(`/a/${wide}`));
  assert.ok(bytes(w) <= 255 && bytes(w) > 250, `${bytes(w)} bytes`);
  assert.ok(!w.includes("\uFFFD") && Array.from(w).every((c) => c.codePointAt(0)! < 0xd800 || c.codePointAt(0)! > 0xdfff));
  assert.ok(wide.startsWith(w.slice(0, w.indexOf(".tmp-"))));
});

test("the atomic writers take a 250-byte output name and leave only the output", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-tmpname-"));
  try {
    const name = (ext: string) => join(dir, "t".repeat(250 - ext.length) + ext);
    await writeAtomic(name(".json"), "{}\n");
    assert.equal(readFileSync(name(".json"), "utf8"), "{}\n");
    await writeTraceFileAtomic(name(".txt"), [Buffer.from("# ppm-prefetch trace: page gap [stream]\n1 1\n2 1\n3 1\n")]);
    const src = name(".txt");
    assert.deepEqual(Array.from((await readTraceFile(src)).pages), [1, 2, 3]);
    assert.equal(await convertTrace(src, name(".ppmt"), "binary"), 3);
    assert.deepEqual(Array.from((await readTraceFile(name(".ppmt"))).pages), [1, 2, 3]);
    assert.deepEqual(readdirSync(dir).sort(), [basename(name(".json")), basename(name(".ppmt")), basename(name(".txt"))].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// --- outputs that are not regular files: written in place, never replaced ---------------------------

import { execFileSync, spawn } from "node:child_process";
import { createReadStream, lstatSync, symlinkSync, writeFileSync } from "node:fs";
import { atomicTarget } from "../../src/util/temp-files.js";
import { writeStreaming } from "../../src/trace/binary.js";
import { writeModelAtomic } from "../../src/qemu/model.js";

/** Read everything a FIFO receives while `write` writes to it. */
async function throughFifo(fifo: string, write: () => Promise<unknown> | void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const reader = createReadStream(fifo);
  reader.on("data", (c) => chunks.push(c as Buffer));
  const closed = new Promise<void>((r) => reader.on("close", () => r()));
  await write();
  await closed;
  return Buffer.concat(chunks);
}

test("atomicTarget: a device or FIFO is written in place; a symbolic link is followed; a new name goes through a temp file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-target-"));
  try {
    assert.deepEqual(atomicTarget("/dev/null"), { path: "/dev/null", direct: true });
    const fifo = join(dir, "f");
    execFileSync("mkfifo", [fifo]);
    assert.deepEqual(atomicTarget(fifo), { path: fifo, direct: true });
    const real = join(dir, "real.txt");
    writeFileSync(real, "x");
    symlinkSync(real, join(dir, "link.txt"));
    assert.deepEqual(atomicTarget(join(dir, "link.txt")), { path: real, direct: false });
    assert.deepEqual(atomicTarget(join(dir, "new.txt")), { path: join(dir, "new.txt"), direct: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every atomic writer writes a FIFO in place (it stays a FIFO, the reader gets the bytes) and writes through a symbolic link", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-fifo-"));
  try {
    const fifo = join(dir, "out");
    execFileSync("mkfifo", [fifo]);
    const writers: [string, () => Promise<unknown> | void, string][] = [
      ["writeAtomic", () => writeAtomic(fifo, "svg bytes\n"), "svg bytes\n"],
      ["writeTraceFileAtomic", () => writeTraceFileAtomic(fifo, [Buffer.from("1\n2\n")]), "1\n2\n"],
      ["writeStreaming", () => writeStreaming(fifo, [{ pages: Uint32Array.of(5), gaps: Uint32Array.of(1), streams: Uint16Array.of(0), length: 1 } as never], () => "h\n", () => "5\n", () => "t\n"), "h\n5\nt\n"],
      ["writeModelAtomic", () => { setImmediate(() => writeModelAtomic(fifo, Buffer.from("model"))); }, "model"],
    ];
    for (const [name, write, expected] of writers) {
      const got = await throughFifo(fifo, write);
      assert.equal(got.toString(), expected, name);
      assert.ok(lstatSync(fifo).isFIFO(), `${name} left the FIFO a FIFO`);
      assert.deepEqual(readdirSync(dir), ["out"], `${name} left no temp file`);
    }
    // a symbolic link stays a link; the file it names gets the new bytes
    const real = join(dir, "real.svg");
    writeFileSync(real, "old");
    symlinkSync(real, join(dir, "link.svg"));
    await writeAtomic(join(dir, "link.svg"), "new");
    assert.ok(lstatSync(join(dir, "link.svg")).isSymbolicLink());
    assert.equal(readFileSync(real, "utf8"), "new");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("convert IN - writes the trace to standard output (no file named -)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-stdout-"));
  try {
    const input = join(dir, "in.txt");
    writeFileSync(input, "1\n2\n3\n");
    const main = join(dirname(new URL(import.meta.url).pathname), "../../src/cli/main.ts");
    for (const out of ["-"]) {
      const p = spawn(process.execPath, ["--import", "tsx", main, "convert", input, out, "--to", "text"], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "", stderr = "";
      p.stdout.on("data", (d) => { stdout += d; });
      p.stderr.on("data", (d) => { stderr += d; });
      const code = await new Promise((r) => p.on("close", r));
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^# ppm-prefetch trace/);
      assert.deepEqual(stdout.split("\n").filter((l) => /^\d/.test(l)).map((l) => l.split(" ")[0]), ["1", "2", "3"], out);
      assert.deepEqual(readdirSync(dir), ["in.txt"], `${out}: no file named - or temp file left`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a signal that arrives while a temp file is registered is not lost when the file is unregistered before Node dispatches it", async () => {
  // The child registers a file, is signalled (the handler is installed: Node queues the signal for its
  // event loop), and unregisters the file at once, as an atomic write does after its rename. The
  // signal must still end the process, as it would with no temp file at all.
  const mod = pathToFileURL(fileURLToPath(new URL("../../src/util/temp-files.ts", import.meta.url))).href;
  const script = `
    const { trackTempFile } = await import(${JSON.stringify(mod)});
    const untrack = trackTempFile("/nonexistent/x.tmp-" + process.pid);
    process.kill(process.pid, "SIGTERM");
    untrack();
    setTimeout(() => { console.log("alive"); }, 500);`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.stdout, "", "the signal was dropped: the process ran on");
  assert.equal(r.signal, "SIGTERM", `status ${r.status}, stderr ${r.stderr}`);
});
