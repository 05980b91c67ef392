/** The VM memory image the source serves: a file of pageCount x 4096 bytes, and its SHA-256. */
import { createCipheriv, createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { PAGE_SIZE } from "./protocol.js";

export function imageDigest(image: Uint8Array): Buffer {
  return createHash("sha256").update(image).digest();
}

/** Parse `65536`, `64K`, `256M`, `1G` (binary units) into bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(s.trim());
  if (!m) throw new RangeError(`not a size: ${JSON.stringify(s)} (use e.g. 65536, 64K, 256M, 1G)`);
  const mult = { "": 1, K: 1024, M: 1 << 20, G: 1 << 30 }[(m[2] ?? "").charAt(0).toUpperCase()] ?? 1;
  return Number(m[1]) * mult;
}

/**
 * A seeded pseudo-random image of `bytes` (rounded up to whole pages): AES-128-CTR keystream of a key
 * derived from the seed, so every page differs and the same seed gives the same image. One page in 16
 * is left zero, as guests have many.
 */
export function generateImage(bytes: number, seed = 1): Buffer {
  const pages = Math.ceil(bytes / PAGE_SIZE);
  if (pages < 1) throw new RangeError("the image needs at least one page");
  const key = createHash("sha256").update(`ppm-prefetch image ${seed}`).digest();
  const c = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
  const img = c.update(Buffer.alloc(pages * PAGE_SIZE));
  for (let p = 0; p < pages; p += 16) img.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  return img;
}

export function writeImage(path: string, image: Uint8Array): void {
  writeFileSync(path, image);
}

export function loadImage(path: string): Buffer {
  const b = readFileSync(path);
  if (b.length === 0 || b.length % PAGE_SIZE !== 0) {
    throw new RangeError(`${path}: an image must be a non-empty multiple of ${PAGE_SIZE} bytes, got ${b.length}`);
  }
  return b;
}
