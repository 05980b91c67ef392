/**
 * Learns the RAMBlock layout from the forward migration stream without touching it.
 *
 * The main channel starts with QEMU_VM_FILE_MAGIC "QEVM", version 3, a configuration section, then the
 * "ram" section's setup (migration/savevm.c, migration/ram.c ram_save_setup):
 *
 *   u8 QEMU_VM_SECTION_START (1), be32 section id, u8 3 "ram", be32 instance 0, be32 version 4,
 *   be64 total_bytes | RAM_SAVE_FLAG_MEM_SIZE (0x04),
 *   per block: u8 n, n bytes idstr, be64 used_length
 *     [be64 page_size when postcopy and the block's page size differs from the host's]
 *     [be64 mr addr when ignore-shared]
 *   be64 RAM_SAVE_FLAG_EOS (0x10)
 *
 * The scanner looks for that section start within the first bytes of the stream, parses the block
 * list and accepts it only if the sizes add up to the total and EOS follows (so the optional fields
 * were absent). Otherwise the layout stays unknown and nothing is predicted.
 */
import type { RamBlockInfo } from "./injector.js";

export const QEMU_VM_FILE_MAGIC = 0x5145564d;
const RAM_SAVE_FLAG_MEM_SIZE = 0x04n;
const RAM_SAVE_FLAG_EOS = 0x10n;
const PATTERN_TAIL = Buffer.from([3, 0x72, 0x61, 0x6d, 0, 0, 0, 0, 0, 0, 0, 4]); // 3 "ram" inst 0 ver 4

/**
 * The head of a main channel, read incrementally: bytes are appended to one buffer that grows by
 * doubling (amortised linear copying), the section-start pattern is searched only in bytes not
 * searched before, and the block list is walked from where the last call stopped. Rescanning the
 * whole head on every chunk was quadratic in its size when the setup never came (an unknown stream).
 * Shared by the layout scanner (below) and the forward-stream parser (forward.ts), which accept the
 * list differently: `problem` is the first block the layout scanner refuses, while the walk goes on
 * for the parser as long as the list still adds up.
 */
export class RamSetupReader {
  private buf = Buffer.alloc(0);
  private len = 0;
  /** Bytes copied plus bytes examined so far: a small multiple of the bytes pushed (linear). */
  work = 0;
  private magicChecked = false;
  private searchFrom = 8;
  /** The ram section's id, once its start was found. */
  section = -1;
  /** Offset of the be64 MEM_SIZE word after the section start (-1: not found yet). */
  private at = -1;
  /** Next block record of the list walk (-1: not started). */
  private p = -1;
  private total = 0n;
  readonly blocks: RamBlockInfo[] = [];
  /** The first reason the layout scanner refuses the list (an implausible name or size), else null. */
  problem: string | null = null;
  /** Offset just past the setup's EOS, when complete. */
  end = -1;

  /** Bytes pushed so far. */
  get length(): number {
    return this.len;
  }

  /** The bytes pushed so far (a view, valid until the next push). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  push(chunk: Buffer): void {
    if (this.len + chunk.length > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.len + chunk.length, this.buf.length * 2, 4096));
      this.buf.copy(next, 0, 0, this.len);
      this.work += this.len;
      this.buf = next;
    }
    chunk.copy(this.buf, this.len);
    this.len += chunk.length;
    this.work += chunk.length;
  }

  /**
   * Go on reading: "need-more", "complete" (blocks and end set), or why the head is not a ram setup
   * the stream can be followed from: "no-magic", "no-mem-size", "bad-list" (a block of size 0, empty
   * name, or more than the total left), "optional-fields" (EOS does not follow the list).
   */
  step(): "need-more" | "complete" | "no-magic" | "no-mem-size" | "bad-list" | "optional-fields" {
    const b = this.buf, len = this.len;
    if (this.end >= 0) return "complete";
    if (!this.magicChecked) {
      if (len < 4) return "need-more";
      if (b.readUInt32BE(0) !== QEMU_VM_FILE_MAGIC) return "no-magic";
      this.magicChecked = true;
    }
    if (this.at < 0) {
      let i = this.searchFrom;
      for (; i + 5 + PATTERN_TAIL.length <= len; i++) {
        this.work++;
        if (b[i] === 1 && b[i + 5] === 3 && b.subarray(i + 5, i + 5 + PATTERN_TAIL.length).equals(PATTERN_TAIL)) {
          this.section = b.readUInt32BE(i + 1);
          this.at = i + 5 + PATTERN_TAIL.length;
          break;
        }
      }
      this.searchFrom = i;
      if (this.at < 0) return "need-more";
    }
    if (this.p < 0) {
      if (len < this.at + 8) return "need-more";
      const head = b.readBigUInt64BE(this.at);
      if ((head & RAM_SAVE_FLAG_MEM_SIZE) === 0n) return "no-mem-size";
      this.total = head & ~0xfffn;
      this.p = this.at + 8;
    }
    while (this.total > 0n) {
      const p = this.p;
      if (len < p + 1) return "need-more";
      const n = b[p];
      if (len < p + 1 + n + 8) return "need-more";
      const name = b.toString("latin1", p + 1, p + 1 + n);
      const size = b.readBigUInt64BE(p + 1 + n);
      this.work += 1 + n + 8;
      if (this.problem === null) {
        if (n === 0 || !/^[\x20-\x7e]+$/.test(name)) this.problem = "implausible RAMBlock name";
        else if (size === 0n || size > this.total || size % 4096n !== 0n) this.problem = `implausible RAMBlock size for ${name}`;
      }
      if (n === 0 || size === 0n || size > this.total) return "bad-list";
      this.blocks.push({ name, size: Number(size) });
      this.total -= size;
      this.p = p + 1 + n + 8;
    }
    if (len < this.p + 8) return "need-more";
    if (b.readBigUInt64BE(this.p) !== RAM_SAVE_FLAG_EOS) return "optional-fields";
    this.end = this.p + 8;
    return "complete";
  }
}

export class RamHeaderScanner {
  private readonly reader = new RamSetupReader();
  done = false;
  result: RamBlockInfo[] | null = null;
  reason = "";
  /** The machine type of the stream's configuration section ("pc-i440fx-10.0"), once seen; "" if absent. */
  machine: string | null = null;

  constructor(private readonly limit = 4 << 20) {}

  /** Bytes copied and examined so far (linear in the bytes pushed; for tests). */
  get work(): number {
    return this.reader.work;
  }

  /** Feed forward-stream bytes; returns the layout once, when found. */
  push(chunk: Buffer): RamBlockInfo[] | null {
    if (this.done) return null;
    // Nothing past the limit is kept: the setup is looked for in the first `limit` bytes only.
    const room = this.limit + 1 - this.reader.length;
    this.reader.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    if (this.machine === null) {
      const m = parseMachineType(this.reader.bytes());
      if (m !== "need-more") this.machine = m;
    }
    const r = ramSetupResult(this.reader);
    if (r === "need-more") {
      if (this.reader.length > this.limit) {
        this.done = true;
        this.reason = `no ram section setup in the first ${this.limit} bytes`;
      }
      return null;
    }
    this.done = true;
    if (typeof r === "string") {
      this.reason = r;
      return null;
    }
    this.result = r;
    return r;
  }
}

/** The layout scanner's reading of a RamSetupReader: the blocks, "need-more", or why not. */
function ramSetupResult(reader: RamSetupReader): RamBlockInfo[] | "need-more" | string {
  const s = reader.step();
  // A block the scanner refuses ends the reading even when the walk could go on.
  if (reader.problem !== null && s !== "no-magic" && s !== "no-mem-size") return reader.problem;
  switch (s) {
    case "need-more": return "need-more";
    case "complete": return reader.blocks.slice();
    case "no-magic": return "not a main migration channel (no QEVM magic)";
    case "no-mem-size": return "ram section does not start with RAM_SAVE_FLAG_MEM_SIZE";
    case "bad-list": return reader.problem ?? "implausible RAMBlock list";
    case "optional-fields": return "RAMBlock list carries optional fields (page size / addr): layout not used";
  }
}

/** Parse the ram section setup from the start of a main-channel stream. */
export function parseRamSetup(b: Buffer): RamBlockInfo[] | "need-more" | string {
  const reader = new RamSetupReader();
  reader.push(b);
  return ramSetupResult(reader);
}

/**
 * The machine type named by the configuration section right after the header ("QEVM", be32 3, then
 * u8 QEMU_VM_CONFIGURATION (7), be32 length, the name): "pc-i440fx-7.2" from Debian 12's QEMU,
 * "pc-i440fx-10.0" from 10.0's with its default machine. It names the machine's compatibility version,
 * which is the QEMU version unless the VM was started with an older `-machine`. "" when absent.
 */
export function parseMachineType(b: Buffer): string | "need-more" {
  if (b.length < 13) return "need-more";
  if (b.readUInt32BE(0) !== QEMU_VM_FILE_MAGIC || b[8] !== 0x07) return "";
  const n = b.readUInt32BE(9);
  if (n === 0 || n > 64) return "";
  if (b.length < 13 + n) return "need-more";
  const name = b.toString("latin1", 13, 13 + n);
  return /^[\x20-\x7e]+$/.test(name) ? name : "";
}
