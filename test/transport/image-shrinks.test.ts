// An image read that fails during the background push (the file shrank under the server) ends that
// connection with an error, as it does on the fault path; the server and its other migrations live on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { openImageFile, writeImageFile } from "../../src/transport/image.js";

test("an image that shrinks under the push fails the migration, not the server", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-shrink-"));
  const uncaught: Error[] = [];
  const onUncaught = (e: Error) => { uncaught.push(e); };
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  try {
    const path = join(dir, "img.bin");
    await writeImageFile(path, 256 * 4096, 1);
    const image = await openImageFile(path);
    const errors: string[] = [];
    const server = await startPageServer({ image, push: "linear", onError: (e) => errors.push(e.message) });
    truncateSync(path, 64 * 4096);
    const n = 200, pages = new Uint32Array(n), gaps = new Uint32Array(n);
    for (let i = 0; i < n; i++) { pages[i] = (i * 7) % 64; gaps[i] = 1_000_000; }
    await assert.rejects(runMigration({ port: server.port, trace: { pages, gaps }, ips: 0, timeoutMs: 5000, reconnectTimeoutMs: 500 }), /page 64 is past the end of the file/);
    assert.ok(errors.some((m) => /past the end of the file/.test(m)), errors.join("; "));
    // the server still answers: a second migration reads pages that are still in the file
    const small = new Uint32Array([1, 2, 3]);
    await assert.rejects(runMigration({ port: server.port, trace: { pages: small, gaps: new Uint32Array(3).fill(1) }, ips: 0, timeoutMs: 5000, reconnectTimeoutMs: 500 }), /past the end/);
    await server.close();
    assert.deepEqual(uncaught.map((e) => e.message), []);
  } finally {
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
    rmSync(dir, { recursive: true, force: true });
  }
});
