// get_user_pages / pin_user_pages: references and pins with the kernel's accounting, COW and
// unshare around pins, fork and munmap of pinned pages, FOLL_LONGTERM's migrations, and the
// ledger machine.check() keeps. Every test ends with the machine's invariants checked.
import { describe, it, expect } from "vitest";
import {
  Machine, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
  FOLL_WRITE, FOLL_FORCE, FOLL_LONGTERM, FOLL_NOFAULT, FOLL_DUMP, FOLL_HWPOISON, GUP_PIN_COUNTING_BIAS,
  MEMORY_DEVICE_COHERENT, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_COHERENT, type Process,
} from "../src/index.js";
import { PG_dirty, PG_anon_exclusive } from "../src/page.js";
import { errorOf, migrateToDevice, privateDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED = MAP_SHARED | MAP_ANONYMOUS;

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);
const writable = (pte: bigint): boolean => (pte & 2n) !== 0n;

function machine(extra: { movable?: number; deviceMemory?: number; normal?: number } = {}) {
  const m = Machine.create({
    nodes: [{ normal: extra.normal ?? 2048, movable: extra.movable ?? 0 }], content: "tags", deviceMemory: extra.deviceMemory ?? 0,
  });
  return m;
}

/** A process with `n` written private pages (tags 100 + i) at `a`. */
function populated(m: Machine, n = 8): { p: Process; a: number } {
  const p = m.spawn();
  const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
  p.touch(a, n, true, 100n);
  return { p, a };
}

const ptePfns = (p: Process, a: number, n: number): number[] => Array.from({ length: n }, (_, i) => pfnOf(p.pte(a + i * PAGE_SIZE)));
const refs = (m: Machine, pfns: ArrayLike<number>): number[] => Array.from(pfns, (pfn) => m.page.refcount(pfn));
const zoneOf = (m: Machine, pfn: number): string | undefined => m.zones().find((z) => pfn >= z.start && pfn < z.end)?.name;

describe("references and pins", () => {
  it("get_user_pages takes one reference per page; release_pages gives it back", () => {
    const m = machine();
    const { p, a } = populated(m);
    const before = refs(m, ptePfns(p, a, 8));
    const pfns = m.getUserPages(p, a, 8);
    expect(Array.from(pfns)).toEqual(ptePfns(p, a, 8));
    expect(refs(m, pfns)).toEqual(before.map((r) => r + 1));
    expect(m.counters().nr_foll_pin_acquired).toBe(0);
    m.check();
    m.releasePages(pfns);
    expect(refs(m, pfns)).toEqual(before);
    m.check();
  });

  it("pin_user_pages adds GUP_PIN_COUNTING_BIAS per pin and counts nr_foll_pin_acquired/released", () => {
    const m = machine();
    const { p, a } = populated(m);
    const pfns = m.pinUserPages(p, a, 8, FOLL_WRITE);
    const again = m.pinUserPages(p, a + 2 * PAGE_SIZE, 2);
    expect(Array.from(again)).toEqual(Array.from(pfns.subarray(2, 4)));
    expect(refs(m, pfns)).toEqual([1025, 1025, 2049, 2049, 1025, 1025, 1025, 1025]);
    expect(m.page.pincount(pfns[2]!)).toBe(2);
    expect(Array.from(pfns, (pfn) => m.page.folioMaybeDmaPinned(pfn))).toEqual(Array(8).fill(true));
    expect(m.counters().nr_foll_pin_acquired).toBe(10);
    m.check();
    m.unpinUserPages(again);
    m.unpinUserPage(pfns[0]!);
    expect(m.counters().nr_foll_pin_released).toBe(3);
    m.unpinUserPages(pfns.subarray(1));
    expect(refs(m, pfns)).toEqual(Array(8).fill(1));
    expect(Array.from(pfns, (pfn) => m.page.folioMaybeDmaPinned(pfn))).toEqual(Array(8).fill(false));
    m.check();
  });

  it("folio_maybe_dma_pinned has the kernel's false positive: 1024 plain references look pinned", () => {
    const m = machine();
    const { p, a } = populated(m, 1);
    const pfn = pfnOf(p.pte(a));
    for (let i = 0; i < 1022; i++) m.page.get(pfn);
    expect(m.page.folioMaybeDmaPinned(pfn)).toBe(false);
    m.page.get(pfn);
    expect(m.page.refcount(pfn)).toBe(GUP_PIN_COUNTING_BIAS);
    expect(m.page.folioMaybeDmaPinned(pfn)).toBe(true);
    expect(m.page.pincount(pfn)).toBe(0);
    for (let i = 0; i < 1023; i++) m.page.put(pfn);
    m.check();
  });

  it("the zero page is returned for read holes but never pinned or counted", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.touch(a + PAGE_SIZE, 1, true, 5n);
    const pinned = m.pinUserPages(p, a, 4);
    const got = m.getUserPages(p, a, 4);
    expect(pinned[0]).toBe(0);
    expect(pinned[2]).toBe(0);
    expect(got[3]).toBe(0);
    expect(m.counters().nr_foll_pin_acquired).toBe(1);
    expect(m.page.readTag(0)).toBe(0n);
    m.check();
    m.unpinUserPages(pinned);
    m.releasePages(got);
    expect(m.counters().nr_foll_pin_released).toBe(1);
    m.check();
  });

  it("FOLL_WRITE faults holes in writable and marks the pages dirty", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const pfns = m.pinUserPages(p, a, 4, FOLL_WRITE);
    expect(Array.from(pfns)).toEqual(ptePfns(p, a, 4));
    expect(pfns.every((pfn) => pfn !== 0)).toBe(true);
    for (let i = 0; i < 4; i++) expect(writable(p.pte(a + i * PAGE_SIZE))).toBe(true);
    m.check();
    m.unpinUserPagesDirtyLock(pfns, true);
    for (const pfn of pfns) expect(m.page.testFlag(pfn, PG_dirty)).toBe(true);
    m.check();
  });

  it("a shmem page is pinned where it is cached; it outlives the object until unpinned", () => {
    const m = machine();
    const p = m.spawn();
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, SHARED);
    p.writeTag(s, 77n);
    const [pfn] = m.pinUserPages(p, s, 1, FOLL_LONGTERM);
    const free = m.counters().nr_free_pages;
    p.munmap(s, 2 * PAGE_SIZE);
    expect(m.counters().nr_shmem).toBe(0);
    expect(m.page.refcount(pfn!)).toBe(GUP_PIN_COUNTING_BIAS);
    expect(m.page.readTag(pfn!)).toBe(77n);
    m.check();
    m.unpinUserPage(pfn!);
    expect(m.counters().nr_free_pages).toBe(free + 1);
    m.check();
  });

  it("ranges larger than one Wasm batch (65536 pages) pin and unpin in batches", () => {
    const m = Machine.create({ nodes: [{ normal: 80000 }], content: "tags" });
    const p = m.spawn();
    const n = 70000;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
    p.touch(a, n, true, 0n);
    const pfns = m.pinUserPages(p, a, n, FOLL_WRITE);
    expect(pfns[n - 1]).toBe(pfnOf(p.pte(a + (n - 1) * PAGE_SIZE)));
    expect(m.page.refcount(pfns[66000]!)).toBe(1025);
    m.check();
    // A bad entry in the second batch: nothing of the first batch is released either.
    const bad = Uint32Array.from(pfns);
    bad[66000] = pfns[5]!;
    expect(errorOf(() => m.unpinUserPages(bad)).code).toBe("EINVAL");
    expect(m.page.refcount(pfns[0]!)).toBe(1025);
    expect(m.counters().nr_foll_pin_released).toBe(0);
    m.unpinUserPages(pfns);
    expect(m.page.refcount(pfns[66000]!)).toBe(1);
    m.check();
  });

  it("the machine's own GUP buffer pins and unpins in place", () => {
    const m = machine();
    const { p, a } = populated(m);
    const buf = m.gupPagesBuffer(8);
    const out = m.pinUserPages(p, a, 8, 0, buf);
    expect(out).toBe(buf);
    expect(Array.from(buf)).toEqual(ptePfns(p, a, 8));
    m.unpinUserPages(buf);
    expect(refs(m, ptePfns(p, a, 8))).toEqual(Array(8).fill(1));
    const mine = new Uint32Array(10);
    expect(m.getUserPages(p, a, 8, 0, mine)).toBe(mine);
    expect(Array.from(mine.subarray(0, 8))).toEqual(ptePfns(p, a, 8));
    m.releasePages(mine.subarray(0, 8));
    m.check();
  });

  it("put_page refuses to drop references that GUP handed out", () => {
    const m = machine();
    const { p, a } = populated(m, 1);
    const [pfn] = m.getUserPages(p, a, 1);
    expect(errorOf(() => m.page.put(pfn!)).code).toBe("EINVAL");
    m.page.get(pfn!);
    m.page.put(pfn!);
    m.releasePages([pfn!]);
    m.check();
  });
});

describe("COW, unshare and fork around pins", () => {
  it("FOLL_WRITE breaks COW: the parent's new page is pinned, the child keeps the old one", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const child = p.fork();
    const shared = pfnOf(p.pte(a));
    const [pfn] = m.pinUserPages(p, a, 1, FOLL_WRITE);
    expect(pfnOf(p.pte(a))).toBe(pfn);
    expect(writable(p.pte(a))).toBe(true);
    expect(pfnOf(child.pte(a))).toBe(shared);
    m.page.writeTag(pfn!, 555n);
    expect(p.readTag(a)).toBe(555n);
    expect(child.readTag(a)).toBe(100n);
    m.unpinUserPage(pfn!);
    m.check();
  });

  it("a read pin unshares a page shared with a child; a plain reference does not", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const child = p.fork();
    const shared = pfnOf(p.pte(a));
    const [got] = m.getUserPages(p, a, 1);
    expect(got).toBe(shared);
    const [pfn] = m.pinUserPages(p, a, 1);
    expect(pfn).not.toBe(shared);
    expect(pfnOf(p.pte(a))).toBe(pfn);
    expect(writable(p.pte(a))).toBe(false);
    expect(m.page.testFlag(pfn!, PG_anon_exclusive)).toBe(true);
    expect(m.page.readTag(pfn!)).toBe(100n);
    // COW never steals the pinned exclusive page: the parent's write lands in it.
    p.writeTag(a, 321n);
    expect(pfnOf(p.pte(a))).toBe(pfn);
    expect(m.page.readTag(pfn!)).toBe(321n);
    expect(child.readTag(a)).toBe(100n);
    expect(m.counters().cow_fault).toBe(1);
    m.check();
    m.unpinUserPage(pfn!);
    m.releasePages([got!]);
    m.check();
  });

  it("a long-term read pin of the zero page in a private mapping gets a page of its own", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const [short] = m.pinUserPages(p, a, 1);
    expect(short).toBe(0);
    const [pfn] = m.pinUserPages(p, a, 1, FOLL_LONGTERM);
    expect(pfn).not.toBe(0);
    expect(pfnOf(p.pte(a))).toBe(pfn);
    expect(writable(p.pte(a))).toBe(false);
    expect(m.page.readTag(pfn!)).toBe(0n);
    p.writeTag(a, 9n);
    expect(m.page.readTag(pfn!)).toBe(9n);
    m.unpinUserPages([short!, pfn!]);
    m.check();
  });

  it("fork copies a pinned page into the child at once; the parent keeps it writable", () => {
    const m = machine();
    const { p, a } = populated(m, 4);
    const pfns = m.pinUserPages(p, a, 2, FOLL_WRITE);
    const child = p.fork();
    for (let i = 0; i < 2; i++) {
      const va = a + i * PAGE_SIZE;
      expect(pfnOf(p.pte(va))).toBe(pfns[i]);
      expect(writable(p.pte(va))).toBe(true);
      expect(pfnOf(child.pte(va))).not.toBe(pfns[i]);
      expect(writable(child.pte(va))).toBe(true);
      expect(child.readTag(va)).toBe(100n + BigInt(i));
    }
    // Unpinned pages are shared copy-on-write as usual.
    expect(pfnOf(child.pte(a + 2 * PAGE_SIZE))).toBe(pfnOf(p.pte(a + 2 * PAGE_SIZE)));
    m.check();
    // DMA into the pinned page is seen by the parent only.
    m.page.writeTag(pfns[0]!, 42n);
    expect(p.readTag(a)).toBe(42n);
    expect(child.readTag(a)).toBe(100n);
    child.writeTag(a + PAGE_SIZE, 7n);
    expect(m.page.readTag(pfns[1]!)).toBe(101n);
    expect(m.counters().cow_fault).toBe(0);
    m.unpinUserPages(pfns);
    child.exit();
    m.check();
  });

  it("fork shares a page held only by FOLL_GET references, and copies one with 1024 references once the mm has pinned", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const [got] = m.getUserPages(p, a, 1);
    const c1 = p.fork();
    expect(pfnOf(c1.pte(a))).toBe(got);
    c1.exit();
    p.writeTag(a, 1n);
    // After the COW break p maps a fresh exclusive page; 1024 references make it look pinned.
    const fresh = pfnOf(p.pte(a));
    expect(fresh).not.toBe(got);
    for (let i = 0; i < 1023; i++) m.page.get(fresh);
    const c2 = p.fork();
    expect(pfnOf(c2.pte(a))).toBe(fresh); // MMF_HAS_PINNED is not set yet
    c2.exit();
    p.writeTag(a, 2n);
    const q = pfnOf(p.pte(a));
    for (let i = 0; i < 1023; i++) m.page.get(q);
    const [pin] = m.pinUserPages(p, a + PAGE_SIZE, 1); // sets MMF_HAS_PINNED
    const c3 = p.fork();
    expect(pfnOf(c3.pte(a))).not.toBe(q); // the false positive: copied like a pinned page
    expect(c3.readTag(a)).toBe(2n);
    for (let i = 0; i < 1023; i++) {
      m.page.put(q);
      m.page.put(fresh);
    }
    m.unpinUserPage(pin!);
    m.releasePages([got!]);
    c3.exit();
    m.check();
  });

  it("fork of a pinned page fails with ENOMEM when no page is left for the child's copy", () => {
    const m = Machine.create({ nodes: [{ normal: 600 }], content: "tags", minFreeKbytes: 128 });
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    p.touch(a, 8, true, 1n);
    const pfns = m.pinUserPages(p, a, 8, FOLL_WRITE);
    const hog = p.mmap(0, 1024 * PAGE_SIZE, RW, ANON);
    expect(p.run((() => { const b = p.batch(); b.touch(hog, 1024, true, 0n); return b; })()).fault?.code).toBe("ENOMEM");
    expect(errorOf(() => p.fork()).code).toBe("ENOMEM");
    expect(m.procs.length).toBe(1);
    m.check();
    m.unpinUserPages(pfns);
    m.check();
  });
});

describe("pinned pages outlive their mappings", () => {
  it("munmap leaves a pinned page held by the pin alone; unpin frees it", () => {
    const m = machine();
    const { p, a } = populated(m, 4);
    const pfns = m.pinUserPages(p, a, 4, FOLL_WRITE);
    const free = m.counters().nr_free_pages;
    p.munmap(a, 4 * PAGE_SIZE);
    expect(m.counters().nr_free_pages).toBe(free);
    for (const pfn of pfns) {
      expect(m.page.refcount(pfn)).toBe(GUP_PIN_COUNTING_BIAS);
      expect(m.page.mapcount(pfn)).toBe(0);
    }
    expect(m.page.readTag(pfns[3]!)).toBe(103n);
    m.check();
    m.unpinUserPages(pfns);
    expect(m.counters().nr_free_pages).toBe(free + 4);
    m.check();
  });

  it("exit leaves pinned and referenced pages to their holders", () => {
    const m = machine();
    const { p, a } = populated(m, 4);
    const pinned = m.pinUserPages(p, a, 2);
    const got = m.getUserPages(p, a + 2 * PAGE_SIZE, 2);
    p.exit();
    m.check();
    expect(refs(m, [...pinned, ...got])).toEqual([1024, 1024, 1, 1]);
    m.releasePages(got);
    m.unpinUserPages(pinned);
    expect(m.counters().nr_anon_pages).toBe(0);
    expect(m.counters().nr_free_pages).toBe(m.zones().reduce((s, z) => s + z.managed, 0));
    m.check();
  });

  it("migration skips pinned pages and pages with GUP references (migrate_vma and migrate_device_pfns)", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 1024 }], content: "tags", deviceMemory: 16 });
    const { p, a } = populated(m, 4);
    const [pin] = m.pinUserPages(p, a, 1);
    const [got] = m.getUserPages(p, a + PAGE_SIZE, 1);
    const mig = m.migrateDevicePfns(ptePfns(p, a, 4));
    expect(mig.cpages).toBe(2);
    expect(mig.src[0]).toBe(0n);
    expect(mig.src[1]).toBe(0n);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(pfnOf(p.pte(a))).toBe(pin);
    expect(pfnOf(p.pte(a + PAGE_SIZE))).toBe(got);
    expect(p.readTag(a + 3 * PAGE_SIZE)).toBe(103n);
    const dev = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 8, owner: "dev" });
    const vma = m.migrateVmaSetup({ proc: p, start: a, end: a + 2 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: "dev" });
    expect(vma.cpages).toBe(0);
    vma.allocAndCopy(dev);
    vma.finalize();
    expect(ptePfns(p, a, 2)).toEqual([pin, got]);
    m.check();
    m.unpinUserPage(pin!);
    m.releasePages([got!]);
    migrateToDevice(m, p, a, 2, dev);
    expect(m.pagemapOf(pfnOf(p.pte(a)))).toBe(dev);
    m.check();
  });
});

describe("FOLL_LONGTERM", () => {
  it("migrates ZONE_MOVABLE pages to ZONE_NORMAL before pinning them, contents intact", () => {
    const m = machine({ movable: 1024 });
    const { p, a } = populated(m, 8);
    const before = ptePfns(p, a, 8);
    expect(before.every((pfn) => zoneOf(m, pfn) === "Movable")).toBe(true);
    const short = m.pinUserPages(p, a, 2);
    expect(Array.from(short)).toEqual(before.slice(0, 2));
    m.unpinUserPages(short);
    const pfns = m.pinUserPages(p, a, 8, FOLL_LONGTERM | FOLL_WRITE);
    expect(Array.from(pfns)).toEqual(ptePfns(p, a, 8));
    expect(Array.from(pfns, (pfn) => zoneOf(m, pfn))).toEqual(Array(8).fill("Normal"));
    for (let i = 0; i < 8; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
    const c = m.counters();
    expect(c.pgmigrate_success).toBe(8);
    expect(c.nr_foll_pin_acquired - c.nr_foll_pin_released).toBe(8);
    m.check();
    m.unpinUserPages(pfns);
    m.check();
  });

  it("works in the machine's own GUP buffer too", () => {
    const m = machine({ movable: 1024 });
    const { p, a } = populated(m, 8);
    const buf = m.gupPagesBuffer(8);
    expect(m.pinUserPages(p, a, 8, FOLL_LONGTERM, buf)).toBe(buf);
    expect(Array.from(buf, (pfn) => zoneOf(m, pfn))).toEqual(Array(8).fill("Normal"));
    expect(Array.from(buf)).toEqual(ptePfns(p, a, 8));
    m.unpinUserPages(buf);
    m.check();
  });

  it("fails with ENOMEM, nothing pinned, when a movable page cannot be migrated", () => {
    const m = machine({ movable: 1024 });
    const { p, a } = populated(m, 4);
    const [held] = m.getUserPages(p, a + 2 * PAGE_SIZE, 1);
    const err = errorOf(() => m.pinUserPages(p, a, 4, FOLL_LONGTERM));
    expect(err.code).toBe("ENOMEM");
    expect(err.fn).toBe("pin_user_pages");
    const c = m.counters();
    expect(c.nr_foll_pin_acquired).toBe(c.nr_foll_pin_released);
    expect(pfnOf(p.pte(a + 2 * PAGE_SIZE))).toBe(held);
    for (let i = 0; i < 4; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
    m.check();
    m.releasePages([held!]);
    m.check();
  });

  it("fails with ENOMEM when ZONE_NORMAL has no room for the migrated pages", () => {
    const m = Machine.create({ nodes: [{ normal: 512, movable: 1024 }], content: "tags" });
    const hog = m.spawn();
    const h = hog.mmap(0, 2048 * PAGE_SIZE, RW, ANON);
    hog.run((() => { const b = hog.batch(); b.touch(h, 2048, true, 0n); return b; })());
    hog.munmap(h, 64 * PAGE_SIZE);
    expect(m.zones()[0]!.free).toBe(m.zones()[0]!.wmarkMin);
    const { p, a } = populated(m, 8);
    expect(errorOf(() => m.pinUserPages(p, a, 8, FOLL_LONGTERM)).code).toBe("ENOMEM");
    const c = m.counters();
    expect(c.nr_foll_pin_acquired).toBe(c.nr_foll_pin_released);
    expect(p.readTag(a + 7 * PAGE_SIZE)).toBe(107n);
    m.check();
  });

  it("migrates device-coherent pages to system memory; EBUSY if one cannot move", () => {
    const m = machine({ deviceMemory: 64 });
    const dev = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 16, owner: "cxl" });
    const { p, a } = populated(m, 4);
    migrateToDevice(m, p, a, 4, dev);
    const onDevice = ptePfns(p, a, 4);
    expect(onDevice.every((pfn) => dev.contains(pfn))).toBe(true);
    // A short-term pin of coherent memory is fine.
    const short = m.pinUserPages(p, a, 4, FOLL_WRITE);
    expect(Array.from(short)).toEqual(onDevice);
    // ... and blocks migrating it back.
    const back = m.migrateVmaSetup({ proc: p, start: a, end: a + 4 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_DEVICE_COHERENT, pgmapOwner: "cxl" });
    expect(back.cpages).toBe(0);
    back.finalize();
    m.unpinUserPages(short);
    const [held] = m.getUserPages(p, a + PAGE_SIZE, 1);
    expect(errorOf(() => m.pinUserPages(p, a, 4, FOLL_LONGTERM)).code).toBe("EBUSY");
    m.check();
    m.releasePages([held!]);
    const pfns = m.pinUserPages(p, a, 4, FOLL_LONGTERM);
    expect(Array.from(pfns, (pfn) => zoneOf(m, pfn))).toEqual(Array(4).fill("Normal"));
    for (let i = 0; i < 4; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
    m.check();
    m.unpinUserPages(pfns);
    m.memunmapPages(dev);
    m.check();
  });
});

describe("faults GUP resolves", () => {
  it("device-private pages are faulted back to RAM through the owner's migrate_to_ram", () => {
    const m = machine({ deviceMemory: 64 });
    const { pg } = privateDevice(m, 16);
    const { p, a } = populated(m, 4);
    migrateToDevice(m, p, a, 4, pg);
    expect(p.pte(a) & 1n).toBe(0n);
    const pfns = m.getUserPages(p, a, 4);
    expect(pfns.every((pfn) => !pg.contains(pfn) && pfn !== 0)).toBe(true);
    expect(Array.from(pfns)).toEqual(ptePfns(p, a, 4));
    expect(m.page.readTag(pfns[2]!)).toBe(102n);
    m.check();
    m.releasePages(pfns);
    m.check();
  });

  it("a device-exclusive entry is restored", () => {
    const m = machine();
    const { p, a } = populated(m, 1);
    const pfn = m.makeDeviceExclusive(p, a, "dev");
    m.page.unlock(pfn);
    m.page.put(pfn);
    expect(p.pte(a) & 1n).toBe(0n);
    const [pinned] = m.pinUserPages(p, a, 1, FOLL_WRITE);
    expect(pinned).toBe(pfn);
    expect(p.pte(a) & 1n).toBe(1n);
    m.unpinUserPage(pinned!);
    m.check();
  });

  it("a fault that runs out of memory midway releases everything the call took", () => {
    const m = Machine.create({ nodes: [{ normal: 600 }], content: "tags", minFreeKbytes: 128 });
    const { p, a } = populated(m, 8);
    const big = p.mmap(0, 1024 * PAGE_SIZE, RW, ANON);
    const err = errorOf(() => m.pinUserPages(p, a, 8, FOLL_WRITE) && m.pinUserPages(p, big, 1024, FOLL_WRITE));
    expect(err.code).toBe("ENOMEM");
    const c = m.counters();
    // The first call's 8 pins stay; the failed call's pins were all released again.
    expect(c.nr_foll_pin_acquired - c.nr_foll_pin_released).toBe(8);
    expect(p.walk(big, 1024 * PAGE_SIZE).present).toBeGreaterThan(0);
    m.check();
    m.unpinUserPages(ptePfns(p, a, 8));
    m.check();
  });

  it("FOLL_NOFAULT takes present pages only", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const pfns = m.pinUserPages(p, a, 2, FOLL_NOFAULT);
    m.unpinUserPages(pfns);
    const b = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    expect(errorOf(() => m.pinUserPages(p, b, 2, FOLL_NOFAULT)).code).toBe("EFAULT");
    expect(p.pte(b)).toBe(0n);
    m.check();
  });

  it("FOLL_DUMP skips neither holes nor the zero page: both are EFAULT", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    expect(errorOf(() => m.getUserPages(p, a, 1, FOLL_DUMP)).code).toBe("EFAULT");
    p.readTag(a);
    expect(errorOf(() => m.getUserPages(p, a, 1, FOLL_DUMP)).code).toBe("EFAULT");
    p.writeTag(a + PAGE_SIZE, 3n);
    m.releasePages(m.getUserPages(p, a + PAGE_SIZE, 1, FOLL_DUMP));
    m.check();
  });

  it("a poisoned page is EFAULT, or EHWPOISON with FOLL_HWPOISON", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    expect(m.memoryFailure(pfnOf(p.pte(a)))).toBe(0);
    expect(errorOf(() => m.getUserPages(p, a, 2)).code).toBe("EFAULT");
    expect(errorOf(() => m.pinUserPages(p, a, 2, FOLL_HWPOISON)).code).toBe("EHWPOISON");
    const c = m.counters();
    expect(c.nr_foll_pin_acquired).toBe(c.nr_foll_pin_released);
    m.check();
  });

  it("FOLL_FORCE writes a private read-only mapping through a COW copy and reads PROT_NONE", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const child = p.fork();
    p.mprotect(a, 2 * PAGE_SIZE, PROT_READ);
    const [pfn] = m.pinUserPages(p, a, 1, FOLL_WRITE | FOLL_FORCE);
    expect(pfnOf(p.pte(a))).toBe(pfn);
    expect(pfn).not.toBe(pfnOf(child.pte(a)));
    expect(writable(p.pte(a))).toBe(false);
    m.page.writeTag(pfn!, 66n);
    expect(p.readTag(a)).toBe(66n);
    expect(child.readTag(a)).toBe(100n);
    expect(p.run((() => { const b = p.batch(); b.writeTag(a, 1n); return b; })()).fault?.code).toBe("SIGSEGV");
    m.unpinUserPage(pfn!);
    p.mprotect(a, 2 * PAGE_SIZE, PROT_NONE);
    const got = m.getUserPages(p, a, 2, FOLL_FORCE);
    expect(Array.from(got)).toEqual(ptePfns(p, a, 2));
    expect(m.page.readTag(got[1]!)).toBe(101n);
    expect(p.run((() => { const b = p.batch(); b.readTag(a); return b; })()).fault?.code).toBe("SIGSEGV");
    m.releasePages(got);
    const hole = p.mmap(0, PAGE_SIZE, PROT_NONE, ANON);
    const [z] = m.getUserPages(p, hole, 1, FOLL_FORCE);
    expect(z).toBe(0);
    const [w] = m.pinUserPages(p, hole, 1, FOLL_FORCE | FOLL_WRITE);
    expect(w).not.toBe(0);
    expect(p.pte(hole) & 1n).toBe(0n);
    m.unpinUserPage(w!);
    m.check();
  });
});

describe("machine.check() keeps GUP's ledger", () => {
  const ledger = (m: Machine, slot: number): Uint32Array => new Uint32Array(m.core.memory.buffer, m.layout.slots[slot]!, m.layout.slots[0]!);

  it("finds a pin nobody took, a reference missing from the refcount, and a free page with a pin", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const pfn = pfnOf(p.pte(a));
    const pins = ledger(m, 7);
    const gupRefs = ledger(m, 40);
    pins[pfn] = 1;
    expect(() => m.check()).toThrow(/refcount 1, less than the 1025/);
    m.page.get(pfn);
    pins[pfn] = 0;
    gupRefs[pfn] = 1;
    m.check();
    gupRefs[pfn] = 2;
    expect(() => m.check()).toThrow(/less than the 3/);
    gupRefs[pfn] = 0;
    m.page.put(pfn);
    const free = m.zones()[0]!.end - 1;
    pins[free] = 1;
    expect(() => m.check()).toThrow(/free pfn \d+ still has 0 GUP references and 1 pins/);
    pins[free] = 0;
    m.check();
  });

  it("finds pins the counters do not account for, and a GUP-only page with extra references", () => {
    const m = machine();
    const { p, a } = populated(m, 2);
    const [pfn] = m.pinUserPages(p, a, 1);
    const pins = ledger(m, 7);
    pins[pfn!] = 2;
    m.page.get(pfn!);
    for (let i = 0; i < 1023; i++) m.page.get(pfn!);
    expect(() => m.check()).toThrow(/2 pins are held but nr_foll_pin_acquired 1/);
    pins[pfn!] = 1;
    for (let i = 0; i < 1024; i++) m.page.put(pfn!);
    p.munmap(a, PAGE_SIZE);
    m.check();
    m.page.get(pfn!);
    expect(() => m.check()).toThrow(/held only by GUP, worth refcount 1024, but has refcount 1025/);
    m.page.put(pfn!);
    m.unpinUserPage(pfn!);
    m.check();
  });
});
