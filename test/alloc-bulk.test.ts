// The bulk page allocator paths against the page-by-page allocator they replace: a model
// in TypeScript of the per-cpu list and the buddy lists, allocating and freeing one page at
// a time (allocFromZone, freePages, a drain of the PCP_BATCH pages at the pcp list's tail to the buddy lists one by one).
// Random migrations move pages between system RAM and device memory: allocAndCopy allocates
// in bulk, the finalize frees the old pages (the pcp drains go to the buddy lists run by run).
// After every migration each zone's free lists (every list in order), pcp list, free count and
// the counters must be the model's, and machine.check() must pass.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, MAP_ANONYMOUS,
  MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, VM_FAULT_SIGBUS,
} from "../src/index.js";
import { L, ZONE_RECORD } from "../src/layout.js";

const BASE = 0x30000 * PAGE_SIZE;
const PAGES = 1024;
const NONE = 0xffffffff;
const MAX_ORDER = 10;
const PCP_BATCH = 64;
const PCP_HIGH = 6 * PCP_BATCH;

/** One zone's free pages: lists[order] and pcp from head to tail. */
interface ZoneModel {
  id: number;
  start: number;
  end: number;
  wmarkMin: number;
  device: boolean;
  free: number;
  lists: number[][];
  pcp: number[];
}

/** The zones' lists as the Wasm memory holds them. */
function readZones(m: Machine): ZoneModel[] {
  const u32 = new Uint32Array(m.core.memory.buffer);
  const lruNext = m.layout.slots[L.PAGE_LRU_NEXT]! / 4;
  const base = m.layout.slots[L.ZONES]!;
  const walk = (head: number): number[] => {
    const out: number[] = [];
    for (let p = head; p !== NONE; p = u32[lruNext + p]!) out.push(p);
    return out;
  };
  const zones: ZoneModel[] = [];
  for (let id = 0; id < 64; id++) {
    const w = (base + id * ZONE_RECORD) / 4;
    const start = u32[w]!;
    const end = u32[w + 1]!;
    if (end <= start) continue;
    zones.push({
      id, start, end, wmarkMin: u32[w + 6]!, device: u32[w + 3] === 4, free: u32[w + 5]!,
      lists: Array.from({ length: MAX_ORDER + 1 }, (_, o) => walk(u32[w + 16 + o]!)),
      pcp: walk(u32[w + 9]!),
    });
  }
  return zones;
}

/** The page-by-page allocator over a copy of the lists. */
class Model {
  freed = 0;
  allocated = 0;
  failed = 0;

  constructor(readonly zones: ZoneModel[]) {}

  zoneOf(pfn: number): ZoneModel {
    return this.zones.find((z) => pfn >= z.start && pfn < z.end)!;
  }

  private isBuddy(z: ZoneModel, pfn: number, order: number): boolean {
    return z.lists[order]!.includes(pfn);
  }

  private del(z: ZoneModel, pfn: number, order: number): void {
    z.lists[order]!.splice(z.lists[order]!.indexOf(pfn), 1);
  }

  private freeToBuddy(z: ZoneModel, pfn: number, order: number): void {
    while (order < MAX_ORDER) {
      const buddy = pfn ^ (1 << order);
      if (buddy < z.start || buddy >= z.end || !this.isBuddy(z, buddy, order)) break;
      this.del(z, buddy, order);
      pfn = Math.min(pfn, buddy);
      order++;
    }
    z.lists[order]!.unshift(pfn);
  }

  private rmqueue(z: ZoneModel, order: number): number {
    for (let cur = order; cur <= MAX_ORDER; cur++) {
      const pfn = z.lists[cur]![0];
      if (pfn === undefined) continue;
      this.del(z, pfn, cur);
      for (let high = cur; high > order; ) {
        high--;
        z.lists[high]!.unshift(pfn + (1 << high));
      }
      return pfn;
    }
    return NONE;
  }

  /** freePages for an order-0 page. */
  free(pfn: number): void {
    const z = this.zoneOf(pfn);
    z.free++;
    z.pcp.unshift(pfn);
    if (z.device) return;
    this.freed++;
    // free_pcppages_bulk: the coldest pages, off the tail.
    if (z.pcp.length > PCP_HIGH) for (let i = 0; i < PCP_BATCH; i++) this.freeToBuddy(z, z.pcp.pop()!, 0);
  }

  /** allocPages(node 0, order 0, movable): the movable zone first, then the normal one. */
  allocSystem(): number | null {
    const order = this.zones.filter((z) => !z.device).sort((a, b) => b.id - a.id);
    for (const z of order) {
      if (z.free < 1 || z.free - 1 < z.wmarkMin) continue;
      if (z.pcp.length === 0) {
        const block = this.rmqueue(z, 6);
        if (block !== NONE) {
          for (let i = PCP_BATCH; i > 0; i--) z.pcp.unshift(block + i - 1);
        } else {
          for (let i = 0; i < PCP_BATCH; i++) {
            const pfn = this.rmqueue(z, 0);
            if (pfn === NONE) break;
            z.pcp.unshift(pfn);
          }
        }
      }
      const pfn = z.pcp.shift();
      if (pfn === undefined) continue;
      z.free--;
      this.allocated++;
      return pfn;
    }
    this.failed++;
    return null;
  }

  allocDevice(z: ZoneModel): number | null {
    const pfn = z.pcp.shift();
    if (pfn === undefined) return null;
    z.free--;
    return pfn;
  }
}

/** Migrates the pages from `first` (up to n) that are on the same side as the first one. */
type Op = { first: number; n: number; failFirst: boolean };

const opArb: fc.Arbitrary<Op> = fc.record({
  first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: PAGES }), failFirst: fc.boolean(),
});

function machine(normal: number, movable: number, device: number, order: number[]): { m: Machine; run(op: Op): void } {
  const m = Machine.create({ nodes: [{ normal, movable }], content: "tags", deviceMemory: device });
  const owner = { name: "bulk-test" };
  const pg = m.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: device, owner, ops: { migrateToRam: () => VM_FAULT_SIGBUS } });
  const p = m.spawn();
  p.mmap(BASE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  // Touched in a shuffled order, so the pages' pfns do not follow their addresses.
  for (const i of order) p.touch(BASE + i * PAGE_SIZE, 1, true, BigInt(i + 1));
  const pfnAt = (i: number): number => Number((p.pte(BASE + i * PAGE_SIZE) >> 12n) & 0xffffffffffn);
  const onDevice = (i: number): boolean => (p.pte(BASE + i * PAGE_SIZE) & 1n) === 0n;
  const run = (op: Op): void => {
    // The longest run from `first` of pages all on one side.
    const toDevice = !onDevice(op.first);
    let n = 1;
    while (n < op.n && op.first + n < PAGES && onDevice(op.first + n) === !toDevice) n++;
    const before = Array.from({ length: n }, (_, k) => pfnAt(op.first + k));
    const model = new Model(readZones(m));
    const c0 = m.counters();
    const start = BASE + op.first * PAGE_SIZE;
    const mig = m.migrateVmaSetup({
      proc: p, start, end: start + n * PAGE_SIZE, pgmapOwner: owner,
      flags: toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    });
    expect(mig.cpages).toBe(n);
    const got = mig.allocAndCopy(toDevice ? pg : { node: 0 }, { failFirst: op.failFirst });
    mig.finalize();
    // The model allocates entry by entry, then the finalize frees the sources that moved.
    const devZone = model.zoneOf(pg.start);
    const given: number[] = [];
    for (let k = op.failFirst ? 1 : 0; k < n; k++) {
      const d = toDevice ? model.allocDevice(devZone) : model.allocSystem();
      if (d !== null) given.push(d);
    }
    expect(got).toBe(given.length);
    const moved: number[] = [];
    for (let k = 0; k < n; k++) if (pfnAt(op.first + k) !== before[k]) moved.push(k);
    expect(moved.length).toBe(given.length);
    for (const k of moved) model.free(before[k]!);
    expect(moved.map((k) => pfnAt(op.first + k)).sort((a, b) => a - b)).toEqual([...given].sort((a, b) => a - b));
    expect(readZones(m)).toEqual(model.zones);
    const c1 = m.counters();
    expect(Number(c1.pgfree - c0.pgfree)).toBe(model.freed);
    expect(Number(c1.pgalloc_movable + c1.pgalloc_normal - c0.pgalloc_movable - c0.pgalloc_normal)).toBe(model.allocated);
    expect(Number(c1.pgalloc_fail - c0.pgalloc_fail)).toBe(model.failed);
    expect(Number(c1.nr_free_pages - c0.nr_free_pages)).toBe(model.freed - model.allocated);
    m.check();
  };
  return { m, run };
}

describe("bulk allocation and pcp drains vs the page-by-page allocator", () => {
  it("same free lists, pcp lists, counts and counters after random migrations", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        fc.shuffledSubarray(Array.from({ length: PAGES }, (_, i) => i), { minLength: PAGES, maxLength: PAGES }),
        fc.constantFrom([1536, 0], [900, 700], [700, 600]),
        (ops, order, [normal, movable]) => {
          const { run } = machine(normal!, movable!, PAGES, order);
          for (const op of ops) run(op);
        },
      ),
      { numRuns: 25 },
    );
  });

  it("long ascending and descending runs drain as blocks", () => {
    const ids = Array.from({ length: PAGES }, (_, i) => i);
    for (const order of [ids, [...ids].reverse()]) {
      const { run } = machine(1536, 0, PAGES, order);
      // Each run moves the pages from `first` on that share a side; the sizes leave refills'
      // blocks partly taken and drains across the ends of runs.
      for (const [first, n] of [[0, 37], [0, PAGES], [0, PAGES], [0, PAGES], [100, 700], [100, 700], [3, 1000], [0, PAGES], [517, 450], [0, PAGES], [0, PAGES]]) {
        run({ first: first!, n: n!, failFirst: false });
      }
    }
  });
});
