// File pages in device-private memory (ours, beside the kernel): MIGRATE_VMA_SELECT_FILE,
// device-dirtied pages written back by migrating them home or through bounce pages,
// read(2)/write(2) of device-resident pages, truncate, and power failure.
import { describe, it, expect } from "vitest";
import {
  Machine, O_RDWR, O_CREAT, MAP_SHARED, MAP_PRIVATE, PROT_READ, PROT_WRITE, PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_FILE,
  type Process, type OpenFile, type DevPagemap, type DevicePageWriteback,
} from "../src/index.js";
import { privateDevice, errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const pattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);
const POLICIES: DevicePageWriteback[] = ["migrate-back", "bounce"];

function setup(policy: DevicePageWriteback, devPages = 64) {
  const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 256 });
  const dev = m.addBlockDevice("vda", { sectors: 4096 });
  const fs = m.mount(dev);
  fs.devicePageWriteback = policy;
  const p = m.spawn();
  const gpu = privateDevice(m, devPages);
  return { m, dev, fs, p, gpu };
}

/** The driver step: the file pages `addr`..+n of `p` move into device memory. */
function toDevice(m: Machine, p: Process, f: OpenFile, addr: number, n: number, pg: DevPagemap, file = true): number {
  const mig = m.migrateVmaSetup({ proc: p, start: addr, end: addr + n * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM | (file ? MIGRATE_VMA_SELECT_FILE : 0), pgmapOwner: pg.owner });
  mig.allocAndCopy(pg);
  mig.finalize();
  let moved = 0;
  for (let i = 0; i < n; i++) if (pg.contains(cachedPfn(m, f, i))) moved++;
  return moved;
}

function cachedPfn(m: Machine, f: OpenFile, index: number): number {
  return m.core.filemapLookup(f.inode.id, index);
}

function fileWith(fs: ReturnType<typeof setup>["fs"], pages: number, seed = 1): { f: OpenFile; data: Uint8Array } {
  const f = fs.open("a", O_RDWR | O_CREAT);
  const data = pattern(pages * PAGE_SIZE, seed);
  f.pwrite(data, 0);
  f.fsync();
  return { f, data };
}

/** fileWith, mapped MAP_SHARED at `a` by `p` and read, so every page is cached and mapped. */
function mappedFile(fs: ReturnType<typeof setup>["fs"], p: Process, pages: number): { f: OpenFile; data: Uint8Array; a: number } {
  const { f, data } = fileWith(fs, pages);
  const a = p.mmap(0, pages * PAGE_SIZE, RW, MAP_SHARED, f, 0);
  p.read(a, pages * PAGE_SIZE);
  return { f, data, a };
}

/** mappedFile with every page then moved to the device's memory. */
function mappedOnDevice(m: Machine, fs: ReturnType<typeof setup>["fs"], p: Process, pg: DevPagemap, pages: number) {
  const r = mappedFile(fs, p, pages);
  toDevice(m, p, r.f, r.a, pages, pg);
  return r;
}

describe.each(POLICIES)("file pages in device memory (%s)", (policy) => {
  it("MIGRATE_VMA_SELECT_FILE moves mapped file pages to the device; without it they stay", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, data } = fileWith(fs, 4);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    expect(p.read(a, 4 * PAGE_SIZE)).toEqual(data);
    expect(toDevice(m, p, f, a, 4, gpu.pg, false)).toBe(0);
    m.check();
    expect(toDevice(m, p, f, a, 4, gpu.pg)).toBe(4);
    expect(m.counters().nr_file_pages).toBe(4);
    m.check();
    // A CPU touch faults back through migrate_to_ram.
    expect(p.read(a + PAGE_SIZE, PAGE_SIZE)).toEqual(data.subarray(PAGE_SIZE, 2 * PAGE_SIZE));
    expect(gpu.pg.contains(cachedPfn(m, f, 1))).toBe(false);
    m.check();
  });

  it("device-dirtied pages are written back and survive a power failure after fsync", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, a } = mappedOnDevice(m, fs, p, gpu.pg, 4);
    const pfn = cachedPfn(m, f, 2);
    const fresh = pattern(PAGE_SIZE, 99);
    m.page.writeBytes(pfn, fresh);
    m.fileDeviceDirty([pfn]);
    expect(m.counters().nr_dirty).toBe(1);
    m.check();
    f.fsync();
    expect(m.counters().nr_dirty).toBe(0);
    if (policy === "bounce") {
      expect(fs.deviceStats.bounced).toBe(1);
      expect(m.counters().nr_bounce).toBe(1);
      expect(gpu.pg.contains(cachedPfn(m, f, 2))).toBe(true);
    } else {
      expect(fs.deviceStats.migratedBack).toBe(1);
      expect(m.counters().nr_bounce).toBe(0);
      expect(gpu.pg.contains(cachedPfn(m, f, 2))).toBe(false);
    }
    m.check();
    m.powerFail();
    m.check();
    expect(f.pread(PAGE_SIZE, 2 * PAGE_SIZE)).toEqual(fresh);
    expect(p.read(a + 2 * PAGE_SIZE, PAGE_SIZE)).toEqual(fresh);
    m.check();
  });
});

describe.each(POLICIES)("read(2), write(2) and mappings of device-resident pages (%s)", (policy) => {
  it("pread and pwrite reach a device page without the CPU touching device memory", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, data, a } = mappedOnDevice(m, fs, p, gpu.pg, 3);
    expect(f.pread(100, PAGE_SIZE + 10)).toEqual(data.subarray(PAGE_SIZE + 10, PAGE_SIZE + 110));
    const onDevice = gpu.pg.contains(cachedPfn(m, f, 1));
    expect(onDevice).toBe(policy === "bounce");
    const patch = pattern(50, 42);
    expect(f.pwrite(patch, 2 * PAGE_SIZE + 7)).toBe(50);
    expect(gpu.pg.contains(cachedPfn(m, f, 2))).toBe(policy === "bounce");
    expect(m.page.flags(cachedPfn(m, f, 2)) & (1 << 4)).not.toBe(0);
    const want = data.slice();
    want.set(patch, 2 * PAGE_SIZE + 7);
    expect(f.pread(3 * PAGE_SIZE, 0)).toEqual(want);
    if (policy === "bounce") expect(fs.deviceStats.bouncedIo).toBeGreaterThanOrEqual(3);
    else expect(fs.deviceStats.migratedBack).toBe(3);
    m.check();
    f.fsync();
    m.powerFail();
    expect(f.pread(3 * PAGE_SIZE, 0)).toEqual(want);
    expect(p.read(a, 3 * PAGE_SIZE)).toEqual(want);
    m.check();
  });

  it("a page comes back from the device clean and read-only: the next store dirties it (write notification)", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f } = fileWith(fs, 1);
    const a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.write(a, pattern(8, 3));
    f.fsync();
    expect(m.counters().nr_dirty).toBe(0);
    toDevice(m, p, f, a, 1, gpu.pg);
    expect(p.read(a, 8)).toEqual(pattern(8, 3));
    expect(p.pte(a) & 2n).toBe(0n);
    m.check();
    p.write(a, pattern(8, 5));
    expect(m.counters().nr_dirty).toBe(1);
    f.fsync();
    m.powerFail();
    expect(f.pread(8, 0)).toEqual(pattern(8, 5));
    m.check();
  });

  it("another process mapping a device-resident page later gets it through migrate_to_ram; MAP_PRIVATE copies on write", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, data, a } = mappedOnDevice(m, fs, p, gpu.pg, 2);
    const q = m.spawn();
    const b = q.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    const c = q.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, f, 0);
    m.check();
    expect(q.read(b, PAGE_SIZE)).toEqual(data.subarray(0, PAGE_SIZE));
    expect(gpu.pg.contains(cachedPfn(m, f, 0))).toBe(false);
    m.check();
    q.write(c + PAGE_SIZE, pattern(4, 77));
    expect(gpu.pg.contains(cachedPfn(m, f, 1))).toBe(false);
    expect(f.pread(4, PAGE_SIZE)).toEqual(data.subarray(PAGE_SIZE, PAGE_SIZE + 4));
    expect(q.read(c + PAGE_SIZE, 4)).toEqual(pattern(4, 77));
    m.check();
  });

  it("truncate drops device pages (page_free, notifiers), and the file reads zeros past the old end", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, data, a } = mappedFile(fs, p, 4);
    let invalidated = 0;
    m.mmuIntervalNotifierInsert(p, 0, 2 ** 47 - PAGE_SIZE, { invalidate: (sub, _r, cur) => { invalidated++; sub.setSeq(cur); return true; } });
    toDevice(m, p, f, a, 4, gpu.pg);
    const dirtyPfn = cachedPfn(m, f, 3);
    m.page.writeBytes(dirtyPfn, pattern(PAGE_SIZE, 200));
    m.fileDeviceDirty([dirtyPfn]);
    const freedBefore = gpu.freed();
    const before = invalidated;
    f.ftruncate(PAGE_SIZE + 100);
    expect(invalidated).toBeGreaterThan(before);
    // migrate-back also brings the partial last page home to zero its tail.
    expect(gpu.freed() - freedBefore).toBe(policy === "bounce" ? 2 : 3);
    m.check();
    f.ftruncate(4 * PAGE_SIZE);
    const want = new Uint8Array(4 * PAGE_SIZE);
    want.set(data.subarray(0, PAGE_SIZE + 100));
    expect(f.pread(4 * PAGE_SIZE, 0)).toEqual(want);
    m.check();
    f.fsync();
    m.powerFail();
    expect(f.pread(4 * PAGE_SIZE, 0)).toEqual(want);
    m.check();
  });

  it("truncate is EBUSY while a migration holds a device page locked; nothing changes", () => {
    const { m, fs, p, gpu } = setup(policy);
    const { f, a } = mappedOnDevice(m, fs, p, gpu.pg, 2);
    const mig = m.migrateDevicePfns([cachedPfn(m, f, 1)]);
    expect(mig.cpages).toBe(1);
    expect(errorOf(() => f.ftruncate(0)).code).toBe("EBUSY");
    expect(f.size).toBe(2 * PAGE_SIZE);
    mig.abort();
    f.ftruncate(0);
    expect(m.counters().nr_file_pages).toBe(0);
    m.check();
  });
});

describe("the test mirror writes file pages in its memory", () => {
  it("HMM_DMIRROR_FLAG_FILE migrates file pages; a device WRITE reports them dirty; both policies write them back", async () => {
    const { createHmmDevices, HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FILE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_WRITE } = await import("../src/testing/index.js");
    for (const policy of POLICIES) {
      const { m, fs, p } = setup(policy);
      const { f, a } = mappedFile(fs, p, 4);
      const [d0] = createHmmDevices(m, { chunkPages: 16 });
      const mirror = d0!.open(p);
      mirror.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: HMM_DMIRROR_FLAG_FILE });
      const r = mirror.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 4 });
      expect(r.ret).toBe(0);
      expect(d0!.chunks[0]!.contains(cachedPfn(m, f, 0))).toBe(true);
      const buf = pattern(4 * PAGE_SIZE, 9);
      const w = mirror.cmd(HMM_DMIRROR_WRITE, { addr: a, npages: 4, buffer: buf });
      expect(w.ret).toBe(0);
      // Written in place, on the device.
      expect(d0!.chunks[0]!.contains(cachedPfn(m, f, 3))).toBe(true);
      expect(m.counters().nr_dirty).toBe(4);
      m.check();
      f.fsync();
      expect(m.counters().nr_dirty).toBe(0);
      m.powerFail();
      expect(f.pread(4 * PAGE_SIZE, 0)).toEqual(buf);
      m.check();
      mirror.close();
      m.check();
    }
  });
});

describe("bad input", () => {
  it("fileDeviceDirty refuses pages that are not in a file's cache, devicePageWriteback unknown policies", () => {
    const { m, fs, p } = setup("bounce");
    const { f } = fileWith(fs, 1);
    const pfn = cachedPfn(m, f, 0);
    const anon = p.mmap(0, PAGE_SIZE, RW, 0x22, null, 0);
    p.write(anon, pattern(4, 1));
    const anonPfn = Number((p.pte(anon) >> 12n) & 0xffffffffffn);
    expect(errorOf(() => m.fileDeviceDirty([pfn, anonPfn])).code).toBe("EINVAL");
    expect(m.counters().nr_dirty).toBe(0);
    expect(errorOf(() => m.fileDeviceDirty([pfn, -1])).code).toBe("EINVAL");
    expect(errorOf(() => { fs.devicePageWriteback = "later" as DevicePageWriteback; }).code).toBe("EINVAL");
    expect(fs.devicePageWriteback).toBe("bounce");
    m.fileDeviceDirty([pfn]);
    expect(m.counters().nr_dirty).toBe(1);
    m.check();
  });
});
