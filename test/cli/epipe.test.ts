// A reader that stops early (`| head`) is not a failure of the command: it ends quietly, exit 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

test("convert TRACE - | head -1: exit 0, nothing on stderr", async () => {
  const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "convert", "traces/perl.txt.gz", "-"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => { err += d; });
  // read the first chunk, then close our end of the pipe as head does
  await new Promise<void>((r) => p.stdout.once("data", () => { p.stdout.destroy(); r(); }));
  const code = await new Promise((r) => p.on("close", r));
  assert.equal(code, 0, err);
  assert.equal(err, "");
});
