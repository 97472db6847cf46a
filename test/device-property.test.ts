// Property tests of device memory: random sequences over 1-3 processes that mix CPU
// accesses, migrations to device-private and device-coherent memory (through the test
// mirror and through migrate_vma with drivers registered here), mirror device reads and
// writes, evictions, munmap/mprotect/madvise/fork/exit and injected failures, run against
// the shadow model of test/shadow.ts with machine.check() after every operation. At the
// end every page is read back through the CPU, which faults device-private pages home.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MmError, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_ANONYMOUS,
  MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, VM_FAULT_OOM, VM_FAULT_SIGBUS,
  MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT, migratePfn, migratePfnToPage,
  type DevPagemap, type Process, type VmFault, type MemoryType, type MigrateVma,
} from "../src/index.js";
import {
  createHmmDevices, type HmmDmirror, type HmmDmirrorDevice,
  HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC,
} from "../src/testing/index.js";
import { Shadow, type ShadowProc, type Entry, type PageData, type Mode, type Access, type AccSpec, accessAt, pattern, BASE_VPN } from "./shadow.js";
import { errorOf, privateDevice } from "./drivers.js";

const EPERM = -1;
const ENOENT = -2;
const ENOMEM = -12;
const EFAULT = -14;
const EINVAL = -22;
const MAX_PROCS = 3;

// ---- where a page is: the PTE decoded (assembly/pte.ts keeps the kernel's x86 layout) ----

const PTE_PFN_MASK = 0x000ffffffffff000n;
const SWP_DEVICE_WRITE = 28;
const SWP_DEVICE_READ = 29;

type Place =
  | { kind: "none" }
  | { kind: "present"; pfn: number; write: boolean; protnone: boolean }
  | { kind: "devpriv"; pfn: number; write: boolean }
  | { kind: "swap"; type: number };

function placeOf(p: Process, vpn: number): Place {
  const pte = p.pte(vpn * PAGE_SIZE);
  if (pte === 0n) return { kind: "none" };
  const pfn = Number((pte & PTE_PFN_MASK) >> 12n);
  if (pte & 0x101n) return { kind: "present", pfn, write: (pte & 2n) !== 0n, protnone: (pte & 1n) === 0n };
  const type = Number((pte >> 57n) & 0x1fn);
  if (type === SWP_DEVICE_WRITE || type === SWP_DEVICE_READ) return { kind: "devpriv", pfn, write: type === SWP_DEVICE_WRITE };
  return { kind: "swap", type };
}

function showPlace(pl: Place): string {
  if (pl.kind === "none") return "none";
  if (pl.kind === "swap") return `swap type ${pl.type}`;
  return `${pl.kind} pfn ${pl.pfn}${pl.write ? " writable" : ""}${pl.kind === "present" && pl.protnone ? " protnone" : ""}`;
}

// ---- drivers registered through the plain API -----------------------------------------

type FailMode = "none" | "throwEarly" | "throwAfterSetup" | "throwAfterCopy" | "sigbus" | "oom" | "migrateThenSigbus";
const FAIL_MODES: FailMode[] = ["throwEarly", "throwAfterSetup", "throwAfterCopy", "sigbus", "oom", "migrateThenSigbus"];

/** A driver of one dev_pagemap: migrate_vma by hand, a migrate_to_ram that can be told to fail. */
class Driver {
  readonly owner: { name: string };
  readonly pg: DevPagemap;
  /** Pages handed out by allocAndCopy into this range, and pages page_free gave back. */
  allocated = 0;
  freed = 0;
  calls = 0;
  fail: FailMode = "none";

  constructor(private readonly m: Machine, readonly type: MemoryType, nrPages: number, readonly bit: number, name: string) {
    this.owner = { name };
    this.pg = m.memremapPages({
      type, nrPages, owner: this.owner,
      ops: {
        pageFree: () => { this.freed++; },
        migrateToRam: type === MEMORY_DEVICE_PRIVATE ? (vmf) => this.migrateToRam(vmf) : undefined,
      },
    });
  }

  get isPrivate(): boolean {
    return this.type === MEMORY_DEVICE_PRIVATE;
  }

  get inUse(): number {
    return this.allocated - this.freed;
  }

  get free(): number {
    return this.pg.nrPages - this.inUse;
  }

  private migrateToRam(vmf: VmFault): number {
    this.calls++;
    const mode = this.fail;
    if (mode === "throwEarly") throw new Error("injected driver failure before migrate_vma_setup");
    if (mode === "sigbus") return VM_FAULT_SIGBUS;
    if (mode === "oom") return VM_FAULT_OOM;
    const mig = this.m.migrateVmaSetup({
      proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this.owner, faultPage: vmf.page,
    });
    if (mode === "throwAfterSetup") throw new Error("injected driver failure after migrate_vma_setup");
    mig.allocAndCopy({ node: 0 });
    if (mode === "throwAfterCopy") throw new Error("injected driver failure after the copy");
    mig.finalize();
    return mode === "migrateThenSigbus" ? VM_FAULT_SIGBUS : 0;
  }
}

// ---- operations ----------------------------------------------------------------------

/** An address: a window page (0), a mapped page (1), a page holding data (2), a page that may be on a device (3). */
interface DSel { kind: 0 | 1 | 2 | 3; n: number }

type CpuSpec = AccSpec<DSel>;

type Drv = "P" | "C";

type DOp =
  | { op: "access"; p: number; batch: boolean; list: CpuSpec[] }
  | { op: "mmap"; p: number; at: DSel; pages: number; prot: number; shared: boolean; hint: boolean; populate: boolean }
  | { op: "munmap"; p: number; at: DSel; pages: number }
  | { op: "mprotect"; p: number; at: DSel; pages: number; prot: number; verify: boolean }
  | { op: "dontneed"; p: number; at: DSel; pages: number }
  | { op: "fork"; p: number }
  | { op: "exit"; p: number }
  | { op: "spawn" }
  | { op: "m2d"; p: number; dev: number; at: DSel; pages: number; failAlloc: boolean }
  | { op: "m2s"; p: number; dev: number; at: DSel; pages: number }
  | { op: "dread"; p: number; dev: number; at: DSel; pages: number }
  | { op: "dwrite"; p: number; dev: number; at: DSel; pages: number; seed: number }
  | { op: "snapshot"; p: number; dev: number; at: DSel; pages: number }
  | { op: "drvTo"; p: number; drv: Drv; at: DSel; pages: number; clip: boolean }
  | { op: "drvBack"; p: number; drv: Drv; at: DSel; pages: number }
  | { op: "evict"; drv: Drv }
  | { op: "close"; p: number; dev: number; reopen: boolean }
  | { op: "release"; dev: number }
  | { op: "drvFail"; p: number; at: DSel; mode: FailMode; write: boolean; via: number }
  | { op: "badDst"; p: number; drv: Drv; at: DSel; pages: number; variant: number }
  | { op: "inflight"; p: number; drv: Drv; at: DSel; pages: number; action: number; k: number; abort: boolean; write: boolean; dev: number }
  | { op: "verify"; p: number; at: DSel; pages: number };

interface DevConfig {
  mode: Mode;
  /** Address window in pages. */
  window: number;
  /** Pages of the private and coherent driver ranges. */
  drvPages: number;
  /** Test mirror chunks: pages each, at most this many per device. */
  chunkPages: number;
  maxChunks: number;
  /** ZONE_DEVICE address space: smaller than what all chunks want makes chunk registration fail. */
  deviceMemory: number;
}

// Device bits kept per shadow entry: which device memory the page may be in (conservative).
const MIRROR_BIT = (d: number): number => 1 << d;
const DRV_P_BIT = 1 << 4;
const DRV_C_BIT = 1 << 5;
/** Bits of device-private memory: a CPU access brings such a page home. */
const PRIVATE_BITS = MIRROR_BIT(0) | MIRROR_BIT(1) | DRV_P_BIT;

type DevEntry = Entry & { dev?: number };
const bitsOf = (e: Entry): number => (e as DevEntry).dev ?? 0;
const setBits = (e: Entry, b: number): void => { (e as DevEntry).dev = b; };

interface DevTotals {
  runs: number; ops: number;
  m2dMoved: number; m2dEnoent: number; m2dEinval: number; m2dFailAlloc: number; deviceOom: number;
  m2sMoved: number; dreads: number; dwrites: number; dwriteEperm: number; dFault: number; snapshots: number;
  drvMoved: number; drvBack: number; evicted: number; closes: number; releases: number;
  forkDevpriv: number; injected: number; injectedMirror: number; badDst: number; einvalSetup: number; inflight: number;
  cowFaults: number; cpuDeviceFaults: number;
}

function newDevTotals(): DevTotals {
  return {
    runs: 0, ops: 0, m2dMoved: 0, m2dEnoent: 0, m2dEinval: 0, m2dFailAlloc: 0, deviceOom: 0, m2sMoved: 0, dreads: 0,
    dwrites: 0, dwriteEperm: 0, dFault: 0, snapshots: 0, drvMoved: 0, drvBack: 0, evicted: 0, closes: 0, releases: 0,
    forkDevpriv: 0, injected: 0, injectedMirror: 0, badDst: 0, einvalSetup: 0, inflight: 0, cowFaults: 0, cpuDeviceFaults: 0,
  };
}

class DeviceRun {
  readonly m: Machine;
  readonly sh: Shadow;
  readonly devs: HmmDmirrorDevice[];
  readonly drvP: Driver;
  readonly drvC: Driver;
  private readonly mirrors = new Map<ShadowProc, (HmmDmirror | undefined)[]>();
  private readonly startFree: number;

  constructor(readonly cfg: DevConfig, readonly t: DevTotals) {
    this.m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: cfg.deviceMemory, content: cfg.mode });
    this.drvP = new Driver(this.m, MEMORY_DEVICE_PRIVATE, cfg.drvPages, DRV_P_BIT, "drvP");
    this.drvC = new Driver(this.m, MEMORY_DEVICE_COHERENT, cfg.drvPages, DRV_C_BIT, "drvC");
    this.devs = createHmmDevices(this.m, { chunkPages: cfg.chunkPages, maxChunks: cfg.maxChunks });
    this.m.check();
    this.startFree = this.m.counters().nr_free_pages;
    this.sh = new Shadow(this.m, cfg.mode, { small: false });
  }

  private get mode(): Mode {
    return this.cfg.mode;
  }

  private drv(d: Drv): Driver {
    return d === "P" ? this.drvP : this.drvC;
  }

  private proc(p: number): ShadowProc | undefined {
    const procs = this.sh.procs;
    if (procs.length === 0) this.sh.spawn();
    return procs.length > 0 ? procs[p % procs.length] : undefined;
  }

  private mirror(sp: ShadowProc, d: number): HmmDmirror {
    let list = this.mirrors.get(sp);
    if (!list) this.mirrors.set(sp, (list = []));
    return (list[d] ??= this.devs[d]!.open(sp.p));
  }

  /** `want`: for kind 3, the device bits the page should have (any one of them). */
  private resolve(sp: ShadowProc, s: DSel, want = ~0): number {
    const all = s.kind === 0 ? [] : sp.vpns();
    let pool = all;
    if (s.kind === 2) pool = all.filter((v) => this.sh.entryData(sp.pages.get(v)!).some((d) => d !== null && d !== 0n));
    if (s.kind === 3) {
      pool = all.filter((v) => bitsOf(sp.pages.get(v)!) & want);
      if (pool.length === 0) pool = all.filter((v) => bitsOf(sp.pages.get(v)!) !== 0);
    }
    if (pool.length === 0) pool = all;
    return pool.length > 0 ? pool[s.n % pool.length]! : BASE_VPN + (s.n % this.cfg.window);
  }

  // ---- shadow helpers ----

  private ownerOf(pl: Place): unknown {
    if (pl.kind !== "present" && pl.kind !== "devpriv") return undefined;
    return this.m.pagemapOf(pl.pfn)?.owner;
  }

  private onDevice(pl: Place, owner: unknown): boolean {
    return this.ownerOf(pl) === owner;
  }

  /** Marks the pages at [vpn, vpn+n) of every process as maybe in the memory of `bit`. */
  private markAll(vpn: number, n: number, bit: number): void {
    for (const sp of this.sh.procs) {
      for (let v = vpn; v < vpn + n; v++) {
        const e = sp.pages.get(v);
        if (e) setBits(e, bitsOf(e) | bit);
      }
    }
  }

  private clearAll(bit: number): void {
    for (const sp of this.sh.procs) for (const e of sp.pages.values()) setBits(e, bitsOf(e) & ~bit);
  }

  private clearRange(sp: ShadowProc, vpn: number, n: number, bits: number): void {
    for (let v = vpn; v < vpn + n; v++) {
      const e = sp.pages.get(v);
      if (e) setBits(e, bitsOf(e) & ~bits);
    }
  }

  /** The first page a device access cannot use: no mapping or no VM_READ (EFAULT), or no VM_WRITE for a write (EPERM). */
  private firstBad(sp: ShadowProc, vpn: number, n: number, write: boolean): { i: number; errno: number } | null {
    for (let i = 0; i < n; i++) {
      const e = sp.pages.get(vpn + i);
      if (!e || !(e.prot & PROT_READ)) return { i, errno: EFAULT };
      if (write && !(e.prot & PROT_WRITE)) return { i, errno: EPERM };
    }
    return null;
  }

  private buffer(n: number): Uint8Array | BigUint64Array {
    return this.mode === "bytes" ? new Uint8Array(n * PAGE_SIZE) : new BigUint64Array(n);
  }

  private pageOf(buf: Uint8Array | BigUint64Array, i: number): PageData {
    return buf instanceof Uint8Array ? buf.slice(i * PAGE_SIZE, (i + 1) * PAGE_SIZE) : buf[i]!;
  }

  /** The first `count` pages a device read returned equal what the shadow expects. */
  private expectDeviceRead(sp: ShadowProc, vpn: number, count: number, buf: Uint8Array | BigUint64Array, what: string): void {
    for (let i = 0; i < count; i++) {
      const e = sp.pages.get(vpn + i);
      if (!e) throw new Error(`${what}: the device read page ${i} (0x${((vpn + i) * PAGE_SIZE).toString(16)}), which is not mapped`);
      const got = this.pageOf(buf, i);
      const want = this.sh.entryData(e);
      if (!want.some((d) => this.sh.c.equal(d, got)))
        throw new Error(`${what}: device read of page ${i} (0x${((vpn + i) * PAGE_SIZE).toString(16)}) returned ${this.sh.c.show(got)}; the shadow expects ${want.map((d) => this.sh.c.show(d)).join(" or ")}`);
    }
  }

  private setPage(e: Entry, d: PageData): void {
    if (e.obj) e.obj.pages.set(e.index, d);
    else {
      e.alts = [d];
      e.lazy = false;
    }
  }

  /** CPU reads of [vpn, vpn+n) compared with the shadow; readable pages are in RAM afterwards. */
  private cpuVerify(sp: ShadowProc, vpn: number, n: number): void {
    this.sh.verify(sp, vpn, n);
    this.m.check();
    for (let v = vpn; v < vpn + n; v++) {
      const e = sp.pages.get(v);
      if (e && e.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) setBits(e, bitsOf(e) & ~PRIVATE_BITS);
    }
  }

  /** Pages a mirror device can still allocate: free pages in its chunks, and chunks it may still register. */
  private mirrorCapacity(d: number): number {
    const dev = this.devs[d]!;
    let cap = dev.chunks.reduce((s, c) => s + c.nrPages, 0) - (dev.calloc - dev.cfree);
    const ranges = this.m.pagemaps.sort((a, b) => a.start - b.start);
    let at = this.m.config.frames;
    let fit = 0;
    for (const r of ranges) {
      fit += Math.floor(Math.max(0, r.start - at) / this.cfg.chunkPages);
      at = Math.max(at, r.end);
    }
    fit += Math.floor((this.m.config.frames + this.m.config.deviceFrames - at) / this.cfg.chunkPages);
    cap += Math.min(this.cfg.maxChunks - dev.chunks.length, fit) * this.cfg.chunkPages;
    return cap;
  }

  private deviceBusy(d: number): number {
    return this.devs[d]!.calloc - this.devs[d]!.cfree;
  }

  private closeMirror(sp: ShadowProc, d: number): void {
    const list = this.mirrors.get(sp);
    const mir = list?.[d];
    if (!mir) return;
    mir.close();
    list[d] = undefined;
    expect(errorOf(() => mir.cmd(HMM_DMIRROR_READ, { addr: BASE_VPN * PAGE_SIZE, npages: 1 })).code, "a command on a closed mirror").toBe("EBADF");
    this.m.check();
    // close() evicts every chunk of the device, whoever migrated the pages there.
    expect(this.deviceBusy(d), `device ${d} pages in use after close()`).toBe(0);
    this.clearAll(MIRROR_BIT(d));
    this.t.closes++;
  }

  // ---- operations ----

  step(op: DOp): void {
    if (op.op === "spawn") {
      if (this.sh.procs.length < MAX_PROCS) this.sh.spawn();
      this.m.check();
      return;
    }
    if (op.op === "evict") return this.evict(this.drv(op.drv));
    if (op.op === "release") return this.release(op.dev);
    const sp = this.proc(op.p);
    if (!sp) return;
    switch (op.op) {
      case "access": return this.access(sp, op.list, op.batch);
      case "mmap": {
        const vpn = this.resolve(sp, op.at);
        const start = this.sh.mmap(sp, vpn, op.pages, op.prot, op.shared, op.hint ? 2 : 0, op.populate);
        this.m.check();
        this.sh.checkMaps(sp);
        this.sh.verify(sp, start ?? vpn, op.pages);
        this.m.check();
        return;
      }
      case "munmap": {
        const vpn = this.resolve(sp, op.at);
        this.sh.munmap(sp, vpn, op.pages);
        this.m.check();
        this.sh.checkMaps(sp);
        this.sh.verify(sp, vpn, op.pages);
        this.m.check();
        return;
      }
      case "mprotect": {
        const vpn = this.resolve(sp, op.at);
        this.sh.mprotect(sp, vpn, op.pages, op.prot);
        this.m.check();
        this.sh.checkMaps(sp);
        if (op.verify) this.cpuVerify(sp, vpn, op.pages);
        return;
      }
      case "dontneed": {
        const vpn = this.resolve(sp, op.at);
        const zapped = this.sh.rangeMapped(sp, vpn, op.pages);
        this.sh.madvise(sp, vpn, op.pages, false);
        this.m.check();
        if (zapped) this.clearRange(sp, vpn, op.pages, ~0);
        return;
      }
      case "fork": return this.fork(sp);
      case "exit": return this.exit(sp);
      case "m2d": return this.m2d(sp, op.dev, this.resolve(sp, op.at, ~MIRROR_BIT(op.dev)), op.pages, op.failAlloc);
      case "m2s": {
        // From the device the page is on, when it is on one.
        const vpn = this.resolve(sp, op.at, MIRROR_BIT(op.dev));
        const on = [0, 1, 2, 3].filter((d) => bitsOf(sp.pages.get(vpn) ?? ({} as Entry)) & MIRROR_BIT(d));
        return this.m2s(sp, on.length > 0 ? on[op.dev % on.length]! : op.dev, vpn, op.pages);
      }
      case "dread": return this.dread(sp, op.dev, this.resolve(sp, op.at), op.pages);
      case "dwrite": return this.dwrite(sp, op.dev, this.resolve(sp, op.at), op.pages, op.seed);
      case "snapshot": return this.snapshot(sp, op.dev, this.resolve(sp, op.at), op.pages);
      case "drvTo": return this.drvTo(sp, this.drv(op.drv), this.resolve(sp, op.at), op.pages, op.clip);
      case "drvBack": {
        const vpn = this.resolve(sp, op.at, this.drv(op.drv).bit);
        const bits = bitsOf(sp.pages.get(vpn) ?? ({} as Entry));
        const T = bits & this.drv(op.drv).bit ? this.drv(op.drv) : bits & DRV_P_BIT ? this.drvP : bits & DRV_C_BIT ? this.drvC : this.drv(op.drv);
        return this.drvBack(sp, T, vpn, op.pages);
      }
      case "close": {
        this.mirror(sp, op.dev);
        this.closeMirror(sp, op.dev);
        if (op.reopen) this.mirror(sp, op.dev);
        return;
      }
      case "drvFail": return this.drvFail(sp, this.resolve(sp, op.at, DRV_P_BIT), op.mode, op.write, op.via);
      case "badDst": return this.badDst(sp, this.drv(op.drv), this.resolve(sp, op.at), op.pages, op.variant);
      case "inflight": return this.inflight(sp, this.drv(op.drv), this.resolve(sp, op.at), op);
      case "verify": return this.cpuVerify(sp, this.resolve(sp, op.at), op.pages);
    }
  }

  /**
   * Every PTE of every process agrees with the shadow: nothing mapped outside the VMAs, no
   * migration entry left, no write permission or access the VMA does not grant, shared pages
   * never in device memory, device-private pfns only behind device-private entries, RSS as
   * the kernel counts it (device pages included), and the device bits cover where pages are.
   */
  checkPlaces(what: string): void {
    for (const sp of this.sh.procs) {
      let anon = 0;
      let shmem = 0;
      const vpns = new Set(sp.vpns());
      for (let v = BASE_VPN; v < BASE_VPN + this.cfg.window; v++) vpns.add(v);
      for (const v of vpns) {
        const pl = placeOf(sp.p, v);
        const e = sp.pages.get(v);
        const where = `after ${what}: pid ${sp.p.pid} page 0x${(v * PAGE_SIZE).toString(16)} (${showPlace(pl)})`;
        if (!e) {
          expect(pl.kind, `${where} is not mapped`).toBe("none");
          continue;
        }
        if (pl.kind === "none") continue;
        expect(pl.kind, `${where}: an entry left behind`).not.toBe("swap");
        if (pl.kind === "swap") continue;
        const pg = this.m.pagemapOf(pl.pfn);
        if (pl.write) expect(e.prot & PROT_WRITE, `${where}: writable without PROT_WRITE`).toBeTruthy();
        if (pl.kind === "present") {
          expect(pg?.type, `${where}: a device-private pfn in a present PTE`).not.toBe(MEMORY_DEVICE_PRIVATE);
          if (e.prot === PROT_NONE) expect(pl.protnone, `${where}: accessible in a PROT_NONE mapping`).toBe(true);
        } else {
          expect(pg?.type, `${where}: a device-private entry to a non-device-private pfn`).toBe(MEMORY_DEVICE_PRIVATE);
        }
        if (e.obj) {
          expect(pg, `${where}: a shared page in device memory`).toBeUndefined();
          shmem++;
        } else if (pl.kind !== "present" || pl.pfn !== 0) {
          anon++;
        }
        if (pg) {
          const bit = pg.owner === this.drvP.owner ? DRV_P_BIT : pg.owner === this.drvC.owner ? DRV_C_BIT : MIRROR_BIT(this.devs.findIndex((d) => d === pg.owner));
          expect(bitsOf(e) & bit, `${where}: the test's device bits miss this device`).toBeTruthy();
        }
      }
      expect(sp.p.rss(), `after ${what}: pid ${sp.p.pid} RSS`).toEqual({ anon, shmem });
    }
  }

  private toAccess(sp: ShadowProc, a: CpuSpec): Access {
    return accessAt(this.resolve(sp, a.at) * PAGE_SIZE, a);
  }

  private access(sp: ShadowProc, specs: CpuSpec[], batch: boolean): void {
    const list = specs.map((a) => this.toAccess(sp, a));
    const before = this.m.counters().pgmigrate_success;
    this.sh.access(sp, list, batch);
    this.m.check();
    if (this.m.counters().pgmigrate_success > before) this.t.cpuDeviceFaults++;
    for (const a of list) {
      const first = Math.floor(a.addr / PAGE_SIZE);
      const len = a.k === "write" ? a.data.length : a.k === "read" ? a.len : a.k === "touch" ? a.npages * PAGE_SIZE : 8;
      this.cpuVerify(sp, first, Math.floor((a.addr + len - 1) / PAGE_SIZE) - first + 1);
    }
  }

  private fork(sp: ShadowProc): void {
    if (this.sh.procs.length >= MAX_PROCS) return;
    const child = this.sh.fork(sp);
    this.m.check();
    if (!child) return;
    this.sh.checkMaps(child);
    // A COW mapping's device-private entries become read-only in parent and child.
    for (const [v, e] of sp.pages) {
      const pp = placeOf(sp.p, v);
      if (pp.kind !== "devpriv") continue;
      const where = `fork of pid ${sp.p.pid}: device-private entry at 0x${(v * PAGE_SIZE).toString(16)}`;
      expect(e.obj, `${where} in a shared mapping`).toBeNull();
      expect(pp.write, `${where} is still writable in the parent`).toBe(false);
      expect(placeOf(child.p, v), `${where}: the child's entry`).toEqual({ kind: "devpriv", pfn: pp.pfn, write: false });
      this.t.forkDevpriv++;
    }
  }

  private exit(sp: ShadowProc): void {
    this.sh.exit(sp);
    this.m.check();
    // The kernel closes the exiting task's files after its mm is gone.
    for (let d = 0; d < 4; d++) this.closeMirror(sp, d);
    this.mirrors.delete(sp);
  }

  private m2d(sp: ShadowProc, d: number, vpn: number, n: number, failAlloc: boolean): void {
    const dev = this.devs[d]!;
    const mir = this.mirror(sp, d);
    const what = `pid ${sp.p.pid} MIGRATE_TO_DEV(dev ${d}, 0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages${failAlloc ? ", FAIL_ALLOC" : ""})`;
    const bad = this.firstBad(sp, vpn, n, false);
    const entries = Array.from({ length: n }, (_, i) => sp.pages.get(vpn + i));
    // A clean range holds private pages in system memory only: the outcome is exact.
    const clean = !bad && entries.every((e) => e && !e.obj && bitsOf(e) === 0);
    const cap = this.mirrorCapacity(d);
    const calloc0 = dev.calloc;
    if (failAlloc) mir.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: HMM_DMIRROR_FLAG_FAIL_ALLOC });
    const buf = this.buffer(n);
    const r = mir.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: vpn * PAGE_SIZE, npages: n, buffer: buf });
    if (failAlloc) mir.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: 0 });
    this.m.check();
    this.markAll(vpn, n, MIRROR_BIT(d));
    if (bad) {
      expect(r.ret, `${what}: page ${bad.i} has no readable VMA`).toBe(EINVAL);
      this.t.m2dEinval++;
      return;
    }
    expect([0, ENOENT], `${what}: ret`).toContain(r.ret);
    if (r.ret === 0) expect(r.cpages, `${what}: cpages`).toBe(n);
    else {
      expect(r.cpages, `${what}: cpages`).toBeLessThan(n);
      this.t.m2dEnoent++;
    }
    this.expectDeviceRead(sp, vpn, r.cpages, buf, what);
    const coherent = dev.memoryType === MEMORY_DEVICE_COHERENT;
    let moved = 0;
    for (let i = 0; i < n; i++) {
      const pl = placeOf(sp.p, vpn + i);
      const on = this.onDevice(pl, dev);
      if (on) moved++;
      if (entries[i]!.obj) expect(this.ownerOf(pl), `${what}: shared page ${i} moved to device memory (${showPlace(pl)})`).toBeUndefined();
      if (on && !coherent) expect(pl.kind, `${what}: page ${i} on device-private memory`).toBe("devpriv");
      if (!clean) continue;
      const rank = i - (failAlloc ? 1 : 0);
      const want = rank >= 0 && rank < cap;
      expect(on, `${what}: page ${i} on the device (capacity ${cap}): ${showPlace(pl)}`).toBe(want);
    }
    this.t.m2dMoved += moved;
    if (!clean) return;
    expect(dev.calloc - calloc0, `${what}: device pages allocated`).toBe(moved);
    if (moved < n - (failAlloc ? 1 : 0)) this.t.deviceOom++;
    if (failAlloc) {
      this.t.m2dFailAlloc++;
      // The first page stayed in system memory: the device sees it only if its table had it already.
      if (r.ret !== 0 && cap >= n - 1) expect(r.cpages, `${what}: cpages`).toBe(0);
    } else if (cap >= n) {
      expect(r.ret, `${what}: every page moved`).toBe(0);
    }
  }

  private m2s(sp: ShadowProc, d: number, vpn: number, n: number): void {
    const dev = this.devs[d]!;
    const mir = this.mirror(sp, d);
    const what = `pid ${sp.p.pid} MIGRATE_TO_SYS(dev ${d}, 0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages)`;
    const bad = this.firstBad(sp, vpn, n, false);
    let onDev = 0;
    const holes: number[] = [];
    for (let i = 0; i < n; i++) {
      if (!sp.pages.has(vpn + i)) continue;
      const pl = placeOf(sp.p, vpn + i);
      if (this.onDevice(pl, dev)) onDev++;
      else if (pl.kind === "none") holes.push(i);
    }
    const r = mir.cmd(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: vpn * PAGE_SIZE, npages: n });
    this.m.check();
    if (bad) {
      expect(r.ret, `${what}: page ${bad.i} has no readable VMA`).toBe(EINVAL);
      return;
    }
    expect(r.ret, `${what}: ret`).toBe(0);
    expect(r.cpages, `${what}: cpages (pages that were on the device)`).toBe(onDev);
    for (let i = 0; i < n; i++) {
      const pl = placeOf(sp.p, vpn + i);
      expect(this.onDevice(pl, dev), `${what}: page ${i} still on the device: ${showPlace(pl)}`).toBe(false);
    }
    // dmirror_devmem_fault_alloc_and_copy skips entries without a source page: holes stay holes.
    for (const i of holes) expect(placeOf(sp.p, vpn + i), `${what}: page ${i} was a hole`).toEqual({ kind: "none" });
    this.clearRange(sp, vpn, n, MIRROR_BIT(d));
    this.t.m2sMoved += onDev;
  }

  private dread(sp: ShadowProc, d: number, vpn: number, n: number): void {
    const what = `pid ${sp.p.pid} device ${d} READ(0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages)`;
    const bad = this.firstBad(sp, vpn, n, false);
    const buf = this.buffer(n);
    const r = this.mirror(sp, d).cmd(HMM_DMIRROR_READ, { addr: vpn * PAGE_SIZE, npages: n, buffer: buf });
    this.m.check();
    if (bad) {
      expect(r.ret, `${what}: page ${bad.i} has no readable VMA`).toBe(EFAULT);
      expect(r.cpages, `${what}: cpages`).toBeLessThanOrEqual(bad.i);
      this.t.dFault++;
    } else {
      expect(r.ret, `${what}: ret`).toBe(0);
      expect(r.cpages, `${what}: cpages`).toBe(n);
    }
    this.expectDeviceRead(sp, vpn, r.cpages, buf, what);
    this.t.dreads++;
  }

  private dwrite(sp: ShadowProc, d: number, vpn: number, n: number, seed: number): void {
    const what = `pid ${sp.p.pid} device ${d} WRITE(0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages, seed ${seed})`;
    const bad = this.firstBad(sp, vpn, n, true);
    const buf = this.buffer(n);
    const data: PageData[] = [];
    for (let i = 0; i < n; i++) {
      if (buf instanceof Uint8Array) {
        const page = pattern(seed * 64 + i, PAGE_SIZE);
        buf.set(page, i * PAGE_SIZE);
        data.push(page);
      } else {
        buf[i] = (BigInt(seed) << 16n) + BigInt(i) + 0x5000000000000000n;
        data.push(buf[i]!);
      }
    }
    const r = this.mirror(sp, d).cmd(HMM_DMIRROR_WRITE, { addr: vpn * PAGE_SIZE, npages: n, buffer: buf });
    this.m.check();
    if (bad) {
      expect(r.ret, `${what}: page ${bad.i} is not ${bad.errno === EPERM ? "writable" : "readable"}`).toBe(bad.errno);
      expect(r.cpages, `${what}: cpages`).toBeLessThanOrEqual(bad.i);
      if (bad.errno === EPERM) this.t.dwriteEperm++;
      else this.t.dFault++;
    } else {
      expect(r.ret, `${what}: ret`).toBe(0);
      expect(r.cpages, `${what}: cpages`).toBe(n);
    }
    for (let i = 0; i < r.cpages; i++) this.setPage(sp.pages.get(vpn + i)!, data[i]!);
    this.t.dwrites++;
  }

  /** SNAPSHOT (hmm_range_fault without faults) agrees with the CPU page table. */
  private snapshot(sp: ShadowProc, d: number, vpn: number, n: number): void {
    const dev = this.devs[d]!;
    const what = `pid ${sp.p.pid} device ${d} SNAPSHOT(0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages)`;
    const r = this.mirror(sp, d).cmd(HMM_DMIRROR_SNAPSHOT, { addr: vpn * PAGE_SIZE, npages: n });
    this.m.check();
    expect(r.ret, `${what}: ret`).toBe(0);
    expect(r.cpages, `${what}: cpages`).toBe(n);
    const got = r.buffer as Uint8Array;
    for (let i = 0; i < n; i++) {
      const e = sp.pages.get(vpn + i);
      let want: number;
      const pl = placeOf(sp.p, vpn + i);
      if (!e || !(e.prot & PROT_READ)) want = 0xff;
      else if (pl.kind === "none" || pl.kind === "swap") want = 0;
      else if (pl.kind === "devpriv") want = this.ownerOf(pl) === dev ? 0x20 | (pl.write ? 2 : 1) : 0;
      else {
        const pg = this.m.pagemapOf(pl.pfn);
        expect(pg?.type, `${what}: page ${i} is a device-private pfn in a present PTE`).not.toBe(MEMORY_DEVICE_PRIVATE);
        const base = pg ? (pg.owner === dev ? 0x40 : 0x50) : pl.pfn === 0 ? 0x10 : 0;
        want = base | (pl.write ? 2 : 1);
      }
      if (e && pl.kind !== "none" && pl.kind !== "swap") {
        if (pl.write) expect(e.prot & PROT_WRITE, `${what}: page ${i} writable in a VMA without PROT_WRITE`).toBeTruthy();
        if (e.obj) expect(this.ownerOf(pl), `${what}: shared page ${i} in device memory`).toBeUndefined();
      }
      expect(got[i], `${what}: page ${i} (${showPlace(pl)})`).toBe(want);
    }
    this.t.snapshots++;
  }

  private vmaRange(sp: ShadowProc, vpn: number, n: number, clip: boolean): { n: number; inside: boolean } {
    const vma = sp.p.vmaAt(vpn * PAGE_SIZE);
    if (!vma) return { n, inside: false };
    const room = vma.end / PAGE_SIZE - vpn;
    if (clip) n = Math.min(n, room);
    return { n, inside: n <= room };
  }

  private drvTo(sp: ShadowProc, T: Driver, vpn: number, n0: number, clip: boolean): void {
    const { n, inside } = this.vmaRange(sp, vpn, n0, clip);
    const what = `pid ${sp.p.pid} migrate_vma to ${T.owner.name} (0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages)`;
    const args = { proc: sp.p, start: vpn * PAGE_SIZE, end: (vpn + n) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: T.owner };
    if (!inside) {
      expect(errorOf(() => this.m.migrateVmaSetup(args)).code, `${what}: the range is not inside one VMA`).toBe("EINVAL");
      this.m.check();
      this.t.einvalSetup++;
      return;
    }
    const entries = Array.from({ length: n }, (_, i) => sp.pages.get(vpn + i)!);
    const clean = entries.every((e) => !e.obj && bitsOf(e) === 0);
    const mig = this.m.migrateVmaSetup(args);
    if (clean) expect(mig.cpages, `${what}: cpages`).toBe(n);
    const free = T.free;
    const got = mig.allocAndCopy(T.pg);
    T.allocated += got;
    expect(got, `${what}: pages allocated (${free} free)`).toBe(Math.min(mig.cpages, free));
    mig.finalize();
    this.m.check();
    this.markAll(vpn, n, T.bit);
    let moved = 0;
    for (let i = 0; i < n; i++) {
      const pl = placeOf(sp.p, vpn + i);
      const on = this.onDevice(pl, T.owner);
      if (on) moved++;
      if (entries[i]!.obj) expect(on, `${what}: shared page ${i} moved to device memory`).toBe(false);
      if (on && T.isPrivate) expect(pl.kind, `${what}: page ${i} on device-private memory`).toBe("devpriv");
      if (clean) expect(on, `${what}: page ${i} on the device (${got} allocated): ${showPlace(pl)}`).toBe(i < got);
    }
    if (got < mig.cpages) this.t.deviceOom++;
    this.t.drvMoved += moved;
  }

  private drvBack(sp: ShadowProc, T: Driver, vpn: number, n0: number): void {
    const { n, inside } = this.vmaRange(sp, vpn, n0, true);
    if (!inside) return;
    const what = `pid ${sp.p.pid} migrate_vma from ${T.owner.name} (0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages)`;
    let onDev = 0;
    let holes = 0;
    for (let i = 0; i < n; i++) {
      const pl = placeOf(sp.p, vpn + i);
      if (this.onDevice(pl, T.owner)) onDev++;
      // migrate_vma_collect_hole collects holes of anonymous VMAs whatever the SELECT flags.
      else if (pl.kind === "none" && !sp.pages.get(vpn + i)!.obj) holes++;
    }
    const mig = this.m.migrateVmaSetup({
      proc: sp.p, start: vpn * PAGE_SIZE, end: (vpn + n) * PAGE_SIZE,
      flags: T.isPrivate ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT, pgmapOwner: T.owner,
    });
    expect(mig.cpages, `${what}: cpages (${onDev} on the device, ${holes} holes)`).toBe(onDev + holes);
    if (mig.cpages > 0) expect(mig.allocAndCopy({ node: 0 }), `${what}: system pages allocated`).toBe(mig.cpages);
    mig.finalize();
    this.m.check();
    for (let i = 0; i < n; i++) {
      const pl = placeOf(sp.p, vpn + i);
      expect(this.onDevice(pl, T.owner), `${what}: page ${i} still on the device: ${showPlace(pl)}`).toBe(false);
    }
    this.clearRange(sp, vpn, n, T.bit);
    this.t.drvBack += onDev;
  }

  private evict(T: Driver): void {
    const busy = T.inUse;
    expect(this.m.evictDevicePages(T.pg), `evictDevicePages(${T.owner.name}) left pages behind`).toBe(0);
    this.m.check();
    expect(T.inUse, `${T.owner.name} pages in use after eviction`).toBe(0);
    this.clearAll(T.bit);
    this.t.evicted += busy;
  }

  private release(d: number): void {
    const sp = this.proc(0);
    if (!sp) return;
    const r = this.mirror(sp, d).cmd(HMM_DMIRROR_RELEASE);
    this.m.check();
    expect(r.ret, `device ${d} RELEASE`).toBe(0);
    expect(this.devs[d]!.chunks, `device ${d} chunks after RELEASE`).toHaveLength(0);
    expect(this.deviceBusy(d), `device ${d} pages in use after RELEASE`).toBe(0);
    this.clearAll(MIRROR_BIT(d));
    this.t.releases++;
  }

  /**
   * A CPU access (or a device read through mirror `via`) of a page while drvP's
   * migrate_to_ram fails: on a drvP page it must fail (SIGBUS, or ENOMEM for
   * VM_FAULT_OOM) with the page left where it was, unlocked, its data intact.
   */
  private drvFail(sp: ShadowProc, vpn: number, mode: FailMode, write: boolean, via: number): void {
    const T = this.drvP;
    const e = sp.pages.get(vpn);
    // Put the page on drvP first when it can go there.
    if (e && !e.obj && T.free > 0 && !this.onDevice(placeOf(sp.p, vpn), T.owner)) this.drvTo(sp, T, vpn, 1, true);
    const before = placeOf(sp.p, vpn);
    const onP = this.onDevice(before, T.owner);
    const calls0 = T.calls;
    const free0 = this.m.counters().nr_free_pages;
    const what = `pid ${sp.p.pid} ${via >= 0 ? `device ${via} READ` : write ? "CPU write" : "CPU read"} of 0x${(vpn * PAGE_SIZE).toString(16)} (${showPlace(before)}) with migrate_to_ram ${mode}`;
    T.fail = mode;
    try {
      if (via >= 0) {
        const buf = this.buffer(1);
        const r = this.mirror(sp, via).cmd(HMM_DMIRROR_READ, { addr: vpn * PAGE_SIZE, npages: 1, buffer: buf });
        if (!e || !(e.prot & PROT_READ)) {
          expect(r.ret, what).toBe(EFAULT);
          expect(T.calls, `${what}: driver calls`).toBe(calls0);
        } else if (onP) {
          expect(r.ret, what).toBe(mode === "oom" ? ENOMEM : EFAULT);
          expect(T.calls, `${what}: driver calls`).toBe(calls0 + 1);
          this.t.injectedMirror++;
        } else {
          expect(r.ret, what).toBe(0);
          this.expectDeviceRead(sp, vpn, 1, buf, what);
          expect(T.calls, `${what}: driver calls`).toBe(calls0);
        }
      } else {
        const off = (vpn * 8) % PAGE_SIZE;
        const acc: Access = this.mode === "tags"
          ? (write ? { k: "writeTag", addr: vpn * PAGE_SIZE + off, tag: BigInt(vpn) * 1000n + 7n } : { k: "readTag", addr: vpn * PAGE_SIZE + off })
          : (write ? { k: "writeU32", addr: vpn * PAGE_SIZE + off, value: (vpn ^ 0x5a5a5a5a) >>> 0 } : { k: "readU32", addr: vpn * PAGE_SIZE + off });
        const permitted = e && (write ? e.prot & PROT_WRITE : e.prot & (PROT_READ | PROT_WRITE | PROT_EXEC));
        if (!onP || !permitted) {
          this.sh.access(sp, [acc], false);
          expect(T.calls, `${what}: driver calls`).toBe(calls0);
        } else {
          const err = errorOf(() => {
            if (acc.k === "writeTag") sp.p.writeTag(acc.addr, acc.tag);
            else if (acc.k === "readTag") sp.p.readTag(acc.addr);
            else if (acc.k === "writeU32") sp.p.writeU32(acc.addr, acc.value);
            else if (acc.k === "readU32") sp.p.readU32(acc.addr);
          });
          if (mode === "oom") expect(err.code, what).toBe("ENOMEM");
          else {
            expect(err.code, `${what}: ${err.message}`).toBe("SIGBUS");
            expect(err.fault, what).toEqual({ addr: acc.addr, access: write ? "write" : "read", si_code: "BUS_ADRERR" });
          }
          expect(T.calls, `${what}: driver calls`).toBe(calls0 + 1);
          this.t.injected++;
        }
      }
    } finally {
      T.fail = "none";
    }
    this.m.check();
    if (onP && T.calls > calls0 && mode !== "migrateThenSigbus") {
      // Nothing moved: the page is still on the device, and no system page was kept.
      expect(placeOf(sp.p, vpn), `${what}: the entry afterwards`).toEqual(before);
      expect(this.m.counters().nr_free_pages, `${what}: free system pages`).toBe(free0);
    }
    this.cpuVerify(sp, vpn, 1);
  }

  /**
   * Something else runs between migrate_vma_setup and finalize: a CPU access (a collected
   * page is behind a migration entry: EBUSY, as migration_entry_wait would sleep; a hole
   * faults in, and migrate_vma_pages must then leave it alone), a second migration of the
   * same range (it collects only what has no migration entry: holes and the zero page), an
   * eviction of the target range (the new pages are locked: they stay), or a mirror read
   * (hmm_range_fault meets the migration entries: EBUSY). Then the migration finishes or is
   * aborted, and nothing may be lost.
   */
  private inflight(sp: ShadowProc, T: Driver, vpn: number, op: { pages: number; action: number; k: number; abort: boolean; write: boolean; dev: number }): void {
    const { n, inside } = this.vmaRange(sp, vpn, op.pages, true);
    if (!inside) return;
    const args = { proc: sp.p, start: vpn * PAGE_SIZE, end: (vpn + n) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: T.owner };
    const mig = this.m.migrateVmaSetup(args);
    const got = mig.allocAndCopy(T.pg);
    T.allocated += got;
    const what = `pid ${sp.p.pid} during a migration to ${T.owner.name} of 0x${(vpn * PAGE_SIZE).toString(16)}+${n} pages`;
    const action = op.action % 4;
    if (action === 0) {
      const k = op.k % n;
      const v = vpn + k;
      const e = sp.pages.get(v)!;
      const off = (v * 8) % PAGE_SIZE;
      const addr = v * PAGE_SIZE + off;
      const acc: Access = this.mode === "tags"
        ? (op.write ? { k: "writeTag", addr, tag: BigInt(v) * 77n + 5n } : { k: "readTag", addr })
        : (op.write ? { k: "writeU32", addr, value: (v * 2654435761) >>> 0 } : { k: "readU32", addr });
      const permitted = op.write ? e.prot & PROT_WRITE : e.prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
      const s = mig.src[k]!;
      if (permitted && s & MIGRATE_PFN_MIGRATE && s & MIGRATE_PFN_VALID) {
        const err = errorOf(() => (acc.k === "writeTag" ? sp.p.writeTag(addr, acc.tag) : acc.k === "readTag" ? sp.p.readTag(addr)
          : acc.k === "writeU32" ? sp.p.writeU32(addr, acc.value) : sp.p.readU32(addr)));
        expect(err.code, `${what}: CPU access to page ${k}, under a migration entry: ${err.message}`).toBe("EBUSY");
      } else {
        this.sh.access(sp, [acc], false);
      }
    } else if (action === 1) {
      const unmapped = [...mig.src].filter((x) => (x & MIGRATE_PFN_MIGRATE) !== 0n && (x & MIGRATE_PFN_VALID) === 0n).length;
      const mig2 = this.m.migrateVmaSetup(args);
      expect(mig2.cpages, `${what}: a second migrate_vma_setup of the range collects its ${unmapped} holes and zero pages`).toBe(unmapped);
      T.allocated += mig2.allocAndCopy(T.pg);
      mig2.finalize(); // check() waits for the first one: it holds migration entries
    } else if (action === 2) {
      expect(this.m.evictDevicePages(T.pg), `${what}: pages evictDevicePages left (the migration's locked new pages)`).toBe(got);
      this.clearAll(T.bit);
    } else {
      const buf = this.buffer(n);
      const r = this.mirror(sp, op.dev).cmd(HMM_DMIRROR_READ, { addr: vpn * PAGE_SIZE, npages: n, buffer: buf });
      const bad = this.firstBad(sp, vpn, n, false);
      const busy = mig.src.findIndex((x) => (x & MIGRATE_PFN_MIGRATE) !== 0n && (x & MIGRATE_PFN_VALID) !== 0n);
      if (bad && (busy < 0 || bad.i <= busy)) expect(r.ret, `${what}: device read`).toBe(EFAULT);
      else if (busy >= 0) expect(r.ret, `${what}: device read of page ${busy}, under a migration entry`).toBe(-16);
      else expect(r.ret, `${what}: device read`).toBe(0);
      this.expectDeviceRead(sp, vpn, r.cpages, buf, what);
    }
    expect(mig.finished, `${what}: the migration is still in flight`).toBe(false);
    const inUse = T.inUse;
    if (op.abort) mig.abort();
    else mig.finalize();
    this.m.check();
    if (op.abort) expect(T.inUse, `${what}: device pages in use after abort (its ${got} new pages freed)`).toBe(inUse - got);
    this.markAll(vpn, n, T.bit);
    this.t.inflight++;
    this.cpuVerify(sp, vpn, n);
  }

  /** A driver that writes a bad dst entry: migrate_vma_pages refuses with EINVAL and rolls back. */
  private badDst(sp: ShadowProc, T: Driver, vpn: number, n0: number, variant: number): void {
    const { n, inside } = this.vmaRange(sp, vpn, n0, true);
    if (!inside) return;
    const inUse0 = T.inUse;
    const free0 = this.m.counters().nr_free_pages;
    const mig = this.m.migrateVmaSetup({
      proc: sp.p, start: vpn * PAGE_SIZE, end: (vpn + n) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: T.owner,
    });
    if (mig.cpages === 0) {
      mig.finalize();
      this.m.check();
      return;
    }
    T.allocated += mig.allocAndCopy(T.pg);
    const i = mig.src.findIndex((s) => (s & MIGRATE_PFN_MIGRATE) !== 0n);
    const old = migratePfnToPage(mig.dst[i]!);
    if (old >= 0) {
      // The driver gives its page back before it writes another entry there.
      this.m.page.unlock(old);
      this.m.page.put(old);
    }
    const bad = this.badEntry(mig, sp, T, old, variant);
    mig.dst[i] = bad.entry;
    const what = `pid ${sp.p.pid} migrate_vma to ${T.owner.name} (0x${(vpn * PAGE_SIZE).toString(16)}, ${n} pages) with dst[${i}] = ${bad.kind}`;
    const err = errorOf(() => mig.pages());
    expect(err.code, `${what}: ${err.message}`).toBe("EINVAL");
    expect(err.fn, what).toBe("migrate_vma_pages");
    expect(mig.finished, `${what}: rolled back`).toBe(true);
    this.m.check();
    expect(T.inUse, `${what}: device pages in use`).toBe(inUse0);
    expect(this.m.counters().nr_free_pages, `${what}: free system pages`).toBe(free0);
    this.t.badDst++;
    this.cpuVerify(sp, vpn, n);
  }

  private badEntry(mig: MigrateVma, sp: ShadowProc, T: Driver, old: number, variant: number): { entry: bigint; kind: string } {
    const m = this.m;
    switch (variant % 5) {
      case 1: {
        let free = old;
        for (let pfn = T.pg.start; free < 0 && pfn < T.pg.end; pfn++) if (m.core.pageRefcount(pfn) === 0) free = pfn;
        if (free >= 0) return { entry: migratePfn(free), kind: `free device page ${free}` };
        break;
      }
      case 2: {
        const src = [...mig.src].map(migratePfnToPage).find((p) => p >= 0);
        if (src !== undefined) return { entry: migratePfn(src), kind: `source page ${src}` };
        break;
      }
      case 3: {
        const pfn = m.config.frames + m.config.deviceFrames + 7;
        return { entry: migratePfn(pfn), kind: `pfn ${pfn} past the end of the machine` };
      }
      case 4: {
        for (const other of this.sh.procs) {
          for (const v of other.vpns()) {
            const pl = placeOf(other.p, v);
            if (pl.kind === "present" && pl.pfn !== 0) return { entry: migratePfn(pl.pfn), kind: `mapped page ${pl.pfn}` };
          }
        }
        break;
      }
    }
    const pfn = old >= 0 ? old : T.pg.start;
    return { entry: migratePfn(pfn) & ~MIGRATE_PFN_VALID, kind: `pfn ${pfn} without MIGRATE_PFN_VALID` };
  }

  /**
   * A first process with half the window mapped and written, so that ranges find pages,
   * and a read-only mapping after it (zero pages, device writes refused with EPERM).
   */
  start(): void {
    const sp = this.sh.spawn()!;
    const n = this.cfg.window >> 1;
    this.sh.mmap(sp, BASE_VPN, n, PROT_READ | PROT_WRITE, false, 0, false);
    this.sh.access(sp, [{ k: "touch", addr: BASE_VPN * PAGE_SIZE, npages: n, write: true, base: 0x1000n }], false);
    this.sh.mmap(sp, BASE_VPN + n, 4, PROT_READ, false, 0, true);
    this.m.check();
  }

  // ---- the end of a sequence ----

  /** Every byte (or tag) of every page of every process read back through the CPU. */
  private readAll(): void {
    for (const sp of this.sh.procs) {
      for (const v of sp.vpns()) {
        const hidden = sp.pages.get(v)!.prot === PROT_NONE;
        if (hidden) this.sh.mprotect(sp, v, 1, PROT_READ);
        const a: Access = this.mode === "bytes" ? { k: "read", addr: v * PAGE_SIZE, len: PAGE_SIZE } : { k: "readTag", addr: v * PAGE_SIZE };
        this.sh.access(sp, [a], false);
        if (hidden) this.sh.mprotect(sp, v, 1, PROT_NONE);
        this.m.check();
      }
    }
  }

  finish(): void {
    this.readAll();
    // Reading every mapping faulted every device-private page home.
    expect(this.drvP.inUse, "drvP pages in use after every page was read").toBe(0);
    for (const d of [0, 1]) expect(this.deviceBusy(d), `device ${d} pages in use after every page was read`).toBe(0);
    for (const sp of this.sh.procs) this.sh.checkMaps(sp);
    while (this.sh.procs.length > 0) this.exit(this.sh.procs[0]!);
    for (const [sp] of this.mirrors) for (let d = 0; d < 4; d++) this.closeMirror(sp, d);
    expect(this.drvC.inUse, "drvC pages in use after every process exited").toBe(0);
    for (let d = 0; d < 4; d++) expect(this.deviceBusy(d), `device ${d} pages in use after every process exited`).toBe(0);
    this.m.memunmapPages(this.drvP.pg);
    this.m.memunmapPages(this.drvC.pg);
    this.m.check();
    const c = this.m.counters();
    expect(c.nr_anon_pages, "nr_anon_pages after every process exited").toBe(0);
    expect(c.nr_shmem, "nr_shmem after every process exited").toBe(0);
    expect(c.nr_free_pages, "nr_free_pages after every process exited").toBe(this.startFree);
    this.t.cowFaults += c.cow_fault;
  }
}

function runDeviceSequence(ops: DOp[], cfg: DevConfig, totals: DevTotals): void {
  const run = new DeviceRun(cfg, totals);
  run.start();
  for (const op of ops) {
    run.step(op);
    run.checkPlaces(op.op);
  }
  run.finish();
  totals.runs++;
  totals.ops += ops.length;
}

// ---- generators -----------------------------------------------------------------------

const pSel = fc.nat(5);
const devSel = fc.nat(3);
const drvSel = fc.constantFrom<Drv>("P", "C");
/** Out of 10: a page that may be on a device, one holding data, a mapped one; the rest any window page. */
const sel = (dev: number, written: number, mapped: number) =>
  fc.record({
    kind: fc.nat(9).map((x): 0 | 1 | 2 | 3 => (x < dev ? 3 : x < dev + written ? 2 : x < dev + written + mapped ? 1 : 0)),
    n: fc.nat(100_000),
  });
const devPages = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }) });
const offArb = fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.nat(4095) });
const lenArb = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 9000 }) });
const protArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(PROT_READ | PROT_WRITE) },
  { weight: 2, arbitrary: fc.constant(PROT_READ) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
);

function cpuArb(mode: Mode): fc.Arbitrary<CpuSpec> {
  const at = sel(5, 2, 2);
  const tagOps: fc.Arbitrary<CpuSpec>[] = [
    fc.record({ k: fc.constant("writeTag" as const), at, off: offArb, tag: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }) }),
    fc.record({ k: fc.constant("readTag" as const), at, off: offArb }),
    fc.record({ k: fc.constant("touch" as const), at, npages: fc.integer({ min: 1, max: 6 }), write: fc.boolean(), base: fc.bigInt({ min: 1n, max: 1n << 60n }) }),
  ];
  if (mode === "tags") return fc.oneof(...tagOps);
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ k: fc.constant("write" as const), at, off: offArb, len: lenArb, seed: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant("read" as const), at, off: offArb, len: lenArb }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("writeU32" as const), at, off: offArb, value: fc.nat({ max: 2 ** 32 - 1 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("readU32" as const), at, off: offArb }) },
    ...tagOps.map((arbitrary) => ({ weight: 1, arbitrary })),
  );
}

function opArb(mode: Mode): fc.Arbitrary<DOp> {
  const p = pSel;
  const devAt = sel(3, 1, 5);
  return fc.oneof(
    { weight: 8, arbitrary: fc.record({ op: fc.constant("access" as const), p, batch: fc.boolean(), list: fc.array(cpuArb(mode), { minLength: 1, maxLength: 3 }) }) },
    { weight: 5, arbitrary: fc.record({
      op: fc.constant("mmap" as const), p, at: sel(0, 0, 2), pages: fc.integer({ min: 1, max: 10 }), prot: protArb,
      shared: fc.nat(4).map((x) => x === 0), hint: fc.nat(3).map((x) => x === 0), populate: fc.nat(3).map((x) => x === 0),
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("munmap" as const), p, at: sel(3, 1, 4), pages: fc.integer({ min: 1, max: 6 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("mprotect" as const), p, at: sel(3, 1, 5), pages: fc.integer({ min: 1, max: 6 }), prot: protArb, verify: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("dontneed" as const), p, at: sel(3, 1, 5), pages: fc.integer({ min: 1, max: 6 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("fork" as const), p }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const), p }) },
    { weight: 1, arbitrary: fc.constant({ op: "spawn" as const }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant("m2d" as const), p, dev: devSel, at: devAt, pages: devPages, failAlloc: fc.nat(2).map((x) => x === 0) }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant("m2s" as const), p, dev: devSel, at: devAt, pages: devPages }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("dread" as const), p, dev: devSel, at: devAt, pages: devPages }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("dwrite" as const), p, dev: devSel, at: devAt, pages: devPages, seed: fc.nat(1 << 20) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("snapshot" as const), p, dev: devSel, at: devAt, pages: devPages }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant("drvTo" as const), p, drv: drvSel, at: sel(2, 1, 6), pages: devPages, clip: fc.nat(5).map((x) => x > 0) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("drvBack" as const), p, drv: drvSel, at: devAt, pages: devPages }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("evict" as const), drv: drvSel }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("close" as const), p, dev: devSel, reopen: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("release" as const), dev: devSel }) },
    { weight: 3, arbitrary: fc.record({
      op: fc.constant("drvFail" as const), p, at: sel(8, 0, 2), mode: fc.constantFrom(...FAIL_MODES), write: fc.boolean(),
      via: fc.nat(5).map((x) => (x < 4 ? -1 : x - 4)),
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("badDst" as const), p, drv: drvSel, at: sel(2, 1, 6), pages: devPages, variant: fc.nat(4) }) },
    { weight: 2, arbitrary: fc.record({
      op: fc.constant("inflight" as const), p, drv: drvSel, at: sel(2, 1, 6), pages: devPages, action: fc.nat(3), k: fc.nat(19),
      abort: fc.nat(3).map((x) => x === 0), write: fc.boolean(), dev: devSel,
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("verify" as const), p, at: devAt, pages: fc.integer({ min: 1, max: 8 }) }) },
  );
}

/** MMEMU_PROPERTY_SCALE=20 runs twenty times as many sequences (for bug hunting). */
const SCALE = Number(process.env.MMEMU_PROPERTY_SCALE ?? 1);

const CONFIGS: { name: string; cfg: DevConfig; runs: number; maxOps: number }[] = [
  { name: "bytes, roomy device memory", runs: 30, maxOps: 40,
    cfg: { mode: "bytes", window: 32, drvPages: 48, chunkPages: 16, maxChunks: 4, deviceMemory: 96 + 4 * 4 * 16 } },
  { name: "tags, roomy device memory", runs: 40, maxOps: 50,
    cfg: { mode: "tags", window: 32, drvPages: 48, chunkPages: 16, maxChunks: 4, deviceMemory: 96 + 4 * 4 * 16 } },
  { name: "tags, device memory runs out (small ranges, chunk registration fails)", runs: 40, maxOps: 50,
    cfg: { mode: "tags", window: 24, drvPages: 4, chunkPages: 2, maxChunks: 2, deviceMemory: 8 + 10 } },
  { name: "bytes, device memory runs out", runs: 25, maxOps: 40,
    cfg: { mode: "bytes", window: 24, drvPages: 4, chunkPages: 2, maxChunks: 2, deviceMemory: 8 + 10 } },
];

describe("property: device memory against a shadow model", () => {
  const all = newDevTotals();
  let configsRun = 0;
  for (const { name, cfg, runs, maxOps } of CONFIGS) {
    it(name, () => {
      const totals = newDevTotals();
      fc.assert(
        fc.property(fc.array(opArb(cfg.mode), { minLength: 1, maxLength: maxOps, size: "max" }), (ops) => runDeviceSequence(ops, cfg, totals)),
        // A failure is still reported (with the counterexample shrunk so far) if shrinking runs long.
        { numRuns: Math.max(1, Math.round(runs * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 20_000 },
      );
      if (process.env.MMEMU_PROPERTY_SCALE || process.env.MMEMU_PROPERTY_TOTALS) console.log(`${name}: ${JSON.stringify(totals)}`);
      for (const k of Object.keys(all) as (keyof DevTotals)[]) all[k] += totals[k];
      configsRun++;
      // Each configuration migrates both ways (tens to hundreds of pages per property).
      for (const k of ["m2dMoved", "drvMoved", "dwrites", "closes"] as const) expect(totals[k], k).toBeGreaterThan(0);
      if (cfg.drvPages < 16) expect(totals.deviceOom, "deviceOom").toBeGreaterThan(0);
    });
  }

  it("the configurations together reach every path they exist for", () => {
    if (configsRun < CONFIGS.length) return; // some were filtered out
    // Each count is ten or more per run of this file.
    for (const k of ["m2dEnoent", "m2dEinval", "m2dFailAlloc", "m2sMoved", "dwriteEperm", "dFault", "snapshots", "drvBack", "evicted",
      "releases", "forkDevpriv", "injected", "badDst", "einvalSetup", "inflight", "cowFaults", "cpuDeviceFaults"] as const) {
      expect(all[k], k).toBeGreaterThan(0);
    }
  });
});

// Minimal sequences of emulator bugs the properties found.
describe("device property regressions", () => {
  const RW = PROT_READ | PROT_WRITE;
  const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

  function toDevice(m: Machine, p: Process, addr: number, owner: unknown, pg: DevPagemap): void {
    const mig = m.migrateVmaSetup({ proc: p, start: addr, end: addr + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: owner });
    expect(mig.allocAndCopy(pg)).toBe(1);
    mig.finalize();
    m.check();
  }

  it("a migrate_to_ram that fails gives SIGBUS at the faulting address, not at the page's start", () => {
    // x86 do_sigbus reports the faulting address (cr2), as every other fault here does;
    // the device-private path (Machine.deviceFault) passed the page-aligned address on.
    const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64, content: "tags" });
    const { owner, pg } = privateDevice(m, 8, "gpu", true);
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeTag(a, 7n);
    toDevice(m, p, a, owner, pg);
    const err = errorOf(() => p.readTag(a + 0x28));
    m.check();
    expect(err.code).toBe("SIGBUS");
    expect(err.fault).toEqual({ addr: a + 0x28, access: "read", si_code: "BUS_ADRERR" });
  });

  it("a PROT_NONE mapping stays inaccessible after its pages migrate", () => {
    // The kernel builds the new PTE from vma->vm_page_prot (migrate_vma_insert_page,
    // remove_migration_pte), so PROT_NONE stays PROT_NONE. A hole filled with coherent
    // memory, a page moved to coherent memory, and a device-private page evicted back to
    // RAM all came back as present, readable PTEs (check() did not notice).
    const cases: [string, number, boolean][] = [
      ["a hole filled with device-coherent memory", MEMORY_DEVICE_COHERENT, false],
      ["a page moved to device-coherent memory", MEMORY_DEVICE_COHERENT, true],
      ["a device-private page evicted to RAM", MEMORY_DEVICE_PRIVATE, true],
    ];
    const outcome = cases.map(([what, type, populated]) => {
      const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64 });
      const owner = {};
      const pg = m.memremapPages({ type: type as MemoryType, nrPages: 8, owner, ops: { migrateToRam: () => VM_FAULT_SIGBUS } });
      const p = m.spawn();
      const a = p.mmap(0, PAGE_SIZE, RW, ANON);
      if (populated) p.writeU32(a, 5);
      p.mprotect(a, PAGE_SIZE, PROT_NONE);
      toDevice(m, p, a, owner, pg);
      if (type === MEMORY_DEVICE_PRIVATE) expect(m.evictDevicePages(pg)).toBe(0);
      m.check();
      let code: string;
      try {
        p.readU32(a);
        code = "read succeeded";
      } catch (err) {
        code = err instanceof MmError ? (err.fault?.si_code ?? err.code) : String(err);
      }
      return `${what}: ${code}`;
    });
    expect(outcome).toEqual(cases.map(([what]) => `${what}: SEGV_ACCERR`));
  });

  it("HMM_DMIRROR_MIGRATE_TO_SYS leaves holes alone", () => {
    // test_hmm's dmirror_devmem_fault_alloc_and_copy skips entries without a source page,
    // so migrate_vma_pages clears MIGRATE for them; the emulator's mirror filled every
    // collected hole (allocAndCopy) and mapped a fresh zero page there.
    const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64, content: "tags" });
    const [dev0] = createHmmDevices(m, { chunkPages: 8 });
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeTag(a, 9n);
    const mir = dev0!.open(p);
    expect(mir.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 1 }).ret).toBe(0);
    const r = mir.cmd(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: 2 });
    m.check();
    expect([r.ret, r.cpages]).toEqual([0, 1]);
    expect(p.readTag(a)).toBe(9n);
    expect(p.pte(a + PAGE_SIZE), "the hole").toBe(0n);
    expect(p.rss().anon).toBe(1);
  });

  it("a device page faulted home leaves no stale entry in another process's mirror of the same device", () => {
    // After fork, the child's mirror migrates a shared page; the parent's mirror maps it
    // (own device-private page, reported without a fault). A CPU fault in the parent brings
    // it home: the MIGRATE notifier carries the device as owner, so every mirror of the
    // device skips it, and devmemFault erased the page only from the mirror that migrated
    // it in. The parent's mirror kept the freed device page: its READ threw EINVAL from
    // page.readTag, and once another process's data landed in that page, it read that data.
    // (lib/test_hmm.c has the same gap; hmm-tests never open one device from two processes.)
    const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64, content: "tags" });
    const [dev0] = createHmmDevices(m, { chunkPages: 8 });
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeTag(a, 111n);
    const c = p.fork();
    expect(dev0!.open(c).cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 1 }).ret).toBe(0);
    const pm = dev0!.open(p);
    expect(pm.cmd(HMM_DMIRROR_READ, { addr: a, npages: 1 }).ret).toBe(0);
    expect(p.readTag(a)).toBe(111n);
    m.check();
    const q = m.spawn();
    const b = q.mmap(0, PAGE_SIZE, RW, ANON);
    q.writeTag(b, 333n);
    expect(dev0!.open(q).cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: b, npages: 1 }).ret).toBe(0);
    const r = pm.cmd(HMM_DMIRROR_READ, { addr: a, npages: 1 });
    m.check();
    expect(r.ret).toBe(0);
    expect(r.buffer, "the parent's device read of its own page").toEqual(new BigUint64Array([111n]));
  });

  it("a CPU fault on device-private memory while another migration is in flight neither fails nor aborts it", () => {
    // In the kernel, migrations of different pages are independent. Here the driver's
    // migrate_vma_setup in migrate_to_ram failed with EBUSY (one migration at a time) and
    // the access got SIGBUS; deviceFault's restore path also aborted the migration that
    // was in flight, which its caller then could not finalize.
    const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64, content: "tags" });
    const { owner, pg } = privateDevice(m, 8, "gpu");
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeTag(a, 1n);
    p.writeTag(a + PAGE_SIZE, 2n);
    toDevice(m, p, a, owner, pg);
    const mig = m.migrateVmaSetup({ proc: p, start: a + PAGE_SIZE, end: a + 2 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: owner });
    mig.allocAndCopy(pg);
    let got: string;
    try {
      got = String(p.readTag(a));
    } catch (err) {
      got = String(err);
    }
    const stillInFlight = !mig.finished;
    if (!mig.finished) mig.finalize();
    m.check();
    expect({ got, stillInFlight }).toEqual({ got: "1", stillInFlight: true });
    expect(p.readTag(a + PAGE_SIZE)).toBe(2n);
  });
});
