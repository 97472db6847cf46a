// The test mirror device, our counterpart of the kernel's lib/test_hmm.c "dmirror":
// four devices (0 and 1 with device-private memory, 2 and 3 with device-coherent
// memory), each open mirror keeping a device page table of one process filled only
// through hmm_range_fault and kept in sync by an interval notifier. Commands return
// { ret, cpages, faults } with a negative errno in ret, as the kernel's ioctls do.
// Device memory holds the data itself (the kernel's private pages use a system
// "rpage" as backing because that device is fake; ours has real device frames).
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import {
  DevPagemap, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, VM_FAULT_OOM, VM_FAULT_SIGBUS, type VmFault,
} from "../device/pagemap.js";
import {
  MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_FILE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, migratePfnToPage,
} from "../migrate.js";
import { MMU_NOTIFY_MIGRATE, type MmuIntervalNotifier, type MmuNotifierRange } from "../hmm/notifier.js";
import { HMM_PFN_VALID, HMM_PFN_WRITE, HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, hmmPfnToPfn } from "../hmm/range.js";
import { MmError, fail } from "../errors.js";
import { PAGE_SIZE, TASK_SIZE, VM_READ } from "../constants.js";
import { evictDevicePages } from "../device/evict.js";

export const HMM_DMIRROR_READ = 0;
export const HMM_DMIRROR_WRITE = 1;
export const HMM_DMIRROR_MIGRATE_TO_DEV = 2;
export const HMM_DMIRROR_MIGRATE_TO_SYS = 3;
export const HMM_DMIRROR_SNAPSHOT = 4;
export const HMM_DMIRROR_EXCLUSIVE = 5;
export const HMM_DMIRROR_CHECK_EXCLUSIVE = 6;
export const HMM_DMIRROR_RELEASE = 7;
export const HMM_DMIRROR_FLAGS = 8;

export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1;
/** Ours: MIGRATE_TO_DEV also moves pages of file mappings (MIGRATE_VMA_SELECT_FILE). */
export const HMM_DMIRROR_FLAG_FILE = 2;

export const HMM_DMIRROR_PROT_ERROR = 0xff;
export const HMM_DMIRROR_PROT_NONE = 0x00;
export const HMM_DMIRROR_PROT_READ = 0x01;
export const HMM_DMIRROR_PROT_WRITE = 0x02;
export const HMM_DMIRROR_PROT_PMD = 0x04;
export const HMM_DMIRROR_PROT_PUD = 0x08;
export const HMM_DMIRROR_PROT_ZERO = 0x10;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

export const HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1;
export const HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2;

// Device page-table entry tags.
const DPT_XA_TAG_READ = 0;
const DPT_XA_TAG_ATOMIC = 1;
const DPT_XA_TAG_WRITE = 3;

const EINVAL = -22;
const ENOENT = -2;
const EFAULT = -14;
const EBUSY = -16;
const EPERM = -1;
const ENOMEM = -12;
const EIO = -5;

/** A driver's error as an ioctl's return: an MmError's errno; anything else is a bug and goes on up. */
function errnoOf(e: unknown): number {
  if (e instanceof MmError && e.errno < 0) return e.errno;
  throw e;
}

/** Pages one hmm_range_fault pass of the mirror covers. */
const FAULT_CHUNK = 32;
/** Pages one migrate_vma of the mirror covers. */
const MIGRATE_CHUNK = 512;
/** Stands in for HMM_RANGE_DEFAULT_TIMEOUT: how many -EBUSY retries before giving up. */
const MAX_RETRIES = 1000;

export interface DmirrorCmd {
  /** Page-aligned start address. */
  addr: number;
  npages: number;
  /** Data in/out: bytes mode, npages*4096 bytes; tags mode, npages tags. SNAPSHOT: npages bytes. */
  buffer?: Uint8Array | BigUint64Array;
}

export interface DmirrorResult {
  ret: number;
  cpages: number;
  faults: number;
  buffer?: Uint8Array | BigUint64Array;
}

export interface HmmDevicesOptions {
  /** Pages per device memory chunk (the kernel's are 256 MiB; default 256 = 1 MiB). */
  chunkPages?: number;
  /** Chunks a device may register at most (default 16). */
  maxChunks?: number;
}

/** One of the four test devices (struct dmirror_device). */
export class HmmDmirrorDevice {
  /** Pages handed to mirrors / pages given back. */
  calloc = 0;
  cfree = 0;
  readonly chunks: DevPagemap[] = [];
  /** @internal Open mirrors of this device. */
  readonly mirrors = new Set<HmmDmirror>();
  /** Which mirror migrated each device page in (page->zone_device_data). */
  /** @internal */ readonly pageMirror = new Map<number, HmmDmirror>();

  /** @internal */
  constructor(
    readonly machine: Machine,
    readonly minor: number,
    readonly memoryType: number,
    private readonly chunkPages: number,
    private readonly maxChunks: number,
  ) {}

  /** The device's name, "hmm_dmirror<minor>" (machine.inject's `device`). */
  get name(): string {
    return `hmm_dmirror${this.minor}`;
  }

  /** Opens the device for a process (open("/dev/hmm_dmirrorN")). */
  open(proc: Process): HmmDmirror {
    return new HmmDmirror(this, proc);
  }

  /** A locked device page with one reference, adding a chunk when all are full; -1 when out. */
  /** @internal */
  allocPage(): number {
    const core = this.machine.core;
    // The first chunk comes with the first request, so an injected failure always has a zone to match.
    if (this.chunks.length === 0 && !this.tryAddChunk()) return -1;
    // One request, one event for machine.inject, however many chunks it looks in.
    if (this.machine.inject.deviceAllocFails(this.chunks[0]!.zone)) return -1;
    for (const c of this.chunks) {
      const pfn = core.deviceAllocPage(c.zone);
      if (pfn >= 0) {
        this.calloc++;
        return pfn;
      }
    }
    if (!this.tryAddChunk()) return -1;
    const pfn = core.deviceAllocPage(this.chunks[this.chunks.length - 1]!.zone);
    if (pfn >= 0) this.calloc++;
    return pfn;
  }

  /** Adds a chunk; false when the device has its maximum or device memory is full. */
  private tryAddChunk(): boolean {
    if (this.chunks.length >= this.maxChunks) return false;
    try {
      this.addChunk();
    } catch (e) {
      if (e instanceof MmError && e.code === "ENOMEM") return false;
      throw e;
    }
    return true;
  }

  private addChunk(): DevPagemap {
    const type = this.memoryType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE ? MEMORY_DEVICE_PRIVATE : MEMORY_DEVICE_COHERENT;
    const pg = this.machine.memremapPages({
      type, nrPages: this.chunkPages, owner: this, name: this.name,
      ops: {
        pageFree: (_pg, pfn) => {
          this.cfree++;
          this.pageMirror.delete(pfn);
          // Our own migrations skip the notifier, so a mirror may still map a page that
          // came home through another mirror: no device table may keep a freed page.
          for (const mirror of this.mirrors) mirror.forgetPage(pfn);
        },
        migrateToRam: type === MEMORY_DEVICE_PRIVATE ? (vmf) => this.devmemFault(vmf) : undefined,
      },
    });
    this.chunks.push(pg);
    return pg;
  }

  /** dmirror_devmem_fault: a CPU touched one of our private pages; bring it back. */
  private devmemFault(vmf: VmFault): number {
    const m = this.machine;
    const mirror = this.pageMirror.get(vmf.page);
    let mig;
    try {
      mig = m.migrateVmaSetup({
        proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE,
        flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this, faultPage: vmf.page,
      });
    } catch {
      return VM_FAULT_SIGBUS;
    }
    if (mig.cpages > 0 && mig.allocAndCopy({ node: 0 }) === 0) {
      mig.abort();
      // migrate_to_ram may not fail: a failed copy is SIGBUS, no memory is VM_FAULT_OOM.
      return mig.copyFailures > 0 ? VM_FAULT_SIGBUS : VM_FAULT_OOM;
    }
    mirror?.erase(vmf.address / PAGE_SIZE);
    mig.finalize();
    return 0;
  }

  /** Evicts every chunk's pages to system memory (dmirror_device_evict_chunk for each). */
  evictAll(): void {
    for (const c of this.chunks) evictDevicePages(this.machine, c);
    this.machine.settle();
  }

  /** HMM_DMIRROR_RELEASE: evict and unregister every chunk. */
  /** @internal */
  removeChunks(): number {
    while (this.chunks.length > 0) {
      const c = this.chunks[this.chunks.length - 1]!;
      try {
        this.machine.memunmapPages(c);
      } catch (e) {
        if (e instanceof MmError && e.code === "EBUSY") return EBUSY;
        throw e;
      }
      this.chunks.pop();
    }
    return 0;
  }
}

/** The four test devices of a machine: 0 and 1 private, 2 and 3 coherent. */
export function createHmmDevices(machine: Machine, opts: HmmDevicesOptions = {}): HmmDmirrorDevice[] {
  const chunkPages = opts.chunkPages ?? 256;
  const maxChunks = opts.maxChunks ?? 16;
  if (!Number.isInteger(chunkPages) || chunkPages <= 0) fail("EINVAL", "createHmmDevices", `chunkPages must be a positive integer`, chunkPages);
  if (!Number.isInteger(maxChunks) || maxChunks <= 0) fail("EINVAL", "createHmmDevices", `maxChunks must be a positive integer`, maxChunks);
  const devices = [0, 1, 2, 3].map((minor) => new HmmDmirrorDevice(
    machine, minor, minor < 2 ? HMM_DMIRROR_MEMORY_DEVICE_PRIVATE : HMM_DMIRROR_MEMORY_DEVICE_COHERENT, chunkPages, maxChunks));
  for (const d of devices) machine.inject.registerDevice(d.name);
  return devices;
}

interface PtEntry {
  pfn: number;
  tag: number;
}

/** One open mirror (struct dmirror): a device page table of one process. */
export class HmmDmirror {
  /** Device page table: virtual pfn → page and tag. Holds no page references. */
  private readonly pt = new Map<number, PtEntry>();
  private readonly notifier: MmuIntervalNotifier;
  private flags = 0;
  private closed = false;

  /** @internal */
  constructor(readonly device: HmmDmirrorDevice, readonly proc: Process) {
    this.notifier = device.machine.mmuIntervalNotifierInsert(proc, 0, TASK_SIZE, {
      invalidate: (sub, range, cur) => this.invalidate(sub, range, cur),
    });
    device.mirrors.add(this);
  }

  private get machine(): Machine {
    return this.device.machine;
  }

  /** dmirror_interval_invalidate. */
  private invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean {
    // Our own migrations: the pages are ours and the table is fixed up by us.
    if (range.event === MMU_NOTIFY_MIGRATE && range.owner === this.device) return true;
    sub.setSeq(curSeq);
    // As the kernel's dmirror_do_update, the last index is inclusive.
    const first = Math.floor(range.start / PAGE_SIZE);
    const last = Math.floor(range.end / PAGE_SIZE);
    if (last - first < this.pt.size) {
      for (let v = first; v <= last; v++) this.pt.delete(v);
    } else {
      for (const v of [...this.pt.keys()]) if (v >= first && v <= last) this.pt.delete(v);
    }
    return true;
  }

  /** @internal */
  erase(vpn: number): void {
    this.pt.delete(vpn);
  }

  /** @internal Drops every entry that maps `pfn`. */
  forgetPage(pfn: number): void {
    for (const [v, e] of this.pt) if (e.pfn === pfn) this.pt.delete(v);
  }

  /** Entries in the device page table (for tests). */
  get mappedPages(): number {
    return this.pt.size;
  }

  /** The ioctl: one of the HMM_DMIRROR_* commands. */
  cmd(command: number, c: DmirrorCmd = { addr: 0, npages: 0 }): DmirrorResult {
    const out: DmirrorResult = { ret: 0, cpages: 0, faults: 0 };
    if (this.closed) fail("EBADF", "dmirror ioctl", "the mirror is closed");
    if (typeof c !== "object" || c === null) fail("EINVAL", "dmirror ioctl", "the command block must be an object", c);
    const { addr, npages } = c;
    if (command === HMM_DMIRROR_FLAGS) {
      if (!Number.isInteger(npages) || npages < 0 || npages >= 2 ** 32) {
        out.ret = EINVAL;
        return out;
      }
      this.flags = npages;
      return out;
    }
    if (command === HMM_DMIRROR_RELEASE) {
      out.ret = this.device.removeChunks();
      return out;
    }
    if (!Number.isInteger(addr) || !Number.isInteger(npages) || addr < 0 || npages < 0 || addr % PAGE_SIZE ||
        addr + npages * PAGE_SIZE > TASK_SIZE) {
      out.ret = EINVAL;
      return out;
    }
    const start = addr / PAGE_SIZE;
    const end = start + npages;
    switch (command) {
      case HMM_DMIRROR_READ:
        return this.readWrite(start, end, c, out, false);
      case HMM_DMIRROR_WRITE:
        return this.readWrite(start, end, c, out, true);
      case HMM_DMIRROR_MIGRATE_TO_DEV:
        return this.migrateToDevice(start, end, c, out);
      case HMM_DMIRROR_MIGRATE_TO_SYS:
        return this.migrateToSystem(start, end, out);
      case HMM_DMIRROR_SNAPSHOT:
        return this.snapshot(start, end, c, out);
      case HMM_DMIRROR_EXCLUSIVE:
        return this.exclusive(start, end, c, out);
      case HMM_DMIRROR_CHECK_EXCLUSIVE:
        out.ret = this.checkAtomic(start, end) ? EPERM : 0;
        return out;
      default:
        out.ret = EINVAL;
        return out;
    }
  }

  /** close(): removes the notifier and evicts the device's memory, as the kernel's release does. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.device.mirrors.delete(this);
    this.machine.mmuIntervalNotifierRemove(this.notifier);
    this.device.evictAll();
    this.pt.clear();
  }

  // ---- device reads and writes --------------------------------------------------

  private dataBuffer(c: DmirrorCmd, npages: number): Uint8Array | BigUint64Array {
    const bytes = this.machine.config.content === "bytes";
    if (c.buffer) {
      const ok = bytes ? c.buffer instanceof Uint8Array && c.buffer.length >= npages * PAGE_SIZE
        : c.buffer instanceof BigUint64Array && c.buffer.length >= npages;
      if (!ok) fail("EINVAL", "dmirror ioctl", bytes ? `buffer must be a Uint8Array of ${npages * PAGE_SIZE} bytes` : `buffer must be a BigUint64Array of ${npages} tags`, c.buffer?.length);
      return c.buffer;
    }
    return bytes ? new Uint8Array(npages * PAGE_SIZE) : new BigUint64Array(npages);
  }

  /** dmirror_do_read: copies from the device table; -ENOENT at the first missing page. */
  private doRead(start: number, end: number, buf: Uint8Array | BigUint64Array, out: DmirrorResult): number {
    const page = this.machine.page;
    for (let v = start + out.cpages; v < end; v++) {
      const e = this.pt.get(v);
      if (!e) return ENOENT;
      const i = v - start;
      if (buf instanceof Uint8Array) buf.set(page.readBytes(e.pfn), i * PAGE_SIZE);
      else buf[i] = page.readTag(e.pfn);
      out.cpages++;
    }
    return 0;
  }

  private doWrite(start: number, end: number, buf: Uint8Array | BigUint64Array, out: DmirrorResult): number {
    const m = this.machine;
    const page = m.page;
    const dirtied: number[] = [];
    try {
      for (let v = start + out.cpages; v < end; v++) {
        const e = this.pt.get(v);
        if (!e || e.tag !== DPT_XA_TAG_WRITE) return ENOENT;
        const i = v - start;
        if (buf instanceof Uint8Array) page.writeBytes(e.pfn, buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
        else page.writeTag(e.pfn, buf[i]!);
        // The device wrote a file page in its memory: it says so (the CPU saw no store).
        if (e.pfn >= m.config.frames && m.cachedPageOwner(e.pfn)) dirtied.push(e.pfn);
        out.cpages++;
      }
      return 0;
    } finally {
      if (dirtied.length) m.fileDeviceDirty(dirtied);
    }
  }

  /**
   * dmirror_read / dmirror_write: copy through the device table; at the first page it
   * lacks (or lacks write access to), fault the rest of the range in and go on.
   */
  private readWrite(start: number, end: number, c: DmirrorCmd, out: DmirrorResult, write: boolean): DmirrorResult {
    const buf = this.dataBuffer(c, end - start);
    for (;;) {
      const r = write ? this.doWrite(start, end, buf, out) : this.doRead(start, end, buf, out);
      if (r !== ENOENT) {
        out.ret = r;
        break;
      }
      const f = this.fault(start + out.cpages, end, write);
      if (f) {
        out.ret = f;
        break;
      }
      out.faults++;
    }
    if (out.ret === 0 && !write) out.buffer = buf;
    return out;
  }

  /** dmirror_fault: hmm_range_fault in chunks, the results stored in the device table. */
  private fault(start: number, end: number, write: boolean): number {
    if (this.proc.exited) return 0;
    for (let v = start; v < end; v += FAULT_CHUNK) {
      const n = Math.min(FAULT_CHUNK, end - v);
      const r = this.rangeFault(v, n, HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n), (pfns) => {
        for (let i = 0; i < n; i++) {
          const x = pfns[i]!;
          if (x & HMM_PFN_ERROR || !(x & HMM_PFN_VALID)) return EFAULT;
          this.pt.set(v + i, { pfn: hmmPfnToPfn(x), tag: x & HMM_PFN_WRITE ? DPT_XA_TAG_WRITE : DPT_XA_TAG_READ });
        }
        return 0;
      });
      if (r) return r;
    }
    return 0;
  }

  /**
   * The driver pattern of hmm.rst: read_begin, hmm_range_fault (retry on -EBUSY), then
   * under the driver lock read_retry, and only then use the result.
   */
  private rangeFault(vpn: number, n: number, defaultFlags: bigint, use: (pfns: BigUint64Array) => number, notifier = this.notifier): number {
    const pfns = new BigUint64Array(n);
    for (let tries = 0; tries < MAX_RETRIES; tries++) {
      const seq = notifier.readBegin();
      const r = this.machine.hmmRangeFault({
        notifier, notifierSeq: seq, start: vpn * PAGE_SIZE, end: (vpn + n) * PAGE_SIZE, hmmPfns: pfns,
        defaultFlags, pfnFlagsMask: 0n, devPrivateOwner: this.device,
      });
      if (r === EBUSY) continue;
      if (r) return r;
      if (notifier.readRetry(seq)) continue;
      return use(pfns);
    }
    return EBUSY;
  }

  // ---- migration ------------------------------------------------------------------

  private vmaChunks(start: number, end: number, each: (from: number, to: number) => number): number {
    for (let v = start; v < end;) {
      const vma = this.proc.vmaAt(v * PAGE_SIZE);
      if (!vma || !(vma.flags & VM_READ)) return EINVAL;
      const next = Math.min(end, v + MIGRATE_CHUNK, vma.end / PAGE_SIZE);
      const r = each(v, next);
      if (r) return r;
      v = next;
    }
    return 0;
  }

  private migrateToDevice(start: number, end: number, c: DmirrorCmd, out: DmirrorResult): DmirrorResult {
    if (this.proc.exited) {
      out.ret = EINVAL;
      return out;
    }
    const m = this.machine;
    const ret = this.vmaChunks(start, end, (from, to) => {
      const mig = m.migrateVmaSetup({
        proc: this.proc, start: from * PAGE_SIZE, end: to * PAGE_SIZE,
        flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND | (this.flags & HMM_DMIRROR_FLAG_FILE ? MIGRATE_VMA_SELECT_FILE : 0),
        pgmapOwner: this.device,
      });
      const inject = m.inject;
      const name = this.device.name;
      try {
        inject.callback(name, "alloc_and_copy");
      } catch (e) {
        // The driver fails before it allocates: nothing migrates.
        mig.abort();
        return errnoOf(e);
      }
      // dmirror_migrate_alloc_and_copy: device pages, one-shot FAIL_ALLOC skips the first.
      for (let i = 0; i < mig.npages; i++) {
        const s = mig.src[i]!;
        if (!(s & MIGRATE_PFN_MIGRATE)) continue;
        if (this.flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) {
          this.flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC;
          continue;
        }
        const d = this.device.allocPage();
        if (d < 0) continue;
        const sp = migratePfnToPage(s);
        if (inject.copyFails(name)) {
          // A failed DMA: the page is not migrated, the new device page goes back.
          m.page.unlock(d);
          m.page.put(d);
          continue;
        }
        if (sp >= 0) m.page.copy(d, sp);
        else m.page.clear(d);
        mig.dst[i] = (BigInt(d) << 6n) | MIGRATE_PFN_VALID | (s & MIGRATE_PFN_WRITE);
      }
      mig.pages();
      try {
        inject.callback(name, "finalize_and_map");
      } catch (e) {
        // The pages moved but the device did not map them: it faults them in when it needs them.
        mig.finalize();
        m.settle();
        return errnoOf(e);
      }
      // dmirror_migrate_finalize_and_map: the device maps what it now holds.
      for (let i = 0; i < mig.npages; i++) {
        if (!(mig.src[i]! & MIGRATE_PFN_MIGRATE)) continue;
        const d = migratePfnToPage(mig.dst[i]!);
        if (d < 0) continue;
        this.device.pageMirror.set(d, this);
        this.pt.set(from + i, { pfn: d, tag: mig.dst[i]! & MIGRATE_PFN_WRITE ? DPT_XA_TAG_WRITE : DPT_XA_TAG_READ });
      }
      mig.finalize();
      return 0;
    });
    if (ret) {
      out.ret = ret;
      return out;
    }
    // The migrated data comes back for verification: a device read, no faults.
    const buf = this.dataBuffer(c, end - start);
    out.ret = this.doRead(start, end, buf, out);
    if (out.ret === 0) out.buffer = buf;
    return out;
  }

  private migrateToSystem(start: number, end: number, out: DmirrorResult): DmirrorResult {
    if (this.proc.exited) {
      out.ret = EINVAL;
      return out;
    }
    const m = this.machine;
    const select = this.device.memoryType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
    out.ret = this.vmaChunks(start, end, (from, to) => {
      const mig = m.migrateVmaSetup({
        proc: this.proc, start: from * PAGE_SIZE, end: to * PAGE_SIZE, flags: select | MIGRATE_VMA_SELECT_COMPOUND, pgmapOwner: this.device,
      });
      // dmirror_devmem_fault_alloc_and_copy: system pages; the device forgets the page.
      let oom = false;
      for (let i = 0; i < mig.npages; i++) {
        const s = mig.src[i]!;
        const sp = migratePfnToPage(s);
        if (!(s & MIGRATE_PFN_MIGRATE) || sp < 0) continue;
        this.pt.delete(from + i);
      }
      // Holes stay holes: only pages the device holds come back.
      const held = [...mig.src].filter((e) => e & MIGRATE_PFN_MIGRATE && e & MIGRATE_PFN_VALID).length;
      try {
        if (held > 0 && mig.allocAndCopy({ node: 0 }, { holes: false }) < held) oom = true;
      } catch (e) {
        // allocAndCopy rolled the migration back.
        return errnoOf(e);
      }
      mig.pages();
      for (let i = 0; i < mig.npages; i++) {
        const s = mig.src[i]!;
        if (s & MIGRATE_PFN_VALID && s & MIGRATE_PFN_MIGRATE) out.cpages++;
      }
      mig.finalize();
      return mig.copyFailures > 0 ? EIO : oom ? ENOMEM : 0;
    });
    return out;
  }

  // ---- snapshot and exclusive access -----------------------------------------------

  private snapshot(start: number, end: number, c: DmirrorCmd, out: DmirrorResult): DmirrorResult {
    const perm = c.buffer instanceof Uint8Array && c.buffer.length >= end - start ? c.buffer : new Uint8Array(end - start);
    const m = this.machine;
    for (let v = start; v < end; v += FAULT_CHUNK) {
      const n = Math.min(FAULT_CHUNK, end - v);
      // A notifier of its own for the chunk: its invalidate only moves the sequence.
      const sub = m.mmuIntervalNotifierInsert(this.proc, v * PAGE_SIZE, n * PAGE_SIZE, {
        invalidate: (s, _r, cur) => {
          s.setSeq(cur);
          return true;
        },
      });
      const r = this.rangeFault(v, n, 0n, (pfns) => {
        for (let i = 0; i < n; i++) perm[v - start + i] = this.mkentry(pfns[i]!);
        return 0;
      }, sub);
      m.mmuIntervalNotifierRemove(sub);
      if (r) {
        out.ret = r;
        return out;
      }
      out.cpages += n;
    }
    out.buffer = perm;
    return out;
  }

  /** dmirror_mkentry: one byte per page in HMM_DMIRROR_PROT_* encoding. */
  private mkentry(x: bigint): number {
    if (x & HMM_PFN_ERROR) return HMM_DMIRROR_PROT_ERROR;
    if (!(x & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
    const pfn = hmmPfnToPfn(x);
    const pg = this.machine.pagemapOf(pfn);
    let perm = HMM_DMIRROR_PROT_NONE;
    if (pg?.type === MEMORY_DEVICE_PRIVATE) perm = pg.owner === this.device ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
    else if (pg?.type === MEMORY_DEVICE_COHERENT) perm = pg.owner === this.device ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
    else if (pfn === 0) perm = HMM_DMIRROR_PROT_ZERO;
    return perm | (x & HMM_PFN_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ);
  }

  private exclusive(start: number, end: number, c: DmirrorCmd, out: DmirrorResult): DmirrorResult {
    if (this.proc.exited) {
      out.ret = EINVAL;
      return out;
    }
    const m = this.machine;
    for (let v = start; v < end; v++) {
      let pfn: number;
      try {
        pfn = m.makeDeviceExclusive(this.proc, v * PAGE_SIZE, null);
      } catch (e) {
        if (!(e instanceof MmError)) throw e;
        out.ret = e.errno || EFAULT;
        return out;
      }
      this.pt.set(v, { pfn, tag: DPT_XA_TAG_ATOMIC });
      m.page.unlock(pfn);
      m.page.put(pfn);
    }
    const buf = this.dataBuffer(c, end - start);
    out.ret = this.doRead(start, end, buf, out);
    if (out.ret === 0) out.buffer = buf;
    return out;
  }

  /** dmirror_check_atomic: any exclusive entry left in [start, end] (inclusive, as the kernel's). */
  private checkAtomic(start: number, end: number): boolean {
    for (const [v, e] of this.pt) if (v >= start && v <= end && e.tag === DPT_XA_TAG_ATOMIC) return true;
    return false;
  }
}
