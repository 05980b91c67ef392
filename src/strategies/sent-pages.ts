/**
 * What a source-side strategy knows about the destination: pages present or already on their way.
 * A bitmap over the guest, so a strategy never offers a page twice.
 */
export class SentPages {
  private bits: Uint8Array;
  constructor(readonly pageCount: number) {
    this.bits = new Uint8Array(Math.ceil(pageCount / 8));
  }
  has(p: number): boolean {
    return (this.bits[p >>> 3] & (1 << (p & 7))) !== 0;
  }
  /** Mark; true when the page was not marked yet. */
  add(p: number): boolean {
    const m = 1 << (p & 7);
    if (this.bits[p >>> 3] & m) return false;
    this.bits[p >>> 3] |= m;
    return true;
  }
}
