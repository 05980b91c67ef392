/** A minimal QMP client over a unix socket: connect, negotiate capabilities, execute commands. */
import net from "node:net";

export class Qmp {
  private buf = "";
  private waiters: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private oob = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextOob = 1;
  private closed = false;
  readonly events: { event: string; data?: unknown }[] = [];
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.QMP) continue;
        if (msg.event) { this.events.push(msg); continue; }
        const w = typeof msg.id === "string" && this.oob.has(msg.id) ? this.oob.get(msg.id) : this.waiters.shift();
        if (typeof msg.id === "string") this.oob.delete(msg.id);
        if (!w) continue;
        if (msg.error) w.reject(new Error(`QMP: ${msg.error.class}: ${msg.error.desc}`));
        else w.resolve(msg.return);
      }
    });
    sock.on("close", () => {
      this.closed = true;
      for (const w of [...this.waiters.splice(0), ...this.oob.values()]) w.reject(new Error("QMP connection closed"));
      this.oob.clear();
    });
    sock.on("error", () => {});
  }

  static async connect(path: string, timeoutMs = 20000): Promise<Qmp> {
    const t0 = Date.now();
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((res, rej) => {
          const s = net.connect(path);
          s.once("connect", () => res(s));
          s.once("error", rej);
        });
        const q = new Qmp(sock);
        // Out-of-band execution when the monitor offers it: migrate-recover must run while the
        // destination's main loop may be stuck on a missing page (postcopy-paused).
        try {
          await q.cmd("qmp_capabilities", { enable: ["oob"] });
        } catch {
          await q.cmd("qmp_capabilities");
        }
        return q;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * Execute a command. It rejects when the connection is (or gets) closed, and after `timeoutMs`:
   * a command sent to a QEMU that has gone away used to wait forever (a migration harness hung 9
   * minutes on one, 2026-12-05).
   */
  cmd<T = any>(execute: string, args?: Record<string, unknown>, timeoutMs = 30000): Promise<T> {
    return this.send(execute, args, timeoutMs, false);
  }

  /** Execute out of band (`exec-oob`): answered even while the main loop is blocked. */
  oobCmd<T = any>(execute: string, args?: Record<string, unknown>, timeoutMs = 30000): Promise<T> {
    return this.send(execute, args, timeoutMs, true);
  }

  private send<T>(execute: string, args: Record<string, unknown> | undefined, timeoutMs: number, oob: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP connection closed (${execute} not sent)`));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        // The waiter stays queued: replies are matched in order, so a late one must still land on it.
        settled = true;
        reject(new Error(`QMP: no answer to ${execute} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = {
        resolve: (v: unknown) => { clearTimeout(timer); if (!settled) { settled = true; resolve(v as T); } },
        reject: (e: Error) => { clearTimeout(timer); if (!settled) { settled = true; reject(e); } },
      };
      const id = `oob-${this.nextOob++}`;
      if (oob) this.oob.set(id, w); else this.waiters.push(w);
      const msg = oob ? { "exec-oob": execute, ...(args ? { arguments: args } : {}), id } : { execute, ...(args ? { arguments: args } : {}) };
      this.sock.write(JSON.stringify(msg) + "\n");
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
