// migrate-contention: CPU reader and writer threads hammer a region while the driver threads
// of a device-coherent accelerator migrate its chunks to device memory and back. Round by
// round the same workload (the same thread programs, drawn from the seed) runs twice, in
// two regions of one process: with the kernel's blocking migration entries, where every
// access to a page under migration sleeps, and with read-only migration entries (seed 004),
// where only writers do. The report compares the stall times. The threads run on the
// scheduler (src/sched), so ops are counted as they run; every read is checked against
// the shadow of the last write at the instant it runs.
import { Rng } from "../../random.js";
import { MmError } from "../../errors.js";
import { PAGE_SIZE } from "../../constants.js";
import { MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_SYSTEM } from "../../migrate.js";
import { Scheduler } from "../../sched/scheduler.js";
import type { Program, SimThread, ThreadApi } from "../../sched/thread.js";
import type { Process } from "../../process.js";
import type { CopyEngine } from "../../sched/engine.js";
import { InputError } from "../machine-spec.js";
import { StressFailure, type Region, type World } from "../world.js";
import type { Gpu } from "../gpu.js";
import { OP_CPU_READ, OP_CPU_WRITE, OP_MIGRATE_TO_DEV, OP_MIGRATE_TO_SYS, OP_MMAP, OP_SPAWN } from "../ops.js";
import { CONTENTION_MODES, ContentionTally, type ContentionModeName, type ContentionReport } from "../contention.js";
import { deviceOf, ramPages, type Emitter, type Generator, type Scenario } from "./common.js";

const READERS = 4;
const WRITERS = 2;
const MIGRATORS = 2;
/** Ops per mode in one round (a round runs both modes). */
const ROUND_OPS = 1 << 16;
const MAX_REGION_PAGES = 1024;
const MAX_CHUNK_PAGES = 64;
/** Think time between accesses: readers 100-400 ns, writers 500-1500 ns; drivers 2-10 µs between migrations. */
const READ_THINK = [100, 300] as const;
const WRITE_THINK = [500, 1000] as const;
const MIGRATE_GAP = [2_000, 8_000] as const;
/** Migrations per op of a mode's quota, so the drivers keep migrating about as long as the CPUs access. */
const MIGRATIONS_PER_OP = 1 / 440;
/** Timeline tracks of the threads: one block per mode. */
const TRACK_BASE = 200;

export const migrateContention: Scenario = {
  name: "migrate-contention",
  summary: "readers and writers vs a device migrating their region back and forth: blocking vs read-only migration entries",
  needs: ["coherent"],
  scheduled: true,
  create(w: World, rng: Rng): Generator {
    return new Contention(w, rng.int(2 ** 31));
  },
};

/** How a mode's ops split among the threads: the same in both modes. */
function quotas(perMode: number): { readers: number[]; writers: number[]; migrators: number[] } {
  const mig = perMode >= 2 * MIGRATORS / MIGRATIONS_PER_OP ? Math.round(perMode * MIGRATIONS_PER_OP) : perMode >= 64 ? 1 : 0;
  const rest = perMode - MIGRATORS * mig;
  // Readers weigh 4, writers 1.
  const unit = Math.floor(rest / (4 * READERS + WRITERS));
  const readers = new Array<number>(READERS).fill(4 * unit);
  const writers = new Array<number>(WRITERS).fill(unit);
  readers[0]! += rest - unit * (4 * READERS + WRITERS);
  return { readers, writers, migrators: new Array<number>(MIGRATORS).fill(mig) };
}

class Contention implements Generator {
  private regions: Region[] | null = null;
  private gpu!: Gpu;
  private chunk = 0;
  /** Per mode: which chunks the drivers last sent to the device (their programs' own view). */
  private placement: Uint8Array[] = [];
  private tally: ContentionTally | null = null;
  private round = 0;

  constructor(private readonly world: World, private readonly seed: number) {}

  step(e: Emitter): void {
    if (!this.regions && !this.setup(e)) return e.skip();
    const perMode = Math.min(ROUND_OPS, Math.floor(e.left / 2));
    if (perMode < 1) return e.skip();
    const roundSeed = new Rng(this.seed + this.round * 0x9e3779b9).int(2 ** 31);
    CONTENTION_MODES.forEach((mode, i) => this.runMode(mode, i, roundSeed, perMode));
    this.round++;
  }

  contention(): ContentionReport | undefined {
    return this.tally?.report();
  }

  /** A process with one region per mode, every page written once (through the executor, with its shadow). */
  private setup(e: Emitter): boolean {
    const w = this.world;
    this.gpu = w.gpus[deviceOf(w, "coherent")]!;
    let pages = Math.floor(Math.min(MAX_REGION_PAGES, this.gpu.pages / 2, ramPages(w) / 8, (e.left - 4) / 8));
    if (pages < 16) return false;
    this.chunk = Math.min(MAX_CHUNK_PAGES, Math.floor(pages / 4));
    pages -= pages % this.chunk;
    e.op(OP_SPAWN);
    const proc = w.procs.length - 1;
    this.regions = CONTENTION_MODES.map(() => {
      e.op(OP_MMAP, proc, pages, 0);
      return w.regions[w.regions.length - 1]!;
    });
    for (const r of this.regions) for (let p = 0; p < pages; p++) e.op(OP_CPU_WRITE, r.slot, p);
    // What is left splits evenly between the two modes.
    if (Number.isFinite(e.left) && e.left % 2 === 1) e.op(OP_CPU_WRITE, this.regions[0]!.slot, 0);
    w.flush();
    this.placement = CONTENTION_MODES.map(() => new Uint8Array(pages / this.chunk));
    this.tally = new ContentionTally({ readers: READERS, writers: WRITERS, migrators: MIGRATORS }, pages, this.chunk);
    return true;
  }

  /** One mode's share of a round: every thread's program from the round's seed, run to its end. */
  private runMode(mode: ContentionModeName, modeIndex: number, roundSeed: number, perMode: number): void {
    const w = this.world;
    const region = this.regions![modeIndex]!;
    const proc: Process = w.procs[region.proc]!;
    const tally = this.tally!;
    const base = w.tl.now;
    const track = (t: SimThread): number => TRACK_BASE + modeIndex * 16 + t.id;
    const s = new Scheduler(w.machine, {
      trace: {
        access(t, _p, addr, write, tag) {
          const page = (addr - region.addr) / PAGE_SIZE;
          if (write) {
            region.shadow[page] = Number(tag);
            tally.writesChecked++;
          } else if (Number(tag) !== region.shadow[page]) {
            throw new StressFailure("data", w.ops, `${mode} entries: ${t.name} read tag ${tag} from page ${page} of region ${region.slot}, expected ${region.shadow[page]}`);
          } else {
            tally.readsChecked++;
          }
        },
        stall: (t, write, start, ns) => w.tl.span(track(t), write ? "write stalled on a migration" : "read stalled on a migration", base + start, ns),
        migration: (t, r) => w.tl.span(track(t), `migrate_vma (${mode} entries)`, base + r.setupAt, r.endAt - r.setupAt, { pages: r.cpages, moved: r.moved }),
        copy: (_e, start, ns, bytes) => w.tl.span(this.gpu.track, "copy", base + start, ns, { bytes }),
      },
    });
    const engine = s.engine(this.gpu.name, PAGE_SIZE / w.cost.pageCopyCoherentNs);
    const q = quotas(perMode);
    const seeds = new Rng(roundSeed);
    const spawn = (name: string, program: Program): void => {
      const th = s.spawn(`${mode} ${name}`, program);
      w.tl.nameTrack(track(th), th.name);
    };
    q.readers.forEach((n, k) => spawn(`reader ${k}`, this.cpu(proc, region, n, false, new Rng(seeds.int(2 ** 31)))));
    q.writers.forEach((n, k) => spawn(`writer ${k}`, this.cpu(proc, region, n, true, new Rng(seeds.int(2 ** 31)))));
    q.migrators.forEach((n, k) => spawn(`driver ${k}`, this.driver(proc, region, n, k, mode, engine, this.placement[modeIndex]!, new Rng(seeds.int(2 ** 31)))));
    try {
      s.run();
    } catch (e) {
      if (e instanceof StressFailure || e instanceof InputError) throw e;
      throw new StressFailure("error", w.ops, `${mode} entries: ${e instanceof MmError ? "" : "emulator crashed: "}${(e as Error).message}`);
    }
    tally.addRound(mode, s);
    w.tl.advance(s.now);
  }

  /** A CPU thread: `n` reads (or writes of fresh tags) of random pages, with think time between. */
  private cpu(proc: Process, region: Region, n: number, write: boolean, rng: Rng): Program {
    const w = this.world;
    const [think, spread] = write ? WRITE_THINK : READ_THINK;
    return function* (t: ThreadApi) {
      for (let i = 0; i < n; i++) {
        w.tally(write ? OP_CPU_WRITE : OP_CPU_READ);
        const addr = region.addr + rng.int(region.pages) * PAGE_SIZE;
        if (write) yield* t.write(proc, addr, BigInt(w.freshTag()));
        else yield* t.read(proc, addr);
        yield* t.compute(think + rng.int(spread));
      }
    };
  }

  /**
   * A driver thread: `n` migrations of its own chunks (every MIGRATORS-th), each to the device
   * if it last sent it home, else home; the decisions depend on the program alone.
   */
  private driver(proc: Process, region: Region, n: number, k: number, mode: ContentionModeName, engine: CopyEngine, placed: Uint8Array, rng: Rng): Program {
    const w = this.world;
    const gpu = this.gpu;
    const chunk = this.chunk;
    const mine = Math.ceil((placed.length - k) / MIGRATORS);
    return function* (t: ThreadApi) {
      for (let i = 0; i < n && mine > 0; i++) {
        const c = k + MIGRATORS * rng.int(mine);
        const toDevice = placed[c] === 0;
        placed[c] = toDevice ? 1 : 0;
        w.tally(toDevice ? OP_MIGRATE_TO_DEV : OP_MIGRATE_TO_SYS);
        const start = region.addr + c * chunk * PAGE_SIZE;
        const r = yield* t.migrate({
          proc: proc, start, end: start + chunk * PAGE_SIZE, pgmapOwner: gpu, engine, readOnlyEntries: mode === "read-only",
          flags: toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_COHERENT,
          target: toDevice ? gpu.pgmap : { node: proc.node },
        });
        if (toDevice) gpu.stats.migratedIn += r.moved;
        else gpu.stats.migratedOut += r.moved;
        yield* t.compute(MIGRATE_GAP[0] + rng.int(MIGRATE_GAP[1]));
      }
    };
  }
}
