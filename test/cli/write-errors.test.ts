/**
 * A write that fails part way (a full disk, a file-size limit) names the output it could not write,
 * not the input, and leaves nothing behind (the old output, if any, untouched).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");

test("convert: a write refused part way (file-size limit: EFBIG, as ENOSPC) names OUT, keeps the old OUT, leaves no temp file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-write-"));
  const out = join(dir, "out.txt");
  writeFileSync(out, "old\n");
  // `ulimit -f` caps what the process may write (in 1 KiB blocks); SIGXFSZ ignored, so write() fails with EFBIG.
  const r = spawnSync("bash", ["-c", `ulimit -f 16; trap '' XFSZ; exec "${process.execPath}" --import tsx "${MAIN}" convert "${join(ROOT, "traces/sqlite.txt.gz")}" "${out}"`], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot write ${out.replace(/[.]/g, "\\.")}: .*EFBIG`));
  assert.doesNotMatch(r.stderr, /sqlite\.txt\.gz/, "the input is not blamed");
  assert.equal(readFileSync(out, "utf8"), "old\n");
  assert.deepEqual(readdirSync(dir), ["out.txt"]);
});

test("serve --generate: a write refused part way names the --image file (not its temporary file) and leaves nothing behind", () => {
  const dir = mkdtempSync(join(tmpdir(), "ppm-write-"));
  const img = join(dir, "new.img");
  const r = spawnSync("bash", ["-c", `ulimit -f 64; trap '' XFSZ; exec "${process.execPath}" --import tsx "${MAIN}" serve --image "${img}" --generate 1M --port 0`], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot write ${img.replace(/[.]/g, "\\.")}: .*EFBIG`));
  assert.doesNotMatch(r.stderr, /\.tmp/, "the temporary file is not what the user named");
  assert.deepEqual(readdirSync(dir), []);
});
