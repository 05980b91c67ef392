/**
 * A user-space link emulator for one direction of a proxied TCP connection (the kernels here have no
 * netem): every chunk is delivered `delayMs` after it was received, optionally serialised at
 * `rateMbps` first (departure = max(now, previous departure) + bits / rate). Order is kept. When more
 * than `highWater` bytes are in flight the source socket is paused, like a full TCP window.
 */
import type { Socket } from "node:net";

interface Item {
  due: number;
  buf: Buffer | null; // null: end of stream
}

export interface DelayLineOptions {
  delayMs: number;
  rateMbps?: number;
  highWater?: number;
}

export class DelayLine {
  private q: Item[] = [];
  private head = 0;
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastDeparture = 0;
  private paused = false;
  private readonly highWater: number;
  private closed = false;

  constructor(private readonly src: Socket, private readonly dst: Socket, private readonly opt: DelayLineOptions) {
    const bdp = opt.rateMbps ? (opt.rateMbps * 1e6 / 8) * (opt.delayMs / 1000) : 0;
    this.highWater = opt.highWater ?? Math.max(4 << 20, Math.ceil(bdp * 2));
    dst.on("drain", () => this.maybeResume());
  }

  get passthrough(): boolean {
    return this.opt.delayMs <= 0 && !this.opt.rateMbps;
  }

  write(buf: Buffer): void {
    if (this.closed) return;
    if (this.passthrough) {
      if (!this.dst.write(buf)) this.pauseSrc();
      return;
    }
    const now = performance.now();
    let depart = now;
    if (this.opt.rateMbps) {
      depart = Math.max(now, this.lastDeparture) + (buf.length * 8) / (this.opt.rateMbps * 1000); // ms
      this.lastDeparture = depart;
    }
    this.q.push({ due: depart + this.opt.delayMs, buf });
    this.queued += buf.length;
    if (this.queued + this.dst.writableLength > this.highWater) this.pauseSrc();
    this.arm();
  }

  end(): void {
    if (this.closed) return;
    if (this.passthrough) {
      this.dst.end();
      return;
    }
    const now = performance.now();
    this.q.push({ due: Math.max(now, this.lastDeparture) + this.opt.delayMs, buf: null });
    this.arm();
  }

  /**
   * Milliseconds until the last chunk (or end) queued now is handed to the destination socket: 0
   * when nothing is queued. Covers the delay and the rate limit's serialisation, for a teardown that
   * must not drop what is still on the emulated link.
   */
  get pendingMs(): number {
    if (this.closed || this.head >= this.q.length) return 0;
    return Math.max(0, this.q[this.q.length - 1].due - performance.now());
  }

  /** Drop everything queued (the connection is being torn down). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.q = [];
    this.head = 0;
    this.queued = 0;
  }

  private pauseSrc(): void {
    if (!this.paused) {
      this.paused = true;
      this.src.pause();
    }
  }

  private maybeResume(): void {
    if (this.paused && this.queued + this.dst.writableLength <= this.highWater / 2 && !this.dst.writableNeedDrain) {
      this.paused = false;
      this.src.resume();
    }
  }

  private arm(): void {
    if (this.timer || this.head >= this.q.length) return;
    const wait = Math.max(0, this.q[this.head].due - performance.now());
    this.timer = setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = null;
    const now = performance.now();
    while (this.head < this.q.length && this.q[this.head].due <= now + 0.5) {
      const it = this.q[this.head++];
      if (it.buf === null) {
        this.dst.end();
      } else {
        this.queued -= it.buf.length;
        this.dst.write(it.buf);
      }
    }
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    this.maybeResume();
    this.arm();
  }
}
