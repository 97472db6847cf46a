// pmem (seed 001): storage mode (no struct pages, block I/O as memcpy, DAX special PTEs,
// write counters) and RAM mode (hot-plugged into a node's ZONE_MOVABLE and offlined again).
import { describe, it, expect } from "vitest";
import {
  Machine, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MREMAP_MAYMOVE, MADV_DONTNEED,
  VM_PFNMAP, FOLL_WRITE, FOLL_LONGTERM, HMM_PFN_REQ_FAULT, HMM_PFN_ERROR, MIGRATE_VMA_SELECT_SYSTEM, MEMORY_DEVICE_PRIVATE,
  PageFailureError, PMEM_REQUEST_NS, KERNEL_STRUCT_PAGE_BYTES,
} from "../src/index.js";
import { L } from "../src/layout.js";
import { pfnAt, refused, throwsCode, RW, ANON } from "./compact-helpers.js";
import { errorOf } from "./drivers.js";

const SHARED = MAP_SHARED;

function machine(content: "bytes" | "tags" = "tags", nodes = [{ normal: 4096 }]) {
  const m = Machine.create({ nodes, content, deviceMemory: 4096 });
  const pm = m.registerPmem("pmem0", { pages: 1024 });
  return { m, pm, p: m.spawn() };
}

describe("pmem storage mode", () => {
  it("carves a pageblock-aligned range with no struct pages out of the device address space", () => {
    const m = Machine.create({ nodes: [{ normal: 3000 }], deviceMemory: 4096, content: "tags" });
    const pg = m.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: 100, owner: "gpu", ops: { migrateToRam: () => 0 } });
    const pm = m.registerPmem("pmem0", { pages: 512 });
    expect(pm.mode).toBe("storage");
    expect(pm.start % 512).toBe(0);
    expect(pm.start).toBeGreaterThanOrEqual(pg.end);
    expect(pm.nrSectors).toBe(512);
    const e = throwsCode("EINVAL", () => m.page.refcount(pm.pfn(3)));
    expect(e.message).toMatch(/has no struct page .*sector 3 of pmem "pmem0" in storage mode/);
    throwsCode("EINVAL", () => m.page.get(pm.start));
    // A later device range goes around it.
    const pg2 = m.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: 600, owner: "gpu", ops: { migrateToRam: () => 0 } });
    expect(pg2.start >= pm.end || pg2.end <= pm.start).toBe(true);
    m.check();
  });

  it("moves sectors by memcpy, durable at once, counting each sector write", () => {
    const { m, pm, p } = machine("bytes");
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const data = new Uint8Array(4 * PAGE_SIZE).map((_, i) => (i * 7 + 3) & 255);
    p.write(a, data);
    const pfns = [0, 1, 2, 3].map((i) => pfnAt(p, a + i * PAGE_SIZE));
    const ns = pm.write([10, 11, 12, 10], pfns);
    expect(ns).toBe(PMEM_REQUEST_NS + (4 * 4096) / 10);
    // Sector 10 was written twice; the last copy wins.
    expect(pm.peek(10)).toEqual(data.subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE));
    expect(pm.peek(11)).toEqual(data.subarray(PAGE_SIZE, 2 * PAGE_SIZE));
    expect(pm.writeCount(10)).toBe(2);
    expect(pm.writeCount(11)).toBe(1);
    expect(pm.writeCount(13)).toBe(0);
    expect(pm.wear()).toEqual({ max: 2, mean: 4 / 1024, sectorsWritten: 4, sectorsTouched: 3 });
    pm.flush();
    pm.powerFail();
    expect(pm.peekDurable(12)).toEqual(data.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE));
    // Read back into the first page.
    pm.read([12], [pfns[0]!]);
    expect(p.read(a, PAGE_SIZE)).toEqual(data.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE));
    expect(pm.stats).toMatchObject({ reads: 1, writes: 1, flushes: 1, sectorsRead: 1, sectorsWritten: 4, errors: 0 });
    expect(pm.clockNs).toBe(pm.stats.busyNs);
    m.check();
  });

  it("refuses bad requests and fails injected errors with EIO, changing nothing", () => {
    const { m, pm, p } = machine();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeTag(a, 5n);
    const pfn = pfnAt(p, a);
    refused(m, "EINVAL", () => pm.write([1024], [pfn]));
    refused(m, "EINVAL", () => pm.write([1, 2], [pfn]));
    refused(m, "EINVAL", () => pm.write([], []));
    expect(refused(m, "EINVAL", () => pm.read([0], [0])).message).toMatch(/reserved/);
    expect(refused(m, "EINVAL", () => pm.read([0], [pm.pfn(5)])).message).toMatch(/no struct page/);
    expect(refused(m, "EINVAL", () => pm.read([0], [4000])).message).toMatch(/free/);
    pm.injectError({ op: "write", sector: 7, count: 2, times: 2 });
    pm.write([3], [pfn]);
    const e = refused(m, "EIO", () => pm.write([1, 8], [pfn, pfn]));
    expect(e.message).toMatch(/injected write error/);
    refused(m, "EIO", () => pm.write([7], [pfn]));
    pm.write([7], [pfn]);
    expect(pm.stats.errors).toBe(2);
    pm.injectError({ op: "flush" });
    throwsCode("EIO", () => pm.flush());
    pm.injectError({ op: "read" });
    pm.clearErrors();
    pm.read([7], [pfn]);
    throwsCode("EINVAL", () => pm.injectError({ op: "trim" as "read" }));
    throwsCode("EINVAL", () => pm.injectError({ op: "read", sector: 1024 }));
    throwsCode("EEXIST", () => m.registerPmem("pmem0", { pages: 512 }));
    throwsCode("EINVAL", () => m.registerPmem("pmem1", { pages: 100 }));
    throwsCode("EINVAL", () => m.registerPmem("pmem1", { pages: 512, node: 3 }));
    throwsCode("ENOMEM", () => m.registerPmem("pmem1", { pages: 4096 }));
    m.check();
  });
});

describe("DAX mappings", () => {
  it("faults special PTEs to the device's pfns; stores reach the media and count as writes", () => {
    const { m, pm, p } = machine("bytes");
    const a = pm.daxMmap(p, { offset: 8 * PAGE_SIZE, length: 4 * PAGE_SIZE, prot: RW, flags: SHARED });
    expect(p.vmaAt(a)!.flags & VM_PFNMAP).toBe(VM_PFNMAP);
    p.writeU32(a + PAGE_SIZE + 16, 0xdeadbeef);
    const pte = p.pte(a + PAGE_SIZE);
    expect(Number((pte >> 12n) & 0xffffffffn)).toBe(pm.pfn(9));
    expect(pte & (1n << 9n)).toBe(1n << 9n); // _PAGE_SPECIAL
    expect(new DataView((pm.peek(9) as Uint8Array).buffer).getUint32(16, true)).toBe(0xdeadbeef);
    expect(pm.writeCount(9)).toBe(1);
    p.touch(a, 4, true);
    expect([8, 9, 10, 11].map((s) => pm.writeCount(s))).toEqual([1, 2, 1, 1]);
    // Reads fault too, and count nothing.
    expect(p.readU32(a + PAGE_SIZE + 16)).toBe(0xdeadbeef); // the touch wrote its tag over the first 8 bytes only
    expect(pm.writeCount(9)).toBe(2);
    // No RSS, no struct page touched.
    expect(p.rss()).toEqual({ anon: 0, shmem: 0 });
    m.check();
    // Block I/O sees what the CPU stored, and the CPU what block I/O wrote.
    const q = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.write(q, new Uint8Array(PAGE_SIZE).fill(0x5a));
    pm.write([10], [pfnAt(p, q)]);
    expect(p.read(a + 2 * PAGE_SIZE, 4)).toEqual(new Uint8Array(4).fill(0x5a));
    m.check();
  });

  it("is MAP_SHARED only and sends accesses past the device to SIGBUS", () => {
    const { m, pm, p } = machine();
    refused(m, "EINVAL", () => pm.daxMmap(p, { offset: 0, length: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE }));
    refused(m, "EINVAL", () => pm.daxMmap(p, { offset: 100, length: PAGE_SIZE, prot: RW, flags: SHARED }));
    refused(m, "EINVAL", () => pm.daxMmap(p, { offset: 0, length: PAGE_SIZE, prot: RW, flags: SHARED | MAP_ANONYMOUS }));
    refused(m, "EINVAL", () => pm.daxMmap(p, { offset: 0, length: 0, prot: RW, flags: SHARED }));
    const a = pm.daxMmap(p, { offset: 1022 * PAGE_SIZE, length: 4 * PAGE_SIZE, prot: RW, flags: SHARED });
    p.writeTag(a + PAGE_SIZE, 1n);
    const r = (() => {
      const b = p.batch();
      b.writeTag(a + 2 * PAGE_SIZE, 2n);
      return p.run(b);
    })();
    expect(r.fault?.code).toBe("SIGBUS");
    m.check();
  });

  it("refuses GUP, pins, hmm faults, migrate_vma and move_pages as the kernel does", () => {
    const { m, pm, p } = machine("tags", [{ normal: 4096 }, { normal: 2048 }]);
    const a = pm.daxMmap(p, { offset: 0, length: 8 * PAGE_SIZE, prot: RW, flags: SHARED });
    p.touch(a, 8, true, 100n);
    expect(refused(m, "EFAULT", () => m.pinUserPages(p, a, 2, FOLL_WRITE | FOLL_LONGTERM)).message).toMatch(/VM_IO\/VM_PFNMAP/);
    refused(m, "EFAULT", () => m.getUserPages(p, a, 1));
    const sub = m.mmuIntervalNotifierInsert(p, a, 8 * PAGE_SIZE, { invalidate: (s, _r, cur) => (s.setSeq(cur), true) });
    const pfns = new BigUint64Array(2);
    const range = (req: bigint) => ({ notifier: sub, notifierSeq: sub.readBegin(), start: a, end: a + 2 * PAGE_SIZE, hmmPfns: pfns, defaultFlags: req, pfnFlagsMask: 0n, devPrivateOwner: null });
    expect(m.hmmRangeFault(range(HMM_PFN_REQ_FAULT))).toBe(-14);
    // Without a fault request the pages are reported as errors (hmm_vma_walk_test).
    expect(m.hmmRangeFault(range(0n))).toBe(0);
    expect(pfns[0]! & HMM_PFN_ERROR).toBe(HMM_PFN_ERROR);
    refused(m, "EINVAL", () => m.migrateVmaSetup({ proc: p, start: a, end: a + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: null }));
    expect(m.movePages(p, [a], null).status).toEqual([-2]);
    expect(m.movePages(p, [a], [1]).status).toEqual([-14]);
    throwsCode("EINVAL", () => p.madvise(a, PAGE_SIZE, MADV_DONTNEED));
    m.mlock(p, a, 8 * PAGE_SIZE);
    expect(p.vmaAt(a)!.flags & 0x2000).toBe(0);
    m.check();
  });

  it("fork copies the special PTEs; munmap and exit drop them; mprotect write-protects and a write fault restores", () => {
    const { m, pm, p } = machine();
    const a = pm.daxMmap(p, { offset: 0, length: 4 * PAGE_SIZE, prot: RW, flags: SHARED });
    p.touch(a, 4, true, 50n);
    const c = p.fork();
    const ACCESSED = 1n << 5n;
    expect(c.pte(a) & ~ACCESSED).toBe(p.pte(a) & ~ACCESSED);
    c.writeTag(a, 77n);
    expect(p.readTag(a)).toBe(77n);
    expect(pm.writeCount(0)).toBe(2);
    m.check();
    p.mprotect(a, 4 * PAGE_SIZE, PROT_READ);
    throwsCode("SIGSEGV", () => p.writeTag(a, 1n));
    p.mprotect(a, 4 * PAGE_SIZE, RW);
    expect(p.pte(a) & 2n).toBe(0n);
    p.writeTag(a + PAGE_SIZE, 9n);
    expect(p.pte(a + PAGE_SIZE) & 2n).toBe(2n);
    m.check();
    // Growing is refused; moving keeps the pfns.
    throwsCode("EFAULT", () => p.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE));
    const b = p.mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | 2, 0x7000_0000);
    expect(p.readTag(b)).toBe(77n);
    m.check();
    p.munmap(b, 2 * PAGE_SIZE);
    c.exit();
    m.check();
    expect(pm.daxMappings().length).toBe(1);
  });

  it("vmfInsertPfns maps given pfns into VM_PFNMAP VMAs only, and no pfn with a struct page", () => {
    const { m, pm, p } = machine();
    const a = pm.daxMmap(p, { offset: 0, length: 4 * PAGE_SIZE, prot: RW, flags: SHARED });
    expect(m.vmfInsertPfns(p, a, [pm.pfn(100), pm.pfn(3)], true)).toBe(2);
    expect(pfnAt(p, a)).toBe(pm.pfn(100));
    expect(m.vmfInsertPfns(p, a, [pm.pfn(7)])).toBe(0); // present already
    const anon = p.mmap(0, PAGE_SIZE, RW, ANON);
    refused(m, "EINVAL", () => m.vmfInsertPfns(p, anon, [pm.pfn(1)]));
    refused(m, "EINVAL", () => m.vmfInsertPfns(p, a + 2 * PAGE_SIZE, [5]));
    refused(m, "EINVAL", () => m.vmfInsertPfns(p, a + 3 * PAGE_SIZE, [pm.pfn(1), pm.pfn(2)]));
    p.writeTag(a, 4n);
    expect(pm.peek(100)).toBe(4n);
    m.check();
  });

  it("check() catches a special PTE to a page with a struct page, and a normal PTE to a pfn without", () => {
    const { m, pm, p } = machine();
    const a = pm.daxMmap(p, { offset: 0, length: PAGE_SIZE, prot: RW, flags: SHARED });
    p.touch(a, 1, true);
    // The PTE slot, found in the page-table pool.
    const want = p.pte(a);
    const mem = new BigUint64Array(m.core.memory.buffer, m.layout.slots[L.TABLES]!, m.layout.slots[L.NTABLES]! * 512);
    const idx = mem.indexOf(want);
    expect(idx).toBeGreaterThan(0);
    mem[idx] = want & ~(1n << 9n);
    expect(() => m.check()).toThrow(/no struct page, with a normal/);
    mem[idx] = (want & ~0xffffffffff000n) | (3000n << 12n);
    expect(() => m.check()).toThrow(/has a struct page/);
    mem[idx] = want;
    m.check();
  });
});

describe("pmem RAM mode", () => {
  it("onlines into the node's ZONE_MOVABLE, serves movable allocations, and offlines by migrating everything out", () => {
    const { m, pm, p } = machine("tags", [{ normal: 2048 }, { normal: 2048 }]);
    const q = m.spawn({ node: 1 });
    pm.onlineAsRam({ node: 1 });
    expect(pm.mode).toBe("ram");
    const z = m.zones().find((x) => x.start === pm.start)!;
    expect(z).toMatchObject({ node: 1, name: "Movable", managed: 1024, free: 1024, present: 1024 });
    expect(m.pfnToNid(pm.start)).toBe(1);
    expect(m.page.refcount).toBeDefined();
    const a = q.mmap(0, 600 * PAGE_SIZE, RW, ANON);
    q.touch(a, 600, true, 1000n);
    const onPmem = Array.from({ length: 600 }, (_, i) => pfnAt(q, a + i * PAGE_SIZE)).filter((x) => x >= pm.start && x < pm.end);
    expect(onPmem.length).toBe(600); // movable allocations prefer ZONE_MOVABLE
    expect(m.page.mapcount(onPmem[0]!)).toBe(1);
    expect(pm.writeCount(onPmem[0]! - pm.start)).toBe(1);
    m.check();
    const o = pm.structPageOverhead();
    expect(o).toMatchObject({ mode: "ram", pages: 1024, bytes: 1024 * m.layout.metadataPerPage, kernelBytesPerPage: KERNEL_STRUCT_PAGE_BYTES, kernelBytes: 65536 });
    expect(o.bytesPerPage).toBeLessThanOrEqual(48);
    refused(m, "EBUSY", () => pm.daxMmap(p, { offset: 0, length: PAGE_SIZE, prot: RW, flags: SHARED }));
    refused(m, "EBUSY", () => pm.write([0], [onPmem[0]!]));
    refused(m, "EINVAL", () => pm.onlineAsRam());
    const r = pm.offlineRam();
    expect(r.migrated).toBe(600);
    expect(pm.mode).toBe("storage");
    expect(m.zones().some((x) => x.start === pm.start)).toBe(false);
    for (let i = 0; i < 600; i++) expect(q.readTag(a + i * PAGE_SIZE)).toBe(1000n + BigInt(i));
    throwsCode("EINVAL", () => m.page.refcount(pm.start));
    expect(pm.structPageOverhead()).toMatchObject({ mode: "storage", bytes: 0, kernelBytes: 0, ramModeKernelBytes: 65536 });
    m.check();
    // And back as RAM on the default node, where no movable zone was configured.
    pm.onlineAsRam();
    expect(m.zones().find((x) => x.start === pm.start)!.node).toBe(0);
    m.check();
  });

  it("allocation faults follow hot-plug: a node rule covers the onlined zone, a zone rule keeps its zone when another goes", () => {
    const { m, pm } = machine("tags", [{ normal: 2048 }, { normal: 2048 }]);
    const q = m.spawn({ node: 1 });
    const byZone = m.inject.add({ site: "alloc", zone: 1, nth: 1000 }); // node 1's normal zone, far off
    const byNode = m.inject.add({ site: "alloc", node: 1, nth: 1, times: Infinity });
    pm.onlineAsRam({ node: 1 });
    const a = q.mmap(0, PAGE_SIZE, RW, ANON);
    expect(errorOf(() => q.writeTag(a, 1n)).code).toBe("ENOMEM"); // its first choice, the pmem zone, is covered
    byNode.remove();
    q.writeTag(a, 1n);
    expect(pfnAt(q, a)).toBeGreaterThanOrEqual(pm.start);
    q.exit();
    pm.offlineRam(); // the zone list shrinks; the zone rule still names node 1's normal zone
    expect(m.inject.list()).toEqual([byZone]);
    m.check();
  });

  it("is refused while DAX mappings exist, and offline fails with per-page reasons for pinned pages", () => {
    const { m, pm, p } = machine("tags", [{ normal: 2048 }]);
    const a = pm.daxMmap(p, { offset: 0, length: PAGE_SIZE, prot: RW, flags: SHARED });
    expect(refused(m, "EBUSY", () => pm.onlineAsRam()).message).toMatch(/1 DAX mapping/);
    p.munmap(a, PAGE_SIZE);
    pm.onlineAsRam();
    const b = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    p.touch(b, 8, true, 1n);
    const pinned = m.pinUserPages(p, b, 1, FOLL_WRITE);
    expect(pinned[0]! >= pm.start).toBe(true);
    let err: unknown;
    try {
      pm.offlineRam();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PageFailureError);
    expect((err as PageFailureError).failures).toContainEqual(expect.objectContaining({ pfn: pinned[0], kind: "pinned" }));
    expect(pm.mode).toBe("ram");
    m.check();
    m.unpinUserPages(pinned);
    pm.offlineRam();
    m.check();
    expect(p.readTag(b)).toBe(1n);
  });
});

void MAP_FIXED;
void PROT_WRITE;
