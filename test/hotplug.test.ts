// Memory offline and online: a pageblock-aligned range is emptied by migration and leaves the
// allocator, or the offline fails with a per-page report and the isolation undone.
import { describe, it, expect } from "vitest";
import { Machine, PAGE_SIZE, MAP_SHARED, MAP_ANONYMOUS, MIGRATE_ISOLATE, MIGRATE_MOVABLE, PageFailureError, type MmError } from "../src/index.js";
import { pfnAt, refused, throwsCode, RW, ANON } from "./compact-helpers.js";

/** Two nodes; node 0's process has written anon pages (forked) and shared pages all over node 0. */
function setup(n = 2400) {
  const m = Machine.create({ nodes: [{ normal: 4096 }, { normal: 2048 }], content: "tags" });
  const p = m.spawn();
  const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
  p.touch(a, n, true, 1000n);
  const s = p.mmap(0, 256 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
  p.touch(s, 256, true, 9000n);
  const child = p.fork();
  const addrs = [...Array.from({ length: n }, (_, i) => a + i * PAGE_SIZE), ...Array.from({ length: 256 }, (_, i) => s + i * PAGE_SIZE)];
  const tagOf = (x: number): bigint => (x >= s && x < s + 256 * PAGE_SIZE ? 9000n + BigInt((x - s) / PAGE_SIZE) : 1000n + BigInt((x - a) / PAGE_SIZE));
  const intact = (): void => {
    for (const x of addrs) {
      expect(p.readTag(x)).toBe(tagOf(x));
      expect(child.readTag(x)).toBe(tagOf(x));
      expect(pfnAt(child, x)).toBe(pfnAt(p, x));
    }
  };
  const inRange = (lo: number, hi: number): number[] => addrs.filter((x) => pfnAt(p, x) >= lo && pfnAt(p, x) < hi);
  // The 1024-page range of node 0 (above the zero page's) holding the most pages.
  const R = [1024, 2048, 3072].reduce((best, lo) => (inRange(lo, lo + 1024).length > inRange(best, best + 1024).length ? lo : best));
  return { m, p, child, a, addrs, intact, inRange, R };
}

function failureOf(call: () => unknown): PageFailureError {
  let err: unknown;
  try {
    call();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PageFailureError);
  return err as PageFailureError;
}

describe("memory offline", () => {
  it("migrates everything out, and the range stays out of every allocation until it is online again", () => {
    const { m, p, intact, inRange, R } = setup();
    expect(inRange(R, R + 1024).length).toBeGreaterThan(500);
    const z0 = m.zones()[0]!;
    const free0 = z0.free;
    const before = m.counters();
    const r = m.offlinePages(R, 1024);
    expect(r.migrated).toBeGreaterThan(500);
    expect(inRange(R, R + 1024)).toEqual([]);
    intact();
    const z1 = m.zones()[0]!;
    expect([z1.present, z1.managed, z1.offline]).toEqual([3072, z0.managed - 1024, 1024]);
    // The range's free pages left, and the pages that moved out took free pages elsewhere.
    expect(m.counters().nr_free_pages).toBe(before.nr_free_pages - 1024);
    expect(z1.free).toBeLessThan(free0);
    expect(m.pageblockMigratetype(R)).toBe(MIGRATE_ISOLATE);
    m.check();
    // Allocations, compaction and migration never reach it.
    const b = p.mmap(0, 1500 * PAGE_SIZE, RW, ANON);
    p.touch(b, 1500, true, 1n);
    m.compactMemory();
    expect(inRange(R, R + 1024)).toEqual([]);
    for (let i = 0; i < 1500; i++) {
      const pfn = pfnAt(p, b + i * PAGE_SIZE);
      expect(pfn < R || pfn >= R + 1024).toBe(true);
    }
    m.check();
    p.munmap(b, 1500 * PAGE_SIZE);
    m.onlinePages(R, 1024);
    const z2 = m.zones()[0]!;
    expect([z2.present, z2.managed, z2.offline]).toEqual([4096, z0.managed, 0]);
    expect(m.pageblockMigratetype(R)).toBe(MIGRATE_MOVABLE);
    intact();
    m.check();
  });

  it("empties a whole node's zone onto the other node", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }, { normal: 2048 }], content: "tags" });
    const p = m.spawn({ node: 1 });
    const a = p.mmap(0, 1000 * PAGE_SIZE, RW, ANON);
    p.touch(a, 1000, true, 5n);
    expect(pfnAt(p, a)).toBeGreaterThanOrEqual(4096);
    m.offlinePages(4096, 2048);
    for (let i = 0; i < 1000; i++) {
      expect(pfnAt(p, a + i * PAGE_SIZE)).toBeLessThan(4096);
      expect(p.readTag(a + i * PAGE_SIZE)).toBe(5n + BigInt(i));
    }
    expect(m.zones()[1]!.present).toBe(0);
    m.check();
    // Every page of the node is offline: faults there fall back to node 0.
    const b = p.mmap(0, 10 * PAGE_SIZE, RW, ANON);
    p.touch(b, 10, true, 1n);
    expect(pfnAt(p, b)).toBeLessThan(4096);
    m.onlinePages(4096, 2048);
    m.check();
  });

  it("fails EBUSY over a pinned page with a per-page report; the isolation is undone, moved pages stay valid", () => {
    const { m, p, intact, inRange, R } = setup();
    const addr = inRange(R, R + 1024)[5]!;
    const pinned = pfnAt(p, addr);
    m.page.get(pinned);
    const before = m.counters();
    const err = failureOf(() => m.offlinePages(R, 1024));
    expect(err.code).toBe("EBUSY");
    expect(err.fn).toBe("offline_pages");
    expect(err.failures).toEqual([expect.objectContaining({ pfn: pinned, kind: "pinned", errno: -16, extraRefs: 1 })]);
    expect(err.message).toMatch(/could not move: pfn \d+ is held by 1 reference/);
    expect(pfnAt(p, addr)).toBe(pinned);
    expect(inRange(R, R + 1024)).toEqual([addr]);
    expect(m.counters().pgmigrate_success).toBeGreaterThan(before.pgmigrate_success);
    const z = m.zones()[0]!;
    expect([z.present, z.offline]).toEqual([4096, 0]);
    expect(m.counters().nr_free_pages).toBe(before.nr_free_pages);
    expect(m.pageblockMigratetype(R)).toBe(MIGRATE_MOVABLE);
    intact();
    m.check();
    m.page.put(pinned);
    m.offlinePages(R, 1024);
    intact();
    m.check();
  });

  it("refuses the zero page's block with EBUSY before migrating anything", () => {
    const { m, p, addrs } = setup();
    const where = addrs.map((x) => pfnAt(p, x));
    const before = m.counters();
    const err = failureOf(() => m.offlinePages(0, 1024));
    expect(err.code).toBe("EBUSY");
    expect(err.failures).toEqual([expect.objectContaining({ pfn: 0, kind: "reserved", errno: -16 })]);
    expect(err.message).toMatch(/nothing was migrated/);
    expect(err.message).toMatch(/pfn 0 is reserved \(PG_reserved\)/);
    expect(m.counters()).toEqual(before);
    expect(addrs.map((x) => pfnAt(p, x))).toEqual(where);
    m.check();
  });

  it("refuses hwpoisoned pages and CMA pageblocks before migrating anything", () => {
    const { m, p, inRange, R } = setup();
    const victim = pfnAt(p, inRange(R, R + 1024)[0]!);
    expect(m.memoryFailure(victim)).toBe(0);
    const before = m.counters();
    const err = failureOf(() => m.offlinePages(R, 1024));
    expect(err.failures).toEqual([expect.objectContaining({ pfn: victim, kind: "hwpoison" })]);
    expect(m.counters().pgmigrate_success).toBe(before.pgmigrate_success);
    m.check();
    const c = Machine.create({ nodes: [{ normal: 4096 }], content: "tags", cma: [{ node: 0, pages: 1024 }] });
    const cmaErr = failureOf(() => c.offlinePages(2560, 1024));
    expect(cmaErr.failures.map((f) => [f.pfn, f.kind])).toEqual([[3072, "cma"]]);
    expect(c.zones()[0]!.offline).toBe(0);
    c.check();
  });

  it("fails ENOMEM when no memory is left to move the pages to", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 1700 * PAGE_SIZE, RW, ANON);
    p.touch(a, 1700, true, 3n);
    const err = failureOf(() => m.offlinePages(1024, 1024));
    expect(err.code).toBe("ENOMEM");
    expect(err.failures.length).toBeGreaterThan(0);
    expect(err.failures.every((f) => f.kind === "nomem" && f.errno === -12)).toBe(true);
    expect(m.zones()[0]!.offline).toBe(0);
    for (let i = 0; i < 1700; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(3n + BigInt(i));
    m.check();
  });

  it("refuses unaligned, out-of-range and cross-zone ranges, offlining twice and onlining online memory, changing nothing", () => {
    const { m } = setup(600);
    const e = refused(m, "EINVAL", () => m.offlinePages(100, 512));
    expect(e.message).toMatch(/not pageblock-aligned/);
    refused(m, "EINVAL", () => m.offlinePages(512, 100));
    refused(m, "EINVAL", () => m.offlinePages(512, 0));
    refused(m, "EINVAL", () => m.offlinePages(-512, 512));
    refused(m, "EINVAL", () => m.offlinePages(512.5, 512));
    expect(refused(m, "EINVAL", () => m.offlinePages(6144, 512)).message).toMatch(/not system RAM/);
    expect(refused(m, "EINVAL", () => m.offlinePages(3584, 1024)).message).toMatch(/more than one zone/);
    expect(refused(m, "EINVAL", () => m.onlinePages(2048, 512)).message).toMatch(/not all offline/);
    m.offlinePages(2048, 1024);
    expect(refused(m, "EINVAL", () => m.offlinePages(2048, 512)).message).toMatch(/offline already/);
    refused(m, "EINVAL", () => m.offlinePages(1536, 1024));
    refused(m, "EINVAL", () => m.onlinePages(1536, 1024));
    m.onlinePages(2048, 512);
    m.onlinePages(2560, 512);
    refused(m, "EINVAL", () => m.onlinePages(2048, 512));
    m.check();
  });

  it("a notifier that offlines memory while an offline migrates is refused with EBUSY", () => {
    const { m, p, R } = setup(2400);
    let inner: MmError | undefined;
    m.mmuIntervalNotifierInsert(p, 0, 2 ** 46, {
      invalidate(sub, _range, seq) {
        sub.setSeq(seq);
        try {
          m.offlinePages(R === 3072 ? 2048 : 3072, 512);
        } catch (e) {
          inner ??= e as MmError;
        }
        return true;
      },
    });
    m.offlinePages(R, 1024);
    expect(inner?.code).toBe("EBUSY");
    expect(m.zones()[0]!.offline).toBe(1024);
    m.check();
    expect(throwsCode("EINVAL", () => m.offlinePages(R, 512)).fn).toBe("offline_pages");
  });
});
