// The Wasm core's pin_user_pages against the plain-TypeScript reference kernel
// (bench/reference/): random programs of faults, forks, exits, read and write pins and
// unpins must give the same page tables, contents, refcounts and counters. (Forks run only
// while nothing is pinned: the reference does not copy pinned pages at fork.)
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, PAGE_SIZE, FOLL_WRITE, type Process } from "../src/index.js";
import { RefMachine, ptePfn, type RefMm } from "../bench/reference/kernel.js";
import { expectSameCounters, expectSamePtes, exitPair } from "./differential-helpers.js";

const BASE_VPN = 0x10000;
const PAGES = 64;
const FRAMES = 1024;

type Op =
  | { kind: "touch"; proc: number; first: number; n: number; write: boolean }
  | { kind: "pin"; proc: number; first: number; n: number; write: boolean }
  | { kind: "unpin"; pick: number }
  | { kind: "fork"; proc: number }
  | { kind: "exit"; proc: number };

const range = { proc: fc.nat(7), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 24 }), write: fc.boolean() };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("touch" as const), ...range }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("pin" as const), ...range }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("unpin" as const), pick: fc.nat(99) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("fork" as const), proc: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("exit" as const), proc: fc.nat(7) }) },
);

const COMPARED = [
  "pgfault", "cow_fault", "nr_anon_pages", "nr_free_pages", "pgalloc_normal", "pgfree", "nr_foll_pin_acquired", "nr_foll_pin_released",
] as const;

describe("differential: pin_user_pages, Wasm core vs the plain-TS reference kernel", () => {
  it("same PTEs, tags, refcounts and counters after random fault/pin/unpin/fork/exit programs", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 50 }), (ops) => {
        const m = Machine.create({ nodes: [{ normal: FRAMES }], content: "tags" });
        const ref = new RefMachine({ pages: FRAMES });
        const first = m.spawn();
        first.mmap(BASE_VPN * PAGE_SIZE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
        const refFirst = ref.spawn();
        refFirst.mmapAnon(BASE_VPN, PAGES);
        const pairs: [Process, RefMm][] = [[first, refFirst]];
        const pins: [Uint32Array, Uint32Array][] = [];
        let tag = 1n;
        for (const op of ops) {
          if (op.kind === "unpin") {
            if (pins.length === 0) continue;
            const [ours, theirs] = pins.splice(op.pick % pins.length, 1)[0]!;
            m.unpinUserPages(ours);
            ref.unpinUserPages(theirs, theirs.length);
            continue;
          }
          const pair = pairs[op.proc % pairs.length]!;
          if (op.kind === "touch" || op.kind === "pin") {
            const n = Math.min(op.n, PAGES - op.first);
            const addr = (BASE_VPN + op.first) * PAGE_SIZE;
            if (op.kind === "pin") {
              const ours = m.pinUserPages(pair[0], addr, n, op.write ? FOLL_WRITE : 0);
              const theirs = new Uint32Array(n);
              pair[1].pinUserPages(BASE_VPN + op.first, n, op.write, theirs);
              expect(Array.from(ours, (pfn) => pfn === 0)).toEqual(Array.from(theirs, (pfn) => pfn === 0));
              pins.push([ours, theirs]);
            } else {
              const b = pair[0].batch();
              b.touch(addr, n, op.write, tag);
              expect(pair[0].run(b).fault).toBeUndefined();
              pair[1].touch(BASE_VPN + op.first, n, op.write, tag);
              tag += BigInt(n);
            }
          } else if (op.kind === "fork") {
            if (pairs.length >= 4 || pins.length > 0) continue;
            pairs.push([pair[0].fork(), pair[1].fork()]);
          } else if (pairs.length > 1) {
            exitPair(pairs, pair);
          }
          expectSameCounters(m, ref, COMPARED);
        }
        m.check();
        for (const [p, rp] of pairs) {
          expectSamePtes(p, rp, BASE_VPN, PAGES, (vpn, pte, rpte) => {
            const pfn = Number((pte >> 12n) & 0xffffffffffn);
            if (pfn !== 0) expect([vpn, m.page.refcount(pfn)]).toEqual([vpn, ref.refcount[ptePfn(rpte)]]);
          });
        }
        for (const [ours, theirs] of pins) {
          m.unpinUserPages(ours);
          ref.unpinUserPages(theirs, theirs.length);
        }
        for (const [p, rp] of pairs) {
          p.exit();
          rp.exit();
        }
        m.check();
        expectSameCounters(m, ref, COMPARED);
      }),
      { numRuns: 60 },
    );
  });
});
