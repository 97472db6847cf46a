// The executor of a stress run: a machine, its processes, regions and devices, and a
// shadow of what every page must hold. Each op is checked against the shadow (a read
// that returns anything but the last value written is lost data); machine.check() runs
// every `checkEvery` ops. CPU accesses queue into one AccessBatch per process and run as
// one Wasm call when another op comes (or the batch is full): the same order as one by one.
import { Machine } from "../machine.js";
import type { Process } from "../process.js";
import type { AccessBatch } from "../batch.js";
import { MmError } from "../errors.js";
import { MADV_DONTNEED, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE } from "../constants.js";
import { MAX_OPS } from "../layout.js";
import { Gpu } from "./gpu.js";
import { Timeline } from "./timeline.js";
import { PAGE_STATES, PageCensus, type Census } from "./census.js";
import { DEFAULT_COST, type CostModel } from "./cost.js";
import { InputError, machineConfig, type MachineSpec } from "./machine-spec.js";
import {
  OP_CPU_READ, OP_CPU_WRITE, OP_DEV_READ, OP_DEV_WRITE, OP_EVICT, OP_EXCLUSIVE, OP_EXIT, OP_FORK, OP_MIGRATE_TO_DEV,
  OP_MADV_DONTNEED, OP_MIGRATE_TO_SYS, OP_MMAP, OP_MPROTECT, OP_MUNMAP, OP_NAMES, OP_SPAWN, MAX_REGION_PAGES, OpLog, rangeCount, rangePage,
} from "./ops.js";

export interface Region {
  readonly slot: number;
  readonly proc: number;
  readonly addr: number;
  readonly pages: number;
  readonly shared: boolean;
  writable: boolean;
  /** The tag each page must hold (0: never written). Fork copies it for private regions, shares it for shared ones. */
  readonly shadow: Uint32Array;
}

export type FailureKind = "invariant" | "data" | "error";

/** A run stopped: an invariant broke, data was lost, or an operation failed that must not. */
export class StressFailure extends Error {
  constructor(readonly kind: FailureKind, readonly opIndex: number, message: string) {
    super(message);
  }
}

export interface WorldOptions {
  spec: MachineSpec;
  build?: "debug" | "release";
  /** machine.check() every this many ops (default 65536). */
  checkEvery?: number;
  /** Page-state census every this many ops (0: never). */
  sampleEvery?: number;
  trace?: boolean;
  cost?: CostModel;
  /** Keep the op stream (for --record). */
  record?: boolean;
}

export interface Sample {
  op: number;
  simNs: number;
  census: Census;
  pgmigrate_success: number;
  pgfault: number;
}

/** Live processes a run keeps at most (the scenarios stay below). */
export const MAX_PROCS = 16;
/** Live regions and their pages a run keeps at most (the shadow costs 4 bytes a page). */
export const MAX_REGIONS = 4096;
export const MAX_MAPPED_PAGES = 1 << 24;

const MASK32 = 0xffffffff;

export class World {
  readonly machine: Machine;
  readonly gpus: Gpu[];
  readonly procs: (Process | null)[] = [];
  readonly regions: (Region | null)[] = [];
  /** The live regions, in a deterministic order (a removed one is swapped with the last). */
  readonly live: Region[] = [];
  readonly tl: Timeline;
  readonly cost: CostModel;
  /** Ops run, by kind. */
  readonly opKinds = new Float64Array(32);
  readonly samples: Sample[] = [];
  readonly log: OpLog | null;
  /** Ops executed. */
  ops = 0;
  /** Pages of all live regions (a fork counts its copies): the scenarios' memory budget. */
  mappedPages = 0;
  liveProcs = 0;
  exclusiveRefused = 0;
  private readonly checkEvery: number;
  private readonly sampleEvery: number;
  private readonly census: PageCensus;
  private nextTag = 1;
  private batch: AccessBatch | null = null;
  private batchProc = -1;
  private batchFirstOp = 0;
  /** In the final read-back: failures belong to no op of the stream. */
  private verifying = false;
  private readonly batchExpect = new Float64Array(MAX_OPS);
  private readonly batchPage = new Uint32Array(MAX_OPS);

  constructor(opts: WorldOptions) {
    this.machine = Machine.create(machineConfig(opts.spec, opts.build ?? "release"));
    this.cost = opts.cost ?? DEFAULT_COST;
    this.tl = new Timeline(opts.trace ?? false);
    this.checkEvery = opts.checkEvery ?? 65536;
    this.sampleEvery = opts.sampleEvery ?? 0;
    this.log = opts.record ? new OpLog() : null;
    const trackOf = (p: Process): number => 1 + this.procs.indexOf(p);
    this.gpus = opts.spec.devices.map((d, i) => new Gpu(this.machine, i, d.kind, d.pages, this.tl, this.cost, trackOf));
    for (const g of this.gpus) this.tl.nameTrack(g.track, `${g.name} copy engine`);
    // After the devices' pgmaps: the pmem ranges take the rest of deviceMemory.
    (opts.spec.pmem ?? []).forEach((p, i) => this.machine.registerPmem(`pmem${i}`, { pages: p.pages, node: p.node }));
    this.census = new PageCensus(this.machine);
    if (this.sampleEvery > 0) this.sample();
  }

  /** Runs one op. Bad arguments (a replay file's) throw InputError before anything changes. */
  exec(kind: number, a: number, b: number, c: number): void {
    // Logged first, so a record of a failing run ends with the op that failed.
    this.log?.push(kind, a, b, c);
    switch (kind) {
      case OP_CPU_READ:
      case OP_CPU_WRITE:
        this.cpuAccess(kind === OP_CPU_WRITE, this.region(a, kind), this.page(this.regions[a]!, b, 1, kind));
        break;
      case OP_DEV_READ:
      case OP_DEV_WRITE:
      case OP_MIGRATE_TO_DEV:
      case OP_MIGRATE_TO_SYS:
      case OP_EXCLUSIVE:
        this.deviceOp(kind, this.gpu(a, kind), this.region(b, kind), c);
        break;
      case OP_EVICT:
        this.gpu(a, kind);
        this.count(b, 1, MAX_REGION_PAGES, "pages", kind);
        this.flush();
        this.guard(() => this.gpus[a]!.evict(b));
        break;
      case OP_MMAP:
        this.mmap(this.proc(a, kind), this.count(b, 1, MAX_REGION_PAGES, "pages", kind), c !== 0);
        break;
      case OP_MUNMAP:
        this.munmap(this.region(a, kind));
        break;
      case OP_FORK:
        this.fork(this.proc(a, kind));
        break;
      case OP_EXIT:
        this.exit(this.proc(a, kind));
        break;
      case OP_MPROTECT: {
        const r = this.region(a, kind);
        this.flush();
        this.guard(() => this.procs[r.proc]!.mprotect(r.addr, r.pages * PAGE_SIZE, PROT_READ | (b ? PROT_WRITE : 0)));
        r.writable = b !== 0;
        break;
      }
      case OP_MADV_DONTNEED: {
        const r = this.region(a, kind);
        const page = this.page(r, rangePage(b), rangeCount(b), kind);
        const n = rangeCount(b);
        this.flush();
        this.guard(() => this.procs[r.proc]!.madvise(r.addr + page * PAGE_SIZE, n * PAGE_SIZE, MADV_DONTNEED));
        // Private pages read as zero again; a shared object keeps its pages.
        if (!r.shared) r.shadow.fill(0, page, page + n);
        this.spend(r.proc, "madvise", this.cost.syscallNs + n * this.cost.perPageNs);
        break;
      }
      case OP_SPAWN:
        this.flush();
        if (this.liveProcs >= MAX_PROCS) throw new InputError(`op ${this.ops}: spawn past ${MAX_PROCS} live processes`);
        this.procs.push(this.guard(() => this.machine.spawn()));
        this.liveProcs++;
        this.tl.nameTrack(this.procs.length, `process ${this.procs.length - 1}`);
        break;
      default:
        throw new InputError(`op ${this.ops}: unknown operation kind ${kind}`);
    }
    this.opKinds[kind]!++;
    this.ops++;
    if (this.ops % this.checkEvery === 0) this.check();
    if (this.sampleEvery > 0 && this.ops % this.sampleEvery === 0) this.sample();
  }

  /**
   * Counts one op of `kind` that ran outside exec() (a scheduled scenario's thread access or
   * migration), with the checks and samples that fall due. Migrations may be in flight then,
   * so the check allows them (their pages are verified by what their stage allows).
   */
  tally(kind: number): void {
    this.opKinds[kind]!++;
    this.ops++;
    if (this.ops % this.checkEvery === 0) this.check(true);
    if (this.sampleEvery > 0 && this.ops % this.sampleEvery === 0) this.sample();
  }

  /** The tag a scheduled scenario's next store writes (the same sequence exec's stores use). */
  freshTag(): number {
    const tag = this.nextTag;
    this.nextTag = tag === MASK32 ? 1 : tag + 1;
    return tag;
  }

  // ---- argument checks (a recorded stream may come from anywhere) --------------

  private proc(i: number, kind: number): Process {
    const p = this.procs[i];
    if (!p) throw new InputError(`op ${this.ops} (${OP_NAMES[kind]}): process slot ${i} is not a live process`);
    return p;
  }

  private region(i: number, kind: number): Region {
    const r = this.regions[i];
    if (!r) throw new InputError(`op ${this.ops} (${OP_NAMES[kind]}): region slot ${i} is not a mapped region`);
    return r;
  }

  private gpu(i: number, kind: number): Gpu {
    const g = this.gpus[i];
    if (!g) throw new InputError(`op ${this.ops} (${OP_NAMES[kind]}): device ${i} does not exist (the machine has ${this.gpus.length})`);
    return g;
  }

  private count(v: number, min: number, max: number, what: string, kind: number): number {
    if (v < min || v > max) throw new InputError(`op ${this.ops} (${OP_NAMES[kind]}): ${what} ${v} is outside [${min}, ${max}]`);
    return v;
  }

  private page(r: Region, page: number, n: number, kind: number): number {
    if (n < 1 || page + n > r.pages) throw new InputError(`op ${this.ops} (${OP_NAMES[kind]}): pages ${page}+${n} are outside region ${r.slot} of ${r.pages} pages`);
    return page;
  }

  /** Runs an emulator call whose failure is a finding, not bad input. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof InputError || e instanceof StressFailure) throw e;
      throw new StressFailure("error", this.ops, `${e instanceof MmError ? "" : "emulator crashed: "}${(e as Error).message}`);
    }
  }

  // ---- CPU accesses -------------------------------------------------------------

  private cpuAccess(write: boolean, r: Region, page: number): void {
    if (write && !r.writable) throw new InputError(`op ${this.ops}: cpu_write to read-only region ${r.slot}`);
    const batch = this.batchFor(r.proc);
    const i = batch.length;
    const addr = r.addr + page * PAGE_SIZE;
    if (write) {
      const tag = this.nextTag;
      this.nextTag = tag === MASK32 ? 1 : tag + 1;
      r.shadow[page] = tag;
      batch.writeTagU32(addr, tag);
      this.batchExpect[i] = -1;
    } else {
      batch.readTag(addr);
      this.batchExpect[i] = r.shadow[page]!;
    }
    this.batchPage[i] = page;
  }

  /** The batch the next access of process `proc` goes into (flushing one of another process, or a full one). */
  private batchFor(proc: number): AccessBatch {
    if (this.batch && (this.batchProc !== proc || this.batch.length === MAX_OPS)) this.flush();
    if (!this.batch) {
      this.batch = this.machine.batch();
      this.batchProc = proc;
      this.batchFirstOp = this.ops;
    }
    return this.batch;
  }

  /** Runs the queued CPU accesses and compares what they read with the shadow. */
  flush(): void {
    const batch = this.batch;
    if (!batch) return;
    this.batch = null;
    const proc = this.procs[this.batchProc]!;
    const t0 = this.tl.now;
    // Faults other ops caused (hmm_range_fault, migrate_to_ram) are not this batch's.
    const m = this.machine;
    const cow0 = m.counter("cow_fault");
    const zero0 = m.counter("zero_page_fault");
    const pgfault0 = m.counter("pgfault");
    const deviceFaults = this.deviceFaults();
    const res = this.guard(() => proc.run(batch));
    const where = this.verifying ? "in the final read-back, " : "";
    const opOf = (i: number): number => (this.verifying ? this.ops : this.batchFirstOp + i);
    if (res.fault) throw new StressFailure("error", opOf(res.completed), `${where}CPU access faulted: ${res.fault.message}`);
    for (let i = 0; i < batch.length; i++) {
      const want = this.batchExpect[i]!;
      if (want < 0) continue;
      if (batch.tagLow(i) !== want || batch.tagHigh(i) !== 0) {
        throw new StressFailure("data", opOf(i),
          `${where}process ${this.batchProc} read tag ${batch.tagLow(i) + batch.tagHigh(i) * 2 ** 32} from page ${this.batchPage[i]}, expected ${want}`);
      }
    }
    // Minor faults are priced from the vmstat deltas; device faults priced themselves inside run().
    const cow = m.counter("cow_fault") - cow0;
    const zero = m.counter("zero_page_fault") - zero0;
    // pgfault counts the device-private faults too (priced by their driver) and each retry.
    const anon = Math.max(0, m.counter("pgfault") - pgfault0 - cow - zero - (this.deviceFaults() - deviceFaults));
    const { cpuAccessNs, zeroPageFaultNs, anonFaultNs, cowFaultNs } = this.cost;
    this.tl.latency("cpu_fault", zeroPageFaultNs, zero);
    this.tl.latency("cpu_fault", anonFaultNs, anon);
    this.tl.latency("cpu_fault", cowFaultNs, cow);
    this.tl.advance(batch.length * cpuAccessNs + zero * zeroPageFaultNs + anon * anonFaultNs + cow * cowFaultNs);
    this.tl.span(1 + this.batchProc, `${batch.length} CPU accesses`, t0, this.tl.now - t0, { faults: zero + anon + cow });
  }

  private deviceFaults(): number {
    return this.gpus.reduce((n, g) => n + g.stats.cpuFaults, 0);
  }

  // ---- device ops ---------------------------------------------------------------

  private deviceOp(kind: number, gpu: Gpu, r: Region, range: number): void {
    const single = kind === OP_EXCLUSIVE;
    const page = single ? range : rangePage(range);
    const n = single ? 1 : rangeCount(range);
    this.page(r, page, n, kind);
    if ((kind === OP_DEV_WRITE || kind === OP_EXCLUSIVE) && !r.writable) throw new InputError(`op ${this.ops}: ${OP_NAMES[kind]} to read-only region ${r.slot}`);
    this.flush();
    const proc = this.procs[r.proc]!;
    const addr = r.addr + page * PAGE_SIZE;
    switch (kind) {
      case OP_MIGRATE_TO_DEV:
        this.guard(() => gpu.migrateToDevice(proc, addr, n));
        return;
      case OP_MIGRATE_TO_SYS:
        this.guard(() => gpu.migrateToSystem(proc, addr, n));
        return;
      case OP_EXCLUSIVE:
        try {
          gpu.makeExclusive(proc, addr);
        } catch (e) {
          // The kernel refuses some pages (not anonymous, busy): the device falls back to non-atomic access.
          if (!(e instanceof MmError) || !["EBUSY", "EOPNOTSUPP"].includes(e.code)) throw this.failure(e);
          this.exclusiveRefused++;
        }
        return;
    }
    const write = kind === OP_DEV_WRITE;
    const tags = new Float64Array(n);
    if (write) {
      for (let i = 0; i < n; i++) {
        tags[i] = this.nextTag;
        this.nextTag = this.nextTag === MASK32 ? 1 : this.nextTag + 1;
      }
    }
    const ret = this.guard(() => gpu.access(proc, addr, n, write, tags));
    if (ret !== 0) throw new StressFailure("error", this.ops, `${gpu.name} ${write ? "store" : "load"} of ${n} pages failed with ${ret}`);
    for (let i = 0; i < n; i++) {
      if (write) r.shadow[page + i] = tags[i]!;
      else if (tags[i] !== r.shadow[page + i]) {
        throw new StressFailure("data", this.ops, `${gpu.name} read tag ${tags[i]} from page ${page + i} of region ${r.slot}, expected ${r.shadow[page + i]}`);
      }
    }
  }

  private failure(e: unknown): StressFailure {
    return e instanceof StressFailure ? e : new StressFailure("error", this.ops, (e as Error).message);
  }

  // ---- address-space ops --------------------------------------------------------

  private roomFor(regions: number, pages: number): void {
    if (this.live.length + regions > MAX_REGIONS || this.mappedPages + pages > MAX_MAPPED_PAGES)
      throw new InputError(`op ${this.ops}: more than ${MAX_REGIONS} regions or ${MAX_MAPPED_PAGES} mapped pages`);
  }

  private addRegion(proc: number, addr: number, pages: number, shared: boolean, writable: boolean, shadow: Uint32Array): void {
    const r: Region = { slot: this.regions.length, proc, addr, pages, shared, writable, shadow };
    this.regions.push(r);
    this.live.push(r);
    this.mappedPages += pages;
  }

  private dropRegion(r: Region): void {
    this.regions[r.slot] = null;
    const i = this.live.indexOf(r);
    this.live[i] = this.live[this.live.length - 1]!;
    this.live.pop();
    this.mappedPages -= r.pages;
  }

  private mmap(proc: Process, pages: number, shared: boolean): void {
    this.flush();
    this.roomFor(1, pages);
    const slot = this.procs.indexOf(proc);
    const addr = this.guard(() => proc.mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS));
    this.addRegion(slot, addr, pages, shared, true, new Uint32Array(pages));
    this.spend(slot, "mmap", this.cost.syscallNs);
  }

  private munmap(r: Region): void {
    this.flush();
    this.guard(() => this.procs[r.proc]!.munmap(r.addr, r.pages * PAGE_SIZE));
    this.dropRegion(r);
    this.spend(r.proc, "munmap", this.cost.syscallNs + r.pages * this.cost.perPageNs);
  }

  private fork(parent: Process): void {
    this.flush();
    if (this.liveProcs >= MAX_PROCS) throw new InputError(`op ${this.ops}: fork past ${MAX_PROCS} live processes`);
    const from = this.procs.indexOf(parent);
    const mine = this.live.filter((r) => r.proc === from);
    this.roomFor(mine.length, mine.reduce((n, r) => n + r.pages, 0));
    const child = this.guard(() => parent.fork());
    const slot = this.procs.length;
    this.procs.push(child);
    this.liveProcs++;
    this.tl.nameTrack(1 + slot, `process ${slot}`);
    let pages = 0;
    for (const r of mine) {
      this.addRegion(slot, r.addr, r.pages, r.shared, r.writable, r.shared ? r.shadow : r.shadow.slice());
      pages += r.pages;
    }
    this.spend(from, "fork", this.cost.forkNs + pages * this.cost.perPageNs);
  }

  private exit(proc: Process): void {
    this.flush();
    const slot = this.procs.indexOf(proc);
    let pages = 0;
    this.guard(() => {
      for (const g of this.gpus) g.forget(proc);
      proc.exit();
    });
    for (const r of this.live.filter((x) => x.proc === slot)) {
      this.dropRegion(r);
      pages += r.pages;
    }
    this.procs[slot] = null;
    this.liveProcs--;
    this.spend(slot, "exit", this.cost.forkNs + pages * this.cost.perPageNs);
  }

  private spend(procSlot: number, name: string, ns: number): void {
    this.tl.span(1 + procSlot, name, this.tl.now, ns);
    this.tl.advance(ns);
  }

  // ---- checks and samples ---------------------------------------------------------

  check(allowInFlight = false): void {
    this.flush();
    try {
      this.machine.check({ allowInFlight });
    } catch (e) {
      throw new StressFailure("invariant", this.ops - 1, (e as Error).message);
    }
  }

  sample(): void {
    this.flush();
    const c = this.machine.counters();
    const census = this.census.take();
    this.samples.push({ op: this.ops, simNs: this.tl.now, census, pgmigrate_success: c.pgmigrate_success, pgfault: c.pgfault });
    this.tl.counter("pages", Object.fromEntries(census.counts.map((n, i) => [PAGE_STATES[i]!, n])));
  }

  /** The page-state census now, without recording a sample (for live pictures). */
  censusNow(): Census {
    this.flush();
    return this.census.take();
  }

  get opCounts(): Record<string, number> {
    return Object.fromEntries(Object.entries(OP_NAMES).map(([k, n]) => [n, this.opKinds[Number(k)]!]));
  }

  get buckets(): { buckets: number; framesPerBucket: number; frames: number } {
    return { buckets: this.census.buckets, framesPerBucket: this.census.framesPerBucket, frames: this.census.frames };
  }

  /**
   * The end of a run: every page of every live region is read back by the CPU and must
   * hold what the shadow says; then every process exits and the invariants (no page
   * leaked) must still hold. Returns the pages verified.
   */
  verifyAndTearDown(): number {
    this.flush();
    let verified = 0;
    this.verifying = true;
    for (const r of this.regions) {
      if (!r) continue;
      for (let p = 0; p < r.pages; p++) {
        const batch = this.batchFor(r.proc);
        const j = batch.length;
        batch.readTag(r.addr + p * PAGE_SIZE);
        this.batchExpect[j] = r.shadow[p]!;
        this.batchPage[j] = p;
        verified++;
      }
    }
    this.flush();
    this.check();
    for (const p of this.procs) if (p) this.exit(p);
    for (const g of this.gpus) this.guard(() => this.machine.memunmapPages(g.pgmap));
    this.check();
    const inUse = this.machine.zones().reduce((s, z) => s + z.managed - z.free, 0);
    if (inUse !== 0) throw new StressFailure("invariant", this.ops, `after every process exited, ${inUse} pages of system memory are still in use (a leak)`);
    return verified;
  }
}
