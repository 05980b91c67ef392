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
  // Whole bytes up to a 64-page boundary, then 64 pages a word (a whole 2^32-page guest is 512 MiB
  // of bitmap), then whole bytes. (end - p >= n, not p + n <= end: that would wrap for the last
  // pages of a 2^32-page guest.)
  while (end - p >= 8 && (p & 63) != 0) {
    const a = oBitmap + (p >> 3);
    full += <f64>(8 - popcnt<u32>(load<u8>(a)));
    store<u8>(a, 0xff);
    p += 8;
  }
  while (end - p >= 64) {
    const a = oBitmap + (p >> 3);
    full += <f64>(64 - <u32>popcnt<u64>(load<u64>(a)));
    store<u64>(a, 0xffffffffffffffff);
    p += 64;
  }
  while (end - p >= 8) {
    const a = oBitmap + (p >> 3);
    full += <f64>(8 - popcnt<u32>(load<u8>(a)));
    store<u8>(a, 0xff);
    p += 8;
  }
  bump(H_PRESENT, full);
  while (p < end) { setBit(p); p++; }
}
