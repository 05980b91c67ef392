/** The proxy's model file (`--model FILE`): read when a migration starts, replaced atomically when one completes. */
import fs from "node:fs";
import path from "node:path";

/** The saved model, or null when the file does not exist (other errors are thrown). */
export function readModel(file: string): Uint8Array | null {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Write to a temporary file beside it, fsync, then rename over: a reader sees the old or the new model, never a part. */
export function writeModelAtomic(file: string, bytes: Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, "w", 0o644);
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
