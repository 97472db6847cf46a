// Property tests of compaction, CMA allocation and memory offline: random sequences of
// mmap/write/munmap/fork/exit mixed with compactZone/compactNode/compactMemory, cmaAlloc and
// cmaRelease, offlinePages and onlinePages, some of them while pages are pinned (extra
// references via machine.page.get/put). The shadow model of test/shadow.ts says what every
// page must hold; machine.check() runs after every operation. Every page's contents must
// survive (including what a driver wrote into its CMA allocations), pinned pages never move,
// failures name only pages that really cannot move, and a failed operation takes nothing.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Machine, PAGE_SIZE, PROT_READ, PROT_WRITE, PageFailureError, MmError, type MachineConfig, type PageFailure } from "../src/index.js";
import { Shadow, type ShadowProc, type Mode, BASE_VPN } from "./shadow.js";
import { pfnOf } from "./compact-helpers.js";

const WINDOW = 1024;
const MAX_PROCS = 4;

// node 0: ZONE_NORMAL [0, 2048) with a CMA area at [1536, 2048); node 1: ZONE_NORMAL
// [2048, 3072) and ZONE_MOVABLE [3072, 4096) with a CMA area at [3584, 4096).
const MACHINE: MachineConfig = {
  nodes: [{ normal: 2048 }, { normal: 1024, movable: 1024 }],
  cma: [{ node: 0, pages: 512 }, { node: 1, zone: "movable", pages: 512 }],
};

type Inner =
  | { k: "compact"; scope: 0 | 1 | 2; idx: number; order: number }
  | { k: "cma"; area: number; count: number; align: number }
  | { k: "offline"; zone: number; block: number; blocks: number };

type Op =
  | { op: "mmap"; p: number; at: number; pages: number; shared: boolean; populate: boolean }
  | { op: "write"; p: number; at: number; npages: number; base: bigint }
  | { op: "munmap"; p: number; at: number; pages: number }
  | { op: "fork"; p: number }
  | { op: "exit"; p: number }
  | { op: "release"; which: number; twice: boolean }
  | { op: "online"; which: number }
  /** `inner` with pages pinned: picked among all the process's pages, or (aim) among those `inner` must move. */
  | { op: "run"; inner: Inner; pins: number[]; aim: boolean; p: number };

const innerArb: fc.Arbitrary<Inner> = fc.oneof(
  fc.record({ k: fc.constant("compact" as const), scope: fc.constantFrom(0 as const, 0 as const, 1 as const, 2 as const), idx: fc.nat(3), order: fc.integer({ min: -1, max: 10 }) }),
  fc.record({ k: fc.constant("cma" as const), area: fc.nat(1), count: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 512 }), fc.constant(512)), align: fc.nat(9) }),
  // Node 0's process pages live in zone 0 mostly: offline aims there more often.
  fc.record({ k: fc.constant("offline" as const), zone: fc.constantFrom(0, 0, 0, 1, 2), block: fc.nat(3), blocks: fc.integer({ min: 1, max: 2 }) }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("mmap" as const), p: fc.nat(7), at: fc.nat(WINDOW - 1), pages: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 400 })), shared: fc.boolean(), populate: fc.boolean() }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("write" as const), p: fc.nat(7), at: fc.nat(1000), npages: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 256 })), base: fc.bigInt({ min: 1n, max: 1n << 60n }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("munmap" as const), p: fc.nat(7), at: fc.nat(1000), pages: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("fork" as const), p: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const), p: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("release" as const), which: fc.nat(7), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("online" as const), which: fc.nat(7) }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("run" as const), inner: innerArb, pins: fc.array(fc.nat(1000), { maxLength: 3 }), aim: fc.nat(3).map((x) => x > 0), p: fc.nat(7) }) },
);

interface CmaRun {
  area: number;
  pfn: number;
  count: number;
  /** Tags a driver wrote into some of the pages: they must never change. */
  tags: Map<number, bigint>;
}

class Run {
  readonly m: Machine;
  readonly sh: Shadow;
  readonly cma: CmaRun[] = [];
  readonly offline: { start: number; n: number }[] = [];
  readonly stats = { compactions: 0, compacted: 0, migrated: 0, cmaOk: 0, cmaFail: 0, offlineOk: 0, offlineFail: 0, pinnedFailures: 0, pinnedOps: 0 };
  private nextTag = 1n << 62n;

  constructor(mode: Mode) {
    this.m = Machine.create({ ...MACHINE, content: mode });
    this.sh = new Shadow(this.m, mode, { small: true });
    this.sh.spawn();
  }

  proc(i: number): ShadowProc | undefined {
    if (this.sh.procs.length === 0 && !this.sh.spawn()) return undefined;
    return this.sh.procs[i % this.sh.procs.length];
  }

  /** A mapped page of `sp`, picked by `n`, or a page of the window. */
  vpnOf(sp: ShadowProc, n: number): number {
    const vpns = sp.vpns();
    return vpns.length > 0 ? vpns[n % vpns.length]! : BASE_VPN + (n % WINDOW);
  }

  step(op: Op): void {
    const m = this.m;
    switch (op.op) {
      case "mmap": {
        const sp = this.proc(op.p);
        if (sp) this.sh.mmap(sp, BASE_VPN + op.at, Math.min(op.pages, WINDOW - op.at), PROT_READ | PROT_WRITE, op.shared, 2, op.populate);
        break;
      }
      case "write": {
        const sp = this.proc(op.p);
        if (!sp) break;
        const vpn = this.vpnOf(sp, op.at);
        this.sh.access(sp, [{ k: "touch", addr: vpn * PAGE_SIZE, npages: op.npages, write: true, base: op.base }], false);
        break;
      }
      case "munmap": {
        const sp = this.proc(op.p);
        if (sp) this.sh.munmap(sp, this.vpnOf(sp, op.at), op.pages);
        break;
      }
      case "fork": {
        const sp = this.proc(op.p);
        if (sp && this.sh.procs.length < MAX_PROCS) this.sh.fork(sp);
        break;
      }
      case "exit": {
        const sp = this.proc(op.p);
        if (sp && this.sh.procs.length > 1) this.sh.exit(sp);
        break;
      }
      case "release": {
        if (this.cma.length === 0) break;
        const r = this.cma.splice(op.which % this.cma.length, 1)[0]!;
        this.checkCmaTags(r);
        m.cmaRelease(r.area, r.pfn, r.count);
        if (op.twice) {
          const err = errorOf(() => m.cmaRelease(r.area, r.pfn, r.count));
          expect(err?.code).toBe("EINVAL");
        }
        break;
      }
      case "online": {
        if (this.offline.length === 0) break;
        const r = this.offline.splice(op.which % this.offline.length, 1)[0]!;
        m.onlinePages(r.start, r.n);
        break;
      }
      case "run":
        this.runPinned(op);
        break;
    }
    m.check();
    this.checkAllocatorShadow();
  }

  /** The inner operation with up to three mapped pages pinned; pinned pages must not move. */
  private runPinned(op: Extract<Op, { op: "run" }>): void {
    const m = this.m;
    // Present PTEs only (bit 0), never the zero page.
    const present = this.sh.procs.flatMap((sp) => sp.vpns().map((vpn) => ({ sp, vpn, pfn: pfnOf(sp.p.pte(vpn * PAGE_SIZE)), pte: sp.p.pte(vpn * PAGE_SIZE) })))
      .filter((x) => (x.pte & 1n) !== 0n && x.pfn !== 0);
    let inner = op.inner;
    // Aimed at a page: offline its pageblock (one that may go offline: not the zero page's, not CMA).
    const offlinable = present.filter((x) => x.pfn >= 512 && !m.pageIsCma(x.pfn));
    if (op.aim && inner.k === "offline" && op.pins.length > 0 && offlinable.length > 0) {
      const pfn = offlinable[op.pins[0]! % offlinable.length]!.pfn;
      const z = m.zones().findIndex((x) => pfn >= x.start && pfn < x.end);
      inner = { ...inner, zone: z, block: Math.floor(pfn / 512) - Math.ceil(m.zones()[z]!.start / 512), blocks: 1 };
    }
    const [lo, hi] = this.target(inner);
    const aimed = present.filter((x) => x.pfn >= lo && x.pfn < hi);
    const pool = op.aim && aimed.length > 0 ? aimed : present;
    const pins: typeof present = [];
    for (const n of op.pins) {
      const x = pool[n % Math.max(1, pool.length)];
      if (!x || pins.some((y) => y.pfn === x.pfn)) continue;
      pins.push(x);
      m.page.get(x.pfn);
    }
    if (pins.length > 0) this.stats.pinnedOps++;
    const pinned = new Set(pins.map((x) => x.pfn));
    try {
      this.inner(inner, pinned);
    } finally {
      for (const x of pins) {
        // Still mapped where it was: nothing moved a pinned page.
        expect(pfnOf(x.sp.p.pte(x.vpn * PAGE_SIZE)), `pinned pfn ${x.pfn}`).toBe(x.pfn);
        m.page.put(x.pfn);
      }
    }
  }

  /** The pfns an operation must empty: a CMA area, or the offline range. */
  private target(op: Inner): [number, number] {
    if (op.k === "cma") {
      const a = this.m.config.cma[op.area]!;
      return [a.base, a.base + a.pages];
    }
    if (op.k === "offline") {
      const [start, n] = this.offlineRange(op);
      return [start, start + n];
    }
    return [0, 0];
  }

  private offlineRange(op: Extract<Inner, { k: "offline" }>): [number, number] {
    const z = this.m.zones()[op.zone % this.m.zones().length]!;
    return [Math.ceil(z.start / 512) * 512 + op.block * 512, op.blocks * 512];
  }

  private inner(op: Inner, pinned: Set<number>): void {
    const m = this.m;
    if (op.k === "compact") {
      const rs = op.scope === 0 ? [m.compactZone(op.idx % m.zones().length, op.order)]
        : op.scope === 1 ? m.compactNode(op.idx % 2, op.order) : m.compactMemory();
      this.stats.compactions++;
      for (const r of rs) {
        expect(r.isolated).toBe(r.migrated + r.failed);
        this.stats.compacted += r.migrated;
      }
      return;
    }
    if (op.k === "cma") {
      const area = m.cmaAreas()[op.area]!;
      const count = Math.min(op.count, area.pages);
      let pfn: number;
      try {
        pfn = m.cmaAlloc(op.area, count, op.align);
      } catch (e) {
        this.failed(e, pinned);
        this.stats.cmaFail++;
        return;
      }
      this.stats.cmaOk++;
      expect(pfn % 2 ** op.align).toBe(0);
      expect(pfn >= area.base && pfn + count <= area.base + area.pages).toBe(true);
      for (let i = 0; i < count; i++) expect(pinned.has(pfn + i)).toBe(false);
      const tags = new Map<number, bigint>();
      for (const i of [0, count >> 1, count - 1]) {
        const tag = this.nextTag++;
        m.page.writeTag(pfn + i, tag);
        tags.set(pfn + i, tag);
      }
      this.cma.push({ area: op.area, pfn, count, tags });
      return;
    }
    const z = m.zones()[op.zone % m.zones().length]!;
    const [start, n] = this.offlineRange(op);
    if (start + n > z.end || this.offline.some((r) => start < r.start + r.n && r.start < start + n)) return;
    try {
      m.offlinePages(start, n);
    } catch (e) {
      this.failed(e, pinned);
      this.stats.offlineFail++;
      return;
    }
    this.stats.offlineOk++;
    for (const p of pinned) expect(p >= start && p < start + n).toBe(false);
    this.offline.push({ start, n });
  }

  /** A failure names only pages that really cannot move. */
  private failed(e: unknown, pinned: Set<number>): void {
    if (!(e instanceof PageFailureError)) throw e;
    expect(["EBUSY", "ENOMEM"]).toContain(e.code);
    for (const f of e.failures as PageFailure[]) {
      if (f.kind === "pinned") {
        expect(pinned.has(f.pfn), `pfn ${f.pfn} reported pinned`).toBe(true);
        this.stats.pinnedFailures++;
      } else if (f.kind === "unmovable") {
        expect(this.cma.some((r) => f.pfn >= r.pfn && f.pfn < r.pfn + r.count), `pfn ${f.pfn} reported unmovable`).toBe(true);
      } else if (f.kind === "reserved") {
        expect(f.pfn).toBe(0);
      } else if (f.kind === "cma") {
        expect(this.m.pageIsCma(f.pfn)).toBe(true);
      } else {
        expect(["nomem", "migration"]).toContain(f.kind);
      }
    }
  }

  private checkCmaTags(r: CmaRun): void {
    for (const [pfn, tag] of r.tags) expect(this.m.page.readTag(pfn), `CMA page ${pfn}`).toBe(tag);
  }

  /** CMA allocations and offline ranges are what the shadow says, and CMA pages keep what was written. */
  checkAllocatorShadow(): void {
    const areas = this.m.cmaAreas();
    for (const a of areas) expect(a.allocated).toBe(this.cma.filter((r) => r.area === a.index).reduce((s, r) => s + r.count, 0));
    for (const r of this.cma) this.checkCmaTags(r);
    const zones = this.m.zones();
    expect(zones.reduce((s, z) => s + z.offline, 0)).toBe(this.offline.reduce((s, r) => s + r.n, 0));
  }

  finish(): void {
    this.sh.verifyAll();
    this.stats.migrated = this.m.counters().pgmigrate_success;
    for (const r of [...this.cma]) {
      this.checkCmaTags(r);
      this.m.cmaRelease(r.area, r.pfn, r.count);
    }
    for (const r of this.offline) this.m.onlinePages(r.start, r.n);
    this.m.check();
    while (this.sh.procs.length > 0) this.sh.exit(this.sh.procs[0]!);
    this.m.check();
    const c = this.m.counters();
    expect(c.nr_anon_pages).toBe(0);
    expect(c.nr_free_pages).toBe(4095);
    expect(c.nr_free_cma).toBe(1024);
  }
}

function errorOf(call: () => unknown): MmError | undefined {
  try {
    call();
  } catch (e) {
    if (e instanceof MmError) return e;
    throw e;
  }
  return undefined;
}

const SCALE = Number(process.env.MMEMU_PROPERTY_SCALE ?? 1);

describe("property: compaction, CMA and memory offline against a shadow model", () => {
  for (const { mode, runs, maxOps } of [{ mode: "tags" as const, runs: 40, maxOps: 50 }, { mode: "bytes" as const, runs: 15, maxOps: 40 }]) {
    it(`${mode} mode`, () => {
      const totals = { compactions: 0, compacted: 0, migrated: 0, cmaOk: 0, cmaFail: 0, offlineOk: 0, offlineFail: 0, pinnedFailures: 0, pinnedOps: 0 };
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: maxOps, size: "max" }), (ops) => {
          const run = new Run(mode);
          for (const op of ops) run.step(op);
          run.finish();
          for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += run.stats[k];
        }),
        // Seeded, so the coverage checks below see the same programs every run.
        { seed: mode === "tags" ? 0xc0a1 : 0xc0a2, numRuns: Math.max(1, Math.round(runs * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 60_000 },
      );
      if (process.env.MMEMU_PROPERTY_SCALE) console.log(`${mode}: ${JSON.stringify(totals)}`);
      // The runs reach what they exist for.
      expect(totals.migrated).toBeGreaterThan(0);
      expect(totals.cmaOk).toBeGreaterThan(0);
      expect(totals.offlineOk + totals.offlineFail).toBeGreaterThan(0);
      if (mode === "tags") {
        expect(totals.compacted).toBeGreaterThan(0);
        expect(totals.offlineOk).toBeGreaterThan(0);
        expect(totals.pinnedFailures).toBeGreaterThan(0);
      }
    });
  }
});
