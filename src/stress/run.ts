// One stress run: a scenario's generator (or a recorded op stream) driven through a
// World, then the final verification, and the run's report. Everything in the report
// is a function of the ops, so the same seed gives the same report, byte for byte.
import { Rng } from "../random.js";
import type { Counters } from "../stats.js";
import { PAGE_STATES } from "./census.js";
import { LATENCY_KINDS, type LatencyKind, type TraceEvent } from "./timeline.js";
import type { HistogramData } from "./histogram.js";
import { summarizeHistogram } from "./report.js";
import { InputError, withPmem, type MachineSpec } from "./machine-spec.js";
import { Emitter, scenarioByName, SCENARIOS, type Generator } from "./scenarios/index.js";
import { OP_WORDS } from "./ops.js";
import { MAX_RECORD_OPS } from "./record.js";
import { StressFailure, World, type FailureKind } from "./world.js";
import type { FileWritebackReport } from "./filewb.js";
import type { ContentionReport } from "./contention.js";
import type { PinStormReport } from "./pinstorm.js";
import type { PmemReport } from "./pmemreport.js";

/** Census samples a run of known length takes at most (plus one at the start), and ops between two at least. */
export const SAMPLES = 200;
export const MIN_SAMPLE_EVERY = 16384;
/** Without a known length (--duration), one census per this many ops. */
export const DURATION_SAMPLE_EVERY = 65536;

export interface RunOptions {
  scenario: string;
  seed: number;
  /** Ops to run; or `durationMs` of wall time. */
  ops?: number;
  durationMs?: number;
  machine: MachineSpec;
  /** machine.check() every this many ops (default 65536). */
  checkEvery?: number;
  /** Chrome trace events of simulated time. */
  trace?: boolean;
  /** Keep the op stream for a record file. */
  record?: boolean;
  build?: "debug" | "release";
  /** Called about every 4096 ops with the ops done. */
  onProgress?: (done: number) => void;
}

export interface LatencySummary {
  count: number;
  meanNs: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  maxNs: number;
  histogram: HistogramData;
}

export interface DeviceReport {
  name: string;
  kind: string;
  pages: number;
  migratedIn: number;
  migratedOut: number;
  evicted: number;
  cpuFaults: number;
  hmmCalls: number;
  pagesRead: number;
  pagesWritten: number;
}

export interface TimelineSample {
  op: number;
  simNs: number;
  /** Frames per page state, in `states` order. */
  counts: number[];
  /** One digit per bucket of frames: the index of its most common state other than free. */
  map: string;
  pgmigrate_success: number;
  pgfault: number;
}

export interface RunReport {
  scenario: string;
  seed: number;
  machine: MachineSpec;
  ops: number;
  checkEvery: number;
  checks: number;
  simulatedNs: number;
  opCounts: Record<string, number>;
  counters: Counters;
  devices: DeviceReport[];
  exclusiveRefused: number;
  /** Pages read back and compared with the shadow at the end. */
  verifiedPages: number;
  latency: Record<LatencyKind, LatencySummary>;
  /** Per simulated second, over the whole run. */
  rates: { opsPerSimSecond: number; migrationsPerSimSecond: number };
  timeline: { states: readonly string[]; frames: number; framesPerBucket: number; samples: TimelineSample[] };
  failure: { kind: FailureKind; opIndex: number; message: string } | null;
  /** migrate-contention: stall times with blocking vs read-only migration entries. */
  contention?: ContentionReport;
  /** pin-storm: holds vs compaction, CMA and offline per holder mode. */
  pinStorm?: PinStormReport;
  /** pmem: the same workload on pmem as storage and as RAM. */
  pmem?: PmemReport;
  /** file-writeback: device-dirtied file pages written back per policy. */
  fileWriteback?: FileWritebackReport;
}

export interface StressResult {
  report: RunReport;
  /** Trace-event JSON object, when asked. */
  trace?: { traceEvents: TraceEvent[] };
  /** The op stream, when asked: a header and the words. */
  record?: { header: RecordHeader; words: Uint32Array };
  /** Wall time of the ops, for the terminal only (never in the report). */
  wallMs: number;
}

export interface RecordHeader {
  format: "mmemu-record";
  version: 1;
  scenario: string;
  seed: number;
  machine: MachineSpec;
  checkEvery: number;
  sampleEvery: number;
  ops: number;
}

/** Where a run's ops come from: a scenario's generator, or a recorded stream. */
interface Source {
  /** Runs ops until `world.ops` reaches `target` (or a little past it) or the source ends; false when it has ended. */
  run(world: World, target: number): boolean;
  /** The scenario's contention figures, if it has any. */
  contention?(): ContentionReport | undefined;
  pinStorm?(): PinStormReport | undefined;
  pmem?(): PmemReport | undefined;
  fileWriteback?(): FileWritebackReport | undefined;
}

/**
 * A run that can go step by step (the browser demo draws between steps) or to its end.
 * Step boundaries fall between generator steps, so any stepping gives the same ops.
 */
export class StressRun {
  readonly world: World;
  private failure: RunReport["failure"] = null;
  private ended = false;
  private wallMs = 0;

  private constructor(
    private readonly opts: RunOptions,
    private readonly header: Omit<RecordHeader, "ops">,
    private readonly source: Source,
  ) {
    this.world = new World({
      spec: opts.machine, build: opts.build, checkEvery: header.checkEvery, sampleEvery: header.sampleEvery, trace: opts.trace, record: opts.record,
    });
  }

  /** A run of a scenario from its seed. */
  static fromScenario(opts: RunOptions): StressRun {
    checkRunOptions(opts);
    const scenario = scenarioByName(opts.scenario)!;
    if (scenario.needsPmem) opts = { ...opts, machine: withPmem(opts.machine) };
    let ops = opts.durationMs !== undefined ? Infinity : opts.ops ?? 1_000_000;
    // A record longer than replay accepts ends the run there.
    if (opts.record) ops = Math.min(ops, MAX_RECORD_OPS);
    const sampleEvery = Number.isFinite(ops) ? Math.max(Math.min(MIN_SAMPLE_EVERY, ops), Math.ceil(ops / SAMPLES)) : DURATION_SAMPLE_EVERY;
    const header = { format: "mmemu-record", version: 1, scenario: scenario.name, seed: opts.seed, machine: opts.machine, checkEvery: opts.checkEvery ?? 65536, sampleEvery } as const;
    let gen: Generator | null = null;
    let emitter: Emitter | null = null;
    const deadline = opts.durationMs !== undefined ? performance.now() + opts.durationMs : Infinity;
    return new StressRun(opts, header, {
      run(world, target) {
        if (!gen) {
          gen = scenario.create(world, new Rng(opts.seed));
          emitter = new Emitter(world, ops);
        }
        while (emitter!.left > 0 && world.ops < target) gen.step(emitter!);
        return emitter!.left > 0 && performance.now() < deadline;
      },
      contention: () => gen?.contention?.(),
      pinStorm: () => gen?.pinStorm?.(),
      pmem: () => gen?.pmem?.(),
      fileWriteback: () => gen?.fileWriteback?.(),
    });
  }

  /** A re-run of a recorded op stream; its report equals the recorded run's. */
  static fromRecord(header: RecordHeader, words: Uint32Array, opts: Pick<RunOptions, "trace" | "build" | "onProgress"> = {}): StressRun {
    const run: RunOptions = { scenario: header.scenario, seed: header.seed, machine: header.machine, checkEvery: header.checkEvery, ...opts };
    let i = 0;
    return new StressRun(run, header, {
      run(world, target) {
        for (; i < header.ops && world.ops < target; i++) {
          const w = i * OP_WORDS;
          world.exec(words[w]!, words[w + 1]!, words[w + 2]!, words[w + 3]!);
        }
        return i < header.ops;
      },
    });
  }

  get done(): boolean {
    return this.ended;
  }

  /** Runs about `n` more ops; false once the run has ended (all ops run, out of time, or failed). */
  step(n: number): boolean {
    if (this.ended) return false;
    const t0 = performance.now();
    try {
      const more = this.source.run(this.world, this.world.ops + n);
      this.world.flush();
      if (!more) this.ended = true;
    } catch (e) {
      this.ended = true;
      this.fail(e);
    }
    this.wallMs += performance.now() - t0;
    this.opts.onProgress?.(this.world.ops);
    return !this.ended;
  }

  private fail(e: unknown): void {
    if (e instanceof InputError) throw e;
    // A crash's stack would tie the report to this checkout's paths: name and message only.
    const f = e instanceof StressFailure ? e : new StressFailure("error", this.world.ops, `emulator crashed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    this.failure = { kind: f.kind, opIndex: f.opIndex, message: f.message };
  }

  /** Runs what is left, then the final checks; returns the report. */
  finish(): StressResult {
    while (this.step(65536));
    const world = this.world;
    let verifiedPages = 0;
    let workload: Workload | null = null;
    if (!this.failure) {
      try {
        world.check();
        if (this.header.sampleEvery > 0 && world.samples.at(-1)?.op !== world.ops) world.sample();
        // The report describes the workload: taken before the final read-back adds its own faults.
        workload = this.workload();
        verifiedPages = world.verifyAndTearDown();
      } catch (e) {
        this.fail(e);
      }
    }
    return this.result(workload ?? this.workload(), verifiedPages);
  }

  private workload(): Workload {
    const world = this.world;
    let counters: Counters;
    try {
      counters = world.machine.counters();
    } catch {
      counters = {} as Counters;
    }
    return {
      counters,
      simulatedNs: world.tl.now,
      devices: world.gpus.map((g) => ({ name: g.name, kind: g.kind, pages: g.pages, ...g.stats })),
      latency: Object.fromEntries(LATENCY_KINDS.map((k) => [k, summarizeHistogram(world.tl.latencies[k])])) as Record<LatencyKind, LatencySummary>,
      contention: this.source.contention?.(),
      pinStorm: this.source.pinStorm?.(),
      pmem: this.source.pmem?.(),
      fileWriteback: this.source.fileWriteback?.(),
    };
  }

  private result(w: Workload, verifiedPages: number): StressResult {
    const world = this.world;
    const header = this.header;
    const simS = w.simulatedNs / 1e9;
    const migrations = w.devices.reduce((s, d) => s + d.migratedIn + d.migratedOut + d.evicted, 0);
    const { framesPerBucket, frames } = world.buckets;
    const report: RunReport = {
      scenario: header.scenario,
      seed: header.seed,
      machine: header.machine,
      ops: world.ops,
      checkEvery: header.checkEvery,
      checks: world.machine.checksRun,
      simulatedNs: w.simulatedNs,
      opCounts: world.opCounts,
      counters: w.counters,
      devices: w.devices,
      exclusiveRefused: world.exclusiveRefused,
      verifiedPages,
      latency: w.latency,
      rates: {
        opsPerSimSecond: simS > 0 ? Math.round(world.ops / simS) : 0,
        migrationsPerSimSecond: simS > 0 ? Math.round(migrations / simS) : 0,
      },
      timeline: {
        states: PAGE_STATES, frames, framesPerBucket,
        samples: world.samples.map((s) => ({ op: s.op, simNs: s.simNs, counts: s.census.counts, map: s.census.map, pgmigrate_success: s.pgmigrate_success, pgfault: s.pgfault })),
      },
      failure: this.failure,
    };
    if (w.contention) report.contention = w.contention;
    if (w.pinStorm) report.pinStorm = w.pinStorm;
    if (w.pmem) report.pmem = w.pmem;
    if (w.fileWriteback) report.fileWriteback = w.fileWriteback;
    const out: StressResult = { report, wallMs: this.wallMs };
    if (this.opts.trace) out.trace = world.tl.traceJSON(`mmemu ${header.scenario} seed ${header.seed}`);
    if (world.log) out.record = { header: { ...header, ops: world.log.length }, words: world.log.view() };
    return out;
  }
}

/** What a report says of the workload itself (before the final read-back). */
interface Workload {
  counters: Counters;
  simulatedNs: number;
  devices: DeviceReport[];
  latency: Record<LatencyKind, LatencySummary>;
  contention: ContentionReport | undefined;
  pinStorm: PinStormReport | undefined;
  pmem: PmemReport | undefined;
  fileWriteback: FileWritebackReport | undefined;
}

export function checkRunOptions(opts: RunOptions): void {
  if (!scenarioByName(opts.scenario)) throw new InputError(`unknown scenario "${opts.scenario}" (scenarios: ${SCENARIOS.map((s) => s.name).join(", ")})`);
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff) throw new InputError(`seed must be an integer in [0, 2^32), got ${opts.seed}`);
  if (opts.ops !== undefined && (!Number.isInteger(opts.ops) || opts.ops < 1 || opts.ops > 1e10)) throw new InputError(`ops must be a positive integer, got ${opts.ops}`);
  if (opts.checkEvery !== undefined && (!Number.isInteger(opts.checkEvery) || opts.checkEvery < 1)) throw new InputError(`check interval must be a positive integer, got ${opts.checkEvery}`);
  const sc = scenarioByName(opts.scenario)!;
  if (opts.record && sc.scheduled) throw new InputError(`scenario "${sc.name}" runs its threads on the scheduler; it has no op stream to record`);
  if (sc.needsCma && !opts.machine.cma?.length) throw new InputError(`scenario "${sc.name}" needs a CMA area (the machine's "cma" field, e.g. "cma": [{ "node": 0, "pages": 1024 }]); the machine has none`);
  for (const kind of sc.needs) {
    if (!opts.machine.devices.some((d) => d.kind === kind)) throw new InputError(`scenario "${sc.name}" needs a device-${kind} device; the machine has none`);
  }
}

/** Runs a scenario from its seed to its end. */
export function runScenario(opts: RunOptions): StressResult {
  return StressRun.fromScenario(opts).finish();
}

/** Re-runs a recorded op stream to its end. */
export function replay(header: RecordHeader, words: Uint32Array, opts: Pick<RunOptions, "trace" | "build" | "onProgress"> = {}): StressResult {
  return StressRun.fromRecord(header, words, opts).finish();
}
