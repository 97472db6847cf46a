// migrate_vma and migrate_device_* (include/linux/migrate.h) for drivers written in
// TypeScript: setup collects and unmaps, the driver fills dst (allocAndCopy does it in
// one Wasm call), pages() moves the struct page state, finalize() remaps or restores.
import type { Machine } from "./machine.js";
import type { Process } from "./process.js";
import { DevPagemap, MEMORY_DEVICE_PRIVATE } from "./device/pagemap.js";
import { fail, hex } from "./errors.js";
import { MAX_MIGRATE } from "./layout.js";
import { PAGE_SIZE, VM_IO, VM_PFNMAP } from "./constants.js";
import { MMU_NOTIFY_MIGRATE } from "./hmm/notifier.js";
import { PG_locked } from "./page.js";
import { askHolders, settleHolders, type HolderMoves } from "./pin/pinpage.js";
import { isU32, options } from "./validate.js";

export const MIGRATE_PFN_VALID = 1n << 0n;
export const MIGRATE_PFN_MIGRATE = 1n << 1n;
export const MIGRATE_PFN_WRITE = 1n << 3n;
export const MIGRATE_PFN_COMPOUND = 1n << 4n;
export const MIGRATE_PFN_SHIFT = 6n;

export const MIGRATE_VMA_SELECT_SYSTEM = 1 << 0;
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1;
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2;
export const MIGRATE_VMA_SELECT_COMPOUND = 1 << 3;
/**
 * Ours, not the kernel's: pages of file mappings (the page cache's own pages) may move into
 * device memory too. The cache slot then holds the device page, the CPU's PTEs become
 * device-private entries, and the driver reports the pages its device writes with
 * machine.fileDeviceDirty. Without it, as in the kernel, file pages stay in RAM.
 */
export const MIGRATE_VMA_SELECT_FILE = 1 << 4;
const SELECT_MASK = 0x1f;

export function migratePfn(pfn: number): bigint {
  return (BigInt(pfn) << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
}

/** The page of a MIGRATE_PFN entry, or -1 when it has none. */
export function migratePfnToPage(entry: bigint): number {
  return entry & MIGRATE_PFN_VALID ? Number(entry >> MIGRATE_PFN_SHIFT) : -1;
}

export interface MigrateVmaArgs {
  proc: Process;
  /** Page-aligned byte addresses, end exclusive, inside one VMA. */
  start: number;
  end: number;
  /** MIGRATE_VMA_SELECT_* bits. */
  flags: number;
  /** Must equal a device page's pgmap owner for it to be selected. */
  pgmapOwner?: unknown;
  /** In migrate_to_ram: the locked device-private page that faulted (it stays locked). */
  faultPage?: number;
  /**
   * Read-only migration entries (seed 004's proposal, not in the kernel): pages the CPU maps
   * with present PTEs are write-protected in place, in every process, instead of unmapped
   * into migration entries. Readers keep reading the old page while it is copied; a writer
   * faults and waits (EBUSY, as at a migration entry) until finalize maps the new page with
   * the permission the PTE had, or abort restores the old one. Device-private sources still
   * get migration entries (the CPU cannot read them in place).
   */
  readOnlyEntries?: boolean;
}

type Stage = "collected" | "pages" | "done";

const DST_PROBLEMS = [
  "", "has no MIGRATE_PFN_VALID", "is not a frame of this machine", "is a reserved frame", "is a free page (allocate it first)",
  "is not locked", "is mapped already", "is one of the source pages",
];

export class MigrateVma {
  readonly npages: number;
  /** Pages collected (MIGRATE set in src). */
  readonly cpages: number;
  /** Source entries (do not modify). */
  readonly src: BigUint64Array;
  private readonly dstView: BigUint64Array;
  /** Whether dst holds only what allocAndCopy wrote (then it needs no checking). */
  private dstTrusted = true;
  /** Whether allocAndCopy gave a hole a new page (migrate_vma_insert_page will run). */
  private fillsHoles = false;
  private stage: Stage = "collected";
  /** @internal Whether pages held by pin control subsystems may move (pfn-list migrations). */
  pinpage = false;
  private holderMoves: HolderMoves | null = null;
  /** Whether setup write-protected pages in place (read-only migration entries). */
  readonly readOnlyEntries: boolean;

  /** @internal */
  constructor(
    private readonly machine: Machine,
    /** @internal The core's src/dst arrays this migration uses. */ readonly slot: number,
    npages: number,
    cpages: number,
    private readonly where: { proc: Process; start: number } | null,
    private readonly owner: unknown,
    readOnlyEntries = false,
  ) {
    this.readOnlyEntries = readOnlyEntries;
    this.npages = npages;
    this.cpages = cpages;
    this.src = machine.migrateSrcView(slot, npages);
    this.dstView = machine.migrateDstView(slot, npages);
  }

  /** Destination entries: migrate_pfn(page) | flags of a locked new page, or 0 to skip. */
  get dst(): BigUint64Array {
    this.dstTrusted = false;
    return this.dstView;
  }

  get finished(): boolean {
    return this.stage === "done";
  }

  /**
   * The usual driver step in one Wasm call: for every src entry marked MIGRATE, a page
   * from `target` (device memory, or system memory of a node) filled from the source
   * (zeroed for holes), dst = migrate_pfn | the source's WRITE bit. Returns pages allocated.
   * System pages come from ZONE_MOVABLE first unless `movable` is false (then ZONE_NORMAL only).
   * `holes: false` leaves entries without a source page (holes, the zero page) unfilled.
   */
  allocAndCopy(target: DevPagemap | { node: number; movable?: boolean }, opts: { failFirst?: boolean; holes?: boolean } = {}): number {
    const fn = "allocAndCopy";
    this.expect("collected", fn);
    const m = this.machine;
    let z = -1;
    let node = 0;
    let movable = true;
    const o = options(fn, "options", opts);
    if (typeof target !== "object" || target === null) fail("EINVAL", fn, "target must be a dev_pagemap or { node }", target);
    if (target instanceof DevPagemap) {
      if (m.pgmaps.get(target.zone) !== target) fail("EINVAL", "allocAndCopy", "the dev_pagemap is not registered", target);
      z = target.zone;
    } else {
      node = target?.node;
      if (!Number.isInteger(node) || node < 0 || node >= m.config.nodes.length) fail("EINVAL", "allocAndCopy", `node ${String(node)} does not exist`, node);
      movable = target.movable !== false;
    }
    // Injected faults (none armed: one check) see the migration's device by name.
    const device = !m.inject.driverRulesArmed() ? null : target instanceof DevPagemap ? target.name : this.deviceName();
    try {
      m.inject.callback(device, "alloc_and_copy");
    } catch (e) {
      // The driver's error path: nothing migrates.
      this.abort();
      throw e;
    }
    const before = m.inject.copyArmed() ? this.dstView.slice() : null;
    const n = m.core.migrateAllocCopy(this.slot, this.npages, z, node, movable ? 1 : 0, o.failFirst ? 1 : 0, o.holes === false ? 0 : 1);
    if (m.core.migrateDstFillsHoles()) this.fillsHoles = true;
    return before ? n - this.failCopies(before, device) : n;
  }

  /** Pages whose copy failed (machine.inject "copy") in allocAndCopy calls: not migrated. */
  copyFailures = 0;

  /**
   * Injected copy failures (a DMA error): each page whose copy fails is freed and its dst
   * cleared, so it does not migrate, as a driver must do. Returns how many failed.
   */
  private failCopies(before: BigUint64Array, device: string | null): number {
    const core = this.machine.core;
    let failed = 0;
    for (let i = 0; i < this.npages; i++) {
      const d = this.dstView[i]!;
      if (before[i] !== 0n || d === 0n || !this.machine.inject.copyFails(device)) continue;
      const pfn = migratePfnToPage(d);
      this.dstView[i] = 0n;
      core.pageUnlock(pfn);
      core.pagePut(pfn);
      failed++;
    }
    this.copyFailures += failed;
    return failed;
  }

  /**
   * The device of this migration, for machine.inject: the dev_pagemap of a device source
   * page, else the one its pgmap_owner owns; null for a migration between system pages.
   */
  private deviceName(): string | null {
    const m = this.machine;
    for (let i = 0; i < this.npages; i++) {
      const pfn = migratePfnToPage(this.src[i]!);
      if (pfn >= m.config.frames) return m.pagemapOf(pfn)?.name ?? null;
    }
    if (this.owner !== null && this.owner !== undefined) for (const pg of m.pgmaps.values()) if (pg.owner === this.owner) return pg.name;
    return null;
  }

  /** migrate_vma_pages. A dst entry that is not a locked, fresh page aborts the migration (EINVAL). */
  pages(): void {
    this.expect("collected", "migrate_vma_pages");
    this.beforePages();
    this.machine.core.migrateRunPages(this.slot, this.npages);
    this.stage = "pages";
    // Entries the pages step dropped: their holders go back to the old page now.
    if (this.holderMoves) settleHolders(this.holderMoves, (i) => (this.src[i]! & MIGRATE_PFN_MIGRATE) !== 0n);
  }

  /** migrate_vma_finalize: remap to the new pages, or restore the old ones. */
  finalize(): void {
    if (this.stage === "collected" && this.dstTrusted) {
      // Nothing can run between the two steps, and allocAndCopy's pages cannot interfere
      // across entries, so one pass does both, entry by entry.
      this.beforePages();
      this.machine.core.migrateRunPagesFinalize(this.slot, this.npages);
      this.end();
      return;
    }
    if (this.stage === "collected") this.pages();
    this.expect("pages", "migrate_vma_finalize");
    this.machine.core.migrateRunFinalize(this.slot, this.npages);
    this.end();
  }

  /** What migrate_vma_pages does before the core's pass: the dst check and the notifier. */
  private beforePages(): void {
    const core = this.machine.core;
    // Entries a driver wrote itself are checked; allocAndCopy's are known good.
    const bad = this.dstTrusted ? -1 : core.migrateCheckDst(this.slot, this.npages, 0);
    if (bad >= 0) {
      this.abort();
      fail("EINVAL", "migrate_vma_pages", `dst[${bad >> 4}] ${DST_PROBLEMS[bad & 15]}; the migration was rolled back`, bad >> 4);
    }
    if (this.where && (this.dstTrusted ? this.fillsHoles : core.migrateDstFillsHoles())) {
      const { proc, start } = this.where;
      proc.notify(start, start + this.npages * PAGE_SIZE, MMU_NOTIFY_MIGRATE, this.owner);
    }
    // The pin control subsystems move their holds to the new pages (or refuse) now.
    if (this.pinpage) this.holderMoves = askHolders(this.machine, this, this.src, this.dstView);
  }

  /** The restore path for a driver that cannot go on: nothing migrates, new pages are freed. */
  abort(): void {
    if (this.stage === "done") return;
    const core = this.machine.core;
    // Bad entries are dropped before anything can put them; then nothing migrates.
    core.migrateCheckDst(this.slot, this.npages, 1);
    core.migrateClearAll(this.slot, this.npages);
    if (this.stage === "collected") core.migrateRunPages(this.slot, this.npages);
    core.migrateRunFinalize(this.slot, this.npages);
    this.end();
  }

  /** @internal The process whose range this migration collected (null for pfn-based ones). */
  get collector(): Process | null {
    return this.where?.proc ?? null;
  }

  private end(): void {
    if (this.holderMoves) settleHolders(this.holderMoves, (i) => (this.src[i]! & MIGRATE_PFN_MIGRATE) !== 0n);
    this.stage = "done";
    this.machine.migrations[this.slot] = null;
    this.machine.settle();
  }

  private expect(stage: Stage, fn: string): void {
    if (this.stage !== stage) fail("EINVAL", fn, `the migration is at stage "${this.stage}", not "${stage}"`, this.stage);
  }
}

/** migrate_vma_setup. */
export function migrateVmaSetup(m: Machine, args: MigrateVmaArgs): MigrateVma {
  const fn = "migrate_vma_setup";
  if (typeof args !== "object" || args === null) fail("EINVAL", fn, "arguments must be an object", args);
  const { proc, start, end, flags } = args;
  if (typeof proc?.machineOf !== "function" || proc.machineOf() !== m || proc.exited) fail("EINVAL", fn, "proc is not a live process of this machine", proc);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start % PAGE_SIZE || end % PAGE_SIZE || start < 0)
    fail("EINVAL", fn, `start ${String(start)} and end ${String(end)} must be page-aligned addresses`, start);
  const npages = (end - start) / PAGE_SIZE;
  if (npages <= 0) fail("EINVAL", fn, `the range ${hex(start)}-${hex(end)} is empty`, end);
  if (npages > MAX_MIGRATE) fail("EINVAL", fn, `${npages} pages is more than one migration holds (${MAX_MIGRATE}); split the range`, npages);
  if (!isU32(flags) || (flags & ~SELECT_MASK) !== 0) fail("EINVAL", fn, `flags ${String(flags)} hold bits other than MIGRATE_VMA_SELECT_*`, flags);
  const ro = args.readOnlyEntries ?? false;
  if (typeof ro !== "boolean") fail("EINVAL", fn, `readOnlyEntries must be a boolean, got ${String(ro)}`, ro);
  const vma = proc.vmaAt(start);
  if (!vma || vma.end < end) fail("EINVAL", fn, `${hex(start)}-${hex(end)} is not inside one VMA`, start);
  if (vma.flags & (VM_IO | VM_PFNMAP)) fail("EINVAL", fn, `the VMA at ${hex(start)} is VM_IO/VM_PFNMAP`, start);
  let faultPage = -1;
  if (args.faultPage !== undefined) {
    faultPage = args.faultPage;
    const pg = m.pagemapOf(faultPage);
    if (!pg || pg.type !== MEMORY_DEVICE_PRIVATE || !(m.core.pageFlags(faultPage) & (1 << PG_locked)))
      fail("EINVAL", fn, `fault_page ${String(faultPage)} is not a locked device-private page`, faultPage);
  }
  const slot = freeSlot(m, fn);
  proc.notify(start, end, MMU_NOTIFY_MIGRATE, args.pgmapOwner);
  const cpages = m.core.migrateVmaSetup(slot, proc.mm, start / PAGE_SIZE, npages, flags, m.ownerId(args.pgmapOwner), faultPage, ro ? 1 : 0);
  const mig = new MigrateVma(m, slot, npages, cpages, { proc, start }, args.pgmapOwner, ro);
  m.migrations[slot] = mig;
  m.notifyOtherMappings(slot, proc);
  return mig;
}

/** migrate_device_range: collects the in-use pages of a pfn range (eviction). */
export function migrateDeviceRange(m: Machine, startPfn: number, npages: number): MigrateVma {
  const fn = "migrate_device_range";
  const pg = m.pagemapOf(startPfn);
  if (!pg || !Number.isInteger(npages) || npages <= 0 || !pg.contains(startPfn + npages - 1))
    fail("EINVAL", fn, `pfns ${String(startPfn)}+${String(npages)} are not inside one device range`, startPfn);
  if (npages > MAX_MIGRATE) fail("EINVAL", fn, `${npages} pages is more than one migration holds (${MAX_MIGRATE})`, npages);
  const slot = freeSlot(m, fn);
  const cpages = m.core.migrateDeviceRangeSetup(slot, startPfn, npages);
  const mig = new MigrateVma(m, slot, npages, cpages, null, pg.owner);
  m.migrations[slot] = mig;
  m.notifyOtherMappings(slot, null);
  return mig;
}

/**
 * migrate_device_pfns, over any frames: collects the pages of `pfns` that a mapping or the
 * page cache holds (system or device), locked and unmapped into migration entries. Entries
 * of pages that are free, reserved, locked, or held by extra references come back 0.
 * The engine under migrate_pages, compaction, CMA and memory offline.
 */
export function migrateDevicePfns(m: Machine, pfns: ArrayLike<number>): MigrateVma {
  const fn = "migrate_device_pfns";
  const n = pfns?.length;
  if (!Number.isInteger(n) || n <= 0 || n > MAX_MIGRATE) fail("EINVAL", fn, `between 1 and ${MAX_MIGRATE} pfns are needed, got ${String(n)}`, pfns);
  const limit = m.config.frames + m.config.deviceFrames;
  for (let i = 0; i < n; i++) {
    const pfn = pfns[i];
    if (!Number.isInteger(pfn) || pfn! < 0 || pfn! >= limit) fail("EINVAL", fn, `pfns[${i}] = ${String(pfn)} is not a frame of this machine`, pfn);
  }
  const slot = freeSlot(m, fn);
  const src = m.migrateSrcView(slot, n);
  for (let i = 0; i < n; i++) src[i] = migratePfn(pfns[i]!);
  const cpages = m.core.migratePfnListSetup(slot, n, 1);
  const mig = new MigrateVma(m, slot, n, cpages, null, null);
  mig.pinpage = true;
  m.migrations[slot] = mig;
  m.notifyOtherMappings(slot, null);
  return mig;
}

function freeSlot(m: Machine, fn: string): number {
  const slot = m.migrations.indexOf(null);
  if (slot < 0) fail("EBUSY", fn, `${m.migrations.length} migrations are in flight on this machine already`, m.migrations.length);
  return slot;
}

