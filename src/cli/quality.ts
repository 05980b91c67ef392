/**
 * `ppm-prefetch quality [TRACE...] [--layouts virtual,4k] [--switch-at 0.3] [--depth 8] [--feedback]
 *   [--seed 1] [--engine JSON] [--train-chunk N] [--json]`
 * The engine's quality table (faults as % of demand paging) against next-8, markov1 and the blend.
 * Without traces it uses the bundled real ones. `--engine '{"filter":128}'` replaces engine defaults
 * (how the design choices in RESULTS.md are measured); `--seed` places the 4k/2m layouts differently;
 * `--train-chunk N` feeds the engine its history in train() calls of N pages (0: one call).
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { qualityTable, formatQualityTable, type QualityRow } from "../quality/table.js";
import { isLayoutName, type LayoutName } from "../trace/layout.js";
import { UsageError, intOption, numberOption } from "./args.js";
import { resolveOptions, type FullPredictorOptions } from "../engine/options.js";
import { inFile } from "./errors.js";
import { checkAccesses, checkSpan, scanTraceFile } from "./input.js";

export const BUNDLED_TRACES = ["sqlite.txt.gz", "xz.txt.gz"].map((f) => fileURLToPath(new URL(`../../traces/${f}`, import.meta.url)));

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      layouts: { type: "string" }, "switch-at": { type: "string" }, depth: { type: "string" },
      feedback: { type: "boolean" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
      seed: { type: "string" }, engine: { type: "string" }, "train-chunk": { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write("usage: ppm-prefetch quality [TRACE...] [--layouts virtual,2m,4k] [--switch-at 0.3] [--depth 8] [--feedback] [--seed 1] [--engine JSON] [--train-chunk N] [--json]\n");
    return 0;
  }
  const layouts = (values.layouts ?? "virtual,4k").split(",");
  for (const l of layouts) if (!isLayoutName(l)) throw new UsageError(`--layouts takes virtual, 2m, 4k; got ${JSON.stringify(l)}`);
  const switchAt = numberOption("switch-at", values["switch-at"], 0.3, 0, 0.99);
  const depth = intOption("depth", values.depth, 8, 1, 256);
  const seed = intOption("seed", values.seed, 1, 0, 0xffffffff);
  const engine = engineOptions(values.engine);
  const trainChunk = intOption("train-chunk", values["train-chunk"], 0, 0, 0xffffffff);
  const traces = positionals.length ? positionals : BUNDLED_TRACES;
  for (const t of traces) if (!existsSync(t)) throw new UsageError(`trace file not found: ${t}`);
  // Every trace is checked (one streaming pass, nothing kept) before any replay runs: a malformed,
  // truncated, empty or binary trace, or one whose pages span more than a replay can hold, is
  // refused up front and named.
  for (const t of traces) {
    const s = await scanTraceFile(t);
    if (s.encoding !== "text") throw new UsageError(`${t} is a binary trace; quality reads text traces (ppm-prefetch convert ${t} OUT.txt.gz)`);
    checkAccesses(t, s.accesses);
    checkSpan(t, s.maxPage, layouts as LayoutName[]);
  }
  const progress = process.stderr.isTTY ? (m: string) => process.stderr.write(`\r\x1b[K${m}`) : undefined;
  const opts = { layouts: layouts as LayoutName[], switchAt, depth, feedback: values.feedback, seed, engine, trainChunk, onProgress: progress };
  // one trace per call (the table treats traces independently), so an error names its file
  const rows: QualityRow[] = [];
  for (const t of traces) rows.push(...await inFile(t, () => qualityTable([t], opts)));
  if (progress) process.stderr.write("\r\x1b[K");
  if (values.json) process.stdout.write(JSON.stringify({ depth, switchAt, feedback: !!values.feedback, seed, engine, trainChunk, rows }, null, 2) + "\n");
  else process.stdout.write(formatQualityTable(rows, depth));
  return 0;
}

/** `--engine '{"filter":128}'`: engine options over the defaults, checked before any replay runs. */
function engineOptions(text: string | undefined): Partial<FullPredictorOptions> {
  if (text === undefined) return {};
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new UsageError(`--engine takes a JSON object of engine options, got ${JSON.stringify(text)}`);
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new UsageError(`--engine takes a JSON object of engine options, got ${JSON.stringify(text)}`);
  for (const k of ["pageCount", "depth", "streams"]) if (k in o) throw new UsageError(`--engine: ${k} is set by the replay (use --depth for depth)`);
  try {
    resolveOptions({ pageCount: 1, ...(o as Partial<FullPredictorOptions>) });
  } catch (e) {
    throw new UsageError(`--engine: ${(e as Error).message}`);
  }
  return o as Partial<FullPredictorOptions>;
}
