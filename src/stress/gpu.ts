// The device driver the stress scenarios use: one device with its memory registered as
// device-private or device-coherent, migrate_vma both ways, migrate_to_ram on CPU faults,
// eviction of its least recently migrated pages when full (oversubscription), and device
// loads/stores through hmm_range_fault. It spends simulated time on the run's timeline.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, VM_FAULT_OOM, type DevPagemap, type VmFault } from "../device/pagemap.js";
import { evictDevicePages } from "../device/evict.js";
import {
  MIGRATE_PFN_MIGRATE, MIGRATE_PFN_SHIFT, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM, type MigrateVma,
} from "../migrate.js";
import { HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_VALID } from "../hmm/range.js";
import { L } from "../layout.js";
import type { MmuIntervalNotifier } from "../hmm/notifier.js";
import { PAGE_SIZE, TASK_SIZE } from "../constants.js";
import type { DeviceKind } from "./machine-spec.js";
import type { Timeline } from "./timeline.js";
import type { CostModel } from "./cost.js";

const EBUSY = -16;
/** hmm_range_fault retries before a device access gives up (HMM_RANGE_DEFAULT_TIMEOUT stands for time). */
const MAX_HMM_TRIES = 64;
const HMM_VALID_HI = Number(HMM_PFN_VALID >> 32n) | 0;
const HMM_ERROR_HI = Number(HMM_PFN_ERROR >> 32n);
/** Pages a CPU fault on device memory brings back at once (64 KiB). */
const FAULT_AROUND = 16;

export class Gpu {
  readonly pgmap: DevPagemap;
  readonly name: string;
  /** In-use device pages, oldest migration first (a Map keeps insertion order). */
  private readonly resident = new Map<number, true>();
  private readonly notifiers = new Map<Process, MmuIntervalNotifier>();
  private readonly copyNs: number;
  /** Every frame's 64-bit tag as two u32 words (tags mode). */
  private readonly frameTags: Uint32Array;
  readonly stats = { migratedIn: 0, migratedOut: 0, evicted: 0, cpuFaults: 0, hmmCalls: 0, pagesRead: 0, pagesWritten: 0 };

  constructor(
    private readonly machine: Machine,
    readonly index: number,
    readonly kind: DeviceKind,
    readonly pages: number,
    private readonly tl: Timeline,
    private readonly cost: CostModel,
    /** The timeline track of a process (its CPU's faults are drawn there). */
    private readonly trackOf: (p: Process) => number,
  ) {
    this.name = `gpu${index} (${kind})`;
    this.copyNs = kind === "private" ? cost.pageCopyPrivateNs : cost.pageCopyCoherentNs;
    const frames = machine.config.frames + machine.config.deviceFrames;
    this.frameTags = new Uint32Array(machine.core.memory.buffer, machine.layout.slots[L.TAGS]!, frames * 2);
    this.pgmap = machine.memremapPages({
      type: kind === "private" ? MEMORY_DEVICE_PRIVATE : MEMORY_DEVICE_COHERENT,
      nrPages: pages,
      owner: this,
      name: this.name,
      ops: {
        pageFree: (_pg, pfn) => {
          this.resident.delete(pfn);
        },
        migrateToRam: (vmf) => this.migrateToRam(vmf),
      },
    });
  }

  get track(): number {
    return 100 + this.index;
  }

  get inUse(): number {
    return this.resident.size;
  }

  private get selectSelf(): number {
    return this.kind === "private" ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
  }

  /**
   * A CPU touched one of our device-private pages: bring back the aligned window of
   * FAULT_AROUND pages around it (inside its VMA), as GPU drivers migrate ranges, not pages.
   */
  private migrateToRam(vmf: VmFault): number {
    const t0 = this.tl.now;
    const vma = vmf.proc.vmaAt(vmf.address)!;
    const span = FAULT_AROUND * PAGE_SIZE;
    const start = Math.max(vma.start, Math.floor(vmf.address / span) * span);
    const end = Math.min(vma.end, start + span);
    const mig = this.machine.migrateVmaSetup({
      proc: vmf.proc, start, end, flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this, faultPage: vmf.page,
    });
    const n = mig.cpages > 0 ? mig.allocAndCopy({ node: vmf.proc.node }) : 0;
    mig.finalize();
    this.stats.migratedOut += n;
    this.stats.cpuFaults++;
    const ns = this.cost.deviceFaultNs + n * this.copyNs;
    this.tl.span(this.trackOf(vmf.proc), "migrate_to_ram", t0, ns, { device: this.name, pages: n });
    this.tl.latency("device_fault", ns);
    this.tl.advance(ns);
    // No system memory for the faulting page: the fault fails as the kernel's would.
    return n < mig.cpages ? VM_FAULT_OOM : 0;
  }

  /** Driver-initiated migration of [addr, addr + n pages) to device memory; returns pages moved. */
  migrateToDevice(proc: Process, addr: number, n: number): number {
    return this.migrate(proc, addr, n, true);
  }

  /** Driver-initiated migration of our pages in the range back to system memory. */
  migrateToSystem(proc: Process, addr: number, n: number): number {
    return this.migrate(proc, addr, n, false);
  }

  private migrate(proc: Process, addr: number, n: number, toDevice: boolean): number {
    const mig = this.machine.migrateVmaSetup({
      proc, start: addr, end: addr + n * PAGE_SIZE, flags: toDevice ? MIGRATE_VMA_SELECT_SYSTEM : this.selectSelf, pgmapOwner: this,
    });
    let moved = 0;
    if (mig.cpages > 0) {
      if (toDevice) {
        const short = mig.cpages - (this.pages - this.resident.size);
        if (short > 0) this.evict(short);
        mig.allocAndCopy(this.pgmap);
      } else {
        mig.allocAndCopy({ node: proc.node });
      }
      mig.pages();
      moved = this.moved(mig, toDevice);
    }
    const t0 = this.tl.now;
    mig.finalize();
    if (toDevice) this.stats.migratedIn += moved;
    else this.stats.migratedOut += moved;
    const ns = this.cost.migrateCallNs + moved * this.copyNs;
    this.tl.span(this.track, toDevice ? "migrate_vma to device" : "migrate_vma to system", t0, ns, { pages: n, moved });
    this.tl.advance(ns);
    return moved;
  }

  /** After migrate_vma_pages: how many pages move; new device pages that stay mapped join the LRU. */
  private moved(mig: MigrateVma, adopt: boolean): number {
    const { src, dst } = low32(mig);
    let moved = 0;
    for (let i = 0; i < mig.npages; i++) {
      if (!(src[2 * i]! & PFN_MIGRATE) || dst[2 * i] === 0) continue;
      if (adopt) this.resident.set(dst[2 * i]! >>> PFN_SHIFT, true);
      moved++;
    }
    return moved;
  }

  /** Evicts up to `n` of the least recently migrated pages to system memory (migrate_device_range). */
  evict(n: number): number {
    const t0 = this.tl.now;
    const victims: number[] = [];
    for (const pfn of this.resident.keys()) {
      if (victims.length === n) break;
      victims.push(pfn);
    }
    victims.sort((a, b) => a - b);
    const before = this.resident.size;
    // Runs of adjacent pfns go back in one migrate_device_range each.
    for (let i = 0; i < victims.length; ) {
      let j = i + 1;
      while (j < victims.length && victims[j] === victims[j - 1]! + 1) j++;
      evictDevicePages(this.machine, this.pgmap, victims[i]!, j - i);
      i = j;
    }
    const moved = before - this.resident.size;
    this.stats.evicted += moved;
    const ns = victims.length > 0 ? this.cost.migrateCallNs + moved * this.copyNs : 0;
    if (ns > 0) {
      this.tl.span(this.track, "evict (migrate_device_range)", t0, ns, { pages: moved });
      this.tl.advance(ns);
    }
    return moved;
  }

  /** Takes a page for device atomics (make_device_exclusive); the page comes back locked with a reference we drop. */
  makeExclusive(proc: Process, addr: number): void {
    const pfn = this.machine.makeDeviceExclusive(proc, addr, this);
    this.machine.page.unlock(pfn);
    this.machine.page.put(pfn);
    const ns = this.cost.hmmCallNs;
    this.tl.span(this.track, "make_device_exclusive", this.tl.now, ns);
    this.tl.advance(ns);
  }

  private notifierFor(proc: Process): MmuIntervalNotifier {
    let sub = this.notifiers.get(proc);
    if (!sub) {
      // We keep no device page table, so an invalidation only has to move the sequence.
      sub = this.machine.mmuIntervalNotifierInsert(proc, 0, TASK_SIZE, { invalidate: (s, _r, cur) => (s.setSeq(cur), true) });
      this.notifiers.set(proc, sub);
    }
    return sub;
  }

  /** Drops our notifier on a process before it exits. */
  forget(proc: Process): void {
    const sub = this.notifiers.get(proc);
    if (sub) this.machine.mmuIntervalNotifierRemove(sub);
    this.notifiers.delete(proc);
  }

  /**
   * A device load (tags out) or store (tags in) of n pages: hmm_range_fault with the
   * read_begin / read_retry protocol, then the copy. Returns 0 or the negative errno.
   */
  access(proc: Process, addr: number, n: number, write: boolean, tags: Float64Array): number {
    const t0 = this.tl.now;
    const sub = this.notifierFor(proc);
    const pfns = this.machine.hmmPfnsBuffer(n);
    let r: number;
    let calls = 0;
    // mmu_interval_read_begin, hmm_range_fault, then (under the driver lock) read_retry before
    // using the pfns: an invalidation in between means starting over.
    for (;;) {
      pfns.fill(0n);
      calls++;
      const seq = sub.readBegin();
      r = this.machine.hmmRangeFault({
        notifier: sub, notifierSeq: seq, start: addr, end: addr + n * PAGE_SIZE, hmmPfns: pfns,
        defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n), pfnFlagsMask: 0n, devPrivateOwner: this,
      });
      if (r === 0 && sub.readRetry(seq)) r = EBUSY;
      if (r !== EBUSY || calls === MAX_HMM_TRIES) break;
    }
    this.stats.hmmCalls += calls;
    if (r !== 0) return r;
    // The device's DMA: straight at the frames' tags, as u32 pairs (the runner's tags are < 2^32).
    const words = new Uint32Array(pfns.buffer, pfns.byteOffset, n * 2);
    const frameTags = this.frameTags;
    let local = 0;
    for (let i = 0; i < n; i++) {
      const hi = words[2 * i + 1]!;
      if (hi & HMM_ERROR_HI || !(hi & HMM_VALID_HI)) return -14;
      const pfn = words[2 * i]!;
      if (pfn >= this.pgmap.start && pfn < this.pgmap.end) local++;
      if (write) {
        frameTags[2 * pfn] = tags[i]!;
        frameTags[2 * pfn + 1] = 0;
      } else {
        if (frameTags[2 * pfn + 1] !== 0) return -14;
        tags[i] = frameTags[2 * pfn]!;
      }
    }
    if (write) this.stats.pagesWritten += n;
    else this.stats.pagesRead += n;
    const ns = calls * this.cost.hmmCallNs + n * this.cost.hmmPageNs + local * this.cost.deviceLocalNs + (n - local) * this.cost.deviceRemoteNs;
    this.tl.span(this.track, write ? "device store" : "device load", t0, ns, { pages: n, local });
    this.tl.latency("device_access", ns);
    this.tl.advance(ns);
    return 0;
  }
}

// MIGRATE_PFN_* entries of this machine's pfns fit their low 32 bits (pfns < 2^26):
// reading them as u32 pairs makes no bigints.
const PFN_MIGRATE = Number(MIGRATE_PFN_MIGRATE);
const PFN_SHIFT = Number(MIGRATE_PFN_SHIFT);

function low32(mig: MigrateVma): { src: Uint32Array; dst: Uint32Array } {
  const u32 = (a: BigUint64Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length * 2);
  return { src: u32(mig.src), dst: u32(mig.dst) };
}

