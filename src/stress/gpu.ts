// The device driver the stress scenarios use: one device with its memory registered as
// device-private or device-coherent, migrate_vma both ways, migrate_to_ram on CPU faults,
// eviction of its least recently migrated pages when full (oversubscription), and device
// loads/stores through hmm_range_fault. It spends simulated time on the run's timeline.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, type DevPagemap, type VmFault } from "../device/pagemap.js";
import { evictDevicePages } from "../device/evict.js";
import {
  MIGRATE_PFN_MIGRATE, MIGRATE_PFN_SHIFT, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM, type MigrateVma,
} from "../migrate.js";
import { HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_VALID, hmmPfnToPfn } from "../hmm/range.js";
import type { MmuIntervalNotifier } from "../hmm/notifier.js";
import { PAGE_SIZE, TASK_SIZE } from "../constants.js";
import type { DeviceKind } from "./machine-spec.js";
import type { Timeline } from "./timeline.js";
import type { CostModel } from "./cost.js";

const EBUSY = -16;

export class Gpu {
  readonly pgmap: DevPagemap;
  readonly name: string;
  /** In-use device pages, oldest migration first (a Map keeps insertion order). */
  private readonly resident = new Map<number, true>();
  private readonly notifiers = new Map<Process, MmuIntervalNotifier>();
  private readonly copyNs: number;
  readonly stats = { migratedIn: 0, migratedOut: 0, evicted: 0, cpuFaults: 0, hmmFaults: 0, pagesRead: 0, pagesWritten: 0 };

  constructor(
    private readonly machine: Machine,
    readonly index: number,
    readonly kind: DeviceKind,
    readonly pages: number,
    private readonly tl: Timeline,
    private readonly cost: CostModel,
  ) {
    this.name = `gpu${index} (${kind})`;
    this.copyNs = kind === "private" ? cost.pageCopyPrivateNs : cost.pageCopyCoherentNs;
    this.pgmap = machine.memremapPages({
      type: kind === "private" ? MEMORY_DEVICE_PRIVATE : MEMORY_DEVICE_COHERENT,
      nrPages: pages,
      owner: this,
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

  /** A CPU touched one of our device-private pages: bring that page back. */
  private migrateToRam(vmf: VmFault): number {
    const t0 = this.tl.now;
    const mig = this.machine.migrateVmaSetup({
      proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      pgmapOwner: this, faultPage: vmf.page,
    });
    const n = mig.cpages > 0 ? mig.allocAndCopy({ node: vmf.proc.node }) : 0;
    mig.finalize();
    this.stats.migratedOut += n;
    this.stats.cpuFaults++;
    const ns = this.cost.deviceFaultNs + n * this.copyNs;
    this.tl.span(1 + vmf.proc.pid, "migrate_to_ram", t0, ns, { device: this.name, pages: n });
    this.tl.latency("device_fault", ns);
    this.tl.advance(ns);
    return 0;
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
    const t0 = this.tl.now;
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
      moved = toDevice ? this.adopt(mig) : count(mig);
    }
    mig.finalize();
    if (toDevice) this.stats.migratedIn += moved;
    else this.stats.migratedOut += moved;
    const ns = this.cost.migrateCallNs + moved * this.copyNs;
    this.tl.span(this.track, toDevice ? "migrate_vma to device" : "migrate_vma to system", t0, ns, { pages: n, moved });
    this.tl.advance(ns);
    return moved;
  }

  /** After migrate_vma_pages: the new device pages that will stay mapped join the LRU. */
  private adopt(mig: MigrateVma): number {
    const src = mig.src;
    const dst = mig.dst;
    let moved = 0;
    for (let i = 0; i < mig.npages; i++) {
      if (!(src[i]! & MIGRATE_PFN_MIGRATE) || dst[i] === 0n) continue;
      this.resident.set(Number(dst[i]! >> MIGRATE_PFN_SHIFT), true);
      moved++;
    }
    return moved;
  }

  /** Evicts up to `n` of the least recently migrated pages to system memory (migrate_device_range). */
  evict(n: number): number {
    const t0 = this.tl.now;
    const victims = [...this.resident.keys()].slice(0, n).sort((a, b) => a - b);
    let moved = 0;
    for (let i = 0; i < victims.length; ) {
      let j = i + 1;
      while (j < victims.length && victims[j] === victims[j - 1]! + 1) j++;
      const before = this.resident.size;
      evictDevicePages(this.machine, this.pgmap, victims[i]!, j - i);
      moved += before - this.resident.size;
      i = j;
    }
    this.machine.settle();
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
    do {
      pfns.fill(0n);
      calls++;
      r = this.machine.hmmRangeFault({
        notifier: sub, notifierSeq: sub.readBegin(), start: addr, end: addr + n * PAGE_SIZE, hmmPfns: pfns,
        defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n), pfnFlagsMask: 0n, devPrivateOwner: this,
      });
    } while (r === EBUSY && calls < 64);
    if (r !== 0) return r;
    this.stats.hmmFaults += calls;
    const page = this.machine.page;
    let local = 0;
    for (let i = 0; i < n; i++) {
      const x = pfns[i]!;
      if (x & HMM_PFN_ERROR || !(x & HMM_PFN_VALID)) return -14;
      const pfn = hmmPfnToPfn(x);
      if (this.pgmap.contains(pfn)) local++;
      if (write) page.writeTag(pfn, BigInt(tags[i]!));
      else tags[i] = Number(page.readTag(pfn));
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

function count(mig: MigrateVma): number {
  let moved = 0;
  for (let i = 0; i < mig.npages; i++) if (mig.src[i]! & MIGRATE_PFN_MIGRATE && mig.dst[i] !== 0n) moved++;
  return moved;
}
