/**
 * Reads the forward migration stream (source -> destination) just far enough to see which RAM page
 * goes by when, without buffering page data or touching the bytes (they are forwarded unchanged by
 * the proxy before and whatever this parser concludes).
 *
 * Main channel (QEMU 7.2, migration/savevm.c and migration/ram.c):
 *   "QEVM", version, configuration, ... u8 QEMU_VM_SECTION_START(1) be32 id, u8 3 "ram", be32 inst,
 *   be32 version, the RAMBlock list (RAM_SAVE_FLAG_MEM_SIZE), EOS; then top-level items:
 *     0x7e footer     be32 section id
 *     0x02 PART / 0x03 END   be32 section id, then ram records up to EOS
 *     0x08 COMMAND    be16 cmd, be16 len, len bytes (cmd 7 PACKAGED: be32 size, then size bytes;
 *                     cmd 6 POSTCOPY_RAM_DISCARD is decoded: pages no longer at the destination)
 *     0x04 FULL       (before any switch-over) the device state of a precopy completion: the
 *                     parser stops there (`stoppedAt`), nothing after it concerns ram
 *     0x00 EOF
 *   A ram record: be64 (offset | flags); ZERO (0x02) or PAGE (0x08) without CONTINUE (0x20) is
 *   followed by u8 n + n bytes of RAMBlock name; ZERO carries 1 byte, PAGE 4096; EOS (0x10) ends the
 *   section's data.
 * postcopy-preempt channel: ram records only (the destination's preempt thread loads them until EOS,
 *   then starts over), each channel with its own "last block" for CONTINUE.
 *
 * QEMU 10.0 (Debian bookworm-backports, recorded in test/qemu/fixtures/*-10.0.bin): the same records;
 *   ram is section 1 (7.2: 2), the machine type "pc-i440fx-10.0" in the configuration, a new command
 *   (SWITCHOVER_START, 11) after the setup, and the preempt channel starts with its first record (no
 *   handshake bytes) and ends without EOS or EOF.
 * Anything else (another iterable device, multifd, compression, xbzrle) makes the parser stop with a
 * reason (`lost`); the proxy keeps forwarding and only the service-time figures stop.
 */
import { RamSetupReader } from "./ramheader.js";

export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_START = 0x01;
export const QEMU_VM_SECTION_PART = 0x02;
export const QEMU_VM_SECTION_END = 0x03;
export const QEMU_VM_SECTION_FULL = 0x04;
export const QEMU_VM_COMMAND = 0x08;
export const QEMU_VM_SECTION_FOOTER = 0x7e;
export const MIG_CMD_PACKAGED = 7; // QEMU 7.2 enum qemu_vm_cmd: INVALID, OPEN_RETURN_PATH, PING, POSTCOPY_ADVISE, LISTEN, RUN, RAM_DISCARD, PACKAGED
/**
 * Sent on the main channel at the switch-over, before the packaged device state: pages of one
 * RAMBlock the destination must drop (sent during precopy, dirtied again since). Payload
 * (savevm.c, qemu_savevm_send_postcopy_ram_discard / loadvm_postcopy_ram_handle_discard):
 *   u8 version (0), u8 n, n bytes RAMBlock name, u8 0 (NUL), then (be64 start, be64 length) byte
 *   ranges; QEMU checks len >= 20 and (len - 3 - n) % 16 == 0. QEMU sends at most 12 ranges per
 *   command (postcopy-ram.c, MAX_DISCARDS_PER_COMMAND) and as many commands as it needs.
 */
export const MIG_CMD_POSTCOPY_RAM_DISCARD = 6;

export const RAM_SAVE_FLAG_ZERO = 0x02;
export const RAM_SAVE_FLAG_MEM_SIZE = 0x04;
export const RAM_SAVE_FLAG_PAGE = 0x08;
export const RAM_SAVE_FLAG_EOS = 0x10;
export const RAM_SAVE_FLAG_CONTINUE = 0x20;

const PAGE = 4096;
const SEEK_LIMIT = 4 << 20;

export type ChannelKind = "main" | "preempt";

export type PageCallback = (block: string, page: number, zero: boolean) => void;

/** A discarded range, in target pages of its RAMBlock. */
export interface DiscardRange {
  page: number;
  pages: number;
}

/**
 * Decode a MIG_CMD_POSTCOPY_RAM_DISCARD payload, checking what QEMU's destination checks (a payload
 * it refuses fails the migration there): the block and its page ranges, or why it is malformed.
 */
export function decodeRamDiscard(p: Buffer): { block: string; ranges: DiscardRange[] } | string {
  if (p.length < 1 + 1 + 1 + 1 + 2 * 8) return `payload of ${p.length} bytes, expected >= 20`;
  if (p[0] !== 0) return `version ${p[0]}, expected 0`;
  const n = p[1];
  if (n === 0) return "empty RAMBlock name";
  if (2 + n + 1 > p.length) return `RAMBlock name of ${n} bytes does not fit the ${p.length}-byte payload`;
  const name = p.subarray(2, 2 + n);
  // QEMU reads the name with strlen(): a NUL inside would shift its ranges
  if (name.includes(0)) return "NUL inside the RAMBlock name";
  if (p[2 + n] !== 0) return `missing NUL after the RAMBlock name (0x${p[2 + n].toString(16)})`;
  const rest = p.length - 3 - n;
  if (rest % 16 !== 0) return `${rest} bytes of ranges, not a multiple of 16`;
  const block = name.toString("latin1");
  const ranges: DiscardRange[] = [];
  const P = BigInt(PAGE);
  for (let at = 3 + n; at < p.length; at += 16) {
    const start = p.readBigUInt64BE(at), length = p.readBigUInt64BE(at + 8);
    // QEMU's ram_block_discard_range refuses unaligned ranges (and fails the migration)
    if (start % P !== 0n || length % P !== 0n) return `unaligned range 0x${start.toString(16)}+0x${length.toString(16)} in ${block}`;
    if (length === 0n) continue;
    // Page numbers past 2^53 are past any RAMBlock anyway: clamped, never imprecise inside one.
    const cap = (x: bigint) => Number(x > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : x);
    ranges.push({ page: cap(start / P), pages: cap(length / P) });
  }
  return { block, ranges };
}

export interface ForwardHooks {
  /** A QEMU_VM_COMMAND on the main channel (7 PACKAGED: the switch-over to post-copy). */
  onCommand?(cmd: number): void;
  /** A ram section (PART/END) begins. */
  onSection?(): void;
  /** QEMU_VM_EOF: the source has sent everything. */
  onEof?(): void;
  /** A well-formed MIG_CMD_POSTCOPY_RAM_DISCARD: these pages of `block` are no longer at the destination. */
  onDiscard?(block: string, ranges: DiscardRange[]): void;
  /** A MIG_CMD_POSTCOPY_RAM_DISCARD QEMU would refuse (skipped whole; the stream is still followed). */
  onDiscardError?(reason: string): void;
  /**
   * A full device-state section at the top level before any switch-over: the source is completing
   * the migration in precopy (qemu_savevm_state_complete_precopy). The parser stops there.
   */
  onDeviceState?(): void;
}

/** QEMU 7.2 MIG_CMD_* numbers the proxy cares about (the same in 10.0). */
export const MIG_CMD_POSTCOPY_RESUME = 9;
export const MIG_CMD_RECV_BITMAP = 10;
/**
 * QEMU 10.0 (new since 7.2): the source announces the switch-over (migration_switchover_start), with
 * no payload; with post-copy at once it comes right after the ram setup, before the discards and the
 * packaged device state. Skipped like any other command.
 */
export const MIG_CMD_SWITCHOVER_START = 11;

type State = "seek" | "top" | "ram" | "skip" | "collect" | "done" | "lost";

export class RamStreamParser {
  private state: State;
  private carry: Buffer = Buffer.alloc(0);
  private skipLeft = 0;
  private afterSkip: State = "top";
  private lastBlock = "";
  private ramSection = -1;
  /** The head of a main channel until the ram setup is found (read incrementally: linear). */
  private seek: RamSetupReader | null = null;
  /** Bytes copied and examined while looking for the ram setup (linear in the head; for tests). */
  headWork = 0;
  lost: string | null = null;
  /** Where a parser that is done stopped, when not at QEMU_VM_EOF. */
  stoppedAt: string | null = null;
  /** A RAM_DISCARD payload being collected (the command may be split across chunks). */
  private collectBuf: Buffer = Buffer.alloc(0);
  private collectAt = 0;
  /** PACKAGED seen (or a resumed channel): top-level device state after it is not a precopy completion. */
  private switchedOver = false;
  /** RAM_DISCARD commands applied / refused. */
  discards = 0;
  discardErrors = 0;
  pages = 0;
  zeroPages = 0;
  sections = 0;
  commands = 0;

  /**
   * @param resumeSection for the main channel of a resumed post-copy (`migrate resume=true`): no
   *   header, top-level items from the first byte; the ram section id of the original channel.
   */
  constructor(readonly kind: ChannelKind, private readonly onPage: PageCallback, private readonly hooks: ForwardHooks = {}, resumeSection?: number) {
    this.state = kind === "main" ? (resumeSection !== undefined ? "top" : "seek") : "ram";
    if (resumeSection !== undefined) { this.ramSection = resumeSection; this.switchedOver = true; }
  }

  /** The ram section's id (known once the setup was seen). */
  get ramSectionId(): number {
    return this.ramSection;
  }

  get done(): boolean {
    return this.state === "done" || this.state === "lost";
  }

  push(chunk: Buffer): void {
    if (this.done) return;
    if (this.state === "seek") {
      const seek = (this.seek ??= new RamSetupReader());
      seek.push(chunk);
      const r = setupEnd(seek);
      this.headWork = seek.work;
      if (r === "need-more") {
        if (seek.length > SEEK_LIMIT) { this.seek = null; this.fail(`no ram section setup in the first ${SEEK_LIMIT} bytes`); }
        return;
      }
      this.seek = null;
      if (typeof r === "string") return this.fail(r);
      this.ramSection = r.section;
      this.state = "top";
      chunk = seek.bytes().subarray(r.end);
    }
    this.run(chunk);
  }

  private fail(reason: string): void {
    this.lost = reason;
    this.state = "lost";
    this.carry = Buffer.alloc(0);
  }

  /** Parse a chunk; headers split across chunks are carried (a few hundred bytes at most). */
  private run(chunk: Buffer): void {
    let buf = chunk;
    let i = 0;
    if (this.carry.length > 0) {
      // Only the carried header bytes are copied, together with at most 512 bytes of the new chunk.
      const head = Math.min(chunk.length, 512);
      buf = Buffer.concat([this.carry, chunk.subarray(0, head)]);
      const consumed = this.parse(buf, 0, true);
      if (this.done) return;
      if (consumed < this.carry.length) {
        // Still incomplete: the header needs more than we have.
        if (head === chunk.length) { this.carry = buf.subarray(consumed); return; }
        this.carry = Buffer.concat([buf.subarray(consumed), chunk.subarray(head)]);
        return;
      }
      i = consumed - this.carry.length;
      this.carry = Buffer.alloc(0);
      buf = chunk;
    }
    const end = this.parse(buf, i, false);
    if (!this.done && end < buf.length) this.carry = Buffer.from(buf.subarray(end));
  }

  /** A complete RAM_DISCARD payload: report its ranges, or why QEMU would refuse it (never throws). */
  private ramDiscard(payload: Buffer): void {
    const d = decodeRamDiscard(payload);
    if (typeof d === "string") {
      this.discardErrors++;
      this.hooks.onDiscardError?.(d);
      return;
    }
    this.discards++;
    this.hooks.onDiscard?.(d.block, d.ranges);
  }

  /**
   * Parse items from buf[at..]; returns the offset of the first byte not consumed (an incomplete
   * header). With `probe`, stop as soon as the carried prefix has been consumed.
   */
  private parse(buf: Buffer, at: number, probe: boolean): number {
    let i = at;
    const carryEnd = probe ? this.carry.length : -1;
    while (i < buf.length && !this.done) {
      if (probe && i >= carryEnd) return i;
      switch (this.state) {
        case "skip": {
          const n = Math.min(this.skipLeft, buf.length - i);
          i += n;
          this.skipLeft -= n;
          if (this.skipLeft === 0) this.state = this.afterSkip;
          break;
        }
        case "collect": {
          const n = Math.min(this.collectBuf.length - this.collectAt, buf.length - i);
          buf.copy(this.collectBuf, this.collectAt, i, i + n);
          this.collectAt += n;
          i += n;
          if (this.collectAt === this.collectBuf.length) {
            this.state = "top";
            this.ramDiscard(this.collectBuf);
            this.collectBuf = Buffer.alloc(0);
          }
          break;
        }
        case "top": {
          const t = buf[i];
          if (t === QEMU_VM_SECTION_FOOTER) {
            if (buf.length - i < 5) return i;
            i += 5;
          } else if (t === QEMU_VM_SECTION_PART || t === QEMU_VM_SECTION_END) {
            if (buf.length - i < 5) return i;
            const id = buf.readUInt32BE(i + 1);
            if (id !== this.ramSection) { this.fail(`section ${id} is not ram (${this.ramSection}): another iterable device`); return i; }
            i += 5;
            this.sections++;
            this.state = "ram";
            this.hooks.onSection?.();
          } else if (t === QEMU_VM_COMMAND) {
            if (buf.length - i < 5) return i;
            const cmd = buf.readUInt16BE(i + 1);
            const len = buf.readUInt16BE(i + 3);
            // PACKAGED's header is 9 bytes: wait for all of them before counting it (once).
            if (cmd === MIG_CMD_PACKAGED && buf.length - i < 9) return i;
            this.commands++;
            this.hooks.onCommand?.(cmd);
            if (cmd === MIG_CMD_PACKAGED) {
              this.switchedOver = true;
              this.skipLeft = buf.readUInt32BE(i + 5);
              i += 9;
            } else if (cmd === MIG_CMD_POSTCOPY_RAM_DISCARD) {
              // Collected whole (len <= 64 KiB; QEMU's are ~200 bytes), then decoded.
              this.skipLeft = 0;
              i += 5;
              this.collectBuf = Buffer.alloc(len);
              this.collectAt = 0;
              if (len > 0) this.state = "collect";
              else this.ramDiscard(this.collectBuf);
            } else {
              this.skipLeft = len;
              i += 5;
            }
            if (this.skipLeft > 0) { this.afterSkip = "top"; this.state = "skip"; }
          } else if (t === QEMU_VM_SECTION_FULL && !this.switchedOver) {
            // Non-iterable device state (no length to skip it by), then EOF: the end of a precopy
            // migration. Before any switch-over nothing else puts a full section here.
            this.state = "done";
            this.stoppedAt = "the device state of a precopy completion";
            this.hooks.onDeviceState?.();
            return i;
          } else if (t === QEMU_VM_EOF) {
            this.state = "done";
            this.hooks.onEof?.();
            return i + 1;
          } else {
            this.fail(`unexpected top-level byte 0x${t.toString(16)} after ${this.sections} sections, ${this.commands} commands: ${buf.subarray(Math.max(0, i - 24), i + 24).toString("hex")}`);
            return i;
          }
          break;
        }
        case "ram": {
          if (buf.length - i < 8) return i;
          const hi = buf.readUInt32BE(i);
          const lo = buf.readUInt32BE(i + 4);
          const flags = lo & 0xfff;
          const offset = hi * 2 ** 32 + ((lo & ~0xfff) >>> 0);
          if (flags === RAM_SAVE_FLAG_EOS) {
            i += 8;
            if (this.kind === "main") this.state = "top";
            break;
          }
          const zero = (flags & ~RAM_SAVE_FLAG_CONTINUE) === RAM_SAVE_FLAG_ZERO;
          const page = (flags & ~RAM_SAVE_FLAG_CONTINUE) === RAM_SAVE_FLAG_PAGE;
          if (!zero && !page) { this.fail(`unsupported ram record flags 0x${flags.toString(16)}`); return i; }
          let j = i + 8;
          if (!(flags & RAM_SAVE_FLAG_CONTINUE)) {
            if (buf.length - j < 1) return i;
            const n = buf[j];
            if (buf.length - j < 1 + n) return i;
            this.lastBlock = buf.toString("latin1", j + 1, j + 1 + n);
            j += 1 + n;
          } else if (!this.lastBlock) {
            this.fail("CONTINUE before any RAMBlock name");
            return i;
          }
          if (zero) {
            if (buf.length - j < 1) return i;
            j += 1;
            this.zeroPages++;
          } else {
            this.skipLeft = PAGE;
            this.afterSkip = "ram";
            this.state = "skip";
          }
          this.pages++;
          this.onPage(this.lastBlock, offset / PAGE, zero);
          i = j;
          break;
        }
        default:
          return i;
      }
    }
    return i;
  }
}

/** Locate the ram section's setup in the head of a main channel: its section id and where it ends. */
export function findRamSetupEnd(b: Buffer): { section: number; end: number } | "need-more" | string {
  const reader = new RamSetupReader();
  reader.push(b);
  return setupEnd(reader);
}

/** The forward parser's reading of a RamSetupReader: where the setup ends, "need-more", or why not. */
function setupEnd(reader: RamSetupReader): { section: number; end: number } | "need-more" | string {
  switch (reader.step()) {
    case "need-more": return "need-more";
    case "complete": return { section: reader.section, end: reader.end };
    case "no-magic": return "not a main migration channel (no QEVM magic)";
    case "no-mem-size": return "ram section does not start with RAM_SAVE_FLAG_MEM_SIZE";
    case "bad-list": return "implausible RAMBlock list";
    case "optional-fields": return "RAMBlock list carries optional fields: stream not followed";
  }
}
