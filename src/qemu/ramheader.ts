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

export class RamHeaderScanner {
  private buf: Buffer[] = [];
  private len = 0;
  done = false;
  result: RamBlockInfo[] | null = null;
  reason = "";
  /** The machine type of the stream's configuration section ("pc-i440fx-10.0"), once seen; "" if absent. */
  machine: string | null = null;

  constructor(private readonly limit = 4 << 20) {}

  /** Feed forward-stream bytes; returns the layout once, when found. */
  push(chunk: Buffer): RamBlockInfo[] | null {
    if (this.done) return null;
    this.buf.push(chunk);
    this.len += chunk.length;
    const all = this.buf.length === 1 ? this.buf[0] : Buffer.concat(this.buf);
    this.buf = [all];
    if (this.machine === null) {
      const m = parseMachineType(all);
      if (m !== "need-more") this.machine = m;
    }
    const r = parseRamSetup(all);
    if (r === "need-more") {
      if (this.len > this.limit) {
        this.done = true;
        this.reason = `no ram section setup in the first ${this.limit} bytes`;
        this.buf = [];
      }
      return null;
    }
    this.done = true;
    this.buf = [];
    if (typeof r === "string") {
      this.reason = r;
      return null;
    }
    this.result = r;
    return r;
  }
}

/** Parse the ram section setup from the start of a main-channel stream. */
export function parseRamSetup(b: Buffer): RamBlockInfo[] | "need-more" | string {
  if (b.length < 4) return "need-more";
  if (b.readUInt32BE(0) !== QEMU_VM_FILE_MAGIC) return "not a main migration channel (no QEVM magic)";
  let at = -1;
  for (let i = 8; i + 5 + PATTERN_TAIL.length <= b.length; i++) {
    if (b[i] === 1 && b[i + 5] === 3 && b.subarray(i + 5, i + 5 + PATTERN_TAIL.length).equals(PATTERN_TAIL)) {
      at = i + 5 + PATTERN_TAIL.length;
      break;
    }
  }
  if (at < 0) return "need-more";
  if (b.length < at + 8) return "need-more";
  const head = b.readBigUInt64BE(at);
  if ((head & RAM_SAVE_FLAG_MEM_SIZE) === 0n) return "ram section does not start with RAM_SAVE_FLAG_MEM_SIZE";
  let total = head & ~0xfffn;
  let p = at + 8;
  const blocks: RamBlockInfo[] = [];
  while (total > 0n) {
    if (b.length < p + 1) return "need-more";
    const n = b[p];
    if (b.length < p + 1 + n + 8) return "need-more";
    const name = b.toString("latin1", p + 1, p + 1 + n);
    const size = b.readBigUInt64BE(p + 1 + n);
    p += 1 + n + 8;
    if (n === 0 || !/^[\x20-\x7e]+$/.test(name)) return "implausible RAMBlock name";
    if (size === 0n || size > total || size % 4096n !== 0n) return `implausible RAMBlock size for ${name}`;
    blocks.push({ name, size: Number(size) });
    total -= size;
  }
  if (b.length < p + 8) return "need-more";
  if (b.readBigUInt64BE(p) !== RAM_SAVE_FLAG_EOS) return "RAMBlock list carries optional fields (page size / addr): layout not used";
  return blocks;
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
