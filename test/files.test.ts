// Files on an emulated block device: the page cache behind read/write and mmap, writeback
// with write notification, MAP_PRIVATE COW, truncate, reclaim under pressure, fsync and
// power failure, I/O errors.
import { describe, it, expect } from "vitest";
import {
  Machine, MmError, O_RDWR, O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_TRUNC, MAP_SHARED, MAP_PRIVATE, MS_SYNC,
  PROT_READ, PROT_WRITE, PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, type Process, type OpenFile, type FileSystem,
} from "../src/index.js";
import { PG_dirty, PG_writeback, PG_locked } from "../src/page.js";
import { errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const pfnOf = (p: Process, addr: number): number => Number((p.pte(addr) >> 12n) & 0xffffffffffn);
const writable = (p: Process, addr: number): boolean => (p.pte(addr) & 2n) !== 0n;
const fsOf = (f: OpenFile) => f.inode.fs;
const pattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);

/** A new file "a" holding pattern(bytes, seed), fsynced. */
function syncedFile(fs: FileSystem, bytes: number, seed: number): OpenFile {
  const f = fs.open("a", O_RDWR | O_CREAT);
  f.pwrite(pattern(bytes, seed), 0);
  f.fsync();
  return f;
}

function setup(frames = 4096, sectors = 8192) {
  const m = Machine.create({ nodes: [{ normal: frames }] });
  const dev = m.addBlockDevice("vda", { sectors });
  const fs = m.mount(dev);
  return { m, dev, fs, p: m.spawn() };
}

describe("read and write through the page cache", () => {
  it("pwrite then pread returns the data; reads stop at the end of the file", () => {
    const { m, fs } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    const data = pattern(3 * PAGE_SIZE + 100, 1);
    expect(f.pwrite(data, 0)).toBe(data.length);
    expect(f.size).toBe(data.length);
    expect(f.pread(data.length, 0)).toEqual(data);
    expect(f.pread(200, data.length - 50)).toEqual(data.subarray(data.length - 50));
    expect(f.pread(10, data.length + 5).length).toBe(0);
    expect(m.counters().nr_dirty).toBe(4);
    expect(m.counters().nr_file_pages).toBe(4);
    m.check();
  });

  it("fsync writes dirty pages back, flushes and commits; a hole reads as zeros", () => {
    const { m, dev, fs } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(PAGE_SIZE, 3), 2 * PAGE_SIZE);
    f.fsync();
    expect(m.counters().nr_dirty).toBe(0);
    expect(m.counters().nr_written).toBe(1);
    expect(dev.stats.flushes).toBeGreaterThan(0);
    expect(f.pread(PAGE_SIZE, 0)).toEqual(new Uint8Array(PAGE_SIZE));
    // Only the written page has a sector (delayed allocation); the hole's pages were never dirty.
    expect(f.inode.blocks.size).toBe(1);
    expect(f.inode.durable.size).toBe(3 * PAGE_SIZE);
    m.check();
  });

  it("O_APPEND writes at the end, O_TRUNC empties, O_EXCL refuses an existing name", () => {
    const { fs } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(10, 0), 0);
    const g = fs.open("a", O_WRONLY | O_APPEND);
    g.pwrite(pattern(5, 9), 0);
    expect(f.size).toBe(15);
    expect(errorOf(() => fs.open("a", O_RDWR | O_CREAT | O_EXCL))?.code).toBe("EEXIST");
    fs.open("a", O_RDWR | O_TRUNC);
    expect(f.size).toBe(0);
  });
});

describe("file mappings", () => {
  it("MAP_SHARED: a read maps read-only; the first store faults, dirties the page, fsync cleans and write-protects it", () => {
    const { m, fs, p } = setup();
    const f = syncedFile(fs, 4 * PAGE_SIZE, 5);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    expect(p.readU32(a + PAGE_SIZE)).toBe(new DataView(pattern(4 * PAGE_SIZE, 5).buffer).getUint32(PAGE_SIZE, true));
    expect(writable(p, a + PAGE_SIZE)).toBe(false);
    p.writeU32(a + PAGE_SIZE + 8, 0xdeadbeef);
    expect(writable(p, a + PAGE_SIZE)).toBe(true);
    const pfn = pfnOf(p, a + PAGE_SIZE);
    expect(m.page.flags(pfn) & (1 << PG_dirty)).not.toBe(0);
    expect(m.counters().nr_dirty).toBe(1);
    // read(2) sees the store: one page cache.
    expect(new DataView(f.pread(4, PAGE_SIZE + 8).buffer).getUint32(0, true)).toBe(0xdeadbeef);
    m.check();
    f.fsync();
    expect(writable(p, a + PAGE_SIZE)).toBe(false);
    expect(m.page.flags(pfn) & ((1 << PG_dirty) | (1 << PG_writeback) | (1 << PG_locked))).toBe(0);
    p.writeU32(a + PAGE_SIZE + 12, 1);
    expect(m.counters().nr_dirty).toBe(1);
    m.check();
  });

  it("msync(MS_SYNC) is vfs_fsync_range: the range is written back, flushed and committed, and survives a power failure", () => {
    const { m, dev, fs, p } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.ftruncate(2 * PAGE_SIZE);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.writeU32(a, 7);
    p.writeU32(a + PAGE_SIZE, 8);
    const flushes = dev.stats.flushes;
    p.msync(a, PAGE_SIZE, MS_SYNC);
    expect(dev.stats.flushes).toBe(flushes + 1);
    expect(m.counters().nr_dirty).toBe(1);
    const sector = f.inode.blocks.get(0)!;
    expect(new DataView((dev.peek(sector) as Uint8Array).buffer).getUint32(0, true)).toBe(7);
    m.check();
    m.powerFail();
    expect(f.size).toBe(2 * PAGE_SIZE);
    expect(p.readU32(a)).toBe(7);
    expect(p.readU32(a + PAGE_SIZE)).toBe(0);
    m.check();
  });

  it("MAP_PRIVATE: reads share the cached page, a store copies it and the file stays as it was", () => {
    const { m, fs, p } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(2 * PAGE_SIZE, 7), 0);
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, f, 0);
    const before = p.readU32(a);
    expect(pfnOf(p, a)).toBe((p.readU32(s), pfnOf(p, s)));
    p.writeU32(a, 0x11111111);
    expect(pfnOf(p, a)).not.toBe(pfnOf(p, s));
    expect(p.readU32(s)).toBe(before);
    expect(new DataView(f.pread(4, 0).buffer).getUint32(0, true)).toBe(before);
    // A first store to an untouched private page copies straight from the cache.
    p.writeU32(a + PAGE_SIZE + 4, 3);
    expect(new DataView(f.pread(8, PAGE_SIZE).buffer).getUint32(4, true)).toBe(new DataView(pattern(2 * PAGE_SIZE, 7).buffer).getUint32(PAGE_SIZE + 4, true));
    m.check();
  });

  it("access past the end of the file is SIGBUS; a read-only file cannot be mapped shared writable", () => {
    const { fs, p } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.ftruncate(PAGE_SIZE);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    expect(errorOf(() => p.readU32(a + PAGE_SIZE))?.code).toBe("SIGBUS");
    const r = fs.open("a", O_RDONLY);
    expect(errorOf(() => p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, r, 0))?.code).toBe("EACCES");
    const ro = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, r, 0);
    expect(errorOf(() => p.mprotect(ro, PAGE_SIZE, RW))?.code).toBe("EACCES");
    // A private mapping of a read-only file may be written: the copies are the process's.
    const c = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, r, 0);
    p.writeU32(c, 5);
  });
});

describe("the last page", () => {
  it("a store past the end of the file through a mapping is zeroed at writeback and never reaches the disk", () => {
    const { m, fs, p } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(100, 1), 0);
    const a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.writeU32(a + 200, 0x55555555);
    f.fsync();
    m.powerFail();
    f.ftruncate(PAGE_SIZE);
    expect(f.pread(4, 200)).toEqual(new Uint8Array(4));
    expect(f.pread(100, 0)).toEqual(pattern(100, 1));
    m.check();
  });
});

describe("truncate", () => {
  it("shrinking unmaps and drops the pages past the end (COW copies too) and zeroes a partial tail", () => {
    const { m, fs, p } = setup();
    const f = syncedFile(fs, 4 * PAGE_SIZE, 2);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    const c = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_PRIVATE, f, 0);
    for (let i = 0; i < 4; i++) p.readU32(a + i * PAGE_SIZE);
    p.writeU32(c + 3 * PAGE_SIZE, 9);
    f.ftruncate(PAGE_SIZE + 100);
    m.check();
    expect(p.pte(a + 2 * PAGE_SIZE)).toBe(0n);
    expect(p.pte(c + 3 * PAGE_SIZE)).toBe(0n);
    expect(errorOf(() => p.readU32(a + 2 * PAGE_SIZE))?.code).toBe("SIGBUS");
    expect(errorOf(() => p.readU32(c + 3 * PAGE_SIZE))?.code).toBe("SIGBUS");
    expect(m.counters().nr_file_pages).toBe(2);
    f.ftruncate(3 * PAGE_SIZE);
    const tail = f.pread(PAGE_SIZE, PAGE_SIZE);
    expect(tail.subarray(0, 100)).toEqual(pattern(4 * PAGE_SIZE, 2).subarray(PAGE_SIZE, PAGE_SIZE + 100));
    expect(tail.subarray(100).every((b) => b === 0)).toBe(true);
    expect(f.pread(PAGE_SIZE, 2 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    m.check();
  });
});

describe("reclaim and writeback under memory pressure", () => {
  it("a file larger than memory is read and written through a mapping: clean pages are reclaimed, dirty ones written back", () => {
    const { m, fs, p } = setup(1024, 4096);
    const f = fs.open("big", O_RDWR | O_CREAT);
    const pages = 2048;
    f.ftruncate(pages * PAGE_SIZE);
    const a = p.mmap(0, pages * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    for (let i = 0; i < pages; i++) p.writeU32(a + i * PAGE_SIZE, i + 1);
    m.check();
    for (let i = 0; i < pages; i++) expect(p.readU32(a + i * PAGE_SIZE)).toBe(i + 1);
    const c = m.counters();
    expect(c.pgsteal_file).toBeGreaterThan(0);
    expect(c.nr_written).toBeGreaterThan(0);
    expect(c.nr_file_pages).toBeLessThan(1024);
    m.check();
    f.fsync();
    for (let i = 0; i < pages; i += 97) expect(new DataView(f.pread(4, i * PAGE_SIZE).buffer).getUint32(0, true)).toBe(i + 1);
    m.check();
  });
});

describe("durability", () => {
  it("a power failure keeps what fsync confirmed and may lose what came after", () => {
    const { m, dev, fs } = setup();
    const f = syncedFile(fs, 2 * PAGE_SIZE, 1);
    f.pwrite(pattern(PAGE_SIZE, 9), PAGE_SIZE);
    f.pwrite(pattern(PAGE_SIZE, 4), 2 * PAGE_SIZE);
    m.powerFail();
    m.check();
    expect(f.size).toBe(2 * PAGE_SIZE);
    expect(f.pread(PAGE_SIZE, 0)).toEqual(pattern(PAGE_SIZE, 1));
    expect(m.counters().nr_dirty).toBe(0);
    expect(dev.stats.flushes).toBeGreaterThan(0);
  });

  it("a truncated file's committed sectors are not reused before the next commit", () => {
    const { m, fs } = setup(4096, 4);
    const f = syncedFile(fs, 2 * PAGE_SIZE, 1);
    f.ftruncate(0);
    const g = fs.open("b", O_RDWR | O_CREAT);
    g.pwrite(pattern(4 * PAGE_SIZE, 3), 0);
    // Only 2 of 4 sectors are free until a's truncate commits.
    expect(errorOf(() => g.fsync())?.code).toBe("ENOSPC");
    m.powerFail();
    expect(f.pread(2 * PAGE_SIZE, 0)).toEqual(pattern(2 * PAGE_SIZE, 1));
    m.check();
  });
});

describe("I/O errors", () => {
  it("a failed writeback keeps the pages dirty and fsync reports EIO once; a retry succeeds", () => {
    const { m, dev, fs } = setup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(PAGE_SIZE, 1), 0);
    dev.injectError({ op: "write", times: 1 });
    const e = errorOf(() => f.fsync()) as MmError;
    expect(e.code).toBe("EIO");
    expect(e.message).toMatch(/fsync/);
    expect(m.counters().nr_dirty).toBe(1);
    m.check();
    f.fsync();
    expect(m.counters().nr_dirty).toBe(0);
    m.powerFail();
    expect(f.pread(PAGE_SIZE, 0)).toEqual(pattern(PAGE_SIZE, 1));
  });

  it("a failed read is EIO for read(2) and SIGBUS for a fault, and leaves no page locked or cached", () => {
    const { m, dev, fs, p } = setup();
    const f = syncedFile(fs, PAGE_SIZE, 1);
    m.powerFail();
    dev.injectError({ op: "read", times: 2 });
    expect(errorOf(() => f.pread(4, 0))?.code).toBe("EIO");
    const a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, f, 0);
    expect(errorOf(() => p.readU32(a))?.code).toBe("SIGBUS");
    expect(m.counters().nr_file_pages).toBe(0);
    m.check();
    expect(f.pread(PAGE_SIZE, 0)).toEqual(pattern(PAGE_SIZE, 1));
  });
});

describe("bad input", () => {
  const cases: [string, (f: OpenFile, p: Process, r: OpenFile) => unknown, string][] = [
    ["pread on a write-only file", (f) => f.pread(1, 0), "EBADF"],
    ["pwrite at a negative offset", (f) => f.pwrite(new Uint8Array(1), -1), "EINVAL"],
    ["pwrite past the largest file", (f) => f.pwrite(new Uint8Array(1), 2 ** 39), "EFBIG"],
    ["ftruncate to a fraction", (f) => f.ftruncate(1.5), "EINVAL"],
    ["mmap of a write-only file", (f, p) => p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, f, 0), "EACCES"],
    ["mmap at an unaligned offset", (_f, p, r) => p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, r, 100), "EINVAL"],
    ["mmap of a file without MAP_ANONYMOUS or a file", (_f, p) => p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED), "EBADF"],
    ["mmap of a closed file", (_f, p, r) => (r.close(), p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, r, 0)), "EBADF"],
    ["ftruncate of a read-only file", (_f, _p, r) => fsOf(r).open("a", O_RDONLY).ftruncate(0), "EINVAL"],
    ["open of a missing name", (_f, _p, r) => fsOf(r).open("nope", O_RDWR), "ENOENT"],
    ["open with both O_WRONLY and O_RDWR", (_f, _p, r) => fsOf(r).open("a", 3), "EINVAL"],
  ];
  for (const [what, call, code] of cases) {
    it(`${what}: ${code}, nothing changed`, () => {
      const { m, fs, p } = setup();
      const w = fs.open("a", O_WRONLY | O_CREAT);
      w.pwrite(pattern(10, 1), 0);
      const r = fs.open("a", O_RDWR);
      const before = m.counters();
      expect(errorOf(() => call(w, p, r))?.code).toBe(code);
      expect(m.counters()).toEqual(before);
      expect(w.size).toBe(10);
      m.check();
    });
  }
});

describe("DAX: files on pmem without a page cache", () => {
  function daxSetup() {
    const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 4096 });
    const pm = m.registerPmem("pmem0", { pages: 1024 });
    const fs = m.mount(pm, { dax: true });
    return { m, pm, fs, p: m.spawn() };
  }

  it("read/write reach the media directly, mappings are special PTEs to the sectors' pfns, and GUP cannot pin them", () => {
    const { m, pm, fs, p } = daxSetup();
    const f = fs.open("a", O_RDWR | O_CREAT);
    f.pwrite(pattern(PAGE_SIZE + 10, 4), 0);
    expect(m.counters().nr_file_pages).toBe(0);
    const sector = f.inode.blocks.get(0)!;
    expect(pm.peek(sector)).toEqual(pattern(PAGE_SIZE, 4));
    expect(pm.writeCount(sector)).toBe(1);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.writeU32(a + PAGE_SIZE, 0xabcd);
    expect(pfnOf(p, a + PAGE_SIZE)).toBe(pm.pfn(f.inode.blocks.get(1)!));
    expect((p.pte(a + PAGE_SIZE) & (1n << 9n)) !== 0n).toBe(true);
    expect(new DataView(f.pread(4, PAGE_SIZE).buffer).getUint32(0, true)).toBe(0xabcd);
    expect(errorOf(() => m.pinUserPages(p, a, 1, 0))?.code).toBe("EFAULT");
    expect(errorOf(() => p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, f, 0))?.code).toBe("EINVAL");
    expect(errorOf(() => pm.onlineAsRam())?.code).toBe("EBUSY");
    m.check();
  });

  it("fsync commits the block map; a power failure keeps fsynced data; truncate unmaps and frees", () => {
    const { m, fs, p } = daxSetup();
    const f = syncedFile(fs, 2 * PAGE_SIZE, 1);
    f.pwrite(pattern(PAGE_SIZE, 2), 2 * PAGE_SIZE);
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.readU32(a + 2 * PAGE_SIZE);
    m.powerFail();
    m.check();
    expect(f.size).toBe(2 * PAGE_SIZE);
    expect(p.pte(a)).toBe(0n);
    expect(f.pread(2 * PAGE_SIZE, 0)).toEqual(pattern(2 * PAGE_SIZE, 1));
    expect(p.readU32(a)).toBe(new DataView(pattern(4, 1).buffer).getUint32(0, true));
    f.ftruncate(PAGE_SIZE);
    expect(p.pte(a + PAGE_SIZE)).toBe(0n);
    expect(errorOf(() => p.readU32(a + PAGE_SIZE))?.code).toBe("SIGBUS");
    m.check();
  });

  it("dax needs a pmem device in storage mode", () => {
    const { m } = daxSetup();
    expect(errorOf(() => m.mount(m.addBlockDevice("vdb", { sectors: 16 }), { dax: true }))?.code).toBe("EINVAL");
  });
});

describe("a driver that gives up after migrate_vma_pages", () => {
  it("abort() past pages() restores the old pages: the page cache slots go back too, nothing is lost", () => {
    const { m, fs, p } = setup();
    const f = syncedFile(fs, 2 * PAGE_SIZE, 3);
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.write(a, pattern(PAGE_SIZE, 9)); // a dirty cached page
    expect(p.read(a + PAGE_SIZE, 8)).toEqual(pattern(2 * PAGE_SIZE, 3).slice(PAGE_SIZE, PAGE_SIZE + 8));
    const old = pfnOf(p, a);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 2 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM });
    expect(mig.cpages).toBe(2);
    mig.allocAndCopy({ node: 0 });
    mig.pages(); // the cache slots point at the new pages now
    mig.abort();
    m.check();
    expect(pfnOf(p, a)).toBe(old);
    expect(m.cachedPageOwner(old)?.index).toBe(0);
    expect(m.counters().pgmigrate_fail).toBe(2);
    expect(p.read(a, PAGE_SIZE)).toEqual(pattern(PAGE_SIZE, 9));
    f.fsync();
    expect(f.pread(PAGE_SIZE, 0)).toEqual(pattern(PAGE_SIZE, 9));
    expect(f.pread(PAGE_SIZE, PAGE_SIZE)).toEqual(pattern(2 * PAGE_SIZE, 3).slice(PAGE_SIZE));
  });
});
