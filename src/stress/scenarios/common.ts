// What every scenario is made of: an emitter that runs ops until the run's budget is
// spent, and the workload pieces the scenarios share (CPU bursts with locality, a
// device "kernel launch" that migrates a range in and works on it).
import { Rng } from "../../random.js";
import { MmError } from "../../errors.js";
import { InputError } from "../machine-spec.js";
import { StressFailure } from "../world.js";
import type { DeviceKind } from "../machine-spec.js";
import type { Region, World } from "../world.js";
import type { ContentionReport } from "../contention.js";
import type { PinStormReport } from "../pinstorm.js";
import type { PmemReport } from "../pmemreport.js";
import type { FileWritebackReport } from "../filewb.js";
import {
  OP_CPU_READ, OP_CPU_WRITE, OP_DEV_READ, OP_DEV_WRITE, OP_MIGRATE_TO_DEV, OP_MIGRATE_TO_SYS, OP_MMAP, OP_SPAWN, packRange,
} from "../ops.js";

export class Emitter {
  constructor(readonly world: World, private limit: number) {}

  /** Ops still to run in this run. */
  get left(): number {
    return this.limit - this.world.ops;
  }

  op(kind: number, a = 0, b = 0, c = 0): void {
    if (this.world.ops < this.limit) this.world.exec(kind, a, b, c);
  }

  /** Ends the run here: what is left is too short for the generator's next step. */
  skip(): void {
    this.limit = this.world.ops;
  }
}

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Device kinds it drives; a machine without one of them is refused. */
  readonly needs: DeviceKind[];
  /**
   * Runs threads on the scheduler (src/sched) instead of emitting an op stream: its ops are
   * counted as they run, and there is no stream to record or replay.
   */
  readonly scheduled?: boolean;
  /** Needs a CMA area (the machine's `cma` field); a machine without one is refused. */
  readonly needsCma?: boolean;
  /** Needs a pmem device: a machine without one (the presets) gets one (machine-spec withPmem). */
  readonly needsPmem?: boolean;
  /** A fresh generator for one run. */
  create(world: World, rng: Rng): Generator;
}

export interface Generator {
  /** Emits the next few ops. */
  step(e: Emitter): void;
  /** The stall times of blocking vs read-only migration entries (migrate-contention). */
  contention?(): ContentionReport | undefined;
  /** Holds vs compaction, CMA and offline per holder mode (pin-storm). */
  pinStorm?(): PinStormReport | undefined;
  /** The same workload on pmem as storage (DAX, block I/O) and as RAM (pmem scenario). */
  pmem?(): PmemReport | undefined;
  /** Writeback of device-dirtied file pages per policy (file-writeback). */
  fileWriteback?(): FileWritebackReport | undefined;
}

/** System RAM frames of the machine. */
export function ramPages(w: World): number {
  return w.machine.config.frames;
}

/** The first device of a kind. */
export function deviceOf(w: World, kind: DeviceKind): number {
  return w.gpus.findIndex((g) => g.kind === kind);
}

export function liveRegions(w: World, proc?: number): Region[] {
  return proc === undefined ? w.live : w.live.filter((r) => r.proc === proc);
}

export function liveProcs(w: World): number[] {
  const out: number[] = [];
  w.procs.forEach((p, i) => {
    if (p) out.push(i);
  });
  return out;
}

/** Spawns a process and maps one region in it; returns the region, or null when the run ended first. */
export function spawnWithRegion(e: Emitter, pages: number, shared = false): Region | null {
  const w = e.world;
  if (e.left < 2) return null;
  e.op(OP_SPAWN);
  e.op(OP_MMAP, w.procs.length - 1, pages, shared ? 1 : 0);
  return w.regions[w.regions.length - 1]!;
}

/**
 * The generator of a scenario around one working set: the first step spawns a process and
 * maps `pages` in it (then runs `setup`, if any); every step then runs `step` on that region.
 */
export function workingSet(pages: number, step: (e: Emitter, ws: Region) => void, setup?: (e: Emitter) => void): Generator {
  let ws: Region | null = null;
  return {
    step(e: Emitter) {
      if (!ws) {
        ws = spawnWithRegion(e, pages);
        if (!ws) return e.skip();
        setup?.(e);
      }
      step(e, ws);
    },
  };
}

/** `n` CPU accesses to pages around a random spot of the region (a working set with locality). */
export function cpuBurst(e: Emitter, rng: Rng, r: Region, n: number, writeShare: number, window = 64): void {
  const center = rng.int(r.pages);
  const win = Math.min(window, r.pages);
  for (let i = 0; i < n && e.left > 0; i++) {
    const page = (center + rng.int(win)) % r.pages;
    e.op(r.writable && rng.next() < writeShare ? OP_CPU_WRITE : OP_CPU_READ, r.slot, page);
  }
}

/** A random sub-range of a region, at most `max` pages. */
export function subRange(rng: Rng, r: Region, max: number): { page: number; n: number } {
  const n = 1 + rng.int(Math.min(max, r.pages));
  return { page: rng.int(r.pages - n + 1), n };
}

/**
 * A device kernel launch: the driver migrates a range to its memory, then the device
 * loads and stores it in chunks (stores only where the region is writable).
 */
export function deviceKernel(e: Emitter, rng: Rng, dev: number, r: Region, max: number, migrate = true): void {
  const { page, n } = subRange(rng, r, max);
  if (migrate) e.op(OP_MIGRATE_TO_DEV, dev, r.slot, packRange(page, n));
  for (let at = page; at < page + n && e.left > 0; at += 32) {
    const k = Math.min(32, page + n - at);
    e.op(r.writable && rng.int(2) === 0 ? OP_DEV_WRITE : OP_DEV_READ, dev, r.slot, packRange(at, k));
  }
}

/** The driver moves a range back to system memory (e.g. after a kernel finished). */
export function migrateBack(e: Emitter, rng: Rng, dev: number, r: Region, max: number): void {
  const { page, n } = subRange(rng, r, max);
  e.op(OP_MIGRATE_TO_SYS, dev, r.slot, packRange(page, n));
}

/** Ops too few for a round: CPU reads and writes of `r`'s pages, drawn from `seed`. */
export function idleAccesses(e: Emitter, r: Region, seed: number): void {
  const rng = new Rng(seed);
  while (e.left > 0) e.op(rng.int(2) === 0 ? OP_CPU_WRITE : OP_CPU_READ, r.slot, rng.int(r.pages));
}

/** Runs part of a round: a finding (StressFailure, InputError) passes; any other error becomes a StressFailure of kind "error" about `what`. */
export function guardRound(w: World, what: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof StressFailure || e instanceof InputError) throw e;
    throw new StressFailure("error", w.ops, `${what}: ${e instanceof MmError ? "" : "emulator crashed: "}${(e as Error).message}`);
  }
}
