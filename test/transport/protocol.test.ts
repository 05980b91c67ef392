import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Bitmap, ErrorCode, FrameReader, FrameType, MAX_BODY, PageKind, ProtocolError, checksum, encodeFault, encodePage,
  encodeFaultDone, faultFrameSize, pageFrameSize,
} from "../../src/transport/protocol.js";
import { FrameWriter } from "../../src/transport/writer.js";
import type { ByteLink } from "../../src/transport/link-emulator.js";

function frames(): Buffer {
  const img = Buffer.alloc(3 * 4096);
  for (let i = 0; i < img.length; i++) img[i] = (i * 31) & 0xff;
  const b = Buffer.alloc(3 * pageFrameSize(4096) + faultFrameSize(2) + 64);
  let o = 0;
  for (let p = 0; p < 3; p++) o = encodePage(b, o, p, PageKind.Push, img, 4096);
  o = encodeFault(b, o, 9, 1, Uint32Array.of(4, 5), Uint16Array.of(0, 1), 0, 2);
  o = encodeFaultDone(b, o, 9, 3, 1234);
  return b.subarray(0, o);
}

test("FrameReader reassembles frames split at every byte boundary", () => {
  const all = frames();
  for (const step of [1, 2, 3, 7, 100, 4095, 4113, 5000, all.length]) {
    const seen: [number, number][] = [];
    const r = new FrameReader((t, b, s, e) => {
      if (t === FrameType.Page) assert.equal(checksum(b.subarray(s + 12, e)), b.readUInt32LE(s + 8));
      seen.push([t, e - s]);
    });
    for (let i = 0; i < all.length; i += step) r.push(all.subarray(i, Math.min(all.length, i + step)));
    r.end();
    assert.deepEqual(seen.map((x) => x[0]), [FrameType.Page, FrameType.Page, FrameType.Page, FrameType.Fault, FrameType.FaultDone], `step ${step}`);
    assert.deepEqual(seen.map((x) => x[1]), [12 + 4096, 12 + 4096, 12 + 4096, 8 + 12, 12]);
  }
});

test("FrameReader refuses oversized and empty frames, and reports truncation", () => {
  const big = Buffer.alloc(8); big.writeUInt32LE(MAX_BODY + 1, 0);
  assert.throws(() => new FrameReader(() => {}).push(big), (e: ProtocolError) => e.code === ErrorCode.Oversized);
  const zero = Buffer.alloc(8);
  assert.throws(() => new FrameReader(() => {}).push(zero), (e: ProtocolError) => e.code === ErrorCode.Malformed);
  const r = new FrameReader(() => {});
  r.push(frames().subarray(0, 100));
  assert.throws(() => r.end(), (e: ProtocolError) => e.code === ErrorCode.Truncated && /100 bytes into/.test(e.message));
});

test("Bitmap: add, load, nextClear", () => {
  const b = new Bitmap(21);
  assert.equal(b.add(3), true); assert.equal(b.add(3), false); b.add(0); b.add(1); b.add(2);
  assert.equal(b.nextClear(0), 4); assert.equal(b.count, 4);
  const c = new Bitmap(21); c.load(Uint8Array.of(0xff, 0xff, 0xff)); // bits past 21 ignored
  assert.equal(c.count, 21); assert.equal(c.nextClear(0), -1);
});

test("FrameWriter reuses its slabs: no allocation per page", async () => {
  const pending: (() => void)[] = [];
  let written = 0;
  const link: ByteLink = {
    write(chunk, cb) { written += chunk.length; pending.push(() => cb?.()); return true; },
    onDrain(fn) { fn(); }, backlog: 0, close() {},
  };
  const w = new FrameWriter(link);
  const img = Buffer.alloc(4096 * 16);
  for (let i = 0; i < 20000; i++) {
    const { buf, off } = w.reserve(pageFrameSize(4096));
    w.commit(encodePage(buf, off, i % 16, PageKind.Push, img, 4096));
    if (i % 8 === 7) { w.flush(); while (pending.length) pending.shift()!(); }
  }
  w.flush();
  assert.equal(written, 20000 * pageFrameSize(4096));
  assert.ok(w.allocated <= 3, `allocated ${w.allocated} slabs`);
});
