/**
 * The peer the engine is compared with on a raw access stream (bench/fault-path.ts): a plain
 * order-3 PPM over pages in Maps, as one would write it in an afternoon. Each access is learned at
 * orders 1..3 (a context is the last k pages, hashed to a number); a prediction is a greedy chain:
 * from the longest context seen, take its most frequent successor if its frequency is >= threshold,
 * move the (hypothetical) context to it, repeat until `depth` pages. Pages already present are
 * skipped but the chain walks through them. No escape blending, no exclusion, no search.
 */
interface Ctx { total: number; best: number; bestCount: number; next: Map<number, number> }

const key = (k: number, a: number, b: number, c: number) =>
  k === 1 ? a : k === 2 ? a * 1048583 + b + 0.5 : (a * 1048583 + b) * 1048589 + c + 0.25; // distinct per order

export class MapPpm {
  private ctx = new Map<number, Ctx>();
  private h = [-1, -1, -1]; // last three pages, newest last
  readonly present = new Set<number>();
  constructor(readonly depth = 8, readonly threshold = 0.05) {}

  private count(k: number, page: number): void {
    const [a, b, c] = this.h;
    if (c < 0 || (k >= 2 && b < 0) || (k === 3 && a < 0)) return;
    const id = k === 1 ? key(1, c, 0, 0) : k === 2 ? key(2, b, c, 0) : key(3, a, b, c);
    let x = this.ctx.get(id);
    if (!x) this.ctx.set(id, (x = { total: 0, best: -1, bestCount: 0, next: new Map() }));
    const n = (x.next.get(page) ?? 0) + 1;
    x.next.set(page, n);
    x.total++;
    if (n > x.bestCount) { x.bestCount = n; x.best = page; }
  }

  learn(page: number): void {
    for (let k = 1; k <= 3; k++) this.count(k, page);
    this.h = [this.h[1], this.h[2], page];
  }

  /** Learn `fault`, then return up to `depth` absent pages of the greedy chain; they become present. */
  predict(fault: number): number[] {
    this.learn(fault);
    this.present.add(fault);
    const out: number[] = [];
    let [a, b, c] = this.h;
    for (let step = 0; step < 4 * this.depth && out.length < this.depth; step++) {
      const x = this.ctx.get(key(3, a, b, c)) ?? this.ctx.get(key(2, b, c, 0)) ?? this.ctx.get(key(1, c, 0, 0));
      if (!x || x.bestCount < this.threshold * x.total) break;
      const p = x.best;
      if (!this.present.has(p)) { out.push(p); this.present.add(p); }
      [a, b, c] = [b, c, p];
    }
    return out;
  }
}
