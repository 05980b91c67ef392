/**
 * `ppm-prefetch convert IN OUT [--to text|binary]`: stream a trace from one format to the other.
 * The input format (text or binary, gzipped or not) is detected from its bytes; the output format
 * follows --to, else OUT's name (`.ppmt` or `.bin` = binary, anything else text; a `.gz` suffix
 * gzips). Memory stays constant: chunks of 64k accesses flow through, never one object per access.
 * The output appears atomically (tmp + rename); on a malformed or empty input, a write error or an
 * interruption (SIGINT, SIGTERM, SIGHUP) nothing is left behind.
 */
import { parseArgs } from "node:util";
import { createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { createGzip } from "node:zlib";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { UsageError, choiceOption } from "./args.js";
import { nameFile } from "./errors.js";
import { checkInputFile, checkOutputDir } from "./input.js";
import { atomicTarget, trackTempFile, tempPathFor } from "../util/temp-files.js";
import { readAnyTraceChunks } from "../trace/read.js";
import { BinaryTraceEncoder } from "../trace/binary.js";
import { formatTraceLines } from "../trace/format.js";

const USAGE = `usage: ppm-prefetch convert IN OUT [--to text|binary]

  IN    a trace, text or binary, optionally gzipped (detected from its bytes)
  OUT   written atomically; format from --to, else from the name (.ppmt/.bin binary, else text; .gz gzips);
        - is standard output; a device or FIFO is written in place, never replaced
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { to: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) { process.stdout.write(USAGE); return 0; }
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT, got ${positionals.length} argument(s)`);
  const [input, output] = positionals;
  await checkInputFile("trace", input);
  if (output !== "-") await checkOutputDir(output); // "-": standard output
  const byName = /\.(ppmt|bin)(\.gz)?$/.test(output) ? "binary" : "text";
  const to = choiceOption("to", values.to, byName, ["text", "binary"] as const);
  const n = await convertTrace(input, output, to);
  process.stderr.write(`converted ${n} accesses to ${to}: ${output === "-" ? "standard output" : output}\n`);
  return 0;
}

/**
 * Stream IN to OUT in the given encoding; returns the number of accesses. An input without accesses
 * is refused (UsageError) and writes nothing.
 */
export async function convertTrace(input: string, output: string, to: "text" | "binary"): Promise<number> {
  // "-" is standard output; a device or FIFO is written in place, never replaced
  const toStdout = output === "-";
  const target = toStdout ? { path: output, direct: true } : atomicTarget(output);
  const tmp = target.direct ? null : tempPathFor(target.path);
  const untrack = tmp ? trackTempFile(tmp) : () => undefined;
  let n = 0;
  let reading = true;
  async function* encode(): AsyncGenerator<Uint8Array | string> {
    const enc = new BinaryTraceEncoder();
    yield to === "binary" ? enc.header() : "# ppm-prefetch trace: page gap [stream]\n";
    for await (const c of readAnyTraceChunks(input)) {
      yield to === "binary" ? enc.encode(c) : formatTraceLines(c);
      n += c.length;
    }
    reading = false;
    if (n === 0) throw new UsageError(`${input} holds no accesses; nothing written`);
    if (to === "binary") yield enc.trailer();
  }
  // The write stream's own errors (a full disk: ENOSPC carries no path) are the output's.
  let writeError: unknown = null;
  try {
    const source = Readable.from(encode(), { objectMode: false });
    const sink = toStdout ? process.stdout : createWriteStream(tmp ?? target.path);
    // (pipeline also destroys the sink with a reader's error: only a system call's own failure counts)
    sink.on("error", (e) => { if (typeof (e as { syscall?: unknown }).syscall === "string") writeError = e; });
    // standard output stays open for whoever writes after us
    if (output.endsWith(".gz")) await pipeline(source, createGzip(), sink, { end: !toStdout });
    else await pipeline(source, sink, { end: !toStdout });
    if (tmp) await rename(tmp, target.path);
  } catch (e) {
    if (tmp) await unlink(tmp).catch(() => undefined);
    // a pathless error (gunzip) while reading names the input; one on the temp file names OUT
    const onTmp = e === writeError || (e as { path?: string }).path === (tmp ?? target.path) || (e as { dest?: string }).dest === target.path;
    throw onTmp ? nameFile(e, output, true) : reading ? nameFile(e, input) : e;
  } finally {
    untrack();
  }
  return n;
}
