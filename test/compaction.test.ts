// Memory compaction: the migrate scanner from the zone's start and the free scanner from its
// end build high-order free blocks out of fragmented memory, moving every mapping of a page
// and its contents; pinned, unmovable and reserved pages stay where they are.
import { describe, it, expect } from "vitest";
import { Machine, PAGE_SIZE, MAP_SHARED, MAP_ANONYMOUS, MMU_NOTIFY_CLEAR, type MmuNotifierRange } from "../src/index.js";
import { fragmented, contentsIntact, pfnAt, refused, throwsCode, RW, ANON } from "./compact-helpers.js";

/** Free pages in blocks of order 9 and 10. */
const highOrder = (freeArea: number[]): number => freeArea.slice(9).reduce((s, n, i) => s + (n << (9 + i)), 0);

describe("compaction", () => {
  it("builds high-order free blocks out of a fragmented zone, contents intact", () => {
    const f = fragmented();
    const { m } = f;
    const before = m.counters();
    const r = m.compactZone(0);
    expect(r.status).toBe("COMPACT_COMPLETE");
    expect(r.migrated).toBeGreaterThan(500);
    expect(r.isolated).toBe(r.migrated + r.failed);
    expect(r.failed).toBe(0);
    expect(r.skippedReserved).toBe(1);
    expect(highOrder(r.freeAreaBefore)).toBe(0);
    expect(highOrder(r.freeAreaAfter)).toBeGreaterThanOrEqual(1024);
    expect(r.freeAreaAfter).toEqual(m.zones()[0]!.freeArea);
    const c = m.counters();
    expect(c.pgmigrate_success - before.pgmigrate_success).toBe(r.migrated);
    expect(c.compact_migrate_scanned).toBe(r.migrateScanned);
    expect(c.compact_free_scanned).toBe(r.freeScanned);
    expect(c.compact_isolated).toBe(r.isolated + r.freeIsolated);
    expect(c.compact_stall).toBe(0);
    expect(c.nr_free_pages).toBe(before.nr_free_pages);
    contentsIntact(f);
    // The pages moved up: the bottom of the zone is free.
    expect(Math.min(...f.kept.map((a) => pfnAt(f.p, a)))).toBeGreaterThanOrEqual(1024);
    m.check();
    // Compacting a compacted zone again moves little (the block where the scanners met).
    expect(m.compactZone(0).migrated).toBeLessThan(r.migrated / 4);
    contentsIntact(f);
  });

  it("for an order, stops once a block that large is free, as direct compaction counted", () => {
    const full = fragmented().m.compactZone(0);
    const f = fragmented();
    const r = f.m.compactZone(0, 9);
    expect(r.status).toBe("COMPACT_SUCCESS");
    expect(r.freeAreaAfter.slice(9).some((n) => n > 0)).toBe(true);
    expect(r.migrated).toBeLessThan(full.migrated);
    const c = f.m.counters();
    expect([c.compact_stall, c.compact_success, c.compact_fail]).toEqual([1, 1, 0]);
    contentsIntact(f);
    f.m.check();
    // A block that large is free now: nothing to do, nothing counted.
    const again = f.m.compactZone(0, 9);
    expect(again.status).toBe("COMPACT_SUCCESS");
    expect(again.migrateScanned).toBe(0);
    expect(f.m.counters().compact_stall).toBe(1);
  });

  it("skips compaction without room for the pages in flight, and fails where no block can form", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 3840 * PAGE_SIZE, RW, ANON);
    p.touch(a, 3840, true, 1n);
    const r = m.compactZone(0, 9);
    expect(r.status).toBe("COMPACT_SKIPPED");
    expect(r.migrateScanned).toBe(0);
    expect(m.counters().compact_stall).toBe(0);
    // Every other page pinned, the rest dropped: no order-9 block can form, however pages move.
    const pins = Array.from({ length: 1920 }, (_, i) => pfnAt(p, a + 2 * i * PAGE_SIZE));
    for (const pfn of pins) m.page.get(pfn);
    for (let i = 1; i < 3840; i += 2) p.madvise(a + i * PAGE_SIZE, PAGE_SIZE, 4);
    const s = m.compactZone(0, 9);
    expect(s.status).toBe("COMPACT_COMPLETE");
    // The migrate scanner saw the pins below where the scanners met; there was nothing else to move.
    expect(s.skippedPinned).toBeGreaterThan(1000);
    expect(s.skippedPinned).toBeLessThanOrEqual(1920);
    expect(s.migrated).toBe(0);
    const c = m.counters();
    expect([c.compact_stall, c.compact_success, c.compact_fail]).toEqual([1, 0, 1]);
    expect(s.freeAreaAfter.slice(9)).toEqual([0, 0]);
    for (const [i, pfn] of pins.entries()) expect(pfnAt(p, a + 2 * i * PAGE_SIZE)).toBe(pfn);
    for (const pfn of pins) m.page.put(pfn);
    m.check();
  });

  it("leaves pinned, unmovable and reserved pages where they are, and moves them once unpinned", () => {
    const f = fragmented({ nodes: [{ normal: 4096 }], cma: [{ node: 0, pages: 512, base: 512 }] });
    const { m, p } = f;
    const pinnedAddr = f.kept[3]!;
    const pinned = pfnAt(p, pinnedAddr);
    m.page.get(pinned);
    const kernel = m.cmaAlloc(0, 2);
    const r = m.compactZone(0);
    expect(r.skippedPinned).toBe(1);
    expect(r.skippedUnmovable).toBe(2);
    expect(r.skippedReserved).toBe(1);
    expect(pfnAt(p, pinnedAddr)).toBe(pinned);
    expect(m.page.refcount(kernel)).toBe(1);
    contentsIntact(f);
    m.check();
    m.page.put(pinned);
    const again = m.compactZone(0);
    expect(again.skippedPinned).toBe(0);
    expect(pfnAt(p, pinnedAddr)).not.toBe(pinned);
    contentsIntact(f);
    m.cmaRelease(0, kernel, 2);
    m.check();
  });

  it("moves every mapping of shared and forked pages; notifiers hear of it", () => {
    const f = fragmented({ nodes: [{ normal: 4096 }] }, 1024);
    const { m, p } = f;
    const shm = p.mmap(0, 64 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.touch(shm, 64, true, 5000n);
    const child = p.fork();
    const events: MmuNotifierRange[] = [];
    m.mmuIntervalNotifierInsert(child, 0, 2 ** 46, {
      invalidate(sub, range, seq) {
        sub.setSeq(seq);
        events.push(range);
        return true;
      },
    });
    const r = m.compactZone(0);
    expect(r.migrated).toBeGreaterThan(0);
    expect(events.some((e) => e.event === MMU_NOTIFY_CLEAR)).toBe(true);
    for (let i = 0; i < 64; i++) {
      expect(child.readTag(shm + i * PAGE_SIZE)).toBe(5000n + BigInt(i));
      expect(pfnAt(child, shm + i * PAGE_SIZE)).toBe(pfnAt(p, shm + i * PAGE_SIZE));
    }
    for (const a of f.kept) {
      expect(pfnAt(child, a)).toBe(pfnAt(p, a));
      expect(child.readTag(a)).toBe(p.readTag(a));
    }
    contentsIntact(f);
    m.check();
  });

  it("compacts every zone of a node, and of the machine", () => {
    const m = Machine.create({ nodes: [{ normal: 2048, movable: 1024 }, { normal: 1024 }], content: "tags" });
    const p = m.spawn({ node: 0 });
    const a = p.mmap(0, 2048 * PAGE_SIZE, RW, ANON);
    p.touch(a, 2048, true, 9n);
    for (let i = 0; i < 2048; i += 2) p.madvise(a + i * PAGE_SIZE, PAGE_SIZE, 4);
    const node0 = m.compactNode(0);
    expect(node0.map((r) => r.zone)).toEqual([0, 1]);
    expect(node0.every((r) => r.node === 0)).toBe(true);
    expect(node0.reduce((s, r) => s + r.migrated, 0)).toBeGreaterThan(0);
    const all = m.compactMemory();
    expect(all.map((r) => r.zone)).toEqual([0, 1, 2]);
    for (let i = 1; i < 2048; i += 2) expect(p.readTag(a + i * PAGE_SIZE)).toBe(9n + BigInt(i));
    m.check();
  });

  it("a callback that compacts again is refused, and the outer compaction rolls its batch back", () => {
    const f = fragmented({ nodes: [{ normal: 4096 }] }, 1024);
    const { m, p } = f;
    let inner: unknown;
    m.mmuIntervalNotifierInsert(p, 0, 2 ** 46, {
      invalidate(sub, _range, seq) {
        sub.setSeq(seq);
        try {
          m.compactZone(0);
        } catch (e) {
          inner = e;
          throw e;
        }
        return true;
      },
    });
    const err = throwsCode("EBUSY", () => m.compactZone(0));
    expect(err).toBe(inner);
    expect(m.migrations.every((x) => x === null)).toBe(true);
    contentsIntact(f);
    m.check();
  });

  it("refuses bad zones, nodes and orders, changing nothing", () => {
    const { m } = fragmented({ nodes: [{ normal: 2048 }], content: "tags" }, 256);
    refused(m, "EINVAL", () => m.compactZone(1));
    refused(m, "EINVAL", () => m.compactZone(-1));
    refused(m, "EINVAL", () => m.compactZone(0.5));
    refused(m, "EINVAL", () => m.compactZone(0, 11));
    refused(m, "EINVAL", () => m.compactZone(0, -2));
    refused(m, "EINVAL", () => m.compactZone(0, 2.5));
    refused(m, "EINVAL", () => m.compactNode(1));
    refused(m, "EINVAL", () => m.compactNode(0, 99));
  });
});
