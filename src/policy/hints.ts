// Migration hints (seed 004): per-page access counters for CPU and device accesses, and a
// placement policy that moves pages between system memory and one device's memory when the
// counters say so, as hardware access counters let a GPU driver do. Counters are kept per
// virtual page of a process, so they survive the page's own migrations.
import type { Machine } from "../machine.js";
import { Process } from "../process.js";
import { DevPagemap, MEMORY_DEVICE_COHERENT } from "../device/pagemap.js";
import {
  MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
} from "../migrate.js";
import { fail, hex } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import { MAX_MIGRATE } from "../layout.js";
import { HintPolicy, HysteresisPolicy, type Placement, type PageHint } from "./hint-policy.js";

const PTE_PFN_MASK = 0x000ffffffffff000n;
// assembly/pte.ts: _PAGE_PRESENT | _PAGE_PROTNONE, and the swap entry type field.
const PTE_PRESENT_OR_PROTNONE = 0x101n;
const SWP_TYPE_SHIFT = 57n;
const SWP_DEVICE_WRITE = 28;
const SWP_DEVICE_READ = 29;
const MAX_HINT_PAGES = 1 << 20;

/** What the hint machinery did so far. */
export interface HintStats {
  cpuAccesses: number;
  deviceAccesses: number;
  toDevice: number;
  toSystem: number;
  /** Moves the policy asked for that failed (pinned, locked, device memory full). */
  failed: number;
  /** Accesses to pages whose process or range has automation switched off. */
  ignored: number;
}

interface PageState extends PageHint {
  key: number;
}

export interface MigrationHintsOptions {
  /** The device whose memory pages move to. */
  pgmap: DevPagemap;
  /** Decides placements (default: HysteresisPolicy with its defaults). */
  policy?: HintPolicy;
}

export class MigrationHints {
  readonly pgmap: DevPagemap;
  readonly policy: HintPolicy;
  readonly stats: HintStats = { cpuAccesses: 0, deviceAccesses: 0, toDevice: 0, toSystem: 0, failed: 0, ignored: 0 };
  private readonly pages = new Map<Process, Map<number, PageState>>();
  private readonly offProcs = new Set<Process>();
  private readonly offRanges = new Map<Process, { start: number; end: number }[]>();

  constructor(private readonly machine: Machine, opts: MigrationHintsOptions) {
    if (!(opts?.pgmap instanceof DevPagemap) || !machine.pagemaps.includes(opts.pgmap))
      fail("EINVAL", "MigrationHints", "pgmap must be a dev_pagemap registered on this machine", opts?.pgmap);
    const policy = opts.policy ?? new HysteresisPolicy();
    if (typeof policy?.decide !== "function") fail("EINVAL", "MigrationHints", "policy must have a decide(page) function", policy);
    this.pgmap = opts.pgmap;
    this.policy = policy;
  }

  /** Switches automatic placement off for a whole process (it stays where it is). */
  disable(proc: Process): void;
  /** Switches it off for [addr, addr+length) of a process, e.g. one latency-sensitive VMA. */
  disable(proc: Process, addr: number, length: number): void;
  disable(proc: Process, addr?: number, length?: number): void {
    this.checkProc("disable", proc);
    if (addr === undefined) {
      this.offProcs.add(proc);
      return;
    }
    const [start, end] = this.range("disable", addr, length ?? NaN);
    const list = this.offRanges.get(proc) ?? [];
    list.push({ start, end });
    this.offRanges.set(proc, list);
  }

  /** Switches automation back on for a process and every range of it. */
  enable(proc: Process): void {
    this.checkProc("enable", proc);
    this.offProcs.delete(proc);
    this.offRanges.delete(proc);
  }

  /** Whether the policy may move the page at `addr` of `proc`. */
  enabled(proc: Process, addr: number): boolean {
    this.checkProc("enabled", proc);
    this.checkAddr("enabled", addr);
    return this.isEnabled(proc, addr);
  }

  /** enabled() for arguments record() checked already. */
  private isEnabled(proc: Process, addr: number): boolean {
    if (this.offProcs.has(proc)) return false;
    return !(this.offRanges.get(proc) ?? []).some((r) => addr >= r.start && addr < r.end);
  }

  /** The device touched [addr, addr+npages pages): count, then move pages the policy picks. */
  recordDeviceAccess(proc: Process, addr: number, npages = 1): number {
    return this.record("device", proc, addr, npages);
  }

  /** The CPU touched [addr, addr+npages pages): count, then move pages the policy picks. */
  recordCpuAccess(proc: Process, addr: number, npages = 1): number {
    return this.record("cpu", proc, addr, npages);
  }

  /** Counters of one page (zero when never counted). */
  countersOf(proc: Process, addr: number): { cpu: number; device: number; moves: number } {
    this.checkProc("countersOf", proc);
    this.checkAddr("countersOf", addr);
    const s = this.pages.get(proc)?.get(Math.floor(addr / PAGE_SIZE));
    return { cpu: s?.cpu ?? 0, device: s?.device ?? 0, moves: s?.moves ?? 0 };
  }

  /** Drops the counters of a process (call when it exits). */
  forget(proc: Process): void {
    if (!(proc instanceof Process) || proc.machineOf() !== this.machine) fail("EINVAL", "forget", "not a process of this machine", proc);
    this.pages.delete(proc);
    this.offProcs.delete(proc);
    this.offRanges.delete(proc);
  }

  private record(who: "cpu" | "device", proc: Process, addr: number, npages: number): number {
    const fn = who === "cpu" ? "recordCpuAccess" : "recordDeviceAccess";
    this.checkProc(fn, proc);
    if (!Number.isInteger(npages) || npages <= 0 || npages > MAX_HINT_PAGES)
      fail("EINVAL", fn, `npages must be in [1, ${MAX_HINT_PAGES}], got ${String(npages)}`, npages);
    const [start] = this.range(fn, addr, npages * PAGE_SIZE);
    let table = this.pages.get(proc);
    if (!table) {
      table = new Map();
      this.pages.set(proc, table);
    }
    const moves: { vpn: number; to: Placement }[] = [];
    for (let i = 0; i < npages; i++) {
      const a = start + i * PAGE_SIZE;
      if (who === "cpu") this.stats.cpuAccesses++;
      else this.stats.deviceAccesses++;
      if (!this.isEnabled(proc, a)) {
        this.stats.ignored++;
        continue;
      }
      const where = this.placementOf(proc, a);
      if (where === null) continue;
      const vpn = a / PAGE_SIZE;
      let s = table.get(vpn);
      if (!s) {
        s = { key: vpn, cpu: 0, device: 0, moves: 0, since: 0, placement: where };
        table.set(vpn, s);
      }
      s.placement = where;
      if (who === "cpu") s.cpu++;
      else s.device++;
      s.since++;
      const to = this.policy.decide(s);
      if (to !== null && to !== where) moves.push({ vpn, to });
    }
    let moved = 0;
    for (const run of runs(moves)) moved += this.move(proc, table, run.vpn, run.n, run.to);
    return moved;
  }

  /** Where the page at addr lives now, or null for no page (or one being migrated). */
  private placementOf(proc: Process, addr: number): Placement | null {
    const pte = proc.pte(addr);
    if (pte === 0n) return null;
    // Of the non-present entries only device-private ones map a page here; migration and
    // hwpoison entries carry a pfn in the same bits but are not a placement.
    if ((pte & PTE_PRESENT_OR_PROTNONE) === 0n) {
      const type = Number((pte >> SWP_TYPE_SHIFT) & 0x1fn);
      if (type !== SWP_DEVICE_WRITE && type !== SWP_DEVICE_READ) return null;
    }
    const pfn = Number((pte & PTE_PFN_MASK) >> 12n);
    if (pfn === 0) return null;
    const pg = this.machine.pagemapOf(pfn);
    if (!pg) return "system";
    return pg === this.pgmap ? "device" : null;
  }

  // One migrate_vma per run of pages going the same way (split at VMA ends and at the size
  // of one migration); the counters restart after a move.
  private move(proc: Process, table: Map<number, PageState>, vpn: number, n: number, to: Placement): number {
    let moved = 0;
    for (let done = 0; done < n; ) {
      const start = (vpn + done) * PAGE_SIZE;
      const vma = proc.vmaAt(start);
      const len = Math.min(n - done, MAX_MIGRATE, vma ? (vma.end - start) / PAGE_SIZE : 1);
      if (vma) this.migrate(proc, start, len, to);
      for (let i = 0; i < len; i++) {
        const s = table.get(vpn + done + i)!;
        if (this.placementOf(proc, start + i * PAGE_SIZE) !== to) {
          this.stats.failed++;
          continue;
        }
        moved++;
        s.placement = to;
        s.moves++;
        s.cpu = 0;
        s.device = 0;
        s.since = 0;
      }
      done += len;
    }
    if (to === "device") this.stats.toDevice += moved;
    else this.stats.toSystem += moved;
    return moved;
  }

  private migrate(proc: Process, start: number, n: number, to: Placement): void {
    const flags = to === "device" ? MIGRATE_VMA_SELECT_SYSTEM
      : this.pgmap.type === MEMORY_DEVICE_COHERENT ? MIGRATE_VMA_SELECT_DEVICE_COHERENT : MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
    const mig = this.machine.migrateVmaSetup({ proc, start, end: start + n * PAGE_SIZE, flags, pgmapOwner: this.pgmap.owner });
    try {
      if (mig.cpages > 0) mig.allocAndCopy(to === "device" ? this.pgmap : { node: proc.node }, { holes: false });
    } finally {
      mig.finalize();
    }
  }

  private checkProc(fn: string, proc: Process): void {
    if (!(proc instanceof Process) || proc.machineOf() !== this.machine || proc.exited)
      fail("EINVAL", fn, "not a live process of this machine", proc);
  }

  private checkAddr(fn: string, addr: number): void {
    if (typeof addr !== "number" || !Number.isSafeInteger(addr) || addr < 0) fail("EINVAL", fn, `address ${String(addr)} is not a non-negative integer`, addr);
  }

  private range(fn: string, addr: number, length: number): [number, number] {
    if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE) fail("EINVAL", fn, `address ${String(addr)} is not page-aligned`, addr);
    if (!Number.isInteger(length) || length <= 0) fail("EINVAL", fn, `length ${String(length)} must be a positive number of bytes`, length);
    if (addr + length > 2 ** 47) fail("EINVAL", fn, `${hex(addr)}+${length} runs past the user address space`, addr);
    return [addr, addr + Math.ceil(length / PAGE_SIZE) * PAGE_SIZE];
  }
}

function* runs(moves: { vpn: number; to: Placement }[]): Generator<{ vpn: number; n: number; to: Placement }> {
  let i = 0;
  while (i < moves.length) {
    let j = i + 1;
    while (j < moves.length && moves[j]!.vpn === moves[j - 1]!.vpn + 1 && moves[j]!.to === moves[i]!.to) j++;
    yield { vpn: moves[i]!.vpn, n: j - i, to: moves[i]!.to };
    i = j;
  }
}
