// GUP on file mappings (mm/gup.c check_vma_flags → writable_file_mapping_allowed): a
// long-term writable pin of a shared file mapping is refused with EFAULT, since the page
// could be written behind writeback's back; short-term pins, read pins and private (COW)
// mappings are fine. Truncate takes a pinned page out of the cache; the pin keeps it alive.
import { describe, it, expect } from "vitest";
import {
  Machine, O_RDWR, O_CREAT, MAP_SHARED, MAP_PRIVATE, PROT_READ, PROT_WRITE, PAGE_SIZE, FOLL_LONGTERM, FOLL_WRITE, MmError,
} from "../src/index.js";
import { PG_dirty } from "../src/page.js";
import { errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;

function setup() {
  const m = Machine.create({ nodes: [{ normal: 2048 }] });
  const fs = m.mount(m.addBlockDevice("vda", { sectors: 1024 }));
  const f = fs.open("a", O_RDWR | O_CREAT);
  const data = new Uint8Array(4 * PAGE_SIZE).map((_, i) => (i * 13 + 1) & 0xff);
  f.pwrite(data, 0);
  f.fsync();
  const p = m.spawn();
  return { m, f, p, data };
}

describe("GUP on file mappings", () => {
  it("pin_user_pages(FOLL_LONGTERM|FOLL_WRITE) on a shared file mapping is EFAULT, nothing changed", () => {
    const { m, f, p } = setup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    p.readU32(a);
    const before = m.counters();
    const e = errorOf(() => m.pinUserPages(p, a, 4, FOLL_LONGTERM | FOLL_WRITE)) as MmError;
    expect(e.code).toBe("EFAULT");
    expect(e.message).toMatch(/shared file mapping/);
    expect(m.counters()).toEqual(before);
    m.check();
  });

  it("a short-term writable pin and a long-term read pin of a shared file mapping work; the write pin dirties the page", () => {
    const { m, f, p } = setup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    const w = m.pinUserPages(p, a, 2, FOLL_WRITE);
    expect(m.counters().nr_foll_pin_acquired).toBe(2);
    for (const pfn of w) expect(m.page.flags(pfn) & (1 << PG_dirty)).not.toBe(0);
    const r = m.pinUserPages(p, a + 2 * PAGE_SIZE, 2, FOLL_LONGTERM);
    m.check();
    m.unpinUserPagesDirtyLock(w, true);
    m.unpinUserPages(r);
    expect(m.counters().nr_foll_pin_released).toBe(4);
    m.check();
  });

  it("a long-term writable pin of a private file mapping pins COW copies; the file keeps its data", () => {
    const { m, f, p, data } = setup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_PRIVATE, f, 0);
    const pins = m.pinUserPages(p, a, 4, FOLL_LONGTERM | FOLL_WRITE);
    for (const pfn of pins) expect(m.cachedPageOwner(pfn)).toBeNull();
    p.writeU32(a, 0xdeadbeef);
    expect(f.pread(4 * PAGE_SIZE, 0)).toEqual(data);
    m.unpinUserPages(pins);
    m.check();
  });

  it("truncate drops a pinned page from the cache; the pin keeps the page alive until unpinned", () => {
    const { m, f, p } = setup();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
    const pins = m.pinUserPages(p, a + 3 * PAGE_SIZE, 1, 0);
    const pfn = pins[0]!;
    const files = m.counters().nr_file_pages;
    f.ftruncate(3 * PAGE_SIZE);
    m.check();
    expect(m.cachedPageOwner(pfn)).toBeNull();
    expect(m.counters().nr_file_pages).toBe(files - 1);
    expect(m.page.refcount(pfn)).toBeGreaterThan(0);
    expect(p.pte(a + 3 * PAGE_SIZE)).toBe(0n);
    // Growing the file again brings a new, zeroed page, not the pinned one.
    f.ftruncate(4 * PAGE_SIZE);
    expect(f.pread(PAGE_SIZE, 3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(m.core.filemapLookup(f.inode.id, 3)).not.toBe(pfn);
    const free = m.zones()[0]!.free;
    m.unpinUserPages(pins);
    expect(m.zones()[0]!.free + m.zones()[0]!.pcp).toBeGreaterThanOrEqual(free + 1);
    m.check();
  });
});
