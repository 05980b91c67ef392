/**
 * Investigation probe (off unless PPM_PROBE names a file): timestamped events on the fault path,
 * kept in memory and written as JSON lines at process exit. Times are process.hrtime.bigint() (the
 * host's CLOCK_MONOTONIC), so a source and a destination process on one host are comparable.
 */
import { appendFileSync, openSync, readSync } from "node:fs";

const FILE = process.env.PPM_PROBE ?? "";
export const PROBE = FILE !== "";
const events: string[] = [];

export function probe(ev: string, fields: Record<string, number | string>): void {
  if (!PROBE) return;
  events.push(JSON.stringify({ ev, pid: process.pid, ...fields }));
}

/** Run-queue wait and run time of this thread so far (ns), from /proc (Linux). */
let fd = -1;
const sbuf = Buffer.alloc(128);
export function schedstat(): { runNs: number; waitNs: number } {
  try {
    if (fd < 0) fd = openSync("/proc/thread-self/schedstat", "r");
    const n = readSync(fd, sbuf, 0, 128, 0);
    const [run, wait] = sbuf.toString("latin1", 0, n).trim().split(/\s+/).map(Number);
    return { runNs: run, waitNs: wait };
  } catch { return { runNs: NaN, waitNs: NaN }; }
}
/** The run-queue wait so far (ns), for the probe's events. */
export function waitNs(): number { return PROBE ? schedstat().waitNs : 0; }

const exitHooks: (() => void)[] = [];
/** Called at exit, before the events are written (summaries). */
export function atProbeExit(f: () => void): void { exitHooks.push(f); }

export function flushProbe(): void {
  for (const f of exitHooks.splice(0)) f();
  if (!PROBE || events.length === 0) return;
  appendFileSync(`${FILE}.${process.pid}`, events.join("\n") + "\n");
  events.length = 0;
}

if (PROBE) process.on("exit", flushProbe);
