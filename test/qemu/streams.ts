/**
 * Builders for synthetic QEMU forward streams: `S` for QEMU 7.2 (ram section id 2, as in
 * fixtures/forward-head-7.2.bin), `streams(1)` for QEMU 10.0 (section 1, fixtures/forward-head-10.0.bin).
 */
import { MIG_CMD_PACKAGED, MIG_CMD_POSTCOPY_RAM_DISCARD, RamStreamParser, type DiscardRange } from "../../src/qemu/forward.js";

const be16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const be32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const be64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };
const name = (n: string) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, "latin1")]);
export const streams = (section: number) => ({
  footer: () => Buffer.concat([Buffer.from([0x7e]), be32(section)]),
  page: (off: number, block: string | null, fill = 7) => Buffer.concat([be64(off | 0x08 | (block ? 0 : 0x20)), block ? name(block) : Buffer.alloc(0), Buffer.alloc(4096, fill)]),
  zero: (off: number, block: string | null) => Buffer.concat([be64(off | 0x02 | (block ? 0 : 0x20)), block ? name(block) : Buffer.alloc(0), Buffer.from([0])]),
  eos: () => be64(0x10),
  part: (...records: Buffer[]) => Buffer.concat([Buffer.from([0x02]), be32(section), ...records, be64(0x10), Buffer.from([0x7e]), be32(section)]),
  end: (...records: Buffer[]) => Buffer.concat([Buffer.from([0x03]), be32(section), ...records, be64(0x10), Buffer.from([0x7e]), be32(section)]),
  cmd: (cmd: number, payload = Buffer.alloc(0)) => Buffer.concat([Buffer.from([0x08]), be16(cmd), be16(payload.length), payload]),
  packaged: (blob: Buffer) => Buffer.concat([Buffer.from([0x08]), be16(MIG_CMD_PACKAGED), be16(4), be32(blob.length), blob]),
  eof: () => Buffer.from([0x00]),
  /** MIG_CMD_POSTCOPY_RAM_DISCARD as savevm.c's qemu_savevm_send_postcopy_ram_discard writes it: byte ranges. */
  discard: (block: string, ranges: [number, number][]) => Buffer.concat([Buffer.from([0x08]), be16(MIG_CMD_POSTCOPY_RAM_DISCARD),
    be16(3 + block.length + 16 * ranges.length), discardPayload(block, ranges)]),
  /** A QEMU_VM_SECTION_FULL of some device (precopy completion's device state), its bytes opaque. */
  full: (id: number, body: Buffer) => Buffer.concat([Buffer.from([0x04]), be32(id), name("timer"), be32(0), be32(2), body, Buffer.from([0x7e]), be32(id)]),
});
export function discardPayload(block: string, ranges: [number, number][]): Buffer {
  return Buffer.concat([Buffer.from([0]), name(block), Buffer.from([0]), ...ranges.flatMap(([s, l]) => [be64(s), be64(l)])]);
}
export const S = streams(2);

/** Feed `chunks` to a forward-stream parser of channel `kind`; what it reported. */
export function parse(kind: "main" | "preempt", chunks: Buffer[]) {
  const pages: [string, number, boolean][] = [];
  const cmds: number[] = [];
  const discards: [string, DiscardRange[]][] = [];
  const discardErrors: string[] = [];
  let eof = 0, deviceState = 0;
  const p = new RamStreamParser(kind, (b, pg, z) => pages.push([b, pg, z]), {
    onCommand: (c) => cmds.push(c), onEof: () => eof++,
    onDiscard: (b, r) => discards.push([b, r]), onDiscardError: (why) => discardErrors.push(why), onDeviceState: () => deviceState++,
  });
  for (const c of chunks) p.push(c);
  return { p, pages, cmds, eof, discards, discardErrors, deviceState };
}
