/**
 * The source side of post-copy: a TCP page server that holds the VM's memory image.
 *
 * Every migration is a session with its own strategy (predictor) and state, named by the 16-byte id
 * the destination picks, so a destination whose connection dropped reconnects to the same session.
 * Per connection the server keeps the set of pages it has sent: a page goes out at most once per
 * connection. On (re)connection the destination's present bitmap replaces that set, so after a link
 * failure only the missing pages are sent again.
 *
 * On a fault request it sends the faulted page at once (unless already in flight), then asks the
 * strategy and sends the predicted pages, then a FAULT_DONE frame carrying the strategy's time. A
 * strategy may live in a worker thread (a RemoteStrategy, src/transport/remote-strategy.ts): its
 * answer then comes back asynchronously and the event loop never runs its training or predictions.
 * The background push follows one of the simulator's push orders (src/sim/push.ts: `linear`, `qemu`
 * (the scanner jumps to the page after each fault), `hines`) and only fills the link when it has
 * room, so fault answers overtake it; with `push: "none"` the rest is pushed after the replay.
 *
 * Limits: at most `maxSessions` sessions (live or waiting for their destination to come back); a new
 * one beyond that is refused with a `server busy` ERROR. A client that does not read its answers is
 * not read either: once more than the link's limit waits to be sent on its connection, the server
 * stops parsing its frames and reading its socket until the queue drains (backpressure), so the bytes
 * queued per connection stay bounded; so do its FAULTs waiting for a strategy worker's answer
 * (MAX_PENDING_ANSWERS). A welcomed connection silent for `idleTimeoutMs` is closed (docs/protocol.md,
 * "Liveness").
 *
 * A malformed, truncated, oversized or out-of-range frame, a wrong version, page size or image digest
 * closes that connection with an ERROR frame naming the problem; the server keeps serving the others.
 */
import { createServer, type Server, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { Strategy } from "../strategies/types.js";
import type { SimStrategy } from "../strategies/context.js";
import { createPush, PUSH_MODES, type PushMode, type PushOrder } from "../sim/push.js";
import { createLink, nowNs, type ByteLink, type LinkOptions } from "./link-emulator.js";
import { FrameWriter } from "./writer.js";
import { PROBE, probe, schedstat, waitNs } from "./probe.js";
import { bufferImage, type PageImage } from "./image.js";
import type { RemoteStrategy } from "./remote-strategy.js";
import {
  BITMAP_CHUNK, Bitmap, ErrorCode, FAULT_HEADER, FEEDBACK_ENTRY, FrameReader, MAX_FEEDBACK, TCP_KEEPALIVE_MS, FrameType, PAGE_SIZE, PROTOCOL_VERSION,
  PageKind, ProtocolError, WELCOME_BODY, WELCOME_PUSH, decodeError, decodeHello, encodeError, encodeFaultDone,
  encodePage, encodeWelcome, expectSize, isZero, pageFrameSize, FAULT_DONE_BODY, LEN_BYTES,
} from "./protocol.js";

export type { PushMode };
export { PUSH_MODES };

export interface StrategyFactoryContext {
  pageCount: number;
  sessionId: string;
  /**
   * Aborted when the session ends before (or after) its strategy is ready: the server closed, or the
   * destination never came back within the TTL. A factory that builds slowly (startRemoteStrategy
   * takes it) should stop then, so that no training runs for a session that no longer exists.
   */
  signal: AbortSignal;
}

/** What a factory may return: a strategy, one in a worker thread, or a promise of either. */
export type SessionStrategy = Strategy | RemoteStrategy;

export interface PageServerOptions {
  /** The memory image: a Buffer of a whole number of pages, or a PageImage (a file read page by page). */
  image: Buffer | PageImage;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Background push order during the replay (default linear). */
  push?: PushMode;
  /**
   * Builds (and trains) the strategy of one migration; default: demand paging (no prediction). It may
   * return a promise: the WELCOME waits for it, the event loop does not.
   */
  strategy?: (ctx: StrategyFactoryContext) => SessionStrategy | Promise<SessionStrategy>;
  /** Most predicted pages sent per fault. */
  depth?: number;
  /**
   * Whether a new migration's WELCOME waits for its strategy (default true). With false the session
   * is welcomed at once and serves its faults on demand (with its push) until the strategy is ready,
   * which then learns what was sent meanwhile and answers the following faults; the destination
   * does not wait for the model's training.
   */
  waitForStrategy?: boolean;
  /** Emulated link on the server's sending direction. */
  link?: LinkOptions;
  /** How long a session whose connection dropped waits for its destination to come back. */
  sessionTtlMs?: number;
  /** Pages per background-push write. */
  pushBatch?: number;
  /**
   * Most pages in flight (sent, not yet acknowledged by the destination) before the push waits.
   * Kernel socket buffers are invisible to the sender; without this bound a slow reader lets
   * megabytes of push queue up in them, and every fault answer waits behind them.
   */
  pushWindow?: number;
  /** Most sessions at once, live or waiting for their destination (default 16); more are refused. */
  maxSessions?: number;
  /** A connection that has not sent HELLO after this long is closed (default 10 s). */
  helloTimeoutMs?: number;
  /**
   * A welcomed connection that sends nothing for this long while the server reads it is closed with
   * ERROR 12 (idle timeout), and its session then waits out `sessionTtlMs` (default 60 s; 0 = never).
   * A live destination is never that silent: it sends a keepalive ACK after `keepAliveMs` (15 s) without
   * sending anything. Without this, a client that sends HELLO and goes silent, or a destination whose
   * host vanished without a FIN, held its session slot forever.
   */
  idleTimeoutMs?: number;
  /** Called for every connection closed because of an error (protocol errors and strategy failures). */
  onError?: (err: Error, sessionId: string | null) => void;
  /** Test hook: every accepted socket. */
  onConnection?: (socket: Socket) => void;
  /**
   * Keep each session's per-fault timeline (FAULT frame read, faulted page written; process-wide
   * monotonic ns, comparable with a destination's on the same host) in `sessionMetrics()`.
   */
  timeline?: boolean;
}

/** One session's server-side figures (src/transport/source.ts): what the source did for its faults. */
export interface SessionMetrics {
  id: string;
  /** First HELLO to WELCOME: the wait for the strategy (built and trained, one at a time). */
  helloToWelcomeMs: number;
  /** The strategy's build and training time in its worker (remote strategies). */
  trainMs?: number;
  /** FAULT frames served, and those whose page was written on the fault (not already sent). */
  faults: number;
  /** FAULT frames served on demand because the strategy was not ready yet (waitForStrategy false). */
  faultsBeforeStrategy: number;
  faultsWritten: number;
  /** FAULT frame read -> its page handed to the socket, for the faults that wrote it: mean, max (us) over all, p50 over the first 65,536. */
  serviceUs: { mean: number; p50: number; max: number };
  /** FAULT frame read -> the predictions' answer back from the worker (remote strategies), mean and max (us). */
  predictUs: { mean: number; max: number };
  /** Event-loop time spent on this session: pushing, answering faults (incl. predicted pages), other frames (ms). */
  loopMs: { push: number; fault: number; answer: number };
  pushedPages: number;
  /** Per FAULT frame (with the `timeline` option): read and written (-1: already sent) ns, and the page. */
  timeline?: { read: number[]; written: number[]; page: number[] };
}

/** The server process's event loop over its life (see PageServer.loopMetrics). */
export interface LoopMetrics {
  /** Event-loop delay (1 ms sampling): p50, p99, max (ms). */
  delayMs: { p50: number; p99: number; max: number };
  /** Fraction of the time the loop was busy. */
  utilization: number;
  /** Process CPU time (all threads: the loop and the strategy workers), ms. */
  cpuMs: { user: number; system: number };
  wallMs: number;
}

export interface PageServerStats {
  connections: number;
  sessionsStarted: number;
  sessionsCompleted: number;
  activeSessions: number;
  /** HELLOs refused because `maxSessions` sessions existed. */
  sessionsRefused: number;
  resumes: number;
  protocolErrors: number;
  pagesSent: number;
  faultPages: number;
  predictedPages: number;
  pushedPages: number;
  /** Times a connection stopped being read because its answers were not being read (backpressure). */
  readPauses: number;
}

export interface PageServer {
  readonly host: string;
  readonly port: number;
  readonly pageCount: number;
  readonly digest: Buffer;
  /** Errors that closed connections (most recent last, at most 100 kept). */
  readonly errors: Error[];
  stats(): PageServerStats;
  /** Server-side figures of every session (live and ended; the latest 256 kept). */
  sessionMetrics(): SessionMetrics[];
  loopMetrics(): LoopMetrics;
  close(): Promise<void>;
}

export const demandStrategy = (): Strategy => ({ name: "demand", onFault: () => EMPTY });
const EMPTY = new Uint32Array(0);

function isRemote(s: SessionStrategy): s is RemoteStrategy {
  return (s as RemoteStrategy).remote === true;
}

class Session {
  conn: Conn | null = null;
  /** Aborted by endSession: cancels a strategy still being built (StrategyFactoryContext.signal). */
  readonly abort = new AbortController();
  /**
   * A migration whose DONE this server already read, back only to re-deliver it (its orderly close
   * was lost, destination.ts sendDone): served without a strategy and not counted again.
   */
  redelivery = false;
  ttl: NodeJS.Timeout | null = null;
  strategy: SessionStrategy | null = null;
  /** Settles when the strategy is built (or failed to be). */
  ready: Promise<void> = Promise.resolve();
  readonly sent: Bitmap;
  /** The same set as `sent`, one byte per page: the state array of the push order. */
  readonly state: Uint8Array;
  readonly presented: Bitmap;
  replayDone = false;
  ended = false;
  readonly m = new SessionCounters();
  constructor(readonly id: string, pageCount: number) {
    this.sent = new Bitmap(pageCount);
    this.state = new Uint8Array(pageCount);
    this.presented = new Bitmap(pageCount);
  }
}

/** Raw per-session counters (summarized by `summarize`). */
class SessionCounters {
  helloNs = 0;
  welcomeNs = 0;
  trainMs: number | undefined;
  faults = 0;
  faultsBefore = 0;
  service: number[] = []; // ns, faults that wrote their page: the first SERVICE_KEPT (for the median)
  serviceCount = 0;
  serviceSum = 0;
  serviceMax = 0;
  predictNs = 0;
  predictMaxNs = 0;
  predicts = 0;
  pushNs = 0;
  faultNs = 0;
  answerNs = 0;
  pushed = 0;
  read: number[] = [];
  written: number[] = [];
  page: number[] = [];
}

/**
 * Service times kept per session for the median (the metrics of up to 256 sessions outlive them, and a
 * session's faults are bounded only by its image: 4M pages at 16 GiB); mean and max count every fault.
 */
const SERVICE_KEPT = 65536;

function summarize(id: string, m: SessionCounters, timeline: boolean): SessionMetrics {
  const sv = Float64Array.from(m.service).sort();
  const n = m.serviceCount;
  return {
    id, helloToWelcomeMs: m.welcomeNs && m.helloNs ? (m.welcomeNs - m.helloNs) / 1e6 : NaN, trainMs: m.trainMs,
    faults: m.faults, faultsBeforeStrategy: m.faultsBefore, faultsWritten: n,
    serviceUs: { mean: n ? m.serviceSum / n / 1e3 : 0, p50: sv.length ? sv[Math.floor((sv.length - 1) / 2)] / 1e3 : 0, max: m.serviceMax / 1e3 },
    predictUs: { mean: m.predicts ? m.predictNs / m.predicts / 1e3 : 0, max: m.predictMaxNs / 1e3 },
    loopMs: { push: m.pushNs / 1e6, fault: m.faultNs / 1e6, answer: m.answerNs / 1e6 },
    pushedPages: m.pushed,
    ...(timeline ? { timeline: { read: m.read, written: m.written, page: m.page } } : {}),
  };
}

/**
 * The background push of every session of one server, on one queue: a connection that may push asks
 * for a turn; turns run from setImmediate (the event loop's check phase, after it has read every
 * socket that had data), round robin, one PUMP_ROUND of pages each, for at most PUSH_TICK_NS per tick.
 * So no push runs inside an I/O callback: a FAULT from any session is read and its page written
 * before any session's next push round (faulted > predicted > pushed across the whole process, not
 * only within a session), and one session's push cannot hold the loop for more than one tick's budget.
 */
class PushScheduler {
  private ready: Conn[] = [];
  private scheduled = false;
  want(c: Conn): void {
    if (c.queued) return;
    c.queued = true;
    this.ready.push(c);
    if (!this.scheduled) { this.scheduled = true; setImmediate(this.run); }
  }
  private run = (): void => {
    this.scheduled = false;
    const t0 = nowNs();
    while (this.ready.length > 0) {
      const c = this.ready.shift()!;
      c.queued = false;
      // One connection's failure (an image read that fails: the file shrank) ends that connection,
      // not the server and every migration on it.
      let more = false;
      try { more = c.pushRound(); } catch (e) { c.failPush(e as Error); }
      if (more) { c.queued = true; this.ready.push(c); }
      if (nowNs() - t0 > PUSH_TICK_NS) break;
    }
    if (this.ready.length > 0 && !this.scheduled) { this.scheduled = true; setImmediate(this.run); }
  };
}

/** Most event-loop time the push takes per tick before the loop reads sockets again. */
const PUSH_TICK_NS = 1e6;

/**
 * Most FAULTs of one connection waiting for their strategy's answer from its worker thread. Beyond
 * it the server stops reading that connection: a FAULT for a page already in flight writes nothing,
 * so the link's backpressure alone did not bound the queue of messages to the worker.
 */
export const MAX_PENDING_ANSWERS = 64;
/** How long a strategy worker may take to answer one fault before it is taken for failed (its answers take microseconds). */
export const ANSWER_DEADLINE_MS = 2000;

/** Session ids whose DONE was read, kept to recognise a re-delivery of DONE (at most this many). */
const COMPLETED_KEPT = 4096;

export async function startPageServer(opts: PageServerOptions): Promise<PageServer> {
  const image: PageImage = Buffer.isBuffer(opts.image) ? bufferImage(opts.image) : opts.image;
  const pageCount = image.pageCount;
  if (!(pageCount >= 1 && pageCount <= 0xffffffff)) throw new RangeError(`the image must have 1..2^32-1 pages, got ${pageCount}`);
  const digest = image.digest;
  const push: PushMode = opts.push ?? "linear";
  if (!PUSH_MODES.includes(push)) throw new RangeError(`push must be one of ${PUSH_MODES.join(", ")}, got ${JSON.stringify(push)}`);
  const maxSessions = opts.maxSessions ?? 16;
  if (!(Number.isInteger(maxSessions) && maxSessions >= 1)) throw new RangeError(`maxSessions must be an integer >= 1, got ${maxSessions}`);
  const depth = opts.depth ?? 256;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  if (!(Number.isFinite(idleTimeoutMs) && idleTimeoutMs >= 0)) throw new RangeError(`idleTimeoutMs must be a number of ms >= 0 (0 = no idle timeout), got ${idleTimeoutMs}`);
  const ttlMs = opts.sessionTtlMs ?? 60_000;
  const pushBatch = opts.pushBatch ?? 8;
  const pushWindow = opts.pushWindow ?? 32;
  const factory = opts.strategy ?? demandStrategy;
  // the push orders run over every page of the image (the source does not know the guest's footprint)
  const footprint = new Uint32Array(pageCount);
  for (let p = 0; p < pageCount; p++) footprint[p] = p;
  const sessions = new Map<string, Session>();
  const sockets = new Set<Socket>();
  const timeline = opts.timeline ?? false;
  const metrics: { id: string; m: SessionCounters }[] = [];
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const wall0 = nowNs();
  const errors: Error[] = [];
  const st: PageServerStats = {
    connections: 0, sessionsStarted: 0, sessionsCompleted: 0, activeSessions: 0, sessionsRefused: 0, resumes: 0, protocolErrors: 0,
    pagesSent: 0, faultPages: 0, predictedPages: 0, pushedPages: 0, readPauses: 0,
  };

  function recordError(e: Error, sid: string | null): void {
    errors.push(e);
    if (errors.length > 100) errors.shift();
    if (e instanceof ProtocolError) st.protocolErrors++;
    opts.onError?.(e, sid);
  }

  function endSession(s: Session): void {
    if (s.ended) return;
    s.ended = true;
    if (s.ttl) clearTimeout(s.ttl);
    if (sessions.get(s.id) === s) sessions.delete(s.id);
    st.activeSessions = sessions.size;
    // a strategy still queued for training or training is cancelled, not built for nobody
    s.abort.abort(new Error(`session ${s.id.slice(0, 8)} ended before its strategy was ready`));
    try { s.strategy?.dispose?.(); } catch { /* ignore */ }
  }

  const ctx: ServerContext = {
    image, pageCount, digest, push, depth, pushBatch, pushWindow, maxSessions, footprint,
    helloTimeoutMs: opts.helloTimeoutMs ?? 10_000, idleTimeoutMs, completed: new Set<string>(), link: opts.link, sessions, st, recordError, endSession, factory, ttlMs,
    timeline, scheduler: new PushScheduler(), waitForStrategy: opts.waitForStrategy ?? true,
    track: (sess) => { metrics.push({ id: sess.id, m: sess.m }); if (metrics.length > 256) metrics.shift(); },
  };

  const server: Server = createServer({ noDelay: true }, (socket) => {
    st.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // a destination host that vanished without a FIN while both sides are quiet is found by the kernel
    socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
    opts.onConnection?.(socket);
    new Conn(ctx, socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => { server.off("error", reject); resolve(); });
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("the server has no TCP address");

  return {
    host: addr.address, port: addr.port, pageCount, digest, errors,
    stats: () => ({ ...st, activeSessions: sessions.size }),
    sessionMetrics: () => metrics.map(({ id, m }) => summarize(id, m, timeline)),
    loopMetrics: () => {
      const cpu = process.cpuUsage(cpu0);
      return {
        delayMs: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
        utilization: performance.eventLoopUtilization(elu0).utilization,
        cpuMs: { user: cpu.user / 1e3, system: cpu.system / 1e3 }, wallMs: (nowNs() - wall0) / 1e6,
      };
    },
    close: () => new Promise<void>((resolve) => {
      delay.disable();
      for (const s of [...sessions.values()]) endSession(s);
      for (const so of sockets) so.destroy();
      server.close(() => resolve());
    }),
  };
}

interface ServerContext {
  image: PageImage; pageCount: number; digest: Buffer; push: PushMode; depth: number; pushBatch: number; pushWindow: number;
  maxSessions: number; footprint: Uint32Array;
  link: LinkOptions | undefined; sessions: Map<string, Session>; st: PageServerStats; ttlMs: number; helloTimeoutMs: number;
  idleTimeoutMs: number; completed: Set<string>;
  timeline: boolean; scheduler: PushScheduler; waitForStrategy: boolean;
  recordError(e: Error, sid: string | null): void;
  endSession(s: Session): void;
  track(s: Session): void;
  factory: (ctx: StrategyFactoryContext) => SessionStrategy | Promise<SessionStrategy>;
}

/** Most pages pushed before the pump yields to the event loop. */
const PUMP_ROUND = 32;

/** Why a connection is not being read (a bit mask; reading resumes when it is zero). */
const HOLD_STRATEGY = 1; // its session's strategy is still being built
const HOLD_BACKPRESSURE = 2; // its answers wait for the link
const HOLD_ANSWERS = 4; // MAX_PENDING_ANSWERS of its FAULTs wait for the strategy worker

type ConnState = "hello" | "starting" | "bitmap" | "serving" | "closed";

class Conn {
  private state: ConnState = "hello";
  private session: Session | null = null;
  private readonly reader: FrameReader;
  private readonly link: ByteLink;
  private readonly writer: FrameWriter;
  private clientBits: Uint8Array | null = null;
  private order: PushOrder | null = null;
  private waitingDrain = false;
  private hold = 0;
  /** In the server's push queue (PushScheduler). */
  queued = false;
  /** Pages sent on this connection, and how many of them the destination acknowledged. */
  private sentHere = 0;
  private acked = 0;
  /** FAULTs sent to the strategy's worker and not answered yet (bounded by MAX_PENDING_ANSWERS). */
  private pendingAnswers = 0;
  /** When this connection last delivered data (Date.now), for the idle timeout. */
  private lastHeard = Date.now();
  /** Bytes the kernel has taken from the socket, and when that last grew: a destination that does not read. */
  private flushedBytes = -1;
  private flushedAt = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly frameSize: number;
  private pLastData = 0;
  private pWaitLastData = 0;
  private pWaitRead = 0;

  constructor(private readonly c: ServerContext, private readonly socket: Socket) {
    this.link = createLink(socket, c.link);
    this.writer = new FrameWriter(this.link);
    this.frameSize = pageFrameSize(PAGE_SIZE);
    this.reader = new FrameReader((t, b, s, e) => this.onFrame(t, b, s, e));
    socket.on("data", (chunk: Buffer) => {
      if (this.state === "closed") return;
      this.lastHeard = Date.now();
      if (PROBE) { this.pLastData = nowNs(); this.pWaitLastData = waitNs(); probe("s_data", { sid: this.session?.id ?? "", t: this.pLastData, w: this.pWaitLastData, len: chunk.length }); }
      try { this.reader.push(chunk); } catch (e) { this.fail(e as Error); }
    });
    socket.on("end", () => {
      if (this.state === "closed") return;
      try { this.reader.end(); } catch (e) { this.fail(e as Error); return; }
      this.close();
    });
    socket.on("error", () => { /* a dropped link: the session waits for a reconnection */ });
    const helloTimer = setTimeout(() => {
      if (this.state === "hello") this.fail(new ProtocolError(ErrorCode.Unexpected, `no HELLO within ${c.helloTimeoutMs} ms`));
    }, c.helloTimeoutMs).unref();
    // cleared on close: the timer's closure held the connection's buffers (320 KiB) for 10 s after it
    socket.on("close", () => { clearTimeout(helloTimer); this.close(); });
    if (c.idleTimeoutMs > 0) this.armIdle(c.idleTimeoutMs);
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(this.checkIdle, ms);
    this.idleTimer.unref();
  }

  /**
   * The idle timeout: silence counts only while the server expects frames and reads them (welcomed:
   * states bitmap and serving, reading not held). A connection waiting for its strategy, or not read
   * because of backpressure, is silent by our doing; HELLO has its own timeout.
   */
  private checkIdle = (): void => {
    this.idleTimer = null;
    if (this.state === "closed") return;
    const idle = this.c.idleTimeoutMs;
    const watched = (this.state === "bitmap" || this.state === "serving") && this.hold === 0;
    if (!watched) {
      // Not read because the destination does not read what we send (backpressure): that silence is
      // ours, but a destination that reads nothing at all for the idle timeout is gone or stuck (it
      // would hold its session slot for ever). Progress is what the kernel took from the socket.
      if (this.hold & HOLD_BACKPRESSURE) {
        const flushed = this.socket.bytesWritten - this.socket.writableLength;
        const now = Date.now();
        if (flushed !== this.flushedBytes) { this.flushedBytes = flushed; this.flushedAt = now; }
        else if (now - this.flushedAt >= idle) {
          return this.fail(new ProtocolError(ErrorCode.Idle, `the destination has read nothing for ${now - this.flushedAt} ms (idle timeout ${idle} ms)`));
        }
        return this.armIdle(Math.max(1, Math.min(idle, idle - (now - this.flushedAt))));
      }
      return this.armIdle(idle);
    }
    const silent = Date.now() - this.lastHeard;
    if (silent < idle) return this.armIdle(idle - silent);
    // Confirm after the loop's next poll phase: a timer that fires late because this process stalled
    // runs before the sockets are read, and the data that arrived meanwhile must count first.
    setImmediate(() => {
      if (this.state === "closed" || this.idleTimer) return;
      const again = Date.now() - this.lastHeard;
      if (again < idle || this.hold !== 0) return this.armIdle(Math.max(1, idle - again));
      this.fail(new ProtocolError(ErrorCode.Idle, `no frame from the destination for ${again} ms in state ${this.state} (idle timeout ${idle} ms)`));
    });
  };

  private get sid(): string | null { return this.session?.id ?? null; }

  /** Stop reading this connection for `why` (frames already received wait, unparsed). */
  private holdReading(why: number): void {
    if (this.hold === 0) { this.reader.pause(); this.socket.pause(); }
    this.hold |= why;
  }

  private releaseReading(why: number): void {
    if ((this.hold & why) === 0) return;
    this.hold &= ~why;
    if (this.hold !== 0 || this.state === "closed") return;
    this.lastHeard = Date.now(); // the time it was not read is not its silence
    this.socket.resume();
    try { this.reader.resume(); } catch (e) { this.fail(e as Error); }
  }

  /** After answers were handed to the link: if it is full, stop reading until it drains. */
  private backpressure(writable: boolean): void {
    if (writable || (this.hold & HOLD_BACKPRESSURE) || this.state === "closed") return;
    this.c.st.readPauses++;
    this.flushedBytes = -1; // the destination's reading is watched from here (checkIdle)
    this.holdReading(HOLD_BACKPRESSURE);
    this.link.onDrain(() => this.releaseReading(HOLD_BACKPRESSURE));
  }

  private onFrame(type: number, b: Buffer, s: number, e: number): void {
    if (this.state === "closed") return;
    switch (type) {
      case FrameType.Hello: return this.onHello(b, s, e);
      case FrameType.Bitmap: return this.onBitmap(b, s, e);
      case FrameType.Start: expectSize("START", s, e, 0); return this.onStart();
      case FrameType.Fault: return this.onFault(b, s, e);
      case FrameType.Ack: {
        expectSize("ACK", s, e, 4);
        this.expectState("serving", "ACK");
        const n = b.readUInt32LE(s);
        if (n > this.sentHere || n < this.acked) throw new ProtocolError(ErrorCode.OutOfRange, `ACK of ${n} pages; ${this.acked}..${this.sentHere} possible`);
        this.acked = n;
        return this.pump();
      }
      case FrameType.ReplayDone:
        expectSize("REPLAY_DONE", s, e, 0);
        this.expectState("serving", "REPLAY_DONE");
        this.session!.replayDone = true;
        return this.pump();
      case FrameType.Done: {
        expectSize("DONE", s, e, 0);
        this.expectState("serving", "DONE");
        const sess = this.session!;
        if (PROBE) { const ss = schedstat(); probe("s_end", { sid: sess.id, t: nowNs(), runNs: ss.runNs, waitNs: ss.waitNs }); }
        // a migration counts once: DONE re-delivered after a lost orderly close is not a second one
        if (!sess.redelivery) {
          this.c.st.sessionsCompleted++;
          const done = this.c.completed;
          done.add(sess.id);
          if (done.size > COMPLETED_KEPT) done.delete(done.values().next().value!);
        }
        this.c.endSession(sess);
        this.close();
        this.socket.end();
        return;
      }
      case FrameType.Error: {
        const err = decodeError(b, s, e);
        this.c.recordError(err, this.sid);
        // the destination gives up on such an error (destination.ts onConnError): its session goes now
        this.close(givesUp(err.code));
        this.socket.destroy();
        return;
      }
      default:
        throw new ProtocolError(ErrorCode.Malformed, `unknown frame type ${type}`);
    }
  }

  private expectState(want: ConnState, what: string): void {
    if (this.state !== want) throw new ProtocolError(ErrorCode.Unexpected, `${what} in state ${this.state}`);
  }

  private onHello(b: Buffer, s: number, e: number): void {
    this.expectState("hello", "HELLO");
    const h = decodeHello(b, s, e);
    const c = this.c;
    if (h.version !== PROTOCOL_VERSION) throw new ProtocolError(ErrorCode.Version, `client speaks version ${h.version}, this server speaks ${PROTOCOL_VERSION}`);
    if (h.pageSize !== PAGE_SIZE) throw new ProtocolError(ErrorCode.PageSize, `client uses ${h.pageSize}-byte pages, the image has ${PAGE_SIZE}-byte pages`);
    if (h.pageCount !== 0 && h.pageCount !== c.pageCount) throw new ProtocolError(ErrorCode.Digest, `client expects ${h.pageCount} pages, the image has ${c.pageCount}`);
    if (!isZero(h.digest) && !h.digest.equals(c.digest)) throw new ProtocolError(ErrorCode.Digest, `client expects image ${h.digest.toString("hex").slice(0, 16)}..., this server holds ${c.digest.toString("hex").slice(0, 16)}...`);
    const id = isZero(h.sessionId) ? randomBytes(16).toString("hex") : h.sessionId.toString("hex");
    let sess = c.sessions.get(id);
    if (sess) {
      c.st.resumes++;
      if (sess.ttl) { clearTimeout(sess.ttl); sess.ttl = null; }
      const old = sess.conn;
      if (old && old !== this) { old.detach(); }
    } else if (c.completed.has(id)) {
      // This migration's DONE was read and its session ended; the destination did not see the orderly
      // close and came back to deliver DONE again (destination.ts sendDone). Not a new migration: no
      // strategy, not counted as started or completed, never refused (it holds no model).
      c.st.resumes++;
      sess = new Session(id, c.pageCount);
      sess.redelivery = true;
      sess.strategy = demandStrategy();
      c.sessions.set(id, sess);
      c.st.activeSessions = c.sessions.size;
    } else {
      if (c.sessions.size >= c.maxSessions) {
        c.st.sessionsRefused++;
        throw new ProtocolError(ErrorCode.Busy, `the server already serves its limit of ${c.maxSessions} migrations (--max-sessions); try again later`);
      }
      const created = new Session(id, c.pageCount);
      created.m.helloNs = nowNs();
      c.track(created);
      sess = created;
      c.sessions.set(id, created);
      c.st.sessionsStarted++;
      c.st.activeSessions = c.sessions.size;
      let made: SessionStrategy | Promise<SessionStrategy>;
      try { made = c.factory({ pageCount: c.pageCount, sessionId: id, signal: created.abort.signal }); } catch (err) {
        c.endSession(created);
        throw new ProtocolError(ErrorCode.Internal, `the strategy could not be built: ${(err as Error).message}`);
      }
      if (made instanceof Promise) {
        created.ready = made.then((strategy) => {
          if (created.ended) { strategy.dispose?.(); return; }
          created.strategy = strategy;
          if (isRemote(strategy)) created.m.trainMs = strategy.trainMs;
        });
        // a failure is reported to the connection waiting for it (below); this only keeps it handled
        created.ready.catch(() => c.endSession(created));
      } else {
        created.strategy = made;
      }
    }
    sess.conn = this;
    this.session = sess;
    if (sess.strategy) return this.welcome();
    if (!c.waitForStrategy) {
      const waited = sess;
      waited.ready.then(() => { if (this.session === waited && this.state !== "closed") this.strategyArrived(); }, (err: Error) => {
        if (this.session === waited) this.fail(new ProtocolError(ErrorCode.Internal, `the strategy could not be built: ${err.message}`));
      });
      return this.welcome();
    }
    this.state = "starting";
    this.holdReading(HOLD_STRATEGY);
    const waited = sess;
    waited.ready.then(() => {
      if (this.state !== "starting" || this.session !== waited) return;
      this.welcome();
      this.releaseReading(HOLD_STRATEGY);
    }, (err: Error) => {
      if (this.session === waited) this.fail(new ProtocolError(ErrorCode.Internal, `the strategy could not be built: ${err.message}`));
    });
  }

  private welcome(): void {
    const c = this.c;
    this.state = "bitmap";
    const m = this.session!.m;
    if (m.welcomeNs === 0) m.welcomeNs = nowNs();
    this.clientBits = new Uint8Array((c.pageCount + 7) >>> 3);
    const { buf, off } = this.writer.reserve(LEN_BYTES + 1 + WELCOME_BODY);
    this.writer.commit(encodeWelcome(buf, off, {
      version: PROTOCOL_VERSION, flags: c.push !== "none" ? WELCOME_PUSH : 0, pageSize: PAGE_SIZE, pageCount: c.pageCount, digest: c.digest,
    }));
    this.writer.flush();
  }

  private onBitmap(b: Buffer, s: number, e: number): void {
    this.expectState("bitmap", "BITMAP");
    if (e - s < 5 || e - s > 4 + BITMAP_CHUNK) throw new ProtocolError(ErrorCode.Malformed, `BITMAP body of ${e - s} bytes`);
    const at = b.readUInt32LE(s);
    const n = e - s - 4;
    const bits = this.clientBits!;
    if (at + n > bits.length) throw new ProtocolError(ErrorCode.OutOfRange, `BITMAP bytes ${at}..${at + n} beyond the image's ${bits.length}-byte bitmap`);
    bits.set(b.subarray(s + 4, e), at);
  }

  private onStart(): void {
    this.expectState("bitmap", "START");
    if (PROBE) { const ss = schedstat(); probe("s_start", { sid: this.session!.id, t: nowNs(), runNs: ss.runNs, waitNs: ss.waitNs }); }
    const sess = this.session!;
    sess.sent.load(this.clientBits!);
    this.clientBits = null;
    const state = sess.state;
    const strat = sess.strategy;
    // pages the destination holds that this session never sent (a session created on reconnection)
    for (let p = 0; p < sess.sent.size; p++) {
      const has = sess.sent.has(p);
      state[p] = has ? 1 : 0;
      if (has && strat && sess.presented.add(p)) this.present(strat, p);
    }
    // a fresh scan per connection: pages lost in flight on a dead one are pending again
    this.order = this.pushOrder(strat);
    this.state = "serving";
    this.pump();
  }

  /**
   * While the source pushes, a strategy that steers the push (the `ppm` policy: Hines' bubbling;
   * `qemu`) chooses its order, as in the simulator; whether to push at all stays the server's choice.
   */
  private pushOrder(strat: SessionStrategy | null): PushOrder {
    const own = (strat as { push?: PushMode } | null)?.push;
    const mode = own !== undefined && own !== "none" && this.c.push !== "none" ? own : this.c.push;
    const base = createPush(mode === "none" ? "linear" : mode, this.c.footprint);
    // The strategy may reorder it (the `ppm` policy replays its history into the push; for a strategy
    // in a worker thread that order is built in this thread: remote-strategy.ts).
    const steer = (strat as SimStrategy | RemoteStrategy | null)?.steerPush;
    return steer && this.c.push !== "none" ? steer.call(strat, base) : base;
  }

  /** The strategy of a session welcomed before it was ready arrived: it learns what was sent meanwhile. */
  private strategyArrived(): void {
    const sess = this.session!;
    const strat = sess.strategy;
    if (!strat) return;
    for (let p = 0; p < sess.sent.size; p++) if (sess.sent.has(p) && sess.presented.add(p)) this.present(strat, p);
    const steers = (strat as { push?: PushMode }).push !== undefined || (strat as SimStrategy | RemoteStrategy).steerPush !== undefined;
    if (this.state === "serving" && steers) this.order = this.pushOrder(strat);
  }

  private present(strat: SessionStrategy, p: number): void {
    if (isRemote(strat)) strat.present(p); else strat.onPresent?.(p);
  }

  private sendPage(p: number, kind: PageKind): void {
    const sess = this.session!;
    sess.sent.add(p);
    sess.state[p] = 1;
    this.sentHere++;
    const { buf, off } = this.writer.reserve(this.frameSize);
    this.writer.commit(encodePage(buf, off, p, kind, this.c.image, PAGE_SIZE));
    const st = this.c.st;
    st.pagesSent++;
    if (kind === PageKind.Fault) st.faultPages++; else if (kind === PageKind.Predicted) st.predictedPages++; else st.pushedPages++;
    if (sess.strategy && sess.presented.add(p)) this.present(sess.strategy, p);
  }

  private onFault(b: Buffer, s: number, e: number): void {
    const read = nowNs();
    if (PROBE) this.pWaitRead = waitNs();
    this.expectState("serving", "FAULT");
    if (e - s < FAULT_HEADER) throw new ProtocolError(ErrorCode.Malformed, `FAULT body of ${e - s} bytes`);
    const stream = b.readUInt16LE(s);
    const count = b.readUInt16LE(s + 2);
    const page = b.readUInt32LE(s + 4);
    // the documented limit (the largest legal frame would carry 10,922 entries)
    if (count > MAX_FEEDBACK) throw new ProtocolError(ErrorCode.Malformed, `FAULT carries ${count} feedback entries, at most ${MAX_FEEDBACK} are allowed`);
    if (e - s !== FAULT_HEADER + count * FEEDBACK_ENTRY) {
      throw new ProtocolError(ErrorCode.Truncated, `FAULT announces ${count} feedback entries but carries ${e - s - FAULT_HEADER} bytes of them`);
    }
    const pc = this.c.pageCount;
    if (page >= pc) throw new ProtocolError(ErrorCode.OutOfRange, `fault on page ${page}, the image has ${pc} pages`);
    for (let i = 0, q = s + FAULT_HEADER; i < count; i++, q += FEEDBACK_ENTRY) {
      const p = b.readUInt32LE(q);
      if (p >= pc) throw new ProtocolError(ErrorCode.OutOfRange, `feedback on page ${p}, the image has ${pc} pages`);
    }
    const sess = this.session!;
    const strat = sess.strategy;
    const m = sess.m;
    m.faults++;
    // The page is already on the wire (sent as predicted or pushed on this connection): for the
    // destination an in-flight wait, not a fault. As in the simulator (src/sim/simulator.ts `fault`),
    // the request is dropped after its feedback: no onFault, no push-scanner jump, nothing predicted.
    const inflight = sess.sent.has(page);
    if (!strat) {
      // welcomed before its strategy was ready (waitForStrategy false): on demand
      m.faultsBefore++;
      this.faultPage(page, read);
      this.answer(page, EMPTY, 0);
      m.faultNs += nowNs() - read;
      return;
    }
    if (isRemote(strat)) {
      // the faulted page first, on its own write so that it leaves at once; then the feedback's copy
      this.faultPage(page, read);
      const touches = new Uint32Array(2 * count);
      for (let i = 0, q = s + FAULT_HEADER; i < count; i++, q += FEEDBACK_ENTRY) { touches[2 * i] = b.readUInt32LE(q); touches[2 * i + 1] = b.readUInt16LE(q + 4); }
      // bounded: an in-flight FAULT writes nothing, so the link's backpressure does not stop a client
      // that sends them; past MAX_PENDING_ANSWERS the connection is not read until answers come back
      if (++this.pendingAnswers >= MAX_PENDING_ANSWERS) this.holdReading(HOLD_ANSWERS);
      let settled = false;
      const answered = (): void => {
        settled = true;
        clearTimeout(deadline);
        if (--this.pendingAnswers < MAX_PENDING_ANSWERS) this.releaseReading(HOLD_ANSWERS);
      };
      // a worker that does not answer (hung, or starved) must not hold the fault path: past the
      // deadline the strategy is taken for failed and the session goes on on demand
      const deadline = setTimeout(() => {
        if (settled || this.state !== "serving" || this.session !== sess) return;
        this.strategyFailed(sess, strat, new Error(`no answer within ${ANSWER_DEADLINE_MS} ms`));
        try { this.answer(page, EMPTY, nowNs() - read); } catch (e) { this.fail(e as Error); return; }
        answered();
      }, ANSWER_DEADLINE_MS);
      deadline.unref();
      strat.fault(page, stream, touches, inflight).then(
        (a) => {
          if (settled || this.state !== "serving" || this.session !== sess) return;
          const t = nowNs();
          m.predicts++; m.predictNs += t - read; if (t - read > m.predictMaxNs) m.predictMaxNs = t - read;
          // outside the reader's try: an error here (an image read) must end this connection only
          // while the link is backed up (the destination does not read), an answer goes without its
          // predicted pages: the queue for a client that does not read stays bounded (predictions are
          // advisory; those pages come with the push or a fault)
          const pages = inflight || (this.hold & HOLD_BACKPRESSURE) !== 0 ? EMPTY : a.pages;
          try { this.answer(page, pages, a.ns); } catch (e) { this.fail(e as Error); return; }
          m.answerNs += nowNs() - t;
          answered();
        },
        (err: Error) => {
          if (settled || this.state !== "serving" || this.session !== sess) return;
          // the faulted page is already out: the migration goes on on demand (predictions are advisory)
          this.strategyFailed(sess, strat, err);
          try { this.answer(page, EMPTY, nowNs() - read); } catch (e) { this.fail(e as Error); return; }
          answered();
        },
      );
      this.backpressure(this.writer.flush());
      m.faultNs += nowNs() - read;
      return;
    }
    // the faulted page first, on its own write so that it leaves at once; then the feedback (up to
    // 4,096 touches, each a model update) and the strategy, in the simulator's order
    this.faultPage(page, read);
    let t0 = nowNs();
    if (strat.onTouch) {
      for (let i = 0, q = s + FAULT_HEADER; i < count; i++, q += FEEDBACK_ENTRY) strat.onTouch(b.readUInt32LE(q), b.readUInt16LE(q + 4));
    }
    let spent = nowNs() - t0;
    if (inflight) {
      this.answer(page, EMPTY, spent);
      m.faultNs += nowNs() - read;
      return;
    }
    t0 = nowNs();
    let preds: ArrayLike<number>;
    try { preds = strat.onFault(page, stream); } catch (err) {
      // the faulted page is already out: the migration goes on on demand (predictions are advisory)
      this.strategyFailed(sess, strat, err as Error);
      preds = EMPTY;
    }
    spent += nowNs() - t0;
    this.answer(page, preds, spent);
    strat.maintain?.(); // the answer is on the wire: the engine's upkeep (a due prune) delays no page of this fault
    m.faultNs += nowNs() - read;
  }

  /**
   * The strategy threw or its worker failed: recorded (onError, the error log), disposed, and the
   * session served on demand from here on; the destination is not told (nothing it did was wrong).
   */
  private strategyFailed(sess: Session, strat: SessionStrategy, err: Error): void {
    if (sess.strategy !== strat) return; // already replaced (a remote strategy's answers fail together)
    this.c.recordError(new ProtocolError(ErrorCode.Internal, `strategy ${strat.name} failed, serving on demand from here: ${err.message}`), this.sid);
    sess.strategy = demandStrategy();
    try { strat.dispose?.(); } catch { /* a failing strategy may fail to dispose too */ }
  }

  /** The faulted page, unless already sent, on its own write so that it leaves at once; recorded. */
  private faultPage(page: number, read: number): void {
    const sess = this.session!;
    const m = sess.m;
    let written = -1;
    if (!sess.sent.has(page)) {
      this.sendPage(page, PageKind.Fault);
      const pre = PROBE ? { userBuf: this.socket.writableLength, backlog: this.link.backlog, unacked: this.sentHere - 1 - this.acked, unflushed: this.writer.unflushed } : null;
      if (PROBE) (this.link as { tag?: string }).tag = `${sess.id}:page:${page}`;
      this.writer.flush();
      written = nowNs();
      if (pre) probe("s_fault", { sid: sess.id, page, read, written, ...pre, wRead: this.pWaitRead, w: waitNs(), lastData: this.pLastData, wLastData: this.pWaitLastData });
      const ns = written - read;
      m.serviceCount++; m.serviceSum += ns; if (ns > m.serviceMax) m.serviceMax = ns;
      if (m.service.length < SERVICE_KEPT) m.service.push(ns);
      // The push re-centres on the fault once its page is out, as in the simulator: a steered push's
      // re-centring (temporal-push.ts judges the fault against the history: up to ~20 us) must not
      // delay the page the guest waits for.
      this.order!.onFault(page);
    }
    if (this.c.timeline) { m.read.push(read); m.written.push(written); m.page.push(page); }
  }

  /** The predicted pages of a fault (those in range and not sent yet), then FAULT_DONE. */
  private answer(page: number, preds: ArrayLike<number>, spentNs: number): void {
    const sess = this.session!;
    const pc = this.c.pageCount;
    let sent = 0;
    for (let i = 0; i < preds.length && sent < this.c.depth; i++) {
      const q = preds[i];
      if (!(q >= 0 && q < pc) || sess.sent.has(q)) continue;
      this.sendPage(q, PageKind.Predicted);
      sent++;
    }
    const { buf, off } = this.writer.reserve(LEN_BYTES + 1 + FAULT_DONE_BODY);
    this.writer.commit(encodeFaultDone(buf, off, page, sent, spentNs));
    this.backpressure(this.writer.flush());
    this.pump();
  }

  /** Whether the background push may send now (it then waits for its turn in the server's push queue). */
  private canPush(): boolean {
    if (this.state !== "serving" || this.waitingDrain) return false;
    if (this.c.push === "none" && !this.session!.replayDone) return false;
    return this.sentHere - this.acked < this.c.pushWindow;
  }

  /**
   * Background push: asks for a turn in the server's push queue (PushScheduler), which runs
   * `pushRound` outside I/O callbacks, after the faults of every session that were waiting.
   */
  private pump(): void {
    if (this.canPush()) this.c.scheduler.want(this);
  }

  /**
   * One turn of the background push: at most PUMP_ROUND pages, while the link has room and the
   * window allows. Returns whether this connection wants another turn.
   */
  pushRound(): boolean {
    if (!this.canPush()) return false;
    const t0 = nowNs();
    const sess = this.session!;
    const order = this.order!;
    let writable = true;
    let batch = 0;
    let round = 0;
    let more = false;
    while (writable && this.sentHere - this.acked < this.c.pushWindow) {
      if (round >= PUMP_ROUND) { more = true; break; }
      const p = order.next(sess.state);
      if (p < 0) break;
      this.sendPage(p, PageKind.Push);
      round++;
      if (++batch >= this.c.pushBatch) { writable = this.writer.flush(); batch = 0; }
    }
    if (batch) writable = this.writer.flush();
    sess.m.pushed += round;
    if (!writable) {
      more = false;
      this.waitingDrain = true;
      this.link.onDrain(() => { this.waitingDrain = false; this.pump(); });
    }
    sess.m.pushNs += nowNs() - t0;
    return more;
  }

  /** The push round threw (called by the scheduler): fail this connection as the fault path would. */
  failPush(e: Error): void {
    this.fail(e);
  }

  /** Another connection took over this session. */
  detach(): void {
    this.session = null;
    this.close();
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (this.state === "closed") return;
    const err = e instanceof ProtocolError ? e : new ProtocolError(ErrorCode.Internal, e.message);
    this.c.recordError(err, this.sid);
    const sock = this.socket;
    // the destination gives up on an ERROR from the source (all but an idle timeout: destination.ts
    // onConnError), so the session cannot resume: its slot is freed now, not after the TTL
    this.close(err.code !== ErrorCode.Idle);
    if (!sock.destroyed) {
      sock.resume();
      sock.end(encodeError(err.code, err.detail));
      setTimeout(() => sock.destroy(), 1000).unref();
    }
  }

  /** The connection is over; its session waits `ttlMs` for a reconnection, or ends now (`end`). */
  private close(end = false): void {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    this.link.close();
    const sess = this.session;
    if (sess && sess.conn === this) {
      sess.conn = null;
      if (this.c.sessions.get(sess.id) === sess) {
        if (end) this.c.endSession(sess);
        else {
          sess.ttl = setTimeout(() => this.c.endSession(sess), this.c.ttlMs);
          sess.ttl.unref();
        }
      }
    }
  }
}

/** Whether a destination gives up its migration on this error (it reconnects after the link's own: idle, checksum, truncation). */
function givesUp(code: number): boolean {
  return code !== ErrorCode.Idle && code !== ErrorCode.Checksum && code !== ErrorCode.Truncated;
}
