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
    const { f } = fileWith(fs, 4);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.read(a, 4 * PAGE_SIZE);
    toDevice(m, p, f, a, 4, gpu.pg);
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
