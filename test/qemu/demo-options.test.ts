/**
 * `npm run qemu-demo` refuses a bad option by name and value (exit 2) before it builds a guest or
 * starts a QEMU: these run on any machine, QEMU or not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

test("qemu-demo: bad numbers and an unknown guest are refused by name, exit 2, nothing started", () => {
  const cases: [string[], RegExp][] = [
    [["--hops", "0"], /--hops must be an integer in 1\.\.1000, got "0"/],
    [["--hops", "abc"], /--hops must be an integer in 1\.\.1000, got "abc"/],
    [["--guest", "bogus"], /--guest must be md5, walk or both, got "bogus"/],
    [["--mem-mb", "12.5"], /--mem-mb must be an integer/],
    [["--min-confidence", "2"], /--min-confidence must be a number in 0\.\.1, got "2"/],
    [["--runs", ""], /--runs must be an integer in 1\.\.10000, got ""/],
    [["--max-pages", "0"], /--max-pages must be an integer in 1\.\.64, got "0"/],
    [["--precopy-ms", ""], /--precopy-ms must be a number in 0\.\.600000, got ""/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/qemu-demo.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});
