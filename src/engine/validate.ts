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

/** predictFirst's `first`: how many pages the caller wants before the rest (an integer >= 1). */
export function checkFirst(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`first must be an integer, got ${describe(v)}`);
  if (v < 1) throw new RangeError(`first must be at least 1, got ${v}`);
  return v;
}

/** Whether a call of this method lets a search that predictFirst stopped go on (the readers do; any other call ends it). */
export function keepsStoppedSearch(method: string): boolean {
  return method === "predictRest" || method === "output" || method === "confidence" || method === "isPresent";
}

/** What predictRest() says when predictFirst was not the last call (nothing to go on with). */
export function noSearchToContinue(): Error {
  return new Error("predictRest(): no prediction to go on with: predictFirst must be the last call on this predictor before it");
}

export function checkStream(v: unknown, streams: number): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`stream must be an integer, got ${describe(v)}`);
  if (v < 0 || v >= streams) throw new RangeError(`stream must be in 0..${streams - 1}, got ${v}`);
  return v;
}

// The typed arrays' own getters, which a subclass or an own property cannot override.
const typedArrayProto = Object.getPrototypeOf(Uint32Array.prototype) as object;
const intrinsic = (name: string) => Object.getOwnPropertyDescriptor(typedArrayProto, name)!.get!;
const taBuffer = intrinsic("buffer");
const taByteOffset = intrinsic("byteOffset");
const taLength = intrinsic("length");

/**
 * Every element of a train() argument, read once: returns the pages to use. A Uint32Array (a real
 * one, not a Proxy posing as one) is checked and used through a plain view of its memory (no copy),
 * so a subclass that overrides length or subarray() cannot change what is used after the check; an
 * array is copied as it is checked, so what is used is exactly what was checked (an array whose
 * elements change when read, a Proxy or getters, cannot slip a bad page past the check).
 */
export function checkPages(pages: unknown, pageCount: number): Uint32Array {
  if (pages instanceof Uint32Array && ArrayBuffer.isView(pages)) {
    const view = new Uint32Array(taBuffer.call(pages) as ArrayBufferLike, taByteOffset.call(pages) as number, taLength.call(pages) as number);
    for (let i = 0; i < view.length; i++) {
      if (view[i] >= pageCount) throw new RangeError(`pages[${i}] must be in 0..${pageCount - 1}, got ${view[i]}`);
    }
    return view;
  }
  if (Array.isArray(pages)) {
    const n = pages.length;
    const copy = new Uint32Array(n);
    for (let i = 0; i < n; i++) copy[i] = checkPage(`pages[${i}]`, pages[i], pageCount);
    return copy;
  }
  throw new TypeError(`pages must be a Uint32Array or an array of page numbers, got ${describe(pages)}`);
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

/**
 * unsend(page) releases only a page that a prediction marked sent and that has not been marked
 * present since (faulted, observed, markPresent/markPresentRange): anything else is a RangeError
 * naming the page and why, thrown before anything is changed. `sent`: the page is marked sent by a
 * prediction; `present`: its present/sent bit is set; `restored`: the predictor came from a
 * snapshot, which does not record which pages were sent by a prediction.
 */
export function checkUnsend(page: number, sent: boolean, present: boolean, restored: boolean): void {
  if (sent) return;
  const since = restored ? " since restorePredictor() (a snapshot does not record which pages were sent by a prediction)" : "";
  if (present) {
    throw new RangeError(`page ${page} cannot be unsent: it is present (faulted, observed or marked present), ` +
      `not a page a prediction marked sent${since}; unsend only releases a page predictNext returned that has not been marked present since`);
  }
  throw new RangeError(`page ${page} cannot be unsent: predictNext did not return it${since} ` +
    `(or it was unsent already or cleared by clearPresent/reset); it is absent, there is nothing to release`);
}
