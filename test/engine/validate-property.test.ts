// The restore-time validator must never refuse a model the engine itself made: after every call of
// random call sequences, on configurations that exercise every structure (pruning arenas, ageing,
// free lists, compaction, every order and alphabet, the filter on and off, odd bitmap sizes, pending
// histories), snapshot() restores, and the restored model continues as the original.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createPredictor, restorePredictor } from "../../src/index.js";

const config = fc.record({
  pageCount: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 71, max: 5000 })),
  order: fc.integer({ min: 1, max: 8 }),
  alphabet: fc.constantFrom("page" as const, "delta" as const, "hybrid" as const),
  escape: fc.constantFrom("A" as const, "B" as const, "C" as const, "D" as const),
  depth: fc.integer({ min: 0, max: 24 }),
  streams: fc.integer({ min: 1, max: 4 }),
  maxContexts: fc.integer({ min: 16, max: 400 }),
  deltaRange: fc.integer({ min: 1, max: 40 }),
  filter: fc.constantFrom(0, 1, 8, 64),
  lookahead: fc.integer({ min: 1, max: 12 }),
  ageLimit: fc.constantFrom(2, 5, 30, 65534),
  rehearse: fc.boolean(),
});

type Op = { kind: string; a: number; b: number; n: number };
const op = fc.record({
  kind: fc.constantFrom("train", "train", "predict", "observe", "present", "range", "clear", "compact", "prune", "rehearse", "reset"),
  a: fc.nat(), b: fc.nat(), n: fc.integer({ min: 1, max: 9000 }),
});

function apply(p: ReturnType<typeof createPredictor>, o: Op): void {
  const { pageCount, streams } = p.options;
  const s = o.b % streams;
  switch (o.kind) {
    case "train": {
      let x = o.a | 1;
      const hot = o.a % 7 + 3;
      p.train(Uint32Array.from({ length: o.n }, (_, i) => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return (x >>> 28) < 10 ? (o.a + (i % hot) * 3) % pageCount : (x >>> 8) % pageCount;
      }), s);
      break;
    }
    case "predict": for (let i = 0; i < 40; i++) p.predictNext((o.a + i * (o.b % 5 + 1)) % pageCount, (s + i) % streams); break;
    case "observe": for (let i = 0; i < 20; i++) p.observe((o.a + i * 3) % pageCount, s); break;
    case "present": p.markPresent(o.a % pageCount); break;
    case "range": { const start = o.a % (pageCount + 1); p.markPresentRange(start, o.b % (pageCount - start + 1)); break; }
    case "clear": p.clearPresent(); break;
    case "compact": p.compact(); break;
    case "prune": p.prune(); break;
    case "rehearse": p.rehearse(); break;
    case "reset": if (o.a % 4 === 0) p.reset(); break;
  }
}

test("property: every snapshot of a model the engine made passes restore's validation, and the restored model continues as the original", { timeout: 300_000 }, () => {
  let restores = 0;
  fc.assert(fc.property(config, fc.array(op, { minLength: 1, maxLength: 8 }), (options, ops) => {
    const p = createPredictor(options);
    for (const o of ops) {
      apply(p, o);
      let q;
      try {
        q = restorePredictor(p.snapshot());
      } catch (e) {
        assert.fail(`after ${o.kind} on ${JSON.stringify(options)}: ${(e as Error).message}`);
      }
      restores++;
      const f = (o.a * 31 + 7) % options.pageCount;
      assert.deepEqual(Array.from(q.predictNext(f, 0)), Array.from(p.predictNext(f, 0)));
      assert.deepEqual(q.stats(), p.stats());
    }
  }), { numRuns: 30, seed: 0x7a11d });
  assert.ok(restores >= 30);
});
