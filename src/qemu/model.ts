/** The proxy's model file (`--model FILE`): read when a migration starts, replaced atomically when one completes. */
import fs from "node:fs";
import path from "node:path";
import { atomicTarget, tempPathFor } from "../util/temp-files.js";
import { loadPolicyEngine, modelProblem } from "./policy.js";

/** The saved model, or null when the file does not exist (other errors are thrown). */
export function readModel(file: string): Uint8Array | null {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/**
 * The check of `--model FILE` before the proxy starts: the directory the model is saved into must
 * exist, and a file already there must be a model (else the first completed migration would replace
 * whatever it holds). Returns the model's bytes, or null when there is no file yet (start empty).
 * Throws an Error whose message says what is wrong, without the file's name (the caller adds it).
 * Loads the engine (loadPolicyEngine), so that modelProblem() can check the file again before it is replaced.
 */
export async function checkModelFile(file: string): Promise<Uint8Array | null> {
  const dir = path.dirname(file);
  const d = fs.statSync(dir, { throwIfNoEntry: false });
  if (!d || !d.isDirectory()) throw new Error(`directory ${dir} does not exist (the model is saved there)`);
  await loadPolicyEngine(); // also for modelProblem() when the model is saved
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return null;
  if (!st.isFile()) throw new Error(`not a regular file${st.isDirectory() ? " (a directory)" : ""}`);
  const bytes = readModel(file);
  if (bytes === null) return null;
  const why = modelProblem(bytes);
  if (why !== null) {
    throw new Error(`not a model file (${why}); it would be replaced when a migration completes: ` +
      `name a model an earlier run saved, or a file that does not exist yet`);
  }
  return bytes;
}

/**
 * Save a model over `file` unless what is there now is not a model (put there since the proxy
 * checked it at start): then throw, leaving the file as it is. `loadPolicyEngine()` must have been awaited.
 */
export function replaceModel(file: string, bytes: Uint8Array): void {
  const there = readModel(file);
  const why = there === null ? null : modelProblem(there);
  if (why !== null) throw new Error(`${file} is no longer a model file (${why}); not replaced`);
  writeModelAtomic(file, bytes);
}

/**
 * Write to a temporary file beside it, fsync, then rename over: a reader sees the old or the new model, never a part.
 * The temporary name is tempPathFor's, as for every atomic write (it also fits names near NAME_MAX).
 * It is not registered with trackTempFile: this runs synchronously, so no signal handler can run before
 * the rename or the removal below.
 */
export function writeModelAtomic(file: string, bytes: Uint8Array): void {
  const target = atomicTarget(file);
  if (target.direct) {
    // a device or FIFO: written in place (a rename would replace it with a plain file)
    const fd = fs.openSync(target.path, "w");
    try { for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at); } finally { fs.closeSync(fd); }
    return;
  }
  file = target.path; // a symbolic link stays: the file it names is replaced
  const tmp = tempPathFor(file);
  const fd = fs.openSync(tmp, "w", 0o644);
  try {
    try {
      // writeSync may write less than asked (large buffers): loop until every byte is out
      for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true }); // a failed write or fsync leaves no temporary file behind
    throw e;
  }
  // the rename itself reaches the disk with the directory
  try { const d = fs.openSync(path.dirname(file), "r"); try { fs.fsyncSync(d); } finally { fs.closeSync(d); } } catch { /* not supported here */ }
}
