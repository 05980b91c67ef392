/**
 * Frames are encoded straight into large reusable slabs and written as slices of them: one socket
 * write per batch, not one allocation per page. A slab goes back to the pool once every slice written
 * from it has been flushed (its write callbacks have all fired).
 */
import type { ByteLink } from "./link-emulator.js";

const SLAB = 256 * 1024;
const POOL_MAX = 16;

interface Slab { buf: Buffer; used: number; flushed: number; refs: number; retired: boolean }

export class FrameWriter {
  private slab: Slab;
  private pool: Slab[] = [];
  /** Slabs allocated in total (for the allocation test). */
  allocated = 0;

  constructor(private link: ByteLink, private readonly slabSize = SLAB) {
    this.slab = this.fresh();
  }

  /** Make room for a frame of `size` bytes; returns the buffer and the offset to encode it at. */
  reserve(size: number): { buf: Buffer; off: number } {
    if (size > this.slabSize) throw new RangeError(`frame of ${size} bytes exceeds the slab`);
    if (this.slab.used + size > this.slabSize) { this.flush(); this.retire(); }
    return { buf: this.slab.buf, off: this.slab.used };
  }

  /** The encoder wrote up to `end` in the reserved slab. */
  commit(end: number): void {
    this.slab.used = end;
  }

  /** Bytes encoded but not yet handed to the link. */
  get unflushed(): number { return this.slab.used - this.slab.flushed; }

  /** Hand everything encoded so far to the link; returns the link's writability. */
  flush(): boolean {
    const s = this.slab;
    if (s.used === s.flushed) return true;
    s.refs++;
    const chunk = s.buf.subarray(s.flushed, s.used);
    s.flushed = s.used;
    return this.link.write(chunk, () => { s.refs--; this.recycle(s); });
  }

  private retire(): void {
    const s = this.slab;
    s.retired = true;
    this.recycle(s);
    this.slab = this.pool.pop() ?? this.fresh();
  }

  private recycle(s: Slab): void {
    if (!s.retired || s.refs > 0) return;
    s.used = 0; s.flushed = 0; s.retired = false;
    if (this.pool.length < POOL_MAX) this.pool.push(s);
  }

  private fresh(): Slab {
    this.allocated++;
    return { buf: Buffer.allocUnsafe(this.slabSize), used: 0, flushed: 0, refs: 0, retired: false };
  }
}
