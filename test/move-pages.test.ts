// move_pages(2) and migrate_pages(2): per-page status, shared, pinned, locked and duplicate
// pages, a full target node, bounded retries, do_migrate_pages' pairing of nodes, bad input.
import { describe, it, expect } from "vitest";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL,
  NR_MAX_MIGRATE_PAGES_RETRY, MIGRATE_VMA_SELECT_SYSTEM, type Process,
} from "../src/index.js";
import { PG_mlocked, PG_unevictable } from "../src/page.js";
import { errorOf, privateDevice, migrateToDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const EFAULT = -14;
const ENOENT = -2;
const EACCES = -13;
const EBUSY = -16;
const ENOMEM = -12;
const pfnOf = (p: Process, addr: number): number => Number((p.pte(addr) >> 12n) & 0xffffffffffn);
const pages = (a: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + i * PAGE_SIZE);

function setup(nodes = [1024, 1024, 1024]) {
  const m = Machine.create({ nodes: nodes.map((normal) => ({ normal })), deviceMemory: 16 });
  const p = m.spawn();
  const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
  for (let i = 0; i < 8; i++) p.writeU32(a + i * PAGE_SIZE, 0x7000 + i);
  return { m, p, a };
}

describe("move_pages", () => {
  it("with no nodes, reports each page's node: -EFAULT without a mapping or for the zero page, -ENOENT with no page", () => {
    const { m, p, a } = setup();
    const b = p.mmap(0, 3 * PAGE_SIZE, PROT_READ, ANON);
    p.readU32(b);
    const pg = privateDevice(m, 4).pg;
    migrateToDevice(m, p, a + 7 * PAGE_SIZE, 1, pg);
    const r = m.movePages(p, [a + 5, b, b + PAGE_SIZE, a + 7 * PAGE_SIZE, 0x1000, 2 ** 60], null);
    expect(r).toEqual({ status: [0, EFAULT, ENOENT, ENOENT, EFAULT, EFAULT], notMigrated: 0 });
    m.check();
  });

  it("moves each page to its node, contents intact, runs of nodes in order", () => {
    const { m, p, a } = setup();
    const before = m.counters();
    const r = m.movePages(p, pages(a, 6), [1, 1, 2, 0, 2, 1], MPOL_MF_MOVE);
    expect(r).toEqual({ status: [1, 1, 2, 0, 2, 1], notMigrated: 0 });
    expect(m.movePages(p, pages(a, 6), null).status).toEqual([1, 1, 2, 0, 2, 1]);
    for (let i = 0; i < 8; i++) expect(p.readU32(a + i * PAGE_SIZE)).toBe(0x7000 + i);
    const c = m.counters();
    // The page already on node 0 did not move.
    expect(c.pgmigrate_success - before.pgmigrate_success).toBe(5);
    expect(c.numa_hit - before.numa_hit).toBe(5);
    m.check();
  });

  it("-EACCES for a page another process maps, unless MPOL_MF_MOVE_ALL; then it moves for both", () => {
    const { m, p, a } = setup();
    const c = p.fork();
    expect(m.movePages(p, [a], [1], MPOL_MF_MOVE).status).toEqual([EACCES]);
    expect(m.movePages(p, [a], [1], MPOL_MF_MOVE_ALL).status).toEqual([1]);
    expect(pfnOf(c, a)).toBe(pfnOf(p, a));
    expect(c.readU32(a)).toBe(0x7000);
    const s = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeU32(s, 9);
    expect(m.movePages(p, [s], [2], 0).status).toEqual([2]);
    m.check();
  });

  it("-EBUSY for a pinned page (extra references), counted as not migrated", () => {
    const { m, p, a } = setup();
    const pfn = pfnOf(p, a + PAGE_SIZE);
    m.page.get(pfn);
    expect(m.movePages(p, pages(a, 3), [1, 1, 1])).toEqual({ status: [1, EBUSY, 1], notMigrated: 1 });
    expect(pfnOf(p, a + PAGE_SIZE)).toBe(pfn);
    m.page.put(pfn);
    expect(m.movePages(p, [a + PAGE_SIZE], [1]).status).toEqual([1]);
    m.check();
  });

  it("retries a locked page at most NR_MAX_MIGRATE_PAGES_RETRY passes, and moves it once unlocked", () => {
    const { m, p, a } = setup();
    const pfn = pfnOf(p, a);
    expect(m.page.trylock(pfn)).toBe(true);
    const passes: number[] = [];
    const r = m.movePages(p, [a, a + PAGE_SIZE], [1, 1], 0, { onRetry: (n) => passes.push(n) });
    expect(r).toEqual({ status: [EBUSY, 1], notMigrated: 1 });
    expect(passes).toEqual(Array.from({ length: NR_MAX_MIGRATE_PAGES_RETRY - 1 }, (_, i) => i + 1));
    const seen: number[] = [];
    const r2 = m.movePages(p, [a], [2], 0, { onRetry: (n) => { seen.push(n); if (n === 3) m.page.unlock(pfn); } });
    expect(r2).toEqual({ status: [2], notMigrated: 0 });
    expect(seen).toEqual([1, 2, 3]);
    expect(p.readU32(a)).toBe(0x7000);
    m.check();
  });

  it("-ENOMEM for the pages a full node has no room for; the others move", () => {
    const { m, p, a } = setup([1024, 132]);
    const room = m.zones()[1]!.free - m.zones()[1]!.wmarkMin;
    const big = p.mmap(0, (room + 4) * PAGE_SIZE, RW, ANON);
    p.touch(big, room + 4, true, 100n);
    const r = m.movePages(p, pages(big, room + 4), Array(room + 4).fill(1));
    expect(r.status.slice(0, room).every((s) => s === 1)).toBe(true);
    expect(r.status.slice(room)).toEqual([ENOMEM, ENOMEM, ENOMEM, ENOMEM]);
    expect(r.notMigrated).toBe(4);
    expect(p.readTag(big + (room + 3) * PAGE_SIZE)).toBe(100n + BigInt(room + 3));
    expect(m.movePages(p, [a], [0]).status).toEqual([0]);
    m.check();
  });

  it("a page met twice in one run of nodes fails its second isolation (-EBUSY); in separate runs it moves twice", () => {
    const { m, p, a } = setup();
    expect(m.movePages(p, [a, a + 8, a], [1, 1, 1]).status).toEqual([1, EBUSY, EBUSY]);
    expect(m.movePages(p, [a, a + 8, a + PAGE_SIZE], [2, 0, 2]).status).toEqual([2, 0, 2]);
    m.check();
  });

  it("an mlocked page moves and stays mlocked", () => {
    const { m, p, a } = setup();
    m.mlock(p, a, PAGE_SIZE);
    expect(m.movePages(p, [a], [2]).status).toEqual([2]);
    expect(m.page.testFlag(pfnOf(p, a), PG_mlocked) && m.page.testFlag(pfnOf(p, a), PG_unevictable)).toBe(true);
    expect(m.counters().nr_mlock).toBe(1);
    m.check();
  });

  it("refuses bad input before anything moves", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 0 }, { normal: 512 }] });
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeU32(a, 1);
    p.writeU32(a + PAGE_SIZE, 2);
    const before = m.movePages(p, pages(a, 2), null).status;
    const cases: [() => unknown, string, RegExp][] = [
      [() => m.movePages(p, [a], [2], 8), "EINVAL", /flags/],
      [() => m.movePages(p, [a, a + PAGE_SIZE], [2]), "EINVAL", /as long as addrs/],
      [() => m.movePages(p, [a, a + PAGE_SIZE], [2, 1]), "ENODEV", /nodes\[1\] = 1/],
      [() => m.movePages(p, [a, a + PAGE_SIZE], [2, 7]), "ENODEV", /nodes\[1\] = 7/],
      [() => m.movePages(p, [a, a + PAGE_SIZE], [2, -1]), "ENODEV", /nodes\[1\] = -1/],
      [() => m.movePages(p, [a, a + PAGE_SIZE], [2, 0.5]), "EINVAL", /not a node number/],
      [() => m.movePages(p, [a, -4096], [2, 2]), "EINVAL", /addrs\[1\]/],
      [() => m.movePages(p, "x" as unknown as number[], null), "EINVAL", /addrs/],
    ];
    for (const [call, code, text] of cases) {
      const e = errorOf(call);
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(text)]);
    }
    expect(m.movePages(p, pages(a, 2), null).status).toEqual(before);
    expect(m.counters().pgmigrate_success).toBe(0);
    expect(m.movePages(p, [], [])).toEqual({ status: [], notMigrated: 0 });
    m.check();
  });

  it("EBUSY when every migration slot is taken", () => {
    const { m, p, a } = setup();
    const q = m.spawn();
    const b = q.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    q.touch(b, 4, true, 1n);
    const migs = [0, 1, 2, 3].map((i) => m.migrateVmaSetup({ proc: q, start: b + i * PAGE_SIZE, end: b + (i + 1) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM }));
    expect(errorOf(() => m.movePages(p, [a], [1])).code).toBe("EBUSY");
    expect(errorOf(() => m.migratePages(p, [0], [1])).code).toBe("EBUSY");
    for (const mig of migs) mig.abort();
    expect(m.movePages(p, [a], [1]).status).toEqual([1]);
    m.check();
  });
});

describe("migrate_pages", () => {
  it("moves every page of a process from one node to another and returns 0", () => {
    const { m, p, a } = setup();
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeU32(s, 5);
    expect(m.migratePages(p, [0], [2])).toBe(0);
    expect(m.movePages(p, [...pages(a, 8), s], null).status).toEqual(Array(9).fill(2));
    for (let i = 0; i < 8; i++) expect(p.readU32(a + i * PAGE_SIZE)).toBe(0x7000 + i);
    expect(p.readU32(s)).toBe(5);
    m.check();
  });

  it("pairs nodes as do_migrate_pages does: [0,1] to [1,2] empties node 1 first", () => {
    const { m, p, a } = setup();
    m.movePages(p, pages(a, 4), [1, 1, 0, 0]);
    expect(m.migratePages(p, [0, 1], [1, 2])).toBe(0);
    expect(m.movePages(p, pages(a, 4), null).status).toEqual([2, 2, 1, 1]);
    // Unequal sets: a node that is also a destination keeps its pages.
    expect(m.migratePages(p, [0, 1, 2], [2])).toBe(0);
    expect(m.movePages(p, pages(a, 8), null).status).toEqual(Array(8).fill(2));
    m.check();
  });

  it("returns the pages it could not move; MPOL_MF_MOVE leaves shared pages without counting them", () => {
    const { m, p, a } = setup();
    const pinned = pfnOf(p, a + 2 * PAGE_SIZE);
    m.page.get(pinned);
    expect(m.migratePages(p, [0], [1])).toBe(1);
    m.page.put(pinned);
    const c = p.fork();
    expect(m.migratePages(p, [1], [2], MPOL_MF_MOVE)).toBe(0);
    expect(m.movePages(p, pages(a, 3), null).status).toEqual([1, 1, 0]);
    expect(m.migratePages(c, [0, 1], [2, 2])).toBe(0);
    expect(m.movePages(p, pages(a, 3), null).status).toEqual([2, 2, 2]);
    m.check();
  });

  it("a destination that runs out of memory ends it with ENOMEM; pages moved so far stay moved", () => {
    const { m, p } = setup([2048, 160]);
    const room = m.zones()[1]!.free - m.zones()[1]!.wmarkMin;
    const big = p.mmap(0, (room + 10) * PAGE_SIZE, RW, ANON);
    p.touch(big, room + 10, true, 1n);
    const e = errorOf(() => m.migratePages(p, [0], [1]));
    expect(e.code).toBe("ENOMEM");
    expect(m.zones()[1]!.free).toBe(m.zones()[1]!.wmarkMin);
    expect(m.counters().pgmigrate_success).toBe(room);
    for (let i = 0; i < room + 10; i += 37) expect(p.readTag(big + i * PAGE_SIZE)).toBe(1n + BigInt(i));
    m.check();
  });

  it("refuses bad input", () => {
    const { m, p } = setup();
    expect(errorOf(() => m.migratePages(p, [0], [16])).code).toBe("EINVAL");
    expect(errorOf(() => m.migratePages(p, [0], [5])).code).toBe("EINVAL");
    expect(errorOf(() => m.migratePages(p, [-1], [1])).code).toBe("EINVAL");
    expect(errorOf(() => m.migratePages(p, [0], [1], MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)).code).toBe("EINVAL");
    expect(m.counters().pgmigrate_success).toBe(0);
    // Nothing to do is no error.
    expect(m.migratePages(p, [1], [1])).toBe(0);
    expect(m.migratePages(p, [], [1])).toBe(0);
  });
});
