// A shadow model of what user memory must contain, with the kernel's semantics, and a
// driver that runs one operation on both the emulator and the shadow and compares them.
// The shadow is kept per page: every mapped virtual page of every process has an Entry.
import { expect } from "vitest";
import {
  Machine, Process, MmError,
  PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC,
  MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_POPULATE,
  MREMAP_MAYMOVE, MREMAP_FIXED, MADV_DONTNEED, MADV_FREE,
  type AccessBatch, type MachineConfig, type InjectionSpec,
} from "../src/index.js";

export type Mode = "bytes" | "tags";
/** Page contents: bytes mode holds 4096 bytes (null = all zero), tags mode a 64-bit tag. */
export type PageData = Uint8Array | null | bigint;

/** A MAP_SHARED|MAP_ANONYMOUS object (a shmem file): its size in pages and its pages by index. */
export interface ShmObj {
  id: number;
  /** i_size, set by mmap from the mapping's length; mremap never changes it. */
  size: number;
  pages: Map<number, PageData>;
}

/** One mapped virtual page. */
export interface Entry {
  prot: number;
  /** The shared object and the page's index in it, or null for private memory. */
  obj: ShmObj | null;
  index: number;
  /** Private memory: the contents it may hold (more than one only after MADV_FREE under pressure). */
  alts: PageData[];
  /** MADV_FREE'd and not written since: reclaim may still discard it (reads as zero then). */
  lazy: boolean;
}

export class ShadowProc {
  readonly pages = new Map<number, Entry>();
  constructor(readonly p: Process) {}

  /** Mapped virtual page numbers, sorted. */
  vpns(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b);
  }
}

// ---- page contents ------------------------------------------------------------

export class Content {
  constructor(readonly mode: Mode) {}

  zero(): PageData {
    return this.mode === "bytes" ? null : 0n;
  }

  equal(a: PageData, b: PageData): boolean {
    if (this.mode === "tags") return a === b;
    if (a === b) return true;
    const x = (a as Uint8Array | null) ?? ZERO_PAGE;
    const y = (b as Uint8Array | null) ?? ZERO_PAGE;
    return Buffer.compare(x, y) === 0;
  }

  bytes(d: PageData, off: number, len: number): Uint8Array {
    const page = (d as Uint8Array | null) ?? ZERO_PAGE;
    return page.subarray(off, off + len);
  }

  withBytes(d: PageData, off: number, src: Uint8Array): PageData {
    const page = new Uint8Array(PAGE_SIZE);
    if (d) page.set(d as Uint8Array);
    page.set(src, off);
    return page;
  }

  /** The tag of a page: in bytes mode the little-endian u64 at offset 0, as the core keeps it. */
  tag(d: PageData): bigint {
    if (this.mode === "tags") return d as bigint;
    return new DataView(this.bytes(d, 0, 8).slice().buffer).getBigUint64(0, true);
  }

  withTag(d: PageData, tag: bigint): PageData {
    if (this.mode === "tags") return tag;
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, tag, true);
    return this.withBytes(d, 0, b);
  }

  show(d: PageData): string {
    if (this.mode === "tags") return `tag ${String(d)}`;
    if (!d) return "zero page";
    const b = d as Uint8Array;
    const nz = b.findIndex((x) => x !== 0);
    return nz < 0 ? "zero page" : `page with first non-zero byte ${b[nz]} at ${nz}`;
  }
}

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

/** Deterministic test data: `len` bytes from a seed, never all zero. */
export function pattern(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x >>> 16) & 0xff || 1;
  }
  return out;
}

// ---- CPU accesses ---------------------------------------------------------------

export type Access =
  | { k: "write"; addr: number; data: Uint8Array }
  | { k: "read"; addr: number; len: number }
  | { k: "writeU32"; addr: number; value: number }
  | { k: "readU32"; addr: number }
  | { k: "writeTag"; addr: number; tag: bigint }
  | { k: "readTag"; addr: number }
  | { k: "touch"; addr: number; npages: number; write: boolean; base: bigint };

/** The part of one access that falls in one page; `addr` is where the core reports a fault there. */
interface Step {
  vpn: number;
  addr: number;
  write: boolean;
  off: number;
  len: number;
  /** Offset of this part in the access's data or result. */
  at: number;
}

function byteSteps(addr: number, len: number, write: boolean): Step[] {
  const steps: Step[] = [];
  for (let done = 0; done < len; ) {
    const a = addr + done;
    const off = a % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - off, len - done);
    steps.push({ vpn: Math.floor(a / PAGE_SIZE), addr: a, write, off, len: chunk, at: done });
    done += chunk;
  }
  return steps;
}

function stepsOf(a: Access): Step[] {
  switch (a.k) {
    case "write": return byteSteps(a.addr, a.data.length, true);
    case "read": return byteSteps(a.addr, a.len, false);
    case "writeU32": return byteSteps(a.addr, 4, true);
    case "readU32": return byteSteps(a.addr, 4, false);
    case "writeTag":
    case "readTag":
      return [{ vpn: Math.floor(a.addr / PAGE_SIZE), addr: a.addr, write: a.k === "writeTag", off: 0, len: 8, at: 0 }];
    case "touch":
      return Array.from({ length: a.npages }, (_, k) => ({
        vpn: a.addr / PAGE_SIZE + k, addr: a.addr + k * PAGE_SIZE, write: a.write, off: 0, len: 0, at: k,
      }));
  }
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

export function showAccess(a: Access): string {
  switch (a.k) {
    case "write": return `write(0x${a.addr.toString(16)}, ${a.data.length} bytes)`;
    case "read": return `read(0x${a.addr.toString(16)}, ${a.len})`;
    case "writeU32": return `writeU32(0x${a.addr.toString(16)}, ${a.value})`;
    case "readU32": return `readU32(0x${a.addr.toString(16)})`;
    case "writeTag": return `writeTag(0x${a.addr.toString(16)}, ${a.tag}n)`;
    case "readTag": return `readTag(0x${a.addr.toString(16)})`;
    case "touch": return `touch(0x${a.addr.toString(16)}, ${a.npages}, ${a.write}, ${a.base}n)`;
  }
}

// ---- the driver -----------------------------------------------------------------

export interface ShadowOptions {
  /** Memory may run out: accesses, fork, spawn and mremap may fail with ENOMEM, MADV_FREE pages may be reclaimed. */
  small: boolean;
}

export class Shadow {
  readonly c: Content;
  readonly procs: ShadowProc[] = [];
  private nextObj = 1;
  /** Counters of what happened, to show that the runs reach the interesting paths. */
  readonly stats = { accesses: 0, faults: 0, enomem: 0, refused: 0, lazyAlts: 0, pageReads: 0 };

  constructor(readonly m: Machine, readonly mode: Mode, readonly opts: ShadowOptions) {
    this.c = new Content(mode);
  }

  private get small(): boolean {
    return this.opts.small;
  }

  // ---- helpers ----

  entryData(e: Entry): PageData[] {
    if (e.obj) return [e.obj.pages.get(e.index) ?? this.c.zero()];
    return e.alts;
  }

  private writeEntry(e: Entry, f: (d: PageData) => PageData): void {
    if (e.obj) {
      e.obj.pages.set(e.index, f(e.obj.pages.get(e.index) ?? this.c.zero()));
      return;
    }
    e.alts = this.dedupe(e.alts.map(f));
    e.lazy = false;
  }

  /** Narrows a page's possible contents to those `ok` accepts; fails when none does. */
  private observe(e: Entry, what: string, ok: (d: PageData) => boolean): void {
    const now = this.entryData(e);
    const keep = now.filter(ok);
    if (keep.length === 0)
      throw new Error(`content mismatch: ${what}; the shadow expects ${now.map((d) => this.c.show(d)).join(" or ")}`);
    if (e.obj) return;
    if (now.length > 1) this.stats.lazyAlts++;
    e.alts = e.lazy ? this.dedupe([...keep, this.c.zero()]) : keep;
  }

  private dedupe(list: PageData[]): PageData[] {
    const out: PageData[] = [];
    for (const d of list) if (!out.some((o) => this.c.equal(o, d))) out.push(d);
    return out;
  }

  private newEntry(prot: number, obj: ShmObj | null, index: number): Entry {
    return { prot, obj, index, alts: [this.c.zero()], lazy: false };
  }

  rangeFree(sp: ShadowProc, vpn: number, n: number): boolean {
    for (let i = 0; i < n; i++) if (sp.pages.has(vpn + i)) return false;
    return true;
  }

  rangeMapped(sp: ShadowProc, vpn: number, n: number): boolean {
    for (let i = 0; i < n; i++) if (!sp.pages.has(vpn + i)) return false;
    return true;
  }

  /**
   * Runs `fn`, which the shadow predicts succeeds (expected null) or fails with `expected`.
   * Returns the value, or undefined when it failed as predicted (or with an allowed ENOMEM).
   */
  private attempt<T>(what: string, fn: () => T, expected: string | null, mayEnomem = false): { ok: true; value: T } | { ok: false } {
    let value: T;
    try {
      value = fn();
    } catch (err) {
      if (!(err instanceof MmError)) throw err;
      if (err.code === expected) {
        this.stats.refused++;
        return { ok: false };
      }
      if (err.code === "ENOMEM" && mayEnomem && this.small) {
        this.stats.enomem++;
        return { ok: false };
      }
      throw new Error(`${what}: expected ${expected ?? "success"}, got ${err.message}`);
    }
    if (expected !== null) throw new Error(`${what}: expected ${expected}, but it succeeded (returned ${String(value)})`);
    return { ok: true, value };
  }

  // ---- processes ----

  spawn(): ShadowProc | undefined {
    const r = this.attempt("spawn()", () => this.m.spawn(), null, true);
    if (!r.ok) return undefined;
    const sp = new ShadowProc(r.value);
    this.procs.push(sp);
    return sp;
  }

  fork(sp: ShadowProc): ShadowProc | undefined {
    const r = this.attempt(`fork(pid ${sp.p.pid})`, () => sp.p.fork(), null, true);
    if (!r.ok) return undefined;
    const child = new ShadowProc(r.value);
    for (const [vpn, e] of sp.pages) child.pages.set(vpn, { ...e, alts: [...e.alts] });
    this.procs.push(child);
    return child;
  }

  exit(sp: ShadowProc): void {
    sp.p.exit();
    this.procs.splice(this.procs.indexOf(sp), 1);
    expect(sp.p.exited).toBe(true);
  }

  // ---- system calls ----

  /** mode 0: MAP_FIXED, 1: MAP_FIXED_NOREPLACE, 2: a hint only. */
  mmap(sp: ShadowProc, vpn: number, pages: number, prot: number, shared: boolean, mode: 0 | 1 | 2, populate: boolean): number | undefined {
    const flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS
      | (mode === 0 ? MAP_FIXED : mode === 1 ? MAP_FIXED_NOREPLACE : 0) | (populate ? MAP_POPULATE : 0);
    const free = this.rangeFree(sp, vpn, pages);
    const expected = mode === 1 && !free ? "EEXIST" : null;
    const what = `mmap(0x${(vpn * PAGE_SIZE).toString(16)}, ${pages} pages, prot ${prot}, flags 0x${flags.toString(16)})`;
    const r = this.attempt(what, () => sp.p.mmap(vpn * PAGE_SIZE, pages * PAGE_SIZE, prot, flags), expected);
    if (!r.ok) return undefined;
    const start = r.value / PAGE_SIZE;
    if (mode !== 2 || free) expect(start, `${what} address`).toBe(vpn);
    else expect(this.rangeFree(sp, start, pages), `${what} returned 0x${r.value.toString(16)}, which is not free`).toBe(true);
    const obj: ShmObj | null = shared ? { id: this.nextObj++, size: pages, pages: new Map() } : null;
    for (let i = 0; i < pages; i++) sp.pages.set(start + i, this.newEntry(prot, obj, i));
    return start;
  }

  munmap(sp: ShadowProc, vpn: number, pages: number): void {
    sp.p.munmap(vpn * PAGE_SIZE, pages * PAGE_SIZE);
    for (let i = 0; i < pages; i++) sp.pages.delete(vpn + i);
  }

  mprotect(sp: ShadowProc, vpn: number, pages: number, prot: number): void {
    const expected = this.rangeMapped(sp, vpn, pages) ? null : "ENOMEM";
    const r = this.attempt(`mprotect(0x${(vpn * PAGE_SIZE).toString(16)}, ${pages} pages, ${prot})`,
      () => sp.p.mprotect(vpn * PAGE_SIZE, pages * PAGE_SIZE, prot), expected);
    if (!r.ok) return;
    for (let i = 0; i < pages; i++) sp.pages.get(vpn + i)!.prot = prot;
  }

  madvise(sp: ShadowProc, vpn: number, pages: number, free: boolean): void {
    let expected: string | null = null;
    if (!this.rangeMapped(sp, vpn, pages)) expected = "ENOMEM";
    else if (free) {
      for (let i = 0; i < pages; i++) if (sp.pages.get(vpn + i)!.obj) expected = "EINVAL";
    }
    const what = `madvise(0x${(vpn * PAGE_SIZE).toString(16)}, ${pages} pages, ${free ? "MADV_FREE" : "MADV_DONTNEED"})`;
    const r = this.attempt(what, () => sp.p.madvise(vpn * PAGE_SIZE, pages * PAGE_SIZE, free ? MADV_FREE : MADV_DONTNEED), expected);
    if (!r.ok) return;
    for (let i = 0; i < pages; i++) {
      const e = sp.pages.get(vpn + i)!;
      if (e.obj) continue; // a shared page stays in its object
      if (!free) {
        e.alts = [this.c.zero()];
        e.lazy = false;
      } else if (this.small) {
        e.lazy = true;
        e.alts = this.dedupe([...e.alts, this.c.zero()]);
      }
    }
  }

  /** mode 0: no flags, 1: MREMAP_MAYMOVE, 2: MREMAP_MAYMOVE|MREMAP_FIXED to `destVpn`. Returns the touched ranges. */
  mremap(sp: ShadowProc, vpn: number, oldPages: number, newPages: number, mode: 0 | 1 | 2, destVpn: number): [number, number][] {
    const flags = mode === 0 ? 0 : mode === 1 ? MREMAP_MAYMOVE : MREMAP_MAYMOVE | MREMAP_FIXED;
    const what = `mremap(0x${(vpn * PAGE_SIZE).toString(16)}, ${oldPages} pages, ${newPages} pages, flags ${flags}` +
      (mode === 2 ? `, 0x${(destVpn * PAGE_SIZE).toString(16)})` : ")");
    // Which VMA holds the old range is the emulator's business (merging); the shadow checks
    // maps() against itself after every structural op, so it can use it here.
    const vma = sp.p.maps().find((v) => v.start <= vpn * PAGE_SIZE && vpn * PAGE_SIZE < v.end);
    const vmaEnd = vma ? vma.end / PAGE_SIZE : 0;
    let expected: string | null = null;
    let kind: "fixed" | "shrink" | "grow" | "move" = "move";
    if (!vma || vmaEnd < vpn + oldPages) expected = "EFAULT";
    else if (mode === 2) {
      kind = "fixed";
      if (destVpn < vpn + oldPages && vpn < destVpn + newPages) expected = "EINVAL";
    } else if (newPages <= oldPages) kind = "shrink";
    else if (vmaEnd === vpn + oldPages && this.rangeFree(sp, vmaEnd, newPages - oldPages)) kind = "grow";
    else if (mode === 0) expected = "ENOMEM";
    const r = this.attempt(what, () => sp.p.mremap(vpn * PAGE_SIZE, oldPages * PAGE_SIZE, newPages * PAGE_SIZE, flags, destVpn * PAGE_SIZE),
      expected, kind === "fixed" || kind === "move");
    if (!r.ok) return [[vpn, oldPages]];
    const got = r.value / PAGE_SIZE;
    const first = sp.pages.get(vpn)!;
    const tail = (i: number): Entry => this.newEntry(first.prot, first.obj, first.index + i);
    if (kind === "shrink") {
      expect(got, `${what} address`).toBe(vpn);
      for (let i = newPages; i < oldPages; i++) sp.pages.delete(vpn + i);
      return [[vpn, oldPages]];
    }
    if (kind === "grow") {
      expect(got, `${what} address`).toBe(vpn);
      for (let i = oldPages; i < newPages; i++) sp.pages.set(vpn + i, tail(i));
      return [[vpn, newPages]];
    }
    if (kind === "fixed") expect(got, `${what} address`).toBe(destVpn);
    else {
      // The kernel picks the new place with the old mapping still in place.
      expect(this.rangeFree(sp, got, newPages),
        `${what} moved to 0x${r.value.toString(16)}, which overlaps a mapping (the old range is 0x${(vpn * PAGE_SIZE).toString(16)}+${oldPages} pages)`).toBe(true);
    }
    const moved: Entry[] = [];
    for (let i = 0; i < Math.min(oldPages, newPages); i++) moved.push(sp.pages.get(vpn + i)!);
    for (let i = 0; i < oldPages; i++) sp.pages.delete(vpn + i);
    for (let i = 0; i < newPages; i++) sp.pages.set(got + i, i < moved.length ? moved[i]! : tail(i));
    return [[vpn, oldPages], [got, newPages]];
  }

  /** Calls that are refused with EINVAL; nothing may change. */
  badCall(sp: ShadowProc, variant: number, vpn: number): void {
    const a = vpn * PAGE_SIZE;
    const calls: [string, () => unknown][] = [
      ["munmap unaligned", () => sp.p.munmap(a + 12, PAGE_SIZE)],
      ["mprotect unknown prot", () => sp.p.mprotect(a, PAGE_SIZE, 0x10 | PROT_READ)],
      ["mmap zero length", () => sp.p.mmap(a, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)],
      ["mremap MREMAP_FIXED without MREMAP_MAYMOVE", () => sp.p.mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_FIXED, a + 64 * PAGE_SIZE)],
      ["madvise unknown advice", () => sp.p.madvise(a, PAGE_SIZE, 12345)],
      ["mmap neither shared nor private", () => sp.p.mmap(a, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS | MAP_FIXED)],
      ["munmap zero length", () => sp.p.munmap(a, 0)],
    ];
    const [what, fn] = calls[variant % calls.length]!;
    this.attempt(what, fn, "EINVAL");
  }

  // ---- CPU accesses ----

  private permFault(sp: ShadowProc, s: Step): "SEGV_MAPERR" | "SEGV_ACCERR" | "BUS_ADRERR" | null {
    const e = sp.pages.get(s.vpn);
    if (!e) return "SEGV_MAPERR";
    // x86: read, write or exec permission makes a page readable.
    if (s.write ? !(e.prot & PROT_WRITE) : !(e.prot & (PROT_READ | PROT_WRITE | PROT_EXEC))) return "SEGV_ACCERR";
    // shmem_get_folio_gfp refuses an index at or past i_size (-EINVAL: VM_FAULT_SIGBUS), as
    // in the part of a shared anonymous mapping that mremap grew past the object's size.
    if (e.obj && e.index >= e.obj.size) return "BUS_ADRERR";
    return null;
  }

  private applyStep(sp: ShadowProc, a: Access, s: Step): void {
    if (!s.write) return;
    const e = sp.pages.get(s.vpn)!;
    switch (a.k) {
      case "write": this.writeEntry(e, (d) => this.c.withBytes(d, s.off, a.data.subarray(s.at, s.at + s.len))); break;
      case "writeU32": this.writeEntry(e, (d) => this.c.withBytes(d, s.off, u32le(a.value).subarray(s.at, s.at + s.len))); break;
      case "writeTag": this.writeEntry(e, (d) => this.c.withTag(d, a.tag)); break;
      case "touch": this.writeEntry(e, (d) => this.c.withTag(d, a.base + BigInt(s.at))); break;
      default: break;
    }
  }

  private observeValue(sp: ShadowProc, a: Access, steps: Step[], value: number | bigint | Uint8Array | undefined): void {
    if (a.k === "read" || a.k === "readU32") {
      const bytes = a.k === "read" ? (value as Uint8Array) : u32le(value as number);
      for (const s of steps) {
        const got = bytes.subarray(s.at, s.at + s.len);
        this.observe(sp.pages.get(s.vpn)!, `pid ${sp.p.pid} ${showAccess(a)} at 0x${s.addr.toString(16)}`,
          (d) => Buffer.compare(this.c.bytes(d, s.off, s.len), got) === 0);
        this.stats.pageReads++;
      }
    } else if (a.k === "readTag") {
      const s = steps[0]!;
      this.observe(sp.pages.get(s.vpn)!, `pid ${sp.p.pid} ${showAccess(a)} returned ${String(value)}`, (d) => this.c.tag(d) === value);
      this.stats.pageReads++;
    }
  }

  private queue(b: AccessBatch, a: Access): void {
    switch (a.k) {
      case "write": b.write(a.addr, a.data); break;
      case "read": b.read(a.addr, a.len); break;
      case "writeU32": b.writeU32(a.addr, a.value); break;
      case "readU32": b.readU32(a.addr); break;
      case "writeTag": b.writeTag(a.addr, a.tag); break;
      case "readTag": b.readTag(a.addr); break;
      case "touch": b.touch(a.addr, a.npages, a.write, a.base); break;
    }
  }

  private single(p: Process, a: Access): number | bigint | Uint8Array | undefined {
    switch (a.k) {
      case "write": p.write(a.addr, a.data); return undefined;
      case "read": return p.read(a.addr, a.len);
      case "writeU32": p.writeU32(a.addr, a.value); return undefined;
      case "readU32": return p.readU32(a.addr);
      case "writeTag": p.writeTag(a.addr, a.tag); return undefined;
      case "readTag": return p.readTag(a.addr);
      case "touch": p.touch(a.addr, a.npages, a.write, a.base); return undefined;
    }
  }

  /**
   * Runs accesses (one through the Process helpers, several as one batch) and checks the
   * outcome against the shadow: which access faults, where, why; the values read; and applies
   * the writes that happened (all pages before a faulting one).
   */
  access(sp: ShadowProc, list: Access[], useBatch: boolean): void {
    let completed: number;
    let fault: MmError | undefined;
    let values: (number | bigint | Uint8Array | undefined)[] = [];
    if (list.length === 1 && !useBatch) {
      try {
        values = [this.single(sp.p, list[0]!)];
        completed = 1;
      } catch (err) {
        if (!(err instanceof MmError)) throw err;
        completed = 0;
        fault = err;
      }
    } else {
      const b = sp.p.batch();
      for (const a of list) this.queue(b, a);
      const r = sp.p.run(b);
      completed = r.completed;
      fault = r.fault;
      values = list.slice(0, completed).map((a, i) => (a.k.startsWith("read") ? b.value(i) : undefined));
    }
    const where = `pid ${sp.p.pid} ${list.map(showAccess).join("; ")}`;
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      const steps = stepsOf(a);
      const bad = steps.findIndex((s) => this.permFault(sp, s) !== null);
      if (i < completed) {
        if (bad >= 0) throw new Error(`${where}: access ${i} should fault (${this.permFault(sp, steps[bad]!)} at 0x${steps[bad]!.addr.toString(16)}) but completed`);
        this.stats.accesses++;
        for (const s of steps) this.applyStep(sp, a, s);
        this.observeValue(sp, a, steps, values[i]);
        continue;
      }
      if (!fault) throw new Error(`${where}: batch stopped at ${i} without a fault`);
      let stop: number;
      if (fault.code === "ENOMEM" && this.small) {
        this.stats.enomem++;
        stop = steps.findIndex((s) => s.addr === fault.value);
        if (stop < 0 || (bad >= 0 && stop > bad))
          throw new Error(`${where}: ENOMEM at ${String(fault.value)} is not where access ${i} could allocate`);
      } else {
        if (bad < 0) throw new Error(`${where}: access ${i} should complete but got ${fault.message}`);
        this.stats.faults++;
        const s = steps[bad]!;
        const si = this.permFault(sp, s);
        expect(fault.code, `${where}: ${fault.message}`).toBe(si === "BUS_ADRERR" ? "SIGBUS" : "SIGSEGV");
        expect(fault.fault, `${where}: ${fault.message}`).toEqual({ addr: s.addr, access: s.write ? "write" : "read", si_code: si });
        stop = bad;
      }
      for (let j = 0; j < stop; j++) this.applyStep(sp, a, steps[j]!);
      return;
    }
    if (completed !== list.length || fault) throw new Error(`${where}: completed ${completed} of ${list.length}, fault ${fault?.message}`);
  }

  /** Reads every page of [vpn, vpn+n) the process may read and compares; unmapped / PROT_NONE pages (and shared ones past the object's end) must fault. */
  verify(sp: ShadowProc, vpn: number, n: number): void {
    for (let v = vpn; v < vpn + n; v++) {
      const a: Access = this.mode === "bytes" && (v & 1) === 0
        ? { k: "read", addr: v * PAGE_SIZE, len: PAGE_SIZE }
        : { k: "readTag", addr: v * PAGE_SIZE + (v * 8) % PAGE_SIZE };
      this.access(sp, [a], false);
    }
  }

  /** Every mapped page of every process, reading PROT_NONE pages through a temporary PROT_READ. */
  verifyAll(): void {
    for (const sp of this.procs) {
      const vpns = sp.vpns();
      for (let i = 0; i < vpns.length; ) {
        let j = i;
        const prot = sp.pages.get(vpns[i]!)!.prot;
        while (j + 1 < vpns.length && vpns[j + 1] === vpns[j]! + 1 && sp.pages.get(vpns[j + 1]!)!.prot === prot) j++;
        const start = vpns[i]!;
        const n = j - i + 1;
        if (prot === PROT_NONE) {
          this.mprotect(sp, start, n, PROT_READ);
          this.m.check();
          this.verify(sp, start, n);
          this.mprotect(sp, start, n, PROT_NONE);
          this.m.check();
        } else {
          this.verify(sp, start, n);
        }
        i = j + 1;
      }
    }
  }

  /** The emulator's VMA list covers exactly the shadow's pages, with their protection and object offsets. */
  checkMaps(sp: ShadowProc): void {
    if (sp.p.exited) return;
    let pages = 0;
    let prevEnd = 0;
    for (const v of sp.p.maps()) {
      expect(v.start, `pid ${sp.p.pid} VMAs out of order`).toBeGreaterThanOrEqual(prevEnd);
      prevEnd = v.end;
      for (let a = v.start; a < v.end; a += PAGE_SIZE) {
        const e = sp.pages.get(a / PAGE_SIZE);
        const where = `pid ${sp.p.pid} VMA 0x${v.start.toString(16)}-0x${v.end.toString(16)} page 0x${a.toString(16)}`;
        if (!e) throw new Error(`${where} is mapped but the shadow has no page there`);
        expect(v.flags & 7, `${where} prot`).toBe(e.prot);
        expect(v.shared, `${where} shared`).toBe(e.obj !== null);
        if (e.obj) expect(v.pgoff + (a - v.start) / PAGE_SIZE, `${where} pgoff`).toBe(e.index);
        pages++;
      }
    }
    expect(pages, `pid ${sp.p.pid}: pages in VMAs vs shadow`).toBe(sp.pages.size);
  }
}

// ---- operation sequences ---------------------------------------------------------

/** All chosen addresses fall in a window of W pages from here, so operations collide. */
export const BASE_VPN = 0x10000;
export const MAX_PROCS = 5;

/** An address: a page of the window (kind 0), a mapped page (1), or a page holding written data (2). */
export interface Sel { kind: 0 | 1 | 2; n: number }

/** A CPU access to generate, at a page chosen by a selector of type S. */
export type AccSpec<S = Sel> =
  | { k: "write"; at: S; off: number; len: number; seed: number }
  | { k: "read"; at: S; off: number; len: number }
  | { k: "writeU32"; at: S; off: number; value: number }
  | { k: "readU32"; at: S; off: number }
  | { k: "writeTag"; at: S; off: number; tag: bigint }
  | { k: "readTag"; at: S; off: number }
  | { k: "touch"; at: S; npages: number; write: boolean; base: bigint };

export type Op =
  | { op: "mmap"; p: number; at: Sel; pages: number; prot: number; shared: boolean; mode: 0 | 1 | 2; populate: boolean }
  | { op: "munmap"; p: number; at: Sel; pages: number }
  | { op: "mprotect"; p: number; at: Sel; pages: number; prot: number }
  | { op: "madvise"; p: number; at: Sel; pages: number; free: boolean }
  | { op: "mremap"; p: number; at: Sel; oldPages: number; newPages: number; mode: 0 | 1 | 2; dest: Sel }
  | { op: "fork"; p: number; sample: number }
  | { op: "exit"; p: number }
  | { op: "spawn" }
  | { op: "access"; p: number; batch: boolean; list: AccSpec[] }
  | { op: "verify"; p: number; at: Sel; pages: number }
  | { op: "bad"; p: number; variant: number; at: Sel }
  /** Fills memory from a scratch mapping outside the window, then unmaps it (reclaim, ENOMEM). */
  | { op: "pressure"; p: number; pages: number; keep: boolean };

export interface RunConfig {
  mode: Mode;
  small: boolean;
  window: number;
  machine: MachineConfig;
  /** Faults armed before the first operation (machine.inject); they need `small` (ENOMEM allowed). */
  inject?: InjectionSpec[];
}

function resolve(sh: Shadow, sp: ShadowProc, s: Sel, window: number): number {
  let vpns = s.kind === 0 ? [] : sp.vpns();
  if (s.kind === 2) {
    const written = vpns.filter((v) => sh.entryData(sp.pages.get(v)!).some((d) => d !== null && d !== 0n));
    if (written.length > 0) vpns = written;
  }
  return vpns.length > 0 ? vpns[s.n % vpns.length]! : BASE_VPN + (s.n % window);
}

function toAccess(sh: Shadow, sp: ShadowProc, a: AccSpec, window: number): Access {
  return accessAt(resolve(sh, sp, a.at, window) * PAGE_SIZE, a);
}

/** The access `a` describes, at the page `addr` its selector chose. */
export function accessAt<S>(addr: number, a: AccSpec<S>): Access {
  switch (a.k) {
    case "write": return { k: "write", addr: addr + a.off, data: pattern(a.seed, a.len) };
    case "read": return { k: "read", addr: addr + a.off, len: a.len };
    case "writeU32": return { k: "writeU32", addr: addr + a.off, value: a.value };
    case "readU32": return { k: "readU32", addr: addr + a.off };
    case "writeTag": return { k: "writeTag", addr: addr + a.off, tag: a.tag };
    case "readTag": return { k: "readTag", addr: addr + a.off };
    case "touch": return { k: "touch", addr, npages: a.npages, write: a.write, base: a.base };
  }
}

/** The pages an access may have changed, to read back. */
function accessRange(a: Access): [number, number] {
  const first = Math.floor(a.addr / PAGE_SIZE);
  const len = a.k === "write" ? a.data.length : a.k === "read" ? a.len : a.k === "touch" ? a.npages * PAGE_SIZE : 8;
  const last = Math.floor((a.addr + len - 1) / PAGE_SIZE);
  return [first, last - first + 1];
}

function step(sh: Shadow, op: Op, cfg: RunConfig): void {
  const W = cfg.window;
  if (op.op === "spawn") {
    if (sh.procs.length < MAX_PROCS) sh.spawn();
    return;
  }
  if (sh.procs.length === 0 && !sh.spawn()) return;
  const sp = sh.procs[op.p % sh.procs.length]!;
  switch (op.op) {
    case "mmap": {
      const vpn = resolve(sh, sp, op.at, W);
      const start = sh.mmap(sp, vpn, op.pages, op.prot, op.shared, op.mode, op.populate);
      sh.m.check();
      sh.checkMaps(sp);
      sh.verify(sp, start ?? vpn, op.pages);
      return;
    }
    case "munmap": {
      const vpn = resolve(sh, sp, op.at, W);
      sh.munmap(sp, vpn, op.pages);
      sh.m.check();
      sh.checkMaps(sp);
      sh.verify(sp, vpn - 1, op.pages + 2);
      return;
    }
    case "mprotect": {
      const vpn = resolve(sh, sp, op.at, W);
      sh.mprotect(sp, vpn, op.pages, op.prot);
      sh.m.check();
      sh.checkMaps(sp);
      sh.verify(sp, vpn, op.pages);
      return;
    }
    case "madvise": {
      const vpn = resolve(sh, sp, op.at, W);
      sh.madvise(sp, vpn, op.pages, op.free);
      sh.m.check();
      sh.verify(sp, vpn, op.pages);
      return;
    }
    case "mremap": {
      const vpn = resolve(sh, sp, op.at, W);
      const ranges = sh.mremap(sp, vpn, op.oldPages, op.newPages, op.mode, resolve(sh, sp, op.dest, W));
      sh.m.check();
      sh.checkMaps(sp);
      for (const [v, n] of ranges) sh.verify(sp, v, n);
      return;
    }
    case "fork": {
      if (sh.procs.length >= MAX_PROCS) return;
      const child = sh.fork(sp);
      sh.m.check();
      if (!child) return;
      sh.checkMaps(child);
      const vpns = sp.vpns();
      for (let k = 0; k < Math.min(6, vpns.length); k++) {
        const v = vpns[(op.sample + k * 37) % vpns.length]!;
        sh.verify(child, v, 1);
        sh.verify(sp, v, 1);
      }
      sh.m.check();
      return;
    }
    case "exit":
      sh.exit(sp);
      sh.m.check();
      return;
    case "access": {
      const list = op.list.map((a) => toAccess(sh, sp, a, W));
      sh.access(sp, list, op.batch);
      sh.m.check();
      for (const a of list) {
        const [v, n] = accessRange(a);
        sh.verify(sp, v, n);
      }
      sh.m.check();
      return;
    }
    case "verify": {
      sh.verify(sp, resolve(sh, sp, op.at, W), op.pages);
      sh.m.check();
      return;
    }
    case "pressure": {
      const vpn = BASE_VPN + 4 * W;
      sh.mmap(sp, vpn, op.pages, PROT_READ | PROT_WRITE, false, 0, false);
      sh.m.check();
      sh.access(sp, [{ k: "touch", addr: vpn * PAGE_SIZE, npages: op.pages, write: true, base: 1n }], false);
      sh.m.check();
      if (!op.keep) sh.munmap(sp, vpn, op.pages);
      sh.m.check();
      return;
    }
    case "bad": {
      const vpn = resolve(sh, sp, op.at, W);
      sh.badCall(sp, op.variant, vpn);
      sh.m.check();
      sh.checkMaps(sp);
      sh.verify(sp, vpn, 2);
      return;
    }
  }
}

/** Totals over all runs of one property, to show what the runs reached. */
export type Totals = Shadow["stats"] & { runs: number; ops: number; lazyfreed: number; cowFaults: number; pages: number };

export function runSequence(ops: Op[], cfg: RunConfig, totals?: Totals): void {
  const m = Machine.create({ ...cfg.machine, content: cfg.mode });
  m.check();
  const start = m.counters();
  for (const spec of cfg.inject ?? []) m.inject.add(spec);
  const sh = new Shadow(m, cfg.mode, { small: cfg.small });
  sh.spawn();
  sh.spawn();
  for (const op of ops) {
    step(sh, op, cfg);
    if (!cfg.small) expect(m.counters().pglazyfreed, "nothing is reclaimed on a big machine").toBe(0);
  }
  sh.verifyAll();
  for (const sp of sh.procs) sh.checkMaps(sp);
  m.check();
  const end = m.counters();
  if (totals) {
    totals.runs++;
    totals.ops += ops.length;
    totals.lazyfreed += end.pglazyfreed;
    totals.cowFaults += end.cow_fault;
    totals.pages += sh.procs.reduce((s, sp) => s + sp.pages.size, 0);
    for (const k of Object.keys(sh.stats) as (keyof Shadow["stats"])[]) totals[k] += sh.stats[k];
  }
  while (sh.procs.length > 0) {
    sh.exit(sh.procs[0]!);
    m.check();
  }
  expect(m.procs).toHaveLength(0);
  const c = m.counters();
  expect(c.nr_anon_pages, "nr_anon_pages after every process exited").toBe(0);
  expect(c.nr_shmem, "nr_shmem after every process exited").toBe(0);
  expect(c.nr_free_pages, "nr_free_pages after every process exited").toBe(start.nr_free_pages);
  expect(c.nr_page_table_pages, "nr_page_table_pages after every process exited").toBe(start.nr_page_table_pages);
}

export function newTotals(): Totals {
  return { runs: 0, ops: 0, lazyfreed: 0, cowFaults: 0, pages: 0, accesses: 0, faults: 0, enomem: 0, refused: 0, lazyAlts: 0, pageReads: 0 };
}

