// CMA areas: MIGRATE_CMA pageblocks that movable allocations may use, and cmaAlloc takes back
// by migrating those pages out; failures undo the isolation and take nothing.
import { describe, it, expect } from "vitest";
import {
  Machine, PAGE_SIZE, MIGRATE_CMA, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, PageFailureError, type MachineConfig,
} from "../src/index.js";
import { pfnAt, refused, throwsCode, RW, ANON } from "./compact-helpers.js";

const CFG: MachineConfig = { nodes: [{ normal: 4096 }], content: "tags", cma: [{ node: 0, pages: 1024 }] };
const BASE = 3072;

/** A machine whose process has `n` written pages, many of them in the CMA area. */
function filled(n = 2600, cfg = CFG) {
  const m = Machine.create(cfg);
  const p = m.spawn();
  const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
  p.touch(a, n, true, 100n);
  const inCma = (): number[] => Array.from({ length: n }, (_, i) => a + i * PAGE_SIZE).filter((x) => m.pageIsCma(pfnAt(p, x)));
  const intact = (): void => {
    for (let i = 0; i < n; i++) expect(p.readTag(a + i * PAGE_SIZE)).toBe(100n + BigInt(i));
  };
  return { m, p, a, n, inCma, intact };
}

describe("CMA areas", () => {
  it("are pageblocks of MIGRATE_CMA at the top of their zone, or where configured", () => {
    const m = Machine.create({ nodes: [{ normal: 4096, movable: 2048 }], content: "tags", cma: [{ node: 0, pages: 1024 }, { node: 0, pages: 512 }, { node: 0, zone: "movable", pages: 512, base: 4608 }] });
    expect(m.cmaAreas().map((a) => [a.base, a.pages, a.zone, a.allocated])).toEqual([[3072, 1024, "normal", 0], [2560, 512, "normal", 0], [4608, 512, "movable", 0]]);
    expect(m.pageblockMigratetype(3072)).toBe(MIGRATE_CMA);
    expect(m.pageblockMigratetype(2559)).toBe(MIGRATE_MOVABLE);
    expect([m.pageIsCma(2559), m.pageIsCma(2560), m.pageIsCma(4095), m.pageIsCma(4096), m.pageIsCma(4608), m.pageIsCma(5120)]).toEqual([false, true, true, false, true, false]);
    expect([m.pageIsCma(-1), m.pageIsCma(1e9), m.pageIsCma(0.5)]).toEqual([false, false, false]);
    const z = m.zones();
    expect([z[0]!.cma, z[0]!.cmaFree, z[1]!.cma, z[1]!.cmaFree]).toEqual([1536, 1536, 512, 512]);
    expect(m.counters().nr_free_cma).toBe(2048);
    m.check();
  });

  it("hold movable pages once over half the free memory is theirs, and never unmovable ones", () => {
    const { m, p, a, inCma } = filled();
    expect(inCma().length).toBeGreaterThan(0);
    expect(m.counters().nr_free_cma).toBe(m.zones()[0]!.cmaFree);
    // FOLL_LONGTERM-style targets (not movable) stay out of CMA and claim their pageblocks.
    const pfns = Array.from({ length: 200 }, (_, i) => pfnAt(p, a + i * PAGE_SIZE));
    const mig = m.migrateDevicePfns(pfns);
    expect(mig.allocAndCopy({ node: 0, movable: false })).toBe(200);
    mig.finalize();
    for (let i = 0; i < 200; i++) {
      const pfn = pfnAt(p, a + i * PAGE_SIZE);
      expect(m.pageIsCma(pfn)).toBe(false);
      expect(m.pageblockMigratetype(pfn)).toBe(MIGRATE_UNMOVABLE);
    }
    m.check();
  });

  it("cmaAlloc migrates the area's movable pages out and takes the pages; cmaRelease gives them back", () => {
    const { m, p, a, n, inCma, intact } = filled();
    const held = inCma();
    expect(held.length).toBeGreaterThan(100);
    const before = m.counters();
    const pfn = m.cmaAlloc(0, 1024);
    expect(pfn).toBe(BASE);
    expect(inCma()).toEqual([]);
    intact();
    for (let i = 0; i < 1024; i += 97) {
      expect(m.page.refcount(pfn + i)).toBe(1);
      expect(m.page.mapcount(pfn + i)).toBe(0);
    }
    const c = m.counters();
    expect(c.cma_alloc_success).toBe(1);
    expect(c.pgmigrate_success - before.pgmigrate_success).toBe(held.length);
    expect(c.nr_free_cma).toBe(0);
    expect(m.cmaAreas()[0]!.allocated).toBe(1024);
    expect(m.pageblockMigratetype(BASE)).toBe(MIGRATE_CMA);
    m.check();
    // Allocated CMA pages are unmovable: compaction leaves them alone.
    m.compactZone(0);
    for (let i = 0; i < 1024; i += 97) expect(m.page.refcount(pfn + i)).toBe(1);
    m.cmaRelease(0, pfn, 1024);
    expect(m.cmaAreas()[0]!.allocated).toBe(0);
    expect(m.counters().nr_free_cma).toBe(1024);
    expect(m.zones()[0]!.cmaFree).toBe(1024);
    intact();
    m.check();
    p.munmap(a, n * PAGE_SIZE);
    m.check();
  });

  it("aligns runs and hands out free runs one after another", () => {
    const m = Machine.create(CFG);
    const x = m.cmaAlloc(0, 3, 4);
    const y = m.cmaAlloc(0, 3, 4);
    const z = m.cmaAlloc(0, 5);
    expect([x, y, z]).toEqual([BASE, BASE + 16, BASE + 3]);
    expect(m.cmaAreas()[0]!.allocated).toBe(11);
    m.check();
    m.cmaRelease(0, y, 3);
    expect(m.cmaAlloc(0, 2, 4)).toBe(BASE + 16);
    m.check();
  });

  it("fails EBUSY over a pinned page, with a report, undoing everything; a smaller run avoids it", () => {
    const { m, p, inCma, intact } = filled();
    const addr = inCma()[10]!;
    const pinned = pfnAt(p, addr);
    m.page.get(pinned);
    let err: unknown;
    try {
      m.cmaAlloc(0, 1024);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PageFailureError);
    const e = err as PageFailureError;
    expect(e.code).toBe("EBUSY");
    expect(e.errno).toBe(-16);
    expect(e.failures).toEqual([expect.objectContaining({ pfn: pinned, kind: "pinned", extraRefs: 1, code: "EBUSY" })]);
    expect(e.message).toMatch(new RegExp(`pfn ${pinned} is held by 1 reference`));
    expect(m.counters().cma_alloc_fail).toBe(1);
    expect(m.cmaAreas()[0]!.allocated).toBe(0);
    expect(pfnAt(p, addr)).toBe(pinned);
    expect(m.pageblockMigratetype(pinned)).toBe(MIGRATE_CMA);
    // The pages that moved meanwhile stay moved, valid; only the pinned one is left in the area.
    expect(inCma()).toEqual([addr]);
    intact();
    m.check();
    // A run that does not need the pinned page: the busy runs are skipped over.
    const got = m.cmaAlloc(0, 512);
    expect(got + 512 <= pinned || got > pinned).toBe(true);
    expect(m.counters().cma_alloc_success).toBe(1);
    m.page.put(pinned);
    m.check();
  });

  it("fails EBUSY over a page still held after its release, and ENOMEM with no memory to move to", () => {
    const m = Machine.create(CFG);
    const pfn = m.cmaAlloc(0, 1024);
    m.page.get(pfn + 700);
    m.cmaRelease(0, pfn, 1024);
    const err = throwsCode("EBUSY", () => m.cmaAlloc(0, 1024)) as PageFailureError;
    expect(err.failures).toEqual([expect.objectContaining({ pfn: pfn + 700, kind: "unmovable" })]);
    m.page.put(pfn + 700);
    expect(m.cmaAlloc(0, 1024)).toBe(BASE);
    m.check();

    const small = filled(900, { nodes: [{ normal: 1024 }], content: "tags", cma: [{ node: 0, pages: 512 }] });
    expect(small.inCma().length).toBeGreaterThan(400);
    const full = throwsCode("ENOMEM", () => small.m.cmaAlloc(0, 512)) as PageFailureError;
    expect(full.failures.length).toBeGreaterThan(0);
    expect(full.failures.every((f) => f.kind === "nomem" && f.errno === -12)).toBe(true);
    expect(small.m.cmaAreas()[0]!.allocated).toBe(0);
    small.intact();
    small.m.check();
  });

  it("ENOMEM when the area has no free run left", () => {
    const m = Machine.create(CFG);
    m.cmaAlloc(0, 1000);
    const err = throwsCode("ENOMEM", () => m.cmaAlloc(0, 100));
    expect(err.message).toMatch(/no free run of 100 pages/);
    expect(m.counters().cma_alloc_fail).toBe(1);
    m.check();
  });

  it("refuses bad areas, counts, alignments and double releases, changing nothing", () => {
    const m = Machine.create(CFG);
    const pfn = m.cmaAlloc(0, 8);
    refused(m, "EINVAL", () => m.cmaAlloc(1, 8));
    refused(m, "EINVAL", () => m.cmaAlloc(-1, 8));
    refused(m, "EINVAL", () => m.cmaAlloc(0, 0));
    refused(m, "EINVAL", () => m.cmaAlloc(0, 1025));
    refused(m, "EINVAL", () => m.cmaAlloc(0, 2.5));
    refused(m, "EINVAL", () => m.cmaAlloc(0, 8, -1));
    refused(m, "EINVAL", () => m.cmaAlloc(0, 8, 31));
    refused(m, "EINVAL", () => m.cmaRelease(0, pfn, 9));
    refused(m, "EINVAL", () => m.cmaRelease(0, BASE - 1, 2));
    refused(m, "EINVAL", () => m.cmaRelease(0, BASE + 1020, 8));
    refused(m, "EINVAL", () => m.cmaRelease(1, pfn, 8));
    m.cmaRelease(0, pfn, 8);
    const again = refused(m, "EINVAL", () => m.cmaRelease(0, pfn, 8));
    expect(again.message).toMatch(/released twice/);
    const none = Machine.create({ nodes: [{ normal: 1024 }], content: "tags" });
    expect(refused(none, "EINVAL", () => none.cmaAlloc(0, 1)).message).toMatch(/no CMA areas/);
  });

  it("refuses bad area configurations", () => {
    const bad: [MachineConfig["cma"], RegExp][] = [
      [[{ node: 0, pages: 1000 }], /not a multiple of the pageblock/],
      [[{ node: 0, pages: 0 }], /pages must be an integer/],
      [[{ node: 1, pages: 512 }], /node must be an integer/],
      [[{ node: 0, pages: 512, zone: "movable" }], /no movable zone/],
      [[{ node: 0, pages: 512, base: 100 }], /not pageblock-aligned/],
      [[{ node: 0, pages: 512, base: 3584 }, { node: 0, pages: 1024, base: 3072 }], /overlap/],
      [[{ node: 0, pages: 512, base: 4096 }], /do not lie inside/],
      [[{ node: 0, pages: 4096 }], /zero page/],
      [[{ node: 0, pages: 2048 }, { node: 0, pages: 2048 }, { node: 0, pages: 512 }], /zero page|no room/],
      [Array.from({ length: 17 }, () => ({ node: 0, pages: 512 })), /at most 16/],
      [[{ node: 0, pages: 512, size: 3 } as never], /unknown key "size"/],
    ];
    for (const [cma, msg] of bad) {
      const e = throwsCode("EINVAL", () => Machine.create({ nodes: [{ normal: 4096 }], content: "tags", cma }));
      expect(e.message).toMatch(msg);
    }
  });
});
