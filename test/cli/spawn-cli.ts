/** The CLI as a child process, for the tests that run it as a user would (from the sources through tsx, or the built dist/). */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
export const DIST_MAIN = join(ROOT, "dist/cli/main.js");

export interface Run { code: number | null; out: string; err: string }
export interface Proc { done: Promise<Run>; out: () => string; err: () => string; kill: (s?: NodeJS.Signals) => void }

/** `ppm-prefetch ARGS` (PPM_DEBUG off, killed after `timeoutMs`); `dist`: the built CLI instead of the sources. */
export function cli(args: string[], { dist = false, timeoutMs = 60_000 } = {}): Proc {
  const argv = dist ? [DIST_MAIN, ...args] : ["--import", "tsx", MAIN, ...args];
  const p = spawn(process.execPath, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PPM_DEBUG: "" } });
  let out = "", err = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { err += d; });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const done = new Promise<Run>((resolve) => p.on("close", (code) => { clearTimeout(timer); resolve({ code, out, err }); }));
  return { done, out: () => out, err: () => err, kill: (s) => p.kill(s) };
}

/** Poll `cond` every 25 ms; fail the test naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
