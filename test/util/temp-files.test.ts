// Atomic writes go through a temporary file beside the output; a name near the filesystem's limit
// must still be writable (its `.tmp-PID` twin would be over 255 bytes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
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
