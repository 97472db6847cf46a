// Property test of GUP: random sequences of get/pin (short- and long-term, read and write),
// unpin/release (and refused releases), CPU writes, DMA writes into write-pinned pages,
// munmap, mmap over pinned pages, fork, exit and migration, against a shadow model of the
// contents and of which pfns are held. After every step: machine.check(), every resident
// page's contents, and every pin still the page its process maps (or, once unmapped, the
// page with the contents it had then). At the end every hold is released, every process
// exits, and no page is left in use.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MmError, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED,
  FOLL_WRITE, FOLL_LONGTERM, type Process,
} from "../src/index.js";

const W = 24; // private pages per process
const S = 8; // pages of the shared object
const PRIV = 0x10000000;
const SHM = 0x20000000;
const MAX_PROCS = 3;
const SCALE = Number(process.env.MMEMU_PROPERTY_SCALE ?? 1);

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

interface SProc {
  p: Process;
  /** Private pages mapped, by index, with the tag they hold (0n: never written). */
  priv: Map<number, bigint>;
}

interface Hold {
  kind: "pin" | "get";
  write: boolean;
  pfn: number;
  owner: SProc;
  idx: number;
  shared: boolean;
  /** Once the page is mapped nowhere it can be seen: the contents it must keep. */
  frozen: bigint | null;
}

type Op =
  | { op: "gup"; p: number; shared: boolean; at: number; len: number; pin: boolean; write: boolean; longterm: boolean }
  | { op: "unpin"; pick: number[]; dirty: boolean }
  | { op: "release"; pick: number[] }
  | { op: "badRelease"; pick: number; pin: boolean }
  | { op: "munmap"; p: number; at: number; len: number }
  | { op: "remap"; p: number; at: number; len: number }
  | { op: "fork"; p: number }
  | { op: "exit"; p: number }
  | { op: "write"; p: number; shared: boolean; at: number; tag: bigint }
  | { op: "dma"; pick: number; tag: bigint }
  | { op: "migrate"; p: number; shared: boolean; at: number; len: number };

interface Totals {
  pins: number; gets: number; unshared: number; longtermMoved: number; longtermRefused: number; frozen: number;
  forkCopies: number; migrated: number; migrationSkippedHeld: number; refused: number; dma: number;
}

class Run {
  readonly m = Machine.create({ nodes: [{ normal: 1024, movable: 512 }, { normal: 768 }], content: "tags" });
  readonly procs: SProc[] = [];
  readonly holds: Hold[] = [];
  /** The shared object's pages by index; null once no process maps it. */
  obj: bigint[] | null = new Array<bigint>(S).fill(0n);
  private nextTag = 1000n;

  constructor(readonly t: Totals) {
    const p = this.m.spawn();
    p.mmap(PRIV, W * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    p.mmap(SHM, S * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED);
    const sp: SProc = { p, priv: new Map() };
    for (let i = 0; i < W; i++) sp.priv.set(i, 0n);
    this.procs.push(sp);
    for (let i = 0; i < W; i += 2) this.cpuWrite(sp, false, i, this.tag());
  }

  private tag(): bigint {
    return this.nextTag++;
  }

  private addr(shared: boolean, idx: number): number {
    return (shared ? SHM : PRIV) + idx * PAGE_SIZE;
  }

  private proc(i: number): SProc {
    return this.procs[i % this.procs.length]!;
  }

  private cpuWrite(sp: SProc, shared: boolean, idx: number, tag: bigint): void {
    const r = sp.p.run((() => { const b = sp.p.batch(); b.writeTag(this.addr(shared, idx), tag); return b; })());
    if (!shared && !sp.priv.has(idx)) {
      expect(r.fault?.code).toBe("SIGSEGV");
      return;
    }
    expect(r.fault).toBeUndefined();
    if (shared) this.obj![idx] = tag;
    else sp.priv.set(idx, tag);
  }

  /**
   * Pins of a private page that (sp, idx) no longer maps: their contents freeze. (A FOLL_GET
   * reference promises no contents: after a COW its page may be another process's.)
   */
  private detach(sp: SProc, idx: number): void {
    for (const h of this.holds) {
      if (h.kind === "pin" && h.owner === sp && !h.shared && h.idx === idx && h.frozen === null) {
        h.frozen = sp.priv.get(idx) ?? 0n;
        this.t.frozen++;
      }
    }
  }

  step(op: Op): void {
    switch (op.op) {
      case "gup": return this.gup(op);
      case "unpin": {
        const pins = this.holds.filter((h) => h.kind === "pin");
        const chosen = [...new Set(op.pick.map((k) => pins[k % Math.max(1, pins.length)]).filter((h): h is Hold => !!h))];
        if (chosen.length === 0) return;
        const pfns = chosen.map((h) => h.pfn);
        if (op.dirty) this.m.unpinUserPagesDirtyLock(pfns, true);
        else this.m.unpinUserPages(pfns);
        this.drop(chosen);
        return;
      }
      case "release": {
        const gets = this.holds.filter((h) => h.kind === "get");
        const chosen = [...new Set(op.pick.map((k) => gets[k % Math.max(1, gets.length)]).filter((h): h is Hold => !!h))];
        if (chosen.length === 0) return;
        this.m.releasePages(chosen.map((h) => h.pfn));
        this.drop(chosen);
        return;
      }
      case "badRelease": return this.badRelease(op.pick, op.pin);
      case "munmap": {
        const sp = this.proc(op.p);
        const at = op.at % W;
        const len = Math.min(op.len, W - at);
        sp.p.munmap(this.addr(false, at), len * PAGE_SIZE);
        for (let i = at; i < at + len; i++) {
          this.detach(sp, i);
          sp.priv.delete(i);
        }
        return;
      }
      case "remap": {
        const sp = this.proc(op.p);
        const at = op.at % W;
        const len = Math.min(op.len, W - at);
        for (let i = at; i < at + len; i++) this.detach(sp, i);
        sp.p.mmap(this.addr(false, at), len * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
        for (let i = at; i < at + len; i++) sp.priv.set(i, 0n);
        return;
      }
      case "fork": {
        if (this.procs.length >= MAX_PROCS) return;
        const sp = this.proc(op.p);
        const child = sp.p.fork();
        this.procs.push({ p: child, priv: new Map(sp.priv) });
        for (const h of this.holds) {
          if (h.owner !== sp || h.shared || h.frozen !== null || h.kind !== "pin") continue;
          const va = this.addr(false, h.idx);
          expect(pfnOf(child.pte(va)), "a pinned page stays the parent's at fork").not.toBe(h.pfn);
          this.t.forkCopies++;
        }
        return;
      }
      case "exit": {
        if (this.procs.length <= 1) return;
        const sp = this.proc(op.p);
        for (const i of sp.priv.keys()) this.detach(sp, i);
        sp.p.exit();
        this.procs.splice(this.procs.indexOf(sp), 1);
        return;
      }
      case "write": {
        const sp = this.proc(op.p);
        this.cpuWrite(sp, op.shared, op.at % (op.shared ? S : W), op.tag);
        return;
      }
      case "dma": {
        const writers = this.holds.filter((h) => h.kind === "pin" && h.write);
        if (writers.length === 0) return;
        const h = writers[op.pick % writers.length]!;
        this.m.page.writeTag(h.pfn, op.tag);
        this.t.dma++;
        if (h.frozen !== null) h.frozen = op.tag;
        else if (h.shared) this.obj![h.idx] = op.tag;
        else h.owner.priv.set(h.idx, op.tag);
        // Other holds of the same page (frozen ones) see the write too.
        for (const o of this.holds) if (o.pfn === h.pfn && o.frozen !== null) o.frozen = op.tag;
        return;
      }
      case "migrate": return this.migrate(op);
    }
  }

  private gup(op: Extract<Op, { op: "gup" }>): void {
    const sp = this.proc(op.p);
    const n = op.shared ? S : W;
    const at = op.at % n;
    const len = Math.min(op.len, n - at);
    const start = this.addr(op.shared, at);
    const longterm = op.pin && op.longterm;
    const flags = (op.write ? FOLL_WRITE : 0) | (longterm ? FOLL_LONGTERM : 0);
    const before = Array.from({ length: len }, (_, i) => pfnOf(sp.p.pte(start + i * PAGE_SIZE)));
    const hole = !op.shared && Array.from({ length: len }, (_, i) => at + i).some((i) => !sp.priv.has(i));
    const migrated = this.m.counters().pgmigrate_success;
    let pfns: Uint32Array;
    try {
      pfns = op.pin ? this.m.pinUserPages(sp.p, start, len, flags) : this.m.getUserPages(sp.p, start, len, flags);
    } catch (e) {
      expect(e).toBeInstanceOf(MmError);
      const err = e as MmError;
      if (hole) {
        expect(err.code).toBe("EFAULT");
      } else {
        // A long-term pin fails only when a page to move out of ZONE_MOVABLE is held by GUP already.
        expect(longterm && err.code).toBe("ENOMEM");
        const held = new Set(this.holds.map((h) => h.pfn));
        const now = Array.from({ length: len }, (_, i) => pfnOf(sp.p.pte(start + i * PAGE_SIZE)));
        expect(now.some((pfn) => held.has(pfn) && this.zone(pfn) === "Movable")).toBe(true);
        this.t.longtermRefused++;
      }
      this.t.refused++;
      return;
    }
    expect(hole).toBe(false);
    if (longterm) this.t.longtermMoved += this.m.counters().pgmigrate_success - migrated;
    for (let i = 0; i < len; i++) {
      const pfn = pfns[i]!;
      const va = start + i * PAGE_SIZE;
      expect(pfn, "GUP returns the page the process maps").toBe(pfnOf(sp.p.pte(va)));
      if (longterm && pfn !== 0) expect(this.zone(pfn)).toBe("Normal");
      if (pfn === 0) {
        expect(op.write).toBe(false);
        continue;
      }
      if (op.pin && before[i] !== 0 && before[i] !== pfn) this.t.unshared++;
      this.holds.push({ kind: op.pin ? "pin" : "get", write: op.write, pfn, owner: sp, idx: at + i, shared: op.shared, frozen: null });
      if (op.pin) this.t.pins++;
      else this.t.gets++;
    }
  }

  private badRelease(pick: number, pin: boolean): void {
    // A page with no hold of that kind, or one more release of a held page than it has holds.
    const sp = this.proc(pick);
    const mine = this.holds.filter((h) => h.kind === (pin ? "pin" : "get"));
    let pfns: number[];
    if (mine.length > 0 && pick % 2 === 0) {
      const h = mine[pick % mine.length]!;
      pfns = [...mine.filter((x) => x.pfn === h.pfn).map((x) => x.pfn), h.pfn];
    } else {
      const held = new Set(mine.map((h) => h.pfn));
      const free = [...sp.priv.keys()].map((i) => pfnOf(sp.p.pte(this.addr(false, i)))).find((pfn) => pfn !== 0 && !held.has(pfn));
      if (free === undefined) return;
      pfns = [free];
    }
    const c = this.m.counters();
    const code = (() => {
      try {
        if (pin) this.m.unpinUserPages(pfns);
        else this.m.releasePages(pfns);
      } catch (e) {
        return (e as MmError).code;
      }
      return "none";
    })();
    expect(code).toBe("EINVAL");
    expect(this.m.counters()).toEqual(c);
    this.t.refused++;
  }

  private migrate(op: Extract<Op, { op: "migrate" }>): void {
    const sp = this.proc(op.p);
    const n = op.shared ? S : W;
    const at = op.at % n;
    const len = Math.min(op.len, n - at);
    const vas = Array.from({ length: len }, (_, i) => this.addr(op.shared, at + i));
    const pfns = vas.map((va) => pfnOf(sp.p.pte(va))).filter((pfn) => pfn !== 0);
    if (pfns.length === 0) return;
    const held = new Set(this.holds.map((h) => h.pfn));
    const target = this.m.core.pageNodeId(pfns[0]!) === 0 ? 1 : 0;
    const mig = this.m.migrateDevicePfns(pfns);
    pfns.forEach((pfn, i) => {
      if (held.has(pfn)) {
        expect(mig.src[i], `held pfn ${pfn} must not be collected`).toBe(0n);
        this.t.migrationSkippedHeld++;
      }
    });
    if (mig.cpages > 0) this.t.migrated += mig.allocAndCopy({ node: target });
    mig.finalize();
  }

  private drop(chosen: Hold[]): void {
    for (const h of chosen) this.holds.splice(this.holds.indexOf(h), 1);
  }

  private zone(pfn: number): string | undefined {
    return this.m.zones().find((z) => pfn >= z.start && pfn < z.end)?.name;
  }

  /** The invariants after a step: the machine's, the contents, and what the holds hold. */
  verify(): void {
    this.m.check();
    for (const sp of this.procs) {
      for (const [idx, tag] of sp.priv) {
        const pte = sp.p.pte(this.addr(false, idx));
        if (pte === 0n) expect(tag, `pid ${sp.p.pid} private page ${idx} is gone`).toBe(0n);
        else expect(this.m.page.readTag(pfnOf(pte)), `pid ${sp.p.pid} private page ${idx}`).toBe(tag);
      }
      for (let idx = 0; idx < S; idx++) {
        const pte = sp.p.pte(this.addr(true, idx));
        if (pte !== 0n) expect(this.m.page.readTag(pfnOf(pte)), `pid ${sp.p.pid} shared page ${idx}`).toBe(this.obj![idx]);
      }
    }
    for (const h of this.holds) {
      const what = `${h.kind} of pfn ${h.pfn} (pid ${h.owner.p.pid} ${h.shared ? "shared" : "private"} page ${h.idx})`;
      expect(this.m.page.refcount(h.pfn), what).toBeGreaterThan(0);
      if (h.frozen !== null) {
        expect(this.m.page.readTag(h.pfn), what).toBe(h.frozen);
      } else if (h.shared) {
        for (const sp of this.procs) {
          const pte = sp.p.pte(this.addr(true, h.idx));
          if (pte !== 0n) expect(pfnOf(pte), what).toBe(h.pfn);
        }
        expect(this.m.page.readTag(h.pfn), what).toBe(this.obj![h.idx]);
      } else if (h.kind === "pin") {
        expect(pfnOf(h.owner.p.pte(this.addr(false, h.idx))), `${what}: still the page the process maps`).toBe(h.pfn);
      }
    }
  }

  /** The end: every hold released, every process gone, no page left in use. */
  finish(): void {
    this.m.unpinUserPages(this.holds.filter((h) => h.kind === "pin").map((h) => h.pfn));
    this.m.releasePages(this.holds.filter((h) => h.kind === "get").map((h) => h.pfn));
    this.holds.length = 0;
    this.m.check();
    for (const sp of this.procs) sp.p.exit();
    this.m.check();
    const c = this.m.counters();
    expect(c.nr_free_pages).toBe(this.m.zones().reduce((s, z) => s + z.managed, 0));
    expect(c.nr_anon_pages + c.nr_shmem).toBe(0);
    expect(c.nr_foll_pin_acquired).toBe(c.nr_foll_pin_released);
  }

  /** The shared object dies with its last mapping: pins of its pages keep what it held. */
  afterStep(): void {
    if (this.obj && this.procs.length === 0) this.obj = null;
  }
}

const pSel = fc.nat(7);
const idx = fc.nat(63);
const lenArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }) });
const tagArb = fc.bigInt({ min: 1n, max: (1n << 62n) });
const picks = fc.array(fc.nat(99), { minLength: 1, maxLength: 4 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({
    op: fc.constant("gup" as const), p: pSel, shared: fc.nat(3).map((x) => x === 0), at: idx, len: lenArb,
    pin: fc.nat(2).map((x) => x > 0), write: fc.boolean(), longterm: fc.nat(3).map((x) => x === 0),
  }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("unpin" as const), pick: picks, dirty: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("release" as const), pick: picks }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("badRelease" as const), pick: fc.nat(99), pin: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("munmap" as const), p: pSel, at: idx, len: lenArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("remap" as const), p: pSel, at: idx, len: lenArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("fork" as const), p: pSel }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const), p: pSel }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("write" as const), p: pSel, shared: fc.nat(3).map((x) => x === 0), at: idx, tag: tagArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("dma" as const), pick: fc.nat(99), tag: tagArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("migrate" as const), p: pSel, shared: fc.nat(3).map((x) => x === 0), at: idx, len: lenArb }) },
);

describe("property: GUP against a shadow model of contents and holds", () => {
  it("random get/pin/unpin/release/munmap/fork/exit/write/migrate sequences", () => {
    const t: Totals = {
      pins: 0, gets: 0, unshared: 0, longtermMoved: 0, longtermRefused: 0, frozen: 0, forkCopies: 0, migrated: 0,
      migrationSkippedHeld: 0, refused: 0, dma: 0,
    };
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60, size: "max" }), (ops) => {
        const run = new Run(t);
        for (const op of ops) {
          run.step(op);
          run.afterStep();
          run.verify();
        }
        run.finish();
      }),
      { numRuns: Math.max(1, Math.round(40 * SCALE)), interruptAfterTimeLimit: SCALE > 1 ? 600_000 : 20_000 },
    );
    if (process.env.MMEMU_PROPERTY_SCALE) console.log(JSON.stringify(t));
    // The runs reach the paths they exist for.
    for (const [k, v] of Object.entries(t)) expect(v, k).toBeGreaterThan(0);
  });
});
