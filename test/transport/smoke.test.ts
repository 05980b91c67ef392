import { test } from "node:test";
import assert from "node:assert/strict";
import { startPageServer } from "../../src/transport/source.js";
import { runMigration } from "../../src/transport/destination.js";
import { image, nextN, syntheticTrace } from "./helpers.js";

test("smoke: demand paging and next-N, loopback", async () => {
  const img = image(2048);
  for (const strat of [undefined, (c: { pageCount: number }) => nextN(c.pageCount, 8)]) {
    const srv = await startPageServer({ image: img, strategy: strat });
    try {
      const r = await runMigration({ port: srv.port, trace: syntheticTrace(20000, 2048), ips: 1e8, timeoutMs: 20000 });
      console.log(JSON.stringify(r));
      assert.equal(r.verified, true);
      assert.equal(r.duplicatePages, 0);
      assert.equal(r.pagesReceived, 2048);
    } finally { await srv.close(); }
  }
});
