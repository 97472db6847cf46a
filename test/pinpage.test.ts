// The pin control subsystem (seed 003): subsystems hold pages with PG_pin, nest, pin in
// batches, and migration asks them to move instead of failing on their references.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, MEMORY_DEVICE_COHERENT, MIGRATE_VMA_SELECT_SYSTEM,
  type PinpageSystem, type Process,
} from "../src/index.js";
import { errorOf } from "./drivers.js";

const PG_pin = 22;
const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

function setup(pages = 8) {
  const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 1024 }] });
  const p = m.spawn();
  const base = p.mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < pages; i++) p.writeU32(base + i * PAGE_SIZE, 0xa000 + i);
  return { m, p, base };
}

/** A subsystem that remembers where its pages are (as a zram would its table). */
function tracker(m: Machine, name: string, refuse = () => false) {
  const table = new Map<number, number>();
  const calls: [number, number][] = [];
  const sys = m.registerPinpage<number>(name, {
    migrate(_s, pfn, newPfn) {
      calls.push([pfn, newPfn]);
      if (refuse()) return -16;
      for (const [slot, at] of table) if (at === pfn) table.set(slot, newPfn);
      return 0;
    },
  });
  return { sys, table, calls };
}

function hold(sys: PinpageSystem<number>, table: Map<number, number>, p: Process, addr: number, n: number, slot0: number): number[] {
  const pfns = [...sys.pinUserRange(p, addr, n)];
  pfns.forEach((pfn, i) => {
    table.set(slot0 + i, pfn);
  });
  return pfns;
}

function migrateAll(m: Machine, pfns: number[], node: number) {
  const mig = m.migrateDevicePfns(pfns);
  mig.allocAndCopy({ node });
  mig.finalize();
  return mig;
}

const nodeOf = (m: Machine, pfn: number): number => m.zones().find((z) => pfn >= z.start && pfn < z.end)!.node;

describe("pin control subsystem", () => {
  it("holds pages with PG_pin and a reference, batch by batch, as intervals", () => {
    const { m, p, base } = setup();
    const { sys } = tracker(m, "zram");
    const pfns = [...sys.pinUserRange(p, base, 8)];
    for (const pfn of pfns) {
      expect(m.page.testFlag(pfn, PG_pin)).toBe(true);
      expect(m.page.refcount(pfn)).toBe(2);
      expect(sys.findPage(pfn)).toBe(true);
    }
    expect(sys.size).toBe(8);
    expect(sys.held.intervals.length).toBeLessThanOrEqual(8);
    m.check();
    p.munmap(base, 8 * PAGE_SIZE);
    m.check(); // held only by the subsystem: not a leak
    const free = m.counters().nr_free_pages;
    sys.clearPinpages(pfns);
    expect(m.counters().nr_free_pages).toBe(free + 8);
    m.check();
  });

  it("migration moves held pages and tells the holder, where plain pins make it fail", () => {
    const { m, p, base } = setup();
    const { sys, table, calls } = tracker(m, "rdma-ctl");
    const held = hold(sys, table, p, base, 4, 0);
    const pinned = [...m.pinUserPages(p, base + 4 * PAGE_SIZE, 4)];
    const mig = migrateAll(m, [...held, ...pinned], 1);
    expect(mig.cpages).toBe(4);
    expect(calls.length).toBe(4);
    for (let i = 0; i < 4; i++) {
      const now = table.get(i)!;
      expect(now).not.toBe(held[i]);
      expect(nodeOf(m, now)).toBe(1);
      expect(pfnOf(p.pte(base + i * PAGE_SIZE))).toBe(now);
      expect(m.page.testFlag(now, PG_pin)).toBe(true);
      expect(new DataView(m.page.readBytes(now).buffer).getUint32(0, true)).toBe(0xa000 + i);
      expect(sys.findPage(now) && !sys.findPage(held[i]!)).toBe(true);
      expect(pfnOf(p.pte(base + (4 + i) * PAGE_SIZE))).toBe(pinned[i]);
    }
    m.check();
    m.unpinUserPages(pinned);
    sys.clearPinpages([...table.values()]);
    m.check();
  });

  it("nested holders all move; one refusal moves the others back and the page stays", () => {
    const { m, p, base } = setup();
    let refuse = false;
    const a = tracker(m, "a");
    const b = tracker(m, "b", () => refuse);
    const pfns = hold(a.sys, a.table, p, base, 2, 0);
    hold(b.sys, b.table, p, base, 2, 0);
    expect(m.page.refcount(pfns[0]!)).toBe(3);
    refuse = true;
    const mig = migrateAll(m, pfns, 1);
    expect(mig.cpages).toBe(2);
    expect(m.counters().pgmigrate_success).toBe(0);
    expect([...a.table.values()]).toEqual(pfns);
    expect(a.calls.length).toBe(4); // there and back, per page
    expect(pfnOf(p.pte(base))).toBe(pfns[0]);
    m.check();
    refuse = false;
    migrateAll(m, pfns, 1);
    const now = a.table.get(0)!;
    expect(b.table.get(0)).toBe(now);
    expect(m.page.refcount(now)).toBe(3);
    expect(p.readU32(base)).toBe(0xa000);
    m.check();
  });

  it("a migrate callback that throws counts as a refusal", () => {
    const { m, p, base } = setup();
    const sys = m.registerPinpage("thrower", { migrate: () => { throw new Error("no"); } });
    const pfns = [...sys.pinUserRange(p, base, 2)];
    migrateAll(m, pfns, 1);
    expect(sys.pages()).toEqual([...pfns].sort((x, y) => x - y));
    m.check();
  });

  it("subsystems may keep their own books (add/del/find)", () => {
    const { m, p, base } = setup();
    const mine = new Set<number>();
    const sys = m.registerPinpage("own", {
      addPage: (_s, pfn) => (mine.add(pfn), 0),
      delPage: (_s, pfn) => (mine.delete(pfn), 0),
      findPage: (_s, pfn) => mine.has(pfn),
      migrate: (_s, pfn, newPfn) => (mine.delete(pfn), mine.add(newPfn), 0),
    });
    const pfns = [...sys.pinUserRange(p, base, 3)];
    expect(sys.size).toBe(3);
    expect(sys.held.size).toBe(0);
    migrateAll(m, pfns, 1);
    expect([...mine].every((pfn) => nodeOf(m, pfn) === 1)).toBe(true);
    sys.clearPinpages([...mine]);
    m.check();
  });

  it("refuses bad input with a sentence and changes nothing", () => {
    const { m, p, base } = setup();
    const { sys } = tracker(m, "zswap");
    const pfns = [...sys.pinUserRange(p, base, 2)];
    const before = pfns.map((pfn) => m.page.refcount(pfn));
    expect(errorOf(() => sys.setPinpage(pfns[0]!)).code).toBe("EEXIST");
    expect(errorOf(() => sys.setPinpages([pfns[1]!, 0])).message).toMatch(/held by zswap already|reserved/);
    const free = m.zones()[1]!.start + 3;
    expect(errorOf(() => sys.setPinpages([free])).message).toMatch(/is free/);
    expect(errorOf(() => sys.setPinpages([5, 5])).message).toMatch(/repeats/);
    expect(errorOf(() => sys.clearPinpages([pfns[0]!, free])).message).toMatch(/not held by zswap/);
    expect(errorOf(() => m.page.put(pfns[0]!)).message).toMatch(/pin control/);
    expect(errorOf(() => sys.unregister()).code).toBe("EBUSY");
    expect(errorOf(() => m.registerPinpage("zswap", { migrate: () => 0 })).code).toBe("EEXIST");
    expect(errorOf(() => m.registerPinpage("x", {} as never)).message).toMatch(/migrate/);
    expect(errorOf(() => m.registerPinpage("y", { migrate: () => 0, addPage: () => 0 })).message).toMatch(/together/);
    expect(errorOf(() => sys.setPinpages([0])).message).toMatch(/pfns\[0\] = 0 is reserved/);
    expect(pfns.map((pfn) => m.page.refcount(pfn))).toEqual(before);
    m.check();
    sys.clearPinpages(pfns);
    sys.unregister();
    m.check();
  });

  it("an abort after the pages step gives the holds back to the old page, and the holders too", () => {
    const { m, p, base } = setup();
    const { sys, table } = tracker(m, "ab");
    const pfns = hold(sys, table, p, base, 2, 0);
    const mig = m.migrateDevicePfns(pfns);
    mig.allocAndCopy({ node: 1 });
    mig.pages();
    mig.abort();
    expect([...table.values()]).toEqual(pfns);
    for (const pfn of pfns) expect(m.page.testFlag(pfn, PG_pin) && sys.findPage(pfn)).toBe(true);
    m.check();
    sys.clearPinpages(pfns);
    m.check();
  });

  it("a findPage that throws keeps the page; the move-back gets the holder's priv", () => {
    const { m, p, base } = setup();
    const seen: unknown[] = [];
    const a = m.registerPinpage<string>("a", { migrate: (_s, _f, _t, priv) => (seen.push(priv), 0) });
    m.registerPinpage("b", { migrate: () => -16 });
    const pfns = [...a.pinUserRange(p, base, 1, "mine")];
    m.pinpageSystems[1]!.setPinpages(pfns);
    migrateAll(m, pfns, 1);
    expect(seen).toEqual(["mine", "mine"]);
    expect(a.findPage(pfns[0]!)).toBe(true);
    const books = new Set<number>();
    let burning = false;
    const own = m.registerPinpage("own", {
      addPage: (_s, pfn) => (books.add(pfn), 0), delPage: (_s, pfn) => (books.delete(pfn), 0), migrate: () => 0,
      findPage: (_s, pfn) => {
        if (burning) throw new Error("books on fire");
        return books.has(pfn);
      },
    });
    const q = [...own.pinUserRange(p, base + PAGE_SIZE, 1)];
    burning = true;
    migrateAll(m, q, 1);
    burning = false;
    expect(pfnOf(p.pte(base + PAGE_SIZE))).toBe(q[0]);
    expect(errorOf(() => own.unregister()).code).toBe("EBUSY");
    m.check();
  });

  it("refuses device pages: the pin control subsystem covers system RAM", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64 });
    const pg = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 64, owner: "cxl" });
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeU32(a, 1);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: "cxl" });
    mig.allocAndCopy(pg);
    mig.finalize();
    const dev = pfnOf(p.pte(a));
    expect(m.pagemapOf(dev)).toBe(pg);
    const { sys } = tracker(m, "dev");
    expect(errorOf(() => sys.setPinpages([dev])).message).toMatch(/is device memory; nothing was held/);
    m.check();
  });

  it("property: holds, migrations, munmap, fork and exit keep contents and invariants", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("hold" as const), sys: fc.nat(1), at: fc.nat(15), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ k: fc.constant("clear" as const), sys: fc.nat(1), at: fc.nat(15) }),
      fc.record({ k: fc.constant("migrate" as const), node: fc.nat(1) }),
      fc.record({ k: fc.constant("write" as const), at: fc.nat(15), v: fc.nat() }),
      fc.record({ k: fc.constant("pin" as const), at: fc.nat(15) }),
      fc.record({ k: fc.constant("unpin" as const) }),
      fc.constant({ k: "fork" as const }),
      fc.constant({ k: "munmap" as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const { m, p, base } = setup(16);
        const subs = [tracker(m, "s0"), tracker(m, "s1")];
        // What each subsystem expects to read through its pfn: slot (page) -> value.
        const shadow = Array.from({ length: 16 }, (_, i) => 0xa000 + i);
        const heldBy = subs.map(() => new Map<number, number>()); // slot -> value seen at hold time
        const pins: number[] = [];
        let mapped = true;
        let child: Process | null = null;
        for (const o of ops) {
          if (o.k === "hold" && mapped) {
            const sub = subs[o.sys]!;
            const n = Math.min(o.n, 16 - o.at);
            const slots = Array.from({ length: n }, (_, i) => o.at + i).filter((s) => !heldBy[o.sys]!.has(s));
            for (const s of slots) {
              const pfn = sub.sys.pinUserRange(p, base + s * PAGE_SIZE, 1)[0]!;
              sub.table.set(s, pfn);
              heldBy[o.sys]!.set(s, shadow[s]!);
            }
          } else if (o.k === "clear" && heldBy[o.sys]!.has(o.at)) {
            const sub = subs[o.sys]!;
            sub.sys.clearPinpage(sub.table.get(o.at)!);
            sub.table.delete(o.at);
            heldBy[o.sys]!.delete(o.at);
          } else if (o.k === "migrate") {
            const pfns = new Set<number>();
            for (const s of subs) for (const pfn of s.table.values()) pfns.add(pfn);
            if (mapped) for (let i = 0; i < 16; i++) pfns.add(pfnOf(p.pte(base + i * PAGE_SIZE)));
            pfns.delete(0);
            if (pfns.size) migrateAll(m, [...pfns], o.node);
          } else if (o.k === "write" && mapped) {
            p.writeU32(base + o.at * PAGE_SIZE, o.v);
            shadow[o.at] = o.v;
            // A private page written after a fork may have been copied: holders keep the old page.
          } else if (o.k === "pin" && mapped) {
            pins.push(m.pinUserPages(p, base + o.at * PAGE_SIZE, 1)[0]!);
          } else if (o.k === "unpin" && pins.length) {
            m.unpinUserPage(pins.pop()!);
          } else if (o.k === "fork" && mapped && !child) {
            child = p.fork();
          } else if (o.k === "munmap" && mapped) {
            p.munmap(base, 16 * PAGE_SIZE);
            mapped = false;
          }
          m.check();
          // Every holder reads through its own pfn what the page held when it last shared it.
          subs.forEach((s, k) => {
            for (const [slot, pfn] of s.table) {
              expect(s.sys.findPage(pfn)).toBe(true);
              expect(m.page.testFlag(pfn, PG_pin)).toBe(true);
              const mappedPfn = mapped ? pfnOf(p.pte(base + slot * PAGE_SIZE)) : -1;
              const v = new DataView(m.page.readBytes(pfn).buffer).getUint32(0, true);
              if (mappedPfn === pfn) expect(v).toBe(shadow[slot]);
              else expect(typeof heldBy[k]!.get(slot)).toBe("number");
            }
          });
        }
        if (mapped) for (let i = 0; i < 16; i++) expect(p.readU32(base + i * PAGE_SIZE)).toBe(shadow[i]);
        for (const pfn of pins) m.unpinUserPage(pfn);
        for (const s of subs) if (s.table.size) s.sys.clearPinpages([...s.table.values()]);
        m.check();
      }),
      { numRuns: 40 },
    );
  });
});
