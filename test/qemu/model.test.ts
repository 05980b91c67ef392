/** The model file's atomic write goes through tempPathFor, like every other atomic writer. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { mock, test } from "node:test";
import { writeModelAtomic } from "../../src/qemu/model.js";
import { tempPathFor } from "../../src/util/temp-files.js";

test("writeModelAtomic writes through tempPathFor(file) and renames it over the file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-model-"));
  const rename = mock.method(fs, "renameSync");
  try {
    const file = path.join(dir, "vm.model");
    writeModelAtomic(file, new Uint8Array([1, 2, 3]));
    assert.equal(rename.mock.callCount(), 1);
    assert.deepEqual(rename.mock.calls[0].arguments, [tempPathFor(file), file]);
    assert.deepEqual([...fs.readFileSync(file)], [1, 2, 3]);
    assert.deepEqual(fs.readdirSync(dir), ["vm.model"], "no temporary file left");
  } finally {
    rename.mock.restore();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("writeModelAtomic saves a model whose name is near the longest a filesystem takes", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-model-"));
  try {
    // 250 bytes: fits, but not with a suffix added to it (NAME_MAX 255); tempPathFor shortens the temporary name.
    const file = path.join(dir, `${"m".repeat(244)}.model`);
    fs.writeFileSync(file, "old");
    writeModelAtomic(file, new Uint8Array([9, 8]));
    assert.deepEqual([...fs.readFileSync(file)], [9, 8]);
    assert.deepEqual(fs.readdirSync(dir), [path.basename(file)]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
