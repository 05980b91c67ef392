/**
 * `ppm-prefetch trace-stats FILE [--json] [--limit N]`: how predictable a trace is, at a glance
 * (definitions in src/trace/stats.ts).
 */
import { parseArgs } from "node:util";
import { UsageError, intOption } from "./args.js";
import { checkInputFile, readTraceFile } from "./input.js";
import { computeTraceStats, formatTraceStats } from "../trace/stats.js";

const HELP = `usage: ppm-prefetch trace-stats FILE [--json] [--limit N]

FILE is a text or binary trace, gzipped or not. Accesses, distinct pages, footprint, instructions
(sum of gaps), writes (accesses of kind w and pages written; "unknown" for traces without the
access-kind column), the most common deltas between
consecutive first touches, a reuse-distance summary (in distinct pages), and the share of first
touches a sequential (next 1..8 pages) or a majority-delta (Leap-like) predictor would catch.

options:
  --json        machine-readable output
  --limit N     read only the first N accesses
  -h, --help    this help
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      limit: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (positionals.length !== 1) throw new UsageError(`expected exactly one trace FILE, got ${positionals.length}`);
  const limit = values.limit === undefined ? undefined : intOption("limit", values.limit, 0, 1, Number.MAX_SAFE_INTEGER);
  // A missing, malformed or truncated file is bad input (exit 2, one line naming the file: input.ts, errors.ts).
  await checkInputFile("trace", positionals[0]);
  const trace = await readTraceFile(positionals[0], { limit });
  if (trace.pages.length === 0) throw new UsageError(`${positionals[0]} holds no accesses`);
  const s = computeTraceStats(trace);
  process.stdout.write(values.json ? JSON.stringify(s, null, 2) + "\n" : formatTraceStats(s));
  return 0;
}
