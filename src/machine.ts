// One emulated machine: a Wasm instance laid out from a configuration, its processes,
// counters and invariant checks.
import { resolveConfig, type MachineConfig, type ResolvedConfig } from "./config.js";
import { computeLayout, L, ZONE_RECORD, type Layout, type ZoneLayout } from "./layout.js";
import { instantiateCore, type CoreExports } from "./wasm.js";
import { readCounters, type Counters } from "./stats.js";
import { MmError, fail } from "./errors.js";
import { AccessBatch } from "./batch.js";
import { Process, type SpawnOptions } from "./process.js";
import { describeCheckFailure } from "./check.js";
import type { ShmemObject } from "./vma.js";

export interface ZoneInfo {
  node: number;
  name: "Normal" | "Movable";
  start: number;
  end: number;
  free: number;
  managed: number;
  wmarkMin: number;
  wmarkLow: number;
  wmarkHigh: number;
  /** Free blocks per order, 0..10, on the buddy lists. */
  freeArea: number[];
  /** Free order-0 pages cached on the per-cpu list (counted in `free`). */
  pcp: number;
}

export class Machine {
  readonly config: ResolvedConfig;
  readonly layout: Layout;
  /** @internal */ readonly core: CoreExports;
  /** @internal */ readonly u32: Uint32Array;
  /** @internal */ readonly result: DataView;
  private readonly stats: BigInt64Array;
  private readonly batchRegion: AccessBatch;
  private readonly processes = new Set<Process>();
  private nextPid = 1;
  private nextAnonVma = 1;
  private readonly freeShmem: number[] = [];
  /** Invariant checks run so far. */
  checksRun = 0;

  private constructor(config: ResolvedConfig) {
    this.config = config;
    this.core = instantiateCore(config.build);
    this.layout = computeLayout(config, this.core.heapBase());
    const mem = this.core.memory;
    const have = mem.buffer.byteLength / 65536;
    if (this.layout.wasmPages > have) mem.grow(this.layout.wasmPages - have);
    const buf = mem.buffer;
    this.u32 = new Uint32Array(buf);
    new Uint32Array(buf, this.core.layoutPtr(), this.layout.slots.length).set(this.layout.slots);
    this.writeZones(this.layout.zones);
    this.core.init();
    const s = this.layout.slots;
    this.stats = new BigInt64Array(buf, s[L.STATS]!, 32);
    this.result = new DataView(buf, s[L.RESULT]!, 256);
    this.batchRegion = new AccessBatch(
      new Uint32Array(buf, s[L.OPS]!, s[L.MAX_OPS]! * 8),
      new Uint8Array(buf, s[L.DATA]!, s[L.DATA_SIZE]!),
      config.content === "bytes",
    );
    for (let id = config.maxShmem - 1; id >= 0; id--) this.freeShmem.push(id);
  }

  /** Lays out a machine. Throws MmError (EINVAL, ENOMEM) for a configuration that cannot be built. */
  static create(config: MachineConfig = {}): Machine {
    return new Machine(resolveConfig(config));
  }

  private writeZones(zones: ZoneLayout[]): void {
    const base = this.layout.slots[L.ZONES]!;
    for (const z of zones) {
      const w = (base + z.id * ZONE_RECORD) / 4;
      this.u32[w] = z.start;
      this.u32[w + 1] = z.end;
      this.u32[w + 2] = z.node;
      this.u32[w + 3] = z.type;
      this.u32[w + 6] = z.wmarkMin;
      this.u32[w + 7] = z.wmarkLow;
      this.u32[w + 8] = z.wmarkHigh;
    }
  }

  /** A new process with an empty address space. */
  spawn(options: SpawnOptions = {}): Process {
    const node = options.node ?? 0;
    if (!Number.isInteger(node) || node < 0 || node >= this.config.nodes.length)
      fail("EINVAL", "spawn", `node ${String(node)} does not exist (the machine has ${this.config.nodes.length})`, node);
    const mm = this.core.mmCreate(node);
    if (mm < 0) fail("ENOMEM", "spawn", `no process slot or page table left (maxProcesses ${this.config.maxProcesses})`);
    const p = new Process(this, mm, this.nextPid++, node);
    this.processes.add(p);
    return p;
  }

  /** Live processes. */
  get procs(): Process[] {
    return [...this.processes];
  }

  /** @internal */
  forget(p: Process): void {
    this.processes.delete(p);
  }

  /** @internal */
  newAnonVma(): number {
    const id = this.nextAnonVma;
    this.nextAnonVma = (this.nextAnonVma % 0x7ffffffe) + 1;
    return id;
  }

  /** @internal */
  openShmem(fn: string, pages: number): ShmemObject {
    const id = this.freeShmem.pop();
    if (id === undefined) fail("ENOMEM", fn, `all ${this.config.maxShmem} shared anonymous objects are in use (maxShmem)`);
    this.core.shmemOpen(id, pages);
    return { id, refs: 0, pages };
  }

  /** @internal Adjusts VMA references to shmem objects; the last one frees the object's pages. */
  shmemRefs(delta: Map<ShmemObject, number>): void {
    for (const [obj, d] of delta) {
      obj.refs += d;
      if (obj.refs === 0) {
        this.core.shmemClose(obj.id);
        this.freeShmem.push(obj.id);
      }
    }
  }

  /** @internal The single access batch, cleared. */
  batch(): AccessBatch {
    return this.batchRegion.clear();
  }

  /** vmstat counters, by their kernel names. */
  counters(): Counters {
    return readCounters(this.stats);
  }

  /** Per-zone state, as /proc/zoneinfo would show it. */
  zones(): ZoneInfo[] {
    const base = this.layout.slots[L.ZONES]!;
    return this.layout.zones.map((z) => {
      const w = (base + z.id * ZONE_RECORD) / 4;
      return {
        node: z.node,
        name: z.type === 3 ? "Movable" : "Normal",
        start: z.start,
        end: z.end,
        managed: this.u32[w + 4]!,
        free: this.u32[w + 5]!,
        wmarkMin: z.wmarkMin,
        wmarkLow: z.wmarkLow,
        wmarkHigh: z.wmarkHigh,
        freeArea: Array.from({ length: 11 }, (_, o) => this.u32[(base + z.id * ZONE_RECORD + 112) / 4 + o]!),
        pcp: this.u32[w + 10]!,
      };
    });
  }

  /** drain_all_pages: returns the per-cpu cached pages to the buddy lists. */
  drainPages(): void {
    this.core.drainAllPages();
  }

  /** Verifies every invariant of DESIGN.md §5; throws MmError("EFAULT") naming the first broken one. */
  check(): void {
    this.checksRun++;
    const code = this.core.check();
    if (code === 0) return;
    const r = this.result;
    const msg = describeCheckFailure(code, r.getFloat64(40, true), r.getFloat64(48, true), r.getFloat64(56, true));
    throw new MmError("EFAULT", "check", `invariant broken: ${msg}`, code);
  }

  /** Bytes of Wasm memory this machine uses. */
  get memoryBytes(): number {
    return this.core.memory.buffer.byteLength;
  }
}
