// mlock: VM_LOCKED VMAs, populated pages with PG_mlocked and PG_unevictable, mlock_count
// across several locked mappings, munlock/munmap/exit/COW clearing it, fork not inheriting it,
// mlockall and MAP_LOCKED, reclaim passing mlocked pages by, migration keeping them mlocked,
// file pages leaving the file LRU lists while mlocked.
import { describe, it, expect } from "vitest";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_LOCKED, MAP_FIXED, MADV_DONTNEED, MADV_FREE, MREMAP_MAYMOVE,
  MREMAP_DONTUNMAP, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, VM_LOCKED, MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT,
  O_RDWR, O_CREAT, MIGRATE_VMA_SELECT_SYSTEM, type Process,
} from "../src/index.js";
import { PG_mlocked, PG_unevictable } from "../src/page.js";
import { L } from "../src/layout.js";
import { errorOf, privateDevice, migrateToDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED = MAP_SHARED | MAP_ANONYMOUS;
const pfnOf = (p: Process, addr: number): number => Number((p.pte(addr) >> 12n) & 0xffffffffffn);
const present = (p: Process, addr: number): boolean => (p.pte(addr) & 1n) === 1n;
const special = (p: Process, addr: number): boolean => (p.pte(addr) & (1n << 9n)) !== 0n;
const locked = (p: Process, addr: number): boolean => (p.vmaAt(addr)!.flags & VM_LOCKED) !== 0;

function mlocked(m: Machine, pfn: number): boolean {
  const f = m.page.flags(pfn);
  expect(Boolean(f & (1 << PG_mlocked))).toBe(Boolean(f & (1 << PG_unevictable)));
  return (f & (1 << PG_mlocked)) !== 0;
}

function setup(deviceMemory = 0) {
  const m = Machine.create({ nodes: [{ normal: 2048 }, { normal: 2048 }], deviceMemory });
  return { m, p: m.spawn() };
}

describe("mlock and munlock", () => {
  it("mlock faults a private writable range in (no zero page) and mlocks it; munlock undoes both", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    p.readU32(a + PAGE_SIZE);
    m.mlock(p, a + 1, 4 * PAGE_SIZE);
    // a+1 rounds down to a; the range then ends in page 4.
    expect(p.maps().map((v) => [v.start - a, v.end - a, (v.flags & VM_LOCKED) !== 0])).toEqual([
      [0, 5 * PAGE_SIZE, true], [5 * PAGE_SIZE, 8 * PAGE_SIZE, false],
    ]);
    for (let i = 0; i < 5; i++) {
      expect(present(p, a + i * PAGE_SIZE) && !special(p, a + i * PAGE_SIZE)).toBe(true);
      expect(mlocked(m, pfnOf(p, a + i * PAGE_SIZE))).toBe(true);
    }
    expect(present(p, a + 5 * PAGE_SIZE)).toBe(false);
    let c = m.counters();
    expect([c.nr_mlock, c.unevictable_pgs_mlocked]).toEqual([5, 5]);
    m.check();
    m.munlock(p, a, 8 * PAGE_SIZE);
    expect(p.maps().length).toBe(1);
    expect(mlocked(m, pfnOf(p, a))).toBe(false);
    c = m.counters();
    expect([c.nr_mlock, c.unevictable_pgs_munlocked]).toEqual([0, 5]);
    m.check();
  });

  it("a read-only private range maps the zero page, never mlocked; a shared range gets mlocked pages", () => {
    const { m, p } = setup();
    const r = p.mmap(0, 2 * PAGE_SIZE, PROT_READ, ANON);
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, SHARED);
    m.mlock(p, r, 2 * PAGE_SIZE);
    m.mlock(p, s, 2 * PAGE_SIZE);
    expect(special(p, r) && special(p, r + PAGE_SIZE)).toBe(true);
    expect(mlocked(m, pfnOf(p, s)) && mlocked(m, pfnOf(p, s + PAGE_SIZE))).toBe(true);
    expect(m.counters().nr_mlock).toBe(2);
    m.check();
  });

  it("a page stays mlocked while any VM_LOCKED VMA maps it (mlock_count)", () => {
    const { m, p } = setup();
    const s = p.mmap(0, PAGE_SIZE, RW, SHARED);
    p.writeU32(s, 1);
    const c = p.fork();
    m.mlock(p, s, PAGE_SIZE);
    m.mlock(c, s, PAGE_SIZE);
    const pfn = pfnOf(p, s);
    expect(pfnOf(c, s)).toBe(pfn);
    m.munlock(p, s, PAGE_SIZE);
    expect(mlocked(m, pfn)).toBe(true);
    m.check();
    c.exit();
    expect(mlocked(m, pfn)).toBe(false);
    expect(m.counters().nr_mlock).toBe(0);
    m.check();
  });

  it("munmap of a locked range munlocks its pages", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    m.mlock(p, a, 4 * PAGE_SIZE);
    p.munmap(a + PAGE_SIZE, 2 * PAGE_SIZE);
    expect(m.counters().nr_mlock).toBe(2);
    p.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED);
    expect(m.counters().nr_mlock).toBe(1);
    m.check();
  });

  it("fork does not inherit VM_LOCKED; COW in either process leaves each page mlocked only where a locked VMA maps it", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    m.mlock(p, a, 2 * PAGE_SIZE);
    const c = p.fork();
    expect(locked(c, a)).toBe(false);
    const [p0, p1] = [pfnOf(p, a), pfnOf(p, a + PAGE_SIZE)];
    c.writeU32(a, 1);
    expect(mlocked(m, pfnOf(c, a))).toBe(false);
    expect(mlocked(m, p0)).toBe(true);
    p.writeU32(a + PAGE_SIZE, 2);
    expect(pfnOf(p, a + PAGE_SIZE)).not.toBe(p1);
    expect(mlocked(m, pfnOf(p, a + PAGE_SIZE))).toBe(true);
    expect(mlocked(m, p1)).toBe(false);
    expect(m.counters().nr_mlock).toBe(2);
    m.check();
  });

  it("refuses holes (ENOMEM) and bad numbers (EINVAL), changing nothing", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const maps = p.maps();
    expect(errorOf(() => m.mlock(p, a, 3 * PAGE_SIZE)).code).toBe("ENOMEM");
    expect(errorOf(() => m.munlock(p, a - PAGE_SIZE, 2 * PAGE_SIZE)).code).toBe("ENOMEM");
    expect(errorOf(() => m.mlock(p, -1, PAGE_SIZE)).code).toBe("EINVAL");
    expect(errorOf(() => m.mlock(p, a, 1.5)).code).toBe("EINVAL");
    expect(errorOf(() => m.mlock(p, 2 ** 64 - PAGE_SIZE, 2 * PAGE_SIZE)).code).toBe("EINVAL");
    expect(p.maps()).toEqual(maps);
    expect(present(p, a)).toBe(false);
    m.mlock(p, a, 0);
    expect(p.maps()).toEqual(maps);
    expect(m.counters().nr_mlock).toBe(0);
    m.check();
  });

  it("a PROT_NONE VMA stops populating with ENOMEM, the range left VM_LOCKED, as in the kernel", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_NONE);
    expect(errorOf(() => m.mlock(p, a, 3 * PAGE_SIZE)).code).toBe("ENOMEM");
    expect([locked(p, a), locked(p, a + PAGE_SIZE), locked(p, a + 2 * PAGE_SIZE)]).toEqual([true, true, true]);
    expect([present(p, a), present(p, a + 2 * PAGE_SIZE)]).toEqual([true, false]);
    m.check();
  });

  it("madvise(MADV_DONTNEED or MADV_FREE) of locked memory is EINVAL and discards nothing", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeU32(a, 3);
    m.mlock(p, a + PAGE_SIZE, PAGE_SIZE);
    expect(errorOf(() => p.madvise(a, 2 * PAGE_SIZE, MADV_DONTNEED)).code).toBe("EINVAL");
    expect(errorOf(() => p.madvise(a, 2 * PAGE_SIZE, MADV_FREE)).code).toBe("EINVAL");
    expect(p.readU32(a)).toBe(3);
    m.check();
  });
});

describe("mlockall, MAP_LOCKED and the calls that create or move mappings", () => {
  it("MCL_CURRENT locks what is mapped, MCL_FUTURE what is mapped later; munlockall ends both", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    m.mlockall(p, MCL_FUTURE);
    expect(locked(p, a)).toBe(false);
    const b = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    expect(locked(p, b) && mlocked(m, pfnOf(p, b + PAGE_SIZE))).toBe(true);
    m.mlockall(p, MCL_CURRENT);
    expect(locked(p, a) && mlocked(m, pfnOf(p, a))).toBe(true);
    // MCL_CURRENT alone ends MCL_FUTURE.
    expect(locked(p, p.mmap(0, PAGE_SIZE, RW, ANON))).toBe(false);
    m.mlockall(p, MCL_CURRENT | MCL_FUTURE);
    m.munlockall(p);
    expect(p.maps().every((v) => !(v.flags & VM_LOCKED))).toBe(true);
    expect(locked(p, p.mmap(0, PAGE_SIZE, RW, ANON))).toBe(false);
    expect(m.counters().nr_mlock).toBe(0);
    for (const f of [0, 8, MCL_ONFAULT, MCL_CURRENT | MCL_ONFAULT, 1.5]) expect(errorOf(() => m.mlockall(p, f)).code).toBe("EINVAL");
    m.check();
  });

  it("MAP_LOCKED maps locked and populated", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, ANON | MAP_LOCKED);
    expect(locked(p, a)).toBe(true);
    expect(m.counters().nr_mlock).toBe(3);
    m.check();
  });

  it("mremap: a grown locked mapping is populated; MREMAP_DONTUNMAP leaves the old range unlocked", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON | MAP_LOCKED);
    const b = p.mremap(a, 2 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE);
    expect(m.counters().nr_mlock).toBe(4);
    expect(mlocked(m, pfnOf(p, b + 3 * PAGE_SIZE))).toBe(true);
    const c = p.mremap(b, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect([locked(p, b), locked(p, c)]).toEqual([false, true]);
    expect(m.counters().nr_mlock).toBe(4);
    m.check();
  });

  it("mprotect making a locked read-only private mapping writable breaks COW at once", () => {
    const { m, p } = setup();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ, ANON);
    m.mlock(p, a, 2 * PAGE_SIZE);
    expect(special(p, a)).toBe(true);
    p.mprotect(a, 2 * PAGE_SIZE, RW);
    expect(special(p, a) || special(p, a + PAGE_SIZE)).toBe(false);
    expect(m.counters().nr_mlock).toBe(2);
    m.check();
  });
});

describe("mlocked pages under reclaim and migration", () => {
  it("lazyfree reclaim passes mlocked pages by", () => {
    const m = Machine.create({ nodes: [{ normal: 96 }], minFreeKbytes: 32 });
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    p.touch(a, 8, true, 10n);
    p.madvise(a, 8 * PAGE_SIZE, MADV_FREE);
    m.mlock(p, a, 4 * PAGE_SIZE);
    // Pressure: everything free is taken, so the fault path reclaims lazily-freed pages.
    const b = p.mmap(0, 90 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 90 && !p.run((() => { const x = p.batch(); x.writeU32(b + i * PAGE_SIZE, 1); return x; })()).fault; i++);
    expect(m.counters().pglazyfreed).toBe(4);
    for (let i = 0; i < 4; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(10n + BigInt(i));
    expect(present(p, a + 4 * PAGE_SIZE)).toBe(false);
    m.check();
  });

  it("a locked page keeps its mlock through a trip to device-private memory and back", () => {
    const { m, p } = setup(8);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON | MAP_LOCKED);
    p.writeU32(a, 42);
    const { pg } = privateDevice(m, 8);
    migrateToDevice(m, p, a, 2, pg);
    expect(m.counters().nr_mlock).toBe(0);
    m.check();
    expect(p.readU32(a)).toBe(42);
    expect(mlocked(m, pfnOf(p, a))).toBe(true);
    expect(m.counters().nr_mlock).toBe(1);
    m.check();
  });

  it("migrate_pages moves mlocked pages; mlock_count travels with them", () => {
    const { m, p } = setup();
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, SHARED | MAP_LOCKED);
    const c = p.fork();
    m.mlock(c, s, 2 * PAGE_SIZE);
    expect(m.migratePages(p, [0], [1])).toBe(0);
    expect(m.pfnToNid(pfnOf(c, s))).toBe(1);
    m.munlock(p, s, 2 * PAGE_SIZE);
    expect(mlocked(m, pfnOf(c, s))).toBe(true);
    m.check();
  });

  it("check() catches a page of a locked VMA that lost PG_mlocked", () => {
    const { m, p } = setup();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON | MAP_LOCKED);
    const pfn = pfnOf(p, a);
    const flags = new Uint32Array(m.core.memory.buffer, m.layout.slots[L.PAGE_FLAGS]!, m.config.frames);
    flags[pfn] = flags[pfn]! & ~(1 << PG_mlocked);
    expect(errorOf(() => m.check()).message).toMatch(/VM_LOCKED VMA, but the page is not PG_mlocked/);
    flags[pfn] = flags[pfn]! | (1 << PG_mlocked);
    m.check();
    const lru = new Uint32Array(m.core.memory.buffer, m.layout.slots[L.PAGE_LRU_PREV]!, m.config.frames);
    lru[pfn] = 2;
    expect(errorOf(() => m.check()).message).toMatch(/mlock_count is 2/);
    lru[pfn] = 1;
    m.check();
  });
});

// A cached file page leaves its file LRU list while mlocked (the unevictable "list", whose
// links hold mlock_count) and goes back to the inactive list with its last mlock.
describe("mlocked file pages and the file LRU lists", () => {
  const PG_active = 8;
  const onLru = (m: Machine): number => m.counters().nr_inactive_file + m.counters().nr_active_file;

  function fileSetup(frames = 2048, nodes = 1) {
    const m = Machine.create({ nodes: Array.from({ length: nodes }, () => ({ normal: frames })), content: "tags" });
    const fs = m.mount(m.addBlockDevice("vda", { sectors: 8192 }));
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.ftruncate(4 * PAGE_SIZE);
    return { m, f, p: m.spawn() };
  }

  it("mlock takes a shared file mapping's pages off the LRU (active ones too); munlock puts them back inactive", () => {
    const { m, f, p } = fileSetup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.touch(a, 4, true, 7n);
    // Two more references make page 0 active (folio_mark_accessed).
    f.readTags(0, 1);
    f.readTags(0, 1);
    const pfn0 = pfnOf(p, a);
    expect(m.page.flags(pfn0) & (1 << PG_active)).not.toBe(0);
    expect([onLru(m), m.counters().nr_active_file]).toEqual([4, 1]);
    m.mlock(p, a, 4 * PAGE_SIZE);
    for (let i = 0; i < 4; i++) expect(mlocked(m, pfnOf(p, a + i * PAGE_SIZE))).toBe(true);
    expect(m.page.flags(pfn0) & (1 << PG_active)).toBe(0);
    expect([onLru(m), m.counters().nr_mlock, m.counters().nr_file_pages]).toEqual([0, 4, 4]);
    m.check();
    // Accesses while mlocked activate nothing.
    f.readTags(0, 1);
    f.readTags(0, 1);
    expect(m.page.flags(pfn0) & (1 << PG_active)).toBe(0);
    m.check();
    m.munlock(p, a, 2 * PAGE_SIZE);
    expect([m.counters().nr_inactive_file, m.counters().nr_active_file, m.counters().nr_mlock]).toEqual([2, 0, 2]);
    m.check();
    p.munmap(a, 4 * PAGE_SIZE);
    expect([m.counters().nr_inactive_file, m.counters().nr_mlock]).toEqual([4, 0]);
    m.check();
    expect(f.readTags(0, 4)).toEqual([7n, 8n, 9n, 10n]);
  });

  it("a page two processes lock stays off the LRU until the last lock goes (exit), then goes back once", () => {
    const { m, f, p } = fileSetup();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_LOCKED, f, 0);
    const q = m.spawn();
    const b = q.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, f, 0);
    const pfn = pfnOf(p, a);
    expect(pfnOf(q, b)).toBe(pfn);
    expect([onLru(m), m.counters().nr_mlock]).toEqual([0, 1]);
    m.check();
    q.exit();
    expect(mlocked(m, pfn)).toBe(true);
    expect(onLru(m)).toBe(0);
    m.check();
    p.exit();
    expect(mlocked(m, pfn)).toBe(false);
    expect([m.counters().nr_inactive_file, m.counters().nr_mlock]).toEqual([1, 0]);
    m.check();
  });

  it("reclaim never meets mlocked file pages: under pressure only the others go", () => {
    const { m, f, p } = fileSetup(512);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.touch(a, 4, true, 50n);
    f.fsync();
    m.mlock(p, a, 4 * PAGE_SIZE);
    const pfns = [0, 1, 2, 3].map((i) => pfnOf(p, a + i * PAGE_SIZE));
    const g = f.inode.fs.open("big", O_RDWR | O_CREAT);
    g.ftruncate(1024 * PAGE_SIZE);
    const b = p.mmap(0, 1024 * PAGE_SIZE, PROT_READ, MAP_SHARED, g, 0);
    for (let i = 0; i < 1024; i++) p.readTag(b + i * PAGE_SIZE);
    expect(m.counters().pgsteal_file).toBeGreaterThan(0);
    for (let i = 0; i < 4; i++) {
      expect(pfnOf(p, a + i * PAGE_SIZE)).toBe(pfns[i]);
      expect(mlocked(m, pfns[i]!)).toBe(true);
      expect(p.readTag(a + i * PAGE_SIZE)).toBe(50n + BigInt(i));
    }
    m.check();
  });

  it("truncating a locked mapping's file munlocks and drops the pages with the counters right", () => {
    const { m, f, p } = fileSetup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, f, 0);
    const q = p.fork();
    m.mlock(q, a, 4 * PAGE_SIZE);
    expect(m.counters().nr_mlock).toBe(4);
    f.ftruncate(PAGE_SIZE);
    const c = m.counters();
    expect([c.nr_mlock, c.nr_file_pages, onLru(m)]).toEqual([1, 1, 0]);
    m.check();
    expect(errorOf(() => p.readTag(a + PAGE_SIZE)).code).toBe("SIGBUS");
    f.ftruncate(0);
    expect([m.counters().nr_mlock, m.counters().nr_file_pages, onLru(m)]).toEqual([0, 0, 0]);
    m.check();
  });

  it("migrate_pages moves mlocked file pages: the new pages are mlocked and off the LRU, mlock_count rebuilt", () => {
    const { m, f, p } = fileSetup(2048, 2);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, f, 0);
    p.touch(a, 4, true, 30n);
    const q = p.fork();
    m.mlock(q, a, 2 * PAGE_SIZE);
    expect(m.migratePages(p, [0], [1])).toBe(0);
    for (let i = 0; i < 4; i++) {
      const pfn = pfnOf(p, a + i * PAGE_SIZE);
      expect(m.pfnToNid(pfn)).toBe(1);
      expect(mlocked(m, pfn)).toBe(true);
    }
    expect([m.counters().nr_mlock, onLru(m)]).toEqual([4, 0]);
    m.check();
    // Pages 0 and 1 carry two locks: one munlock leaves them locked.
    m.munlock(p, a, 4 * PAGE_SIZE);
    expect([m.counters().nr_mlock, m.counters().nr_inactive_file]).toEqual([2, 2]);
    m.check();
    for (let i = 0; i < 4; i++) expect(q.readTag(a + i * PAGE_SIZE)).toBe(30n + BigInt(i));
  });

  it("a read-only migration of an mlocked file page keeps its mappings locked; the new page ends mlocked", () => {
    const { m, f, p } = fileSetup(2048, 2);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, f, 0);
    p.touch(a, 2, true, 60n);
    const q = m.spawn();
    const b = q.mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_LOCKED, f, 0);
    const old = pfnOf(p, a);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 2 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, readOnlyEntries: true });
    expect(mig.cpages).toBe(2);
    mig.allocAndCopy({ node: 1 });
    mig.pages();
    m.check({ allowInFlight: true });
    mig.finalize();
    const pfn = pfnOf(p, a);
    expect(pfn).not.toBe(old);
    expect(pfnOf(q, b)).toBe(pfn);
    expect(m.pfnToNid(pfn)).toBe(1);
    expect(mlocked(m, pfn)).toBe(true);
    expect([m.counters().nr_mlock, onLru(m)]).toEqual([2, 0]);
    m.check();
    q.exit();
    expect(mlocked(m, pfn)).toBe(true);
    m.munlock(p, a, 2 * PAGE_SIZE);
    expect([m.counters().nr_mlock, m.counters().nr_inactive_file]).toEqual([0, 2]);
    m.check();
  });

  it("check() catches an mlocked file page left active, and an unevictable page left on a list", () => {
    const { m, f, p } = fileSetup();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.touch(a, 2, true, 1n);
    m.mlock(p, a, PAGE_SIZE);
    const [pfn, other] = [pfnOf(p, a), pfnOf(p, a + PAGE_SIZE)];
    const flags = new Uint32Array(m.core.memory.buffer, m.layout.slots[L.PAGE_FLAGS]!, m.config.frames);
    flags[pfn] = flags[pfn]! | (1 << PG_active);
    expect(errorOf(() => m.check()).message).toMatch(/mlocked \(unevictable\) but PG_active/);
    flags[pfn] = flags[pfn]! & ~(1 << PG_active);
    m.check();
    // PG_unevictable on a page still linked on the inactive list (the bug this guards against).
    flags[other] = flags[other]! | (1 << PG_unevictable);
    expect(errorOf(() => m.check()).message).toMatch(new RegExp(`file LRU lists are corrupt at pfn ${other}`));
    flags[other] = flags[other]! & ~(1 << PG_unevictable);
    m.check();
  });
});
