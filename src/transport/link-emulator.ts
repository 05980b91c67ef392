/**
 * A user-space link emulator: one-way propagation delay and a serialization rate on the bytes one side
 * writes, because loopback has no latency and these kernels have no netem.
 *
 * Each side wraps its socket's write direction in a ByteLink. With an emulated link, a chunk written at
 * time t departs when the link is free (`max(t, end of the previous chunk)`), takes `bytes / rate` to
 * serialize and reaches the socket `delay` after its last bit left: the peer then reads it at that time
 * over loopback. Writes report backpressure (`false`, then `onDrain`) once more than `queueBytes` wait to
 * be serialized, like a NIC queue, so a sender can keep its own priority queue in front of the link.
 *
 * Sub-millisecond timers do not exist in Node, so while chunks are in flight one shared ticker per
 * process polls the clock on setImmediate (the event loop still serves I/O between polls) and sleeps
 * on setTimeout when the next due time is more than 2 ms away. This costs CPU while a link is busy.
 */
import type { Socket } from "node:net";
import { PROBE, probe, atProbeExit, waitNs } from "./probe.js";

export interface LinkOptions {
  /** One-way delay in microseconds (0 = none). */
  delayUs?: number;
  /** Serialization rate in Gbit/s (0 = unlimited). */
  rateGbps?: number;
  /** Bytes allowed to wait for serialization before writes report backpressure. */
  queueBytes?: number;
}

export type WriteCallback = (err?: Error | null) => void;

/** The write side of a connection: a socket, or a socket behind an emulated link. */
export interface ByteLink {
  /** Queue a chunk (kept by reference until `cb`); false when the caller should wait for onDrain. */
  write(chunk: Buffer, cb?: WriteCallback): boolean;
  /** Call `fn` once when the link accepts writes again. */
  onDrain(fn: () => void): void;
  /** Bytes accepted but not yet handed to the kernel. */
  readonly backlog: number;
  /** Drop everything queued (the connection is gone). */
  close(): void;
}

export function isEmulated(o: LinkOptions | undefined): boolean {
  return !!o && ((o.delayUs ?? 0) > 0 || (o.rateGbps ?? 0) > 0);
}

/** Default backpressure threshold of a direct socket link. */
const DIRECT_HIGH_WATER = 128 * 1024;

export function createLink(socket: Socket, opts?: LinkOptions): ByteLink {
  return isEmulated(opts) ? new EmulatedLink(socket, opts!) : new DirectLink(socket, opts?.queueBytes ?? DIRECT_HIGH_WATER);
}

class DirectLink implements ByteLink {
  private drainFns: (() => void)[] = [];
  constructor(private readonly socket: Socket, private readonly highWater: number) {
    socket.on("drain", () => this.fire());
  }
  write(chunk: Buffer, cb?: WriteCallback): boolean {
    if (this.socket.destroyed) return false;
    // Node emits 'drain' only after a write() that crossed the socket's own high-water mark (16
    // KiB): under a smaller threshold the waiters are woken here, as the kernel takes each chunk.
    this.socket.write(chunk, (err) => {
      cb?.(err);
      if (this.drainFns.length > 0 && this.socket.writableLength < this.highWater) this.fire();
    });
    return this.socket.writableLength < this.highWater;
  }
  onDrain(fn: () => void): void {
    if (!this.socket.destroyed && this.socket.writableLength < this.highWater) { queueMicrotask(fn); return; }
    this.drainFns.push(fn);
  }
  get backlog(): number { return this.socket.writableLength; }
  close(): void { this.drainFns.length = 0; }
  private fire(): void {
    const fns = this.drainFns; this.drainFns = [];
    for (const f of fns) f();
  }
}

interface InFlight { chunk: Buffer; cb: WriteCallback | undefined; due: number; tag?: string; at?: number; ahead?: number; aheadNs?: number }

/** ns since an arbitrary origin, as a float (exact to well under a microsecond for days). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

export class EmulatedLink implements ByteLink {
  private q: InFlight[] = [];
  private head = 0;
  private free = 0; // ns when the serializer is next free
  private drainFns: (() => void)[] = [];
  private readonly delayNs: number;
  private readonly nsPerByte: number;
  private readonly queueNs: number;
  private closed = false;
  /** Probe: the next write's tag (its delivery is recorded), and bytes handed to the socket so far. */
  tag = "";
  private deliveredBytes = 0;

  constructor(private readonly socket: Socket, opts: LinkOptions) {
    this.delayNs = (opts.delayUs ?? 0) * 1000;
    const rate = opts.rateGbps ?? 0;
    this.nsPerByte = rate > 0 ? 8 / rate : 0;
    this.queueNs = (opts.queueBytes ?? 64 * 1024) * this.nsPerByte;
    socket.on("drain", () => this.maybeDrain(nowNs()));
  }

  write(chunk: Buffer, cb?: WriteCallback): boolean {
    if (this.closed || this.socket.destroyed) return false;
    const now = nowNs();
    const start = Math.max(now, this.free);
    const aheadNs = start - now;
    this.free = start + chunk.length * this.nsPerByte;
    const f: InFlight = { chunk, cb, due: this.free + this.delayNs };
    if (PROBE && this.tag) { f.tag = this.tag; f.at = now; f.ahead = this.backlog; f.aheadNs = aheadNs; this.tag = ""; }
    this.q.push(f);
    TICKER.add(this);
    return this.writable(now);
  }

  onDrain(fn: () => void): void {
    this.drainFns.push(fn);
    TICKER.add(this);
  }

  get backlog(): number {
    let b = 0;
    for (let i = this.head; i < this.q.length; i++) b += this.q[i].chunk.length;
    return b;
  }

  close(): void {
    this.closed = true;
    this.q = []; this.head = 0; this.drainFns = [];
  }

  /** Deliver due chunks; returns the next time the link needs the clock, or -1 when idle. */
  tick(now: number): number {
    while (this.head < this.q.length) {
      const f = this.q[this.head];
      if (f.due > now) break;
      this.head++;
      if (PROBE && f.tag) {
        probe("deliver", { tag: f.tag, at: f.at!, due: f.due, now, real: nowNs(), ahead: f.ahead!, aheadNs: f.aheadNs!, len: f.chunk.length,
          userBuf: this.socket.writableLength, offset: this.deliveredBytes, kernelAccepted: this.socket.bytesWritten, w: waitNs() });
      }
      this.deliveredBytes += f.chunk.length;
      if (!this.closed && !this.socket.destroyed) this.socket.write(f.chunk, f.cb);
    }
    if (this.head > 1024 && this.head * 2 > this.q.length) { this.q = this.q.slice(this.head); this.head = 0; }
    this.maybeDrain(now);
    if (this.closed) return -1;
    let next = this.head < this.q.length ? this.q[this.head].due : Infinity;
    // writers waiting for the queue: wake when enough of it has been serialized
    if (this.drainFns.length && this.socket.writableLength < DIRECT_HIGH_WATER) next = Math.min(next, this.free - this.queueNs + 1);
    return next === Infinity ? -1 : next;
  }

  private writable(now: number): boolean {
    return this.free - now < this.queueNs + 1 && this.socket.writableLength < DIRECT_HIGH_WATER;
  }

  private maybeDrain(now: number): void {
    if (this.drainFns.length === 0 || this.closed || !this.writable(now)) return;
    const fns = this.drainFns; this.drainFns = [];
    for (const f of fns) f();
  }
}

/** One clock poller per process for all emulated links. */
class Ticker {
  private links = new Set<EmulatedLink>();
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;

  add(l: EmulatedLink): void {
    this.links.add(l);
    if (this.timer) { clearTimeout(this.timer); this.timer = null; this.scheduled = false; }
    if (!this.scheduled) { this.scheduled = true; setImmediate(this.run); }
  }

  polls = 0;
  pollNs = 0;
  timers = 0;
  private run = (): void => {
    this.scheduled = false; this.timer = null;
    const now = nowNs();
    if (PROBE) { this.polls++; queueMicrotask(() => { this.pollNs += nowNs() - now; }); }
    let next = Infinity;
    for (const l of this.links) {
      const d = l.tick(now);
      if (d < 0) this.links.delete(l);
      else if (d < next) next = d;
    }
    if (next === Infinity || this.scheduled) return;
    this.scheduled = true;
    const wait = next - nowNs();
    if (wait > 2e6) { this.timer = setTimeout(this.run, Math.floor(wait / 1e6) - 1); if (PROBE) this.timers++; }
    else setImmediate(this.run);
  };
}

const TICKER = new Ticker();
if (PROBE) atProbeExit(() => probe("ticker", { polls: TICKER.polls, pollNs: TICKER.pollNs, timers: TICKER.timers }));
