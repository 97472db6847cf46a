// Runs one fuzz program on a fresh small machine against the shadow (src/fuzz/shadow.ts).
// After every op the results are compared with the shadow; machine.check() runs every
// `checkEvery` operations; at the end everything is read back and torn down, and no page
// may be left in use. Expected errors (ENOMEM, EBUSY, an injected EIO ...) are fine; an
// invariant failure, an unexpected errno, a non-MmError exception (a Wasm trap) or a
// wrong byte is a FuzzFailure.
import { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { MmError } from "../errors.js";
import { Rng } from "../random.js";
import {
  MADV_DONTNEED, VM_LOCKED, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MREMAP_MAYMOVE, PAGE_SIZE, PROT_READ, PROT_WRITE,
} from "../constants.js";
import { MS_SYNC, O_CREAT, O_RDWR } from "../fs/constants.js";
import type { OpenFile } from "../fs/file.js";
import type { FileSystem } from "../fs/filesystem.js";
import type { BlockDevice } from "../block/types.js";
import { FOLL_LONGTERM, FOLL_WRITE } from "../pin/flags.js";
import { MPOL_BIND, MPOL_MF_MOVE } from "../numa/mpol.js";
import { MIGRATE_VMA_SELECT_SYSTEM } from "../migrate.js";
import { MAX_OOM_REAP_RETRIES } from "../oom.js";
import { Scheduler } from "../sched/scheduler.js";
import type { Action, ThreadApi } from "../sched/thread.js";
import {
  createHmmDevices, HmmDmirror, HmmDmirrorDevice, HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FILE, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE,
  HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE,
} from "../testing/dmirror.js";
import { FaultInjector, faultRule, type FaultWorld, type SiteCount } from "./faults.js";
import { FileShadow, REGION_KINDS, expected, forkRegion, observed, store, type ProcShadow, type Region } from "./shadow.js";
import { MAX_FID, type Op, type OpName, type Program } from "./ops.js";

export type FailureKind = "invariant" | "data" | "errno" | "crash";

export class FuzzFailure extends Error {
  constructor(readonly kind: FailureKind, readonly opIndex: number, readonly opName: string, message: string) {
    super(`${kind} at op ${opIndex} (${opName}): ${message}`);
    this.name = "FuzzFailure";
  }

  /** What "fails the same way" means while shrinking. */
  get signature(): string {
    return `${this.kind}:${this.opName}`;
  }
}

export interface ExecOptions {
  build?: "debug" | "release";
  /** machine.check() after the op that brings the operations since the last check to this many (default 256). */
  checkEvery?: number;
  /**
   * Test-only planted bug: the checker reports a failure when a process forked from one
   * that ran madvise makes CPU accesses. Shows the shrinker at work.
   */
  plantedBug?: boolean;
}

export interface ExecResult {
  /** Public API calls made (a batch counts its accesses). */
  operations: number;
  /** Program ops skipped (they named nothing live). */
  skipped: number;
  /** Fault rules armed with machine.inject. */
  faultsInjected: number;
  /** Fault rules machine.inject refused (all 8 allocation slots live). */
  faultsRefused: number;
  /** Rules armed and faults they injected, by site. */
  faultsBySite: Record<string, SiteCount>;
  /** oomreap ops whose reaper gave up (a notifier refused every attempt). */
  oomGaveUp: number;
  /** Calls that ended in an expected error. */
  expectedErrors: number;
  checks: number;
  /** Pages and file pages verified in the final read-back. */
  verifiedPages: number;
  failure: FuzzFailure | null;
}

/** The small machine every program runs on. */
export function fuzzMachineConfig(content: "bytes" | "tags", build: "debug" | "release") {
  return {
    nodes: [{ normal: 3072, movable: 1024 }, { normal: 1024 }],
    cma: [{ node: 0, pages: 512 }],
    deviceMemory: 4 * 2 * 64,
    maxProcesses: 16,
    content,
    build,
  };
}

const SECTORS = 256;
const EXPECTED_ALWAYS = ["ENOMEM", "EBUSY", "EAGAIN"];
/** Once a block-device fault was armed: write-back errors stay with the file (AS_EIO) after the rule is gone. */
const EXPECTED_FAULTED = ["EIO", "ENOSPC", "SIGBUS", "EFAULT"];
/** The simulated threads' copy engine (machine.inject's engine site names it). */
const ENGINE = "copy";
const DEV_CMDS = [HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE];
const ERRNO_NAME: Record<number, string> = { [-1]: "EPERM", [-2]: "ENOENT", [-5]: "EIO", [-12]: "ENOMEM", [-13]: "EACCES", [-14]: "EFAULT", [-16]: "EBUSY", [-22]: "EINVAL", [-95]: "EOPNOTSUPP", [-11]: "EAGAIN" };
/** Skip: the op named nothing live. */
const SKIP = Symbol("skip");

export function runProgram(prog: Program, opts: ExecOptions = {}): ExecResult {
  const ex = new Executor(prog, opts);
  return ex.run();
}

class Executor {
  readonly m: Machine;
  private readonly bytes: boolean;
  private readonly procs = new Map<number, ProcShadow>();
  private readonly files: FileShadow[] = [];
  private readonly fs: FileSystem;
  private readonly dev: BlockDevice;
  private readonly devices: HmmDmirrorDevice[];
  private readonly mirrors = new Map<string, HmmDmirror>();
  private readonly holds = new Map<number, { pfns: number[]; pin: boolean }>();
  private readonly cma = new Map<number, { pfn: number; count: number }>();
  private readonly faults: FaultInjector;
  private readonly checkEvery: number;
  private nextTag = 1;
  private ops = 0;
  private sinceCheck = 0;
  private skipped = 0;
  private expectedErrors = 0;
  private verified = 0;
  private blockFaultsEver = false;
  private oomGaveUp = 0;
  private readonly world: FaultWorld;
  private opIndex = -1;
  private opName = "setup";
  /** Planted bug: processes that ran madvise, and children forked from them. */
  private readonly madvised = new Set<number>();
  private readonly tainted = new Set<number>();

  constructor(readonly prog: Program, readonly opts: ExecOptions) {
    this.bytes = prog.machine.content === "bytes";
    this.m = Machine.create(fuzzMachineConfig(prog.machine.content, opts.build ?? "release"));
    this.checkEvery = opts.checkEvery ?? 256;
    this.dev = this.m.addBlockDevice("vda", { sectors: SECTORS });
    this.fs = this.m.mount(this.dev);
    for (let i = 0; i <= MAX_FID; i++) this.files.push(new FileShadow(this.fs.open(`f${i}`, O_RDWR | O_CREAT)));
    this.devices = createHmmDevices(this.m, { chunkPages: 64, maxChunks: 2 });
    this.faults = new FaultInjector(this.m);
    // The engine's name must be known before a rule names it: a scheduler registers it.
    new Scheduler(this.m).engine(ENGINE, 16);
    this.world = {
      zones: this.m.zones().length, nodes: 2, devices: this.devices.map((d) => d.name), blockDevice: this.dev.name, engine: ENGINE,
      process: (pid) => this.procs.get(pid)?.p,
    };
  }

  run(): ExecResult {
    let failure: FuzzFailure | null = null;
    try {
      this.prog.ops.forEach((op, i) => {
        this.opIndex = i;
        this.opName = op[0];
        if (this.step(op) === SKIP) this.skipped++;
        if (this.sinceCheck >= this.checkEvery) this.check();
      });
      this.opIndex = this.prog.ops.length;
      this.opName = "final read-back";
      this.finish();
    } catch (e) {
      failure = e instanceof FuzzFailure ? e : this.crash(e);
    }
    return {
      operations: this.ops, skipped: this.skipped, faultsInjected: this.faults.injected, faultsRefused: this.faults.refused,
      faultsBySite: this.faults.bySite(), oomGaveUp: this.oomGaveUp, expectedErrors: this.expectedErrors,
      checks: this.m.checksRun, verifiedPages: this.verified, failure,
    };
  }

  // ---- failure helpers ------------------------------------------------------------

  private fail(kind: FailureKind, msg: string): never {
    throw new FuzzFailure(kind, this.opIndex, this.opName, msg);
  }

  private crash(e: unknown): FuzzFailure {
    if (e instanceof MmError) return new FuzzFailure("errno", this.opIndex, this.opName, e.message);
    return new FuzzFailure("crash", this.opIndex, this.opName, `${(e as Error)?.name ?? "exception"}: ${(e as Error)?.message ?? String(e)}`);
  }

  /** The errnos an op may end in now: always ENOMEM/EBUSY/EAGAIN, those of the armed faults' sites, and `more`. */
  private allowed(more: readonly string[] = []): string[] {
    const a = [...EXPECTED_ALWAYS, ...more, ...this.faults.expectedErrnos()];
    if (this.blockFaultsEver) a.push(...EXPECTED_FAULTED);
    return a;
  }

  /**
   * One public call: counted; an error in `allowed(more)` returns undefined, any other is a
   * failure. "strict": every error is a failure (calls that cannot fail at that point);
   * { only }: just those errors are expected.
   */
  private call<T>(fn: () => T, more: readonly string[] | "strict" | { only: readonly string[] } = []): T | undefined {
    this.ops++;
    this.sinceCheck++;
    try {
      return fn();
    } catch (e) {
      if (e instanceof FuzzFailure) throw e;
      const ok = more === "strict" ? [] : "only" in more ? more.only : this.allowed(more);
      if (e instanceof MmError && ok.includes(e.code)) {
        this.expectedErrors++;
        return undefined;
      }
      throw this.crash(e);
    }
  }

  private check(): void {
    this.sinceCheck = 0;
    try {
      this.m.check();
    } catch (e) {
      if (e instanceof MmError && e.code === "EFAULT") this.fail("invariant", e.message);
      throw this.crash(e);
    }
  }

  private tag(): number {
    const t = this.nextTag;
    this.nextTag = t >= 0xfffffffe ? 1 : t + 1;
    return t;
  }

  // ---- lookups (SKIP when the id names nothing live) ------------------------------

  private proc(pid: number): ProcShadow | typeof SKIP {
    return this.procs.get(pid) ?? SKIP;
  }

  private region(pid: number, rid: number): [ProcShadow, Region] | typeof SKIP {
    const ps = this.procs.get(pid);
    const r = ps?.regions.get(rid);
    return ps && r ? [ps, r] : SKIP;
  }

  private mirrorFlags(d: number): number {
    return d === 0 ? HMM_DMIRROR_FLAG_FILE : 0;
  }

  private mirror(d: number, pid: number, p: Process): HmmDmirror {
    const key = `${d}:${pid}`;
    let mi = this.mirrors.get(key);
    if (!mi) {
      mi = this.devices[d]!.open(p);
      mi.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: this.mirrorFlags(d) });
      this.mirrors.set(key, mi);
    }
    return mi;
  }

  private closeMirrors(pid: number): void {
    for (const [k, mi] of [...this.mirrors]) {
      if (k.endsWith(`:${pid}`)) {
        this.mirrors.delete(k);
        this.call(() => mi.close());
      }
    }
  }

  // ---- the ops --------------------------------------------------------------------

  private step(op: Op): void | typeof SKIP {
    const a = op.slice(1) as number[];
    switch (op[0] as OpName) {
      case "spawn": return this.spawn(a[0]!);
      case "fork": return this.fork(a[0]!, a[1]!);
      case "exit": return this.exit(a[0]!);
      case "mmap": return this.mmap(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!);
      case "munmap": return this.munmap(a[0]!, a[1]!);
      case "mprotect": return this.mprotect(a[0]!, a[1]!, a[2]! === 1);
      case "madvise": return this.madvise(a[0]!, a[1]!, a[2]!, a[3]!);
      case "mremap": return this.mremap(a[0]!, a[1]!, a[2]!);
      case "mlock": return this.mlock(a[0]!, a[1]!, a[2]! === 1);
      case "mbind": return this.mbind(a[0]!, a[1]!, a[2]!, a[3]! === 1);
      case "cpu": return this.cpu(a[0]!, a[1]!, a[2]!, a[3]!);
      case "dev": return this.devOp(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
      case "devrelease": return this.devRelease(a[0]!, a[1]! === 1);
      case "movepages": return this.movePages(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!);
      case "migratepages": return this.migratePages(a[0]!, a[1]!, a[2]!);
      case "compact": return void this.call(() => this.m.compactMemory());
      case "cmaalloc": return this.cmaAlloc(a[0]!, a[1]!);
      case "cmarelease": return this.cmaRelease(a[0]!);
      case "gup": return this.gup(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
      case "unpin": return this.unpin(a[0]!);
      case "fwrite": return this.fwrite(a[0]!, a[1]!);
      case "fread": return this.fread(a[0]!, a[1]!);
      case "ftruncate": return this.ftruncate(a[0]!, a[1]!);
      case "fsync": return this.fsync(a[0]!);
      case "msync": return this.msync(a[0]!, a[1]!);
      case "powerfail": return this.powerFail();
      case "threads": return this.threads(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
      case "fault": return this.fault(a[0]!, a[1]!, a[2]!);
      case "oomreap": return this.oomReap(a[0]!);
    }
  }

  private spawn(pid: number): void | typeof SKIP {
    if (this.procs.has(pid)) return SKIP;
    const p = this.call(() => this.m.spawn());
    if (p) this.procs.set(pid, { p, regions: new Map() });
  }

  private fork(child: number, parent: number): void | typeof SKIP {
    const ps = this.proc(parent);
    if (ps === SKIP || this.procs.has(child)) return SKIP;
    const c = this.call(() => ps.p.fork());
    if (!c) return;
    const regions = new Map<number, Region>();
    for (const [rid, r] of ps.regions) regions.set(rid, forkRegion(r));
    this.procs.set(child, { p: c, regions });
    if (this.madvised.has(parent) || this.tainted.has(parent)) this.tainted.add(child);
  }

  private exit(pid: number): void | typeof SKIP {
    const ps = this.proc(pid);
    if (ps === SKIP) return SKIP;
    this.closeMirrors(pid);
    this.call(() => ps.p.exit());
    if (!ps.p.exited) this.fail("errno", `process ${pid} did not exit`);
    this.procs.delete(pid);
  }

  /**
   * The OOM killer picks `pid`: the reaper frees its private memory with non-blocking
   * invalidations (a notifier may refuse, machine.inject's notifier site), then it exits.
   */
  private oomReap(pid: number): void | typeof SKIP {
    const ps = this.proc(pid);
    if (ps === SKIP) return SKIP;
    const p = ps.p;
    const locked = p.maps().some((v) => (v.flags & VM_LOCKED) !== 0);
    const before = p.rss().anon;
    const refusals = this.faults.armedWhere((s) => s.site === "notifier");
    const res = this.call(() => this.m.oomReap(p));
    if (!p.exited) this.fail("errno", `the OOM victim ${pid} did not exit`);
    this.procs.delete(pid);
    this.closeMirrors(pid);
    if (!res) return;
    const what = `oomReap of ${pid} (${before} anonymous pages resident${locked ? ", some mlocked" : ""}): ${JSON.stringify(res)}`;
    if (res.attempts < 1 || res.attempts > MAX_OOM_REAP_RETRIES) this.fail("errno", `${what}: attempts out of [1, ${MAX_OOM_REAP_RETRIES}]`);
    if (res.reaped !== (res.skippedVmas === 0)) this.fail("errno", `${what}: reaped disagrees with skippedVmas`);
    if (!res.reaped && res.attempts !== MAX_OOM_REAP_RETRIES) this.fail("errno", `${what}: gave up before MAX_OOM_REAP_RETRIES attempts`);
    if (!refusals && (!res.reaped || res.attempts !== 1)) this.fail("errno", `${what}: no notifier can refuse, yet it did not reap at once`);
    if (res.freedAnon < 0 || res.freedAnon > before) this.fail("invariant", `${what}: freed more anonymous pages than were resident`);
    // Reaped: every private anonymous page is gone (only mlocked VMAs are left to the exit).
    if (res.reaped && !locked && res.freedAnon !== before) this.fail("invariant", `${what}: reaped, yet ${before - res.freedAnon} anonymous pages stayed`);
    if (!res.reaped) this.oomGaveUp++;
  }

  private mmap(pid: number, rid: number, pages: number, kindIx: number, fid: number): void | typeof SKIP {
    const ps = this.proc(pid);
    if (ps === SKIP || ps.regions.has(rid) || pages < 1) return SKIP;
    const kind = REGION_KINDS[kindIx]!;
    const file = kind === "fshared" || kind === "fpriv" ? this.files[fid]! : null;
    const flags = (kind === "anon" || kind === "fpriv" ? MAP_PRIVATE : MAP_SHARED) | (file ? 0 : MAP_ANONYMOUS);
    const addr = this.call(() => ps.p.mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, flags, file?.f ?? null, 0));
    if (addr === undefined) return;
    ps.regions.set(rid, {
      addr, pages, kind, writable: true, file,
      cells: file ? null : { tags: new Uint32Array(pages) },
      cow: kind === "fpriv" ? new Map() : null,
    });
  }

  private munmap(pid: number, rid: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP) return SKIP;
    const [ps, r] = x;
    this.call(() => ps.p.munmap(r.addr, r.pages * PAGE_SIZE));
    if (ps.p.vmaAt(r.addr)) this.fail("errno", `munmap left a mapping at ${r.addr}`);
    ps.regions.delete(rid);
  }

  private mprotect(pid: number, rid: number, writable: boolean): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP) return SKIP;
    const [ps, r] = x;
    const ok = this.call(() => (ps.p.mprotect(r.addr, r.pages * PAGE_SIZE, PROT_READ | (writable ? PROT_WRITE : 0)), true));
    if (ok) r.writable = writable;
    // A locked private mapping made writable has its COW broken at once (mprotect_fixup).
    if (writable) this.noteCowBreaks(ps, r);
  }

  private madvise(pid: number, rid: number, page: number, n: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || page >= x[1].pages) return SKIP;
    const [ps, r] = x;
    n = Math.max(1, Math.min(n, r.pages - page));
    const ok = this.call(() => (ps.p.madvise(r.addr + page * PAGE_SIZE, n * PAGE_SIZE, MADV_DONTNEED), true), this.lockedRange(ps.p, r) ? ["EINVAL"] : []);
    if (!ok) return;
    this.madvised.add(pid);
    // Private anonymous pages read as zero again, private file pages as the file; shared pages stay.
    if (r.kind === "anon") r.cells!.tags.fill(0, page, page + n);
    if (r.kind === "fpriv") for (let i = page; i < page + n; i++) r.cow!.delete(i);
  }

  private mremap(pid: number, rid: number, pages: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || x[1].kind !== "anon" || pages < 1 || pages === x[1].pages) return SKIP;
    const [ps, r] = x;
    const addr = this.call(() => ps.p.mremap(r.addr, r.pages * PAGE_SIZE, pages * PAGE_SIZE, MREMAP_MAYMOVE));
    if (addr === undefined) return;
    const tags = new Uint32Array(pages);
    tags.set(r.cells!.tags.subarray(0, Math.min(pages, r.pages)));
    ps.regions.set(rid, { ...r, addr, pages, cells: { tags } });
  }

  private mlock(pid: number, rid: number, lock: boolean): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP) return SKIP;
    const [ps, r] = x;
    this.call(() => (lock ? this.m.mlock(ps.p, r.addr, r.pages * PAGE_SIZE) : this.m.munlock(ps.p, r.addr, r.pages * PAGE_SIZE)));
    // mlock populates a writable private mapping with write faults, breaking COW (up to
    // where it stopped, when it failed).
    if (lock) this.noteCowBreaks(ps, r);
  }

  /**
   * The pages of a private file region that stopped mapping the file's cached page since the
   * shadow last looked (a populate's write faults copied them): each copy holds the file's
   * content of that moment, which a read shows when the shadow knows several.
   */
  private noteCowBreaks(ps: ProcShadow, r: Region): void {
    if (r.kind !== "fpriv") return;
    const f = r.file!;
    for (let page = 0; page < Math.min(r.pages, f.size); page++) {
      if (r.cow!.has(page)) continue;
      const addr = r.addr + page * PAGE_SIZE;
      const pte = ps.p.pte(addr);
      if ((pte & 1n) === 0n || this.m.cachedPageOwner(Number((pte >> 12n) & 0xffffffffffn))) continue;
      const want = f.allowed(page);
      let tag = want[0]!;
      if (want.length > 1) {
        let hi: number;
        if (this.bytes) {
          const got = this.call(() => ps.p.read(addr, 8), "strict")!;
          const dv = new DataView(got.buffer, got.byteOffset, 8);
          [tag, hi] = [dv.getUint32(0, true), dv.getUint32(4, true)];
        } else {
          const t = this.call(() => ps.p.readTag(addr), "strict")!;
          [tag, hi] = [Number(t & 0xffffffffn), Number(t >> 32n)];
        }
        this.compare(r, page, tag, hi, "read of a page mlock copied");
      }
      r.cow!.set(page, tag);
    }
  }

  /** Whether a VMA of the region is VM_LOCKED (an mlock that failed to populate still locked it). */
  private lockedRange(p: Process, r: Region): boolean {
    return p.maps().some((v) => v.start < r.addr + r.pages * PAGE_SIZE && v.end > r.addr && (v.flags & VM_LOCKED) !== 0);
  }

  private mbind(pid: number, rid: number, node: number, move: boolean): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP) return SKIP;
    const [ps, r] = x;
    this.call(() => this.m.mbind(ps.p, r.addr, r.pages * PAGE_SIZE, MPOL_BIND, [node], move ? MPOL_MF_MOVE : 0), ["EIO"]);
  }

  // ---- CPU accesses ----------------------------------------------------------------

  private cpu(pid: number, rid: number, seed: number, count: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || count < 1) return SKIP;
    const [ps, r] = x;
    if (this.opts.plantedBug && this.tainted.has(pid)) this.fail("invariant", "planted bug: CPU access by a child of a process that ran madvise");
    const rng = new Rng(seed * 7919 + rid);
    const pages: number[] = [];
    const writes: boolean[] = [];
    for (let i = 0; i < count; i++) {
      pages.push(rng.int(r.pages));
      // Stores to a read-only region are rare: each stops the batch with SIGSEGV.
      writes.push(r.writable ? rng.next() < 0.5 : rng.next() < 0.03);
    }
    this.accesses(ps, r, pages, writes);
  }

  /** Runs the accesses in batches; a fault stops a batch, is checked against the shadow, and the rest run after it. */
  private accesses(ps: ProcShadow, r: Region, pages: number[], writes: boolean[]): void {
    let from = 0;
    while (from < pages.length) {
      const b = ps.p.batch();
      const tags: number[] = [];
      const n = Math.min(pages.length - from, 4096);
      for (let i = 0; i < n; i++) {
        const addr = r.addr + pages[from + i]! * PAGE_SIZE;
        if (writes[from + i]) {
          const t = this.tag();
          tags.push(t);
          b.writeTagU32(addr, t);
        } else {
          tags.push(0);
          b.readTag(addr);
        }
      }
      const res = this.callRun(ps.p, b);
      for (let i = 0; i < res.completed; i++) {
        const page = pages[from + i]!;
        if (writes[from + i]) store(r, page, tags[i]!);
        else this.compare(r, page, b.tagLow(i), b.tagHigh(i), "CPU load");
      }
      if (res.fault) {
        const i = res.completed;
        const page = pages[from + i]!;
        this.expectFault(r, page, writes[from + i]!, res.fault);
        from += i + 1;
      } else {
        from += n;
      }
    }
  }

  private callRun(p: Process, b: ReturnType<Process["batch"]>) {
    let res;
    try {
      res = p.run(b);
    } catch (e) {
      throw this.crash(e);
    }
    // The accesses that ran: those completed, and the one that faulted.
    const ran = res.completed + (res.fault ? 1 : 0);
    this.ops += ran;
    this.sinceCheck += ran;
    return res;
  }

  private compare(r: Region, page: number, lo: number, hi: number, what: string): void {
    const want = expected(r, page);
    if (want === "sigbus") this.fail("data", `${what} of page ${page} past the end of the file succeeded (read ${lo})`);
    if (hi !== 0 || !want.includes(lo)) this.fail("data", `${what} of page ${page} of a ${r.kind} region read tag ${lo + hi * 2 ** 32}, shadow says ${want.join(" or ")}`);
    observed(r, page, lo);
  }

  /** A CPU access that stopped its batch: the fault must be the one the shadow predicts (or an expected error). */
  private expectFault(r: Region, page: number, write: boolean, fault: MmError): void {
    const want = expected(r, page);
    if (write && !r.writable) {
      if (fault.code !== "SIGSEGV") this.fail("errno", `store to a read-only region got ${fault.code}, expected SIGSEGV`);
      return;
    }
    if (want === "sigbus") {
      if (fault.code !== "SIGBUS") this.fail("errno", `access past the end of the file got ${fault.code}, expected SIGBUS`);
      return;
    }
    if (this.allowed().includes(fault.code)) {
      this.expectedErrors++;
      return;
    }
    this.fail("errno", `${write ? "store to" : "load from"} page ${page} of a ${r.kind} region faulted: ${fault.message}`);
  }

  // ---- devices ----------------------------------------------------------------------

  private devOp(pid: number, rid: number, d: number, cmdIx: number, page: number, n: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || page >= x[1].pages) return SKIP;
    const [ps, r] = x;
    n = Math.max(1, Math.min(n, r.pages - page));
    const cmd = DEV_CMDS[cmdIx]!;
    // A device write or exclusive fault on a private file mapping breaks COW page by page up
    // to where it stops; the shadow does not model that partial COW, so they are not issued.
    if (r.kind === "fpriv" && (cmd === HMM_DMIRROR_WRITE || cmd === HMM_DMIRROR_EXCLUSIVE)) return SKIP;
    const mi = this.call(() => this.mirror(d, pid, ps.p));
    if (!mi) return;
    const addr = r.addr + page * PAGE_SIZE;
    const pastEof = r.file !== null && page + n > r.file.size;
    let buffer: Uint8Array | BigUint64Array | undefined;
    const tags: number[] = [];
    if (cmd === HMM_DMIRROR_WRITE) {
      for (let i = 0; i < n; i++) tags.push(this.tag());
      buffer = this.bytes ? new Uint8Array(n * PAGE_SIZE) : new BigUint64Array(n);
      tags.forEach((t, i) => {
        if (buffer instanceof BigUint64Array) buffer[i] = BigInt(t);
        else new DataView(buffer!.buffer).setUint32(i * PAGE_SIZE, t, true);
      });
    }
    const out = this.call(() => mi.cmd(cmd, { addr, npages: n, buffer }));
    if (!out) return;
    // Allowed device errors: the CPU side's (past EOF, read-only, not anonymous) and the expected classes.
    const ok = new Set(this.allowed(["ENOENT"]));
    if (pastEof || r.kind !== "anon") ok.add("EFAULT");
    if (cmd === HMM_DMIRROR_WRITE && !r.writable) ok.add("EPERM").add("EFAULT");
    if (cmd === HMM_DMIRROR_EXCLUSIVE) ok.add("EOPNOTSUPP").add("EPERM").add("EFAULT");
    if (cmd === HMM_DMIRROR_SNAPSHOT) ok.add("EFAULT");
    if (cmd === HMM_DMIRROR_MIGRATE_TO_DEV || cmd === HMM_DMIRROR_MIGRATE_TO_SYS) ok.add("EINVAL");
    if (out.ret !== 0) {
      const name = ERRNO_NAME[out.ret] ?? String(out.ret);
      if (!ok.has(name)) this.fail("errno", `dmirror ${cmdIx} on ${n} pages of a ${r.kind} region returned ${name}`);
      this.expectedErrors++;
    }
    if (cmd === HMM_DMIRROR_WRITE) {
      // The mirror writes pages in order and counts them: the first cpages pages hold the new tags.
      if (out.ret === 0 && out.cpages !== n) this.fail("errno", `dmirror write of ${n} pages returned 0 after ${out.cpages}`);
      for (let i = 0; i < out.cpages; i++) store(r, page + i, tags[i]!);
    }
    if (cmd === HMM_DMIRROR_READ && out.ret === 0) {
      const buf = out.buffer!;
      for (let i = 0; i < n; i++) {
        if (buf instanceof BigUint64Array) this.compare(r, page + i, Number(buf[i]! & 0xffffffffn), Number(buf[i]! >> 32n), "device read");
        else {
          const dv = new DataView(buf.buffer, buf.byteOffset + i * PAGE_SIZE, PAGE_SIZE);
          this.compare(r, page + i, dv.getUint32(0, true), dv.getUint32(4, true), "device read");
          this.zeroTail(buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), page + i, "device read");
        }
      }
    }
  }

  private zeroTail(b: Uint8Array, page: number, what: string): void {
    for (let k = 8; k < PAGE_SIZE; k++) if (b[k] !== 0) this.fail("data", `${what} of page ${page}: byte ${k} is ${b[k]}, expected 0`);
  }

  private devRelease(d: number, unregister: boolean): void {
    const dev = this.devices[d]!;
    if (!unregister) return void this.call(() => dev.evictAll());
    const ret = this.call(() => dev.removeChunks());
    if (ret !== undefined && ret !== 0 && ret !== -16) this.fail("errno", `device release returned ${ret}`);
  }

  // ---- migration --------------------------------------------------------------------

  private movePages(pid: number, rid: number, page: number, n: number, node: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || page >= x[1].pages) return SKIP;
    const [ps, r] = x;
    n = Math.max(1, Math.min(n, r.pages - page));
    const addrs = Array.from({ length: n }, (_, i) => r.addr + (page + i) * PAGE_SIZE);
    const res = this.call(() => this.m.movePages(ps.p, addrs, addrs.map(() => node)));
    for (const s of res?.status ?? []) {
      if (s < 0 && ![-2, -14, -16, -12, -13, -11, -5].includes(s)) this.fail("errno", `move_pages status ${ERRNO_NAME[s] ?? s}`);
    }
  }

  private migratePages(pid: number, from: number, to: number): void | typeof SKIP {
    const ps = this.proc(pid);
    if (ps === SKIP) return SKIP;
    this.call(() => this.m.migratePages(ps.p, [from], [to]));
  }

  private cmaAlloc(slot: number, count: number): void | typeof SKIP {
    if (this.cma.has(slot)) return SKIP;
    const c = count + 1;
    const pfn = this.call(() => this.m.cmaAlloc(0, c));
    if (pfn !== undefined) this.cma.set(slot, { pfn, count: c });
  }

  private cmaRelease(slot: number): void | typeof SKIP {
    const a = this.cma.get(slot);
    if (!a) return SKIP;
    this.cma.delete(slot);
    this.call(() => this.m.cmaRelease(0, a.pfn, a.count));
  }

  // ---- pins -------------------------------------------------------------------------

  private gup(hold: number, pid: number, rid: number, page: number, n: number, mode: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || this.holds.has(hold) || page >= x[1].pages) return SKIP;
    const [ps, r] = x;
    n = Math.max(1, Math.min(n, r.pages - page));
    const pin = mode >= 1 && mode <= 3;
    const flags = (mode >= 2 && mode <= 3 ? FOLL_LONGTERM : 0) | (mode === 3 || mode === 4 ? FOLL_WRITE : 0);
    const write = (flags & FOLL_WRITE) !== 0;
    // As for device writes: a FOLL_WRITE fault on a private file mapping, or a FOLL_LONGTERM
    // read pin (gup_must_unshare breaks COW early there), COWs up to where it stops.
    if (r.kind === "fpriv" && (write || flags & FOLL_LONGTERM)) return SKIP;
    const more: string[] = [];
    if ((write && !r.writable) || (r.file && page + n > r.file.size)) more.push("EFAULT");
    if (r.file && flags & FOLL_LONGTERM) more.push("EOPNOTSUPP", "EFAULT");
    const addr = r.addr + page * PAGE_SIZE;
    const got = this.call(() => Array.from(pin ? this.m.pinUserPages(ps.p, addr, n, flags) : this.m.getUserPages(ps.p, addr, n, flags)), more);
    if (got) this.holds.set(hold, { pfns: got, pin });
  }

  private unpin(hold: number): void | typeof SKIP {
    const h = this.holds.get(hold);
    if (!h) return SKIP;
    this.holds.delete(hold);
    this.call(() => (h.pin ? this.m.unpinUserPages(h.pfns) : this.m.releasePages(h.pfns)));
  }

  // ---- files ------------------------------------------------------------------------

  private fwrite(fid: number, page: number): void {
    const f = this.files[fid]!;
    const t = this.tag();
    const ok = this.call(() => {
      if (this.bytes) {
        const data = new Uint8Array(PAGE_SIZE);
        new DataView(data.buffer).setUint32(0, t, true);
        const n = f.f.pwrite(data, page * PAGE_SIZE);
        if (n !== PAGE_SIZE) this.fail("errno", `pwrite of one page wrote ${n} bytes`);
      } else {
        f.f.writeTags(page, [BigInt(t)]);
      }
      return true;
    });
    if (!ok) return;
    f.store(page, t);
    if (page >= f.size) f.size = page + 1;
    this.checkSize(f);
  }

  private checkSize(f: FileShadow): void {
    if (f.f.size !== f.size * PAGE_SIZE) this.fail("data", `${f.f.inode.name} is ${f.f.size} bytes, shadow says ${f.size * PAGE_SIZE}`);
  }

  private fread(fid: number, page: number): void {
    const f = this.files[fid]!;
    this.readFilePage(f, page);
  }

  private readFilePage(f: FileShadow, page: number, strict = false): void {
    const got = this.call(() => {
      if (this.bytes) {
        const b = f.f.pread(PAGE_SIZE, page * PAGE_SIZE);
        return b.length === 0 ? null : b;
      }
      const t = f.f.readTags(page, 1);
      return t.length === 0 ? null : t[0]!;
    }, strict ? "strict" : []);
    if (got === undefined) return;
    if (got === null) {
      if (page < f.size) this.fail("data", `read of page ${page} of ${f.f.inode.name} returned nothing; its size is ${f.size} pages`);
      return;
    }
    if (page >= f.size) this.fail("data", `read of page ${page} past the end of ${f.f.inode.name} returned data`);
    let lo: number, hi: number;
    if (typeof got === "bigint") {
      lo = Number(got & 0xffffffffn);
      hi = Number(got >> 32n);
    } else {
      if (got.length !== PAGE_SIZE) this.fail("data", `read of page ${page} returned ${got.length} bytes`);
      const dv = new DataView(got.buffer, got.byteOffset, 8);
      lo = dv.getUint32(0, true);
      hi = dv.getUint32(4, true);
      this.zeroTail(got, page, "pread");
    }
    const want = f.allowed(page);
    if (hi !== 0 || !want.includes(lo)) this.fail("data", `page ${page} of ${f.f.inode.name} holds ${lo + hi * 2 ** 32}, shadow says ${want.join(" or ")}`);
    f.seen(page, lo);
  }

  private ftruncate(fid: number, pages: number): void {
    const f = this.files[fid]!;
    const ok = this.call(() => (f.f.ftruncate(pages * PAGE_SIZE), true));
    if (!ok) return;
    if (pages < f.size) {
      // Private copies of pages past the new end go with them (truncate unmaps them).
      for (const ps of this.procs.values()) {
        for (const r of ps.regions.values()) if (r.file === f && r.cow) for (const i of [...r.cow.keys()]) if (i >= pages) r.cow.delete(i);
      }
    }
    f.truncate(pages);
    this.checkSize(f);
  }

  private fsync(fid: number): void {
    const f = this.files[fid]!;
    if (this.call(() => (f.f.fsync(), true))) f.commit(0, f.size);
  }

  private msync(pid: number, rid: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP) return SKIP;
    const [ps, r] = x;
    const ok = this.call(() => (ps.p.msync(r.addr, r.pages * PAGE_SIZE, MS_SYNC), true));
    if (ok && r.kind === "fshared") r.file!.commit(0, r.pages);
  }

  private powerFail(): void {
    // A power cycle also ends the injected faults (the device comes back fresh).
    this.faults.clear();
    this.call(() => this.m.powerFail(), "strict");
    for (const f of this.files) {
      f.powerFailed();
      this.checkSize(f);
    }
    for (const ps of this.procs.values()) for (const r of ps.regions.values()) r.cow?.clear();
  }

  // ---- simulated threads ----------------------------------------------------------------

  private threads(pid: number, rid: number, nArg: number, steps: number, seed: number, node: number): void | typeof SKIP {
    const x = this.region(pid, rid);
    if (x === SKIP || (x[1].kind !== "anon" && x[1].kind !== "shm") || !x[1].writable) return SKIP;
    const [ps, r] = x;
    const n = Math.min(nArg + 1, r.pages);
    const s = new Scheduler(this.m);
    const engine = s.engine(ENGINE, 16);
    const proc = ps.p;
    const self = this;
    const okErr = (e: unknown): void => {
      if (e instanceof FuzzFailure) throw e;
      if (e instanceof MmError && self.allowed().includes(e.code)) {
        self.expectedErrors++;
        return;
      }
      throw self.crash(e);
    };
    for (let t = 0; t < n; t++) {
      const rng = new Rng(seed * 31 + t);
      s.spawn(`t${t}`, function* (api: ThreadApi): Generator<Action, void, unknown> {
        for (let k = 0; k < steps; k++) {
          const page = t + n * rng.int(Math.floor((r.pages - 1 - t) / n) + 1);
          const addr = r.addr + page * PAGE_SIZE;
          const tag = self.tag();
          self.ops++;
          self.sinceCheck++;
          try {
            yield* api.write(proc, addr, BigInt(tag));
            store(r, page, tag);
          } catch (e) {
            okErr(e);
          }
          self.ops++;
          self.sinceCheck++;
          try {
            const got = yield* api.read(proc, addr);
            self.compare(r, page, Number(got & 0xffffffffn), Number(got >> 32n), `thread ${t} load`);
          } catch (e) {
            okErr(e);
          }
        }
      });
    }
    s.spawn("migrator", function* (api: ThreadApi): Generator<Action, void, unknown> {
      self.ops++;
      self.sinceCheck++;
      try {
        yield* api.migrate({ proc, start: r.addr, end: r.addr + r.pages * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, target: { node }, engine });
      } catch (e) {
        okErr(e);
      }
    });
    try {
      s.run();
    } catch (e) {
      if (e instanceof FuzzFailure) throw e;
      throw this.crash(e);
    }
    if (s.inFlight > 0 || this.m.migrations.some(Boolean)) this.fail("invariant", "a simulated migration was left in flight");
  }

  private fault(site: number, arg: number, times: number): void | typeof SKIP {
    const rule = faultRule(site, arg, times, this.world);
    if (rule === "clear") return void this.faults.clear();
    if (!this.faults.add(rule)) return SKIP;
    if (rule.spec.site === "blockio") this.blockFaultsEver = true;
  }

  // ---- the end ------------------------------------------------------------------------

  /** Reads back every page of every region and file, then tears everything down: no page may stay in use. */
  private finish(): void {
    // Driver errors the machine kept: only injected page_free failures may have made them.
    const pageFree = this.faults.bySite()["callback:page_free"]?.hits ?? 0;
    if (this.m.driverErrorCount !== pageFree) this.fail("invariant", `machine.driverErrors counted ${this.m.driverErrorCount} driver errors, ${pageFree} page_free faults were injected`);
    this.faults.clear();
    for (const h of [...this.holds.keys()]) this.unpin(h);
    for (const s of [...this.cma.keys()]) this.cmaRelease(s);
    this.check();
    for (const ps of this.procs.values()) {
      for (const r of ps.regions.values()) {
        for (let page = 0; page < r.pages; page++) {
          if (expected(r, page) === "sigbus") continue;
          this.verified++;
          if (this.bytes) {
            const got = this.call(() => ps.p.read(r.addr + page * PAGE_SIZE, PAGE_SIZE), "strict")!;
            const dv = new DataView(got.buffer, got.byteOffset, 8);
            this.compare(r, page, dv.getUint32(0, true), dv.getUint32(4, true), "final read-back");
            this.zeroTail(got, page, "final read-back");
          } else {
            const t = this.call(() => ps.p.readTag(r.addr + page * PAGE_SIZE), "strict")!;
            this.compare(r, page, Number(t & 0xffffffffn), Number(t >> 32n), "final read-back");
          }
        }
      }
    }
    for (const f of this.files) {
      this.checkSize(f);
      for (let page = 0; page < f.size; page++) {
        this.verified++;
        this.readFilePage(f, page, true);
      }
    }
    this.check();
    for (const pid of [...this.procs.keys()]) this.exit(pid);
    for (const d of this.devices) {
      const ret = this.call(() => d.removeChunks(), "strict");
      if (ret !== 0) this.fail("invariant", `device ${d.minor} could not be released after every process exited (${ret})`);
    }
    for (const f of this.files) this.call(() => f.f.ftruncate(0), "strict");
    this.check();
    const inUse = this.m.zones().reduce((s, z) => s + z.managed - z.free, 0);
    if (inUse !== 0) this.fail("invariant", `after every process exited and every file was truncated, ${inUse} pages are still in use (a leak)`);
  }
}
