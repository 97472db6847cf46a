import { describe, it, expect } from "vitest";
import {
  Machine, PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED,
  MAP_POPULATE, MADV_DONTNEED, MADV_FREE, MREMAP_MAYMOVE, MREMAP_FIXED, PAGE_SIZE,
} from "../src/index.js";
import { errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED = MAP_SHARED | MAP_ANONYMOUS;

function machine(pages = 8192) {
  return Machine.create({ nodes: [{ normal: pages }] });
}


describe("demand faults", () => {
  it("reads of untouched anonymous memory map the shared zero page", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const before = m.counters();
    expect(p.read(a, 3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    const pte = p.pte(a);
    expect(pte & 1n).toBe(1n); // present
    expect(pte & 2n).toBe(0n); // read-only
    expect(pte & (1n << 9n)).not.toBe(0n); // special
    expect(Number(pte >> 12n)).toBe(0); // the zero pfn
    const after = m.counters();
    expect(after.pgfault - before.pgfault).toBe(3);
    expect(after.zero_page_fault - before.zero_page_fault).toBe(3);
    expect(after.nr_free_pages).toBe(before.nr_free_pages); // page tables come from their own pool
    m.check();
  });

  it("a write to the zero page allocates a fresh zeroed page", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    expect(p.readU32(a + 100)).toBe(0);
    const free = m.counters().nr_free_pages;
    p.writeU32(a + 100, 0xdeadbeef);
    expect(p.readU32(a + 100)).toBe(0xdeadbeef);
    expect(p.readU32(a + 104)).toBe(0);
    expect(m.counters().nr_free_pages).toBe(free - 1);
    expect(m.counters().nr_anon_pages).toBe(1);
    expect(p.pte(a) & 2n).toBe(2n);
    m.check();
  });

  it("MAP_POPULATE faults the range in up front", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 32 * PAGE_SIZE, RW, ANON | MAP_POPULATE);
    expect(p.rss().anon).toBe(32);
    expect(p.walk(a, 32 * PAGE_SIZE)).toMatchObject({ present: 32, writable: 32 });
    m.check();
  });

  it("writes spanning a page boundary land in both pages", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeU32(a + PAGE_SIZE - 2, 0x11223344);
    expect(p.read(a + PAGE_SIZE - 2, 4)).toEqual(new Uint8Array([0x44, 0x33, 0x22, 0x11]));
    expect(p.rss().anon).toBe(2);
    m.check();
  });
});

describe("fork and copy-on-write", () => {
  it("fork then write in parent and child keeps them apart", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 8; i++) p.writeU32(a + i * PAGE_SIZE, 100 + i);
    const c = p.fork();
    m.check();
    expect(p.pte(a) & 2n).toBe(0n); // write-protected in the parent too
    expect(c.readU32(a + 3 * PAGE_SIZE)).toBe(103);
    const cow0 = m.counters().cow_fault;
    p.writeU32(a, 1);
    c.writeU32(a + PAGE_SIZE, 2);
    expect(m.counters().cow_fault - cow0).toBe(2);
    expect([p.readU32(a), c.readU32(a)]).toEqual([1, 100]);
    expect([p.readU32(a + PAGE_SIZE), c.readU32(a + PAGE_SIZE)]).toEqual([101, 2]);
    m.check();
    c.exit();
    m.check();
    // The remaining pages are now the parent's alone: writes reuse them, no copy.
    const reuse0 = m.counters().reuse_fault;
    p.writeU32(a + 5 * PAGE_SIZE, 55);
    expect(m.counters().cow_fault - cow0).toBe(2);
    expect(m.counters().reuse_fault - reuse0).toBe(1);
    m.check();
  });

  it("shared anonymous memory stays shared across fork", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, SHARED);
    p.writeU32(a, 7);
    const c = p.fork();
    c.writeU32(a, 8);
    c.writeU32(a + PAGE_SIZE, 9);
    expect(p.readU32(a)).toBe(8);
    expect(p.readU32(a + PAGE_SIZE)).toBe(9);
    expect(m.counters().nr_shmem).toBe(2);
    m.check();
    p.exit();
    expect(c.readU32(a)).toBe(8);
    c.exit();
    expect(m.counters().nr_shmem).toBe(0);
    m.check();
  });

  it("fork needs page tables only for private mappings", () => {
    const m = Machine.create({ nodes: [{ normal: 16384 }], content: "tags", tablePages: 48 });
    const p = m.spawn();
    const s = p.mmap(0, 8192 * PAGE_SIZE, RW, SHARED);
    p.touch(s, 8192, true, 1n); // 16 PTE tables + upper levels, all under a shared VMA
    const c = p.fork();
    expect(c.readTag(s + 100 * PAGE_SIZE)).toBe(101n);
    m.check();
  });

  it("fork of a zero-page mapping shares the zero page", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.readU32(a);
    const c = p.fork();
    expect(Number(c.pte(a) >> 12n) & 0xfffffff).toBe(0);
    c.writeU32(a, 5);
    expect(p.readU32(a)).toBe(0);
    m.check();
  });
});

describe("protections", () => {
  it("mprotect then write faults with SEGV_ACCERR; contents survive; re-enabling write works", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeU32(a, 42);
    p.mprotect(a, 4 * PAGE_SIZE, PROT_READ);
    expect(p.pte(a) & 2n).toBe(0n);
    const e = errorOf(() => p.writeU32(a, 1));
    expect(e.code).toBe("SIGSEGV");
    expect(e.fault).toEqual({ addr: a, access: "write", si_code: "SEGV_ACCERR" });
    expect(p.readU32(a)).toBe(42);
    m.check();
    p.mprotect(a, 4 * PAGE_SIZE, RW);
    p.writeU32(a, 43);
    expect(p.readU32(a)).toBe(43);
    expect(m.counters().cow_fault).toBe(0); // the exclusive page is reused
    m.check();
  });

  it("PROT_NONE blocks reads; PROT_WRITE-only and PROT_EXEC-only are readable (x86)", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    p.writeU32(a, 1);
    p.mprotect(a, PAGE_SIZE, PROT_NONE);
    expect(errorOf(() => p.readU32(a)).fault?.si_code).toBe("SEGV_ACCERR");
    m.check();
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_WRITE);
    p.mprotect(a + 2 * PAGE_SIZE, PAGE_SIZE, PROT_EXEC);
    expect(p.readU32(a + PAGE_SIZE)).toBe(0);
    expect(p.readU32(a + 2 * PAGE_SIZE)).toBe(0);
    expect(errorOf(() => p.writeU32(a + 2 * PAGE_SIZE, 1)).code).toBe("SIGSEGV");
    p.mprotect(a, PAGE_SIZE, PROT_READ);
    expect(p.readU32(a)).toBe(1);
    expect(p.maps().length).toBe(3);
    m.check();
  });

  it("a fault stops the batch at the faulting op and reports it", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    const b = p.batch();
    b.writeU32(a, 1);
    b.writeU32(a + PAGE_SIZE, 2);
    b.writeU32(a + 4, 3);
    const r = p.run(b);
    expect(r.completed).toBe(1);
    expect(r.fault?.fault).toEqual({ addr: a + PAGE_SIZE, access: "write", si_code: "SEGV_MAPERR" });
    expect(p.readU32(a + 4)).toBe(0);
    m.check();
  });
});

describe("munmap and mremap", () => {
  it("munmap mid-range splits the mapping and frees its pages", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 10 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 10; i++) p.writeU32(a + i * PAGE_SIZE, i + 1);
    const free = m.counters().nr_free_pages;
    p.munmap(a + 3 * PAGE_SIZE, 4 * PAGE_SIZE);
    expect(m.counters().nr_free_pages).toBe(free + 4);
    expect(p.maps().length).toBe(2);
    expect(errorOf(() => p.readU32(a + 4 * PAGE_SIZE)).fault?.si_code).toBe("SEGV_MAPERR");
    expect([0, 1, 2, 7, 8, 9].map((i) => p.readU32(a + i * PAGE_SIZE))).toEqual([1, 2, 3, 8, 9, 10]);
    m.check();
    p.munmap(a, 10 * PAGE_SIZE);
    expect(p.maps().length).toBe(0);
    expect(m.counters().nr_anon_pages).toBe(0);
    m.check();
  });

  it("mremap keeps contents when moving, growing and shrinking", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeU32(a + i * PAGE_SIZE, 10 + i);
    p.mmap(a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ, ANON | MAP_FIXED); // blocks growing in place
    const b = p.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE);
    expect(b).not.toBe(a);
    expect([0, 1, 2, 3].map((i) => p.readU32(b + i * PAGE_SIZE))).toEqual([10, 11, 12, 13]);
    expect(p.readU32(b + 6 * PAGE_SIZE)).toBe(0);
    expect(errorOf(() => p.readU32(a)).fault?.si_code).toBe("SEGV_MAPERR");
    m.check();
    const c = p.mremap(b, 8 * PAGE_SIZE, 2 * PAGE_SIZE);
    expect(c).toBe(b);
    expect(p.readU32(b + PAGE_SIZE)).toBe(11);
    expect(errorOf(() => p.readU32(b + 2 * PAGE_SIZE)).code).toBe("SIGSEGV");
    const grown = p.mremap(b, 2 * PAGE_SIZE, 3 * PAGE_SIZE);
    expect(grown).toBe(b);
    const target = 0x10000000;
    const d = p.mremap(b, 3 * PAGE_SIZE, 3 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    expect(d).toBe(target);
    expect([p.readU32(d), p.readU32(d + PAGE_SIZE), p.readU32(d + 2 * PAGE_SIZE)]).toEqual([10, 11, 0]);
    m.check();
  });

  it("mremap of shared memory keeps the link to the object", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, SHARED);
    const c = p.fork();
    p.writeU32(a + PAGE_SIZE, 77);
    const b = p.mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, 0x20000000);
    p.writeU32(b, 5);
    expect(c.readU32(a)).toBe(5);
    expect(c.readU32(a + PAGE_SIZE)).toBe(77);
    m.check();
  });
});

describe("madvise", () => {
  it("MADV_DONTNEED drops private contents but keeps shared ones", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, SHARED);
    p.writeU32(a, 1);
    p.writeU32(s, 2);
    p.madvise(a, 2 * PAGE_SIZE, MADV_DONTNEED);
    p.madvise(s, 2 * PAGE_SIZE, MADV_DONTNEED);
    expect(p.rss()).toEqual({ anon: 0, shmem: 0 });
    expect(p.readU32(a)).toBe(0);
    expect(p.readU32(s)).toBe(2);
    m.check();
  });

  it("MADV_FREE pages are reclaimed under pressure unless written again", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 512 * PAGE_SIZE, RW, ANON);
    p.touch(a, 512, true, 1000n);
    p.madvise(a, 512 * PAGE_SIZE, MADV_FREE);
    expect(m.counters().pglazyfree).toBe(512);
    p.writeTag(a, 5n); // written again: must survive
    const hog = p.mmap(0, 4096 * PAGE_SIZE, RW, ANON);
    const r = (() => {
      const b = p.batch();
      b.touch(hog, 4096, true);
      return p.run(b);
    })();
    expect(r.fault?.code).toBe("ENOMEM");
    const c = m.counters();
    expect(c.pglazyfreed).toBe(511);
    expect(p.readTag(a)).toBe(5n);
    expect(p.readTag(a + PAGE_SIZE)).toBe(0n);
    m.check();
  });

  it("MADV_FREE contents stay readable while there is no pressure", () => {
    const m = machine();
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeU32(a, 9);
    p.madvise(a, 4 * PAGE_SIZE, MADV_FREE);
    expect(p.readU32(a)).toBe(9);
    expect(p.pte(a) & 0x40n).toBe(0n); // clean
    m.check();
  });
});

describe("out of memory", () => {
  it("a write that cannot get a page reports ENOMEM and changes nothing", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 2048 * PAGE_SIZE, RW, ANON);
    const b = p.batch();
    b.touch(a, 2048, true, 1n);
    const r = p.run(b);
    expect(r.fault?.code).toBe("ENOMEM");
    const z = m.zones()[0]!;
    expect(z.free).toBeGreaterThanOrEqual(z.wmarkMin);
    expect(z.free - 1).toBeLessThan(z.wmarkMin);
    const before = m.counters();
    expect(() => p.writeTag(a + 2047 * PAGE_SIZE, 3n)).toThrow(/ENOMEM/);
    expect(m.counters().nr_free_pages).toBe(before.nr_free_pages);
    expect(p.readTag(a)).toBe(1n);
    m.check();
    p.exit();
    m.check();
    expect(m.counters().nr_free_pages).toBe(1023);
  });
});
