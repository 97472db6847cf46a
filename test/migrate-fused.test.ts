// migrate_vma's one-pass finalize (taken when allocAndCopy alone filled dst) against the
// step-by-step path (pages(), then finalize(), with one entry at a time in collect too: see
// test/migrate-lanes.test.ts for the four-lane loops): two machines run the same random programs,
// one each way, and must end every step with the same PTEs, struct pages, contents,
// counters and cpages, with machine.check() passing on both. The programs mix forks (shared
// pages take the rmap walk), extra references (pinned pages are restored), holes, failed
// allocations, device memory running out and CPU faults on device pages (migrate_to_ram).
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, MAP_ANONYMOUS,
  MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, type DevPagemap, type MigrateVma, type Process, type VmFault,
} from "../src/index.js";
import { Holders, holderOpArbs, type HolderOp } from "./migrate-side.js";

const BASE = 0x20000 * PAGE_SIZE;
const PAGES = 64;
const FRAMES = 512;
const DEVICE_PAGES = 48;

type Op =
  | { kind: "touch"; first: number; n: number; write: boolean }
  | { kind: "migrate"; first: number; n: number; toDevice: boolean; failFirst: boolean; holes: boolean }
  | HolderOp;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("touch" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 24 }), write: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("migrate" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: PAGES }),
      toDevice: fc.boolean(), failFirst: fc.boolean(), holes: fc.boolean(),
    }),
  },
  ...holderOpArbs(PAGES),
);

/** One machine of the pair: `stepwise` drivers call pages() before finalize(). */
class Side {
  readonly m: Machine;
  readonly p: Process;
  readonly pg: DevPagemap;
  readonly owner = { name: "fused-test" };
  readonly holders: Holders;

  constructor(readonly stepwise: boolean, lanes = true) {
    this.m = Machine.create({ nodes: [{ normal: FRAMES }], content: "tags", deviceMemory: DEVICE_PAGES });
    this.m.core.migrateSetLanes(lanes ? 1 : 0);
    this.pg = this.m.memremapPages({
      type: MEMORY_DEVICE_PRIVATE, nrPages: DEVICE_PAGES, owner: this.owner,
      ops: {
        migrateToRam: (vmf: VmFault) => {
          const mig = this.m.migrateVmaSetup({
            proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE,
            flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this.owner, faultPage: vmf.page,
          });
          mig.allocAndCopy({ node: 0 });
          this.finish(mig);
          return 0;
        },
      },
    });
    this.p = this.m.spawn();
    this.holders = new Holders(this.m, this.p, BASE);
    this.p.mmap(BASE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  }

  finish(mig: MigrateVma): void {
    if (this.stepwise) mig.pages();
    mig.finalize();
  }

  /** Runs one op; returns what the op reports (cpages, allocations, fault codes). */
  run(op: Op, tag: bigint): unknown {
    switch (op.kind) {
      case "touch":
        return this.holders.touch(op.first, op.n, op.write, tag, PAGES);
      case "migrate": {
        const n = Math.min(op.n, PAGES - op.first);
        const start = BASE + op.first * PAGE_SIZE;
        const mig = this.m.migrateVmaSetup({
          proc: this.p, start, end: start + n * PAGE_SIZE, pgmapOwner: this.owner,
          flags: op.toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
        });
        const got = mig.allocAndCopy(op.toDevice ? this.pg : { node: 0 }, { failFirst: op.failFirst, holes: op.holes });
        this.finish(mig);
        return [mig.cpages, got, [...mig.src]];
      }
      default:
        return this.holders.run(op);
    }
  }

  /** Everything the two paths must agree on. */
  state(): unknown {
    const frames = this.m.config.frames + this.m.config.deviceFrames;
    const core = this.m.core;
    const pages = Array.from({ length: frames }, (_, pfn) => [core.pageRefcount(pfn), core.pageMapcount(pfn), core.pageFlags(pfn)]);
    const ptes = (p: Process | null): bigint[] => (p ? Array.from({ length: PAGES }, (_, i) => p.pte(BASE + i * PAGE_SIZE)) : []);
    const tags = (p: Process): (bigint | null)[] =>
      Array.from({ length: PAGES }, (_, i) => {
        const pte = p.pte(BASE + i * PAGE_SIZE);
        return pte & 1n ? this.m.page.readTag(Number((pte >> 12n) & 0xffffffffffn)) : null;
      });
    return { pages, ptes: ptes(this.p), child: ptes(this.holders.child), tags: tags(this.p), counters: this.m.counters(), rss: this.p.rss(), zones: this.m.zones() };
  }
}

describe("migrate_vma: one-pass finalize vs pages() then finalize()", () => {
  it("same PTEs, struct pages, contents, counters and cpages after random programs", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
        // The step-by-step side takes one entry at a time in collect too.
        const fused = new Side(false);
        const step = new Side(true, false);
        let tag = 1n;
        for (const op of ops) {
          expect(fused.run(op, tag)).toEqual(step.run(op, tag));
          tag += 64n;
          expect(fused.state()).toEqual(step.state());
          // A reference the test holds itself is a leak to check() (no GUP records it yet).
          if (fused.holders.pins.length === 0) {
            fused.m.check();
            step.m.check();
          }
        }
        fused.run({ kind: "unpin" }, 0n);
        step.run({ kind: "unpin" }, 0n);
        fused.m.check();
        step.m.check();
        expect(fused.state()).toEqual(step.state());
      }),
      { numRuns: 150 },
    );
  });

  it("pinned and shared pages are restored the same way, and the rest moves", () => {
    for (const side of [new Side(false), new Side(true)]) {
      side.run({ kind: "touch", first: 0, n: 40, write: true }, 5n);
      side.run({ kind: "pin", vpn: 3 }, 0n);
      side.run({ kind: "fork" }, 0n);
      side.run({ kind: "touch", first: 8, n: 8, write: true }, 100n);
      const [cpages] = side.run({ kind: "migrate", first: 0, n: 40, toDevice: true, failFirst: true, holes: true }, 0n) as [number];
      // vpn 3 is pinned; the fork shares 0..7 and 16..39, which the rmap walk unmaps in the child too.
      expect(cpages).toBe(39);
      side.run({ kind: "unpin" }, 0n);
      side.m.check();
      expect(side.m.counters().pgmigrate_success).toBe(38);
      expect(side.m.counters().pgmigrate_fail).toBe(1);
    }
  });
});
