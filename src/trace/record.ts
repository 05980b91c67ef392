/**
 * Recording page-access traces of real programs with valgrind's lackey tool.
 *
 * `valgrind --tool=lackey --trace-mem=yes` prints one line per guest instruction and per data access:
 *   `I  0401ab70,3`   an instruction (address,size)
 *   ` L 1fff000768,8` a load, ` S ...` a store, ` M ...` a modify (load+store of the same address)
 *   `==123== ...`     valgrind's own messages (banner, summary)
 * A run prints millions of lines per second of guest time, so {@link LackeyFilter} parses the raw bytes
 * with a small state machine that survives any chunk split (no per-line strings, no carried partial
 * line), and keeps only what the trace format needs:
 *   - a data access to 4 KiB page P (P = address >> 12 of the access's first byte) is kept only when P is
 *     not among the last `window` (default 8) distinct pages touched; otherwise it only refreshes P's
 *     recency (such re-touches can never fault in post-copy);
 *   - each kept access records `gap` = guest instructions (`I` lines) since the previous kept access;
 *   - each kept access records whether its page was WRITTEN during the stay in the recency window that
 *     it opens: by the kept access itself (an `S` store or `M` modify) or by any later access to the same
 *     page folded into the window before the page dropped out of it (every folded access belongs to the
 *     kept line of its page that is still in the window: the page's latest kept line). `L` loads only read.
 *     This is what a dirty log would see of the page over that stretch of time (src/trace/format.ts).
 * Kept accesses are stored compactly (raw page as a float64, exact for any 53-bit page number; gap as a
 * u32). Once the run is over, {@link remapPages} renumbers the raw pages 0..N-1 in address order and
 * {@link writeRecordedTrace} writes the text format of src/trace/format.ts atomically.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, constants, createWriteStream, mkdtempSync, openSync, rmSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { lowerBound } from "../util/search.js";
import { atomicTarget, tempPathFor } from "../util/temp-files.js";

export const PAGE_SHIFT = 12;
export const DEFAULT_WINDOW = 8;
const MAX_GAP = 0xffffffff;
const PAGE_DIV = 2 ** PAGE_SHIFT;

// Parser states (one per position within a lackey line).
const START = 0; // at the first byte of a line
const SKIP = 1; // ignore everything up to the next newline
const KIND = 2; // after a leading space: expect L, S or M
const SPACE = 3; // after the kind letter: expect spaces, then the hex address
const HEX = 4; // inside the hex address, up to the comma

export interface LackeyFilterOptions {
  /** Accesses to one of the last `window` distinct pages are folded into the next gap (default 8). */
  window?: number;
  /** Stop after this many data accesses (L/S/M records); the rest of the input is ignored. */
  maxAccesses?: number;
}

/** The kept accesses: raw virtual page numbers, gaps and write flags, `length` valid entries. */
export interface KeptAccesses {
  readonly pages: Float64Array;
  readonly gaps: Uint32Array;
  /** 1 when the page was written by the kept access or by an access folded into its window stay, else 0. */
  readonly writes: Uint8Array;
  readonly length: number;
}

/**
 * Incremental byte filter for lackey `--trace-mem=yes` output. Feed it buffers with `push` (split
 * anywhere, even inside a number) and call `end` once. `push` returns false once `maxAccesses` data
 * accesses have been seen; from then on input is ignored and the caller should stop the producer.
 */
export class LackeyFilter {
  readonly window: number;
  readonly maxAccesses: number;

  /** Data accesses (L/S/M records) counted so far. */
  accesses = 0;
  /** Of those, stores and modifies (S/M records). */
  writeAccesses = 0;
  /** Guest instructions (I records) counted so far (up to the last counted access once done). */
  instructions = 0;
  /** Newline-terminated lackey lines consumed. */
  lines = 0;
  /** Lines that were neither I/L/S/M records nor empty (valgrind `==pid==` messages, anything else). */
  otherLines = 0;
  /** Kept accesses whose gap exceeded 2^32-1 and was clamped. */
  clampedGaps = 0;
  /** True once maxAccesses data accesses have been seen. */
  done = false;

  private state = START;
  private addr = 0;
  private digits = 0;
  private write = false; // the kind of the data record being parsed (S/M: true, L: false)
  private sinceKept = 0; // instructions since the previous kept access
  private readonly recent: Float64Array; // most recent first
  private readonly recentLine: Float64Array; // the kept line of each recent page (its window stay)
  private recentN = 0;
  private pages = new Float64Array(1 << 16);
  private gaps = new Uint32Array(1 << 16);
  private writes = new Uint8Array(1 << 16);
  private n = 0;

  constructor(opts: LackeyFilterOptions = {}) {
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.maxAccesses = opts.maxAccesses ?? Infinity;
    if (!Number.isInteger(this.window) || this.window < 1) throw new RangeError(`window must be a positive integer, got ${this.window}`);
    if (!(this.maxAccesses >= 1)) throw new RangeError(`maxAccesses must be >= 1, got ${this.maxAccesses}`);
    this.recent = new Float64Array(this.window);
    this.recentLine = new Float64Array(this.window);
  }

  /** Consume a chunk of lackey output. Returns false when the access limit has been reached. */
  push(b: Uint8Array): boolean {
    if (this.done) return false;
    const n = b.length;
    let i = 0;
    let state = this.state;
    let instr = 0; // instructions seen in this call but not yet added to the counters
    while (i < n) {
      if (state === SKIP) {
        // Skip to the end of the line. Lines are short (~14 bytes), a plain loop beats indexOf's call cost.
        while (i < n && b[i] !== 10) i++;
        if (i === n) break;
        i++;
        this.lines++;
        state = START;
        continue;
      }
      if (state === START) {
        const c = b[i++];
        if (c === 73 /* I */) { instr++; state = SKIP; }
        else if (c === 32 /* space */) state = KIND;
        else if (c === 10) this.lines++;
        else { this.otherLines++; state = SKIP; }
        continue;
      }
      if (state === KIND) {
        const c = b[i++];
        if (c === 76 /* L */) { this.write = false; state = SPACE; }
        else if (c === 83 /* S */ || c === 77 /* M */) { this.write = true; state = SPACE; }
        else if (c === 10) { this.lines++; this.otherLines++; state = START; }
        else { this.otherLines++; state = SKIP; }
        continue;
      }
      if (state === SPACE) {
        const c = b[i];
        if (c === 32) { i++; continue; }
        this.addr = 0;
        this.digits = 0;
        state = HEX;
        continue;
      }
      // HEX: accumulate the address in a float64 (exact below 2^53; user addresses are < 2^57 only with
      // 5-level paging, and the page number of even those is exact since only the low 12 bits are lost).
      let addr = this.addr;
      let digits = this.digits;
      let c = 0;
      while (i < n) {
        c = b[i];
        const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
        if (d < 0) break;
        addr = addr * 16 + d;
        digits++;
        i++;
      }
      if (i === n) { this.addr = addr; this.digits = digits; break; }
      if (c === 44 /* , */ && digits > 0) {
        // A complete data access. Settle the instructions counted so far first: the gap is measured up to here.
        this.sinceKept += instr;
        this.instructions += instr;
        instr = 0;
        if (this.write) this.writeAccesses++;
        this.access(Math.floor(addr / PAGE_DIV), this.write);
        if (++this.accesses >= this.maxAccesses) { this.done = true; state = SKIP; break; }
        state = SKIP;
      } else if (c === 10) { i++; this.lines++; this.otherLines++; state = START; }
      else { this.otherLines++; state = SKIP; }
    }
    this.sinceKept += instr;
    this.instructions += instr;
    this.state = state;
    return !this.done;
  }

  /** Signal the end of input. A final line without a newline still counts (an access needs its comma). */
  end(): void {
    if (this.state !== START) this.lines++;
    this.state = START;
  }

  private access(page: number, write: boolean): void {
    const r = this.recent;
    const rl = this.recentLine;
    if (this.recentN > 0 && r[0] === page) { // by far the most common case
      if (write) this.writes[rl[0]] = 1;
      return;
    }
    let k = 1;
    const m = this.recentN;
    while (k < m && r[k] !== page) k++;
    if (k < m) {
      // A re-touch of a recent page: move it to the front, nothing is emitted; a write marks its line.
      const line = rl[k];
      for (let j = k; j > 0; j--) { r[j] = r[j - 1]; rl[j] = rl[j - 1]; }
      r[0] = page;
      rl[0] = line;
      if (write) this.writes[line] = 1;
      return;
    }
    // Not among the last `window` distinct pages: emit, and make it the most recent.
    const last = m < this.window ? m : m - 1;
    for (let j = last; j > 0; j--) { r[j] = r[j - 1]; rl[j] = rl[j - 1]; }
    r[0] = page;
    rl[0] = this.n;
    if (m < this.window) this.recentN = m + 1;
    let gap = this.sinceKept;
    if (gap > MAX_GAP) { gap = MAX_GAP; this.clampedGaps++; }
    this.sinceKept = 0;
    if (this.n === this.pages.length) this.grow();
    this.pages[this.n] = page;
    this.gaps[this.n] = gap;
    this.writes[this.n] = write ? 1 : 0;
    this.n++;
  }

  private grow(): void {
    const p = new Float64Array(this.pages.length * 2); p.set(this.pages); this.pages = p;
    const g = new Uint32Array(this.gaps.length * 2); g.set(this.gaps); this.gaps = g;
    const w = new Uint8Array(this.writes.length * 2); w.set(this.writes); this.writes = w;
  }

  /** The kept accesses so far (views, valid until the next push). */
  kept(): KeptAccesses {
    return { pages: this.pages.subarray(0, this.n), gaps: this.gaps.subarray(0, this.n), writes: this.writes.subarray(0, this.n), length: this.n };
  }
}

/**
 * Renumber raw page numbers 0..N-1 in address order (neighbouring pages stay neighbours, the holes
 * between mappings are closed). Returns the compact index of every input entry and the sorted distinct
 * raw pages (`distinct[index]` is the raw page).
 */
export function remapPages(raw: Float64Array): { indices: Uint32Array; distinct: Float64Array } {
  const sorted = Float64Array.from(raw).sort();
  let d = 0;
  for (let i = 0; i < sorted.length; i++) if (d === 0 || sorted[i] !== sorted[d - 1]) sorted[d++] = sorted[i];
  if (d > 0x100000000) throw new RangeError("more than 2^32 distinct pages");
  const distinct = sorted.slice(0, d);
  const indices = new Uint32Array(raw.length);
  let prevRaw = NaN;
  let prevIdx = 0;
  for (let i = 0; i < raw.length; i++) {
    const p = raw[i];
    if (p === prevRaw) { indices[i] = prevIdx; continue; }
    const lo = lowerBound(distinct, p, d - 1);
    indices[i] = lo;
    prevRaw = p;
    prevIdx = lo;
  }
  return { indices, distinct };
}

const OUT_BLOCK = 1 << 20;
const SMALL_READ = 32 * 1024;
const READ_PAUSE_MS = 1;

/**
 * The text lines `page gap\n` as byte blocks (no string per line); with `writes`, `page gap w\n` or
 * `page gap r\n` (the access-kind column of src/trace/format.ts).
 */
export function* traceTextBlocks(header: string, pages: Uint32Array, gaps: Uint32Array, writes?: Uint8Array): Generator<Buffer> {
  if (writes !== undefined && writes.length !== pages.length) throw new RangeError(`writes has ${writes.length} entries, pages ${pages.length}`);
  yield Buffer.from(header, "utf8");
  let buf = Buffer.allocUnsafe(OUT_BLOCK);
  let pos = 0;
  const n = pages.length;
  for (let i = 0; i < n; i++) {
    if (pos > OUT_BLOCK - 32) {
      yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(OUT_BLOCK);
      pos = 0;
    }
    pos = writeU32(buf, pos, pages[i]);
    buf[pos++] = 32;
    pos = writeU32(buf, pos, gaps[i]);
    if (writes !== undefined) { buf[pos++] = 32; buf[pos++] = writes[i] ? 119 /* w */ : 114 /* r */; }
    buf[pos++] = 10;
  }
  if (pos > 0) yield buf.subarray(0, pos);
}

function writeU32(buf: Buffer, pos: number, v: number): number {
  let len = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) len++;
  let p = pos + len - 1;
  for (let j = 0; j < len; j++) {
    const q = Math.floor(v / 10);
    buf[p--] = 48 + (v - q * 10);
    v = q;
  }
  return pos + len;
}

/**
 * Write text (gzipped when `out` ends in `.gz`) atomically: to `out.tmp-PID`, then rename. On failure
 * the temporary file is removed and nothing is left at `out`.
 */
export async function writeTraceFileAtomic(out: string, blocks: Iterable<Buffer>): Promise<void> {
  const target = atomicTarget(out); // a device or FIFO is written in place, never replaced
  const tmp = target.direct ? null : tempPathFor(target.path);
  try {
    const src = Readable.from(blocks, { objectMode: false });
    const sink = createWriteStream(tmp ?? target.path, { flush: !target.direct });
    if (out.endsWith(".gz")) await pipeline(src, createGzip({ level: 6 }), sink);
    else await pipeline(src, sink);
    if (tmp) await rename(tmp, target.path);
  } catch (e) {
    if (tmp) await unlink(tmp).catch(() => {});
    throw e;
  }
}

export interface RecordOptions {
  command: string;
  args: string[];
  out: string;
  maxAccesses?: number;
  window?: number;
  /** The valgrind executable (default: `valgrind` from PATH). */
  valgrind?: string;
  /** stdin/stdout/stderr of the recorded command (default: inherited). */
  stdio?: "inherit" | "ignore";
  /** Extra `#` header lines (without the `# `). */
  comments?: string[];
  /** Aborting it (the CLI does on SIGINT/SIGTERM/SIGHUP) stops the command like the access limit: the trace so far is kept. */
  signal?: AbortSignal;
}

export interface RecordResult {
  /** Exit code of the command (null when it was stopped by --max-accesses or killed by a signal). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The command was stopped because maxAccesses was reached, or because `signal` was aborted. */
  stopped: boolean;
  /** The recording was interrupted through `signal` (its reason, e.g. "SIGINT"); the trace holds what was seen. */
  interrupted: string | null;
  /** The trace was written (command succeeded or was stopped by the limit). */
  written: boolean;
  accesses: number;
  /** Data accesses that were stores or modifies. */
  writeAccesses: number;
  instructions: number;
  lackeyLines: number;
  /** Kept lines whose page was written during their window stay. */
  writtenLines: number;
  lackeyBytes: number;
  keptLines: number;
  distinctPages: number;
  clampedGaps: number;
  seconds: number;
}

/** Find an executable on PATH (null when absent). */
export async function which(name: string, path = process.env.PATH ?? ""): Promise<string | null> {
  const { access, constants } = await import("node:fs/promises");
  if (name.includes("/")) return (await access(name, constants.X_OK).then(() => true, () => false)) ? name : null;
  for (const dir of path.split(":")) {
    if (!dir) continue;
    const p = `${dir}/${name}`;
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return null;
}

/**
 * Run `command args` under lackey, filter its log as it streams through a pipe (valgrind writes it to
 * fd 3, so nothing raw touches the disk and the command keeps its own stdout/stderr), and write the
 * trace when the command succeeded or the access limit stopped it.
 */
export async function recordTrace(opts: RecordOptions): Promise<RecordResult> {
  const t0 = process.hrtime.bigint();
  const filter = new LackeyFilter({ window: opts.window, maxAccesses: opts.maxAccesses });
  const vg = opts.valgrind ?? "valgrind";
  const io = opts.stdio ?? "inherit";
  const lackeyArgs = ["--tool=lackey", "--trace-mem=yes", "--log-fd=3", "--", opts.command, ...opts.args];
  const { log, childEnd, paced } = openLogChannel();
  let child: ChildProcess;
  try {
    child = spawn(vg, lackeyArgs, { stdio: [io, io, io, childEnd ?? "pipe"] });
  } finally {
    if (childEnd !== null) closeSync(childEnd); // the child has its own copy; ours would keep the FIFO open
  }
  const logStream = log ?? (child.stdio[3] as Socket);
  let stopped = false;
  let interrupted: string | null = null;
  let bytes = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  // valgrind writes its log in small pieces (~200 bytes). Reading each piece as it arrives costs an
  // event-loop turn and a Buffer apiece and makes the reader, not lackey, the bottleneck. With a real
  // pipe (a FIFO: small writes are merged into its 64 KiB buffer) reading stops for a moment after a
  // small read, so the next read takes a bigger block; lackey blocks while the pipe is full.
  const handle = (logStream as unknown as { _handle?: { readStop?: () => number; readStart?: () => number } })._handle;
  const canPace = paced && typeof handle?.readStop === "function" && typeof handle?.readStart === "function";
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => { if (timer) clearTimeout(timer); opts.signal?.removeEventListener("abort", onAbort); resolve(); };
    // An interruption ends the recording as the access limit does: valgrind (and the command it
    // runs, in the same process) is killed at once, and what was seen becomes the trace.
    const onAbort = () => {
      if (stopped) return;
      stopped = true;
      interrupted = String(opts.signal?.reason ?? "abort");
      child.kill("SIGKILL");
      logStream.destroy();
      finish();
    };
    if (opts.signal?.aborted) onAbort(); else opts.signal?.addEventListener("abort", onAbort, { once: true });
    logStream.on("data", (b: Buffer) => {
      if (stopped) return;
      bytes += b.length;
      if (!filter.push(b)) {
        stopped = true;
        child.kill("SIGKILL");
        logStream.destroy();
        finish();
        return;
      }
      if (canPace && b.length < SMALL_READ && timer === undefined) {
        handle!.readStop!();
        timer = setTimeout(() => { timer = undefined; if (!logStream.destroyed) handle!.readStart!(); }, READ_PAUSE_MS);
      }
    });
    logStream.once("end", finish);
    logStream.once("close", finish);
    logStream.once("error", (e) => { child.kill("SIGKILL"); reject(e); });
  });
  const { code, signal } = await exited;
  filter.end();
  const kept = filter.kept();
  const ok = stopped || code === 0;
  let distinct = 0;
  let writtenLines = 0;
  for (let i = 0; i < kept.length; i++) writtenLines += kept.writes[i];
  if (ok) {
    const { indices, distinct: d } = remapPages(kept.pages);
    distinct = d.length;
    const cmdline = [opts.command, ...opts.args].map(shellQuote).join(" ");
    const header =
      (opts.comments ?? []).map((c) => `# ${c}\n`).join("") +
      `# record: ${cmdline}\n` +
      `# Recorded with valgrind lackey (${filter.accesses} data accesses${interrupted ? `, interrupted by ${interrupted}` : stopped ? `, stopped at --max-accesses ${opts.maxAccesses}` : ", whole run"}, ` +
      `${filter.instructions} guest instructions), kept only when the 4 KiB page was not among the last ${filter.window} distinct pages touched; ` +
      `raw virtual pages remapped to 0..N-1 in address order.\n` +
      `# lines ${kept.length}, distinct pages ${distinct}, first raw page 0x${distinct ? d[0].toString(16) : "0"}, last raw page 0x${distinct ? d[distinct - 1].toString(16) : "0"}\n` +
      `# writes: ${filter.writeAccesses} of ${filter.accesses} data accesses were stores or modifies; ${writtenLines} of ${kept.length} lines are w\n` +
      `# columns: page gap kind (gap = guest instructions since the previous line; kind w = the page was written by this line's access ` +
      `or by a re-touch folded into it before the page left the window, r = only read)\n`;
    await writeTraceFileAtomic(opts.out, traceTextBlocks(header, indices, kept.gaps.slice(), kept.writes.slice()));
  }
  return {
    exitCode: code,
    signal,
    stopped,
    interrupted,
    written: ok,
    accesses: filter.accesses,
    writeAccesses: filter.writeAccesses,
    instructions: filter.instructions,
    lackeyLines: filter.lines,
    lackeyBytes: bytes,
    keptLines: kept.length,
    writtenLines,
    distinctPages: distinct,
    clampedGaps: filter.clampedGaps,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}

/**
 * The channel lackey's log goes through. Preferably a FIFO (made with `mkfifo` in a private temp dir
 * and unlinked at once, so nothing but the two open ends remains; no data ever reaches the disk):
 * its write end becomes the child's fd 3 (blocking, as valgrind expects), its read end a non-blocking
 * socket here. Without `mkfifo`, fall back to Node's stdio pipe (a socketpair, slower with small writes).
 */
function openLogChannel(): { log: Socket | null; childEnd: number | null; paced: boolean } {
  let dir: string | null = null;
  try {
    dir = mkdtempSync(join(tmpdir(), "ppm-record-"));
    const fifo = join(dir, "lackey.fifo");
    execFileSync("mkfifo", ["-m", "600", fifo], { stdio: "ignore" });
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let writeEnd: number;
    try {
      writeEnd = openSync(fifo, constants.O_WRONLY); // does not block: a reader is open
    } catch (e) {
      closeSync(readEnd);
      throw e;
    }
    return { log: new Socket({ fd: readEnd, readable: true, writable: false }), childEnd: writeEnd, paced: true };
  } catch {
    return { log: null, childEnd: null, paced: false };
  } finally {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
  }
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
