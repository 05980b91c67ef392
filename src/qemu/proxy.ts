/**
 * A transparent TCP proxy between a source QEMU (`migrate tcp:PROXY`) and a destination QEMU
 * (`-incoming tcp:TARGET`). Forward bytes (source -> destination) pass untouched; the return path
 * (destination -> source) is parsed and predicted page requests are appended after each request.
 *
 * Connections: every accepted connection gets its own outbound connection to the target, opened in
 * acceptance order (QEMU 7.2 tells its channels apart by the order they arrive). A connection whose
 * forward stream starts with the QEVM magic is a main channel and starts a new migration; any other
 * connection (the postcopy-preempt channel, multifd) joins the latest migration and is forwarded raw
 * in both directions. A migration ends when all of its connections have closed.
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from "node:perf_hooks";
import type { Strategy } from "../strategies/types.js";
import { DelayLine } from "./delayline.js";
import { RequestInjector, type InjectorStats, type RamBlockInfo, type RamLayout } from "./injector.js";
import { QEMU_VM_FILE_MAGIC, RamHeaderScanner } from "./ramheader.js";
import { MIG_CMD_PACKAGED, MIG_CMD_POSTCOPY_RESUME, QEMU_VM_COMMAND, RamStreamParser } from "./forward.js";
import { RP_SHUT, RP_TYPE_NAMES, ReturnPathError, ReturnPathFilter, TARGET_PAGE_SIZE, encodeReqPagesId } from "./returnpath.js";
import { ServiceTracker, type ServiceReport } from "./service.js";
import { defaultsForMachine, type MachineDefaults, type Steering, type TrustFeedback } from "./policy.js";

export interface QemuProxyOptions {
  listenHost?: string;
  listenPort: number;
  targetHost: string;
  targetPort: number;
  /** One-way delay added to each direction (round trip = 2 x delayMs). */
  delayMs?: number;
  /** Delay of the return path only (destination -> source), overriding delayMs there. */
  returnDelayMs?: number;
  /** Optional rate limit per direction, megabits per second. */
  rateMbps?: number;
  /** Builds the strategy when the RAM layout is known; null/undefined: no prediction. */
  makeStrategy?: (pageCount: number, layout: RamLayout) => Strategy | null;
  /** RAM layout given up front: used when the stream's RAMBlock list agrees or is unknown (see settleLayout). */
  blocks?: RamBlockInfo[];
  /** Most pages injected per request. */
  maxInjectPerRequest?: number;
  /**
   * End injections (and the switch-over preload) with the page QEMU's scan would send next. Default:
   * by the migration's QEMU and channels (`defaultsForMachine`: off from 8.0 on with postcopy-preempt,
   * on otherwise).
   */
  scannerReturn?: boolean;
  /** Called with the strategy's model when a migration completes (the source sent QEMU_VM_EOF). */
  saveModel?: (bytes: Uint8Array) => void;
  /** How long a paused post-copy (all channels gone before the end) waits for a resume, ms. */
  pauseTimeoutMs?: number;
  log?: (line: string) => void;
}

/**
 * One migration's channels, as one state machine:
 *
 *   setup --(ram section)--> precopy --(PACKAGED: switch-over)--> postcopy --(QEMU_VM_EOF)--> completed
 *   setup/precopy --(the destination's SHUT 0 on the return path: it loaded everything)--> completed
 *     (`completedIn` "precopy": the migration converged without a switch-over)
 *   postcopy --(main channel closed before EOF)--> paused --(a resumed main channel arrives:
 *     `migrate-recover` on the destination, `migrate resume=true` at the proxy)--> recovering
 *   recovering --(MIG_CMD_POSTCOPY_RESUME)--> postcopy
 *   any open phase --(malformed return path)--> failed;  setup/precopy --(channels closed)--> closed
 *   any phase, completed included --(the destination's SHUT with a non-zero status)--> failed
 *   paused --(no resume within pauseTimeoutMs)--> closed
 */
export type MigrationPhase = "setup" | "precopy" | "postcopy" | "paused" | "recovering" | "completed" | "failed" | "closed";

/** How long after the switch-over's bytes the proxy decides the channels and preloads, ms. */
const SETTLE_MS = 5;

/** How the source serves page requests: on a postcopy-preempt channel of their own, or not. */
export type ChannelMode = "preempt" | "single";

export type CompletedIn = "precopy" | "postcopy" | "unknown";

const OPEN_PHASES: readonly MigrationPhase[] = ["setup", "precopy", "postcopy", "paused", "recovering"];

export interface MigrationReport {
  id: number;
  /** Set when the prediction threw and the migration went on without injection (the error). */
  predictionError?: string;
  /** Where the migration's state machine ended (or is, for a live report). */
  phase: MigrationPhase;
  /**
   * With phase "completed": in post-copy (QEMU_VM_EOF after the switch-over, or page requests were
   * seen), in precopy (the destination's SHUT 0 with the stream followed and no switch-over), or
   * unknown (SHUT 0, but the forward stream could not be followed to tell).
   */
  completedIn?: CompletedIn;
  /**
   * MIG_CMD_POSTCOPY_RAM_DISCARD commands seen on the main channel (pages made absent again:
   * `stats.discardedPages`), and those QEMU would refuse (with the last reason).
   */
  discards: { commands: number; ranges: number; malformed: number; lastError?: string };
  /** Every transition, ms since the first connection. */
  phases: { phase: MigrationPhase; atMs: number; why: string }[];
  /** Times post-copy paused and resumed through the proxy. */
  pauses: number;
  resumes: number;
  /** The strategy (name, where its model came from, requests its gate held back). */
  strategy: { name: string; origin?: string; gated?: number; feedback?: TrustFeedback } | null;
  /** The model saved at completion (bytes) or why not. */
  modelSaved?: number | string;
  connections: number;
  startedAt: number;
  durationMs: number;
  layout: RamBlockInfo[] | null;
  layoutSource: "stream" | "option" | "none";
  layoutNote?: string;
  /**
   * Set when `--block` (QemuProxyOptions.blocks) disagrees with the RAMBlock list the stream itself
   * announced (a size that differs, a name it does not have): what disagreed. The stream's list is
   * used then (layoutSource "stream"): a page past a block's used_length fails the migration at the
   * source (ram_save_queue_pages), so an injection must never rely on a size the stream contradicts.
   */
  layoutConflict?: string;
  /** The machine type of the stream's configuration section (e.g. "pc-i440fx-10.0"; null: not seen). */
  machine: string | null;
  /**
   * The defaults for this migration's QEMU, fixed when its layout became known (from the machine type
   * the stream named, `--block` or not: the layout is settled once the stream's head was read); the channels
   * seen at the switch-over (`preempt`: a second connection from the source; null before), which
   * picks the steering; and whether injections end with the scan's next page (the option, else the
   * steering's). Null before the layout.
   */
  tuning: (MachineDefaults & { channel: ChannelMode | null; scannerReturnUsed: boolean }) | null;
  bytesForward: number;
  bytesReturn: number;
  bytesInjected: number;
  messages: Record<string, number>;
  stats: InjectorStats;
  /** Request service times and the source's queue, from both directions of the stream. */
  service: ServiceReport;
  /**
   * The proxy process while the migration ran (process-wide: exact with one migration at a time):
   * event-loop delay (ms; a forwarded chunk or a request waits this long behind other work) and
   * garbage-collection pauses.
   */
  process?: { loopDelayMs: { p50: number; p99: number; max: number }; gcMs: number; gcCount: number };
  error?: string;
}

class Migration {
  /** Set when the prediction threw: this migration is forwarded without injection from then on. */
  predictionError: string | undefined;
  readonly injector: RequestInjector;
  readonly conns = new Set<Conn>();
  open = 0;
  connections = 0;
  bytesForward = 0;
  bytesReturn = 0;
  bytesInjected = 0;
  readonly messages = new Map<number, number>();
  readonly scanner = new RamHeaderScanner();
  /** The defaults for this migration's QEMU, set with the layout. */
  defaults: MachineDefaults | null = null;
  /** Its channels, settled at the switch-over (or the first request): picks the defaults' steering. */
  channel: ChannelMode | null = null;
  channelFinal = false;
  readonly tracker = new ServiceTracker();
  mainParser: RamStreamParser | null = null;
  preemptParsers: RamStreamParser[] = [];
  layoutSource: "stream" | "option" | "none" = "none";
  /** The layout in use (set once, by settleLayout), what it is based on, and a --block conflict. */
  layout: RamBlockInfo[] | null = null;
  layoutNote?: string;
  layoutConflict?: string;
  error?: string;
  readonly startedAt = Date.now();
  ended = false;
  phase: MigrationPhase = "setup";
  completedIn?: CompletedIn;
  readonly discards: MigrationReport["discards"] = { commands: 0, ranges: 0, malformed: 0 };
  readonly phases: { phase: MigrationPhase; atMs: number; why: string }[] = [{ phase: "setup", atMs: 0, why: "main channel" }];
  pauses = 0;
  resumes = 0;
  main: Conn | null = null;
  pauseTimer: NodeJS.Timeout | null = null;
  modelSaved?: number | string;
  /** The last page seen on the main channel (QEMU's background scan position). */
  lastMainPage: { block: string; page: number } | null = null;
  preloaded = false;
  readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });
  gcMs = 0;
  gcCount = 0;
  readonly gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { this.gcMs += e.duration; this.gcCount++; }
  });

  /** The one place a migration changes phase. */
  to(phase: MigrationPhase, why: string, log: (l: string) => void): void {
    if (this.phase === phase) return;
    this.phase = phase;
    this.phases.push({ phase, atMs: Date.now() - this.startedAt, why });
    log(`proxy: migration ${this.id}: ${phase} (${why})`);
  }

  get open_(): boolean {
    return OPEN_PHASES.includes(this.phase);
  }

  constructor(readonly id: number, opts: QemuProxyOptions) {
    this.loopDelay.enable();
    this.gcObserver.observe({ entryTypes: ["gc"] });
    this.injector = new RequestInjector(opts.makeStrategy ?? (() => null), opts.maxInjectPerRequest ?? 256);
    // A layout given as an option is not applied here any more but once the stream's head has been
    // read (QemuProxy.settleLayout): checked against the RAMBlock list the stream announces, and with
    // the defaults of the machine type it names (here, before the stream, both were unknown).
  }
}

class Conn {
  role: "unknown" | "main" | "secondary" = "unknown";
  readonly acceptedAt = Date.now();
  mig: Migration | null = null;
  filter: ReturnPathFilter | null = null;
  parser: RamStreamParser | null = null;
  up!: net.Socket;
  fwd!: DelayLine;
  ret!: DelayLine;
  closedSides = 0;
  constructor(readonly client: net.Socket) {}
}

export class QemuProxy extends EventEmitter {
  private server: net.Server | null = null;
  private connectChain: Promise<void> = Promise.resolve();
  private migrations: Migration[] = [];
  /** Connections accepted whose first bytes have not come yet (QEMU 10's preempt channel until its first page). */
  private unclassified = new Set<Conn>();
  private nextId = 1;
  readonly reports: MigrationReport[] = [];
  private readonly log: (line: string) => void;

  constructor(readonly opts: QemuProxyOptions) {
    super();
    this.log = opts.log ?? (() => {});
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
      server.once("error", reject);
      server.listen(this.opts.listenPort, this.opts.listenHost ?? "127.0.0.1", () => {
        server.off("error", reject);
        this.server = server;
        resolve(server.address() as net.AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    for (const m of this.migrations) if (m.pauseTimer) { clearTimeout(m.pauseTimer); m.pauseTimer = null; }
    for (const m of this.migrations) for (const c of m.conns) { c.client.destroy(); c.up?.destroy(); }
    // and the connections no migration claimed yet (a preempt channel before its first page): the
    // server's close waits for every connection
    for (const c of this.unclassified) { c.client.destroy(); c.up?.destroy(); }
    this.unclassified.clear();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = null;
    for (const m of this.migrations) { m.loopDelay.disable(); m.gcObserver.disconnect(); }
  }

  /**
   * Cut every connection of the migration in progress, as a network failure would (for recovery
   * tests): QEMU pauses post-copy, the proxy keeps the migration open for a resume.
   */
  dropConnections(): number {
    const m = this.migrations[this.migrations.length - 1];
    if (!m) return 0;
    let n = 0;
    for (const c of m.conns) { c.client.destroy(); c.up?.destroy(); n++; }
    return n;
  }

  /** The migration in progress (the latest one), for live statistics. */
  current(): MigrationReport | null {
    const m = this.migrations[this.migrations.length - 1];
    return m ? this.report(m) : null;
  }

  private accept(client: net.Socket): void {
    client.setNoDelay(true);
    client.pause();
    const c = new Conn(client);
    this.unclassified.add(c);
    client.once("close", () => this.unclassified.delete(c));
    let upReady = false;
    client.on("error", () => {});
    // Open the outbound connection in acceptance order.
    this.connectChain = this.connectChain.then(() => new Promise<void>((resolve) => {
      const up = net.connect({ host: this.opts.targetHost, port: this.opts.targetPort, allowHalfOpen: true, noDelay: true });
      c.up = up;
      up.on("error", (e) => {
        this.log(`proxy: target connection error: ${e.message}`);
        if (!upReady) resolve();
        client.destroy();
      });
      up.once("connect", () => {
        upReady = true;
        resolve();
        // The source may have gone while the destination was being reached (a reset, or an end
        // that was not seen: the client is paused): pass that on instead of leaving the
        // destination's side open for good.
        if (client.destroyed) { up.destroy(); return; }
        this.wire(c);
        if (client.readableEnded) c.fwd.end(); // its end came before wire() listened for it
        client.resume();
      });
    }));
  }

  private wire(c: Conn): void {
    const { client, up } = c;
    const delayMs = this.opts.delayMs ?? 0;
    c.fwd = new DelayLine(client, up, { delayMs, rateMbps: this.opts.rateMbps });
    c.ret = new DelayLine(up, client, { delayMs: this.opts.returnDelayMs ?? delayMs, rateMbps: this.opts.rateMbps });
    let head = Buffer.alloc(0);

    client.on("data", (chunk: Buffer) => {
      if (c.role === "unknown") {
        head = Buffer.concat([head, chunk]);
        if (head.length < 4) return;
        this.classify(c, head);
        chunk = head;
      }
      const m = c.mig!;
      m.bytesForward += chunk.length;
      if (c.role === "main" && !m.scanner.done) {
        m.scanner.push(chunk);
        // The scanner sees every byte before it is forwarded, so the list is settled before the
        // destination can have loaded the setup, let alone requested a page.
        if (m.scanner.done) this.settleLayout(m);
      }
      c.fwd.write(chunk);
      if (c.parser && !c.parser.done) c.parser.push(chunk);
    });
    client.on("end", () => {
      // Still unknown here means 1-3 bytes and gone (4 classify on arrival), a port probe say: no
      // channel of any migration; the bytes are passed on as they came.
      if (c.role === "unknown" && head.length > 0) c.fwd.write(head);
      c.fwd.end();
    });

    up.on("data", (chunk: Buffer) => {
      const m = c.mig;
      if (!m || !c.filter) {
        if (m) m.bytesReturn += chunk.length;
        c.ret.write(chunk);
        return;
      }
      m.bytesReturn += chunk.length;
      let out: Buffer;
      const filter = c.filter;
      const injected = filter.bytesInjected;
      const requests = m.injector.st.requests;
      try {
        out = filter.push(chunk); // each request has left through `forward` before its prediction ran
      } catch (e) {
        if (e instanceof ReturnPathError) {
          this.fail(m, e.message);
          return;
        }
        // Anything else comes from the prediction (the strategy, an encoding): the migration goes on
        // without it; the bytes not yet forwarded go as they came. One migration's bug must not end
        // the proxy and every migration in it.
        this.stopPredicting(m, e as Error);
        c.ret.write(chunk.subarray(filter.forwardedOfChunk));
        return;
      }
      m.bytesInjected += filter.bytesInjected - injected;
      if (out.length > 0) c.ret.write(out);
      // The chunk's requests and their injections are written: the strategy's upkeep (the engine's
      // deferred counting of the last request, a due prune) delays none of them.
      if (m.injector.st.requests !== requests && !m.predictionError) {
        try { m.injector.maintain(); } catch (e) { this.stopPredicting(m, e as Error); }
      }
    });
    up.on("end", () => c.ret.end());

    const onClose = (gone: net.Socket) => {
      if (++c.closedSides === 2) this.connClosed(c);
      else {
        // If one side is gone for good (not a half-close), tear the other down once what the gone
        // side sent has reached it: the delay line toward the surviving side first (its delay may be
        // --return-delay-ms, not --delay-ms, plus the rate limit's queue: a fixed 2000 + 2 x delayMs
        // cut data still on the emulated link), then 2 s for the socket's own buffer. Only that line
        // is waited for: it gets no new data (its source is closed), so the wait is bounded.
        const line = gone === client ? c.fwd : c.ret;
        const teardown = () => {
          if (c.closedSides !== 1) return;
          const pending = line.pendingMs;
          if (pending > 0) { setTimeout(teardown, pending + 2000).unref(); return; }
          client.destroy();
          up.destroy();
        };
        setTimeout(teardown, line.pendingMs + 2000).unref();
      }
    };
    client.on("close", () => onClose(client));
    up.on("close", () => onClose(up));
  }

  /**
   * Fix the migration's layout once: the stream's RAMBlock list when it was read, else `--block`'s.
   * A `--block` the stream contradicts (a size that differs, a block it does not announce) is
   * reported and not used: with a larger size the proxy would request pages past the block's end,
   * which fails the migration at the source. Called when the scanner is done, and at the first
   * request if it is not (a stream whose head never carried a ram setup: `--block` unchecked).
   */
  private settleLayout(m: Migration): void {
    if (m.layout || m.ended) return;
    const stream = m.scanner.result;
    const opt = this.opts.blocks && this.opts.blocks.length > 0 ? this.opts.blocks : null;
    if (!stream && !opt) return;
    let blocks: RamBlockInfo[];
    if (stream && opt) {
      const bad = opt.flatMap((b) => {
        const s = stream.find((x) => x.name === b.name);
        return s && s.size === b.size ? [] : [`${b.name}=${b.size} (the stream: ${s ? `${b.name}=${s.size}` : "no such RAMBlock"})`];
      });
      if (bad.length > 0) {
        m.layoutConflict = `--block disagrees with the RAMBlock list the stream announced: ${bad.join(", ")}; the stream's list is used`;
        this.log(`proxy: migration ${m.id}: WARNING: ${m.layoutConflict}`);
        blocks = stream;
        m.layoutSource = "stream";
      } else {
        blocks = opt; // a subset of the stream's blocks, same sizes: the user's page space
        m.layoutSource = "option";
        m.layoutNote = "checked against the stream's RAMBlock list";
      }
    } else if (stream) {
      blocks = stream;
      m.layoutSource = "stream";
    } else {
      blocks = opt!;
      m.layoutSource = "option";
      m.layoutNote = `not checked: the stream's RAMBlock list is unknown (${m.scanner.reason || "not seen yet"})`;
    }
    m.layout = blocks;
    // The machine type comes before the ram setup in the stream: known here whenever the stream named it.
    m.defaults = defaultsForMachine(m.scanner.machine);
    m.injector.setLayout({ blocks, machine: m.scanner.machine });
    this.log(`proxy: migration ${m.id}: RAM layout ${blocks.map((b) => `${b.name}=${b.size}`).join(", ")} (${m.layoutSource})${m.scanner.machine ? `, machine ${m.scanner.machine}` : ""}; ` +
      `defaults for ${m.defaults.basis}: ${m.defaults.maxPages} pages per request; steering by the channels seen at the switch-over`);
  }

  /** The prediction threw: log it, forward without injecting for the rest of this migration. */
  private stopPredicting(m: Migration, e: Error): void {
    if (m.predictionError) return;
    m.predictionError = e.message;
    for (const c of m.conns) c.filter = null;
    this.log(`proxy: migration ${m.id}: prediction stopped after an error (forwarding goes on): ${e.message}`);
  }

  private classify(c: Conn, head: Buffer): void {
    this.unclassified.delete(c);
    let m: Migration | undefined;
    const paused = [...this.migrations].reverse().find((x) => x.phase === "paused");
    if (head.readUInt32BE(0) === QEMU_VM_FILE_MAGIC) {
      m = new Migration(this.nextId++, this.opts);
      this.migrations.push(m);
      this.attachMain(m, c, undefined);
      this.log(`proxy: migration ${m.id}: main channel`);
    } else if (head[0] === QEMU_VM_COMMAND && paused) {
      // A resumed post-copy: the source's new main channel starts with commands (RECV_BITMAP), no header.
      m = paused;
      if (m.pauseTimer) { clearTimeout(m.pauseTimer); m.pauseTimer = null; }
      this.attachMain(m, c, m.mainParser?.ramSectionId);
      m.to("recovering", "a resumed main channel connected", this.log);
    } else {
      m = [...this.migrations].reverse().find((x) => !x.ended);
      if (!m) {
        m = new Migration(this.nextId++, this.opts);
        this.migrations.push(m);
      }
      c.role = "secondary";
      c.parser = this.forwardParser(m, "preempt");
      m.preemptParsers.push(c.parser);
      this.log(`proxy: migration ${m.id}: secondary channel`);
    }
    c.mig = m;
    m.conns.add(c);
    m.open++;
    m.connections++;
  }

  private attachMain(m: Migration, c: Conn, resumeSection: number | undefined): void {
    c.role = "main";
    m.main = c;
    const parser = new RamStreamParser("main", (block, page) => {
      m.tracker.onPage(block, page, "main", performance.now());
      m.injector.onForwardPage(block, page);
      m.lastMainPage = { block, page };
    }, {
      onSection: () => { if (m.phase === "setup") m.to("precopy", "first ram section", this.log); },
      onCommand: (cmd) => {
        if (cmd === MIG_CMD_PACKAGED && (m.phase === "setup" || m.phase === "precopy")) {
          m.to("postcopy", "device state packaged: switch-over", this.log);
          // QEMU connected the preempt channel before it sent these bytes, but the listening
          // socket's accept may be handled after them: settle (and preload) a moment later. The
          // destination must load the device state before its first fault, which takes longer.
          setTimeout(() => {
            if (m.phase !== "postcopy") return;
            try {
              this.settleChannels(m);
              this.preload(m);
            } catch (e) { this.stopPredicting(m, e as Error); }
          }, SETTLE_MS).unref();
        }
        if (cmd === MIG_CMD_POSTCOPY_RESUME && m.phase === "recovering") { m.resumes++; m.to("postcopy", "POSTCOPY_RESUME", this.log); }
      },
      onEof: () => this.complete(m, "QEMU_VM_EOF"),
      onDiscard: (block, ranges) => {
        m.discards.commands++;
        for (const r of ranges) {
          m.discards.ranges++;
          m.injector.onDiscard(block, r.page, r.pages);
          m.tracker.forget(block, r.page, r.pages);
        }
      },
      onDiscardError: (why) => {
        m.discards.malformed++;
        m.discards.lastError = why;
        this.log(`proxy: migration ${m.id}: a POSTCOPY_RAM_DISCARD the destination will refuse (${why}); skipped`);
      },
      onDeviceState: () => this.log(`proxy: migration ${m.id}: device state without a switch-over: the source completes in precopy`),
    }, resumeSection !== undefined && resumeSection >= 0 ? resumeSection : undefined);
    if (resumeSection === undefined) m.mainParser = parser;
    else if (m.mainParser) m.preemptParsers.push(m.mainParser), (m.mainParser = parser);
    c.parser = parser;
    c.filter = new ReturnPathFilter({
      forward: (bytes) => c.ret.write(bytes),
      onRequest: (req) => {
        this.settleLayout(m); // no-op once settled; --block alone when the stream had no ram setup
        this.settleChannels(m, true);
        const now = performance.now();
        m.tracker.onDestRequest(req.block, Math.floor(req.offset / TARGET_PAGE_SIZE), Math.max(1, Math.ceil(req.length / TARGET_PAGE_SIZE)), now);
        // QEMU 7.2's scan continues after the last queued page it served, with or without the preempt
        // channel (get_queued_page moves the search to it): end injections with the page after the fault.
        const ranges = m.injector.onRequest(req, m.tracker, this.scannerReturn(m));
        for (const r of ranges) m.tracker.onInjected(req.block, r.offset / TARGET_PAGE_SIZE, r.length / TARGET_PAGE_SIZE, now);
        return ranges;
      },
      onMessage: (msg) => {
        m.messages.set(msg.type, (m.messages.get(msg.type) ?? 0) + 1);
        // A migration that converges in precopy has no switch-over and (its device state is not
        // followed) no QEMU_VM_EOF seen: the destination's SHUT 0 says it loaded everything.
        if (msg.type === RP_SHUT && msg.payload.length === 4 && msg.payload.readUInt32BE(0) === 0 &&
            (m.phase === "setup" || m.phase === "precopy")) this.complete(m, "the destination's SHUT 0: it loaded everything");
        // A non-zero SHUT is the destination saying it failed to load (migration_incoming_state_destroy
        // sends the file's error flag). In post-copy it comes after QEMU_VM_EOF, which had already
        // made the migration "completed": the destination's word wins, and nothing is learned from it.
        if (msg.type === RP_SHUT && msg.payload.length === 4 && msg.payload.readUInt32BE(0) !== 0) this.destinationFailed(m, msg.payload.readUInt32BE(0));
      },
    });
  }

  /**
   * At the switch-over (the proxy sees the packaged device state before the destination loads it,
   * so before the guest's first fault): request the pages the model says open a migration of this VM
   * (`preload`), as named REQ_PAGES_ID messages. Only at a message boundary of the return path and
   * before the destination has named another block (its next bare REQ_PAGES must still mean the
   * block it named), else skipped with a log line.
   */
  private preload(m: Migration): void {
    const c = m.main;
    if (!c || !c.filter || m.preloaded) return;
    m.preloaded = true;
    if (!c.filter.atBoundary) { this.log(`proxy: migration ${m.id}: no preload (return path inside a message)`); return; }
    const last = c.filter.lastBlockName;
    const now = performance.now();
    const sets = m.injector.preload(m.tracker, this.scannerReturn(m) ? m.lastMainPage ?? undefined : undefined);
    const bufs: Buffer[] = [];
    for (const { block, ranges } of sets) {
      if (last !== null && last !== block) { this.log(`proxy: migration ${m.id}: no preload in ${block} (the destination named ${last})`); continue; }
      for (const r of ranges) {
        bufs.push(encodeReqPagesId(r.offset, r.length, block));
        m.tracker.onInjected(block, r.offset / TARGET_PAGE_SIZE, r.length / TARGET_PAGE_SIZE, now);
      }
    }
    if (bufs.length === 0) return;
    const out = Buffer.concat(bufs);
    m.bytesInjected += out.length;
    c.ret.write(out);
    this.log(`proxy: migration ${m.id}: preloaded ${bufs.length} range(s) at the switch-over`);
  }

  /** The one way into "completed": where it completed (see MigrationReport.completedIn). */
  private complete(m: Migration, why: string): void {
    if (!m.open_) return;
    const p = m.mainParser;
    m.completedIn = m.phase === "postcopy" || m.phase === "recovering" || m.phase === "paused" || m.injector.st.requests > 0
      ? "postcopy" // the destination requests pages only in post-copy
      : p && !p.lost && p.ramSectionId >= 0 ? "precopy" : "unknown";
    m.to("completed", `${why}; in ${m.completedIn}`, this.log);
  }

  /**
   * The destination's SHUT with a non-zero status: the migration failed, whatever the forward stream
   * said (a "completed" migration included: no model is saved at its end). Unlike `fail`, the
   * connections are left alone: the SHUT is on its way to the source, which must see it.
   */
  private destinationFailed(m: Migration, status: number): void {
    if (m.error || m.ended) return;
    m.error = `the destination sent SHUT with status ${status}: it failed to load the migration`;
    m.completedIn = undefined;
    m.to("failed", m.error, this.log);
  }

  private forwardParser(m: Migration, kind: "main" | "preempt"): RamStreamParser {
    return new RamStreamParser(kind, (block, page) => {
      m.tracker.onPage(block, page, kind, performance.now());
      m.injector.onForwardPage(block, page);
    });
  }

  private fail(m: Migration, message: string): void {
    if (m.error) return;
    m.error = message;
    m.to("failed", message, this.log);
    this.log(`proxy: migration ${m.id}: ${message}; closing the migration`);
    for (const c of m.conns) {
      c.fwd.close();
      c.ret.close();
      c.client.destroy();
      c.up.destroy();
    }
  }

  private connClosed(c: Conn): void {
    c.fwd?.close();
    c.ret?.close();
    const m = c.mig;
    if (!m) return;
    m.open--;
    if (c === m.main && (m.phase === "postcopy" || m.phase === "recovering")) {
      m.pauses++;
      m.to("paused", "main channel closed before QEMU_VM_EOF: QEMU pauses post-copy (postcopy-paused); waiting for migrate-recover + migrate resume=true", this.log);
    }
    if (m.open === 0 && !m.ended && m.phase === "paused") {
      const wait = this.opts.pauseTimeoutMs ?? 600_000;
      m.pauseTimer ??= setTimeout(() => {
        m.pauseTimer = null;
        if (m.phase === "paused" && m.open === 0) { m.to("closed", `no resume within ${wait} ms`, this.log); this.end(m); }
      }, wait);
      m.pauseTimer.unref();
      return;
    }
    if (m.open === 0 && !m.ended) {
      if (m.open_) m.to("closed", "all channels closed before the end of the stream", this.log);
      this.end(m);
    }
  }

  private end(m: Migration): void {
    {
      m.ended = true;
      // Only a post-copy taught the strategy anything; saving after a precopy completion would also
      // turn a new (untrusted) model into a restored one, trusted from the start next time.
      if (m.phase === "completed" && m.completedIn === "postcopy" && this.opts.saveModel) {
        try {
          const bytes = m.injector.snapshot();
          if (bytes) { this.opts.saveModel(bytes); m.modelSaved = bytes.length; }
          else m.modelSaved = "the strategy has no model";
        } catch (e) {
          m.modelSaved = `not saved: ${(e as Error).message}`;
          this.log(`proxy: migration ${m.id}: model not saved: ${(e as Error).message}`);
        }
      } else if (this.opts.saveModel) {
        m.modelSaved = m.phase === "completed" ? `not saved: completed in ${m.completedIn}, no post-copy to learn from` : `not saved: the migration ended ${m.phase}`;
      }
      const r = this.report(m);
      m.loopDelay.disable();
      m.gcObserver.disconnect();
      m.injector.dispose();
      this.reports.push(r);
      this.migrations = this.migrations.filter((x) => x !== m);
      this.emit("migration", r);
    }
  }

  private service(m: Migration): ServiceReport {
    const state = (p: RamStreamParser | null) => !p ? "not seen" : p.lost ? `lost: ${p.lost}` : p.done ? (p.stoppedAt ? `followed to ${p.stoppedAt}` : "followed to the end") : "followed";
    m.tracker.followed.main = state(m.mainParser);
    m.tracker.followed.preempt = m.preemptParsers.length ? m.preemptParsers.map(state).join("; ") : "no channel";
    return m.tracker.report();
  }

  /**
   * Whether the source has a postcopy-preempt channel, decided at the switch-over and checked again
   * at the first request: QEMU >= 8.0 connects it in postcopy_start before
   * it sends the device state (and sends its first bytes only with the first requested page: until
   * then it is a connection that has said nothing); QEMU 7.2 connects it at the start. Then the
   * strategy is told the steering for it.
   */
  private settleChannels(m: Migration, atRequest = false): void {
    if (m.channelFinal) return;
    m.channelFinal = atRequest;
    const preempt = [...m.conns].some((c) => c.role === "secondary") ||
      [...this.unclassified].some((c) => c.acceptedAt >= (m.main?.acceptedAt ?? m.startedAt));
    // A channel seen later (up to the first request) turns "single" into "preempt", never back.
    const next: ChannelMode = preempt || m.channel === "preempt" ? "preempt" : "single";
    if (next === m.channel) return;
    m.channel = next;
    const st = this.steering(m);
    m.injector.steer(st);
    this.log(`proxy: migration ${m.id}: ${preempt ? "postcopy-preempt channel" : "no postcopy-preempt channel"}; ` +
      `steering: runs of ${st.runPages}, preload ${st.preloadPages} x ${st.preloadRun}, scan return ${this.scannerReturn(m) ? "on" : "off"}` +
      `${this.opts.scannerReturn !== undefined ? " (set)" : ""} (policy options given explicitly win)`);
  }

  /** The defaults' steering for the migration's channels (7.2's before its layout is known). */
  private steering(m: Migration): Steering {
    const d = m.defaults ?? defaultsForMachine(null);
    return m.channel === "preempt" ? d.preempt : d.single;
  }

  /** The option, else the steering of the migration's QEMU and channels. */
  private scannerReturn(m: Migration): boolean {
    return this.opts.scannerReturn ?? this.steering(m).scannerReturn;
  }

  private report(m: Migration): MigrationReport {
    const messages: Record<string, number> = {};
    for (const [t, n] of m.messages) messages[RP_TYPE_NAMES[t] ?? `type${t}`] = n;
    return {
      id: m.id,
      ...(m.predictionError !== undefined ? { predictionError: m.predictionError } : {}),
      phase: m.phase,
      ...(m.completedIn !== undefined ? { completedIn: m.completedIn } : {}),
      discards: { ...m.discards },
      phases: [...m.phases],
      pauses: m.pauses,
      resumes: m.resumes,
      strategy: m.injector.strategyInfo(),
      modelSaved: m.modelSaved,
      connections: m.connections,
      startedAt: m.startedAt,
      durationMs: Date.now() - m.startedAt,
      // what the injector uses (with --block it used to show the stream's list beside the option's layout)
      layout: m.layout,
      layoutSource: m.layoutSource,
      layoutNote: m.layoutSource === "none" ? m.scanner.reason || "layout not seen" : m.layoutNote,
      ...(m.layoutConflict !== undefined ? { layoutConflict: m.layoutConflict } : {}),
      machine: m.scanner.machine,
      tuning: m.defaults ? { ...m.defaults, channel: m.channel, scannerReturnUsed: this.scannerReturn(m) } : null,
      bytesForward: m.bytesForward,
      bytesReturn: m.bytesReturn,
      bytesInjected: m.bytesInjected,
      messages,
      stats: m.injector.stats(),
      service: this.service(m),
      process: {
        loopDelayMs: { p50: ms(m.loopDelay.percentile(50)), p99: ms(m.loopDelay.percentile(99)), max: ms(m.loopDelay.max) },
        gcMs: Math.round(m.gcMs * 10) / 10, gcCount: m.gcCount,
      },
      error: m.error,
    };
  }
}

/** Nanoseconds (a histogram's unit) to milliseconds, 0.01 ms. */
function ms(ns: number): number {
  return Number.isFinite(ns) ? Math.round(ns / 1e4) / 100 : 0;
}
