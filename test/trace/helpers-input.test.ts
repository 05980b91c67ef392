// The exported trace helpers check their arguments: a TypeError or RangeError naming the argument and
// the value, never a NaN-length trace, a silently empty one, or an error from deep inside.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { readTextTrace, parseTraceText, placePages } from "../../src/index.js";
import { readTrace } from "../../src/trace/read.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const BINARY = join(HERE, "sqlite-5k-v1.ppmt");
const TEXT = "1 1\n2 1\n3 1\n4 1\n5 1\n";

const named = (cls: typeof TypeError | typeof RangeError, ...parts: (string | RegExp)[]) => (e: Error) =>
  e instanceof cls && parts.every((p) => (typeof p === "string" ? e.message.includes(p) : p.test(e.message)));

test("readTextTrace and readTrace: opts.limit must be an integer >= 0 (undefined or Infinity: no limit)", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ppm-helpers-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "t.txt");
  await writeFile(file, TEXT);
  for (const read of [readTextTrace, readTrace]) {
    for (const limit of [NaN, 1.5, "3", null, true]) {
      await assert.rejects(read(file, { limit } as never), named(TypeError, "opts.limit must be an integer", String(typeof limit === "string" ? `"${limit}"` : limit)), `${read.name} limit ${String(limit)}`);
    }
    await assert.rejects(read(file, { limit: -1 }), named(RangeError, "opts.limit must be at least 0", "got -1"));
    await assert.rejects(read(file, "all" as never), named(TypeError, "opts must be an object", '"all"'));
    await assert.rejects(read(file, { limt: 2 } as never), named(TypeError, "opts.limt is not a read option"));
    assert.equal((await read(file, { limit: 2 })).length, 2);
    assert.deepEqual(Array.from((await read(file, { limit: 0 })).pages), []);
    assert.equal((await read(file, { limit: Infinity })).length, 5);
    assert.equal((await read(file, { limit: undefined })).length, 5);
    assert.equal((await read(file)).length, 5);
    await assert.rejects(read(5 as never), named(TypeError, "path must be a file path", "got 5"));
    await assert.rejects(read("" as never), named(RangeError, "path must be a file path"));
  }
});

test("readTextTrace on a binary trace says it is one and what reads it", async (t) => {
  await assert.rejects(readTextTrace(BINARY), named(RangeError, JSON.stringify(BINARY), "binary trace", "readTrace", "ppm-prefetch convert"));
  // Gzipped too.
  const dir = await mkdtemp(join(tmpdir(), "ppm-helpers-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const gz = join(dir, "b.ppmt.gz");
  await writeFile(gz, gzipSync(readFileSync(BINARY)));
  await assert.rejects(readTextTrace(gz), named(RangeError, "binary trace"));
  // readTrace reads it.
  assert.ok((await readTrace(BINARY)).length > 0);
  // A short text file (under the 4 bytes of the magic) still reads.
  const short = join(dir, "s.txt");
  await writeFile(short, "7\n");
  assert.deepEqual(Array.from((await readTextTrace(short)).pages), [7]);
});

test("readTextTrace on a missing .gz file rejects (no unhandled stream error)", async () => {
  await assert.rejects(readTextTrace("/nonexistent/ppm-trace.txt.gz"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
  await assert.rejects(readTextTrace("/nonexistent/ppm-trace.txt"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
});

test("parseTraceText: text must be a string or bytes of the text format; name a string", () => {
  for (const bad of [5, null, undefined, {}, [1, 2]]) {
    assert.throws(() => parseTraceText(bad as never), named(TypeError, "text must be a string or a Uint8Array"), String(bad));
  }
  assert.throws(() => parseTraceText(5 as never), /got 5$/);
  assert.throws(() => parseTraceText(null as never), /got null$/);
  assert.throws(() => parseTraceText(TEXT, 7 as never), named(TypeError, "name must be a string", "got 7"));
  assert.throws(() => parseTraceText(readFileSync(BINARY)), named(RangeError, "text is a binary trace", "readTrace"));
  assert.equal(parseTraceText(TEXT).length, 5);
  assert.equal(parseTraceText(new TextEncoder().encode(TEXT)).length, 5);
});

test("placePages: pages a Uint32Array, opts an object with a known layout, vmPages and seed integers", () => {
  const pages = Uint32Array.of(0, 1, 2, 600, 3);
  assert.throws(() => placePages(pages, "4k" as never), named(TypeError, "opts must be an object", 'got "4k"'));
  assert.throws(() => placePages(pages, null as never), named(TypeError, "opts must be an object", "got null"));
  assert.throws(() => placePages(null as never, { layout: "4k" }), named(TypeError, "pages must be a Uint32Array", "got null"));
  assert.throws(() => placePages([1, 2] as never, { layout: "4k" }), named(TypeError, "pages must be a Uint32Array", "an array of length 2"));
  assert.throws(() => placePages(pages, { layout: "1g" as never }), named(RangeError, "opts.layout must be one of virtual, 2m, 4k", 'got "1g"'));
  assert.throws(() => placePages(pages, {} as never), named(TypeError, "opts.layout must be one of", "got undefined"));
  assert.throws(() => placePages(pages, { layout: "4k", vmPages: "1000" as never }), named(TypeError, "opts.vmPages must be an integer", 'got "1000"'));
  assert.throws(() => placePages(pages, { layout: "4k", vmPages: 0 }), named(RangeError, "opts.vmPages", "got 0"));
  assert.throws(() => placePages(pages, { layout: "4k", seed: 1.5 }), named(TypeError, "opts.seed must be an integer", "got 1.5"));
  assert.throws(() => placePages(pages, { layout: "4k", sede: 2 } as never), named(TypeError, "opts.sede is not a layout option"));
  const a = placePages(pages, { layout: "4k", vmPages: 1000, seed: 3 });
  assert.equal(a.pageCount, 1000);
  assert.equal(new Set(a.pages).size, 5);
  assert.deepEqual(placePages(pages, { layout: "virtual", vmPages: undefined, seed: undefined }).pages, pages);
});
