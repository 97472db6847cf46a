// pin-storm: long-lived holders of user pages (RDMA, zram, aio-like subsystems) against the
// kernel's users of page migration: compaction, CMA allocation, memory offline. Round by
// round the same random program runs once per holder mode: plain FOLL_GET references, held
// long as kernel subsystems used to; FOLL_PIN|FOLL_LONGTERM, which moves pages out of
// ZONE_MOVABLE and CMA before pinning; and the pin control subsystem (seed 003), whose holders
// are asked to follow their pages. A working process fills most of node 0 (a ballast process
// interleaved with it exits, leaving every pageblock half used), holders hold random ranges
// of its pages and keep their own pfn tables, the kernel side compacts, allocates from CMA,
// offlines a pageblock of each zone, and undoes what succeeded; then CPU and holder (DMA)
// accesses go on, and every holder table entry must still be the mapped page with the last
// contents written. The report compares the modes. Holds and the kernel's calls are not
// ops of the stream (so there is nothing to record); the processes' ops run through exec.
import { Rng } from "../../random.js";
import { PAGE_SIZE } from "../../constants.js";
import { FOLL_LONGTERM, FOLL_WRITE } from "../../pin/flags.js";
import { PageFailureError } from "../../isolation.js";
import { scanRange } from "../../isolation.js";
import { PAGEBLOCK_NR_PAGES } from "../../config.js";
import type { PinpageSystem } from "../../pin/pinpage.js";
import type { Machine } from "../../machine.js";
import type { Process } from "../../process.js";
import { InputError } from "../machine-spec.js";
import { StressFailure, type Region, type World } from "../world.js";
import { OP_CPU_READ, OP_CPU_WRITE, OP_EXIT, OP_MMAP, OP_SPAWN, MAX_REGION_PAGES } from "../ops.js";
import { PIN_STORM_MODES, emptyMode, type PinStormMode, type PinStormModeName, type PinStormOutcome, type PinStormReport } from "../pinstorm.js";
import { idleAccesses, guardRound, type Emitter, type Generator, type Scenario } from "./common.js";

const HOLDERS = ["rdma", "zram", "aio"] as const;
/** Holders hold this share of the working region together (each a third of it). */
const HELD_SHARE = 1 / 8;
const MAX_HOLD_RANGE = 32;
/** The working process and the ballast write their pages in turns of this many. */
const STRIPE = 16;
/** Compaction is asked for a free block of this order (MAX_ORDER: two pageblocks). */
const COMPACT_ORDER = 10;
/** CMA allocations are pageblock-aligned. */
const CMA_ALIGN = 9;
/** CPU accesses after the kernel side, per page of the working region. */
const CPU_SHARE = 1 / 4;
/** Holder (DMA) stores, per held page. */
const DMA_WRITE_SHARE = 1 / 4;
/** Region size the processes map at most in one mmap. */
const REGION_MAX = Math.min(32768, MAX_REGION_PAGES);
/** The smallest working set a round runs with. */
const MIN_PAGES = 256;
const BYSTANDER_PAGES = 64;

/**
 * The ops of one round (every mode) with a working set of `pages`: per mode two spawns, the
 * mmaps, the working set's and the ballast's writes, the ballast's exit, the CPU accesses,
 * the read-back and the exit.
 */
function roundOps(pages: number): number {
  const regions = Math.ceil(pages / REGION_MAX);
  return PIN_STORM_MODES.length * (2 + 2 * regions + 2 * pages + 1 + Math.floor(pages * CPU_SHARE) + pages + 1);
}

export const pinStorm: Scenario = {
  name: "pin-storm",
  summary: "long-lived holders vs compaction, CMA and memory offline: FOLL_GET vs FOLL_LONGTERM vs the pin control subsystem",
  needs: [],
  needsCma: true,
  scheduled: true,
  create(w: World, rng: Rng): Generator {
    return new PinStorm(w, rng.int(2 ** 31));
  },
};

/** One table entry of a holder: which page of the working set, and where the holder thinks it is. */
interface Holder {
  name: string;
  /** Global page index into the working set, and the pfn the holder keeps, per entry. */
  pages: number[];
  pfns: number[];
  /** The pfns each hold call returned (for the release). */
  index: Map<number, number>;
  sys: PinpageSystem<number> | null;
}

class PinStorm implements Generator {
  private ready = false;
  /** The working set of a full round (from the machine's size), and of the round running now. */
  private fullPages = 0;
  private workPages = 0;
  private heldPerHolder = 0;
  /** The largest round run so far (what the report describes). */
  private ranPages = 0;
  private ranHeld = 0;
  private cmaPages = 0;
  private round = 0;
  /** A process that lives through the whole run; ops too few for another round go to it. */
  private bystander: Region | null = null;
  private lostBytes = 0;
  private readonly modes = PIN_STORM_MODES.map(emptyMode);

  constructor(private readonly world: World, private readonly seed: number) {}

  step(e: Emitter): void {
    if (!this.ready && !this.setup(e)) return e.skip();
    // A full round if the ops left allow; a smaller one when a full one never fits (a short
    // run), so rounds of different sizes never mix; else CPU accesses of the bystander.
    let pages = this.fullPages;
    while (this.round === 0 && pages >= MIN_PAGES && roundOps(pages) > e.left) pages = Math.floor(pages / 2 / STRIPE) * STRIPE;
    if (roundOps(pages) > e.left) return this.idle(e);
    if (pages < MIN_PAGES) return this.idle(e);
    this.workPages = pages;
    this.heldPerHolder = Math.floor((pages * HELD_SHARE) / HOLDERS.length);
    if (pages > this.ranPages) {
      this.ranPages = pages;
      this.ranHeld = this.heldPerHolder;
    }
    const roundSeed = new Rng(this.seed + this.round * 0x9e3779b9).int(2 ** 31);
    PIN_STORM_MODES.forEach((mode, i) => this.guard(mode, () => this.runMode(e, mode, this.modes[i]!, roundSeed)));
    this.round++;
  }

  pinStorm(): PinStormReport | undefined {
    if (this.ranPages === 0) return undefined;
    return {
      rounds: this.round, holders: HOLDERS.length, regionPages: this.ranPages, heldPerHolder: this.ranHeld,
      compactOrder: COMPACT_ORDER, cmaPages: this.cmaPages, modes: this.modes.map((m) => structuredClone(m)), lostBytes: this.lostBytes,
    };
  }

  private get m(): Machine {
    return this.world.machine;
  }

  /**
   * The bystander, then the sizes from the machine as it is: a round's processes fill node 0
   * until CMA pages are in use too. False when the run is too short for the bystander.
   */
  private setup(e: Emitter): boolean {
    const m = this.m;
    const area = m.cmaAreas()[0];
    if (!area) throw new InputError(`scenario "pin-storm" needs a CMA area (the machine's "cma" field); the machine has none`);
    if (e.left < 2 + BYSTANDER_PAGES) return false;
    this.ready = true;
    e.op(OP_SPAWN);
    e.op(OP_MMAP, this.world.procs.length - 1, BYSTANDER_PAGES, 0);
    this.bystander = this.world.regions[this.world.regions.length - 1]!;
    for (let p = 0; p < BYSTANDER_PAGES; p++) e.op(OP_CPU_WRITE, this.bystander.slot, p);
    this.world.flush();
    this.cmaPages = area.pages;
    const zones = m.zones().filter((z) => z.node === area.node);
    const normal = zones.find((z) => z.name === "Normal")!;
    const free = zones.reduce((s, z) => s + z.free, 0);
    // The allocator takes CMA pages for movable requests once they are more than half of a
    // zone's free pages: filling until little more than the watermarks is left free puts
    // much of the area to use. Page tables need a margin too.
    const margin = 2 * normal.wmarkHigh + Math.ceil(free / 256) + 64;
    const fill = Math.max(0, free - margin);
    this.fullPages = Math.floor(fill / 2 / STRIPE) * STRIPE;
    return true;
  }

  /** Ops too few for a round: CPU reads and writes of the bystander's pages. */
  private idle(e: Emitter): void {
    idleAccesses(e, this.bystander!, this.seed ^ this.world.ops);
  }

  /** Runs a mode's part of a round: a finding is a StressFailure; any other error is one of kind "error". */
  private guard(mode: PinStormModeName, fn: () => void): void {
    guardRound(this.world, `${mode} holders`, fn);
  }

  private runMode(e: Emitter, mode: PinStormModeName, tally: PinStormMode, roundSeed: number): void {
    const w = this.world;
    const m = this.m;
    const rng = new Rng(roundSeed);
    // ---- the processes: the working set and the ballast, written stripe by stripe.
    e.op(OP_SPAWN);
    const workSlot = w.procs.length - 1;
    e.op(OP_SPAWN);
    const ballastSlot = w.procs.length - 1;
    const work = this.mapAll(e, workSlot, this.workPages);
    const ballast = this.mapAll(e, ballastSlot, this.workPages);
    for (let p = 0; p < this.workPages; p += STRIPE) {
      for (let k = 0; k < STRIPE; k++) this.write(e, work, p + k);
      for (let k = 0; k < STRIPE; k++) this.write(e, ballast, p + k);
    }
    e.op(OP_EXIT, ballastSlot);
    w.flush();
    const proc = w.procs[workSlot]!;

    // ---- the holders take their holds: the same ranges in every mode.
    const holders = HOLDERS.map((name): Holder => ({ name, pages: [], pfns: [], index: new Map(), sys: null }));
    const migratedBefore = m.counters().pgmigrate_success;
    for (const h of holders) {
      if (mode === "pinpage") {
        h.sys = m.registerPinpage<number>(`${h.name}-${this.round}`, {
          migrate: (_sys, pfn, newPfn) => {
            const i = h.index.get(pfn);
            if (i === undefined) return -14; // -EFAULT: not ours (the run's check below would say so)
            h.index.delete(pfn);
            h.index.set(newPfn, i);
            h.pfns[i] = newPfn;
            tally.holderMoves++;
            return 0;
          },
        });
      }
      this.hold(proc, work, h, mode, rng, tally);
    }
    if (mode === "longterm") tally.longtermMigrated += m.counters().pgmigrate_success - migratedBefore;
    this.verifyHolders(work, holders, mode, "after taking the holds", tally);

    // ---- the kernel side.
    const kernelBefore = m.counters().pgmigrate_success;
    const undo: (() => void)[] = [];
    this.compact("Movable", tally.compactMovable, tally);
    this.compact("Normal", tally.compactNormal, tally);
    const cmaPfn = this.attempt(tally.cma, tally, () => m.cmaAlloc(0, this.cmaPages, CMA_ALIGN));
    if (cmaPfn !== null) undo.push(() => m.cmaRelease(0, cmaPfn, this.cmaPages));
    for (const [zoneName, outcome] of [["Movable", tally.offlineMovable], ["Normal", tally.offlineNormal]] as const) {
      const pick = rng.next();
      const start = this.offlineTarget(zoneName, pick);
      if (start < 0) continue;
      const r = this.attempt(outcome, tally, () => m.offlinePages(start, PAGEBLOCK_NR_PAGES));
      if (r) {
        outcome.migrated += r.migrated;
        undo.push(() => m.onlinePages(start, PAGEBLOCK_NR_PAGES));
      }
    }
    tally.pagesMigrated += m.counters().pgmigrate_success - kernelBefore;
    w.check();
    this.verifyHolders(work, holders, mode, "after compaction, CMA and offline", tally);
    for (const u of undo.reverse()) u();

    // ---- the holders' DMA stores, then the CPU's accesses; everyone must see everyone's writes.
    for (const h of holders) {
      for (let i = 0; i < h.pages.length; i++) {
        if (rng.next() >= DMA_WRITE_SHARE) continue;
        const tag = w.freshTag();
        m.page.writeTag(h.pfns[i]!, BigInt(tag));
        this.regionOf(work, h.pages[i]!).r.shadow[this.regionOf(work, h.pages[i]!).page] = tag;
      }
    }
    const cpu = Math.floor(this.workPages * CPU_SHARE);
    for (let i = 0; i < cpu; i++) {
      const { r, page } = this.regionOf(work, rng.int(this.workPages));
      e.op(rng.int(2) === 0 ? OP_CPU_WRITE : OP_CPU_READ, r.slot, page);
    }
    w.flush();
    this.verifyHolders(work, holders, mode, "after the CPU's and the holders' accesses", tally);

    // ---- the holds end; every page is read back; the process exits.
    for (const h of holders) this.release(h, mode);
    w.check();
    for (let p = 0; p < this.workPages; p++) {
      const { r, page } = this.regionOf(work, p);
      e.op(OP_CPU_READ, r.slot, page);
    }
    tally.pagesVerified += this.workPages;
    e.op(OP_EXIT, workSlot);
    w.check();
  }

  private mapAll(e: Emitter, proc: number, pages: number): Region[] {
    const out: Region[] = [];
    for (let at = 0; at < pages; at += REGION_MAX) {
      e.op(OP_MMAP, proc, Math.min(REGION_MAX, pages - at), 0);
      out.push(this.world.regions[this.world.regions.length - 1]!);
    }
    return out;
  }

  private regionOf(rs: Region[], p: number): { r: Region; page: number } {
    return { r: rs[Math.floor(p / REGION_MAX)]!, page: p % REGION_MAX };
  }

  private write(e: Emitter, rs: Region[], p: number): void {
    const { r, page } = this.regionOf(rs, p);
    e.op(OP_CPU_WRITE, r.slot, page);
  }

  /** A holder's ranges: random, not overlapping its own, `heldPerHolder` pages in all. */
  private hold(proc: Process, work: Region[], h: Holder, mode: PinStormModeName, rng: Rng, tally: PinStormMode): void {
    const m = this.m;
    const mine = new Uint8Array(this.workPages);
    let left = this.heldPerHolder;
    for (let tries = 0; left > 0 && tries < 64 * this.heldPerHolder; tries++) {
      let n = Math.min(left, 1 + rng.int(MAX_HOLD_RANGE));
      let p = rng.int(this.workPages);
      // A range stays inside one region and clear of the holder's own pages.
      const { r, page } = this.regionOf(work, p);
      n = Math.min(n, r.pages - page);
      let k = 0;
      while (k < n && !mine[p + k]) k++;
      n = k;
      if (n === 0) continue;
      const addr = r.addr + page * PAGE_SIZE;
      let pfns: Uint32Array;
      if (mode === "get") pfns = m.getUserPages(proc, addr, n, FOLL_WRITE).slice();
      else if (mode === "longterm") pfns = m.pinUserPages(proc, addr, n, FOLL_WRITE | FOLL_LONGTERM).slice();
      else pfns = h.sys!.pinUserRange(proc, addr, n, tally.holds);
      tally.holds++;
      tally.heldPages += n;
      for (let i = 0; i < n; i++) {
        mine[p + i] = 1;
        h.index.set(pfns[i]!, h.pages.length);
        h.pages.push(p + i);
        h.pfns.push(pfns[i]!);
      }
      left -= n;
    }
  }

  private release(h: Holder, mode: PinStormModeName): void {
    const m = this.m;
    if (mode === "get") m.releasePages(h.pfns);
    else if (mode === "longterm") m.unpinUserPages(h.pfns);
    else {
      h.sys!.clearPinpages(h.pfns);
      h.sys!.unregister();
    }
  }

  /** Every entry of every holder's table: still the page the process maps there, holding its last write. */
  private verifyHolders(work: Region[], holders: Holder[], mode: PinStormModeName, when: string, tally: PinStormMode): void {
    const w = this.world;
    const m = this.m;
    w.flush();
    const proc = w.procs[work[0]!.proc]!;
    for (const h of holders) {
      for (let i = 0; i < h.pages.length; i++) {
        const { r, page } = this.regionOf(work, h.pages[i]!);
        const pfn = h.pfns[i]!;
        const mapped = Number((proc.pte(r.addr + page * PAGE_SIZE) >> 12n) & 0xffffffffffn);
        const tag = m.page.readTag(pfn);
        if (mapped !== pfn || tag !== BigInt(r.shadow[page]!)) {
          this.lostBytes += PAGE_SIZE;
          throw new StressFailure("data", w.ops,
            `${mode} holders, ${when}: ${h.name} keeps page ${page} of region ${r.slot} at pfn ${pfn} (tag ${tag}), but the process maps pfn ${mapped} and last wrote tag ${r.shadow[page]}`);
        }
        tally.holderPagesVerified++;
      }
    }
  }

  /** Direct compaction of one zone of the working node for a MAX_ORDER block (none: not attempted). */
  private compact(zoneName: "Movable" | "Normal", o: PinStormOutcome, tally: PinStormMode): void {
    const m = this.m;
    const node = m.cmaAreas()[0]!.node;
    const z = m.zones().findIndex((x) => x.node === node && x.name === zoneName && x.present > 0);
    if (z < 0) return;
    const r = m.compactZone(z, COMPACT_ORDER);
    o.attempts++;
    if (r.status === "COMPACT_SUCCESS") o.successes++;
    o.migrated += r.migrated;
    const add = (k: string, n: number): void => {
      if (n > 0) tally.stuck[k] = (tally.stuck[k] ?? 0) + n;
    };
    add("pinned", r.skippedPinned);
    add("unmovable", r.skippedUnmovable);
    add("reserved", r.skippedReserved);
  }

  /** Runs a CMA allocation or an offline: a PageFailureError is an outcome (its pages counted by reason), anything else a finding. */
  private attempt<T>(o: PinStormOutcome, tally: PinStormMode, fn: () => T): T | null {
    const m = this.m;
    const before = m.counters().pgmigrate_success;
    o.attempts++;
    try {
      const r = fn();
      o.successes++;
      if (o !== tally.offlineMovable && o !== tally.offlineNormal) o.migrated += m.counters().pgmigrate_success - before;
      return r;
    } catch (e) {
      if (!(e instanceof PageFailureError)) throw e;
      o.migrated += m.counters().pgmigrate_success - before;
      for (const f of e.failures) tally.stuck[f.kind] = (tally.stuck[f.kind] ?? 0) + 1;
      return null;
    }
  }

  /**
   * The pageblock to offline in the working node's zone: the first at or after a random one
   * (drawn by the program, so the same in every mode) that the kernel would try at all (no
   * reserved, unmovable kernel or CMA pages: those refuse before anything moves). -1: none.
   */
  private offlineTarget(zoneName: "Movable" | "Normal", pick: number): number {
    const m = this.m;
    const node = m.cmaAreas()[0]!.node;
    const z = m.zones().find((x) => x.node === node && x.name === zoneName && x.present > 0);
    if (!z) return -1;
    const first = Math.ceil(z.start / PAGEBLOCK_NR_PAGES);
    const blocks = Math.floor(z.end / PAGEBLOCK_NR_PAGES) - first;
    if (blocks <= 0) return -1;
    const from = Math.floor(pick * blocks);
    for (let k = 0; k < blocks; k++) {
      const start = (first + ((from + k) % blocks)) * PAGEBLOCK_NR_PAGES;
      if (m.pageIsCma(start)) continue;
      const bad = scanRange(m, start, start + PAGEBLOCK_NR_PAGES, true).some((p) => p.kind !== null && p.kind !== "pinned" && p.kind !== "locked");
      if (!bad) return start;
    }
    return -1;
  }
}
