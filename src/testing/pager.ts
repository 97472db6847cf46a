// A small demand-paging driver for file mappings larger than its device memory (ours, issue 6):
// a device access of a page not in device memory faults it in through hmm_range_fault (the
// page cache reads it from the block device if needed) and migrates it in with
// MIGRATE_VMA_SELECT_FILE; when device memory is full the least recently faulted-in page is
// evicted first. Eviction follows the file system's devicePageWriteback: with "bounce" a
// dirty page is written back through a bounce page and the now clean page is dropped from the
// page cache (the device frees it without using RAM); with "migrate-back" the page migrates
// home to RAM, dirty or not, and the flusher writes it later. Device stores are reported with
// fileDeviceDirty. Everything goes through the machine's real paths.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import type { OpenFile } from "../fs/file.js";
import { DevPagemap, MEMORY_DEVICE_PRIVATE, VM_FAULT_OOM, VM_FAULT_SIGBUS, type VmFault } from "../device/pagemap.js";
import { MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_FILE, MIGRATE_VMA_SELECT_SYSTEM, migratePfnToPage } from "../migrate.js";
import { HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_VALID, hmmPfnToPfn } from "../hmm/range.js";
import type { MmuIntervalNotifier } from "../hmm/notifier.js";
import { writebackRange } from "../fs/pagecache.js";
import { migrateBackToRam } from "../fs/devpage.js";
import { fail } from "../errors.js";
import { PAGE_SIZE, TASK_SIZE } from "../constants.js";
import { PG_dirty } from "../page.js";

const EBUSY = -16;

export interface FilePagerStats {
  faultsIn: number;
  evictions: number;
  /** Evictions that wrote a dirty page back (bounce) before dropping it. */
  evictedWritten: number;
  /** Evictions that migrated the page back to RAM. */
  evictedMigrated: number;
  /** Most device pages in use at once. */
  peakResident: number;
}

export class FileDevicePager {
  readonly pgmap: DevPagemap;
  readonly stats: FilePagerStats = { faultsIn: 0, evictions: 0, evictedWritten: 0, evictedMigrated: 0, peakResident: 0 };
  /** Device pages in use, oldest first (a Map keeps insertion order) → the file index they hold. */
  private readonly resident = new Map<number, number>();
  private readonly notifier: MmuIntervalNotifier;
  private readonly hmmPfns = new BigUint64Array(1);

  constructor(
    readonly machine: Machine,
    readonly proc: Process,
    /** The file and where the process maps it (MAP_SHARED, from file offset 0). */
    readonly file: OpenFile,
    readonly addr: number,
    /** Pages of device memory. */
    readonly pages: number,
  ) {
    if (!Number.isInteger(pages) || pages < 1) fail("EINVAL", "FileDevicePager", `pages must be a positive integer, got ${String(pages)}`, pages);
    this.pgmap = machine.memremapPages({
      type: MEMORY_DEVICE_PRIVATE, nrPages: pages, owner: this, name: "filepager",
      ops: {
        pageFree: (_pg, pfn) => {
          this.resident.delete(pfn);
        },
        migrateToRam: (vmf) => this.migrateToRam(vmf),
      },
    });
    // Our device table is the resident map, keyed by page: it holds no virtual addresses.
    this.notifier = machine.mmuIntervalNotifierInsert(proc, 0, TASK_SIZE, {
      invalidate: (sub, _range, cur) => {
        sub.setSeq(cur);
        return true;
      },
    });
  }

  /** Device pages in use. */
  get inUse(): number {
    return this.resident.size;
  }

  /** A device load of page `index` of the file: its tag (tags mode) or bytes. */
  read(index: number): bigint | Uint8Array {
    const pfn = this.faultIn(index);
    return this.machine.config.content === "bytes" ? this.machine.page.readBytes(pfn) : this.machine.page.readTag(pfn);
  }

  /** A device store to page `index`, reported to the file system. */
  write(index: number, data: bigint | Uint8Array): void {
    const bytes = this.machine.config.content === "bytes";
    if (bytes ? !(data instanceof Uint8Array && data.length === PAGE_SIZE) : typeof data !== "bigint" || data < 0n || data >= 1n << 64n)
      fail("EINVAL", "FileDevicePager", bytes ? "data must be 4096 bytes" : "data must be a u64 bigint tag", data);
    const pfn = this.faultIn(index);
    if (typeof data === "bigint") this.machine.page.writeTag(pfn, data);
    else this.machine.page.writeBytes(pfn, data);
    this.machine.fileDeviceDirty([pfn]);
  }

  /** The device page holding `index`, migrated in (after an eviction when memory is full). */
  private faultIn(index: number): number {
    const m = this.machine;
    if (!Number.isInteger(index) || index < 0 || index >= this.file.inode.sizePages) fail("EINVAL", "FileDevicePager", `page ${String(index)} is outside the file`, index);
    const va = this.addr + index * PAGE_SIZE;
    for (let tries = 0; tries < 8; tries++) {
      // The device's fault: hmm_range_fault maps the page in (reading it if needed).
      const seq = this.notifier.readBegin();
      this.hmmPfns[0] = HMM_PFN_REQ_FAULT;
      const r = m.hmmRangeFault({ notifier: this.notifier, notifierSeq: seq, start: va, end: va + PAGE_SIZE, hmmPfns: this.hmmPfns, defaultFlags: HMM_PFN_REQ_FAULT, pfnFlagsMask: 0n, devPrivateOwner: this });
      if (r === EBUSY) continue;
      const e = this.hmmPfns[0]!;
      if (r !== 0 || e & HMM_PFN_ERROR || !(e & HMM_PFN_VALID)) fail("EFAULT", "FileDevicePager", `the device cannot fault page ${index} in (${r})`, index);
      const pfn = hmmPfnToPfn(e);
      if (this.pgmap.contains(pfn)) {
        // A hit: most recently used goes to the end.
        this.resident.delete(pfn);
        this.resident.set(pfn, index);
        return pfn;
      }
      if (this.resident.size >= this.pages) this.evictOldest();
      const mig = m.migrateVmaSetup({ proc: this.proc, start: va, end: va + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_FILE, pgmapOwner: this });
      if (mig.cpages > 0) mig.allocAndCopy(this.pgmap);
      mig.finalize();
      const d = migratePfnToPage(mig.dst[0]!);
      if (d >= 0 && this.pgmap.contains(d) && m.core.filemapLookup(this.file.inode.id, index) === d) {
        this.stats.faultsIn++;
        this.resident.set(d, index);
        this.stats.peakResident = Math.max(this.stats.peakResident, this.resident.size);
        return d;
      }
    }
    return fail("EBUSY", "FileDevicePager", `page ${index} could not be brought into device memory`, index);
  }

  /** Frees the least recently used device page, per the file system's writeback policy. */
  private evictOldest(): void {
    const m = this.machine;
    const [pfn, index] = this.resident.entries().next().value as [number, number];
    this.stats.evictions++;
    const inode = this.file.inode;
    if (inode.fs.devicePageWriteback === "bounce") {
      if (m.core.pageFlags(pfn) & (1 << PG_dirty)) {
        writebackRange(m, inode, index, index + 1);
        this.stats.evictedWritten++;
      }
      if (m.invalidateInodePage(inode, index)) return;
    }
    if (migrateBackToRam(m, [pfn]) === 1) {
      inode.fs.deviceStats.migratedBack++;
      this.stats.evictedMigrated++;
    }
    this.machine.settle();
    // A page that could not leave (locked by a migration in flight) is not ours to track now.
    this.resident.delete(pfn);
  }

  /** A CPU touched one of our pages: it goes home. */
  private migrateToRam(vmf: VmFault): number {
    const mig = this.machine.migrateVmaSetup({
      proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this, faultPage: vmf.page,
    });
    const n = mig.cpages > 0 ? mig.allocAndCopy({ node: 0 }) : 0;
    mig.finalize();
    return n >= mig.cpages ? 0 : mig.copyFailures > 0 ? VM_FAULT_SIGBUS : VM_FAULT_OOM;
  }

  /** Every page back to RAM and the notifier gone. */
  close(): void {
    this.machine.mmuIntervalNotifierRemove(this.notifier);
    this.machine.evictDevicePages(this.pgmap);
  }
}
