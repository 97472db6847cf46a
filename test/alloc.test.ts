import { describe, it, expect } from "vitest";
import { Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, PAGE_SIZE } from "../src/index.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("zones and the buddy allocator", () => {
  it("lays out zones node by node with kernel watermarks and the zero page reserved", () => {
    const m = Machine.create({ nodes: [{ normal: 4096, movable: 2048 }, { normal: 1000 }], content: "tags" });
    const z = m.zones();
    expect(z.map((x) => [x.node, x.name, x.start, x.end])).toEqual([
      [0, "Normal", 0, 4096], [0, "Movable", 4096, 6144], [1, "Normal", 6144, 7144],
    ]);
    expect(z[0]!.managed).toBe(4095); // pfn 0 is the zero page
    expect(z.map((x) => x.free)).toEqual([4095, 2048, 1000]);
    expect(m.counters().nr_free_pages).toBe(4095 + 2048 + 1000);
    for (const x of z) {
      expect(x.wmarkMin).toBeGreaterThan(0);
      expect(x.wmarkLow).toBeGreaterThan(x.wmarkMin);
      expect(x.wmarkHigh).toBeGreaterThan(x.wmarkLow);
      // Free blocks per order and the pcp cache add up to the free count.
      expect(x.freeArea.reduce((s, n, o) => s + (n << o), 0) + x.pcp).toBe(x.free);
    }
    // 6144..7144 is not 1024-aligned at its end: the tail is split into smaller blocks.
    expect(z[2]!.freeArea[10]).toBe(0);
    m.check();
  });

  it("splits blocks on allocation and merges them back on free", () => {
    const m = Machine.create({ nodes: [{ normal: 8192 }], content: "tags", minFreeKbytes: 0 });
    const start = m.zones()[0]!.freeArea.slice();
    const p = m.spawn();
    const a = p.mmap(0, 3000 * PAGE_SIZE, RW, ANON);
    p.touch(a, 3000, true, 1n);
    const mid = m.zones()[0]!.freeArea;
    expect(mid).not.toEqual(start);
    expect(m.counters().pgalloc_normal).toBe(3000);
    m.check();
    // Free in an interleaved order so merging has to cascade.
    for (let i = 0; i < 3000; i += 2) p.madvise(a + i * PAGE_SIZE, PAGE_SIZE, 4 /* MADV_DONTNEED */);
    m.check();
    p.exit();
    expect(m.zones()[0]!.pcp).toBeGreaterThan(0);
    m.drainPages();
    expect(m.zones()[0]!.pcp).toBe(0);
    expect(m.zones()[0]!.freeArea).toEqual(start);
    expect(m.counters().pgfree).toBe(3000);
    m.check();
  });

  it("user pages prefer ZONE_MOVABLE, then ZONE_NORMAL, then other nodes", () => {
    const m = Machine.create({ nodes: [{ normal: 2048, movable: 1024 }, { normal: 4096 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 100 * PAGE_SIZE, RW, ANON);
    p.touch(a, 100, true);
    expect(m.counters().pgalloc_movable).toBe(100);
    expect(m.counters().pgalloc_normal).toBe(0);
    const q = m.spawn({ node: 1 });
    const b = q.mmap(0, 50 * PAGE_SIZE, RW, ANON);
    q.touch(b, 50, true);
    expect(m.zones()[2]!.free).toBe(4096 - 50);
    // Exhaust node 0 down to its watermarks: the rest spills to node 1.
    const big = p.mmap(0, 4000 * PAGE_SIZE, RW, ANON);
    p.touch(big, 4000, true);
    const z = m.zones();
    expect(z[1]!.free).toBe(z[1]!.wmarkMin);
    expect(z[0]!.free).toBe(z[0]!.wmarkMin);
    expect(z[2]!.free).toBeLessThan(4096 - 50);
    m.check();
  });
});

describe("scale", () => {
  it("a 4 Mi-page (16 GiB) machine in tags mode fits one instance within 48 bytes of metadata per page", () => {
    const m = Machine.create({ nodes: [{ normal: 3 << 20, movable: 1 << 20 }], content: "tags" });
    // 42 bytes of struct page (with the ledger of GUP references and pin control holds) and 4 of check scratch.
    expect(m.layout.metadataPerPage).toBeLessThanOrEqual(48);
    expect(m.counters().nr_free_pages).toBe((4 << 20) - 1);
    expect(m.memoryBytes).toBeLessThan(2 ** 32);
    const p = m.spawn();
    const a = p.mmap(0, 65536 * PAGE_SIZE, RW, ANON);
    p.touch(a, 65536, true, 7n);
    expect(p.readTag(a + 65535 * PAGE_SIZE)).toBe(7n + 65535n);
    m.check();
  });
});
