// pmem: round by round the same workload (a process fills a working set, then random loads
// and stores with a skewed hot set) runs against a pmem device used two ways. Storage mode:
// the working set is a DAX mapping of the device's first half (stores go straight to the
// media) and the second half takes raw block writes of the same skew; everything is read
// back (DAX loads, block reads, the media itself). RAM mode: the device is onlined as
// ZONE_MOVABLE and the working set is anonymous memory (on pmem, or DRAM, as the allocator
// chooses); offlining at the end of the round migrates it all off, and it is read back.
// DAX accesses and block requests are counted ops but not ops of the stream (tally), so the
// scenario is not recordable; RAM mode's accesses run through exec.
import { Rng } from "../../random.js";
import { PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS } from "../../constants.js";
import { PageFailureError } from "../../isolation.js";
import type { PmemDevice } from "../../pmem/index.js";
import type { Process } from "../../process.js";
import { InputError } from "../machine-spec.js";
import { StressFailure, type Region, type World } from "../world.js";
import { OP_CPU_READ, OP_CPU_WRITE, OP_EXIT, OP_MMAP, OP_SPAWN } from "../ops.js";
import { PMEM_MODES, emptyPmemMode, type PmemModeName, type PmemModeReport, type PmemReport } from "../pmemreport.js";
import { idleAccesses, guardRound, type Emitter, type Generator, type Scenario } from "./common.js";

/** The hot set is this share of the working set and takes HOT_SHARE of the accesses. */
const HOT_FRACTION = 1 / 8;
const HOT_SHARE = 0.8;
/** Random accesses per working-set page per round, and the share that are stores. */
const ACCESSES_PER_PAGE = 4;
const WRITE_SHARE = 0.5;
/** Block writes per sector of the block half per round. */
const BLOCK_WRITES_PER_SECTOR = 1;
const MIN_PAGES = 64;
const BYSTANDER_PAGES = 16;
/** Free pages the ballast leaves in the DRAM ZONE_MOVABLE (page tables, the bystander). */
const BALLAST_MARGIN = 64;

/** The ops of one round with a working set of `ws` pages and a block half of `blk` sectors. */
function roundOps(ws: number, blk: number): number {
  const accesses = ACCESSES_PER_PAGE * ws;
  // storage: fill, accesses, read-back; block writes, then a read of each sector at most.
  const storage = ws + accesses + ws + BLOCK_WRITES_PER_SECTOR * blk + blk;
  // ram: spawn, mmap, fill, accesses, read-back, exit.
  const ram = 2 + ws + accesses + ws + 1;
  return storage + ram;
}

export const pmem: Scenario = {
  name: "pmem",
  summary: "the same workload on pmem as storage (DAX mapping + block writes) and as RAM (ZONE_MOVABLE, offlined each round)",
  needs: [],
  needsPmem: true,
  scheduled: true,
  create(w: World, rng: Rng): Generator {
    return new PmemScenario(w, rng.int(2 ** 31));
  },
};

class PmemScenario implements Generator {
  private ready = false;
  private dev!: PmemDevice;
  private fullPages = 0;
  private ws = 0;
  private ranPages = 0;
  private round = 0;
  private bystander: Region | null = null;
  private lostBytes = 0;
  private readonly modes = PMEM_MODES.map(emptyPmemMode);

  constructor(private readonly world: World, private readonly seed: number) {}

  step(e: Emitter): void {
    if (!this.ready && !this.setup(e)) return e.skip();
    let pages = this.fullPages;
    while (this.round === 0 && pages > MIN_PAGES && roundOps(pages, pages) > e.left) pages = Math.floor(pages / 2);
    if (pages < MIN_PAGES || roundOps(pages, pages) > e.left) return this.idle(e);
    this.ws = pages;
    this.ranPages = Math.max(this.ranPages, pages);
    const roundSeed = new Rng(this.seed + this.round * 0x9e3779b9).int(2 ** 31);
    this.guard("storage", () => this.storageMode(e, this.modes[0]!, roundSeed));
    this.guard("ram", () => this.ramMode(e, this.modes[1]!, roundSeed));
    this.round++;
  }

  pmem(): PmemReport | undefined {
    if (this.ranPages === 0) return undefined;
    return {
      rounds: this.round, pmemPages: this.dev.nrSectors, workingSetPages: this.ranPages, hotPages: this.hot(this.ranPages),
      modes: this.modes.map((m) => structuredClone(m)), lostBytes: this.lostBytes,
    };
  }

  private hot(ws: number): number {
    return Math.max(1, Math.floor(ws * HOT_FRACTION));
  }

  /** A page of the working set: the hot set with HOT_SHARE, else any. */
  private pick(rng: Rng, n: number): number {
    return rng.next() < HOT_SHARE ? rng.int(this.hot(n)) : rng.int(n);
  }

  private setup(e: Emitter): boolean {
    const dev = this.world.machine.pmems[0];
    if (!dev) throw new InputError(`scenario "pmem" needs a pmem device (the machine's "pmem" field); the machine has none`);
    if (e.left < 2 + BYSTANDER_PAGES) return false;
    this.ready = true;
    this.dev = dev;
    e.op(OP_SPAWN);
    e.op(OP_MMAP, this.world.procs.length - 1, BYSTANDER_PAGES, 0);
    this.bystander = this.world.regions[this.world.regions.length - 1]!;
    for (let p = 0; p < BYSTANDER_PAGES; p++) e.op(OP_CPU_WRITE, this.bystander.slot, p);
    this.world.flush();
    // Half the device is the DAX working set, half takes block writes; RAM mode uses the same size.
    this.fullPages = dev.nrSectors / 2;
    return true;
  }

  private idle(e: Emitter): void {
    idleAccesses(e, this.bystander!, this.seed ^ this.world.ops);
  }

  private guard(mode: PmemModeName, fn: () => void): void {
    guardRound(this.world, `pmem ${mode} mode`, fn);
  }

  private lost(mode: PmemModeName, what: string): never {
    this.lostBytes += PAGE_SIZE;
    throw new StressFailure("data", this.world.ops, `pmem ${mode} mode: ${what}`);
  }

  private wearSnapshot(): Uint32Array {
    const out = new Uint32Array(this.dev.nrSectors);
    for (let s = 0; s < out.length; s++) out[s] = this.dev.writeCount(s);
    return out;
  }

  private addWear(tally: PmemModeReport, before: Uint32Array): void {
    let max = 0;
    for (let s = 0; s < before.length; s++) {
      const d = this.dev.writeCount(s) - before[s]!;
      tally.sectorWrites += d;
      if (d > max) max = d;
    }
    tally.maxSectorWrites = Math.max(tally.maxSectorWrites, max);
  }

  private storageMode(e: Emitter, tally: PmemModeReport, roundSeed: number): void {
    const w = this.world;
    const m = w.machine;
    const dev = this.dev;
    const rng = new Rng(roundSeed);
    const ws = this.ws;
    const blk = ws;
    const wear = this.wearSnapshot();
    const opsBefore = w.ops;
    const proc = m.spawn();
    try {
      const dax = dev.daxMmap(proc, { offset: 0, length: ws * PAGE_SIZE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
      const shadow = new Float64Array(ws);
      const store = (p: number): void => {
        const tag = w.freshTag();
        proc.writeTag(dax + p * PAGE_SIZE, BigInt(tag));
        shadow[p] = tag;
        w.tally(OP_CPU_WRITE);
      };
      const load = (p: number, when: string): void => {
        const got = proc.readTag(dax + p * PAGE_SIZE);
        w.tally(OP_CPU_READ);
        if (got !== BigInt(shadow[p]!)) this.lost("storage", `${when}: DAX page ${p} reads tag ${got}, last written ${shadow[p]}`);
      };
      for (let p = 0; p < ws; p++) store(p);
      for (let i = 0; i < ACCESSES_PER_PAGE * ws; i++) {
        const p = this.pick(rng, ws);
        if (rng.next() < WRITE_SHARE) store(p);
        else load(p, "during the workload");
      }
      tally.structPageBytes = Math.max(tally.structPageBytes, dev.structPageOverhead().bytes);
      tally.kernelStructPageBytes = Math.max(tally.kernelStructPageBytes, dev.structPageOverhead().kernelBytes);

      // Raw block writes to the second half, through one bounce page of an anonymous buffer.
      const buf = proc.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      proc.writeTag(buf, 0n);
      const bufPfn = Number((proc.pte(buf) >> 12n) & 0xffffffffffn);
      const blockShadow = new Map<number, number>();
      for (let i = 0; i < BLOCK_WRITES_PER_SECTOR * blk; i++) {
        const s = ws + this.pick(rng, blk);
        const tag = w.freshTag();
        proc.writeTag(buf, BigInt(tag));
        dev.write([s], [bufPfn]);
        blockShadow.set(s, tag);
        tally.blockWrites++;
        w.tally(OP_CPU_WRITE);
      }
      dev.flush();
      // Read-back: every DAX page, the media under it, every written sector by a block read.
      for (let p = 0; p < ws; p++) {
        load(p, "at the read-back");
        if (dev.peek(p) !== BigInt(shadow[p]!)) this.lost("storage", `sector ${p} holds ${String(dev.peek(p))} on the media, last DAX store ${shadow[p]}`);
      }
      const sectors = [...blockShadow.keys()].sort((a, b) => a - b);
      for (const s of sectors) {
        dev.read([s], [bufPfn]);
        tally.blockReads++;
        w.tally(OP_CPU_READ);
        const got = proc.readTag(buf);
        if (got !== BigInt(blockShadow.get(s)!)) this.lost("storage", `block read of sector ${s} gives tag ${got}, last block write ${blockShadow.get(s)}`);
      }
      // The ops budget of a round counts a read of every block sector: the rest are idle reads of the bystander.
      for (let k = sectors.length; k < blk; k++) e.op(OP_CPU_READ, this.bystander!.slot, k % BYSTANDER_PAGES);
      tally.pagesVerified += ws + sectors.length;
      tally.pagesOnPmem += ws;
      tally.workingPages += ws;
      proc.munmap(dax, ws * PAGE_SIZE);
    } finally {
      proc.exit();
    }
    w.flush();
    w.check();
    this.addWear(tally, wear);
    tally.ops += w.ops - opsBefore;
  }

  private onPmem(proc: Process, r: Region): number {
    let n = 0;
    for (let p = 0; p < r.pages; p++) {
      const pfn = Number((proc.pte(r.addr + p * PAGE_SIZE) >> 12n) & 0xffffffffffn);
      if (pfn >= this.dev.start && pfn < this.dev.end) n++;
    }
    return n;
  }

  /** A process holding all but a margin of the free pages of the DRAM ZONE_MOVABLE of the device's node (null: none). */
  private ballast(): Process | null {
    const m = this.world.machine;
    const dev = this.dev;
    const free = m.zones().filter((z) => z.node === dev.node && z.name === "Movable" && z.start < dev.start && z.present > 0).reduce((n, z) => n + Math.max(0, z.free - BALLAST_MARGIN), 0);
    if (free === 0) return null;
    const p = m.spawn();
    const addr = p.mmap(0, free * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.touch(addr, free, true);
    return p;
  }

  private ramMode(e: Emitter, tally: PmemModeReport, roundSeed: number): void {
    const w = this.world;
    const dev = this.dev;
    const rng = new Rng(roundSeed);
    const ws = this.ws;
    const wear = this.wearSnapshot();
    const opsBefore = w.ops;
    dev.onlineAsRam();
    // The allocator fills the DRAM ZONE_MOVABLE before the pmem one: a ballast (not part of
    // the workload, no ops) takes the DRAM one's free pages so that the working set lands on pmem.
    const ballast = this.ballast();
    const o = dev.structPageOverhead();
    tally.structPageBytes = Math.max(tally.structPageBytes, o.bytes);
    tally.kernelStructPageBytes = Math.max(tally.kernelStructPageBytes, o.kernelBytes);
    e.op(OP_SPAWN);
    const slot = w.procs.length - 1;
    e.op(OP_MMAP, slot, ws, 0);
    const r = w.regions[w.regions.length - 1]!;
    for (let p = 0; p < ws; p++) e.op(OP_CPU_WRITE, r.slot, p);
    for (let i = 0; i < ACCESSES_PER_PAGE * ws; i++) e.op(rng.next() < WRITE_SHARE ? OP_CPU_WRITE : OP_CPU_READ, r.slot, this.pick(rng, ws));
    w.flush();
    const proc = w.procs[slot]!;
    tally.pagesOnPmem += this.onPmem(proc, r);
    tally.workingPages += ws;
    w.check();
    // Wear from the stores while the pages lived on the device (offline's copies are not stores).
    this.addWear(tally, wear);
    tally.offlineAttempts++;
    try {
      const res = dev.offlineRam();
      tally.offlineSuccesses++;
      tally.offlineMigrated += res.migrated;
    } catch (err) {
      if (!(err instanceof PageFailureError)) throw err;
      // Still online: the process exits, then the range is free and offlines.
      e.op(OP_EXIT, slot);
      w.flush();
      dev.offlineRam();
      throw new StressFailure("error", w.ops, `pmem ram mode: offline failed on ${err.failures.length} page(s) (first: ${err.failures[0]?.kind})`);
    }
    const left = this.onPmem(proc, r);
    if (left !== 0) throw new StressFailure("invariant", w.ops, `pmem ram mode: ${left} pages still map the pmem range after it went offline`);
    for (let p = 0; p < ws; p++) e.op(OP_CPU_READ, r.slot, p);
    w.flush();
    tally.pagesVerified += ws;
    ballast?.exit();
    e.op(OP_EXIT, slot);
    w.flush();
    w.check();
    tally.ops += w.ops - opsBefore;
  }
}
