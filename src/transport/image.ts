/**
 * The VM memory image the source serves: pageCount x 4096 bytes, and its SHA-256.
 *
 * An image is either a Buffer (tests, small images) or a file read with positional reads, one page at
 * a time (`openImageFile`): no whole-file buffer, so images up to the 16 GiB the CLI accepts are served
 * with a few kilobytes of memory for the image itself. `writeImageFile` generates a seeded image in
 * chunks into a temporary file beside the target and renames it into place: an interrupted
 * generation leaves no truncated image behind.
 */
import { createCipheriv, createHash, randomBytes, type Cipher } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PAGE_SIZE } from "./protocol.js";
import { trackTempFile } from "../util/temp-files.js";

/** The largest image the CLI generates and serves (2^22 pages). */
export const MAX_IMAGE_BYTES = 2 ** 34;

/** Pages of an image, read on demand. */
export interface PageImage {
  readonly pageCount: number;
  /** SHA-256 of the whole image. */
  readonly digest: Buffer;
  /** Copy page `page`'s bytes into `dst` at `off`. */
  readPage(page: number, dst: Buffer, off: number): void;
  close(): void;
}

/** SHA-256 of an image of any size (one hash update is limited to 2^31 - 1 bytes). */
export function imageDigest(image: Uint8Array): Buffer {
  const h = createHash("sha256");
  for (let at = 0; at < image.length; at += 1 << 30) h.update(image.subarray(at, Math.min(image.length, at + (1 << 30))));
  return h.digest();
}

/** Parse `65536`, `64K`, `256M`, `1G` (binary units) into bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(s.trim());
  if (!m) throw new RangeError(`not a size: ${JSON.stringify(s)} (use e.g. 65536, 64K, 256M, 1G)`);
  const mult = { "": 1, K: 1024, M: 1 << 20, G: 1 << 30 }[(m[2] ?? "").charAt(0).toUpperCase()] ?? 1;
  return Number(m[1]) * mult;
}

/**
 * The seeded pseudo-random image of `bytes` (rounded up to whole pages) in chunks of at most
 * `chunkPages` pages: AES-128-CTR keystream of a key derived from the seed, so every page differs and
 * the same seed gives the same image however it is chunked. One page in 16 is left zero, as guests have many.
 */
export function* imageChunks(bytes: number, seed = 1, chunkPages = 4096): Generator<Buffer> {
  const pages = Math.ceil(bytes / PAGE_SIZE);
  if (!(pages >= 1)) throw new RangeError(`the image needs at least one page, got ${bytes} bytes`);
  const key = createHash("sha256").update(`ppm-prefetch image ${seed}`).digest();
  const c: Cipher = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
  const zero = Buffer.alloc(chunkPages * PAGE_SIZE);
  for (let at = 0; at < pages; at += chunkPages) {
    const n = Math.min(chunkPages, pages - at);
    const out = c.update(zero.subarray(0, n * PAGE_SIZE));
    for (let p = at + ((16 - (at % 16)) % 16); p < at + n; p += 16) out.fill(0, (p - at) * PAGE_SIZE, (p - at + 1) * PAGE_SIZE);
    yield out;
  }
}

/** The whole seeded image in memory (tests and small images). */
export function generateImage(bytes: number, seed = 1): Buffer {
  return Buffer.concat([...imageChunks(bytes, seed)]);
}

/** Write `chunks` to a temporary file beside `path`, fsync it, and rename it over `path`. */
/**
 * A temporary file beside `path` (removed if the process is interrupted): `commit` fsyncs it and
 * renames it over `path`, `abort` removes it. One atomic-write mechanism for every file written here.
 */
function openAtomic(path: string): { write(c: Uint8Array): void; commit(): void; abort(): void } {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fd = openSync(tmp, "w");
  const untrack = trackTempFile(tmp);
  return {
    write(c) { for (let o = 0; o < c.length;) o += writeSync(fd, c, o, c.length - o); },
    commit() { fsyncSync(fd); closeSync(fd); renameSync(tmp, path); untrack(); },
    abort() {
      try { closeSync(fd); } catch { /* already closed */ }
      rmSync(tmp, { force: true });
      untrack();
    },
  };
}

export function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>): void {
  const f = openAtomic(path);
  try {
    for (const c of chunks) f.write(c);
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
}

/**
 * Generate the seeded image of `bytes` into `path`, atomically. Asynchronous between chunks, so that
 * an interruption (SIGINT) is handled during a long generation: the temporary file is removed.
 */
export async function writeImageFile(path: string, bytes: number, seed = 1): Promise<void> {
  const f = openAtomic(path);
  try {
    for (const c of imageChunks(bytes, seed)) {
      f.write(c);
      await new Promise((r) => setImmediate(r));
    }
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
}

export function writeImage(path: string, image: Uint8Array): void {
  writeFileAtomic(path, [image]);
}

/** A Buffer as a PageImage. */
export function bufferImage(image: Buffer): PageImage {
  if (image.length === 0 || image.length % PAGE_SIZE !== 0) {
    throw new RangeError(`the image must be a non-empty multiple of ${PAGE_SIZE} bytes, got ${image.length}`);
  }
  const digest = imageDigest(image);
  return {
    pageCount: image.length / PAGE_SIZE, digest,
    readPage: (p, dst, off) => { image.copy(dst, off, p * PAGE_SIZE, (p + 1) * PAGE_SIZE); },
    close: () => undefined,
  };
}

/** Checks an image file's size: a whole, non-zero number of pages, at most `maxBytes`. */
export function checkImageSize(path: string, size: number, maxBytes = MAX_IMAGE_BYTES): void {
  if (size === 0) throw new RangeError(`image ${path} is empty`);
  if (size % PAGE_SIZE !== 0) {
    throw new RangeError(`image ${path} is ${size} bytes, not a whole number of ${PAGE_SIZE}-byte pages ` +
      `(${Math.floor(size / PAGE_SIZE)} pages and ${size % PAGE_SIZE} bytes: truncated?)`);
  }
  if (size > maxBytes) throw new RangeError(`image ${path} is ${size} bytes, more than the limit of ${maxBytes}`);
}

/**
 * Open an image file for positional reads; its digest is computed by streaming the file once
 * (asynchronously, 1 MiB at a time).
 */
export async function openImageFile(path: string, maxBytes = MAX_IMAGE_BYTES): Promise<PageImage> {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    checkImageSize(path, size, maxBytes);
    const h = createHash("sha256");
    const fh = await open(path, "r");
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let pos = 0; pos < size;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) throw new RangeError(`image ${path} shrank while it was read (at byte ${pos} of ${size})`);
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    } finally { await fh.close(); }
    const digest = h.digest();
    let closed = false;
    return {
      pageCount: size / PAGE_SIZE, digest,
      readPage(p, dst, off) {
        let got = 0;
        while (got < PAGE_SIZE) {
          const n = readSync(fd, dst, off + got, PAGE_SIZE - got, p * PAGE_SIZE + got);
          if (n === 0) throw new RangeError(`image ${path}: page ${p} is past the end of the file (it shrank?)`);
          got += n;
        }
      },
      close() { if (!closed) { closed = true; closeSync(fd); } },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The whole image file in memory (tests); refuses a size that is not whole pages. */
export function loadImage(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    checkImageSize(path, size);
    const b = Buffer.allocUnsafe(size);
    for (let o = 0; o < size;) {
      const n = readSync(fd, b, o, size - o, o);
      if (n === 0) throw new RangeError(`image ${path} shrank while it was read`);
      o += n;
    }
    return b;
  } finally { closeSync(fd); }
}
