/**
 * `ppm-prefetch convert IN OUT [--to text|binary]`: stream a trace from one format to the other.
 * The input format (text or binary, gzipped or not) is detected from its bytes; the output format
 * follows --to, else OUT's name (`.ppmt` or `.bin` = binary, anything else text; a `.gz` suffix
 * gzips). Memory stays constant: chunks of 64k accesses flow through, never one object per access.
 * The output appears atomically (tmp + rename); on a malformed input nothing is left behind.
 */
import { parseArgs } from "node:util";
import { createWriteStream, existsSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { createGzip } from "node:zlib";
import { once } from "node:events";
import type { Writable } from "node:stream";
import { UsageError, choiceOption } from "./args.js";
import { readAnyTraceChunks } from "../trace/read.js";
import { BinaryTraceEncoder } from "../trace/binary.js";
import { formatTraceLines } from "../trace/format.js";

const USAGE = `usage: ppm-prefetch convert IN OUT [--to text|binary]

  IN    a trace, text or binary, optionally gzipped (detected from its bytes)
  OUT   written atomically; format from --to, else from the name (.ppmt/.bin binary, else text; .gz gzips)
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: { to: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) { process.stdout.write(USAGE); return 0; }
  if (positionals.length !== 2) throw new UsageError(`expected IN and OUT, got ${positionals.length} argument(s)`);
  const [input, output] = positionals;
  if (!existsSync(input)) throw new UsageError(`no such file: ${input}`);
  const byName = /\.(ppmt|bin)(\.gz)?$/.test(output) ? "binary" : "text";
  const to = choiceOption("to", values.to, byName, ["text", "binary"] as const);
  const n = await convertTrace(input, output, to);
  process.stderr.write(`converted ${n} accesses to ${to}: ${output}\n`);
  return 0;
}

/** Stream IN to OUT in the given encoding; returns the number of accesses. */
export async function convertTrace(input: string, output: string, to: "text" | "binary"): Promise<number> {
  const tmp = `${output}.tmp-${process.pid}`;
  const file = createWriteStream(tmp);
  let sink: Writable = file;
  if (output.endsWith(".gz")) { const gz = createGzip(); gz.pipe(file); sink = gz; }
  const write = async (data: Uint8Array | string) => { if (data.length && !sink.write(data)) await once(sink, "drain"); };
  const enc = new BinaryTraceEncoder();
  let n = 0;
  try {
    if (to === "binary") await write(enc.header());
    else await write("# ppm-prefetch trace: page gap [stream]\n");
    for await (const c of readAnyTraceChunks(input)) {
      await write(to === "binary" ? enc.encode(c) : formatTraceLines(c));
      n += c.length;
    }
    if (to === "binary") await write(enc.trailer());
    sink.end();
    await once(file, "close");
    await rename(tmp, output);
  } catch (e) {
    sink.destroy();
    file.destroy();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return n;
}
