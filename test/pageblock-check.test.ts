// machine.check() over pageblocks, CMA areas and offline memory: each invariant, broken on
// purpose through the machine's memory, is reported; restored, the check passes again.
import { describe, it, expect } from "vitest";
import { Machine, MIGRATE_CMA, MIGRATE_MOVABLE } from "../src/index.js";
import { L } from "../src/layout.js";

function machine() {
  const m = Machine.create({ nodes: [{ normal: 4096 }], content: "tags", cma: [{ node: 0, pages: 1024 }] });
  m.check();
  return m;
}

/** Breaks something, expects check() to name it, then puts it back. */
function caught(m: Machine, msg: RegExp, breakIt: () => () => void): void {
  const restore = breakIt();
  expect(() => m.check()).toThrow(msg);
  restore();
  m.check();
}

describe("check() of pageblocks, CMA and offline memory", () => {
  it("catches a CMA type outside the areas, and an area block that lost it", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2500 * 4096, 3, 0x22);
    p.touch(a, 2500, true, 1n);
    const busy = [1, 2, 3, 4].find((b) => Array.from({ length: 512 }, (_, i) => b * 512 + i).every((pfn) => m.core.pageRefcount(pfn) > 0))!;
    expect(busy).toBeDefined();
    caught(m, new RegExp(`pageblock at pfn ${busy * 512} has flags 0x4, which disagree with its CMA area \\(none\\)`), () => {
      m.pageblocks[busy] = MIGRATE_CMA;
      return () => void (m.pageblocks[busy] = MIGRATE_MOVABLE);
    });
    // The area's free pages sit on the CMA lists: a block that lost its type has them on the wrong lists.
    caught(m, /free block at pfn 3\d+ \(order \d+\) is on the free lists of class 1/, () => {
      m.pageblocks[6] = MIGRATE_MOVABLE;
      return () => void (m.pageblocks[6] = MIGRATE_CMA);
    });
  });

  it("catches an isolated pageblock at rest, and free pages on the wrong class's lists", () => {
    const m = machine();
    // Isolating a block that holds free pages first fails on them (they sit on the general lists).
    caught(m, /free block at pfn \d+ \(order \d+\) is on the free lists of class 0/, () => {
      m.pageblocks[2] = MIGRATE_MOVABLE | 8;
      return () => void (m.pageblocks[2] = MIGRATE_MOVABLE);
    });
    // A block with no free page: the isolation itself is reported.
    const p = m.spawn();
    const a = p.mmap(0, 3000 * 4096, 3, 0x22);
    p.touch(a, 3000, true, 1n);
    const busy = [1, 2, 3, 4, 5].find((b) => Array.from({ length: 512 }, (_, i) => b * 512 + i).every((pfn) => m.core.pageRefcount(pfn) > 0))!;
    expect(busy).toBeDefined();
    caught(m, new RegExp(`pageblock at pfn ${busy * 512} is isolated with no isolation in flight`), () => {
      m.pageblocks[busy] = MIGRATE_MOVABLE | 8;
      return () => void (m.pageblocks[busy] = MIGRATE_MOVABLE);
    });
  });

  it("catches an offline frame in use, and a freed page still marked allocated from CMA", () => {
    const m = machine();
    m.offlinePages(1024, 512);
    const refs = new Int32Array(m.core.memory.buffer, m.layout.slots[L.PAGE_REF]!, 4096);
    caught(m, /offline pfn 1100 is in use \(refcount 1/, () => {
      refs[1100] = 1;
      return () => void (refs[1100] = 0);
    });
    const offlineCount = new Uint32Array(m.core.memory.buffer, m.core.zoneExtBase() + 188, 1);
    caught(m, /zone 0 has 512 offline pages but records 0/, () => {
      offlineCount[0] = 0;
      return () => void (offlineCount[0] = 512);
    });
    const pfn = m.cmaAlloc(0, 4);
    caught(m, new RegExp(`pfn ${pfn + 1} is allocated from CMA area 0 but free`), () => {
      refs[pfn + 1] = 0;
      return () => void (refs[pfn + 1] = 1);
    });
    m.cmaRelease(0, pfn, 4);
    m.onlinePages(1024, 512);
    m.check();
  });
});
