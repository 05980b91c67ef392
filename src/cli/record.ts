/**
 * `ppm-prefetch record --out FILE.gz [--max-accesses N] [--window K] -- COMMAND [ARGS...]`
 * Runs COMMAND under valgrind lackey and writes its page-access trace (see src/trace/record.ts).
 */
import { parseArgs } from "node:util";
import { stat } from "node:fs/promises";
import { UsageError, intOption } from "./args.js";
import { describeError, nameFile } from "./errors.js";
import { checkOutputDir } from "./input.js";
import { DEFAULT_WINDOW, recordTrace, which } from "../trace/record.js";
import { tempPathFor } from "../util/temp-files.js";

const HELP = `usage: ppm-prefetch record --out FILE.gz [options] -- COMMAND [ARGS...]

Run COMMAND under valgrind's lackey tool and write its page-access trace in the text format
(\`page gap kind\` per line, kind w when the page was written, r when only read; gzipped when
FILE ends in .gz). The raw lackey log streams through a pipe
and a byte filter: it is never stored. A data access is kept only when its 4 KiB page is not among
the last K distinct pages touched; gap = guest instructions since the previous kept line; pages are
renumbered 0..N-1 in address order. COMMAND keeps its stdin/stdout/stderr; this command's summary
goes to stderr.

options:
  -o, --out FILE          output trace (required); written atomically (FILE.tmp-PID, then rename)
  -n, --max-accesses N    stop after N data accesses (loads/stores/modifies) and kill the command
  -w, --window K          recency window in distinct pages (default ${DEFAULT_WINDOW})
  -h, --help              this help

exit codes: 0 trace written; 1 the command failed, or the trace could not be written (a full disk:
the message names FILE; no trace written); 2 bad options, FILE's directory missing or FILE a
directory, COMMAND not found, or no valgrind.
Needs valgrind on PATH (Debian/Ubuntu: apt-get install valgrind).
`;

export async function run(args: string[]): Promise<number> {
  const sep = args.indexOf("--");
  const own = sep < 0 ? args : args.slice(0, sep);
  const command = sep < 0 ? [] : args.slice(sep + 1);
  const { values } = parseArgs({
    args: own,
    options: {
      out: { type: "string", short: "o" },
      "max-accesses": { type: "string", short: "n" },
      window: { type: "string", short: "w" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (values.out === undefined || values.out === "") throw new UsageError("--out FILE is required");
  const out = values.out;
  const maxAccesses = values["max-accesses"] === undefined ? undefined : intOption("max-accesses", values["max-accesses"], 0, 1, Number.MAX_SAFE_INTEGER);
  const window = intOption("window", values.window, DEFAULT_WINDOW, 1, 4096);
  if (sep < 0) throw new UsageError("missing `-- COMMAND [ARGS...]` (put `--` before the command to record)");
  if (command.length === 0 || command[0] === "") throw new UsageError("no command after `--`");
  if (out.endsWith("/")) throw new UsageError(`--out must name a file, got ${JSON.stringify(out)}`);
  // before the (long) run whose end writes it: the directory exists and the path is not a directory
  await checkOutputDir(out, "--out");

  const valgrind = await which("valgrind");
  if (!valgrind) {
    // One line, as every refusal of the CLI (README): what is missing and how to get it.
    process.stderr.write("ppm-prefetch record: valgrind was not found on PATH (it traces the memory accesses); install it, e.g. `apt-get install valgrind`, `dnf install valgrind` or `brew install valgrind`\n");
    return 2;
  }
  // valgrind looks the command up as a shell would (PATH unless it has a slash): a command that is
  // not there is bad input, said now rather than as valgrind's exit code after the fact
  const program = await which(command[0]);
  if (!program || !(await stat(program).then((s) => s.isFile(), () => false))) {
    const where = command[0].includes("/") ? "no executable file there" : "no executable file of that name on PATH";
    throw new UsageError(`the command ${JSON.stringify(command[0])} to record was not found (${where}); no trace written`);
  }

  // Ctrl-C (or a TERM/HUP) keeps what was recorded: the recording stops as --max-accesses stops it.
  const interrupt = new AbortController();
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const handlers = signals.map((sig) => { const h = () => interrupt.abort(sig); process.on(sig, h); return [sig, h] as const; });
  let r;
  try {
    r = await recordTrace({ command: command[0], args: command.slice(1), out, maxAccesses, window, valgrind, signal: interrupt.signal });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // writing the trace (its temporary file, then the rename) failed: name the output, not FILE.tmp-PID
    const writing = typeof err.code === "string" && (err.syscall === "write" || (typeof err.path === "string" && (err.path.startsWith(out) || err.path === tempPathFor(out))));
    const r = describeError(writing ? nameFile(e, out, true) : e);
    process.stderr.write(`ppm-prefetch record: ${r.message}; no trace written\n`);
    return writing ? r.exitCode : 1;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
  if (!r.written) {
    const how = r.signal ? `was killed by signal ${r.signal}` : r.exitCode === 127 ? "was not found or could not be run (exit code 127)" : `failed with exit code ${r.exitCode}`;
    process.stderr.write(`ppm-prefetch record: the command ${how}; no trace written (${r.accesses} data accesses had been seen)\n`);
    return 1;
  }
  const mib = (r.distinctPages * 4096) / 2 ** 20;
  process.stderr.write(
    `ppm-prefetch record: wrote ${out}: ${r.keptLines} lines, ${r.distinctPages} distinct pages (${mib.toFixed(1)} MiB), ` +
    `${r.accesses} data accesses (${pct(r.writeAccesses, r.accesses)} stores/modifies), ${r.writtenLines} w lines (${pct(r.writtenLines, r.keptLines)}), ${r.instructions} instructions${r.interrupted ? ` (interrupted by ${r.interrupted}: the trace holds the run so far)` : r.stopped ? ` (stopped at --max-accesses ${maxAccesses})` : ""}; ` +
    `${r.lackeyLines} lackey lines in ${r.seconds.toFixed(1)} s (${(r.lackeyLines / r.seconds / 1e6).toFixed(2)} M lines/s)` +
    (r.clampedGaps ? `; ${r.clampedGaps} gaps clamped to 2^32-1` : "") + "\n",
  );
  return 0;
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : "-";
}
