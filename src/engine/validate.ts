/**
 * Argument checks shared by the Wasm predictor and the reference model: each throws a TypeError or
 * RangeError naming the argument and the value, before anything is changed.
 */
import { describe } from "./options.js";

export function checkPage(name: string, v: unknown, pageCount: number): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer page number, got ${describe(v)}`);
  if (v < 0 || v >= pageCount) throw new RangeError(`${name} must be in 0..${pageCount - 1}, got ${v}`);
  return v;
}

export function checkStream(v: unknown, streams: number): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`stream must be an integer, got ${describe(v)}`);
  if (v < 0 || v >= streams) throw new RangeError(`stream must be in 0..${streams - 1}, got ${v}`);
  return v;
}

/** Every element of a train() argument; a Uint32Array only needs the upper bound. */
export function checkPages(pages: unknown, pageCount: number): void {
  if (pages instanceof Uint32Array) {
    for (let i = 0; i < pages.length; i++) {
      if (pages[i] >= pageCount) throw new RangeError(`pages[${i}] must be in 0..${pageCount - 1}, got ${pages[i]}`);
    }
  } else if (Array.isArray(pages)) {
    for (let i = 0; i < pages.length; i++) checkPage(`pages[${i}]`, pages[i], pageCount);
  } else {
    throw new TypeError(`pages must be a Uint32Array or an array of page numbers, got ${describe(pages)}`);
  }
}

export function checkRange(start: unknown, count: unknown, pageCount: number): void {
  // start may equal pageCount: the empty range at the end.
  if (typeof start !== "number" || !Number.isInteger(start)) throw new TypeError(`start must be an integer page number, got ${describe(start)}`);
  if (start < 0 || start > pageCount) throw new RangeError(`start must be in 0..${pageCount}, got ${start}`);
  const s = start;
  if (typeof count !== "number" || !Number.isInteger(count)) throw new TypeError(`count must be an integer, got ${describe(count)}`);
  if (count < 0 || s + count > pageCount) {
    throw new RangeError(`count must be in 0..${pageCount - s} (start ${s}, pageCount ${pageCount}), got ${count}`);
  }
}
