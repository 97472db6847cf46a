// Property test: random sequences of mmap/munmap/mprotect/mremap/fork/exit, reads and writes,
// set_mempolicy/mbind, mlock/munlock/mlockall/munlockall and move_pages/migrate_pages over a
// few processes, against a shadow model that knows every page's contents, the node its policy
// (or the last migration) put it on, and whether a locked VMA maps it; machine.check() and a
// full comparison after every operation. Memory is plentiful, so every placement is exact.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MmError, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, MAP_LOCKED,
  MREMAP_MAYMOVE, MREMAP_FIXED, VM_LOCKED, VM_WRITE, VM_READ, VM_SHARED, MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND,
  MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_F_ADDR, MCL_CURRENT, MCL_FUTURE,
  type Process, type ContentMode,
} from "../src/index.js";
import { PG_mlocked } from "../src/page.js";

const NNODES = 3;
const BASE = 0x20000;
const W = 40;
const EFAULT = -14;
const ENOENT = -2;
const EACCES = -13;
const EBUSY = -16;

// ---- the shadow ------------------------------------------------------------------------

interface Pol {
  mode: number;
  nodes: number;
}

class Page {
  constructor(public node: number, readonly index: number, public data: bigint) {}
}

/** A shared anonymous object: its pages by index. */
interface Obj {
  pages: Map<number, Page>;
}

interface Slot {
  prot: number;
  obj: Obj | null;
  /** Linear index: the object's for shared memory, the mapping's pgoff-based one for private. */
  index: number;
  mpol: Pol | null;
  locked: boolean;
  /** Private memory: its page, the zero page, or nothing present. */
  page: Page | "zero" | null;
  /** Shared memory: whether this process's PTE maps the object's page. */
  present: boolean;
}

interface SProc {
  p: Process;
  slots: Map<number, Slot>;
  task: Pol;
  defLocked: boolean;
  home: number;
}

const bit = (mask: number): number => 31 - Math.clz32(mask & -mask);

/** Where a fault (or a migration by policy) puts a page, with memory to spare everywhere. */
function place(pol: Pol, home: number, ilx: number): number {
  switch (pol.mode) {
    case MPOL_PREFERRED:
      return bit(pol.nodes);
    case MPOL_BIND:
      for (let i = 0; i < NNODES; i++) if (pol.nodes & (1 << ((home + i) % NNODES))) return (home + i) % NNODES;
      throw new Error("empty bind");
    case MPOL_INTERLEAVE: {
      let m = pol.nodes;
      for (let k = ilx % popcount(m); k > 0; k--) m &= m - 1;
      return bit(m);
    }
    default:
      return home;
  }
}

function popcount(m: number): number {
  let n = 0;
  for (; m; m &= m - 1) n++;
  return n;
}

/** mpol_new: what a (valid) mode and node list become. */
function effective(mode: number, nodes: number[]): Pol {
  const mask = nodes.reduce((a, n) => a | (1 << n), 0);
  if (mode === MPOL_PREFERRED) return mask ? { mode, nodes: mask & -mask } : { mode: MPOL_LOCAL, nodes: 0 };
  return { mode, nodes: mode === MPOL_DEFAULT || mode === MPOL_LOCAL ? 0 : mask };
}

class Shadow {
  readonly procs: SProc[] = [];
  readonly stats = { ops: 0, moved: 0, eacces: 0, ebusy: 0, eio: 0, mlocked: 0, cow: 0, errors: 0 };

  constructor(readonly m: Machine) {}

  pageOf(s: Slot): Page | null {
    if (s.obj) return s.present ? s.obj.pages.get(s.index)! : null;
    return s.page instanceof Page ? s.page : null;
  }

  *mappings(): Generator<[SProc, number, Slot]> {
    for (const sp of this.procs) for (const [vpn, s] of sp.slots) yield [sp, vpn, s];
  }

  mapcount(pg: Page): number {
    let n = 0;
    for (const [, , s] of this.mappings()) if (this.pageOf(s) === pg) n++;
    return n;
  }

  polOf(sp: SProc, s: Slot): Pol {
    return s.mpol ?? sp.task;
  }

  alloc(sp: SProc, s: Slot, data: bigint): Page {
    return new Page(place(this.polOf(sp, s), sp.home, s.index), s.index, data);
  }

  readFault(sp: SProc, s: Slot): void {
    if (s.obj) {
      if (!s.obj.pages.has(s.index)) s.obj.pages.set(s.index, this.alloc(sp, s, 0n));
      s.present = true;
    } else if (s.page === null) {
      s.page = "zero";
    }
  }

  writeFault(sp: SProc, s: Slot): Page {
    if (s.obj) {
      this.readFault(sp, s);
      return s.obj.pages.get(s.index)!;
    }
    if (!(s.page instanceof Page)) s.page = this.alloc(sp, s, 0n);
    else if (this.mapcount(s.page) > 1) {
      s.page = this.alloc(sp, s, s.page.data);
      this.stats.cow++;
    }
    return s.page;
  }

  /** populate_vma_page_range for one slot: write faults in private writable memory, else reads. */
  populate(sp: SProc, s: Slot): boolean {
    if (s.prot === PROT_NONE) return false;
    if (!s.obj && s.prot & PROT_WRITE) this.writeFault(sp, s);
    else this.readFault(sp, s);
    return true;
  }

  inRange(sp: SProc, at: number, n: number): [number, Slot][] {
    const out: [number, Slot][] = [];
    for (let v = at; v < at + n; v++) {
      const s = sp.slots.get(v);
      if (s) out.push([v, s]);
    }
    return out;
  }
}

// ---- operations -------------------------------------------------------------------------

/** A window slot: any (kind 0), a mapped one (1) or one with a page (2), the n-th of them. */
interface Sel {
  kind: number;
  n: number;
}

type Op =
  | { op: "mmap"; p: number; at: Sel; n: number; shared: boolean; prot: number; locked: boolean }
  | { op: "munmap" | "mlock" | "munlock"; p: number; at: Sel; n: number }
  | { op: "mprotect"; p: number; at: Sel; n: number; prot: number }
  | { op: "write"; p: number; at: Sel; tag: bigint }
  | { op: "read" | "fork" | "exit" | "munlockall"; p: number; at: Sel }
  | { op: "mbind"; p: number; at: Sel; n: number; mode: number; nodes: number[]; flags: number }
  | { op: "setpol"; p: number; mode: number; nodes: number[] }
  | { op: "mlockall"; p: number; flags: number }
  | { op: "move"; p: number; list: { at: Sel; off: number }[]; nodes: number[] | null; flags: number }
  | { op: "migrate"; p: number; from: number[]; to: number[]; flags: number }
  | { op: "mremap"; p: number; at: Sel; n: number; dest: Sel };

/** The window offset a selector names in `sp`. */
function offsetOf(sh: Shadow, sp: SProc, sel: Sel): number {
  const pick = sel.kind === 0 ? [] : [...sp.slots.entries()].filter(([, s]) => sel.kind === 1 || sh.pageOf(s) !== null).map(([v]) => v - BASE);
  return pick.length ? pick[sel.n % pick.length]! : sel.n % W;
}

const addrOf = (vpn: number): number => vpn * PAGE_SIZE;

/** Runs `call`, expecting an MmError with `code` when `code` is given, else success. */
function expectCall<T>(call: () => T, code: string | null): T | undefined {
  try {
    const r = call();
    expect(code).toBeNull();
    return r;
  } catch (e) {
    if (!(e instanceof MmError)) throw e;
    expect(e.code).toBe(code);
    return undefined;
  }
}

function step(sh: Shadow, op: Op): void {
  const { m } = sh;
  if (sh.procs.length === 0) return;
  const sp = sh.procs[op.p % sh.procs.length]!;
  const p = sp.p;
  sh.stats.ops++;
  const at = "at" in op ? offsetOf(sh, sp, op.at) : 0;
  switch (op.op) {
    case "mmap": {
      const vpn = BASE + at;
      const n = Math.min(op.n, W - at);
      const flags = (op.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED | (op.locked ? MAP_LOCKED : 0);
      p.mmap(addrOf(vpn), n * PAGE_SIZE, op.prot, flags);
      const obj = op.shared ? { pages: new Map<number, Page>() } : null;
      for (let i = 0; i < n; i++) {
        const s: Slot = { prot: op.prot, obj, index: obj ? i : vpn + i, mpol: null, locked: op.locked || sp.defLocked, page: null, present: false };
        sp.slots.set(vpn + i, s);
      }
      if (op.locked || sp.defLocked) for (let i = 0; i < n; i++) sh.populate(sp, sp.slots.get(vpn + i)!);
      return;
    }
    case "munmap": {
      const vpn = BASE + at;
      p.munmap(addrOf(vpn), op.n * PAGE_SIZE);
      for (let i = 0; i < op.n; i++) sp.slots.delete(vpn + i);
      return;
    }
    case "mprotect": {
      const vpn = BASE + at;
      const slots = sh.inRange(sp, vpn, op.n);
      if (expectCall(() => p.mprotect(addrOf(vpn), op.n * PAGE_SIZE, op.prot), slots.length === op.n ? null : "ENOMEM") === undefined && slots.length !== op.n) return;
      for (const [, s] of slots) {
        const populate = s.locked && !s.obj && !(s.prot & PROT_WRITE) && op.prot & PROT_WRITE;
        s.prot = op.prot;
        if (populate) sh.writeFault(sp, s);
      }
      return;
    }
    case "write": {
      const s = sp.slots.get(BASE + at);
      const ok = s !== undefined && (s.prot & PROT_WRITE) !== 0;
      const r = p.run((() => {
        const b = p.batch();
        b.writeTag(addrOf(BASE + at), op.tag);
        return b;
      })());
      expect(r.fault?.code ?? null).toBe(ok ? null : "SIGSEGV");
      if (ok) sh.writeFault(sp, s).data = op.tag;
      return;
    }
    case "read": {
      const s = sp.slots.get(BASE + at);
      const ok = s !== undefined && s.prot !== PROT_NONE;
      const b = p.batch();
      b.readTag(addrOf(BASE + at));
      const r = p.run(b);
      expect(r.fault?.code ?? null).toBe(ok ? null : "SIGSEGV");
      if (!ok) return;
      sh.readFault(sp, s);
      expect(b.value(0)).toBe(sh.pageOf(s)?.data ?? 0n);
      return;
    }
    case "fork": {
      if (sh.procs.length >= 4) return;
      const c = p.fork();
      const slots = new Map<number, Slot>();
      for (const [vpn, s] of sp.slots) slots.set(vpn, { ...s, locked: false, present: s.obj ? false : s.present });
      sh.procs.push({ p: c, slots, task: sp.task, defLocked: false, home: sp.home });
      return;
    }
    case "exit": {
      if (sh.procs.length <= 1) return;
      p.exit();
      sh.procs.splice(sh.procs.indexOf(sp), 1);
      return;
    }
    case "setpol":
      m.setMempolicy(p, op.mode, op.nodes);
      sp.task = effective(op.mode, op.nodes);
      return;
    case "mbind":
      return mbind(sh, sp, op, at);
    case "mlock":
    case "munlock": {
      const vpn = BASE + at;
      const slots = sh.inRange(sp, vpn, op.n);
      const call = op.op === "mlock" ? () => m.mlock(p, addrOf(vpn), op.n * PAGE_SIZE) : () => m.munlock(p, addrOf(vpn), op.n * PAGE_SIZE);
      if (slots.length !== op.n) {
        expectCall(call, "ENOMEM");
        sh.stats.errors++;
        return;
      }
      for (const [, s] of slots) s.locked = op.op === "mlock";
      // Populating stops at the first PROT_NONE page, an ENOMEM.
      const stops = op.op === "mlock" && slots.some(([, s]) => s.prot === PROT_NONE);
      expectCall(call, stops ? "ENOMEM" : null);
      if (op.op === "mlock") for (const [, s] of slots) if (!sh.populate(sp, s)) break;
      return;
    }
    case "mlockall":
      m.mlockall(p, op.flags);
      sp.defLocked = (op.flags & MCL_FUTURE) !== 0;
      if (op.flags & MCL_CURRENT) {
        const all = [...sp.slots.entries()].sort((a, b) => a[0] - b[0]);
        for (const [, s] of all) s.locked = true;
        for (const [, s] of all) sh.populate(sp, s);
      }
      return;
    case "munlockall":
      m.munlockall(p);
      sp.defLocked = false;
      for (const s of sp.slots.values()) s.locked = false;
      return;
    case "move":
      return movePages(sh, sp, op, op.list.map((e) => offsetOf(sh, sp, e.at)));
    case "migrate":
      return migratePages(sh, sp, op);
    case "mremap":
      return mremap(sp, op, at, offsetOf(sh, sp, { kind: 0, n: op.dest.n }));
  }
}

function mbind(sh: Shadow, sp: SProc, op: Extract<Op, { op: "mbind" }>, at: number): void {
  const { m, p } = { m: sh.m, p: sp.p };
  const vpn = BASE + at;
  const slots = sh.inRange(sp, vpn, op.n);
  const call = (): void => m.mbind(p, addrOf(vpn), op.n * PAGE_SIZE, op.mode, op.nodes, op.flags);
  if (slots.length === 0 || (op.mode !== MPOL_DEFAULT && slots.length !== op.n)) {
    expectCall(call, "EFAULT");
    sh.stats.errors++;
    return;
  }
  const pol = effective(op.mode, op.nodes);
  const userMask = op.nodes.reduce((a, n) => a | (1 << n), 0);
  const strict = (op.flags & MPOL_MF_STRICT) !== 0 && op.mode !== MPOL_DEFAULT;
  const move = (op.flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) !== 0;
  const misplaced = (pg: Page | null): pg is Page => pg !== null && !(userMask & (1 << pg.node));
  if (strict && !move && slots.some(([, s]) => misplaced(sh.pageOf(s)))) {
    expectCall(call, "EIO");
    sh.stats.eio++;
    return;
  }
  call();
  const mpol = op.mode === MPOL_DEFAULT ? null : pol;
  for (const [, s] of slots) {
    s.mpol = mpol;
    if (!s.obj) continue;
    for (const [, , o] of sh.mappings()) if (o.obj === s.obj && o.index === s.index) o.mpol = mpol;
  }
  if (!move) return;
  const target = op.mode === MPOL_DEFAULT ? sp.task : pol;
  for (const [, s] of slots) {
    const pg = sh.pageOf(s);
    if (!misplaced(pg)) continue;
    if (!(op.flags & MPOL_MF_MOVE_ALL) && sh.mapcount(pg) > 1) continue;
    pg.node = place(target, sp.home, pg.index);
    sh.stats.moved++;
  }
}

function movePages(sh: Shadow, sp: SProc, op: Extract<Op, { op: "move" }>, ats: number[]): void {
  const addrs = op.list.map((e, i) => addrOf(BASE + ats[i]!) + e.off);
  const r = sh.m.movePages(sp.p, addrs, op.nodes, op.flags);
  const status = (s: Slot | undefined): number | Page => {
    if (!s) return EFAULT;
    if (!s.obj && s.page === "zero") return EFAULT;
    return sh.pageOf(s) ?? ENOENT;
  };
  const want: number[] = [];
  for (let i = 0; i < op.list.length; ) {
    let j = i;
    while (j < op.list.length && op.nodes !== null && op.nodes[j] === op.nodes[i]) j++;
    if (op.nodes === null) j = op.list.length;
    const seen = new Set<Page>();
    const moved: Page[] = [];
    for (let k = i; k < j; k++) {
      const st = status(sp.slots.get(BASE + ats[k]!));
      if (typeof st === "number") want.push(st);
      else if (op.nodes === null || st.node === op.nodes[k]) want.push(st.node);
      else if (!(op.flags & MPOL_MF_MOVE_ALL) && sh.mapcount(st) > 1) want.push(EACCES);
      else if (seen.has(st)) want.push(EBUSY);
      else {
        seen.add(st);
        moved.push(st);
        want.push(op.nodes[k]!);
      }
    }
    for (const pg of moved) pg.node = op.nodes![i]!;
    sh.stats.moved += moved.length;
    i = j;
  }
  sh.stats.eacces += want.filter((s) => s === EACCES).length;
  sh.stats.ebusy += want.filter((s) => s === EBUSY).length;
  expect(r).toEqual({ status: want, notMigrated: 0 });
}

function migratePages(sh: Shadow, sp: SProc, op: Extract<Op, { op: "migrate" }>): void {
  expect(sh.m.migratePages(sp.p, op.from, op.to, op.flags)).toBe(0);
  const from = op.from.reduce((a, n) => a | (1 << n), 0);
  const to = op.to.reduce((a, n) => a | (1 << n), 0);
  const remap = (s: number): number => {
    let k = popcount(from & ((1 << s) - 1)) % popcount(to);
    let mm = to;
    for (; k > 0; k--) mm &= mm - 1;
    return bit(mm);
  };
  const pages = [...sp.slots.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => sh.pageOf(s)).filter((pg): pg is Page => pg !== null);
  let tmp = from;
  while (tmp) {
    let source = -1;
    let dest = 0;
    for (let s = 0; s < NNODES; s++) {
      if (!(tmp & (1 << s)) || (popcount(from) !== popcount(to) && to & (1 << s))) continue;
      const d = remap(s);
      if (s === d) continue;
      source = s;
      dest = d;
      if (!(tmp & (1 << d))) break;
    }
    if (source < 0) break;
    tmp &= ~(1 << source);
    const moving = new Set(pages.filter((pg) => pg.node === source && (op.flags & MPOL_MF_MOVE_ALL || sh.mapcount(pg) === 1)));
    for (const pg of moving) pg.node = dest;
    sh.stats.moved += moving.size;
  }
}

function mremap(sp: SProc, op: Extract<Op, { op: "mremap" }>, at: number, destAt: number): void {
  const vpn = BASE + at;
  const vma = sp.p.maps().find((v) => v.start <= addrOf(vpn) && addrOf(vpn) < v.end);
  if (!vma) {
    expectCall(() => sp.p.mremap(addrOf(vpn), PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, addrOf(BASE + destAt)), "EFAULT");
    return;
  }
  const n = Math.min(op.n, vma.end / PAGE_SIZE - vpn);
  let dest = -1;
  for (let d = BASE + destAt; d + n <= BASE + W && dest < 0; d++) {
    if (Array.from({ length: n }, (_, i) => d + i).every((x) => !sp.slots.has(x))) dest = d;
  }
  if (dest < 0) return;
  expect(sp.p.mremap(addrOf(vpn), n * PAGE_SIZE, n * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, addrOf(dest))).toBe(addrOf(dest));
  const moved = Array.from({ length: n }, (_, i) => sp.slots.get(vpn + i)!);
  for (let i = 0; i < n; i++) sp.slots.delete(vpn + i);
  moved.forEach((s, i) => sp.slots.set(dest + i, s));
}

// ---- verification -----------------------------------------------------------------------

function verify(sh: Shadow): void {
  const { m } = sh;
  m.check();
  const pfnOfPage = new Map<Page, number>();
  const pageOfPfn = new Map<number, Page>();
  const lockedPages = new Set<Page>();
  for (const [, , s] of sh.mappings()) if (s.locked && sh.pageOf(s)) lockedPages.add(sh.pageOf(s)!);
  for (const sp of sh.procs) {
    const p = sp.p;
    expect(m.getMempolicy(p)).toEqual({ mode: sp.task.mode, nodes: maskNodes(sp.task.nodes) });
    let mapped = 0;
    for (const v of p.maps()) {
      for (let a = v.start; a < v.end; a += PAGE_SIZE) {
        const s = sp.slots.get(a / PAGE_SIZE);
        expect(s, `proc ${p.pid} maps ${a.toString(16)}`).toBeDefined();
        const prot = (v.flags & VM_READ ? PROT_READ : 0) | (v.flags & VM_WRITE ? PROT_WRITE : 0);
        expect([a, prot, (v.flags & VM_LOCKED) !== 0, (v.flags & VM_SHARED) !== 0]).toEqual([a, s!.prot, s!.locked, s!.obj !== null]);
        mapped++;
      }
    }
    expect(mapped).toBe(sp.slots.size);
    for (const [vpn, s] of sp.slots) {
      const addr = addrOf(vpn);
      const pol = s.mpol ?? { mode: MPOL_DEFAULT, nodes: 0 };
      expect([vpn, m.getMempolicy(p, addr, MPOL_F_ADDR)]).toEqual([vpn, { mode: pol.mode, nodes: maskNodes(pol.nodes) }]);
      const pte = p.pte(addr);
      const pfn = Number((pte >> 12n) & 0xffffffffffn);
      const pg = sh.pageOf(s);
      if (!s.obj && s.page === "zero") {
        // The special PTE of the zero page, present or PROT_NONE.
        expect([vpn, (pte & 0x200n) !== 0n, (pte & 0x101n) !== 0n, pfn]).toEqual([vpn, true, true, 0]);
        continue;
      }
      if (!pg) {
        expect([vpn, pte]).toEqual([vpn, 0n]);
        continue;
      }
      // Present, or PROT_NONE (which the kernel counts as present).
      expect([vpn, (pte & 0x101n) !== 0n]).toEqual([vpn, true]);
      if (pfnOfPage.has(pg)) expect([vpn, pfn]).toEqual([vpn, pfnOfPage.get(pg)]);
      else {
        expect(pageOfPfn.has(pfn)).toBe(false);
        pfnOfPage.set(pg, pfn);
        pageOfPfn.set(pfn, pg);
      }
      expect([vpn, m.pfnToNid(pfn), m.page.readTag(pfn)]).toEqual([vpn, pg.node, pg.data]);
      expect([vpn, m.page.testFlag(pfn, PG_mlocked)]).toEqual([vpn, lockedPages.has(pg)]);
    }
  }
  expect(m.counters().nr_mlock).toBe(lockedPages.size);
  sh.stats.mlocked += lockedPages.size;
}

const maskNodes = (mask: number): number[] => [0, 1, 2].filter((n) => mask & (1 << n));

// ---- generators ---------------------------------------------------------------------------

const pidArb = fc.nat(7);
const atArb: fc.Arbitrary<Sel> = fc.record({ kind: fc.nat(9).map((x) => (x < 4 ? 2 : x < 8 ? 1 : 0)), n: fc.nat(1000) });
const freeArb: fc.Arbitrary<Sel> = fc.record({ kind: fc.constant(0), n: fc.nat(W - 1) });
const nArb = fc.integer({ min: 1, max: 8 });
const nodesArb = fc.subarray([0, 1, 2], { minLength: 1 });
const policyArb = fc.oneof(
  fc.record({ mode: fc.constantFrom(MPOL_BIND, MPOL_INTERLEAVE), nodes: nodesArb }),
  fc.record({ mode: fc.constant(MPOL_PREFERRED), nodes: fc.subarray([0, 1, 2]) }),
  fc.record({ mode: fc.constantFrom(MPOL_DEFAULT, MPOL_LOCAL), nodes: fc.constant<number[]>([]) }),
);
const protArb = fc.constantFrom(PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("mmap" as const), p: pidArb, at: freeArb, n: nArb, shared: fc.nat(2).map((x) => x === 0), prot: protArb, locked: fc.nat(4).map((x) => x === 0) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("munmap" as const), p: pidArb, at: atArb, n: nArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("mprotect" as const), p: pidArb, at: atArb, n: nArb, prot: protArb }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant("write" as const), p: pidArb, at: atArb, tag: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("read" as const), p: pidArb, at: atArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("fork" as const), p: pidArb, at: freeArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const), p: pidArb, at: freeArb }) },
  { weight: 4, arbitrary: fc.tuple(pidArb, atArb, nArb, policyArb, fc.constantFrom(0, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, MPOL_MF_STRICT | MPOL_MF_MOVE))
    .map(([p, at, n, pol, flags]) => ({ op: "mbind" as const, p, at, n, mode: pol.mode, nodes: pol.nodes, flags })) },
  { weight: 1, arbitrary: fc.tuple(pidArb, policyArb).map(([p, pol]) => ({ op: "setpol" as const, p, mode: pol.mode, nodes: pol.nodes })) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("mlock" as const, "munlock" as const), p: pidArb, at: atArb, n: nArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("mlockall" as const), p: pidArb, flags: fc.constantFrom(MCL_CURRENT, MCL_FUTURE, MCL_CURRENT | MCL_FUTURE) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("munlockall" as const), p: pidArb, at: freeArb }) },
  { weight: 4, arbitrary: fc.tuple(pidArb, fc.array(fc.record({ at: atArb, off: fc.nat(PAGE_SIZE - 1) }), { minLength: 1, maxLength: 8 }), fc.boolean(), fc.array(fc.nat(2), { minLength: 8, maxLength: 8 }), fc.constantFrom(0, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL))
    .map(([p, list, query, nodes, flags]) => ({ op: "move" as const, p, list, nodes: query ? null : nodes.slice(0, list.length), flags })) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("migrate" as const), p: pidArb, from: fc.subarray([0, 1, 2]), to: nodesArb, flags: fc.constantFrom(MPOL_MF_MOVE, MPOL_MF_MOVE_ALL) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("mremap" as const), p: pidArb, at: atArb, n: nArb, dest: freeArb }) },
);

const RW = PROT_READ | PROT_WRITE;
const at = (n: number): Sel => ({ kind: 0, n });

/** Every run starts from a private and a shared mapping in process 0 and a private one in process 1, all written. */
const PRELUDE: Op[] = [
  { op: "mmap", p: 0, at: at(0), n: 8, shared: false, prot: RW, locked: false },
  { op: "mmap", p: 0, at: at(12), n: 6, shared: true, prot: RW, locked: false },
  { op: "mmap", p: 1, at: at(24), n: 6, shared: false, prot: RW, locked: false },
  ...[0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17].map((n): Op => ({ op: "write", p: 0, at: at(n), tag: BigInt(n + 1) })),
  ...[24, 25, 26, 27, 28].map((n): Op => ({ op: "write", p: 1, at: at(n), tag: BigInt(n + 1) })),
];

function run(ops: Op[], content: ContentMode, totals: Shadow["stats"]): void {
  const m = Machine.create({ nodes: Array.from({ length: NNODES }, () => ({ normal: 768 })), content });
  const sh = new Shadow(m);
  for (let i = 0; i < 2; i++) sh.procs.push({ p: m.spawn({ node: i }), slots: new Map(), task: { mode: MPOL_DEFAULT, nodes: 0 }, defLocked: false, home: i });
  for (const op of PRELUDE) step(sh, op);
  for (const op of ops) {
    step(sh, op);
    verify(sh);
  }
  for (const k of Object.keys(totals) as (keyof Shadow["stats"])[]) totals[k] += sh.stats[k];
}

/** MMEMU_PROPERTY_SCALE=20 runs twenty times as many sequences (for bug hunting). */
const SCALE = Number(process.env.MMEMU_PROPERTY_SCALE ?? 1);

describe("property: NUMA policy, migration and mlock against a shadow model", () => {
  // Paths each mode must reach (the rarer ones only where the runs are many).
  const reach = { tags: ["moved", "eacces", "mlocked", "cow", "errors"], bytes: ["moved", "mlocked", "cow", "errors"] } as const;
  for (const [content, runs] of [["tags", 40], ["bytes", 15]] as const) {
    it(`${content} mode`, () => {
      const totals = { ops: 0, moved: 0, eacces: 0, ebusy: 0, eio: 0, mlocked: 0, cow: 0, errors: 0 };
      fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 50, size: "max" }), (ops) => run(ops, content, totals)), {
        numRuns: Math.max(1, Math.round(runs * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 30_000,
      });
      if (process.env.MMEMU_PROPERTY_SCALE) console.log(`${content}: ${JSON.stringify(totals)}`);
      // The runs reach what they exist for.
      for (const k of reach[content]) expect(totals[k], k).toBeGreaterThan(0);
    });
  }
});
