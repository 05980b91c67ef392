// One bit per guest page: set once the page is at the destination or on its way there (faulted,
// predicted, or pushed by the transport). A page whose bit is set is never predicted again.
import { oBitmap, H_PRESENT, bump } from "./layout";

@inline export function isSet(page: u32): bool {
  return ((load<u8>(oBitmap + (page >> 3)) >> (page & 7)) & 1) != 0;
}

/** Set the bit; returns true when it was clear. */
@inline export function setBit(page: u32): bool {
  const a = oBitmap + (page >> 3);
  const b = load<u8>(a);
  const m = <u8>(<u32>1 << (page & 7));
  if (b & m) return false;
  store<u8>(a, b | m);
  bump(H_PRESENT, 1);
  return true;
}

/** Clear the bit (a page the caller did not send after all); returns true when it was set. */
export function clearBit(page: u32): bool {
  const a = oBitmap + (page >> 3);
  const b = load<u8>(a);
  const m = <u8>(<u32>1 << (page & 7));
  if (!(b & m)) return false;
  store<u8>(a, b & ~m);
  bump(H_PRESENT, -1);
  return true;
}

export function setRange(start: u32, count: u32): void {
  const end = start + count;
  let p = start;
  while (p < end && (p & 7) != 0) { setBit(p); p++; }
  let full: f64 = 0;
  while (end - p >= 8) { // (p + 8 <= end would wrap for the last pages of a 2^32-page guest)
    const a = oBitmap + (p >> 3);
    const b = load<u8>(a);
    full += <f64>(8 - popcnt<u32>(b));
    store<u8>(a, 0xff);
    p += 8;
  }
  bump(H_PRESENT, full);
  while (p < end) { setBit(p); p++; }
}
