// Property tests: random sequences of mmap/munmap/mprotect/mremap/madvise/fork/exit and
// CPU accesses over several processes, run on the emulator and on a shadow model of the
// memory contents (test/shadow.ts), with machine.check() after every operation.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, MREMAP_MAYMOVE,
} from "../src/index.js";
import { errorOf } from "./drivers.js";
import { type Mode, type Op, type AccSpec, type RunConfig, runSequence, newTotals } from "./shadow.js";
import type { InjectionSpec } from "../src/index.js";

// ---- generators -------------------------------------------------------------------

const pidSel = fc.nat(15);
/** Out of 10: how often the address is a mapped page, and how often one that holds data. */
const sel = (mapped: number, written = 0) =>
  fc.record({ kind: fc.nat(9).map((x): 0 | 1 | 2 => (x < written ? 2 : x < mapped ? 1 : 0)), n: fc.nat(100_000) });
const pagesArb = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 1, max: 8 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }) },
);
const protArb = fc.oneof({ weight: 3, arbitrary: fc.constant(3) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }) });
const offArb = fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.nat(4095) });
const lenArb = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 9000 }) });
const tagArb = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });
const baseArb = fc.bigInt({ min: 0n, max: (1n << 64n) - 32n });

function accessArb(mode: Mode): fc.Arbitrary<AccSpec> {
  const at = sel(9, 4);
  const tagOps: fc.Arbitrary<AccSpec>[] = [
    fc.record({ k: fc.constant("writeTag" as const), at, off: offArb, tag: tagArb }),
    fc.record({ k: fc.constant("readTag" as const), at, off: offArb }),
    fc.record({ k: fc.constant("touch" as const), at, npages: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 24 })), write: fc.boolean(), base: baseArb }),
  ];
  if (mode === "tags") return fc.oneof(...tagOps);
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ k: fc.constant("write" as const), at, off: offArb, len: lenArb, seed: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant("read" as const), at, off: offArb, len: lenArb }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant("writeU32" as const), at, off: offArb, value: fc.nat({ max: 2 ** 32 - 1 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("readU32" as const), at, off: offArb }) },
    ...tagOps.map((arbitrary) => ({ weight: 1, arbitrary })),
  );
}

function opArb(mode: Mode, small: boolean): fc.Arbitrary<Op> {
  const p = pidSel;
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({
      op: fc.constant("mmap" as const), p, at: sel(2), pages: pagesArb, prot: protArb, shared: fc.nat(2).map((x) => x === 0),
      mode: fc.constantFrom(0 as const, 0 as const, 1 as const, 2 as const), populate: fc.nat(3).map((x) => x === 0),
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("munmap" as const), p, at: sel(5, 1), pages: pagesArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("mprotect" as const), p, at: sel(7), pages: pagesArb, prot: protArb }) },
    { weight: small ? 4 : 2, arbitrary: fc.record({ op: fc.constant("madvise" as const), p, at: sel(8, 3), pages: pagesArb, free: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({
      op: fc.constant("mremap" as const), p, at: sel(8, 3), oldPages: pagesArb, newPages: pagesArb,
      mode: fc.constantFrom(0 as const, 1 as const, 1 as const, 2 as const), dest: sel(3),
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("fork" as const), p, sample: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const), p }) },
    { weight: 1, arbitrary: fc.constant({ op: "spawn" as const }) },
    { weight: 10, arbitrary: fc.record({ op: fc.constant("access" as const), p, batch: fc.boolean(),
      list: fc.array(accessArb(mode), { minLength: 1, maxLength: 4 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("verify" as const), p, at: sel(8, 4), pages: fc.integer({ min: 1, max: 12 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("bad" as const), p, variant: fc.nat(6), at: sel(7) }) },
    { weight: small ? 2 : 0, arbitrary: fc.record({ op: fc.constant("pressure" as const), p,
      pages: fc.integer({ min: 8, max: 64 }), keep: fc.nat(3).map((x) => x === 0) }) },
  );
}

/** MMEMU_PROPERTY_SCALE=20 runs twenty times as many sequences (for bug hunting). */
const SCALE = Number(process.env.MMEMU_PROPERTY_SCALE ?? 1);

const CONFIGS: { name: string; cfg: RunConfig; runs: number; maxOps: number }[] = [
  { name: "bytes, big machine", runs: 60, maxOps: 60,
    cfg: { mode: "bytes", small: false, window: 128, machine: { nodes: [{ normal: 16384 }] } } },
  { name: "tags, big machine", runs: 80, maxOps: 60,
    cfg: { mode: "tags", small: false, window: 128, machine: { nodes: [{ normal: 16384 }] } } },
  { name: "bytes, small machine (ENOMEM, MADV_FREE reclaim)", runs: 60, maxOps: 60,
    cfg: { mode: "bytes", small: true, window: 64, machine: { nodes: [{ normal: 64 }], minFreeKbytes: 32 } } },
  { name: "tags, small machine (ENOMEM, MADV_FREE reclaim)", runs: 60, maxOps: 60,
    cfg: { mode: "tags", small: true, window: 64, machine: { nodes: [{ normal: 64 }], minFreeKbytes: 32 } } },
  { name: "tags, tiny page-table pool (ENOMEM from tables)", runs: 60, maxOps: 60,
    cfg: { mode: "tags", small: true, window: 64, machine: { nodes: [{ normal: 1024 }], tablePages: 24 } } },
];

describe("property: random VM operations against a shadow model", () => {
  for (const [index, { name, cfg, runs, maxOps }] of CONFIGS.entries()) {
    it(name, () => {
      const totals = newTotals();
      fc.assert(
        fc.property(fc.array(opArb(cfg.mode, cfg.small), { minLength: 1, maxLength: maxOps, size: "max" }), (ops) => runSequence(ops, cfg, totals)),
        // A failure is still reported (with the counterexample shrunk so far) if shrinking runs long.
        // Seeded, so the coverage checks below see the same programs every run.
        { seed: 0x5eed + index, numRuns: Math.max(1, Math.round(runs * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 20_000 },
      );
      if (process.env.MMEMU_PROPERTY_SCALE) console.log(`${name}: ${JSON.stringify(totals)}`);
      // The runs must reach the paths they exist for (each count is in the hundreds per property).
      expect(totals.accesses).toBeGreaterThan(0);
      expect(totals.faults).toBeGreaterThan(0);
      expect(totals.refused).toBeGreaterThan(0);
      expect(totals.cowFaults).toBeGreaterThan(0);
      if (cfg.small) expect(totals.enomem).toBeGreaterThan(0);
    });
  }
});

// Seeded random allocation failures (machine.inject) on a roomy machine: every ENOMEM comes
// from an injected fault, and the shadow still holds every byte.
const injectArb: fc.Arbitrary<InjectionSpec[]> = fc.array(fc.oneof(
  fc.record({ site: fc.constant("alloc" as const), probability: fc.double({ min: 0, max: 0.3, noNaN: true }), seed: fc.nat(), times: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ site: fc.constant("alloc" as const), nth: fc.integer({ min: 1, max: 60 }), times: fc.integer({ min: 1, max: 5 }) }),
), { minLength: 1, maxLength: 3 });

describe("property: random VM operations with injected allocation failures", () => {
  for (const mode of ["tags", "bytes"] as const) {
    it(`${mode}: contents survive every ENOMEM, check() holds`, () => {
      const totals = newTotals();
      const cfg: RunConfig = { mode, small: true, window: 64, machine: { nodes: [{ normal: 4096 }] } };
      fc.assert(
        fc.property(fc.array(opArb(mode, false), { minLength: 1, maxLength: 40, size: "max" }), injectArb,
          (ops, inject) => runSequence(ops, { ...cfg, inject }, totals)),
        { seed: 0x1a7ec7 + mode.length, numRuns: Math.max(1, Math.round(30 * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 20_000 },
      );
      expect(totals.enomem).toBeGreaterThan(0);
      expect(totals.accesses).toBeGreaterThan(0);
    });
  }
});

// Minimal sequences of bugs the properties (or reading the code while writing them) found.
describe("property regressions", () => {
  it("a fault that runs out of page tables half-way leaves no table behind at exit", () => {
    // walkPte allocated a PUD table, failed on the PMD one; exit's free_pgtables skipped
    // the PUD (its PMD slot was empty), leaking it: check() reported 0 tables reachable, 1 accounted.
    const m = Machine.create({ nodes: [{ normal: 1024 }], tablePages: 16 });
    const p = m.spawn();
    const rw = PROT_READ | PROT_WRITE;
    const fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    p.mmap(0x10000000, 12 << 21, rw, fixed);
    p.mmap(0x8000000000, PAGE_SIZE, rw, fixed); // another PGD slot: needs a new PUD, PMD and PTE table
    for (let i = 0; i < 12; i++) p.writeU32(0x10000000 + i * (1 << 21), i + 1); // pgd + pud + pmd + 12 pte tables = 15 of 16
    expect(errorOf(() => p.writeU32(0x8000000000, 1)).code).toBe("ENOMEM");
    m.check();
    for (let i = 0; i < 12; i++) expect(p.readU32(0x10000000 + i * (1 << 21))).toBe(i + 1);
    p.exit();
    m.check();
    expect(m.counters().nr_page_table_pages).toBe(0);
  });

  it("mremap(MREMAP_MAYMOVE) picks a target that does not overlap the range it moves", () => {
    // The target was searched with the old range already cut out, so growing the first
    // pages of a mapping could land on top of them and zap them before the move.
    const m = Machine.create({ nodes: [{ normal: 1024 }] });
    const p = m.spawn();
    const a = p.mmap(0, 10 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeU32(a, 111);
    p.writeU32(a + PAGE_SIZE, 222);
    const b = p.mremap(a, 2 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE);
    m.check();
    expect(b + 4 * PAGE_SIZE <= a || b >= a + 2 * PAGE_SIZE).toBe(true);
    expect([p.readU32(b), p.readU32(b + PAGE_SIZE), p.readU32(b + 2 * PAGE_SIZE)]).toEqual([111, 222, 0]);
    p.exit();
    m.check();
  });

  it("a shared anonymous mapping grown by mremap faults SIGBUS past the object's end", () => {
    // mmap sizes the shmem object to the mapping (shmem_zero_setup); mremap never changes
    // i_size, and shmem_get_folio_gfp refuses an index at or past it: VM_FAULT_SIGBUS.
    // Offsets inside the size still show the object's pages, even ones unmapped for a while.
    const m = Machine.create({ nodes: [{ normal: 1024 }] });
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    p.writeU32(a + PAGE_SIZE, 7);
    expect(p.mremap(a, 2 * PAGE_SIZE, PAGE_SIZE)).toBe(a);
    const b = p.mremap(a, PAGE_SIZE, 3 * PAGE_SIZE, MREMAP_MAYMOVE);
    m.check();
    expect(p.readU32(b + PAGE_SIZE)).toBe(7);
    for (const access of [() => p.readU32(b + 2 * PAGE_SIZE), () => p.writeU32(b + 2 * PAGE_SIZE, 1)]) {
      const err = errorOf(access);
      expect(err.code).toBe("SIGBUS");
      expect(err.fault?.si_code).toBe("BUS_ADRERR");
      expect(err.fault?.addr).toBe(b + 2 * PAGE_SIZE);
    }
    m.check();
    p.exit();
    m.check();
    expect(m.counters().nr_shmem).toBe(0);
  });
});
