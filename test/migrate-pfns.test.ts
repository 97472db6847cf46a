// migrate_device_pfns over system frames: the pages of a pfn list move to another node
// through migration entries (every mapping, in every process), contents intact; pages
// held by extra references, free or reserved frames stay where they are.
import { describe, it, expect } from "vitest";
import { Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE } from "../src/index.js";

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

function setup() {
  const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 1024 }] });
  const p = m.spawn();
  const anon = p.mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const shm = p.mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  for (let i = 0; i < 8; i++) {
    p.writeU32(anon + i * PAGE_SIZE, 0x1000 + i);
    p.writeU32(shm + i * PAGE_SIZE, 0x2000 + i);
  }
  return { m, p, anon, shm };
}

const nodeOf = (m: Machine, pfn: number): number => m.zones().find((z) => pfn >= z.start && pfn < z.end)!.node;

describe("migrate_device_pfns on system memory", () => {
  it("moves anon and shmem pages, shared with a child, to another node", () => {
    const { m, p, anon, shm } = setup();
    const child = p.fork();
    const addrs = [...Array(8).keys()].flatMap((i) => [anon + i * PAGE_SIZE, shm + i * PAGE_SIZE]);
    const pfns = addrs.map((a) => pfnOf(p.pte(a)));
    expect(pfns.every((pfn) => nodeOf(m, pfn) === 0)).toBe(true);
    const mig = m.migrateDevicePfns(pfns);
    expect(mig.cpages).toBe(16);
    expect(mig.allocAndCopy({ node: 1 })).toBe(16);
    mig.finalize();
    for (const [i, a] of addrs.entries()) {
      expect(nodeOf(m, pfnOf(p.pte(a)))).toBe(1);
      // fork copies private PTEs only; the child's shared ones fault in.
      if (i % 2 === 0) expect(pfnOf(child.pte(a))).toBe(pfnOf(p.pte(a)));
      expect(p.readU32(a)).toBe((i % 2 ? 0x2000 : 0x1000) + (i >> 1));
      expect(child.readU32(a)).toBe((i % 2 ? 0x2000 : 0x1000) + (i >> 1));
    }
    expect(m.counters().pgmigrate_success).toBe(16);
    m.check();
  });

  it("leaves pages with extra references, free and reserved frames alone", () => {
    const { m, p, anon } = setup();
    const held = pfnOf(p.pte(anon));
    const free = m.zones()[1]!.start + 5;
    m.page.get(held);
    const mig = m.migrateDevicePfns([held, free, 0, pfnOf(p.pte(anon + PAGE_SIZE))]);
    expect(mig.cpages).toBe(1);
    expect(mig.src[0]).toBe(0n);
    mig.allocAndCopy({ node: 1 });
    mig.finalize();
    expect(pfnOf(p.pte(anon))).toBe(held);
    expect(p.readU32(anon)).toBe(0x1000);
    expect(nodeOf(m, pfnOf(p.pte(anon + PAGE_SIZE)))).toBe(1);
    m.page.put(held);
    m.check();
  });

  it("rejects bad pfn lists before touching anything", () => {
    const { m } = setup();
    expect(() => m.migrateDevicePfns([])).toThrow(/EINVAL/);
    expect(() => m.migrateDevicePfns([1, 99999])).toThrow(/pfns\[1\] = 99999/);
    expect(m.migrations.every((x) => x === null)).toBe(true);
    m.check();
  });
});
