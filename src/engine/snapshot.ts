/**
 * Snapshot format: everything a predictor is, as bytes, so that a restored predictor continues
 * exactly as the original would.
 *
 *   0  "PPMS"                magic
 *   4  u32 format version    (FORMAT_VERSION)
 *   8  u32 options length N  (UTF-8 JSON of the resolved options)
 *  12  u32 memory length M   (the used prefix of the core's linear memory)
 *  16  u32 pending length P  (the histories awaiting their rehearsal: PendingHistories.encode)
 *  20  N bytes options JSON
 *  20+N M bytes memory
 *  20+N+M P bytes pending histories
 *  end u32 CRC-32 of everything before it
 * All integers little-endian. The memory image holds the whole model state (trie, streams, bitmap,
 * counters, configuration header), so restore is a byte copy plus validation; the pending histories
 * are the only state outside the core.
 */
import { crc32 } from "../util/crc32.js";

export const SNAPSHOT_MAGIC = 0x534d5050; // "PPMS" little-endian
export const FORMAT_VERSION = 9; // 9: 32-byte nodes and successor windows (the image magic PPM6); 8: the header's spare word is the prune-due flag (maintain()); 7: confidences beside the output buffer; 6: pending histories (train calls add up); 5: one stamped-table layout for the search and the rehearsal (4: the rehearsal; 3: 28-byte nodes, 16-bit counts, a dense bucket array, a linked LRU)

export interface SnapshotParts {
  options: unknown;
  memory: Uint8Array;
  pending: Uint8Array;
}

const HEADER = 20;

export function encodeSnapshot(options: unknown, memory: Uint8Array, pending: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(options));
  const out = new Uint8Array(HEADER + json.length + memory.length + pending.length + 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, SNAPSHOT_MAGIC, true);
  dv.setUint32(4, FORMAT_VERSION, true);
  dv.setUint32(8, json.length, true);
  dv.setUint32(12, memory.length, true);
  dv.setUint32(16, pending.length, true);
  out.set(json, HEADER);
  out.set(memory, HEADER + json.length);
  out.set(pending, HEADER + json.length + memory.length);
  dv.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

/** Parse and verify; throws TypeError/RangeError naming what is wrong. */
export function decodeSnapshot(bytes: unknown): SnapshotParts {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`bytes must be a Uint8Array, got ${bytes === null ? "null" : typeof bytes}`);
  }
  if (bytes.length < HEADER + 4) throw new RangeError(`bytes is not a ppm-prefetch snapshot: ${bytes.length} bytes is shorter than the header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== SNAPSHOT_MAGIC) throw new RangeError(`bytes is not a ppm-prefetch snapshot: magic 0x${magic.toString(16)} != 0x${SNAPSHOT_MAGIC.toString(16)}`);
  const version = dv.getUint32(4, true);
  if (version !== FORMAT_VERSION) throw new RangeError(`bytes has snapshot format version ${version}; this build reads version ${FORMAT_VERSION}`);
  const n = dv.getUint32(8, true);
  const m = dv.getUint32(12, true);
  const pl = dv.getUint32(16, true);
  const expected = HEADER + n + m + pl + 4;
  if (bytes.length !== expected) throw new RangeError(`bytes is truncated or padded: ${bytes.length} bytes, the header says ${expected}`);
  const stored = dv.getUint32(bytes.length - 4, true);
  const actual = crc32(bytes.subarray(0, bytes.length - 4));
  if (stored !== actual) throw new RangeError(`bytes is corrupted: checksum 0x${actual.toString(16)} != stored 0x${stored.toString(16)}`);
  let options: unknown;
  try {
    options = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(HEADER, HEADER + n)));
  } catch (e) {
    throw new RangeError(`bytes has unreadable options: ${(e as Error).message}`);
  }
  return { options, memory: bytes.subarray(HEADER + n, HEADER + n + m), pending: bytes.subarray(HEADER + n + m, HEADER + n + m + pl) };
}
