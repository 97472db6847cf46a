// One emulated machine: a Wasm instance laid out from a configuration, its processes,
// counters and invariant checks.
import { resolveConfig, type MachineConfig, type ResolvedConfig } from "./config.js";
import { computeLayout, L, ZONE_RECORD, MAX_MIGRATE, MIGRATE_SLOTS, NR_STAT_SLOTS, GUP_MAX, type Layout, type ZoneLayout } from "./layout.js";
import { instantiateCore, type CoreExports } from "./wasm.js";
import { readCounters, STAT_SLOTS, type Counters, type StatName } from "./stats.js";
import { MmError, fail } from "./errors.js";
import { AccessBatch } from "./batch.js";
import { Process, type SpawnOptions } from "./process.js";
import { describeCheckFailure } from "./check.js";
import type { ShmemObject } from "./vma.js";
import { DevPagemap, type DevPagemapConfig } from "./device/pagemap.js";
import { memremapPages, memunmapPages } from "./device/memremap.js";
import { MigrateVma, migrateVmaSetup, migrateDeviceRange, migrateDevicePfns, type MigrateVmaArgs } from "./migrate.js";
import { evictDevicePages } from "./device/evict.js";
import { hmmRangeFault, type HmmRange } from "./hmm/range.js";
import { MmuIntervalNotifier, MmuSubscriptions, MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFY_CLEAR, type MmuIntervalNotifierOps } from "./hmm/notifier.js";
import { VM_FAULT_SIGBUS } from "./device/pagemap.js";
import { vmFaultError } from "./process.js";
import { TASK_SIZE } from "./constants.js";
import { registerPinpage, type PinpageSystem, type PinpageOps } from "./pin/pinpage.js";
import { PageAccess, PG_reserved, PG_hwpoison } from "./page.js";
import { FOLL_GET, FOLL_PIN } from "./pin/flags.js";
import { getUserPagesCommon } from "./pin/gup.js";
import { releaseList } from "./pin/release.js";
import { pageblockView, pageblockMigratetype, pageIsCma } from "./pageblock.js";
import { writeCmaTable, cmaAlloc, cmaRelease, cmaAreas, type CmaAreaInfo } from "./cma.js";
import { compactZone, compactNode, compactMemory, type CompactResult } from "./compaction.js";
import { offlinePages, onlinePages, type OfflineResult } from "./hotplug.js";
import { mbind, setMempolicy, getMempolicy, type Mempolicy } from "./numa/mempolicy.js";
import { movePages, migratePages, type MovePagesResult, type RetryOptions } from "./numa/migrate-pages.js";
import { MPOL_MF_MOVE_ALL } from "./numa/mpol.js";
import { mlock, munlock, mlockall, munlockall } from "./mlock.js";
import { addBlockDevice, type BlockDevice, type BlockDeviceOptions } from "./block/index.js";
import { FileSystem } from "./fs/filesystem.js";
import type { Inode } from "./fs/inode.js";
import { readPage } from "./fs/pagecache.js";
import { registerPmem, vmfInsertPfns, PmemDevice, type PmemConfig } from "./pmem/index.js";
import { flagWord, options } from "./validate.js";
import { Injector } from "./inject/injector.js";
import { oomReap, type OomReapResult } from "./oom.js";

/**
 * A driver's error the kernel would not stop for (machine.driverErrors): a page_free callback
 * that threw (it returns nothing in the kernel), or an interval notifier that refused a
 * blockable invalidation (the kernel WARNs and goes on).
 */
export interface DriverError {
  callback: "page_free" | "invalidate_range_start";
  /** The dev_pagemap's name (null for a notifier). */
  device: string | null;
  /** The page freed (-1 for a notifier). */
  pfn: number;
  error: unknown;
}

/** driverErrors kept. */
export const MAX_DRIVER_ERRORS = 64;

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
  /** Free blocks per order, 0..10, on the buddy lists (CMA pageblocks' included). */
  freeArea: number[];
  /** Free order-0 pages cached on the per-cpu list (counted in `free`). */
  pcp: number;
  /** Pages of the zone's span that are not offline. */
  present: number;
  /** Pages taken offline by offlinePages. */
  offline: number;
  /** Pages of CMA pageblocks, and how many of them are free (counted in `free`). */
  cma: number;
  cmaFree: number;
}

export class Machine {
  readonly config: ResolvedConfig;
  readonly layout: Layout;
  /** @internal */ readonly core: CoreExports;
  /** @internal */ readonly u32: Uint32Array;
  /** @internal */ readonly result: DataView;
  private readonly stats: BigInt64Array;
  private readonly batchOps: Uint32Array;
  private readonly batchData: Uint8Array;
  private currentBatch: AccessBatch | null = null;
  private readonly processes = new Set<Process>();
  private nextPid = 1;
  private nextAnonVma = 1;
  private readonly freeShmem: number[] = [];
  /** Invariant checks run so far. */
  checksRun = 0;
  /** @internal ZONE_DEVICE ranges by zone id. */
  readonly pgmaps = new Map<number, DevPagemap>();
  private readonly ownerIds = new Map<unknown, number>();
  /** @internal pmem devices, in registration order. */
  readonly pmems: PmemDevice[] = [];
  /** @internal Migrations in flight, by slot of the core's src/dst arrays. */
  readonly migrations: (MigrateVma | null)[] = new Array(MIGRATE_SLOTS).fill(null);
  /** @internal Registered pin control subsystems, in registration order. */
  readonly pinpageSystems: PinpageSystem[] = [];
  /** struct page access for drivers: references, locks, contents. */
  readonly page: PageAccess;
  /** @internal Set while a GUP call runs (its fault callbacks may not start another). */
  gupBusy = false;
  /** @internal Every pageblock's migratetype byte. */
  readonly pageblocks: Uint8Array;
  /** Emulated block devices, in the order added. */
  readonly blockDevices: readonly BlockDevice[] = [];
  /** The compaction, CMA allocation or memory offline in progress (they do not nest). */
  private busy: string | null = null;
  /** Fault injection: allocation failures, failed copies, throwing callbacks, refusing notifiers, I/O errors, late engines. */
  readonly inject: Injector;

  private constructor(config: ResolvedConfig) {
    this.config = config;
    this.core = instantiateCore(config.build);
    this.layout = computeLayout(config, this.core.heapBase());
    const mem = this.core.memory;
    const have = mem.buffer.byteLength / 65536;
    if (this.layout.wasmPages > have) {
      try {
        mem.grow(this.layout.wasmPages - have);
      } catch {
        // The layout fits 32-bit Wasm memory, but the host would not give that much.
        fail("ENOMEM", "Machine.create", `the host refused ${this.layout.bytes} bytes of Wasm memory for this machine`, this.layout.bytes);
      }
    }
    const buf = mem.buffer;
    this.u32 = new Uint32Array(buf);
    new Uint32Array(buf, this.core.layoutPtr(), this.layout.slots.length).set(this.layout.slots);
    this.writeZones(this.layout.zones);
    writeCmaTable(this);
    this.core.init();
    this.pageblocks = pageblockView(this);
    const s = this.layout.slots;
    this.stats = new BigInt64Array(buf, s[L.STATS]!, NR_STAT_SLOTS);
    this.result = new DataView(buf, s[L.RESULT]!, 256);
    this.batchOps = new Uint32Array(buf, s[L.OPS]!, s[L.MAX_OPS]! * 8);
    this.batchData = new Uint8Array(buf, s[L.DATA]!, s[L.DATA_SIZE]!);
    for (let id = config.maxShmem - 1; id >= 0; id--) this.freeShmem.push(id);
    this.page = new PageAccess(this);
    this.inject = new Injector(this);
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
  spawn(opts?: SpawnOptions): Process {
    const node = options("spawn", "options", opts).node ?? 0;
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

  // ---- files -------------------------------------------------------------------

  /** Mounted file systems. */
  readonly filesystems: FileSystem[] = [];
  private readonly inodesById = new Map<number, Inode>();

  /**
   * mount(2) of a fresh file system (mkfs included) on a block device of this machine. With
   * `dax` (a pmem device in storage mode only) files bypass the page cache, as fsdax does.
   */
  mount(dev: BlockDevice, opts?: { dax?: boolean }): FileSystem {
    const fn = "mount";
    if (!dev || typeof dev.read !== "function") fail("ENOTBLK", fn, `not a block device`, dev);
    if (this.filesystems.some((f) => f.dev === dev)) fail("EBUSY", fn, `${dev.name} is already mounted`, dev.name);
    const dax = options(fn, "options", opts).dax ?? false;
    if (typeof dax !== "boolean") fail("EINVAL", fn, `dax must be a boolean`, dax);
    if (dax && !(dev instanceof PmemDevice && dev.mode === "storage")) fail("EINVAL", fn, `dax needs a pmem device in storage mode; ${dev.name} is not one`, dev.name);
    const fs = new FileSystem(this, dev, dax);
    this.filesystems.push(fs);
    return fs;
  }

  /** @internal An address_space id for a new inode, from the pool shmem objects use. */
  allocMappingId(fn: string): number {
    const id = this.freeShmem.pop();
    if (id === undefined) fail("ENFILE", fn, `all ${this.config.maxShmem} address spaces (files and shared anonymous objects) are in use (maxShmem)`);
    return id;
  }

  /** @internal The live processes, for rmap-like walks from TypeScript. */
  get liveProcesses(): Iterable<Process> {
    return this.processes;
  }

  /** @internal */
  registerInode(inode: Inode): void {
    this.inodesById.set(inode.id, inode);
  }

  /** @internal The inode whose page cache holds `pfn`, and the page's index; null for other pages. */
  cachedPageOwner(pfn: number): { inode: Inode; index: number } | null {
    const m = this.core.pageMappingValue(pfn) >>> 0;
    if (m === 0 || m & 1) return null;
    const inode = this.inodesById.get((m >>> 1) - 1);
    return inode ? { inode, index: this.core.pageIndexValue(pfn) } : null;
  }

  /**
   * @internal truncate_pagecache from page `from`: every process's mappings of those pages go
   * (private COW copies too), then the pages leave the cache. Callers make sure none is busy.
   */
  dropInodePages(inode: Inode, from: number): void {
    for (const p of this.processes) p.unmapFileRange(inode, from, Number.MAX_SAFE_INTEGER);
    const busy = this.core.truncateInodePages(inode.id, from);
    if (busy !== 0) throw new MmError("EBUSY", "truncate_inode_pages", `${busy} page(s) of ${inode.name} could not be dropped (locked or under writeback)`);
  }

  /**
   * Ours (the kernel's drivers call set_page_dirty): a driver reports the file pages its
   * device wrote, typically pages of device-private memory a MIGRATE_VMA_SELECT_FILE
   * migration put in the page cache. They become dirty, and writeback (per the file system's
   * devicePageWriteback) takes them to the block device. EINVAL, with nothing marked, when a
   * pfn is not a page of a file's cache.
   */
  fileDeviceDirty(pfns: ArrayLike<number>): void {
    const fn = "fileDeviceDirty";
    const n = pfns?.length;
    if (!Number.isInteger(n) || n < 0) fail("EINVAL", fn, "pfns must be an array of page frame numbers", pfns);
    const limit = this.config.frames + this.config.deviceFrames;
    for (let i = 0; i < n; i++) {
      const pfn = pfns[i]!;
      if (!Number.isInteger(pfn) || pfn < 0 || pfn >= limit) fail("EINVAL", fn, `pfns[${i}] = ${String(pfn)} is not a frame of this machine`, pfn);
      if (!this.cachedPageOwner(pfn)) fail("EINVAL", fn, `pfns[${i}] = ${pfn} is not a page of a file's page cache`, pfn);
    }
    for (let i = 0; i < n; i++) this.core.folioMarkDirty(pfns[i]!);
  }

  /**
   * @internal invalidate_inode_page of page `index` of `inode`: every process's mapping of it
   * goes (notifiers told), then the page leaves the cache if it is clean and nobody else holds
   * it. Whether it left.
   */
  invalidateInodePage(inode: Inode, index: number): boolean {
    for (const p of this.processes) p.unmapFileRange(inode, index, index + 1);
    const ok = this.core.filemapInvalidateFolio(inode.id, index) !== 0;
    this.settle();
    return ok;
  }

  /** @internal FAULT_READPAGE: reads the page the fault added to the cache; SIGBUS when the device fails. */
  readPageFault(pfn: number, addr: number, write: boolean): MmError | null {
    const owner = this.cachedPageOwner(pfn);
    if (!owner) throw new Error(`pfn ${pfn} came back for reading but belongs to no file`);
    try {
      readPage(this, owner.inode, owner.index, pfn, "filemap_fault");
    } catch (e) {
      if (!(e instanceof MmError)) throw e;
      return new MmError("SIGBUS", "access", `${write ? "write" : "read"} at 0x${addr.toString(16)}: ${e.message} (VM_FAULT_SIGBUS)`, addr, { addr, access: write ? "write" : "read", si_code: "BUS_ADRERR" });
    }
    return null;
  }

  /**
   * A power failure: every block device loses what its volatile cache held, and every file
   * system comes back as its journal left it, with an empty page cache. Processes keep
   * running with their mappings (file pages fault in again from the device).
   */
  powerFail(): void {
    const devs = new Set<BlockDevice>(this.filesystems.map((f) => f.dev));
    for (const d of this.blockDevices) devs.add(d);
    for (const d of devs) d.powerFail();
    for (const fs of this.filesystems) fs.recoverAfterPowerFailure();
    this.settle();
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

  /** @internal A new access batch. Batches share the core's OPS region, so starting one ends the last. */
  batch(): AccessBatch {
    this.currentBatch = new AccessBatch(this.batchOps, this.batchData, this.config.content === "bytes");
    return this.currentBatch;
  }

  /** @internal Refuses a batch whose ops were overwritten by a newer one. */
  checkBatch(batch: AccessBatch): void {
    if (batch !== this.currentBatch)
      fail("EINVAL", "run", "this batch is stale: a newer batch (or a read/write helper) has reused the ops region since; build it again", batch);
  }

  // ---- ZONE_DEVICE ---------------------------------------------------------------

  /** memremap_pages: registers device memory of a type, with an owner and driver ops. */
  memremapPages(cfg: DevPagemapConfig): DevPagemap {
    return memremapPages(this, cfg);
  }

  /** memunmap_pages: evicts every page of the range back to system memory, then unregisters it. */
  memunmapPages(pgmap: DevPagemap): void {
    memunmapPages(this, pgmap);
    this.settle();
  }

  /**
   * Registers a pmem device of `pages` pfns (a multiple of 512) in the device address space
   * (deviceMemory): storage mode, with no struct pages, until onlineAsRam.
   */
  registerPmem(name: string, cfg: PmemConfig): PmemDevice {
    return registerPmem(this, name, cfg);
  }

  /**
   * vmf_insert_pfn over [addr, addr + pfns.length pages) of `proc`: special PTEs (no struct
   * page, no refcount) in VM_PFNMAP/VM_MIXEDMAP mappings, for drivers that map pfns themselves.
   */
  vmfInsertPfns(proc: Process, addr: number, pfns: ArrayLike<number>, write = false): number {
    return vmfInsertPfns(this, proc, addr, pfns, write);
  }

  /** Registered device memory ranges. */
  get pagemaps(): DevPagemap[] {
    return [...this.pgmaps.values()];
  }

  /** The dev_pagemap a pfn belongs to, if it is device memory. */
  pagemapOf(pfn: number): DevPagemap | undefined {
    if (!Number.isInteger(pfn) || pfn < this.config.frames || pfn >= this.config.frames + this.config.deviceFrames) return undefined;
    const pg = this.pgmaps.get(this.core.pageZoneId(pfn));
    return pg && pg.contains(pfn) ? pg : undefined;
  }

  /** migrate_vma_setup: collects and unmaps a range of a process for migration. */
  migrateVmaSetup(args: MigrateVmaArgs): MigrateVma {
    return migrateVmaSetup(this, args);
  }

  /** migrate_device_range: collects the in-use pages of a device pfn range. */
  migrateDeviceRange(startPfn: number, npages: number): MigrateVma {
    return migrateDeviceRange(this, startPfn, npages);
  }

  /** migrate_device_pfns over any frames: collects the in-use pages of a pfn list (system or device). */
  migrateDevicePfns(pfns: ArrayLike<number>): MigrateVma {
    return migrateDevicePfns(this, pfns);
  }

  /**
   * register_pinpage (seed 003's pin control subsystem): a subsystem that holds pages and
   * moves with them when migration, compaction, CMA or offline needs them elsewhere.
   */
  registerPinpage<T>(name: string, ops: PinpageOps<T>): PinpageSystem<T> {
    return registerPinpage(this, name, ops);
  }

  /** Evicts every in-use page of a device range to system memory; returns how many stayed. */
  evictDevicePages(pgmap: DevPagemap): number {
    if (!(pgmap instanceof DevPagemap) || this.pgmaps.get(pgmap.zone) !== pgmap) fail("EINVAL", "evict", "not a registered dev_pagemap", pgmap);
    const left = evictDevicePages(this, pgmap);
    this.settle();
    return left;
  }

  /** hmm_range_fault: 0, or -EBUSY (retry after read_begin), -EFAULT, -EPERM, -ENOMEM. */
  hmmRangeFault(range: HmmRange): number {
    const r = hmmRangeFault(this, range);
    this.settle();
    return r;
  }

  /** mmu_interval_notifier_insert: `ops.invalidate` hears of every PTE change in [start, start+length). */
  mmuIntervalNotifierInsert(proc: Process, start: number, length: number, ops: MmuIntervalNotifierOps): MmuIntervalNotifier {
    const fn = "mmu_interval_notifier_insert";
    if (!(proc instanceof Process) || proc.machineOf() !== this) fail("EINVAL", fn, "not a process of this machine", proc);
    if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length <= 0 || start + length > 2 ** 53)
      fail("EINVAL", fn, `start ${String(start)} and length ${String(length)} must be a non-empty range`, start);
    if (typeof ops?.invalidate !== "function") fail("EINVAL", fn, "ops.invalidate must be a function", ops);
    const sub = new MmuIntervalNotifier(proc, start, start + length, ops);
    proc.subscriptions ??= new MmuSubscriptions();
    proc.subscriptions.insert(sub);
    this.core.mmSetNotifiers(proc.mm, 1);
    return sub;
  }

  /** mmu_interval_notifier_remove. */
  mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
    const subs = sub?.subscriptions;
    if (!subs) fail("EINVAL", "mmu_interval_notifier_remove", "the notifier is not inserted", sub);
    subs.remove(sub);
    if (subs.size === 0 && !sub.mm.exited) this.core.mmSetNotifiers(sub.mm.mm, 0);
  }

  /**
   * make_device_exclusive: faults the page at `addr` in writable and replaces its PTE
   * with a device-exclusive entry; a CPU access ends it. Returns the page, locked and
   * referenced: the caller unlocks and puts it.
   */
  makeDeviceExclusive(proc: Process, addr: number, owner: unknown): number {
    const fn = "make_device_exclusive";
    if (!(proc instanceof Process) || proc.machineOf() !== this) fail("EINVAL", fn, "not a process of this machine", proc);
    if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
    if (!Number.isInteger(addr) || addr < 0 || addr % 4096) fail("EINVAL", fn, `address ${String(addr)} is not page-aligned`, addr);
    if (addr >= TASK_SIZE) fail("EFAULT", fn, `address ${String(addr)} is outside the user address space`, addr);
    const err = proc.faultPage(addr, true);
    if (err) {
      this.settle();
      throw err;
    }
    proc.notify(addr, addr + 4096, MMU_NOTIFY_EXCLUSIVE, owner);
    const r = this.core.makeExclusive(proc.mm, addr / 4096);
    if (r < 0) fail(r === -16 ? "EBUSY" : r === -95 ? "EOPNOTSUPP" : "EFAULT", fn, r === -95 ? "only anonymous pages can be made exclusive" : `no page to make exclusive at ${addr}`, addr);
    return r;
  }

  /**
   * memory_failure: hardware reports `pfn` corrupt. A device page's owner hears first
   * (ops.memoryFailure); absent, or if it answers -EOPNOTSUPP, the generic path poisons
   * the page and replaces every mapping with a hwpoison entry, so the next access gets
   * SIGBUS (BUS_MCEERR_AR), as with vm.memory_failure_early_kill=0. Returns 0 or -errno.
   */
  memoryFailure(pfn: number, flags = 0): number {
    const fn = "memory_failure";
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.config.frames + this.config.deviceFrames)
      fail("EINVAL", fn, `pfn ${String(pfn)} is not a frame of this machine`, pfn);
    flagWord(fn, "flags", flags, 0xffffffff);
    const pageFlags = this.core.pageFlags(pfn);
    if (pageFlags & (1 << PG_reserved)) return -6; // -ENXIO: memory outside our control
    if (pageFlags & (1 << PG_hwpoison)) return -133; // -EHWPOISON: already poisoned
    if (this.core.pageRefcount(pfn) <= 0) return -16; // a free page: taking it off its free list is not modelled
    const pg = this.pagemapOf(pfn);
    if (pg?.ops.memoryFailure) {
      this.core.pageSetHwpoison(pfn);
      let rc: number;
      try {
        this.inject.callback(pg.name, "memory_failure");
        rc = pg.ops.memoryFailure(pg, pfn, 1, flags);
      } catch (e) {
        if (!(e instanceof MmError)) throw e;
        // The owner's handler failed: the page stays poisoned and the error is not recovered (MF_FAILED).
        return -16;
      }
      if (rc !== -95) return rc;
    }
    for (const p of this.processes) if (p.subscriptions) p.notify(0, TASK_SIZE, MMU_NOTIFY_CLEAR);
    const r = this.core.memoryFailurePoison(pfn);
    this.settle();
    return r < 0 ? r : 0;
  }

  /** @internal do_swap_page on a device-private entry: the owner's migrate_to_ram. */
  deviceFault(proc: Process, addr: number, write: boolean, pfn: number, faultAddr = addr): MmError | null {
    const pg = this.pagemapOf(pfn);
    if (!pg?.ops.migrateToRam) return vmFaultError(VM_FAULT_SIGBUS, faultAddr, write);
    if (!this.core.pageTrylock(pfn)) {
      return new MmError("EBUSY", "access", `the device page behind ${faultAddr} is locked (a migration of it is in flight)`, faultAddr);
    }
    this.core.pageGet(pfn);
    const before = new Set(this.migrations);
    let ret: number;
    let cause: unknown;
    try {
      this.inject.callback(pg.name, "migrate_to_ram");
      ret = pg.ops.migrateToRam({ proc, address: addr, page: pfn, write, pgmap: pg });
      if (!Number.isInteger(ret)) ret = VM_FAULT_SIGBUS;
    } catch (e) {
      ret = VM_FAULT_SIGBUS;
      cause = e;
    } finally {
      // A driver that left its own migration open gets the restore path.
      for (const mig of this.migrations) if (mig && !before.has(mig)) mig.abort();
      this.core.pageUnlock(pfn);
      this.core.pagePut(pfn);
      this.settle();
    }
    const err = vmFaultError(ret, faultAddr, write);
    if (err && cause !== undefined) (err as { cause?: unknown }).cause = cause;
    return err;
  }

  /**
   * @internal PTEs were copied (fork) or moved (mremap), or `exiting`'s mm goes: migrations
   * in flight find their mappings through the rmap at their end, not where setup left them.
   */
  ptesMoved(proc: Process, exiting: boolean): void {
    for (const mig of this.migrations) {
      if (!mig) continue;
      const own = mig.collector === proc;
      if (!exiting || own) this.core.migrateForgetOwnPtes(mig.slot, exiting && own ? 1 : 0);
    }
  }

  /** @internal After an rmap-driven unmap reached other processes, their notifiers hear of it. */
  notifyOtherMappings(slot: number, collector: Process | null): void {
    if (!this.core.migrateTouchedOthers(slot)) return;
    for (const p of this.processes) if (p !== collector && p.subscriptions) p.notify(0, TASK_SIZE, MMU_NOTIFY_CLEAR);
  }

  /** @internal The u32 the core compares for an owner value. */
  ownerId(owner: unknown): number {
    let id = this.ownerIds.get(owner);
    if (id === undefined) {
      id = this.ownerIds.size + 1;
      this.ownerIds.set(owner, id);
    }
    return id;
  }

  private pageFreeWatched(): boolean {
    for (const pg of this.pgmaps.values()) if (pg.ops.pageFree) return true;
    return false;
  }

  /**
   * Errors drivers' page_free callbacks threw, oldest first (the last MAX_DRIVER_ERRORS kept;
   * `driverErrorCount` counts them all). page_free returns nothing in the kernel and the page
   * is free either way, so the call that freed it completes and the error is kept here.
   */
  readonly driverErrors: DriverError[] = [];
  private driverErrorsSeen = 0;

  /** Every driver error so far, those driverErrors no longer keeps included. */
  get driverErrorCount(): number {
    return this.driverErrorsSeen;
  }

  /** @internal Keeps a driver's error the call that met it goes on from. */
  noteDriverError(callback: DriverError["callback"], device: string | null, pfn: number, error: unknown): void {
    this.driverErrorsSeen++;
    this.driverErrors.push({ callback, device, pfn, error });
    if (this.driverErrors.length > MAX_DRIVER_ERRORS) this.driverErrors.shift();
  }

  /** @internal Tells the owners of device pages freed since the last call (page_free). */
  settle(): void {
    const n = this.core.deviceTakeFreed();
    if (n === 0) return;
    if (!this.pageFreeWatched()) return;
    const ring = new Uint32Array(this.core.memory.buffer, this.layout.slots[L.FREED_RING]!, Math.min(n, this.layout.slots[L.FREED_RING_SIZE]!));
    for (const pfn of ring.slice()) {
      const pg = this.pagemapOf(pfn);
      if (!pg?.ops.pageFree) continue;
      try {
        pg.ops.pageFree(pg, pfn);
        // An injected fault throws once the driver has done its part.
        this.inject.callback(pg.name, "page_free");
      } catch (error) {
        this.noteDriverError("page_free", pg.name, pfn, error);
      }
    }
  }

  /**
   * A free page of a device range for its driver, initialised as zone_device_page_init
   * does (one reference, locked); -1 when the range has none free.
   */
  allocDevicePage(pgmap: DevPagemap): number {
    if (!(pgmap instanceof DevPagemap) || this.pgmaps.get(pgmap.zone) !== pgmap) fail("EINVAL", "zone_device_page_init", "not a registered dev_pagemap", pgmap);
    if (this.inject.deviceAllocFails(pgmap.zone)) return -1;
    return this.core.deviceAllocPage(pgmap.zone);
  }

  /** @internal */
  migrateSrcView(slot: number, n: number): BigUint64Array {
    return new BigUint64Array(this.core.memory.buffer, this.layout.slots[L.MIGRATE_SRC]! + slot * MAX_MIGRATE * 8, n);
  }

  /** @internal */
  migrateDstView(slot: number, n: number): BigUint64Array {
    return new BigUint64Array(this.core.memory.buffer, this.layout.slots[L.MIGRATE_DST]! + slot * MAX_MIGRATE * 8, n);
  }

  /**
   * A pfn array inside the machine for hmmRangeFault's `hmmPfns` (up to 65536 entries):
   * walks that use it need no copies in and out. Valid until the next call that uses it.
   */
  hmmPfnsBuffer(n: number): BigUint64Array {
    if (!Number.isInteger(n) || n <= 0 || n > MAX_MIGRATE) fail("EINVAL", "hmmPfnsBuffer", `n must be in [1, ${MAX_MIGRATE}]`, n);
    return this.hmmPfnsView(n);
  }

  /** @internal */
  hmmPfnsView(n: number): BigUint64Array {
    return new BigUint64Array(this.core.memory.buffer, this.layout.slots[L.HMM_PFNS]!, n);
  }

  /** One vmstat counter (cheaper than counters() when a loop needs one). */
  counter(name: StatName): number {
    if (typeof name !== "string" || !Object.hasOwn(STAT_SLOTS, name)) fail("EINVAL", "counter", `no counter is named ${String(name)}`, name);
    this.core.foldStats();
    return Number(this.stats[STAT_SLOTS[name]]);
  }

  // ---- GUP: get_user_pages / pin_user_pages ------------------------------------------

  /**
   * get_user_pages: a reference (FOLL_GET) on each of `nrPages` pages from `start` in `proc`,
   * faulting them in as the flags ask (FOLL_WRITE breaks COW). Returns the pfns (in `pages` if
   * given); the zero page may appear and is not counted. Release with releasePages. All pages
   * or none: -EFAULT for holes, PROT_NONE or VM_IO/VM_PFNMAP, -ENOMEM if a fault runs out of memory.
   */
  getUserPages(proc: Process, start: number, nrPages: number, gupFlags = 0, pages?: Uint32Array): Uint32Array {
    return getUserPagesCommon(this, "get_user_pages", proc, start, nrPages, gupFlags, FOLL_GET, pages);
  }

  /**
   * pin_user_pages: a pin (FOLL_PIN: GUP_PIN_COUNTING_BIAS on the refcount) on each page, as
   * getUserPages. A read pin unshares a shared anon page first; FOLL_LONGTERM migrates pages out
   * of ZONE_MOVABLE and device-coherent memory before pinning. Release with unpinUserPages.
   */
  pinUserPages(proc: Process, start: number, nrPages: number, gupFlags = 0, pages?: Uint32Array): Uint32Array {
    return getUserPagesCommon(this, "pin_user_pages", proc, start, nrPages, gupFlags, FOLL_PIN, pages);
  }

  /** unpin_user_page: EINVAL (nothing changed) if the page holds no pin from pinUserPages. */
  unpinUserPage(pfn: number): void {
    releaseList(this, "unpin_user_page", [pfn], true, false);
  }

  /** unpin_user_pages: every entry must hold a pin (counting repeats), or EINVAL and nothing changes. */
  unpinUserPages(pfns: ArrayLike<number>): void {
    releaseList(this, "unpin_user_pages", pfns, true, false);
  }

  /** unpin_user_pages_dirty_lock: unpinUserPages, marking the pages dirty first if `makeDirty`. */
  unpinUserPagesDirtyLock(pfns: ArrayLike<number>, makeDirty: boolean): void {
    releaseList(this, "unpin_user_pages_dirty_lock", pfns, true, makeDirty === true);
  }

  /** release_pages (put_page) for getUserPages' references: all held, or EINVAL and nothing changes. */
  releasePages(pfns: ArrayLike<number>): void {
    releaseList(this, "release_pages", pfns, false, false);
  }

  /**
   * A pfn array inside the machine (up to 65536 entries) for the `pages` of pinUserPages and
   * getUserPages and for the releases: used there, no copies in or out. Valid until the next
   * GUP call that uses it.
   */
  gupPagesBuffer(n: number): Uint32Array {
    if (!Number.isInteger(n) || n <= 0 || n > GUP_MAX) fail("EINVAL", "gupPagesBuffer", `n must be in [1, ${GUP_MAX}]`, n);
    return this.gupPagesView(n);
  }

  /** @internal The walk's output buffer (assembly/gup.ts GUP_PAGES). */
  gupPagesView(n: number): Uint32Array {
    return new Uint32Array(this.core.memory.buffer, this.core.gupPagesPtr(), n);
  }

  /** @internal A release's input buffer (GUP_IN). */
  gupInView(n: number): Uint32Array {
    return new Uint32Array(this.core.memory.buffer, this.core.gupInPtr(), n);
  }

  // ---- NUMA placement, migration between nodes, mlock -----------------------------

  /** pfn_to_nid: the node a system frame belongs to (EINVAL for device frames and non-frames). */
  pfnToNid(pfn: number): number {
    const z = Number.isInteger(pfn) ? this.layout.zones.find((x) => pfn >= x.start && pfn < x.end) : undefined;
    if (!z) fail("EINVAL", "pfn_to_nid", `pfn ${String(pfn)} is not a frame of system memory`, pfn);
    return z.node;
  }

  /** set_mempolicy(2) for `proc`: MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE or MPOL_LOCAL over `nodes`. */
  setMempolicy(proc: Process, mode: number, nodes: readonly number[] = []): void {
    setMempolicy(this, proc, mode, nodes);
  }

  /** get_mempolicy(2) (flags MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED). */
  getMempolicy(proc: Process, addr = 0, flags = 0): Mempolicy {
    return getMempolicy(this, proc, addr, flags);
  }

  /** mbind(2): the policy of a range; MPOL_MF_MOVE/MOVE_ALL move misplaced pages, MPOL_MF_STRICT reports them (EIO). */
  mbind(proc: Process, addr: number, len: number, mode: number, nodes: readonly number[] = [], flags = 0, opts: RetryOptions = {}): void {
    mbind(this, proc, addr, len, mode, nodes, flags, opts);
  }

  /** move_pages(2): each address's page to its node (or, with `nodes` null, where each page is). */
  movePages(proc: Process, addrs: readonly number[], nodes: readonly number[] | null, flags = 0, opts: RetryOptions = {}): MovePagesResult {
    const r = movePages(this, proc, addrs, nodes, flags, opts);
    this.settle();
    return r;
  }

  /** migrate_pages(2): `proc`'s pages on `fromNodes` to `toNodes`; returns the pages not moved. */
  migratePages(proc: Process, fromNodes: readonly number[], toNodes: readonly number[], flags = MPOL_MF_MOVE_ALL, opts: RetryOptions = {}): number {
    const r = migratePages(this, proc, fromNodes, toNodes, flags, opts);
    this.settle();
    return r;
  }

  /** mlock(2). */
  mlock(proc: Process, addr: number, len: number): void {
    mlock(this, proc, addr, len);
  }

  /** munlock(2). */
  munlock(proc: Process, addr: number, len: number): void {
    munlock(this, proc, addr, len);
  }

  /** mlockall(2) with MCL_CURRENT and/or MCL_FUTURE. */
  mlockall(proc: Process, flags: number): void {
    mlockall(this, proc, flags);
  }

  /** munlockall(2). */
  munlockall(proc: Process): void {
    munlockall(this, proc);
  }

  /** vmstat counters, by their kernel names. */
  counters(): Counters {
    this.core.foldStats();
    return readCounters(this.stats);
  }

  /** Per-zone state, as /proc/zoneinfo would show it. */
  zones(): ZoneInfo[] {
    const base = this.layout.slots[L.ZONES]!;
    const ext = this.core.zoneExtBase() / 4;
    return this.layout.zones.map((z) => {
      const w = (base + z.id * ZONE_RECORD) / 4;
      // The zone's CMA lists and counts (assembly/pageblock.ts ZX_*).
      const x = ext + z.id * 64;
      const offline = this.u32[x + 47]!;
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
        freeArea: Array.from({ length: 11 }, (_, o) => this.u32[(base + z.id * ZONE_RECORD + 112) / 4 + o]! + this.u32[x + 22 + o]!),
        pcp: this.u32[w + 10]!,
        present: z.end - z.start - offline,
        offline,
        cma: this.u32[x + 48]!,
        cmaFree: this.u32[x + 44]!,
      };
    });
  }

  // ---- compaction, CMA, memory offline ------------------------------------------------

  /**
   * compact_zone for zone `zone` (an index into zones()): order -1 compacts the whole zone;
   * an order makes it direct compaction for an allocation of that order.
   */
  compactZone(zone: number, order = -1): CompactResult {
    return compactZone(this, zone, order);
  }

  /** compact_node: the zones of `node` (with an order, until one has a free block of it). */
  compactNode(node: number, order = -1): CompactResult[] {
    return compactNode(this, node, order);
  }

  /** Writing 1 to /proc/sys/vm/compact_memory: every zone, whole. */
  compactMemory(): CompactResult[] {
    return compactMemory(this);
  }

  /** The CMA areas of the configuration, with how much of each is allocated. */
  cmaAreas(): CmaAreaInfo[] {
    return cmaAreas(this);
  }

  /** cma_alloc: `count` contiguous pages of CMA area `area`, aligned to 2^align pages; returns the first pfn. */
  cmaAlloc(area: number, count: number, align = 0): number {
    return cmaAlloc(this, area, count, align);
  }

  /** cma_release: frees pages cmaAlloc gave out. */
  cmaRelease(area: number, pfn: number, count: number): void {
    cmaRelease(this, area, pfn, count);
  }

  /** is_migrate_cma_page: whether `pfn` lies in a CMA area (FOLL_LONGTERM must not pin it). */
  pageIsCma(pfn: number): boolean {
    return pageIsCma(this, pfn);
  }

  /** get_pageblock_migratetype of a system frame (MIGRATE_* of src/pageblock.ts). */
  pageblockMigratetype(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.config.frames) fail("EINVAL", "get_pageblock_migratetype", `pfn ${String(pfn)} is not a system frame`, pfn);
    return pageblockMigratetype(this, pfn);
  }

  /** offline_pages: migrates everything out of a pageblock-aligned range and takes it offline. */
  offlinePages(startPfn: number, nrPages: number): OfflineResult {
    return offlinePages(this, startPfn, nrPages);
  }

  /** online_pages: brings an offline range back as free memory. */
  onlinePages(startPfn: number, nrPages: number): void {
    onlinePages(this, startPfn, nrPages);
  }

  /** Attaches an emulated block device (EINVAL for a bad name or options, EEXIST for a name in use). */
  addBlockDevice(name: string, opts: BlockDeviceOptions): BlockDevice {
    return addBlockDevice(this, this.blockDevices as BlockDevice[], name, opts);
  }

  /** @internal Marks `fn` in progress; compaction, CMA allocation and offline do not nest. */
  enter(fn: string): void {
    if (this.busy) fail("EBUSY", fn, `${this.busy} is in progress on this machine (called from one of its callbacks?)`, this.busy);
    this.busy = fn;
  }

  /** @internal */
  leave(): void {
    this.busy = null;
  }

  /**
   * The OOM killer's reaping of `proc`: its private memory is unmapped with non-blocking
   * invalidations (a notifier may refuse; the reaper retries up to MAX_OOM_REAP_RETRIES
   * times, then gives up), and the process exits. Says how the reaper fared.
   */
  oomReap(proc: Process): OomReapResult {
    return oomReap(this, proc);
  }

  /** drain_all_pages: returns the per-cpu cached pages to the buddy lists. */
  drainPages(): void {
    this.core.drainAllPages();
  }

  /**
   * Verifies every invariant of DESIGN.md §5; throws MmError("EFAULT") naming the first broken one.
   * A machine with migrations in flight is refused (EBUSY) unless `allowInFlight`: then their
   * pages may be locked, unmapped, behind migration entries or read-only migration PTEs, and
   * everything else must hold as at rest. At rest no page may be in any of those states.
   */
  check(opts?: { allowInFlight?: boolean }): void {
    const o = options("check", "options", opts);
    const inFlight = this.migrations.filter(Boolean).length;
    if (inFlight > 0 && !o.allowInFlight)
      fail("EBUSY", "check", `${inFlight} migration(s) in flight: the invariants hold for a machine at rest; finalize or abort them first (or pass allowInFlight)`, inFlight);
    if (this.busy) fail("EBUSY", "check", `${this.busy} is in progress: the invariants hold for a machine at rest`, this.busy);
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
