/**
 * Temporary files that must not outlive the process: an atomic write's `OUT.tmp-PID` is removed
 * when the process is interrupted (SIGINT, SIGTERM, SIGHUP) or exits before the rename.
 *
 * The signal handlers are installed only while a file is registered, so a process that writes no
 * temp file keeps Node's default signal behaviour (and the handlers of commands like `serve`). After
 * removing the files the handler re-raises the signal, so the process still dies of it (exit status
 * 128 + signal number in a shell).
 */
import { realpathSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const live = new Set<string>();
let installed = false;

function removeAll(): void {
  for (const p of live) {
    try { unlinkSync(p); } catch { /* already gone or renamed */ }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removeAll();
  uninstall();
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on("exit", removeAll);
}

// A signal that arrived while a file was registered may still wait for the event loop to dispatch
// it when the last file is unregistered (a Ctrl-C during the final fsync or rename): removing the
// handlers at once would drop it (Node closes its watcher). So they stay until the loop has polled
// once more; a signal found then finds no file and re-raises itself (onSignal), as it would have.
let uninstallDue = false;
function uninstallSoon(): void {
  if (uninstallDue) return;
  uninstallDue = true;
  setImmediate(() => setImmediate(() => {
    uninstallDue = false;
    if (live.size === 0) uninstall();
  }).unref()).unref();
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off("exit", removeAll);
}

/** Longest file name (bytes) that ext4, xfs, btrfs and tmpfs take. */
const NAME_MAX = 255;

/**
 * The temporary file an atomic write of `path` goes through: `path.tmp-PID` beside it (the same
 * directory, so the rename stays on one filesystem), or, when that name would be longer than a
 * filesystem takes, the name cut short with the suffix kept, so that any name that can be written
 * can be written atomically.
 */
export function tempPathFor(path: string): string {
  const suffix = `.tmp-${process.pid}`;
  const name = basename(path);
  const room = NAME_MAX - Buffer.byteLength(suffix);
  if (Buffer.byteLength(name) <= room) return `${path}${suffix}`;
  const chars = Array.from(name); // by code points: never half a character
  while (Buffer.byteLength(chars.join("")) > room) chars.pop();
  return join(dirname(path), chars.join("") + suffix);
}

/**
 * Where a write of `path` that is atomic when it can be really goes. An existing path that is not a
 * regular file (a device such as /dev/stdout or /dev/null, a FIFO, a socket) cannot be replaced
 * atomically and must not be replaced at all: a rename would put a plain file where the device was
 * (as root, `convert IN /dev/stdout` used to turn /dev/stdout into a 67 MB file). It is written in
 * place (`direct`). A symbolic link is followed, so the link stays and the file it names is replaced.
 * Anything else (a regular file, a name not there yet) goes through `tempPathFor` and a rename.
 */
export function atomicTarget(path: string): { path: string; direct: boolean } {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    return { path, direct: false }; // not there yet (or a dangling link: replaced like a new name)
  }
  if (!isFile) return { path, direct: true };
  try { return { path: realpathSync(path), direct: false }; } catch { return { path, direct: false }; }
}

/**
 * Register `path` for removal on interruption or exit; call the returned function once the file was
 * renamed into place or removed (it unregisters, and uninstalls the handlers when none is left).
 */
export function trackTempFile(path: string): () => void {
  live.add(path);
  install();
  return () => {
    live.delete(path);
    if (live.size === 0) uninstallSoon();
  };
}

/** The registered files (for tests). */
export function trackedTempFiles(): string[] {
  return [...live];
}
