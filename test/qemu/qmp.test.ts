// The migration harness's QMP client (scripts/qemu/qmp.ts): a command to a QEMU that has gone away
// or that does not answer rejects instead of waiting forever (a run once hung 9 minutes on one), and
// replies stay matched to their commands after a timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Qmp } from "../../scripts/qemu/qmp.js";

/** A fake QMP monitor: greets, accepts capabilities, then answers each command with `answer`. */
async function fakeMonitor(answer: (cmd: string, sock: net.Socket) => void) {
  const dir = mkdtempSync(join(tmpdir(), "ppm-qmp-"));
  const path = join(dir, "m.qmp");
  const socks: net.Socket[] = [];
  const server = net.createServer((s) => {
    socks.push(s);
    s.write(JSON.stringify({ QMP: { version: {}, capabilities: ["oob"] } }) + "\n");
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
        const cmd = msg.execute ?? msg["exec-oob"];
        if (cmd === "qmp_capabilities") s.write(JSON.stringify({ return: {} }) + "\n");
        else answer(cmd, s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, socks, close: () => { for (const s of socks) s.destroy(); server.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test("a command after the monitor closed rejects at once; one in flight rejects when it closes", async () => {
  const m = await fakeMonitor(() => { /* never answers */ });
  try {
    const q = await Qmp.connect(m.path);
    const inFlight = q.cmd("query-migrate");
    m.socks[0].destroy();
    await assert.rejects(inFlight, /QMP connection closed/);
    await assert.rejects(q.cmd("query-migrate"), /QMP connection closed \(query-migrate not sent\)/);
    await assert.rejects(q.oobCmd("migrate-recover", { uri: "tcp:127.0.0.1:1" }), /not sent/);
  } finally { m.close(); }
});

test("a command without an answer times out; a late answer still goes to it, not to the next command", async () => {
  let n = 0;
  const m = await fakeMonitor((cmd, s) => {
    n++;
    // the first command is answered late (after its timeout), the second at once
    if (n === 1) setTimeout(() => s.write(JSON.stringify({ return: { status: "late" } }) + "\n"), 150);
    else setTimeout(() => s.write(JSON.stringify({ return: { status: `answer to ${cmd}` } }) + "\n"), 200);
  });
  try {
    const q = await Qmp.connect(m.path);
    await assert.rejects(q.cmd("slow", undefined, 50), /no answer to slow within 50 ms/);
    const r = await q.cmd("query-migrate");
    assert.deepEqual(r, { status: "answer to query-migrate" });
    q.close();
  } finally { m.close(); }
});
