/**
 * Raw protocol peers for the transport's tests: a client that speaks frames by hand to a page server,
 * and a scripted fake source for a destination. Both record every frame they receive.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createHash } from "node:crypto";
import {
  FrameReader, FrameType, HELLO_BODY, LEN_BYTES, PAGE_SIZE, PROTOCOL_VERSION, PageKind, WELCOME_BODY,
  encodeEmpty, encodeFault, encodeHello, encodePage, encodeWelcome, pageFrameSize,
} from "../../src/transport/protocol.js";

export interface Frame { type: number; body: Buffer }

/** Frames received on a socket, and a way to wait for one. */
export class Inbox {
  readonly frames: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  readonly reader = new FrameReader((t, b, s, e) => this.add({ type: t, body: Buffer.from(b.subarray(s, e)) }));
  private add(f: Frame): void {
    this.frames.push(f);
    this.waiters = this.waiters.filter((w) => { if (w.pred(f)) { w.resolve(f); return false; } return true; });
  }
  /** The first frame (received already or later) that matches; rejects after `ms`. */
  waitFor(pred: (f: Frame) => boolean, ms = 5000, what = "frame"): Promise<Frame> {
    const have = this.frames.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (f: Frame) => { clearTimeout(t); resolve(f); } };
      const t = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); reject(new Error(`no ${what} within ${ms} ms`)); }, ms);
      this.waiters.push(w);
    });
  }
  count(type: number): number { return this.frames.filter((f) => f.type === type).length; }
}

export function errorOf(f: Frame): { code: number; message: string } {
  return { code: f.body.readUInt16LE(0), message: f.body.toString("utf8", 2) };
}

export function helloFrame(sessionByte: number): Buffer {
  const b = Buffer.alloc(LEN_BYTES + 1 + HELLO_BODY);
  encodeHello(b, 0, { version: PROTOCOL_VERSION, flags: 0, pageSize: PAGE_SIZE, sessionId: Buffer.alloc(16, sessionByte), pageCount: 0, digest: Buffer.alloc(32) });
  return b;
}

export function emptyFrame(t: FrameType): Buffer { const b = Buffer.alloc(5); encodeEmpty(b, 0, t); return b; }

/** A FAULT for `page` carrying `feedback` (page, stream) entries; `count` overrides the announced count. */
export function faultFrame(page: number, feedback: [number, number][] = [], stream = 0): Buffer {
  const n = feedback.length;
  const b = Buffer.alloc(LEN_BYTES + 1 + 8 + 6 * n);
  return b.subarray(0, encodeFault(b, 0, page, stream, Uint32Array.from(feedback.map((f) => f[0])), Uint16Array.from(feedback.map((f) => f[1])), 0, n));
}

/** A client connected to a page server. */
export function rawClient(port: number): { sock: Socket; inbox: Inbox; closed: Promise<void> } {
  const sock = connect({ port, host: "127.0.0.1", noDelay: true });
  const inbox = new Inbox();
  sock.on("data", (c: Buffer) => inbox.reader.push(c));
  sock.on("error", () => {});
  const closed = new Promise<void>((r) => sock.once("close", () => r()));
  return { sock, inbox, closed };
}

export interface FakeConn { sock: Socket; inbox: Inbox; index: number }

/**
 * A fake page source holding `img`: it answers every HELLO with a WELCOME (when `welcome` is not
 * false) and then calls `onFrame` for each frame; the script writes what it likes with `page`.
 */
export async function fakeSource(img: Buffer, script: {
  welcome?: boolean;
  onWelcome?: (c: FakeConn) => void;
  onFrame?: (c: FakeConn, f: Frame) => void;
} = {}): Promise<{ port: number; conns: FakeConn[]; digest: Buffer; page: (c: FakeConn, p: number, kind: PageKind) => void; close: () => Promise<void> }> {
  const digest = createHash("sha256").update(img).digest();
  const pageCount = img.length / PAGE_SIZE;
  const conns: FakeConn[] = [];
  const server: Server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.on("error", () => {});
    const c: FakeConn = { sock, inbox: new Inbox(), index: conns.length };
    conns.push(c);
    sock.on("data", (chunk: Buffer) => {
      const before = c.inbox.frames.length;
      c.inbox.reader.push(chunk);
      for (const f of c.inbox.frames.slice(before)) {
        if (f.type === FrameType.Hello && script.welcome !== false) {
          const b = Buffer.alloc(LEN_BYTES + 1 + WELCOME_BODY);
          encodeWelcome(b, 0, { version: PROTOCOL_VERSION, flags: 1, pageSize: PAGE_SIZE, pageCount, digest });
          sock.write(b);
          script.onWelcome?.(c);
        } else script.onFrame?.(c, f);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const page = (c: FakeConn, p: number, kind: PageKind) => {
    const b = Buffer.alloc(pageFrameSize(PAGE_SIZE));
    encodePage(b, 0, p, kind, img, PAGE_SIZE);
    c.sock.write(b);
  };
  return {
    port: (server.address() as AddressInfo).port, conns, digest, page,
    close: () => new Promise<void>((r) => { for (const c of conns) c.sock.destroy(); server.close(() => r()); }),
  };
}
