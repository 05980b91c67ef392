/**
 * The destination side of post-copy: guest memory, a present bitmap, and a replay of the trace's
 * accesses after switch-over against a page server.
 *
 * Each vCPU (trace stream) runs on its own guest clock: access i is due `gap`s worth of instructions
 * (at `ips` instructions per second) after the previous one, plus the time that stream has spent
 * stalled. An access to an absent page blocks its stream and sends one fault request (a page already
 * requested on this connection is not asked again); the stream resumes when the page arrives. Pages
 * that arrived by prediction or push and are touched for the first time are reported back to the
 * source, piggybacked on the next fault request.
 *
 * When the connection drops, the destination reconnects to the same session, sends its present bitmap
 * and asks again for the pages its blocked streams wait for; the source resends only what is missing.
 * At the end the image's SHA-256 must equal the digest the source announced, and DONE ends the session
 * at the source; a destination that finished while disconnected reconnects to deliver it. While
 * connected it sends a keepalive ACK when it has been quiet, and drops a source that leaves a request
 * unanswered past its idle timeout (docs/protocol.md, "Liveness").
 *
 * A page the guest blocked on is a fault when it arrives as a fault page (the source sent it because
 * of the request) and an in-flight wait when it arrives as predicted or pushed (it was already on the
 * wire): the simulator's rule, per page.
 */
import { connect, type Socket } from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { constants as bufferConstants } from "node:buffer";
import { placePages, type LayoutName } from "../trace/layout.js";
import { createLink, nowNs, type ByteLink, type LinkOptions } from "./link-emulator.js";
import { FrameWriter } from "./writer.js";
import { PROBE, probe, schedstat, waitNs } from "./probe.js";
import {
  BITMAP_CHUNK, Bitmap, ErrorCode, FAULT_DONE_BODY, FrameReader, FrameType, HELLO_BODY, LEN_BYTES, MAX_FEEDBACK,
  PAGE_HEADER, PAGE_SIZE, PROTOCOL_VERSION, PageKind, ProtocolError, RemoteError, TCP_KEEPALIVE_MS, WELCOME_PUSH, checksum, decodeError,
  decodeWelcome, encodeAck, encodeBitmap, encodeEmpty, encodeError, encodeFault, encodeHello, expectSize, faultFrameSize, type Welcome,
} from "./protocol.js";

export interface ReplayTrace {
  readonly pages: Uint32Array;
  readonly gaps?: Uint32Array;
  readonly streams?: Uint16Array;
  readonly length?: number;
}

export interface MigrationOptions {
  host?: string;
  port: number;
  /** The whole trace; the accesses before `switchAt` are the source's history and are not replayed. */
  trace: ReplayTrace;
  /** Fraction of the trace before switch-over (0..1), default 0.3. */
  switchAt?: number;
  /** Guest-physical placement of the trace's pages (same layout and seed as the source's history). */
  layout?: LayoutName;
  seed?: number;
  /** Guest instructions per second for `gap`; 0 replays as fast as possible. Default 1e9. */
  ips?: number;
  /** Emulated link on the destination's sending direction. */
  link?: LinkOptions;
  /**
   * How long the destination keeps trying to reconnect after the link to the source was lost (the
   * source killed and restarted, a link outage), in ms; default 30 s. Attempts back off exponentially
   * from `reconnectDelayMs` to `maxReconnectDelayMs`. The clock restarts at every successful WELCOME.
   */
  reconnectTimeoutMs?: number;
  /** First delay between attempts (default 10 ms); doubled after each failed attempt. */
  reconnectDelayMs?: number;
  /** Largest delay between attempts (default 500 ms). */
  maxReconnectDelayMs?: number;
  /** Most reconnection attempts in the whole migration, failed ones included (default: no limit but the timeout). */
  maxReconnects?: number;
  /** Give up after this long (0 = never). */
  timeoutMs?: number;
  /**
   * While a fault request is outstanding, or the replay is over and pages are still missing, a source
   * that sends nothing for this long is taken for gone (a host that vanished without a FIN, or one
   * that stalled): the connection is dropped as a link failure and the destination reconnects (asking
   * again for what is missing). Default 60 s; 0 = never.
   */
  idleTimeoutMs?: number;
  /**
   * While connected, after this long without sending anything the destination sends an ACK (of the
   * pages received so far, a no-op for the source) so that the source's idle timeout (60 s by default)
   * does not close a live but quiet migration. Default 15 s; 0 = never.
   */
  keepAliveMs?: number;
  /** Test hook: every connected socket (attempt 0 is the first). */
  onSocket?: (socket: Socket, attempt: number) => void;
  /** Keep the per-request timeline (MigrationResult.timeline). */
  timeline?: boolean;
}

/**
 * Per fault request, in the order sent: the page, when the request was written and when the page
 * arrived (process-wide monotonic ns: on one host comparable with the source's SessionMetrics timeline).
 */
export interface RequestTimeline {
  page: number[];
  sentNs: number[];
  arrivedNs: number[];
}

/** The link to the source was lost and could not be resumed in time. */
export class ReconnectError extends Error {
  constructor(message: string, readonly attempts: number, readonly limitMs: number, readonly cause: Error) {
    super(message);
    this.name = "ReconnectError";
  }
}

/** The trace does not fit the source's image (bad input: another trace, layout or image). */
/** The largest guest memory a destination holds (one Buffer). */
const MAX_MEMORY = bufferConstants.MAX_LENGTH;

export class TraceMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TraceMismatchError";
  }
}

export interface StallDistribution {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

export interface MigrationResult {
  verified: boolean;
  digest: string;
  expectedDigest: string;
  pageCount: number;
  accesses: number;
  /**
   * Network faults, as the simulator counts them: pages the guest blocked on that the source sent
   * because of the request (they arrive as fault pages; always equals `received.fault`).
   */
  faults: number;
  /**
   * In-flight waits, as the simulator counts them: pages the guest blocked on that the source had
   * already sent as predicted or pushed (the request found them on the wire). Every blocked access,
   * either kind, is one entry of `stall`.
   */
  inflightWaits: number;
  /** Fault requests sent. */
  requests: number;
  stallMs: number;
  stall: StallDistribution;
  /** Replay time, switch-over to the last access. */
  completionMs: number;
  /** Switch-over to the last page received. */
  migrationMs: number;
  /** The trace's own duration at `ips` (0 when ips = 0). */
  guestMs: number;
  pagesReceived: number;
  duplicatePages: number;
  /** Reconnections that resumed the migration (a WELCOME after a lost connection); failed attempts are not counted. */
  reconnects: number;
  /** Connection attempts after the first, failed ones included. */
  reconnectAttempts: number;
  /** Strategy time on the fault path as reported by the source, summed over faults. */
  predictorUs: number;
  received: { fault: number; predicted: number; push: number };
  /** Prefetched pages the guest touched before the replay ended (counted once per page, in-flight waits included). */
  used: { predicted: number; push: number };
  /** predicted pages touched / predicted pages received. */
  accuracy: number;
  bytesReceived: number;
  /**
   * Whether the source acknowledged DONE (it closes the connection in order after reading it). False
   * when the destination finished but could not reach the source again within the reconnection deadline.
   */
  doneDelivered: boolean;
  /** The session id this destination chose (hex), as the source names it. */
  sessionId: string;
  /** With the `timeline` option. */
  timeline?: RequestTimeline;
}

/**
 * Connections in a row that may fail the same way (a page that fails its checksum, a source silent
 * past the idle timeout) with no page accepted in between before the migration fails: each of them
 * got a WELCOME, which restarts the reconnection deadline, so without this bound a source that always
 * sends a corrupt page was reconnected to forever.
 */
export const SAME_FAILURE_LIMIT = 5;

/** Acknowledge every this many pages, and at the end of every chunk read (the source keeps at most its push window in flight). */
const ACK_EVERY = 8;
const K_TOUCHED = 0x80;
const K_MASK = 0x0f; // 1 + PageKind

export function runMigration(opts: MigrationOptions): Promise<MigrationResult> {
  return new Migration(opts).run();
}

class Migration {
  private readonly host: string;
  private readonly sessionId = randomBytes(16);
  private welcome: Welcome | null = null;
  private pageCount = 0;
  private memory!: Buffer;
  private present!: Bitmap;
  private requested!: Bitmap;
  private kind!: Uint8Array;
  // replay state
  private pages!: Uint32Array;
  private order!: Uint32Array; // access indices grouped by stream
  private cursor!: Uint32Array;
  private end!: Uint32Array;
  private cum!: Float64Array; // guest ns at each access
  private blockedOn!: Int32Array;
  private stallStart!: Float64Array;
  private stallNs!: Float64Array;
  private waiters = new Map<number, number[]>();
  private stalls: number[] = [];
  private t0 = 0;
  private replayEnd = -1;
  private lastPage = -1;
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  // feedback not yet sent
  private fbPages = new Uint32Array(1024);
  private fbStreams = new Uint16Array(1024);
  private fbLen = 0;
  // connection
  private socket: Socket | null = null;
  private link: ByteLink | null = null;
  private writer: FrameWriter | null = null;
  private serving = false;
  private hereReceived = 0; // pages received on this connection
  private hereAcked = 0;
  private attempt = 0;
  /** Reconnections that got a WELCOME (the report's `reconnects`); `attempt` counts tries. */
  private resumed = 0;
  /** Since the link was lost (0: connected), and the failed attempts since then. */
  private lostAt = 0;
  private failedAttempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  /** A reconnection attempt that has not connected by the reconnection deadline is abandoned. */
  private connectTimer: NodeJS.Timeout | null = null;
  /** Keepalive and idle checks of the current connection while serving. */
  private tick: NodeJS.Timeout | null = null;
  /** When the source last sent data, and when the set of outstanding requests last became non-empty (Date.now). */
  private lastHeard = 0;
  private waitingSince = 0;
  /** The last link failure that may repeat (checksum, idle) and how often since the last page accepted. */
  private repeat = { code: 0, count: 0 };
  private finished = false;
  /** The image's digest once every page is present and the replay is done: only DONE is left to deliver. */
  private finalDigest: Buffer | null = null;
  private doneTimer: NodeJS.Timeout | null = null;
  private resolve!: (r: MigrationResult) => void;
  private reject!: (e: Error) => void;
  private overall: NodeJS.Timeout | null = null;
  // counters
  private faults = 0;
  private inflightWaits = 0;
  private requests = 0;
  private received = [0, 0, 0];
  private used = [0, 0, 0];
  private duplicates = 0;
  private predictorNs = 0;
  private bytes = 0;
  private accesses = 0;
  private guestMs = 0;
  private tlPage: number[] = [];
  private tlSent: number[] = [];
  private arrived = new Map<number, number>();
  // probe (PPM_PROBE): the current data event's start, its chunk's stream offset, pages requested this step
  private pDataAt = 0;
  private pChunkStart = 0;
  private pChunkLen = 0;
  private pReq: number[] = [];
  private pPages = 0;
  private pDue = 0;
  private pResume: number[] = [];
  private pSched0 = { runNs: 0, waitNs: 0 };

  constructor(private readonly o: MigrationOptions) {
    this.host = o.host ?? "127.0.0.1";
  }

  run(): Promise<MigrationResult> {
    return new Promise<MigrationResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      for (const k of ["idleTimeoutMs", "keepAliveMs"] as const) {
        const v = this.o[k];
        if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
          return reject(new RangeError(`${k} must be a number of ms >= 0 (0 = off), got ${String(v)}`));
        }
      }
      if (this.o.timeoutMs) {
        this.overall = setTimeout(() => this.fail(new Error(`migration did not finish within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
      }
      this.connect();
    });
  }

  private connect(): void {
    const sock = connect({ host: this.host, port: this.o.port, noDelay: true });
    // a source host that vanished without a FIN while both sides are quiet is found by the kernel
    sock.setKeepAlive(true, TCP_KEEPALIVE_MS);
    const attempt = this.attempt;
    this.socket = sock;
    if (this.lostAt > 0) {
      // a SYN to a vanished host goes unanswered for minutes: the attempt ends at the deadline
      const limitMs = this.o.reconnectTimeoutMs ?? 30_000;
      this.connectTimer = setTimeout(() => {
        this.connectTimer = null;
        if (this.socket === sock && sock.connecting) this.onConnError(sock, new Error(`connecting to ${this.host}:${this.o.port} did not succeed within the reconnection deadline`));
      }, Math.max(0, this.lostAt + limitMs - Date.now()));
    }
    this.serving = false;
    const link = createLink(sock, this.o.link);
    this.link = link;
    this.writer = new FrameWriter(link);
    const reader = new FrameReader((t, b, s, e) => this.onFrame(t, b, s, e));
    let opening = Buffer.alloc(0); // the connection's first bytes, to name what answered when it is not a source
    sock.on("connect", () => {
      if (this.socket !== sock) return;
      if (this.connectTimer) { clearTimeout(this.connectTimer); this.connectTimer = null; }
      this.o.onSocket?.(sock, attempt);
      const w = this.welcome;
      const { buf, off } = this.writer!.reserve(LEN_BYTES + 1 + HELLO_BODY);
      this.writer!.commit(encodeHello(buf, off, {
        version: PROTOCOL_VERSION, flags: 0, pageSize: PAGE_SIZE, sessionId: this.sessionId,
        pageCount: w ? w.pageCount : 0, digest: w ? w.digest : Buffer.alloc(32),
      }));
      this.writer!.flush();
    });
    sock.on("data", (chunk: Buffer) => {
      if (this.socket !== sock || this.finished) return;
      this.lastHeard = Date.now();
      if (PROBE) { this.pDataAt = nowNs(); this.pChunkStart = this.bytes; this.pChunkLen = chunk.length; this.pPages = 0; probe("d_data", { sid: this.sessionId.toString("hex"), t: this.pDataAt, cum: this.bytes, len: chunk.length, w: waitNs() }); }
      this.bytes += chunk.length;
      if (opening.length < 24) opening = Buffer.concat([opening, chunk.subarray(0, 24 - opening.length)]);
      try { reader.push(chunk); } catch (err) {
        let e = err;
        // Garbage before any WELCOME: whatever listens there is not a ppm-prefetch source (an HTTP server
        // reads as a frame of a billion bytes); say that, and what it sent.
        if (e instanceof ProtocolError && !this.serving && (e.code === ErrorCode.Oversized || e.code === ErrorCode.Malformed)) {
          e = new ProtocolError(e.code, `${this.host}:${this.o.port} is not a ppm-prefetch source (it sent ${JSON.stringify(opening.toString("latin1"))}${opening.length >= 24 ? "..." : ""}; ${e.detail})`);
        }
        // a frame the link damaged is a link failure; anything else thrown here is a bug, not worth a retry
        if (e instanceof ProtocolError || e instanceof RemoteError || e instanceof TraceMismatchError) this.onConnError(sock, e);
        else this.fail(e as Error);
        return;
      }
      // what arrived is acknowledged once it is all read, also short of ACK_EVERY pages: a source whose
      // push window is smaller than that must not wait for pages it will never send
      if (this.socket === sock && !this.finished) this.ack();
    });
    sock.on("error", (e) => this.onConnError(sock, e));
    sock.on("close", () => this.onConnError(sock, new Error("connection closed")));
  }

  /** The connection is gone: reconnect unless the error is fatal. */
  private onConnError(sock: Socket, e: Error): void {
    if (this.socket !== sock || this.finished) return;
    this.socket = null;
    this.serving = false;
    for (const t of [this.doneTimer, this.connectTimer, this.tick]) if (t) clearTimeout(t);
    this.doneTimer = this.connectTimer = this.tick = null;
    this.link?.close();
    if ((e instanceof ProtocolError || e instanceof TraceMismatchError) && !sock.destroyed) {
      // docs/protocol.md, "Errors": a frame found bad here is named to the source in an ERROR frame
      // before the connection closes (best effort; the source closes its side once it has read it);
      // so is a trace that does not fit the image (the source then ends the session at once)
      endWithError(sock, e instanceof ProtocolError ? e.code : ErrorCode.OutOfRange, e instanceof ProtocolError ? e.detail : e.message);
    } else {
      sock.destroy();
    }
    // an idle timeout from the source (this destination was silent: keepalive off) only needs a reconnection
    const fatal = (e instanceof RemoteError && e.code !== ErrorCode.Idle) || e instanceof TraceMismatchError ||
      (e instanceof ProtocolError && e.code !== ErrorCode.Checksum && e.code !== ErrorCode.Truncated && e.code !== ErrorCode.Idle);
    if (fatal) return this.fail(e);
    if (e instanceof ProtocolError && (e.code === ErrorCode.Checksum || e.code === ErrorCode.Idle)) {
      // the same failure again with no page accepted since (onPage resets the count): give up, naming it
      this.repeat = this.repeat.code === e.code ? { code: e.code, count: this.repeat.count + 1 } : { code: e.code, count: 1 };
      if (this.repeat.count >= SAME_FAILURE_LIMIT) {
        return this.fail(new ProtocolError(e.code, `${e.detail}; ${this.repeat.count} connections in a row failed this way with no page accepted in between: giving up`));
      }
    }
    // before the first WELCOME there is nothing to resume: a source that is not there is an error now
    if (this.welcome === null && (e as NodeJS.ErrnoException).code === "ECONNREFUSED") return this.fail(e);
    const now = Date.now();
    if (this.lostAt === 0) { this.lostAt = now; this.failedAttempts = 0; } else this.failedAttempts++;
    const limitMs = this.o.reconnectTimeoutMs ?? 30_000;
    const delay = Math.min(this.o.maxReconnectDelayMs ?? 500, (this.o.reconnectDelayMs ?? 10) * 2 ** Math.min(this.failedAttempts, 20));
    const left = this.lostAt + limitMs - now;
    if (left <= 0 || this.attempt >= (this.o.maxReconnects ?? Infinity)) {
      return this.fail(new ReconnectError(`lost the connection to the source ${this.host}:${this.o.port} and could not resume within ` +
        `${limitMs} ms (${this.failedAttempts + 1} attempts, ${this.resumed} reconnections in all): ${e.message}`, this.failedAttempts + 1, limitMs, e));
    }
    this.attempt++;
    // the last attempt is made at the deadline, not after it
    this.retryTimer = setTimeout(() => { this.retryTimer = null; if (!this.finished) this.connect(); }, Math.min(delay, left));
  }

  private onFrame(type: number, b: Buffer, s: number, e: number): void {
    switch (type) {
      case FrameType.Page: return this.onPage(b, s, e);
      case FrameType.FaultDone:
        expectSize("FAULT_DONE", s, e, FAULT_DONE_BODY);
        this.predictorNs += b.readUInt32LE(s + 8);
        return;
      case FrameType.Welcome: return this.onWelcome(decodeWelcome(b, s, e));
      case FrameType.Error: throw decodeError(b, s, e);
      default: throw new ProtocolError(ErrorCode.Malformed, `unknown frame type ${type} from the source`);
    }
  }

  private onWelcome(w: Welcome): void {
    if (this.serving) throw new ProtocolError(ErrorCode.Unexpected, "a second WELCOME");
    this.lostAt = 0;
    if (w.version !== PROTOCOL_VERSION) throw new ProtocolError(ErrorCode.Version, `source speaks version ${w.version}, this destination ${PROTOCOL_VERSION}`);
    if (w.pageSize !== PAGE_SIZE) throw new ProtocolError(ErrorCode.PageSize, `source uses ${w.pageSize}-byte pages`);
    if (this.welcome) {
      this.resumed++;
      if (w.pageCount !== this.pageCount || !w.digest.equals(this.welcome.digest)) {
        throw new ProtocolError(ErrorCode.Digest, "the source's image changed across a reconnection");
      }
    } else {
      this.welcome = w;
      this.setup(w);
    }
    this.serving = true;
    this.hereReceived = 0;
    this.hereAcked = 0;
    this.requested.clear();
    this.waitingSince = this.lastHeard = Date.now(); // the requests re-sent below are new on this connection
    this.startTick(this.socket!);
    const wr = this.writer!;
    if (this.present.count > 0) {
      const bits = this.present.bits;
      for (let at = 0; at < bits.length; at += BITMAP_CHUNK) {
        const chunk = bits.subarray(at, Math.min(bits.length, at + BITMAP_CHUNK));
        if (isAllZero(chunk)) continue;
        const { buf, off } = wr.reserve(LEN_BYTES + 1 + 4 + chunk.length);
        wr.commit(encodeBitmap(buf, off, at, chunk));
      }
    }
    const { buf, off } = wr.reserve(LEN_BYTES + 1);
    wr.commit(encodeEmpty(buf, off, FrameType.Start));
    // ask again for every page a stream waits for
    for (const [p, streams] of this.waiters) this.sendFault(p, streams[0]);
    if (this.replayEnd >= 0) this.sendEmpty(FrameType.ReplayDone);
    wr.flush();
    // finished while disconnected: this reconnection exists to end the session at the source
    if (this.finalDigest) return this.finalDigest.equals(w.digest) ? this.sendDone() : this.refuseFinish();
    if (this.t0 === 0) { this.t0 = nowNs(); if (PROBE) this.pSched0 = schedstat(); this.schedule(); }
  }

  private setup(w: Welcome): void {
    const pc = w.pageCount;
    if (pc === 0) throw new ProtocolError(ErrorCode.Malformed, "WELCOME names an image of 0 pages");
    // guest memory is one Buffer here: Node's limit (4 GiB on Node 20) bounds the image a destination can take
    if (pc * PAGE_SIZE > MAX_MEMORY) {
      throw new ProtocolError(ErrorCode.Oversized, `the source's image has ${pc} pages (${(pc * PAGE_SIZE / 2 ** 30).toFixed(1)} GiB); this destination holds at most ${Math.floor(MAX_MEMORY / PAGE_SIZE)} (${MAX_MEMORY / 2 ** 30} GiB, one Node Buffer)`);
    }
    this.pageCount = pc;
    // guest memory is allocated and faulted in before switch-over, as a real destination does
    this.memory = Buffer.allocUnsafeSlow(pc * PAGE_SIZE).fill(0);
    this.present = new Bitmap(pc);
    this.requested = new Bitmap(pc);
    this.kind = new Uint8Array(pc);
    const t = this.o.trace;
    const len = t.length ?? t.pages.length;
    let placed: ReturnType<typeof placePages>;
    try {
      placed = placePages(t.pages.subarray(0, len), { layout: this.o.layout ?? "virtual", vmPages: pc, seed: this.o.seed ?? 1 });
    } catch (e) {
      // 2m/4k: no room for the trace in the source's image (a mismatch of the inputs, not a failure)
      if (e instanceof RangeError) throw new TraceMismatchError(`the trace does not fit the source's image of ${pc} pages (layout ${this.o.layout ?? "virtual"}): ${e.message}`);
      throw e;
    }
    if (placed.pageCount > pc) throw new TraceMismatchError(`the trace spans ${placed.pageCount} pages (layout ${this.o.layout ?? "virtual"}), the source's image has ${pc}`);
    const from = Math.min(len, Math.floor(len * (this.o.switchAt ?? 0.3)));
    const n = len - from;
    this.accesses = n;
    this.pages = placed.pages.subarray(from, len);
    const streams = t.streams ? t.streams.subarray(from, len) : new Uint16Array(n);
    let ns = 1;
    for (let i = 0; i < n; i++) if (streams[i] + 1 > ns) ns = streams[i] + 1;
    // counting sort of the access indices by stream
    const cnt = new Uint32Array(ns + 1);
    for (let i = 0; i < n; i++) cnt[streams[i] + 1]++;
    for (let s = 0; s < ns; s++) cnt[s + 1] += cnt[s];
    this.cursor = cnt.slice(0, ns);
    this.end = cnt.slice(1, ns + 1);
    this.order = new Uint32Array(n);
    const fill = cnt.slice(0, ns);
    for (let i = 0; i < n; i++) this.order[fill[streams[i]]++] = i;
    const ips = this.o.ips ?? 1e9;
    this.cum = new Float64Array(n);
    if (ips > 0 && t.gaps) {
      const g = t.gaps.subarray(from, len);
      const nsPer = 1e9 / ips;
      let c = 0;
      for (let i = 0; i < n; i++) { c += g[i]; this.cum[i] = c * nsPer; }
      this.guestMs = n ? this.cum[n - 1] / 1e6 : 0;
    }
    this.blockedOn = new Int32Array(ns).fill(-1);
    this.stallStart = new Float64Array(ns);
    this.stallNs = new Float64Array(ns);
  }

  private onPage(b: Buffer, s: number, e: number): void {
    if (!this.serving) throw new ProtocolError(ErrorCode.Unexpected, "PAGE before WELCOME");
    expectSize("PAGE", s, e, PAGE_HEADER + PAGE_SIZE);
    const p = b.readUInt32LE(s);
    const k = b[s + 4];
    if (p >= this.pageCount) throw new ProtocolError(ErrorCode.OutOfRange, `page ${p} of an image of ${this.pageCount} pages`);
    if (k > PageKind.Push) throw new ProtocolError(ErrorCode.Malformed, `page kind ${k}`);
    const data = b.subarray(s + PAGE_HEADER, e);
    if (checksum(data) !== b.readUInt32LE(s + 8)) throw new ProtocolError(ErrorCode.Checksum, `page ${p} does not match its checksum`);
    if (PROBE) this.pPages++;
    this.hereReceived++;
    if (this.hereReceived - this.hereAcked >= ACK_EVERY) this.ack();
    if (this.present.has(p)) { this.duplicates++; return; }
    data.copy(this.memory, p * PAGE_SIZE);
    this.present.add(p);
    this.repeat.count = 0; // progress: a later failure is not a repetition
    this.kind[p] = (this.kind[p] & ~K_MASK) | (1 + k);
    this.received[k]++;
    const now = nowNs();
    const ws = this.waiters.get(p);
    if (ws) {
      if (PROBE) {
        probe("d_arrive", { sid: this.sessionId.toString("hex"), page: p, kind: k, w: waitNs(), dataAt: this.pDataAt, t: now, chunkStart: this.pChunkStart, chunkLen: this.pChunkLen,
          pagesBefore: this.pPages, received: this.hereReceived });
        for (const st of ws) this.pResume.push(st, p);
      }
      if (this.o.timeline) this.arrived.set(p, now);
      this.waiters.delete(p);
      // the simulator's rule: the request made it a fault only if the source sent the page because of
      // it; a page that was already on the wire as predicted or pushed is an in-flight wait, and its
      // touch (when the stream resumes) is a used prefetch with feedback like any other
      if (k === PageKind.Fault) this.faults++; else this.inflightWaits++;
      for (const st of ws) {
        const d = now - this.stallStart[st];
        this.stallNs[st] += d;
        this.stalls.push(d);
        this.blockedOn[st] = -1;
      }
      this.schedule();
    }
    if (this.present.count === this.pageCount) {
      this.lastPage = now;
      this.maybeFinish();
    }
  }

  /**
   * Every quarter of the shorter of the two periods: a keepalive ACK after `keepAliveMs` without a
   * byte sent, and the idle timeout: with a request outstanding, `idleTimeoutMs` without a byte from
   * the source (counted from the later of the last byte and the moment the destination started
   * waiting) drops the connection as a link failure.
   */
  private startTick(sock: Socket): void {
    const ka = this.o.keepAliveMs ?? 15_000, idle = this.o.idleTimeoutMs ?? 60_000;
    const period = Math.min(ka > 0 ? ka : Infinity, idle > 0 ? idle : Infinity) / 4;
    if (period === Infinity) return;
    let lastBytes = -1, lastWriteAt = Date.now();
    this.tick = setInterval(() => {
      if (this.socket !== sock || !this.serving || this.finished || this.finalDigest) return;
      const now = Date.now();
      const bytes = sock.bytesWritten + (this.link?.backlog ?? 0);
      if (bytes !== lastBytes) { lastBytes = bytes; lastWriteAt = now; } else if (ka > 0 && now - lastWriteAt >= ka) { this.keepAlive(); lastWriteAt = now; }
      if (idle > 0 && this.awaiting() && now - Math.max(this.lastHeard, this.waitingSince) >= idle) {
        // confirmed after the next poll phase: a tick that fires late because this process stalled
        // runs before the socket is read, and what arrived meanwhile must count first
        setImmediate(() => {
          if (this.socket !== sock || !this.serving || this.finished || !this.awaiting()) return;
          const silent = Date.now() - Math.max(this.lastHeard, this.waitingSince);
          if (silent < idle) return;
          const what = this.waiters.size > 0 ? `page ${this.waiters.keys().next().value!}` : `the ${this.pageCount - this.present.count} pages still missing after the replay`;
          this.onConnError(sock, new ProtocolError(ErrorCode.Idle, `no frame from the source for ${silent} ms while waiting for ${what} (idle timeout ${idle} ms)`));
        });
      }
    }, Math.max(5, Math.floor(period)));
    this.tick.unref();
  }

  /**
   * Whether the destination waits for the source: a request outstanding, or the replay over with pages
   * still missing (the push owes them; a source that stalls then must not leave the migration hanging).
   */
  private awaiting(): boolean {
    return this.waiters.size > 0 || (this.replayEnd >= 0 && !this.finalDigest && this.present.count < this.pageCount);
  }

  /** An ACK of what was received so far: legal at any time while serving, and all the source needs to hear. */
  private keepAlive(): void {
    this.hereAcked = this.hereReceived;
    const { buf, off } = this.writer!.reserve(LEN_BYTES + 1 + 4);
    this.writer!.commit(encodeAck(buf, off, this.hereReceived));
    this.writer!.flush();
  }

  /** Acknowledge the pages received on this connection (the source's push window). */
  private ack(): void {
    if (!this.serving || this.hereReceived === this.hereAcked) return;
    this.hereAcked = this.hereReceived;
    const { buf, off } = this.writer!.reserve(LEN_BYTES + 1 + 4);
    this.writer!.commit(encodeAck(buf, off, this.hereReceived));
    this.writer!.flush();
  }

  private sendFault(p: number, stream: number): void {
    const wr = this.writer!;
    const n = Math.min(this.fbLen, MAX_FEEDBACK);
    const { buf, off } = wr.reserve(faultFrameSize(n));
    wr.commit(encodeFault(buf, off, p, stream, this.fbPages, this.fbStreams, 0, n));
    if (n < this.fbLen) { this.fbPages.copyWithin(0, n, this.fbLen); this.fbStreams.copyWithin(0, n, this.fbLen); }
    this.fbLen -= n;
    this.requested.add(p);
    this.requests++;
    if (PROBE) this.pReq.push(p);
    if (this.o.timeline) { this.tlPage.push(p); this.tlSent.push(nowNs()); }
  }

  private sendEmpty(t: FrameType): void {
    const { buf, off } = this.writer!.reserve(LEN_BYTES + 1);
    this.writer!.commit(encodeEmpty(buf, off, t));
  }

  private schedule(): void {
    if (this.scheduled || this.finished || this.replayEnd >= 0) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.scheduled = true;
    setImmediate(this.step);
  }

  private step = (): void => {
    this.scheduled = false;
    if (this.finished || this.replayEnd >= 0) return;
    const now = nowNs();
    if (PROBE && this.pResume.length) {
      for (let j = 0; j < this.pResume.length; j += 2) probe("d_resume", { sid: this.sessionId.toString("hex"), stream: this.pResume[j], page: this.pResume[j + 1], t: now, w: waitNs() });
      this.pResume.length = 0;
    }
    let budget = 10_000;
    let remaining = false;
    let next = Infinity;
    const pages = this.pages, order = this.order, cum = this.cum, present = this.present, kind = this.kind;
    for (let st = 0; st < this.cursor.length; st++) {
      let c = this.cursor[st];
      const end = this.end[st];
      if (c >= end) continue;
      if (this.blockedOn[st] >= 0) { remaining = true; continue; }
      const base = this.t0 + this.stallNs[st];
      while (c < end && budget > 0) {
        const i = order[c];
        const due = base + cum[i];
        if (due > now) { if (due < next) next = due; break; }
        const p = pages[i];
        if (!present.has(p)) { if (PROBE) this.pDue = due; this.fault(st, p, now); break; }
        const k = kind[p];
        if ((k & K_TOUCHED) === 0) this.firstTouch(p, st, k);
        c++; budget--;
      }
      this.cursor[st] = c;
      if (c < end) remaining = true;
      if (c < end && budget <= 0 && this.blockedOn[st] < 0) next = now;
    }
    if (PROBE && this.pReq.length && this.link) (this.link as { tag?: string }).tag = `${this.sessionId.toString("hex")}:req:${this.pReq[0]}`;
    if (this.writer && this.writer.unflushed > 0) this.writer.flush();
    if (PROBE && this.pReq.length) {
      const t = nowNs();
      for (const p of this.pReq) probe("d_req", { sid: this.sessionId.toString("hex"), page: p, t, stepAt: now, w: waitNs(), userBuf: this.socket?.writableLength ?? -1 });
      this.pReq.length = 0;
    }
    if (!remaining) return this.replayFinished(now);
    if (next === Infinity) return; // every stream waits for a page
    const wait = next - nowNs();
    if (wait > 2e6) {
      this.timer = setTimeout(() => { this.timer = null; this.schedule(); }, Math.floor(wait / 1e6) - 1);
    } else {
      this.scheduled = true;
      setImmediate(this.step);
    }
  };

  private firstTouch(p: number, st: number, k: number): void {
    this.kind[p] = k | K_TOUCHED;
    const kk = (k & K_MASK) - 1;
    if (kk === PageKind.Predicted || kk === PageKind.Push) {
      this.used[kk]++;
      if (this.fbLen === this.fbPages.length) {
        const np = new Uint32Array(this.fbLen * 2); np.set(this.fbPages); this.fbPages = np;
        const ns = new Uint16Array(this.fbLen * 2); ns.set(this.fbStreams); this.fbStreams = ns;
      }
      this.fbPages[this.fbLen] = p;
      this.fbStreams[this.fbLen++] = st;
    }
  }

  private fault(st: number, p: number, now: number): void {
    // classified (fault or in-flight wait) when the page arrives: only its kind tells
    this.blockedOn[st] = p;
    this.stallStart[st] = now;
    if (PROBE) probe("d_fault", { sid: this.sessionId.toString("hex"), page: p, stream: st, t: now, due: this.pDue, w: waitNs() });
    const ws = this.waiters.get(p);
    if (this.waiters.size === 0) this.waitingSince = Date.now(); // the idle timeout counts from here at the earliest
    if (ws) ws.push(st); else this.waiters.set(p, [st]);
    if (this.serving && !this.requested.has(p)) this.sendFault(p, st);
  }

  private replayFinished(now: number): void {
    this.replayEnd = now;
    this.waitingSince = Date.now(); // the rest of the pages are awaited from here (the idle timeout)
    if (this.serving) { this.sendEmpty(FrameType.ReplayDone); this.writer!.flush(); }
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || this.finalDigest || this.replayEnd < 0 || this.lastPage < 0) return;
    if (PROBE) {
      const ss = schedstat();
      probe("d_end", { sid: this.sessionId.toString("hex"), t0: this.t0, replayEnd: this.replayEnd, lastPage: this.lastPage, runNs: ss.runNs - this.pSched0.runNs, waitNs: ss.waitNs - this.pSched0.waitNs });
    }
    this.finalDigest = sha256(this.memory);
    // DONE means every page is present and verified (docs/protocol.md): a memory that does not match
    // the image's digest is named to the source (ERROR 3), which then does not count the migration as
    // completed, and the result says verified: false.
    if (!this.finalDigest.equals(this.welcome!.digest)) return this.refuseFinish();
    if (this.serving && this.socket) return this.sendDone();
    // Finished while disconnected: the reconnection under way (a retry timer or a socket waiting for
    // its WELCOME) goes on, and DONE follows its START (onWelcome); without it the source would keep
    // the session for its TTL. If the source cannot be reached in time, `complete(false)`.
  }

  /** The memory failed verification: ERROR 3 instead of DONE (best effort: on a live connection), then the result. */
  private refuseFinish(): void {
    const sock = this.socket;
    if (!sock || !this.serving) return this.complete(false);
    this.socket = null; // this connection ends here (no reconnection): the frame, then FIN
    this.serving = false;
    endWithError(sock, ErrorCode.Digest, `the destination's memory does not match the image digest (sha256 ${this.finalDigest!.toString("hex").slice(0, 16)}...)`);
    this.complete(false);
  }

  /** DONE ends the session at the source, which closes the connection in order once it has read it. */
  private sendDone(): void {
    const sock = this.socket!;
    this.sendEmpty(FrameType.Done);
    this.writer!.flush();
    // 'end' (not 'close'): a connection that drops instead may have lost DONE, so it is a link
    // failure like any other and the destination reconnects to deliver it again
    sock.once("end", () => { if (this.socket === sock) this.complete(true); });
    this.doneTimer = setTimeout(() => { this.doneTimer = null; if (this.socket === sock) this.complete(false); }, 2000);
  }

  /** The migration is over: nothing of it (socket, link, timer) is left behind. */
  private complete(delivered: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    this.resolve(this.result(this.finalDigest!, this.welcome!.digest, delivered));
  }

  private release(): void {
    for (const t of [this.overall, this.timer, this.retryTimer, this.doneTimer, this.connectTimer, this.tick]) if (t) clearTimeout(t);
    this.overall = this.timer = this.retryTimer = this.doneTimer = this.connectTimer = this.tick = null;
    this.link?.close();
    this.socket?.destroy();
    this.socket = null;
  }

  private result(digest: Buffer, expected: Buffer, doneDelivered: boolean): MigrationResult {
    const s = Float64Array.from(this.stalls).sort();
    const q = (f: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(f * s.length))] / 1e3 : 0);
    let total = 0;
    for (let i = 0; i < s.length; i++) total += s[i];
    const pagesReceived = this.received[0] + this.received[1] + this.received[2];
    return {
      verified: digest.equals(expected) && this.present.count === this.pageCount,
      digest: digest.toString("hex"), expectedDigest: expected.toString("hex"), pageCount: this.pageCount,
      accesses: this.accesses, faults: this.faults, inflightWaits: this.inflightWaits, requests: this.requests,
      stallMs: total / 1e6,
      stall: { count: s.length, meanUs: s.length ? total / s.length / 1e3 : 0, p50Us: q(0.5), p90Us: q(0.9), p99Us: q(0.99), maxUs: s.length ? s[s.length - 1] / 1e3 : 0 },
      completionMs: (this.replayEnd - this.t0) / 1e6, migrationMs: (this.lastPage - this.t0) / 1e6, guestMs: this.guestMs,
      pagesReceived, duplicatePages: this.duplicates, reconnects: this.resumed, reconnectAttempts: this.attempt,
      predictorUs: this.predictorNs / 1e3,
      received: { fault: this.received[0], predicted: this.received[1], push: this.received[2] },
      used: { predicted: this.used[1], push: this.used[2] },
      accuracy: this.received[1] ? this.used[1] / this.received[1] : 0,
      bytesReceived: this.bytes, doneDelivered,
      sessionId: this.sessionId.toString("hex"),
      ...(this.o.timeline ? { timeline: { page: this.tlPage, sentNs: this.tlSent, arrivedNs: this.tlPage.map((p) => this.arrived.get(p) ?? -1) } } : {}),
    };
  }

  private fail(e: Error): void {
    if (this.finished) return;
    // every page is present and verified: not reaching the source to say so does not undo that
    if (this.finalDigest) return this.complete(false);
    this.finished = true;
    this.release();
    this.reject(e);
  }
}

/** An ERROR frame, then FIN (the source closes its side once it has read it); destroyed after a second at the latest. */
function endWithError(sock: Socket, code: ErrorCode, detail: string): void {
  sock.end(encodeError(code, detail));
  const t = setTimeout(() => sock.destroy(), 1000);
  t.unref();
  sock.once("close", () => clearTimeout(t));
}

/** SHA-256 of a buffer of any size (one update is limited to 2^31 - 1 bytes). */
function sha256(b: Buffer): Buffer {
  const h = createHash("sha256");
  for (let at = 0; at < b.length; at += 1 << 30) h.update(b.subarray(at, Math.min(b.length, at + (1 << 30))));
  return h.digest();
}

function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
