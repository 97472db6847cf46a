// A pmem device (seed 001): pfns after system RAM that are storage (no struct page; block
// I/O and DAX) or, onlined as RAM, memory of a node's ZONE_MOVABLE.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { fail, hex } from "../errors.js";
import { L } from "../layout.js";
import { PAGE_SIZE, VM_PFNMAP } from "../constants.js";
import type { OfflineResult } from "../hotplug.js";
import type { BlockDevice, InjectedError, IoStats, Wear } from "../block/types.js";
import { checkRequest, copySectors, ioCostNs, newStats } from "./io.js";
import { ErrorRules } from "../block/faults.js";
import { daxMmapRange, liveProcess, type DaxMmapOptions } from "./dax.js";
import { onlineMovable, offlineAndRemove } from "./kmem.js";

export type PmemMode = "storage" | "ram";

/** What struct pages for the device cost, in our emulator and in the kernel (64 bytes each). */
export interface StructPageOverhead {
  mode: PmemMode;
  pages: number;
  /** Our struct page (plus check scratch) per frame. */
  bytesPerPage: number;
  /** Held now: 0 in storage mode. */
  bytes: number;
  kernelBytesPerPage: number;
  kernelBytes: number;
  /** What RAM mode costs (or costs now): pages × bytesPerPage, and the kernel's. */
  ramModeBytes: number;
  ramModeKernelBytes: number;
}

export const KERNEL_STRUCT_PAGE_BYTES = 64;

export class PmemDevice implements BlockDevice {
  /** ADR: a store that reached the device is durable; there is no volatile cache. */
  readonly volatileCache = false;
  readonly stats: IoStats = newStats();
  private clock = 0;
  /** @internal Also holds machine.inject's blockio rules. */
  readonly errors = new ErrorRules();
  /** @internal The zone slot while online as RAM, else -1. */
  zoneId = -1;

  /** @internal */
  constructor(
    private readonly machine: Machine,
    readonly name: string,
    /** First pfn. */
    readonly start: number,
    /** One past the last pfn. */
    readonly end: number,
    /** The node RAM mode onlines to by default. */
    readonly node: number,
    /** @internal Its pfn range for DAX faults (assembly/pmem.ts). */
    readonly rangeId: number,
  ) {}

  get mode(): PmemMode {
    return this.zoneId >= 0 ? "ram" : "storage";
  }

  get nrSectors(): number {
    return this.end - this.start;
  }

  get clockNs(): number {
    return this.clock;
  }

  /** The pfn that holds `sector`. */
  pfn(sector: number): number {
    return this.start + this.sector("pfn", sector);
  }

  private sector(fn: string, s: number): number {
    if (!Number.isInteger(s) || s < 0 || s >= this.nrSectors) fail("EINVAL", fn, `sector ${String(s)} is not a sector of ${this.name} (0..${this.nrSectors - 1})`, s);
    return s;
  }

  private storage(fn: string): void {
    if (this.mode !== "storage") fail("EBUSY", fn, `${this.name} is online as RAM: kmem owns the range until offlineRam()`, this.name);
  }

  private charge(ns: number): number {
    this.clock += ns;
    this.stats.busyNs += ns;
    return ns;
  }

  private io(fn: string, op: "read" | "write", sectors: ArrayLike<number>, pfns: ArrayLike<number>): number {
    this.storage(fn);
    checkRequest(this.machine, fn, this.nrSectors, sectors, pfns);
    if (this.errors.takeSectors(op, sectors)) {
      this.stats.errors++;
      fail("EIO", fn, `${this.name}: injected ${op} error (nothing was transferred)`, sectors[0]);
    }
    copySectors(this.machine, this.start, sectors, pfns, op === "write");
    if (op === "write") {
      this.stats.writes++;
      this.stats.sectorsWritten += sectors.length;
    } else {
      this.stats.reads++;
      this.stats.sectorsRead += sectors.length;
    }
    return this.charge(ioCostNs(sectors.length));
  }

  /** Copies sector[i] into frame pfns[i]. Returns the cost in ns (~100 ns + 4096 B / 10 B/ns per sector). */
  read(sectors: ArrayLike<number>, pfns: ArrayLike<number>): number {
    return this.io("pmem.read", "read", sectors, pfns);
  }

  /** Copies frame pfns[i] into sector[i], durable at once (FUA changes nothing); each sector counts a write. */
  write(sectors: ArrayLike<number>, pfns: ArrayLike<number>, opts: { fua?: boolean } = {}): number {
    if (typeof opts !== "object" || opts === null || Array.isArray(opts)) fail("EINVAL", "pmem.write", "opts must be an object", opts);
    return this.io("pmem.write", "write", sectors, pfns);
  }

  /** REQ_PREFLUSH: nothing is volatile (ADR), so it costs nothing. */
  flush(): number {
    this.storage("pmem.flush");
    // Nothing is ever cached, so only a rule for every flush matches one.
    if (this.errors.take("flush", () => false)) {
      this.stats.errors++;
      fail("EIO", "pmem.flush", `${this.name}: injected flush error`);
    }
    this.stats.flushes++;
    return this.charge(0);
  }

  /** A power failure: pmem holds every completed write already, so nothing is lost. */
  powerFail(): void {}

  /** A sector's contents: its 4096 bytes (a copy), or its tag in tags mode. */
  peek(sector: number): Uint8Array | bigint {
    const pfn = this.start + this.sector("pmem.peek", sector);
    const m = this.machine;
    const s = m.layout.slots;
    if (m.config.content === "tags") return new BigUint64Array(m.core.memory.buffer, s[L.TAGS]! + pfn * 8, 1)[0]!;
    return new Uint8Array(m.core.memory.buffer, s[L.FRAMES]! + pfn * PAGE_SIZE, PAGE_SIZE).slice();
  }

  /** What survives a power failure: everything written (pmem is its own durable media). */
  peekDurable(sector: number): Uint8Array | bigint {
    return this.peek(sector);
  }

  private wearView(): Uint32Array {
    const m = this.machine;
    return new Uint32Array(m.core.memory.buffer, m.layout.slots[L.PMEM_WEAR]! + (this.start - m.config.frames) * 4, this.nrSectors);
  }

  /** Writes that reached the sector's media: block writes and CPU stores (DAX, or as RAM). */
  writeCount(sector: number): number {
    return this.wearView()[this.sector("pmem.writeCount", sector)]!;
  }

  /** @internal A store that reached `sector`'s media outside block I/O and DAX PTEs (read/write of a DAX file). */
  noteWrite(sector: number): void {
    const w = this.wearView();
    w[sector] = w[sector]! + 1;
  }

  /** The most-written sector's count, the mean over all sectors, and how many were ever written. */
  wear(): Wear {
    let max = 0;
    let sum = 0;
    let touched = 0;
    for (const c of this.wearView()) {
      if (c > max) max = c;
      sum += c;
      if (c > 0) touched++;
    }
    return { max, mean: sum / this.nrSectors, sectorsWritten: sum, sectorsTouched: touched };
  }

  /** The next `times` (default: every) requests of `op` touching [sector, sector + count) fail with EIO, transferring nothing. */
  injectError(e: InjectedError): void {
    this.errors.inject("pmem.injectError", this.name, this.nrSectors, e);
  }

  clearErrors(): void {
    this.errors.clear();
  }

  /** mmap of the device (/dev/daxX.Y): MAP_SHARED, faults insert special PTEs to its pfns. */
  daxMmap(proc: Process, opts: DaxMmapOptions): number {
    const fn = "dax_mmap";
    liveProcess(this.machine, fn, proc);
    this.storage(fn);
    return daxMmapRange(this.machine, fn, proc, this.rangeId, opts);
  }

  /** The DAX mappings of this device in every process. */
  daxMappings(): { pid: number; start: number; end: number }[] {
    const out: { pid: number; start: number; end: number }[] = [];
    for (const p of this.machine.procs) {
      for (const v of p.vmaList()) if (v.flags & VM_PFNMAP && v.anonVma === this.rangeId) out.push({ pid: p.pid, start: v.start * PAGE_SIZE, end: v.end * PAGE_SIZE });
    }
    return out;
  }

  /**
   * dax_kmem: the range becomes RAM of `node` (default the device's), a ZONE_MOVABLE the page
   * allocator hands out to movable allocations. The stored data is not preserved. EBUSY while
   * DAX mappings exist.
   */
  onlineAsRam(opts: { node?: number } = {}): void {
    const fn = "dax_kmem_probe";
    const m = this.machine;
    if (typeof opts !== "object" || opts === null || Array.isArray(opts)) fail("EINVAL", fn, "opts must be an object", opts);
    if (this.mode === "ram") fail("EINVAL", fn, `${this.name} is online as RAM already`, this.name);
    const node = opts.node ?? this.node;
    if (!Number.isInteger(node) || node < 0 || node >= m.config.nodes.length) fail("EINVAL", fn, `node ${String(node)} does not exist`, node);
    if (m.filesystems.some((f) => f.dev === this)) fail("EBUSY", fn, `${this.name} holds a mounted file system`, this.name);
    const maps = this.daxMappings();
    if (maps.length > 0)
      fail("EBUSY", fn, `${this.name} has ${maps.length} DAX mapping(s) (first: pid ${maps[0]!.pid} at ${hex(maps[0]!.start)}); unmap them first`, maps.length);
    this.zoneId = onlineMovable(m, fn, this.start, this.end, node);
  }

  /**
   * Offlines the RAM (every page in use migrates out, via offline_pages) and removes its
   * struct pages: back to storage, contents undefined. A PageFailureError names the pages
   * that would not move; the device then stays online as RAM.
   */
  offlineRam(): OfflineResult {
    if (this.mode !== "ram") fail("EINVAL", "dax_kmem_remove", `${this.name} is not online as RAM`, this.name);
    const r = offlineAndRemove(this.machine, this.zoneId, this.start, this.end);
    this.zoneId = -1;
    return r;
  }

  /** struct page cost of the device: none in storage mode, a struct page per pfn as RAM. */
  structPageOverhead(): StructPageOverhead {
    const per = this.machine.layout.metadataPerPage;
    const pages = this.nrSectors;
    const ram = this.mode === "ram";
    return {
      mode: this.mode, pages, bytesPerPage: per, bytes: ram ? pages * per : 0,
      kernelBytesPerPage: KERNEL_STRUCT_PAGE_BYTES, kernelBytes: ram ? pages * KERNEL_STRUCT_PAGE_BYTES : 0,
      ramModeBytes: pages * per, ramModeKernelBytes: pages * KERNEL_STRUCT_PAGE_BYTES,
    };
  }
}
