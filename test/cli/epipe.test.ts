// A reader that stops early (`| head`) is not a failure of the command: it ends quietly, exit 0.
// Any other failure to write stdout is: the output is lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
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

test("a stdout that fails otherwise (a full disk: /dev/full) is a failure: one line naming the output, exit 1", { skip: !existsSync("/dev/full") && "no /dev/full here" }, () => {
  for (const args of [["trace-stats", "traces/perl.txt.gz"], ["--help"]]) {
    const r = spawnSync("bash", ["-c", `exec "${process.execPath}" --import tsx src/cli/main.ts ${args.join(" ")} > /dev/full`], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^ppm-prefetch (trace-stats|--help): cannot write the output: .*ENOSPC.*\n$/);
  }
});
