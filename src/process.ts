// A process (mm_struct): its VMAs and the system calls that change them. Every call
// validates all of its input and plans the new VMA list before touching the core,
// so a refused call leaves the machine exactly as it was.
import type { Machine } from "./machine.js";
import { MmError, fail, hex, type FaultInfo } from "./errors.js";
import {
  PAGE_SIZE, TASK_SIZE, MMAP_MIN_ADDR, PROT_MASK, PROT_READ, PROT_WRITE, PROT_EXEC,
  MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE, MAP_FIXED, MAP_ANONYMOUS, MAP_POPULATE, MAP_LOCKED,
  MAP_FIXED_NOREPLACE, MAP_KNOWN, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP, MADV_DONTNEED, MADV_FREE,
  VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE, VM_LOCKED, VM_IO, VM_PFNMAP,
  VM_MIXEDMAP, VM_DONTEXPAND, VM_ACCESS_FLAGS,
} from "./constants.js";
import {
  type Vma, type VmaPolicy, type ShmemObject, findVma, findVmaIndex, rangeMapped, rangeFree, cutRange, insertVmas, canMerge,
} from "./vma.js";
import type { AccessBatch } from "./batch.js";
import { OpenFile } from "./fs/file.js";
import type { Inode } from "./fs/inode.js";
import { MAX_FILE_PAGES, MS_ASYNC, MS_INVALIDATE, MS_SYNC } from "./fs/constants.js";
import { balanceDirty } from "./fs/pagecache.js";
import { vfsFsyncRange } from "./fs/sync.js";
import { daxFault } from "./fs/dax.js";
import { VMA_RECORD } from "./layout.js";
import {
  MmuSubscriptions, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_UNMAP, MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA,
  MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_RELEASE, MMU_NOTIFY_EXCLUSIVE,
} from "./hmm/notifier.js";
import { VM_FAULT_OOM } from "./device/pagemap.js";
import {
  FAULT_SIGSEGV_MAPERR, FAULT_SIGSEGV_ACCERR, FAULT_OOM, FAULT_SIGBUS, FAULT_DEVICE_PRIVATE, FAULT_DEVICE_EXCLUSIVE, FAULT_MIGRATION, FAULT_NOTIFY, FAULT_HWPOISON, FAULT_READPAGE, FAULT_DAX,
} from "./fault.js";
import { flagWord, isU32, safeCount } from "./validate.js";

export interface SpawnOptions {
  /** NUMA node whose memory the process prefers (default 0). */
  node?: number;
}

export interface RunResult {
  /** Ops that completed; equals the batch length when none faulted. */
  completed: number;
  /** The fault that stopped the batch. */
  fault?: MmError;
  /**
   * With an EBUSY fault from a page under migration (a migration entry, a write to a
   * read-only migration PTE, a locked page-cache page): the page whose migration the
   * access would sleep on in migration_entry_wait. Retry once that migration has ended.
   */
  waitPfn?: number;
}

const TWO32 = 2 ** 32;
/** The most one read copies, as the kernel's MAX_RW_COUNT (INT_MAX rounded down to a page). */
const MAX_RW_COUNT = 0x7ffff000;
/** Pages a shmem object's page-cache tree indexes (assembly/mapping.ts). */
const SHMEM_MAX_PAGES = 2 ** 27;
/** The core's NONE: no file behind a VMA. */
const NO_FILE = 0xffffffff;
const TASK_PAGES = TASK_SIZE / PAGE_SIZE;
/** Where top-down placement starts: below the stack gap, as mmap_base. */
const MMAP_BASE_VPN = TASK_PAGES - (128 << 20) / PAGE_SIZE;

function protToVmFlags(prot: number): number {
  return (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);
}

export class Process {
  readonly pid: number;
  readonly node: number;
  /** @internal */ readonly mm: number;
  private vmas: Vma[] = [];
  private alive = true;
  /** @internal Interval notifiers on this mm. */
  subscriptions: MmuSubscriptions | null = null;
  /** @internal mm->def_flags: VM_LOCKED while mlockall(MCL_FUTURE) is in force. */
  defFlags = 0;
  /** @internal The task's memory policy (set_mempolicy); mode 0 is MPOL_DEFAULT. */
  taskPolicy: VmaPolicy = { mode: 0, nodes: 0 };

  /** @internal */
  constructor(private readonly machine: Machine, mm: number, pid: number, node: number) {
    this.mm = mm;
    this.pid = pid;
    this.node = node;
  }

  get exited(): boolean {
    return !this.alive;
  }

  /** @internal */
  machineOf(): Machine {
    return this.machine;
  }

  /** The VMA containing `addr`, in byte addresses. */
  vmaAt(addr: number): { start: number; end: number; flags: number; shared: boolean } | undefined {
    const v = Number.isInteger(addr) && addr >= 0 ? findVma(this.vmas, Math.floor(addr / PAGE_SIZE)) : undefined;
    return v && { start: v.start * PAGE_SIZE, end: v.end * PAGE_SIZE, flags: v.flags, shared: (v.flags & VM_SHARED) !== 0 };
  }

  /** @internal mmu_notifier_invalidate_range_start/end around a PTE change in [start, end). */
  notify(start: number, end: number, event: number, owner: unknown = null): void {
    const subs = this.subscriptions;
    if (!subs || subs.invalidate({ mm: this, start, end, flags: MMU_NOTIFIER_RANGE_BLOCKABLE, event, owner })) return;
    // A driver that refuses a blockable range has a bug: the kernel WARNs and goes on (the
    // PTEs change regardless), so the call completes and the machine keeps the report.
    this.machine.noteDriverError("invalidate_range_start", null, -1, new MmError("EFAULT", "mmu_notifier_invalidate_range_start",
      `an interval notifier's invalidate returned false for a blockable range ${hex(start)}-${hex(end)}: only non-blockable invalidations may be refused`, start));
  }

  /** A copy of the VMA list, with byte addresses. */
  maps(): { start: number; end: number; flags: number; shared: boolean; pgoff: number }[] {
    return this.vmas.map((v) => ({
      start: v.start * PAGE_SIZE, end: v.end * PAGE_SIZE, flags: v.flags, shared: (v.flags & VM_SHARED) !== 0, pgoff: v.pgoff,
    }));
  }

  /** Resident pages: anonymous and shared. */
  rss(): { anon: number; shmem: number } {
    this.live("rss");
    return { anon: this.machine.core.rssAnon(this.mm), shmem: this.machine.core.rssShmem(this.mm) };
  }

  // ---- validation -------------------------------------------------------------

  /** An address the access helpers add offsets to: a number inside the user address space. */
  private userAddr(fn: string, addr: number): void {
    if (typeof addr !== "number" || !Number.isInteger(addr) || addr < 0 || addr >= TASK_SIZE)
      fail("EFAULT", fn, `address ${String(addr)} is outside the user address space`, addr);
  }

  private live(fn: string): void {
    if (!this.alive) fail("ESRCH", fn, `process ${this.pid} has exited`, this.pid);
  }

  private alignedAddr(fn: string, addr: number): number {
    if (typeof addr !== "number" || !Number.isInteger(addr) || addr < 0)
      fail("EINVAL", fn, `address ${String(addr)} is not a non-negative integer`, addr);
    if (addr % PAGE_SIZE !== 0) fail("EINVAL", fn, `address ${hex(addr)} is not page-aligned`, addr);
    if (addr > TASK_SIZE) fail("EINVAL", fn, `address ${hex(addr)} lies beyond the user address space`, addr);
    return addr / PAGE_SIZE;
  }

  /** PAGE_ALIGN(len) in pages; zero or overflowing lengths are refused. */
  private lengthPages(fn: string, len: number, zeroErrno: "EINVAL" | null = "EINVAL"): number {
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0)
      fail("EINVAL", fn, `length ${String(len)} is not a non-negative integer`, len);
    if (len === 0 && zeroErrno) fail(zeroErrno, fn, `length is zero`, len);
    const pages = Math.ceil(len / PAGE_SIZE);
    if (pages > TASK_PAGES) fail("ENOMEM", fn, `length ${len} is larger than the user address space`, len);
    return pages;
  }

  private inBounds(fn: string, start: number, pages: number, errno: "EINVAL" | "ENOMEM" = "EINVAL"): void {
    if (start + pages > TASK_PAGES)
      fail(errno, fn, `range ${hex(start * PAGE_SIZE)}+${hex(pages * PAGE_SIZE)} overflows the user address space`, start * PAGE_SIZE);
  }

  private fitsMapCount(fn: string, list: Vma[]): void {
    if (list.length > this.machine.config.maxVmas)
      fail("ENOMEM", fn, `the process would have ${list.length} VMAs, more than max_map_count ${this.machine.config.maxVmas}`, list.length);
  }

  // ---- committing a new VMA list ----------------------------------------------

  /** Publishes `list` to the core and settles shmem references against the old list. */
  private commit(list: Vma[]): void {
    const delta = new Map<ShmemObject, number>();
    for (const v of this.vmas) if (v.shmem) delta.set(v.shmem, (delta.get(v.shmem) ?? 0) - 1);
    for (const v of list) if (v.shmem) delta.set(v.shmem, (delta.get(v.shmem) ?? 0) + 1);
    this.vmas = list;
    this.publish();
    this.machine.shmemRefs(delta);
    this.machine.settle();
  }

  private publish(): void {
    const core = this.machine.core;
    const w0 = core.mmVmaTable(this.mm) / 4;
    const u32 = this.machine.u32;
    this.vmas.forEach((v, i) => {
      const w = w0 + (i * VMA_RECORD) / 4;
      u32[w] = v.start % TWO32;
      u32[w + 1] = Math.floor(v.start / TWO32);
      u32[w + 2] = v.end % TWO32;
      u32[w + 3] = Math.floor(v.end / TWO32);
      u32[w + 4] = v.pgoff % TWO32;
      u32[w + 5] = Math.floor(v.pgoff / TWO32);
      u32[w + 6] = v.flags;
      u32[w + 7] = v.shmem ? v.shmem.id : v.file && v.flags & VM_SHARED ? v.file.id : v.anonVma;
      u32[w + 8] = v.mpol?.mode ?? 0;
      u32[w + 9] = v.mpol?.nodes ?? 0;
      u32[w + 10] = v.file ? v.file.id : NO_FILE;
    });
    core.mmSetNvmas(this.mm, this.vmas.length);
  }

  /** get_unmapped_area, top-down from mmap_base. Returns a vpn or -1. */
  private unmappedArea(pages: number): number {
    const list = this.vmas;
    const floor = MMAP_MIN_ADDR / PAGE_SIZE;
    for (let i = list.length - 1; i >= -1; i--) {
      const below = i >= 0 ? list[i]!.end : floor;
      const above = Math.min(i + 1 < list.length ? list[i + 1]!.start : MMAP_BASE_VPN, MMAP_BASE_VPN);
      if (above - Math.max(below, floor) >= pages) return above - pages;
    }
    return -1;
  }

  // ---- system calls -----------------------------------------------------------

  /**
   * mmap(2) of anonymous memory, or of an open file (`file`, from page-aligned `offset`)
   * without MAP_ANONYMOUS: MAP_SHARED maps its page cache, MAP_PRIVATE copies on write.
   * Returns the address.
   */
  mmap(addr: number, length: number, prot: number, flags: number, file: OpenFile | null = null, offset = 0): number {
    const fn = "mmap";
    this.live(fn);
    const { start, pages } = this.placeMapping(fn, addr, length, prot, flags);
    const shared = (flags & MAP_TYPE) !== MAP_PRIVATE;
    const inode = flags & MAP_ANONYMOUS ? null : this.mappableFile(fn, file, offset, pages, prot, shared);
    if (shared && !inode && pages > SHMEM_MAX_PAGES)
      fail("ENOMEM", fn, `a shared anonymous object holds at most ${SHMEM_MAX_PAGES} pages (512 GiB), asked for ${pages}`, length);
    let vmFlags = protToVmFlags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | this.defFlags;
    if (shared) vmFlags |= VM_SHARED | VM_MAYSHARE;
    // A shared mapping of a file opened read-only can never become writable.
    if (shared && inode && !file!.writable) vmFlags &= ~VM_MAYWRITE;
    if (inode?.fs.dax) {
      if (!shared) fail("EINVAL", fn, `a MAP_PRIVATE mapping of a file on a DAX mount is not modelled; map it MAP_SHARED`, flags);
      vmFlags |= VM_MIXEDMAP;
    }
    if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;

    const removed: Vma[] = [];
    const rest = cutRange(this.vmas, start, start + pages, removed);
    const vma: Vma = { start, end: start + pages, pgoff: start, flags: vmFlags, anonVma: 0, shmem: null, file: inode };
    if (inode) vma.pgoff = offset / PAGE_SIZE;
    if (shared) {
      if (!inode) vma.pgoff = 0;
    } else {
      // An adjacent compatible anon VMA lends its anon_vma so the two can merge, as vma_merge does.
      const i = findVmaIndex(rest, start);
      const prev = rest[i - 1];
      const next = rest[i];
      const probe = { ...vma, anonVma: -1 };
      if (prev && canMerge({ ...prev, anonVma: -1 }, probe)) vma.anonVma = prev.anonVma;
      else if (next && canMerge(probe, { ...next, anonVma: -1 })) vma.anonVma = next.anonVma;
      else vma.anonVma = this.machine.newAnonVma();
    }
    const { list } = insertVmas(rest, [vma]);
    this.fitsMapCount(fn, list);
    if (shared && !inode) vma.shmem = this.machine.openShmem(fn, pages);

    this.zapPieces(removed, MMU_NOTIFY_UNMAP);
    this.commit(list);
    // mm_populate, whose errors mmap ignores; a locked mapping faults in as mlock does.
    if (vmFlags & VM_LOCKED || flags & MAP_POPULATE) this.populate(start, start + pages, true);
    return start * PAGE_SIZE;
  }

  /** The checks mmap makes of a file: open for reading (and writing, for a writable shared map), an aligned offset. */
  private mappableFile(fn: string, file: OpenFile | null, offset: number, pages: number, prot: number, shared: boolean): Inode {
    if (!(file instanceof OpenFile)) fail("EBADF", fn, `a mapping without MAP_ANONYMOUS needs an open file`, file);
    file.live(fn);
    if (!file.readable) fail("EACCES", fn, `${file.inode.name} is not open for reading`, file.flags);
    if (shared && prot & PROT_WRITE && !file.writable) fail("EACCES", fn, `a writable shared mapping needs ${file.inode.name} open for writing`, prot);
    if (!Number.isInteger(offset) || offset < 0 || offset % PAGE_SIZE !== 0) fail("EINVAL", fn, `offset ${String(offset)} is not a page-aligned non-negative integer`, offset);
    if (offset / PAGE_SIZE + pages > MAX_FILE_PAGES) fail("EOVERFLOW", fn, `offset ${offset} + length runs past the largest file size`, offset);
    return file.inode;
  }

  /**
   * @internal unmap_mapping_range with even_cows: every PTE this process has for pages
   * [from, to) of `inode`, shared or private (COW copies too), is zapped, notifiers told.
   */
  unmapFileRange(inode: Inode, from: number, to: number): void {
    const pieces: Vma[] = [];
    for (const v of this.vmas) {
      if (v.file !== inode) continue;
      const s = Math.max(v.start, v.start + (from - v.pgoff));
      const e = Math.min(v.end, v.start + (to - v.pgoff));
      if (s < e) pieces.push({ ...v, start: s, end: e });
    }
    if (pieces.length) this.zapPieces(pieces, MMU_NOTIFY_CLEAR);
  }

  /** msync(2): MS_SYNC is vfs_fsync_range over the file pages the range maps shared (written back, flushed, committed); MS_ASYNC has nothing to start. */
  msync(addr: number, length: number, flags: number): void {
    const fn = "msync";
    this.live(fn);
    const start = this.alignedAddr(fn, addr);
    if (!isU32(flags) || (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) !== 0 || (flags & (MS_ASYNC | MS_SYNC)) === (MS_ASYNC | MS_SYNC))
      fail("EINVAL", fn, `flags ${String(flags)} are not MS_ASYNC or MS_SYNC (with MS_INVALIDATE)`, flags);
    const pages = this.lengthPages(fn, length, null);
    if (pages === 0) return;
    this.inBounds(fn, start, pages, "ENOMEM");
    if (!rangeMapped(this.vmas, start, start + pages)) fail("ENOMEM", fn, `range ${hex(addr)}+${hex(pages * PAGE_SIZE)} is not fully mapped`, addr);
    if (!(flags & MS_SYNC)) return;
    // Each shared file VMA of the range: vfs_fsync_range(datasync) over the pages it maps.
    for (const v of [...this.vmas]) {
      if (!v.file || !(v.flags & VM_SHARED) || v.end <= start || v.start >= start + pages) continue;
      const from = v.pgoff + (Math.max(v.start, start) - v.start);
      const to = v.pgoff + (Math.min(v.end, start + pages) - v.start);
      vfsFsyncRange(this.machine, v.file, fn, from, Math.min(to, v.file.sizePages));
    }
  }

  /**
   * @internal A driver's mmap (device-dax: VM_PFNMAP over a pfn range): mmap's checks and
   * placement, then the VMA as the driver describes it. Returns the address.
   */
  mmapSpecial(fn: string, addr: number, length: number, prot: number, flags: number, vma: { pgoff: number; flags: number; backing: number }): number {
    this.live(fn);
    const { start, pages } = this.placeMapping(fn, addr, length, prot, flags);
    const v: Vma = { start, end: start + pages, pgoff: vma.pgoff, flags: protToVmFlags(prot) | vma.flags, anonVma: vma.backing, shmem: null };
    const removed: Vma[] = [];
    const { list } = insertVmas(cutRange(this.vmas, start, start + pages, removed), [v]);
    this.fitsMapCount(fn, list);
    this.zapPieces(removed, MMU_NOTIFY_UNMAP);
    this.commit(list);
    return start * PAGE_SIZE;
  }

  /** mmap's checks of prot, flags and length, and where the mapping goes: its first page and length in pages. */
  private placeMapping(fn: string, addr: number, length: number, prot: number, flags: number): { start: number; pages: number } {
    flagWord(fn, "prot", prot, PROT_MASK);
    flagWord(fn, "flag", flags, MAP_KNOWN);
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE)
      fail("EINVAL", fn, `flags must have exactly one of MAP_SHARED or MAP_PRIVATE`, flags);
    const pages = this.lengthPages(fn, length);
    const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
    let start: number;
    if (fixed) {
      start = this.alignedAddr(fn, addr);
      if (addr < MMAP_MIN_ADDR) fail("EPERM", fn, `address ${hex(addr)} is below mmap_min_addr ${hex(MMAP_MIN_ADDR)}`, addr);
      this.inBounds(fn, start, pages, "ENOMEM");
      if ((flags & MAP_FIXED_NOREPLACE) && !rangeFree(this.vmas, start, start + pages))
        fail("EEXIST", fn, `range ${hex(addr)}+${hex(pages * PAGE_SIZE)} overlaps an existing mapping`, addr);
    } else {
      if (typeof addr !== "number" || !Number.isSafeInteger(addr) || addr < 0) fail("EINVAL", fn, `address hint ${String(addr)} is not a non-negative safe integer`, addr);
      const hint = Math.ceil(addr / PAGE_SIZE);
      start = addr >= MMAP_MIN_ADDR && hint + pages <= TASK_PAGES && rangeFree(this.vmas, hint, hint + pages) ? hint : this.unmappedArea(pages);
      if (start < 0) fail("ENOMEM", fn, `no free range of ${pages} pages in the address space`, length);
    }
    return { start, pages };
  }

  /** munmap(2). */
  munmap(addr: number, length: number): void {
    const fn = "munmap";
    this.live(fn);
    const start = this.alignedAddr(fn, addr);
    const pages = this.lengthPages(fn, length);
    this.inBounds(fn, start, pages);
    this.unmapRange(fn, start, pages);
  }

  private unmapRange(fn: string, start: number, pages: number): void {
    const removed: Vma[] = [];
    const list = cutRange(this.vmas, start, start + pages, removed);
    this.fitsMapCount(fn, list);
    this.zapPieces(removed, MMU_NOTIFY_UNMAP);
    this.commit(list);
  }

  private zapPieces(pieces: Vma[], event: number): void {
    for (const r of pieces) {
      this.notify(r.start * PAGE_SIZE, r.end * PAGE_SIZE, event);
      // Unmapping from a VM_LOCKED VMA munlocks the pages (their last locked mapping clears PG_mlocked).
      if (r.flags & VM_LOCKED) this.machine.core.mlockRange(this.mm, r.start, r.end - r.start, 0);
      this.machine.core.zap(this.mm, r.start, r.end - r.start);
    }
  }

  /** mprotect(2). */
  mprotect(addr: number, length: number, prot: number): void {
    const fn = "mprotect";
    this.live(fn);
    const start = this.alignedAddr(fn, addr);
    flagWord(fn, "prot", prot, PROT_MASK);
    const pages = this.lengthPages(fn, length, null);
    if (pages === 0) return;
    this.inBounds(fn, start, pages, "ENOMEM");
    const end = start + pages;
    if (!rangeMapped(this.vmas, start, end))
      fail("ENOMEM", fn, `range ${hex(addr)}+${hex(pages * PAGE_SIZE)} is not fully mapped`, addr);
    const want = protToVmFlags(prot);
    const removed: Vma[] = [];
    const rest = cutRange(this.vmas, start, end, removed);
    const denied = removed.find((r) => want & VM_WRITE && !(r.flags & VM_MAYWRITE));
    if (denied) fail("EACCES", fn, `the mapping at ${hex(denied.start * PAGE_SIZE)} can never be written (a shared map of a file opened read-only)`, prot);
    const changed = removed.map((r) => ({ ...r, flags: (r.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | want }));
    const { list } = insertVmas(rest, changed);
    this.fitsMapCount(fn, list);
    this.commit(list);
    for (const c of changed) {
      this.notify(c.start * PAGE_SIZE, c.end * PAGE_SIZE, MMU_NOTIFY_PROTECTION_VMA);
      this.machine.core.changeProt(this.mm, c.start, c.end - c.start, c.flags);
    }
    // mprotect_fixup: a locked private mapping made writable has its COW broken now, so its
    // pages stay resident when written.
    removed.forEach((r, i) => {
      if ((r.flags & (VM_WRITE | VM_SHARED | VM_LOCKED)) === VM_LOCKED && changed[i]!.flags & VM_WRITE) this.populate(r.start, r.end, true);
    });
  }

  /** madvise(2) with MADV_DONTNEED or MADV_FREE. */
  madvise(addr: number, length: number, advice: number): void {
    const fn = "madvise";
    this.live(fn);
    const start = this.alignedAddr(fn, addr);
    if (advice !== MADV_DONTNEED && advice !== MADV_FREE) fail("EINVAL", fn, `advice ${String(advice)} is not MADV_DONTNEED or MADV_FREE`, advice);
    const pages = this.lengthPages(fn, length, null);
    if (pages === 0) return;
    this.inBounds(fn, start, pages);
    const end = start + pages;
    if (!rangeMapped(this.vmas, start, end))
      fail("ENOMEM", fn, `range ${hex(addr)}+${hex(pages * PAGE_SIZE)} is not fully mapped`, addr);
    const parts: Vma[] = [];
    cutRange(this.vmas, start, end, parts);
    if (advice === MADV_FREE && parts.some((p) => p.flags & VM_SHARED))
      fail("EINVAL", fn, `MADV_FREE applies to private anonymous memory only`, addr);
    const raw = parts.find((p) => p.flags & VM_PFNMAP);
    if (raw) fail("EINVAL", fn, `the range holds a VM_PFNMAP mapping at ${hex(raw.start * PAGE_SIZE)}, whose pfns have no pages to discard`, addr);
    const locked = parts.find((p) => p.flags & VM_LOCKED);
    if (locked) fail("EINVAL", fn, `the range holds mlocked (VM_LOCKED) memory at ${hex(locked.start * PAGE_SIZE)}, which cannot be discarded`, addr);
    for (const p of parts) {
      this.notify(p.start * PAGE_SIZE, p.end * PAGE_SIZE, MMU_NOTIFY_CLEAR);
      if (advice === MADV_DONTNEED) this.machine.core.zap(this.mm, p.start, p.end - p.start);
      else this.machine.core.madvFree(this.mm, p.start, p.end - p.start);
    }
    this.machine.settle();
  }

  /** mremap(2). Returns the (possibly new) address. */
  mremap(oldAddr: number, oldLength: number, newLength: number, flags = 0, newAddr = 0): number {
    const fn = "mremap";
    this.live(fn);
    flagWord(fn, "flag", flags, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP);
    // new_address is read only with MREMAP_FIXED, but a garbage value is refused either way.
    safeCount(fn, "new address", newAddr);
    if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) && !(flags & MREMAP_MAYMOVE))
      fail("EINVAL", fn, `MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE`, flags);
    const keepOld = (flags & MREMAP_DONTUNMAP) !== 0;
    const old = this.alignedAddr(fn, oldAddr);
    const oldPages = this.lengthPages(fn, oldLength);
    const newPages = this.lengthPages(fn, newLength);
    this.inBounds(fn, old, oldPages);
    const vma = findVma(this.vmas, old);
    if (!vma || vma.end < old + oldPages)
      fail("EFAULT", fn, `range ${hex(oldAddr)}+${hex(oldPages * PAGE_SIZE)} is not inside one mapping`, oldAddr);
    if (keepOld && oldPages !== newPages) fail("EINVAL", fn, `MREMAP_DONTUNMAP needs equal old and new lengths`, newLength);
    // A mapping of raw pfns covers exactly what its driver mapped: it may move, never grow.
    if (vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) {
      if (newPages > oldPages) fail("EFAULT", fn, `the mapping at ${hex(oldAddr)} is VM_PFNMAP/VM_DONTEXPAND and cannot grow`, oldAddr);
      if (keepOld) fail("EINVAL", fn, `MREMAP_DONTUNMAP does not apply to the VM_PFNMAP/VM_DONTEXPAND mapping at ${hex(oldAddr)}`, oldAddr);
    }

    if (flags & MREMAP_FIXED) {
      const dest = this.alignedAddr(fn, newAddr);
      this.inBounds(fn, dest, newPages);
      if (dest < old + oldPages && old < dest + newPages) fail("EINVAL", fn, `the new range overlaps the old one`, newAddr);
      if (newAddr < MMAP_MIN_ADDR) fail("EPERM", fn, `address ${hex(newAddr)} is below mmap_min_addr`, newAddr);
      return this.moveVma(fn, vma, old, oldPages, newPages, dest, keepOld) * PAGE_SIZE;
    }
    if (newPages <= oldPages && !keepOld) {
      if (newPages < oldPages) this.unmapRange(fn, old + newPages, oldPages - newPages);
      return oldAddr;
    }
    // Grow in place when the range ends at the VMA's end and the pages after it are free.
    if (!keepOld && vma.end === old + oldPages && old + newPages <= TASK_PAGES && rangeFree(this.vmas, vma.end, old + newPages)) {
      const grown = { ...vma, end: old + newPages };
      const { list } = insertVmas(this.vmas.filter((v) => v !== vma), [grown]);
      this.commit(list);
      if (vma.flags & VM_LOCKED) this.populate(vma.end, grown.end, true);
      return oldAddr;
    }
    if (!(flags & MREMAP_MAYMOVE)) fail("ENOMEM", fn, `cannot grow in place and MREMAP_MAYMOVE is not set`, oldAddr);
    // The old range is still mapped while the new one is chosen, so the two never overlap.
    const dest = this.unmappedArea(newPages);
    if (dest < 0) fail("ENOMEM", fn, `no free range of ${newPages} pages to move to`, newLength);
    return this.moveVma(fn, vma, old, oldPages, newPages, dest, keepOld) * PAGE_SIZE;
  }

  /**
   * move_vma: the pages of [old, old+oldPages) to dest, keeping pgoff; the rest of dest is new.
   * With MREMAP_DONTUNMAP (`keepOld`) the old range stays mapped, empty.
   */
  private moveVma(fn: string, vma: Vma, old: number, oldPages: number, newPages: number, dest: number, keepOld: boolean): number {
    const movePages = Math.min(oldPages, newPages);
    const need = 3 * (Math.ceil(movePages / 512) + 2);
    if (this.machine.core.freeTables() < need) fail("ENOMEM", fn, `the page-table pool cannot hold the moved range`, oldPages);
    const clobbered: Vma[] = [];
    let list = cutRange(this.vmas, dest, dest + newPages, clobbered);
    if (!keepOld) {
      list = cutRange(list, old, old + oldPages);
    } else if (vma.flags & VM_LOCKED) {
      // The emptied old range stays mapped, but no longer locked.
      const kept: Vma[] = [];
      list = cutRange(list, old, old + oldPages, kept);
      list = insertVmas(list, kept.map((k) => ({ ...k, flags: k.flags & ~VM_LOCKED }))).list;
    }
    const moved: Vma = { ...vma, start: dest, end: dest + newPages, pgoff: vma.pgoff + (old - vma.start) };
    const merged = insertVmas(list, [moved]).list;
    this.fitsMapCount(fn, merged);
    const core = this.machine.core;
    this.zapPieces(clobbered, MMU_NOTIFY_UNMAP);
    if (oldPages > movePages) this.zapPieces([{ ...vma, start: old + movePages, end: old + oldPages }], MMU_NOTIFY_UNMAP);
    this.notify(old * PAGE_SIZE, (old + movePages) * PAGE_SIZE, MMU_NOTIFY_UNMAP);
    this.machine.ptesMoved(this, false);
    core.move(this.mm, old, movePages, dest);
    this.commit(merged);
    if (moved.flags & VM_LOCKED && newPages > movePages) this.populate(dest + movePages, dest + newPages, true);
    return dest;
  }

  /** fork(2): a child with a copy-on-write copy of this address space. */
  fork(): Process {
    const fn = "fork";
    this.live(fn);
    const core = this.machine.core;
    // copy_page_range skips shared mappings (they refault) except raw pfn ones (vma_needs_copy).
    const copied = (v: Vma): boolean => !(v.flags & VM_SHARED) || (v.flags & (VM_PFNMAP | VM_MIXEDMAP)) !== 0;
    const need = 1 + this.vmas.reduce((n, v) => (copied(v) ? n + core.countTablesIn(this.mm, v.start, v.end - v.start) : n), 0);
    if (need > core.freeTables())
      fail("ENOMEM", fn, `the page-table pool cannot hold a copy of process ${this.pid}'s tables`, this.pid);
    const child = this.machine.spawn({ node: this.node });
    child.setTaskPolicy(this.taskPolicy);
    // The child inherits VMA policies but not VM_LOCKED (nor mlockall's MCL_FUTURE).
    const list: Vma[] = this.vmas.map((v) => ({
      ...v, flags: v.flags & ~VM_LOCKED, anonVma: v.flags & VM_SHARED ? v.anonVma : this.machine.newAnonVma(),
    }));
    this.machine.ptesMoved(this, false);
    // The child's VMAs come first: a maybe-pinned page is copied into the child's anon_vma.
    child.commit(list);
    for (const v of this.vmas) {
      if (!copied(v)) continue;
      // The parent's PTEs lose write permission (and device-exclusive entries end) for COW.
      this.notify(v.start * PAGE_SIZE, v.end * PAGE_SIZE, MMU_NOTIFY_PROTECTION_PAGE);
      if (!core.copyRange(child.mm, this.mm, v.start, v.end - v.start)) {
        child.exit();
        fail("ENOMEM", fn, `out of memory while copying (page tables, or copies of pinned pages)`, this.pid);
      }
    }
    return child;
  }

  /** exit(2): tears down the address space. */
  exit(): void {
    this.live("exit");
    this.notify(0, TASK_SIZE, MMU_NOTIFY_RELEASE);
    this.machine.ptesMoved(this, true);
    for (const v of this.vmas) if (v.flags & VM_LOCKED) this.machine.core.mlockRange(this.mm, v.start, v.end - v.start, 0);
    this.machine.core.mmDestroy(this.mm);
    this.alive = false;
    const delta = new Map<ShmemObject, number>();
    for (const v of this.vmas) if (v.shmem) delta.set(v.shmem, (delta.get(v.shmem) ?? 0) - 1);
    this.vmas = [];
    this.machine.shmemRefs(delta);
    this.machine.forget(this);
    this.machine.settle();
  }

  // ---- for mbind, mlock and the NUMA calls ----------------------------------------

  /** @internal The VMA list (do not modify it). */
  vmaList(): readonly Vma[] {
    return this.vmas;
  }

  /** @internal Throws ENOMEM unless `list` fits max_map_count. */
  checkMapCount(fn: string, list: Vma[]): void {
    this.fitsMapCount(fn, list);
  }

  /** @internal Installs a planned VMA list. */
  installVmas(list: Vma[]): void {
    this.commit(list);
  }

  /** @internal set_mempolicy's record, here and in the core. */
  setTaskPolicy(p: VmaPolicy): void {
    this.taskPolicy = p;
    this.machine.core.mmSetPolicy(this.mm, p.mode, p.nodes);
  }

  /**
   * @internal __mm_populate over [start, end) (page numbers): every VMA there faults its pages
   * in as GUP does for mlock — write faults (breaking COW) in private writable VMAs, read faults
   * elsewhere. A PROT_NONE VMA is an EFAULT, as a fault that fails is its error; with
   * `ignoreErrors` a VMA that fails is left and the next one tried. Returns the first error.
   */
  populate(start: number, end: number, ignoreErrors: boolean): MmError | null {
    for (const v of [...this.vmas]) {
      if (v.end <= start || v.start >= end || v.flags & (VM_IO | VM_PFNMAP)) continue;
      const err = this.populateVma(v, Math.max(start, v.start), Math.min(end, v.end));
      if (err && !ignoreErrors) return err;
    }
    return null;
  }

  private populateVma(v: Vma, lo: number, hi: number): MmError | null {
    if (!(v.flags & VM_ACCESS_FLAGS))
      return new MmError("EFAULT", "populate", `the VMA at ${hex(v.start * PAGE_SIZE)} is PROT_NONE: its pages are never faulted in`, v.start * PAGE_SIZE);
    const write = (v.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
    const core = this.machine.core;
    // The core faults pages in until one needs TypeScript (a driver, a notifier) or fails.
    const r = this.machine.result;
    for (let vpn = lo; vpn < hi; vpn++) {
      vpn += core.populate(this.mm, vpn, hi - vpn, write ? 1 : 0);
      if (vpn >= hi) break;
      // The fault the core stopped at is half done (a file page may sit locked in the cache,
      // waiting for its read): resolve that one before faulting the page again.
      const err = this.resolveFault(r.getUint32(4, true), vpn * PAGE_SIZE, write, r.getUint32(20, true)) ?? this.faultPage(vpn * PAGE_SIZE, write);
      if (err) return err;
    }
    this.machine.settle();
    return null;
  }

  // ---- CPU access -------------------------------------------------------------

  /** A fresh batch of accesses for run(). */
  batch(): AccessBatch {
    this.live("batch");
    return this.machine.batch();
  }

  /**
   * Runs a batch; stops at the first fault, reporting it instead of throwing. Faults the
   * kernel resolves on the way (device-private pages via the driver's migrate_to_ram,
   * device-exclusive entries, notifier calls before a COW) are resolved and the batch resumes.
   */
  run(batch: AccessBatch): RunResult {
    this.live("run");
    this.machine.checkBatch(batch);
    const n = batch.length;
    const core = this.machine.core;
    const r = this.machine.result;
    let from = 0;
    let retries = 0;
    let lastAddr = -1;
    for (;;) {
      const done = core.access(this.mm, from, n);
      if (done === n) {
        this.machine.settle();
        return { completed: n };
      }
      const code = r.getUint32(4, true);
      const addr = r.getUint32(8, true) + r.getUint32(12, true) * TWO32;
      const write = r.getUint32(16, true) !== 0;
      const pfn = r.getUint32(20, true);
      let err: MmError | null;
      try {
        err = retries < 16 ? this.resolveFault(code, addr, write, pfn) : stuckFault(addr, write);
      } catch (e) {
        batch.restartOp(done);
        throw e;
      }
      if (err) {
        batch.restartOp(done);
        this.machine.settle();
        return code === FAULT_MIGRATION ? { completed: done, fault: err, waitPfn: pfn } : { completed: done, fault: err };
      }
      // Progress is a new op or a new address: each page may need its own fault resolved.
      retries = done === from && addr === lastAddr ? retries + 1 : 0;
      lastAddr = addr;
      from = done;
    }
  }

  /**
   * Handles the fault code of a CPU access the core handed back. Returns null when the
   * access should be retried, or the error that stops it.
   */
  private resolveFault(code: number, addr: number, write: boolean, pfn: number): MmError | null {
    const page = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
    switch (code) {
      case FAULT_DEVICE_PRIVATE:
        return this.machine.deviceFault(this, page, write, pfn, addr);
      case FAULT_DEVICE_EXCLUSIVE:
        this.notify(page, page + PAGE_SIZE, MMU_NOTIFY_EXCLUSIVE);
        this.machine.core.restoreExclusive(this.mm, page / PAGE_SIZE);
        return null;
      case FAULT_NOTIFY:
        this.notify(page, page + PAGE_SIZE, MMU_NOTIFY_CLEAR);
        this.machine.core.notified(this.mm, page / PAGE_SIZE);
        return null;
      case FAULT_READPAGE:
        return this.machine.readPageFault(pfn, addr, write);
      case FAULT_DAX:
        return daxFault(this.machine, this, addr, write);
      case FAULT_OOM:
        // Reclaim found only dirty file pages: the flusher writes them back, and the fault retries.
        if (this.machine.counter("nr_dirty") > 0 && balanceDirty(this.machine, true) > 0) return null;
        return faultError(code, addr, write ? "write" : "read");
      default:
        return faultError(code, addr, write ? "write" : "read");
    }
  }

  /**
   * @internal handle_mm_fault for one page outside a CPU access (GUP, hmm_range_fault).
   * GUP may ask for FAULT_FLAG_UNSHARE (`unshare`) or a FOLL_FORCE fault (`force`).
   */
  faultPage(addr: number, write: boolean, gup: { unshare?: boolean; force?: boolean } = {}): MmError | null {
    const core = this.machine.core;
    const vpn = Math.floor(addr / PAGE_SIZE);
    const special = gup.unshare === true || gup.force === true;
    for (let tries = 0; tries < 16; tries++) {
      const code = special
        ? core.gupFault(this.mm, vpn, write ? 1 : 0, gup.unshare ? 1 : 0, gup.force ? 1 : 0)
        : core.fault(this.mm, vpn, write ? 1 : 0);
      if (code === 0) return null;
      const err = this.resolveFault(code, addr, write, this.machine.result.getUint32(20, true));
      if (err) return err;
    }
    return stuckFault(addr, write);
  }

  private runOne(batch: AccessBatch): void {
    const r = this.run(batch);
    if (r.fault) throw r.fault;
  }

  read(addr: number, length: number): Uint8Array {
    this.live("read");
    this.userAddr("read", addr);
    if (!Number.isInteger(length) || length < 0) fail("EINVAL", "read", `length ${String(length)} is not a non-negative integer`, length);
    if (length > MAX_RW_COUNT) fail("EINVAL", "read", `length ${length} is more than one read copies (MAX_RW_COUNT ${MAX_RW_COUNT})`, length);
    const out = new Uint8Array(length);
    for (let off = 0; off < length; off += 1 << 20) {
      const b = this.batch();
      const n = Math.min(1 << 20, length - off);
      b.read(addr + off, n);
      this.runOne(b);
      out.set(b.value(0) as Uint8Array, off);
    }
    return out;
  }

  write(addr: number, data: Uint8Array): void {
    this.live("write");
    this.userAddr("write", addr);
    if (!(data instanceof Uint8Array)) fail("EINVAL", "write", "data must be a Uint8Array", data);
    for (let off = 0; off < data.length; off += 1 << 20) {
      const b = this.batch();
      b.write(addr + off, data.subarray(off, Math.min(data.length, off + (1 << 20))));
      this.runOne(b);
    }
  }

  readU32(addr: number): number {
    const b = this.batch();
    b.readU32(addr);
    this.runOne(b);
    return b.value(0) as number;
  }

  writeU32(addr: number, value: number): void {
    const b = this.batch();
    b.writeU32(addr, value);
    this.runOne(b);
  }

  readTag(addr: number): bigint {
    const b = this.batch();
    b.readTag(addr);
    this.runOne(b);
    return b.value(0) as bigint;
  }

  writeTag(addr: number, tag: bigint): void {
    const b = this.batch();
    b.writeTag(addr, tag);
    this.runOne(b);
  }

  /** Touches `npages` pages from `addr`: reads, or writes of tags tagBase+i. */
  touch(addr: number, npages: number, write: boolean, tagBase = 0n): void {
    const b = this.batch();
    b.touch(addr, npages, write, tagBase);
    this.runOne(b);
  }

  /** The raw PTE at `addr` (0n when none), for inspection. */
  pte(addr: number): bigint {
    this.live("pte");
    if (!Number.isInteger(addr) || addr < 0 || addr >= TASK_SIZE) fail("EFAULT", "pte", `address ${String(addr)} is outside the user address space`, addr);
    this.machine.core.readPte(this.mm, Math.floor(addr / PAGE_SIZE));
    const r = this.machine.result;
    return (BigInt(r.getUint32(84, true)) << 32n) | BigInt(r.getUint32(80, true));
  }

  /** The PTE walk: present and writable PTEs over [addr, addr+length), and the sum of their pfns. */
  walk(addr: number, length: number): { present: number; writable: number; pfnSum: number } {
    this.live("walk");
    const start = this.alignedAddr("walk", addr);
    const pages = this.lengthPages("walk", length);
    this.inBounds("walk", start, pages);
    const present = this.machine.core.walk(this.mm, start, pages);
    const r = this.machine.result;
    return { present, writable: r.getUint32(64, true), pfnSum: r.getFloat64(72, true) };
  }
}

function faultError(code: number, addr: number, access: "read" | "write"): MmError {
  const info = (si: FaultInfo["si_code"]): FaultInfo => ({ addr, access, si_code: si });
  switch (code) {
    case FAULT_SIGSEGV_MAPERR:
      return new MmError("SIGSEGV", "access", `${access} at ${hex(addr)}: no mapping (SEGV_MAPERR)`, addr, info("SEGV_MAPERR"));
    case FAULT_SIGSEGV_ACCERR:
      return new MmError("SIGSEGV", "access", `${access} at ${hex(addr)}: the mapping does not allow it (SEGV_ACCERR)`, addr, info("SEGV_ACCERR"));
    case FAULT_OOM:
      return new MmError("ENOMEM", "access", `${access} at ${hex(addr)}: out of memory (VM_FAULT_OOM)`, addr);
    case FAULT_HWPOISON:
      return new MmError("SIGBUS", "access", `${access} at ${hex(addr)}: the page is poisoned (memory failure)`, addr, info("BUS_MCEERR_AR"));
    case FAULT_MIGRATION:
      return new MmError("EBUSY", "access", `${access} at ${hex(addr)}: the page is under migration (migration_entry_wait would sleep)`, addr);
    default:
      return new MmError("SIGBUS", "access", `${access} at ${hex(addr)}: the page cannot be brought in (VM_FAULT_SIGBUS)`, addr, info("BUS_ADRERR"));
  }
}

/** A fault that came back after being resolved again and again (a driver that never moves the page). */
function stuckFault(addr: number, write: boolean): MmError {
  return new MmError("EBUSY", "access", `${write ? "write" : "read"} at ${hex(addr)}: the fault kept coming back after 16 attempts to resolve it`, addr);
}

/** @internal The error a migrate_to_ram result turns into. */
export function vmFaultError(ret: number, addr: number, write: boolean): MmError | null {
  if (ret === 0) return null;
  if (ret & VM_FAULT_OOM) return faultError(FAULT_OOM, addr, write ? "write" : "read");
  return faultError(FAULT_SIGBUS, addr, write ? "write" : "read");
}
