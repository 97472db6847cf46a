// Read-only migration entries (seed 004): setup write-protects the collected PTEs in every
// process instead of unmapping them; readers see the old page during the copy, writers wait
// (EBUSY with the page to wait on) and, after finalize, write the new page. Abort and failed
// entries restore the old PTEs with their write permission. machine.check() accepts the
// state only while the migration is in flight.
import { describe, it, expect } from "vitest";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MEMORY_DEVICE_COHERENT, MIGRATE_VMA_SELECT_SYSTEM, PAGE_SIZE, PROT_READ,
  PROT_WRITE, MREMAP_MAYMOVE, MREMAP_FIXED, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_WRITE, hmmPfnToPfn, type MigrateVma, type Process,
} from "../src/index.js";
import { L } from "../src/layout.js";
import { createHmmDevices, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE } from "../src/testing/index.js";
import { errorOf, migrateToDevice, privateDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const _PAGE_RW = 1n << 1n;
const _PAGE_RO_MIGRATION = 1n << 10n;
const _PAGE_RO_MIGRATION_WRITE = 1n << 11n;
const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

function setup(npages = 8) {
  const m = Machine.create({ nodes: [{ normal: 2048 }, { normal: 2048 }], deviceMemory: 512, content: "tags" });
  const p = m.spawn();
  const a = p.mmap(0, npages * PAGE_SIZE, RW, ANON);
  p.touch(a, npages, true, 100n);
  return { m, p, a, npages };
}

function roSetup(m: Machine, p: Process, a: number, n: number): MigrateVma {
  return m.migrateVmaSetup({ proc: p, start: a, end: a + n * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, readOnlyEntries: true });
}

/** One CPU store of a tag; the run's result (a fault instead of a throw). */
function tryWrite(p: Process, addr: number, tag: bigint) {
  const b = p.batch();
  b.writeTag(addr, tag);
  return p.run(b);
}

/** Overwrites the PTE of `addr` in the page-table pool (as a bug would), by finding its value. */
function pokePte(m: Machine, p: Process, addr: number, change: (pte: bigint) => bigint): void {
  const pte = p.pte(addr);
  const base = m.layout.slots[L.TABLES]!;
  const words = new BigUint64Array(m.core.memory.buffer, base, (m.config.tablePages * 4096) / 8);
  const at = words.indexOf(pte);
  expect(at).toBeGreaterThanOrEqual(0);
  words[at] = change(pte);
}

describe("read-only migration entries", () => {
  it("readers see the old page during the copy, a writer waits, then writes the new page", () => {
    const { m, p, a } = setup();
    const old = pfnOf(p.pte(a + PAGE_SIZE));
    const mig = roSetup(m, p, a, 8);
    expect(mig.readOnlyEntries).toBe(true);
    expect(mig.cpages).toBe(8);
    const pte = p.pte(a + PAGE_SIZE);
    expect(pte & 1n).toBe(1n);
    expect(pte & _PAGE_RW).toBe(0n);
    expect(pte & (_PAGE_RO_MIGRATION | _PAGE_RO_MIGRATION_WRITE)).toBe(_PAGE_RO_MIGRATION | _PAGE_RO_MIGRATION_WRITE);
    expect(m.counters().pgmigrate_ro_pages).toBe(8);
    mig.allocAndCopy({ node: 1 });
    // The copy is done; the old page still serves reads.
    expect(p.readTag(a + PAGE_SIZE)).toBe(101n);
    expect(pfnOf(p.pte(a + PAGE_SIZE))).toBe(old);
    const r = tryWrite(p, a + PAGE_SIZE, 7n);
    expect(r.completed).toBe(0);
    expect(r.fault?.code).toBe("EBUSY");
    expect(r.waitPfn).toBe(old);
    expect(m.counters().pgmigrate_entry_wait).toBe(1);
    expect(() => m.check()).toThrow(/in flight/);
    m.check({ allowInFlight: true });
    mig.finalize();
    const now = p.pte(a + PAGE_SIZE);
    expect(pfnOf(now)).not.toBe(old);
    expect(now & _PAGE_RW).toBe(_PAGE_RW);
    expect(now & (_PAGE_RO_MIGRATION | _PAGE_RO_MIGRATION_WRITE)).toBe(0n);
    expect(tryWrite(p, a + PAGE_SIZE, 7n).fault).toBeUndefined();
    expect(p.readTag(a + PAGE_SIZE)).toBe(7n);
    for (let i = 0; i < 8; i++) if (i !== 1) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
    expect(m.counters().pgmigrate_success).toBe(8);
    m.check();
  });

  it("a read-only PTE stays read-only after the migration", () => {
    const { m, p, a } = setup(2);
    p.mprotect(a, PAGE_SIZE, PROT_READ);
    // Two VMAs now, two migrations in flight.
    const migs = [roSetup(m, p, a, 1), roSetup(m, p, a + PAGE_SIZE, 1)];
    expect(p.pte(a) & _PAGE_RO_MIGRATION_WRITE).toBe(0n);
    expect(p.pte(a + PAGE_SIZE) & _PAGE_RO_MIGRATION_WRITE).toBe(_PAGE_RO_MIGRATION_WRITE);
    m.check({ allowInFlight: true });
    for (const mig of migs) {
      mig.allocAndCopy({ node: 1 });
      mig.finalize();
    }
    expect(p.pte(a) & _PAGE_RW).toBe(0n);
    expect(p.pte(a + PAGE_SIZE) & _PAGE_RW).toBe(_PAGE_RW);
    expect(p.readTag(a)).toBe(100n);
    m.check();
  });

  it("abort restores every old PTE with its write permission; the waiting write lands on the old page", () => {
    const { m, p, a } = setup();
    const before = [...Array(8).keys()].map((i) => p.pte(a + i * PAGE_SIZE) & ~0x60n);
    const mig = roSetup(m, p, a, 8);
    mig.allocAndCopy({ node: 1 });
    expect(tryWrite(p, a, 9n).waitPfn).toBe(pfnOf(before[0]!));
    const free = m.counters().nr_free_pages;
    mig.abort();
    for (let i = 0; i < 8; i++) expect(p.pte(a + i * PAGE_SIZE) & ~0x60n).toBe(before[i]);
    expect(m.counters().nr_free_pages).toBe(free + 8);
    expect(m.counters().pgmigrate_fail).toBe(8);
    expect(tryWrite(p, a, 9n).fault).toBeUndefined();
    expect(p.readTag(a)).toBe(9n);
    m.check();
  });

  it("an entry that got no new page is restored, the others move", () => {
    const { m, p, a } = setup(4);
    const old = [0, 1, 2, 3].map((i) => pfnOf(p.pte(a + i * PAGE_SIZE)));
    const mig = roSetup(m, p, a, 4);
    expect(mig.allocAndCopy({ node: 1 }, { failFirst: true })).toBe(3);
    mig.finalize();
    expect(pfnOf(p.pte(a))).toBe(old[0]);
    expect(p.pte(a) & (_PAGE_RW | _PAGE_RO_MIGRATION)).toBe(_PAGE_RW);
    for (let i = 1; i < 4; i++) expect(pfnOf(p.pte(a + i * PAGE_SIZE))).not.toBe(old[i]);
    for (let i = 0; i < 4; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
    m.check();
  });

  it("write-protects every mapping of a shared page, in every process, before the copy", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }, { normal: 2048 }], content: "tags" });
    const p = m.spawn();
    const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.touch(s, 4, true, 40n);
    const c = p.fork();
    c.touch(s, 4, false);
    expect(c.pte(s) & _PAGE_RW).toBe(_PAGE_RW);
    const mig = roSetup(m, p, s, 4);
    expect(mig.cpages).toBe(4);
    for (const q of [p, c]) {
      expect(q.pte(s + PAGE_SIZE) & (_PAGE_RW | _PAGE_RO_MIGRATION)).toBe(_PAGE_RO_MIGRATION);
      expect(q.readTag(s + PAGE_SIZE)).toBe(41n);
      expect(tryWrite(q, s + PAGE_SIZE, 1n).fault?.code).toBe("EBUSY");
    }
    // A third process faulting the page in waits too (the page is locked), rather than mapping it writable.
    const g = c.fork();
    expect(tryWrite(g, s + 2 * PAGE_SIZE, 1n).waitPfn).toBe(pfnOf(p.pte(s + 2 * PAGE_SIZE)));
    m.check({ allowInFlight: true });
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    m.check();
    for (const q of [p, c]) expect(q.pte(s) & _PAGE_RW).toBe(_PAGE_RW);
    expect(pfnOf(c.pte(s + 3 * PAGE_SIZE))).toBe(pfnOf(p.pte(s + 3 * PAGE_SIZE)));
    c.writeTag(s + 3 * PAGE_SIZE, 5n);
    expect(p.readTag(s + 3 * PAGE_SIZE)).toBe(5n);
    expect(g.readTag(s + 3 * PAGE_SIZE)).toBe(5n);
    m.check();
  });

  it("fork during the copy: both processes read the old page, the new one is COW-shared after", () => {
    const { m, p, a } = setup(4);
    const mig = roSetup(m, p, a, 4);
    mig.allocAndCopy({ node: 1 });
    const c = p.fork();
    m.check({ allowInFlight: true });
    expect(c.readTag(a + 2 * PAGE_SIZE)).toBe(102n);
    expect(c.pte(a) & (_PAGE_RW | _PAGE_RO_MIGRATION_WRITE)).toBe(0n);
    expect(p.pte(a) & (_PAGE_RW | _PAGE_RO_MIGRATION_WRITE)).toBe(0n);
    expect(tryWrite(c, a, 1n).fault?.code).toBe("EBUSY");
    mig.finalize();
    m.check();
    const pfn = pfnOf(p.pte(a + 2 * PAGE_SIZE));
    expect(m.zones().find((z) => pfn >= z.start && pfn < z.end)!.node).toBe(1);
    expect(pfnOf(c.pte(a + 2 * PAGE_SIZE))).toBe(pfn);
    c.writeTag(a + 2 * PAGE_SIZE, 1n); // COW
    p.writeTag(a + 2 * PAGE_SIZE, 2n);
    expect(c.readTag(a + 2 * PAGE_SIZE)).toBe(1n);
    expect(p.readTag(a + 2 * PAGE_SIZE)).toBe(2n);
    expect(c.readTag(a + 3 * PAGE_SIZE)).toBe(103n);
    m.check();
  });

  it("fork during a blocking migration: the child's migration entries end too", () => {
    const { m, p, a } = setup(4);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 4 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM });
    const c = p.fork();
    expect(tryWrite(c, a, 1n).fault?.code).toBe("EBUSY");
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    m.check();
    expect(c.readTag(a + PAGE_SIZE)).toBe(101n);
    c.writeTag(a + PAGE_SIZE, 3n);
    expect(p.readTag(a + PAGE_SIZE)).toBe(101n);
    m.check();
  });

  it("munmap during the copy frees the old and the new pages at the end", () => {
    const { m, p, a } = setup(4);
    const free = m.counters().nr_free_pages;
    const mig = roSetup(m, p, a, 4);
    mig.allocAndCopy({ node: 1 });
    p.munmap(a, 2 * PAGE_SIZE);
    m.check({ allowInFlight: true });
    mig.finalize();
    m.check();
    expect(m.counters().nr_free_pages).toBe(free + 2);
    expect(p.readTag(a + 3 * PAGE_SIZE)).toBe(103n);
  });

  it("mprotect during the copy changes the permission the PTE gets back", () => {
    const { m, p, a } = setup(4);
    const mig = roSetup(m, p, a, 4);
    p.mprotect(a, 2 * PAGE_SIZE, PROT_READ);
    expect(p.pte(a) & (_PAGE_RW | _PAGE_RO_MIGRATION_WRITE)).toBe(0n);
    m.check({ allowInFlight: true });
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, RW);
    expect(p.pte(a + PAGE_SIZE) & (_PAGE_RW | _PAGE_RO_MIGRATION_WRITE)).toBe(_PAGE_RO_MIGRATION_WRITE);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(p.pte(a) & _PAGE_RW).toBe(0n);
    expect(p.pte(a + PAGE_SIZE) & _PAGE_RW).toBe(_PAGE_RW);
    expect(p.pte(a + 3 * PAGE_SIZE) & _PAGE_RW).toBe(_PAGE_RW);
    expect(tryWrite(p, a, 1n).fault?.code).toBe("SIGSEGV");
    m.check();
  });

  it("mremap and exit during the copy: the migration still ends cleanly", () => {
    const { m, p, a } = setup(4);
    const mig = roSetup(m, p, a, 4);
    const b = p.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, a - 64 * PAGE_SIZE);
    expect(b).toBe(a - 64 * PAGE_SIZE);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    m.check();
    expect(p.pte(b + PAGE_SIZE) & (_PAGE_RW | _PAGE_RO_MIGRATION)).toBe(_PAGE_RW);
    expect(p.readTag(b + PAGE_SIZE)).toBe(101n);
    const mig2 = roSetup(m, p, b, 4);
    p.exit();
    mig2.allocAndCopy({ node: 1 });
    mig2.finalize();
    m.check();
    expect(m.zones().reduce((s, z) => s + z.managed - z.free, 0)).toBe(0);
  });

  it("a page with an extra reference (a pin) stays where it is", () => {
    const { m, p, a } = setup(2);
    const held = pfnOf(p.pte(a));
    m.page.get(held);
    const mig = roSetup(m, p, a, 2);
    expect(mig.cpages).toBe(1);
    expect(p.pte(a) & (_PAGE_RW | _PAGE_RO_MIGRATION)).toBe(_PAGE_RW);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(pfnOf(p.pte(a))).toBe(held);
    m.page.put(held);
    m.check();
  });

  it("hmm_range_fault reads during the copy and gets -EBUSY for a write", () => {
    const { m, p, a } = setup(4);
    const sub = m.mmuIntervalNotifierInsert(p, a, 4 * PAGE_SIZE, { invalidate: (s, _r, cur) => (s.setSeq(cur), true) });
    const mig = roSetup(m, p, a, 4);
    const pfns = new BigUint64Array(4);
    const fault = (write: boolean) => m.hmmRangeFault({
      notifier: sub, notifierSeq: sub.readBegin(), start: a, end: a + 4 * PAGE_SIZE, hmmPfns: pfns,
      defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0n), pfnFlagsMask: 0n, devPrivateOwner: null,
    });
    expect(fault(false)).toBe(0);
    expect(hmmPfnToPfn(pfns[1]!)).toBe(pfnOf(p.pte(a + PAGE_SIZE)));
    expect(pfns[1]! & HMM_PFN_WRITE).toBe(0n);
    expect(fault(true)).toBe(-16);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(fault(true)).toBe(0);
    expect(pfns[1]! & HMM_PFN_WRITE).toBe(HMM_PFN_WRITE);
    m.check();
  });

  it("the test mirror device reads during the copy; its write gets -EBUSY until the end", () => {
    const { m, p, a } = setup(4);
    const [dev0] = createHmmDevices(m);
    const mirror = dev0!.open(p);
    const mig = roSetup(m, p, a, 4);
    const rd = mirror.cmd(HMM_DMIRROR_READ, { addr: a, npages: 4 });
    expect(rd.ret).toBe(0);
    expect([...(rd.buffer as BigUint64Array)]).toEqual([100n, 101n, 102n, 103n]);
    const buffer = new BigUint64Array([7n, 7n, 7n, 7n]);
    expect(mirror.cmd(HMM_DMIRROR_WRITE, { addr: a, npages: 4, buffer }).ret).toBe(-16);
    expect(p.readTag(a)).toBe(100n);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(mirror.cmd(HMM_DMIRROR_WRITE, { addr: a, npages: 4, buffer }).ret).toBe(0);
    expect(p.readTag(a + 3 * PAGE_SIZE)).toBe(7n);
    mirror.close();
    m.check();
  });

  it("moves pages to device-coherent memory and back; device-private sources get migration entries", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 512, content: "tags" });
    const owner = {};
    const coh = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 64, owner, ops: {} });
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.touch(a, 4, true, 10n);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 4 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: owner, readOnlyEntries: true });
    mig.allocAndCopy(coh);
    mig.finalize();
    expect(coh.contains(pfnOf(p.pte(a)))).toBe(true);
    expect(p.readTag(a + 3 * PAGE_SIZE)).toBe(13n);
    m.check();
    const { pg } = privateDevice(m, 64);
    const q = m.spawn();
    const b = q.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    q.touch(b, 2, true, 20n);
    migrateToDevice(m, q, b, 2, pg);
    const back = m.migrateVmaSetup({ proc: q, start: b, end: b + 2 * PAGE_SIZE, flags: 2, pgmapOwner: pg.owner, readOnlyEntries: true });
    expect(back.cpages).toBe(2);
    expect(q.pte(b) & 1n).toBe(0n); // a migration entry
    const r = q.run((() => { const x = q.batch(); x.readTag(b); return x; })());
    expect(r.fault?.code).toBe("EBUSY");
    m.check({ allowInFlight: true });
    back.allocAndCopy({ node: 0 });
    back.finalize();
    expect(q.readTag(b + PAGE_SIZE)).toBe(21n);
    m.check();
  });

  it("check() finds a read-only migration PTE at rest, or one made writable in flight", () => {
    const { m, p, a } = setup(2);
    pokePte(m, p, a, (pte) => (pte & ~_PAGE_RW) | _PAGE_RO_MIGRATION);
    expect(errorOf(() => m.check()).message).toMatch(/read-only migration PTE .* which no read-only migration in flight collected/);
    pokePte(m, p, a, (pte) => (pte & ~_PAGE_RO_MIGRATION) | _PAGE_RW);
    m.check();
    const mig = roSetup(m, p, a, 2);
    pokePte(m, p, a + PAGE_SIZE, (pte) => pte | _PAGE_RW);
    expect(errorOf(() => m.check({ allowInFlight: true })).message).toMatch(/writable/);
    pokePte(m, p, a + PAGE_SIZE, (pte) => pte & ~_PAGE_RW);
    m.check({ allowInFlight: true });
    mig.abort();
    m.check();
  });

  it("refuses a readOnlyEntries that is not a boolean, changing nothing", () => {
    const { m, p, a } = setup(2);
    const e = errorOf(() => m.migrateVmaSetup({ proc: p, start: a, end: a + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, readOnlyEntries: 1 as unknown as boolean }));
    expect(e.code).toBe("EINVAL");
    expect(p.pte(a) & _PAGE_RW).toBe(_PAGE_RW);
    m.check();
  });
});
