// FOLL_LONGTERM never leaves a pin in a CMA area: the page moves out first, as
// check_and_migrate_movable_pages does for is_migrate_cma_page.
import { describe, it, expect } from "vitest";
import { Machine, FOLL_WRITE, FOLL_LONGTERM, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from "../src/index.js";

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

describe("FOLL_LONGTERM and CMA", () => {
  it("migrates pages out of a CMA area before pinning them; a plain pin stays there", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }], cma: [{ node: 0, pages: 1536 }] });
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    for (let i = 0; i < 8; i++) p.writeU32(a + i * PAGE_SIZE, 0x5000 + i);
    const before = [...Array(8).keys()].map((i) => pfnOf(p.pte(a + i * PAGE_SIZE)));
    expect(before.every((pfn) => m.pageIsCma(pfn))).toBe(true);
    const plain = m.pinUserPages(p, a + 4 * PAGE_SIZE, 4, FOLL_WRITE).slice();
    expect([...plain].every((pfn) => m.pageIsCma(pfn))).toBe(true);
    const pinned = m.pinUserPages(p, a, 4, FOLL_WRITE | FOLL_LONGTERM).slice();
    for (let i = 0; i < 4; i++) {
      expect(m.pageIsCma(pinned[i]!)).toBe(false);
      expect(pfnOf(p.pte(a + i * PAGE_SIZE))).toBe(pinned[i]);
      expect(p.readU32(a + i * PAGE_SIZE)).toBe(0x5000 + i);
    }
    m.check();
    m.unpinUserPages(pinned);
    m.unpinUserPages(plain);
    m.check();
  });
});
