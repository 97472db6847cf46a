// Property test: random DAX stores and loads, block writes and reads, CPU writes to anon
// memory, DAX unmap/remap, onlining as RAM (with allocations landing there) and offlining
// again, against a shadow of the pmem contents and of every sector's write counter;
// machine.check() and a full comparison after every operation.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Machine, MmError, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, type Process } from "../src/index.js";
import type { PmemDevice } from "../src/pmem/index.js";

const SECTORS = 512;
const BUF = 16;
const DAX = 0x4000_0000;
const RW = PROT_READ | PROT_WRITE;

type Op =
  | { k: "daxStore"; s: number; tag: bigint }
  | { k: "daxLoad"; s: number }
  | { k: "blockWrite"; ss: number[]; bi: number[] }
  | { k: "blockRead"; s: number; b: number }
  | { k: "bufWrite"; b: number; tag: bigint }
  | { k: "unmap" }
  | { k: "remap" }
  | { k: "online"; unmapFirst: boolean }
  | { k: "offline" }
  | { k: "fill"; n: number };

const sector = fc.integer({ min: 0, max: SECTORS - 1 });
const tag = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant("daxStore" as const), s: sector, tag }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("daxLoad" as const), s: sector }) },
  {
    weight: 4,
    arbitrary: fc.integer({ min: 1, max: 6 }).chain((n) =>
      fc.record({ k: fc.constant("blockWrite" as const), ss: fc.array(sector, { minLength: n, maxLength: n }), bi: fc.array(fc.integer({ min: 0, max: BUF - 1 }), { minLength: n, maxLength: n }) }),
    ),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("blockRead" as const), s: sector, b: fc.integer({ min: 0, max: BUF - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("bufWrite" as const), b: fc.integer({ min: 0, max: BUF - 1 }), tag }) },
  { weight: 1, arbitrary: fc.constant({ k: "unmap" as const }) },
  { weight: 1, arbitrary: fc.constant({ k: "remap" as const }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("online" as const), unmapFirst: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ k: "offline" as const }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("fill" as const), n: fc.integer({ min: 1, max: 200 }) }) },
);

/** How often the runs reached the mode changes (so that the property covers them). */
const seen = { online: 0, offline: 0 };

const pfnAt = (p: Process, addr: number): number => Number((p.pte(addr) >> 12n) & 0xffffffffffn);

class World {
  readonly m = Machine.create({ nodes: [{ normal: 2048 }], content: "tags", deviceMemory: 1024 });
  readonly pm: PmemDevice = this.m.registerPmem("pmem0", { pages: SECTORS });
  readonly p = this.m.spawn();
  readonly buf = this.p.mmap(0, BUF * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  /** Sector contents; undefined once RAM mode owned the range. */
  media: (bigint | undefined)[] = new Array(SECTORS).fill(0n);
  wear: number[] = new Array(SECTORS).fill(0);
  bufTags: (bigint | undefined)[] = new Array(BUF).fill(0n);
  /** Anon pages written in RAM mode: address and tag. */
  fills: { addr: number; n: number; base: bigint }[] = [];
  mapped = false;
  nextTag = 1n << 40n;

  constructor() {
    this.p.touch(this.buf, BUF, true, 0n);
    for (let i = 0; i < BUF; i++) this.bufTags[i] = BigInt(i);
    this.remap();
  }

  private onPmem(pfn: number): boolean {
    return pfn >= this.pm.start && pfn < this.pm.end;
  }

  /** A CPU store at `addr` (present already) reached the media if its pfn is pmem's. */
  private stored(addr: number): void {
    const pfn = pfnAt(this.p, addr);
    if (this.onPmem(pfn)) this.wear[pfn - this.pm.start]!++;
  }

  remap(): void {
    this.pm.daxMmap(this.p, { addr: DAX, offset: 0, length: SECTORS * PAGE_SIZE, prot: RW, flags: MAP_SHARED | MAP_FIXED });
    this.mapped = true;
  }

  run(op: Op): void {
    const { p, pm } = this;
    const ram = pm.mode === "ram";
    switch (op.k) {
      case "daxStore":
        if (!this.mapped) return;
        p.writeTag(DAX + op.s * PAGE_SIZE, op.tag);
        this.media[op.s] = op.tag;
        this.wear[op.s]!++;
        return;
      case "daxLoad": {
        if (!this.mapped) return;
        const t = p.readTag(DAX + op.s * PAGE_SIZE);
        if (this.media[op.s] !== undefined) expect(t).toBe(this.media[op.s]);
        this.media[op.s] = t;
        return;
      }
      case "blockWrite": {
        const pfns = op.bi.map((b) => pfnAt(p, this.buf + b * PAGE_SIZE));
        if (ram) {
          expect(() => pm.write(op.ss, pfns)).toThrow(/EBUSY/);
          return;
        }
        pm.write(op.ss, pfns);
        op.ss.forEach((s, i) => {
          this.media[s] = this.bufTags[op.bi[i]!];
          this.wear[s]!++;
        });
        return;
      }
      case "blockRead": {
        const pfn = pfnAt(p, this.buf + op.b * PAGE_SIZE);
        if (ram) {
          expect(() => pm.read([op.s], [pfn])).toThrow(/EBUSY/);
          return;
        }
        pm.read([op.s], [pfn]);
        this.bufTags[op.b] = this.media[op.s] ?? (pm.peek(op.s) as bigint);
        this.media[op.s] = this.bufTags[op.b];
        return;
      }
      case "bufWrite":
        p.writeTag(this.buf + op.b * PAGE_SIZE, op.tag);
        this.bufTags[op.b] = op.tag;
        this.stored(this.buf + op.b * PAGE_SIZE);
        return;
      case "unmap":
        if (this.mapped) p.munmap(DAX, SECTORS * PAGE_SIZE);
        this.mapped = false;
        return;
      case "remap":
        if (!ram && !this.mapped) this.remap();
        return;
      case "online":
        if (ram) return;
        if (op.unmapFirst) this.run({ k: "unmap" });
        if (this.mapped) {
          expect(() => pm.onlineAsRam()).toThrow(/EBUSY/);
          return;
        }
        pm.onlineAsRam();
        this.media.fill(undefined);
        seen.online++;
        return;
      case "offline":
        if (!ram) return;
        pm.offlineRam();
        seen.offline++;
        return;
      case "fill": {
        const addr = p.mmap(0, op.n * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
        const base = this.nextTag;
        this.nextTag += 1n << 20n;
        try {
          p.touch(addr, op.n, true, base);
        } catch (e) {
          // Out of memory: the pages before the failing one were written; then the mapping goes.
          expect((e as MmError).code).toBe("ENOMEM");
          for (let i = 0; i < op.n && p.pte(addr + i * PAGE_SIZE) & 1n; i++) this.stored(addr + i * PAGE_SIZE);
          p.munmap(addr, op.n * PAGE_SIZE);
          return;
        }
        for (let i = 0; i < op.n; i++) this.stored(addr + i * PAGE_SIZE);
        this.fills.push({ addr, n: op.n, base });
        return;
      }
    }
  }

  compare(): void {
    const { m, p, pm } = this;
    m.check();
    expect(Array.from({ length: SECTORS }, (_, s) => pm.writeCount(s))).toEqual(this.wear);
    if (pm.mode === "storage") {
      for (let s = 0; s < SECTORS; s++) if (this.media[s] !== undefined && pm.peek(s) !== this.media[s]) expect(pm.peek(s), `sector ${s}`).toBe(this.media[s]);
    }
    for (let b = 0; b < BUF; b++) if (this.bufTags[b] !== undefined) expect(p.readTag(this.buf + b * PAGE_SIZE)).toBe(this.bufTags[b]);
    for (const f of this.fills) for (let i = 0; i < f.n; i += 17) expect(p.readTag(f.addr + i * PAGE_SIZE)).toBe(f.base + BigInt(i));
    const o = pm.structPageOverhead();
    expect(o.bytes).toBe(pm.mode === "ram" ? SECTORS * m.layout.metadataPerPage : 0);
  }
}

describe("pmem property", () => {
  it("DAX stores, block I/O, online and offline keep contents and write counters as the shadow says", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 40 }), (ops) => {
        const w = new World();
        for (const op of ops) {
          w.run(op);
          w.compare();
        }
      }),
      { numRuns: 20, seed: 0x5eed01 },
    );
    expect(seen.online).toBeGreaterThan(0);
    expect(seen.offline).toBeGreaterThan(0);
  });
});
