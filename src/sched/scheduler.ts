// A deterministic discrete-event scheduler over one machine (DESIGN.md §3 rule 7): simulated
// CPU threads run programs of accesses against processes, device copy engines move the
// pages of migrations, and one clock orders it all. A migration spans simulated time:
// setup at t0, its copy on an engine for bytes / bandwidth, pages + finalize when the copy
// is done. A thread whose access finds its page under migration sleeps until that
// migration has ended; sleepers wake first-in first-out and retry. Every access records
// its stall time. Same programs, same costs: same result.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { migratePfnToPage, type MigrateVma } from "../migrate.js";
import { MmError, fail } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import { EventQueue } from "./queue.js";
import { CopyEngine } from "./engine.js";
import { DEFAULT_SCHED_COST, type SchedCost } from "./cost.js";
import { StallStats } from "./stall.js";
import { SimThread, threadApi, type Action, type MigrateRequest, type MigrateResult, type Program } from "./thread.js";

/** Hooks that see what happens in simulated time (a trace, a test's observations). */
export interface SchedTrace {
  /**
   * An access went through, at this instant: the tag it wrote or read. A shadow of memory
   * kept here is exact (the thread itself resumes only after the access's cost).
   */
  access?(thread: SimThread, proc: Process, addr: number, write: boolean, tag: bigint): void;
  /** An access waited `ns` from `start` before it went through. */
  stall?(thread: SimThread, write: boolean, start: number, ns: number): void;
  /** A sleeping thread runs again (in wake order). */
  wake?(thread: SimThread, at: number): void;
  /** A migration ended. */
  migration?(thread: SimThread, result: MigrateResult, readOnlyEntries: boolean): void;
  /** An engine copied `bytes` from `start` for `ns`. */
  copy?(engine: CopyEngine, start: number, ns: number, bytes: number): void;
}

export interface SchedulerOptions {
  cost?: Partial<SchedCost>;
  trace?: SchedTrace;
}

/** A migration in flight: its waiters sleep until it ends. */
interface SimMigration {
  mig: MigrateVma;
  req: MigrateRequest;
  thread: SimThread;
  pfns: number[];
  waiters: SimThread[];
  setupAt: number;
  copyStart: number;
  error: unknown;
}

export class Scheduler {
  readonly cost: SchedCost;
  readonly stalls = new StallStats();
  readonly engines: CopyEngine[] = [];
  readonly threads: SimThread[] = [];
  /** Migrations ended, pages they moved, and their time under migration (setup to end, summed). */
  migrations = 0;
  pagesMoved = 0;
  migrationNs = 0;
  private clock = 0;
  private readonly queue = new EventQueue();
  private readonly flying = new Set<SimMigration>();
  /** Source pages of migrations in flight, to the migration. */
  private readonly byPfn = new Map<number, SimMigration>();
  /** Threads waiting for a free migration slot. */
  private readonly slotWaiters: SimThread[] = [];
  private readonly trace: SchedTrace;

  constructor(readonly machine: Machine, opts: SchedulerOptions = {}) {
    const cost = { ...DEFAULT_SCHED_COST, ...opts.cost };
    for (const [k, v] of Object.entries(cost)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) fail("EINVAL", "Scheduler", `cost.${k} must be a non-negative number of ns, got ${String(v)}`, v);
    }
    this.cost = cost;
    this.trace = opts.trace ?? {};
  }

  /** Simulated nanoseconds since the scheduler started. */
  get now(): number {
    return this.clock;
  }

  /** Migrations in flight that this scheduler started. */
  get inFlight(): number {
    return this.flying.size;
  }

  /** Events still to run (0: every thread is done or asleep for good). */
  get pending(): number {
    return this.queue.size;
  }

  /** A device copy engine of `bytesPerNs` bandwidth (16 = 16 GB/s). */
  engine(name: string, bytesPerNs: number): CopyEngine {
    if (typeof bytesPerNs !== "number" || !Number.isFinite(bytesPerNs) || bytesPerNs <= 0)
      fail("EINVAL", "engine", `bytesPerNs must be a positive number, got ${String(bytesPerNs)}`, bytesPerNs);
    const inject = this.machine.inject;
    inject.registerEngine(String(name));
    const e = new CopyEngine(String(name), bytesPerNs, (ns, run) => this.queue.post(this.clock + ns, run), () => inject.engineDelay(String(name)));
    this.engines.push(e);
    return e;
  }

  /** A thread that starts its program now (or at `at`). */
  spawn(name: string, program: Program, at = this.clock): SimThread {
    if (typeof program !== "function") fail("EINVAL", "spawn", "program must be a generator function", program);
    if (typeof at !== "number" || !(at >= this.clock) || !Number.isFinite(at)) fail("EINVAL", "spawn", `start time ${String(at)} is not a time from now on`, at);
    const t = new SimThread(this.threads.length, String(name));
    t.gen = program(threadApi(t.name, () => this.clock, this.cost.syscallNs));
    this.threads.push(t);
    this.queue.post(at, () => this.resume(t, undefined));
    return t;
  }

  /**
   * Runs events in time order until none is left, or until the next one lies after `until`
   * (the clock then stands at `until`; migrations may be in flight). A program's uncaught
   * error stops the run and is thrown here.
   */
  run(until = Infinity): void {
    if (typeof until !== "number" || Number.isNaN(until) || until < this.clock) fail("EINVAL", "run", `until ${String(until)} lies before now (${this.clock})`, until);
    while (this.queue.size > 0 && this.queue.peekTime() <= until) {
      const e = this.queue.pop()!;
      this.clock = e.time;
      e.run();
    }
    if (Number.isFinite(until)) this.clock = until;
  }

  private post(at: number, run: () => void): void {
    this.queue.post(at, run);
  }

  // ---- threads -------------------------------------------------------------------

  private resume(t: SimThread, value: unknown, error?: unknown): void {
    t.state = "ready";
    let step: IteratorResult<Action, void>;
    try {
      step = error !== undefined ? t.gen!.throw(error) : t.gen!.next(value);
    } catch (e) {
      t.state = "failed";
      throw e;
    }
    if (step.done) {
      t.state = "done";
      return;
    }
    this.perform(t, step.value);
  }

  private perform(t: SimThread, a: Action): void {
    switch (a.kind) {
      case "access":
        return this.access(t, a);
      case "compute":
        if (!(a.ns >= 0) || !Number.isFinite(a.ns)) return this.resume(t, undefined, new MmError("EINVAL", "compute", `ns must be a non-negative number, got ${String(a.ns)}`, a.ns));
        return this.post(this.clock + a.ns, () => this.resume(t, undefined));
      case "call": {
        let r: unknown;
        try {
          r = a.fn();
        } catch (e) {
          return this.resume(t, undefined, e);
        }
        return this.post(this.clock + a.ns, () => this.resume(t, r));
      }
      case "migrate":
        return this.startMigration(t, a.req);
      default:
        return this.resume(t, undefined, new MmError("EINVAL", "perform", `unknown action ${JSON.stringify((a as { kind: unknown }).kind)}`));
    }
  }

  /** One CPU access: done, or asleep on the migration of its page. */
  private access(t: SimThread, a: Extract<Action, { kind: "access" }>): void {
    const m = this.machine;
    const faults0 = m.counter("pgfault");
    const b = a.proc.batch();
    if (a.write) b.writeTag(a.addr, a.tag);
    else b.readTag(a.addr);
    const r = a.proc.run(b);
    const faults = m.counter("pgfault") - faults0;
    if (!r.fault) {
      const stall = t.stallSince >= 0 ? this.clock - t.stallSince : 0;
      if (stall > 0) this.trace.stall?.(t, a.write, t.stallSince, stall);
      t.stallSince = -1;
      t.accesses++;
      t.stallNs += stall;
      this.stalls.record(a.write, stall);
      const value = a.write ? undefined : (b.value(0) as bigint);
      this.trace.access?.(t, a.proc, a.addr, a.write, a.write ? a.tag : value!);
      return this.post(this.clock + this.cost.cpuAccessNs + faults * this.cost.faultNs, () => this.resume(t, value));
    }
    const sm = r.waitPfn !== undefined ? this.byPfn.get(r.waitPfn) : undefined;
    if (!sm) return this.resume(t, undefined, r.fault);
    // migration_entry_wait: asleep until the migration ends, then the access runs again.
    if (t.stallSince < 0) t.stallSince = this.clock;
    t.state = "sleeping";
    t.sleptAt = this.clock;
    t.pending = a;
    sm.waiters.push(t);
  }

  // ---- migrations ----------------------------------------------------------------

  private startMigration(t: SimThread, req: MigrateRequest): void {
    const m = this.machine;
    let mig: MigrateVma;
    try {
      mig = m.migrateVmaSetup({
        proc: req.proc, start: req.start, end: req.end, flags: req.flags, pgmapOwner: req.pgmapOwner, readOnlyEntries: req.readOnlyEntries ?? false,
      });
    } catch (e) {
      // All of the machine's migration slots are busy: wait for one of ours to end.
      if (e instanceof MmError && e.code === "EBUSY" && !m.migrations.includes(null) && this.flying.size > 0) {
        t.state = "sleeping";
        t.sleptAt = this.clock;
        t.pending = { kind: "migrate", req };
        this.slotWaiters.push(t);
        return;
      }
      return this.resume(t, undefined, e);
    }
    const sm: SimMigration = { mig, req, thread: t, pfns: [], waiters: [], setupAt: this.clock, copyStart: 0, error: undefined };
    const src = mig.src;
    for (let i = 0; i < mig.npages; i++) {
      const pfn = migratePfnToPage(src[i]!);
      if (pfn < 0) continue;
      sm.pfns.push(pfn);
      this.byPfn.set(pfn, sm);
    }
    this.flying.add(sm);
    const c = this.cost;
    const setupNs = c.migrateSetupNs + mig.npages * c.migrateSetupPageNs + c.notifierNs;
    this.post(this.clock + setupNs, () => req.engine.submit({
      start: () => this.copy(sm),
      done: () => this.endMigration(sm),
    }));
  }

  /** The engine starts the copy: the new pages are allocated and filled now. */
  private copy(sm: SimMigration): number {
    sm.copyStart = this.clock;
    if (sm.mig.cpages === 0) return 0;
    try {
      const n = sm.mig.allocAndCopy(sm.req.target, { failFirst: sm.req.fail === "alloc" });
      return n * PAGE_SIZE;
    } catch (e) {
      sm.error = e;
      return 0;
    }
  }

  private endMigration(sm: SimMigration): void {
    const m = this.machine;
    const copyEnd = this.clock;
    this.trace.copy?.(sm.req.engine, sm.copyStart, copyEnd - sm.copyStart, (copyEnd - sm.copyStart) * sm.req.engine.bytesPerNs);
    const before = m.counter("pgmigrate_success");
    let error = sm.error;
    try {
      if (error !== undefined || sm.req.fail === "abort") sm.mig.abort();
      else sm.mig.finalize();
    } catch (e) {
      error ??= e;
    }
    const moved = m.counter("pgmigrate_success") - before;
    for (const pfn of sm.pfns) this.byPfn.delete(pfn);
    this.flying.delete(sm);
    const end = copyEnd + this.cost.finalizeNs + moved * this.cost.finalizePageNs;
    this.migrations++;
    this.pagesMoved += moved;
    this.migrationNs += end - sm.setupAt;
    // Sleepers wake in the order they went to sleep, none before its own fault is done.
    let at = end + this.cost.wakeNs;
    for (const w of sm.waiters) {
      at = Math.max(at, w.sleptAt + this.cost.faultNs);
      this.post(at, () => this.wake(w));
    }
    for (const w of this.slotWaiters.splice(0)) this.post(end, () => this.wake(w));
    const result: MigrateResult = { cpages: sm.mig.cpages, moved, setupAt: sm.setupAt, copyStart: sm.copyStart, copyEnd, endAt: end };
    this.trace.migration?.(sm.thread, result, sm.mig.readOnlyEntries);
    this.post(end, () => (error !== undefined ? this.resume(sm.thread, undefined, error) : this.resume(sm.thread, result)));
  }

  private wake(t: SimThread): void {
    const a = t.pending!;
    t.pending = null;
    t.state = "ready";
    this.trace.wake?.(t, this.clock);
    this.perform(t, a);
  }
}
