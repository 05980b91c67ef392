/**
 * Concurrent migrations on one page server: the stall of each of N simultaneous migrations against
 * the stall of one alone. The source is a separate `ppm-prefetch serve` process (each migration's
 * strategy built and trained in its own worker thread); each destination is a `migrate --json` process.
 *
 *   node --import tsx test/transport/concurrency.ts [--n 8] [--reps 3] [--strategy ppm-hybrid]
 *     [--trace test/fixtures/sqlite-300k.txt.gz] [--layout 4k] [--image-size 64M] [--ips 1e9]
 *     [--push linear] [--main src/cli/main.ts] [--json]
 *
 * `--main` runs another checkout's CLI (for before/after figures); it must accept the same flags.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { MigrationResult } from "../../src/transport/destination.js";
import { readTrace } from "../../src/trace/read.js";
import type { LayoutName } from "../../src/trace/layout.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: v } = parseArgs({
  options: {
    n: { type: "string" }, reps: { type: "string" }, strategy: { type: "string" }, trace: { type: "string" }, layout: { type: "string" },
    "image-size": { type: "string" }, ips: { type: "string" }, main: { type: "string" }, json: { type: "boolean" }, push: { type: "string" },
  },
});
const n = Number(v.n ?? 8);
const reps = Number(v.reps ?? 3);
const strategy = v.strategy ?? "ppm-hybrid";
const tracePath = v.trace ?? join(ROOT, "test/fixtures/sqlite-300k.txt.gz");
const layout = (v.layout ?? "4k") as LayoutName;
const size = v["image-size"] ?? "64M";
const ips = Number(v.ips ?? 1e9);
const push = v.push ?? "linear";
const MAIN = v.main ? resolve(v.main) : join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "ppm-concurrency-"));
const imagePath = join(dir, "image.bin");

function serve(generate: boolean, exitAfter: number): Promise<{ port: number; done: Promise<number> }> {
  const args = [...(MAIN.endsWith(".ts") ? ["--import", "tsx"] : []), MAIN, "serve", "--image", imagePath, ...(generate ? ["--generate", size] : []), "--port", "0",
    "--strategy", strategy, "--push", push, "--history", tracePath, "--layout", layout, "--exit-after", String(exitAfter), "--quiet"];
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const done = new Promise<number>((r) => p.on("close", (c) => r(c ?? -1)));
  return new Promise((res, rej) => {
    let out = "";
    p.stdout.on("data", (d) => { out += d; const m = /listening on [\d.]+:(\d+)/.exec(out); if (m) res({ port: Number(m[1]), done }); });
    done.then((c) => rej(new Error(`serve exited ${c}`)));
  });
}

/** One destination process (`migrate --json`): destinations do not share an event loop, as in a real migration. */
function migrate(port: number): Promise<MigrationResult> {
  const args = [...(MAIN.endsWith(".ts") ? ["--import", "tsx"] : []), MAIN, "migrate", "--connect", `127.0.0.1:${port}`, "--trace", tracePath,
    "--layout", layout, "--ips", String(ips), "--json"];
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  p.stdout.on("data", (d) => { out += d; });
  return new Promise((res, rej) => p.on("close", (c) => {
    if (c !== 0) return rej(new Error(`migrate exited ${c}: ${out}`));
    const r = JSON.parse(out);
    res({ ...r, stall: { maxUs: NaN } } as MigrationResult);
  }));
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const trace = await readTrace(tracePath);
const check = (r: MigrationResult) => { if (!r.verified || r.duplicatePages !== 0) throw new Error(`not verified: ${JSON.stringify(r)}`); return r; };
const alone: number[] = [];
const together: number[][] = [];
try {
  process.stderr.write(`${strategy}, push ${push}, ${trace.name}, layout ${layout}, image ${size}, ips ${ips}, ${MAIN}; load ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
  let first = true;
  for (let i = 0; i < reps; i++) {
    const s1 = await serve(first, 1);
    first = false;
    const r = check(await migrate(s1.port));
    await s1.done;
    alone.push(r.stallMs);
    const sn = await serve(false, n);
    const rs = (await Promise.all(Array.from({ length: n }, () => migrate(sn.port)))).map(check);
    await sn.done;
    together.push(rs.map((x) => x.stallMs));
    process.stderr.write(`  alone ${r.stallMs.toFixed(1)} ms (${r.faults} faults); ${n} together: ${rs.map((x) => `${x.stallMs.toFixed(1)} (${x.faults})`).join(" ")} ms\n`);
  }
} finally { rmSync(dir, { recursive: true, force: true }); }
const all = together.flat();
const res = {
  strategy, push, n, reps, aloneMedianMs: median(alone), aloneMs: alone,
  togetherMedianMs: median(all), togetherMaxMs: Math.max(...all), ratioMedian: median(all) / median(alone), ratioWorst: Math.max(...all) / median(alone),
  load: loadavg(),
};
process.stdout.write(v.json ? JSON.stringify(res) + "\n" :
  `stall alone: median ${res.aloneMedianMs.toFixed(1)} ms [${alone.map((x) => x.toFixed(1)).join(", ")}]; ${n} concurrent: median ${res.togetherMedianMs.toFixed(1)} ms, ` +
  `worst ${res.togetherMaxMs.toFixed(1)} ms; ratio median ${res.ratioMedian.toFixed(2)}, worst ${res.ratioWorst.toFixed(2)}\n`);
