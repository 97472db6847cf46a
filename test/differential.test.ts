// The Wasm core against the plain-TypeScript reference kernel (bench/reference/):
// the same random programs of faults, forks and exits must give the same page
// tables, contents and counters.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, PAGE_SIZE, type Process } from "../src/index.js";
import { RefMachine, type RefMm } from "../bench/reference/kernel.js";
import { expectSameCounters, expectSamePtes, exitPair } from "./differential-helpers.js";

const BASE_VPN = 0x10000;
const PAGES = 96;
const FRAMES = 1024;

type Op =
  | { kind: "touch"; proc: number; first: number; n: number; write: boolean }
  | { kind: "fork"; proc: number }
  | { kind: "exit"; proc: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("touch" as const), proc: fc.nat(7), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 40 }), write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fork" as const), proc: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("exit" as const), proc: fc.nat(7) }) },
);

const COMPARED = ["pgfault", "cow_fault", "nr_anon_pages", "nr_free_pages", "pgalloc_normal", "pgfree", "nr_page_table_pages"] as const;

describe("differential: Wasm core vs the plain-TS reference kernel", () => {
  it("same PTEs, tags and counters after random fault/fork/exit programs", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        const m = Machine.create({ nodes: [{ normal: FRAMES }], content: "tags" });
        const ref = new RefMachine({ pages: FRAMES });
        const first = m.spawn();
        first.mmap(BASE_VPN * PAGE_SIZE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
        const refFirst = ref.spawn();
        refFirst.mmapAnon(BASE_VPN, PAGES);
        const pairs: [Process, RefMm][] = [[first, refFirst]];
        let tag = 1n;
        for (const op of ops) {
          const pair = pairs[op.proc % pairs.length]!;
          if (op.kind === "touch") {
            const n = Math.min(op.n, PAGES - op.first);
            const addr = (BASE_VPN + op.first) * PAGE_SIZE;
            let ours = "ok";
            let theirs = "ok";
            const b = pair[0].batch();
            b.touch(addr, n, op.write, tag);
            const r = pair[0].run(b);
            if (r.fault) ours = r.fault.code;
            try {
              pair[1].touch(BASE_VPN + op.first, n, op.write, tag);
            } catch (e) {
              theirs = (e as Error).message;
            }
            expect(ours).toBe(theirs);
            tag += BigInt(n);
          } else if (op.kind === "fork") {
            if (pairs.length >= 6) continue;
            pairs.push([pair[0].fork(), pair[1].fork()]);
          } else if (pairs.length > 1) {
            exitPair(pairs, pair);
          }
          expectSameCounters(m, ref, COMPARED);
        }
        m.check();
        for (const [p, rp] of pairs) {
          expectSamePtes(p, rp, BASE_VPN, PAGES);
          const w = p.walk(BASE_VPN * PAGE_SIZE, PAGES * PAGE_SIZE);
          const rw = rp.walk(BASE_VPN, PAGES);
          expect([w.present, w.writable]).toEqual([rw.present, rw.writable]);
        }
      }),
      { numRuns: 40 },
    );
  });
});
