import { describe, expect, it } from 'vitest';
import {
  MAX_ORDER,
  PG_anon_exclusive,
  PG_dirty,
  PG_locked,
  RefMachine,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_SPECIAL,
  _PAGE_USER,
  ptePfn,
  pteSwpType,
} from './kernel.js';

const PAGES = 4096;

describe('reference kernel', () => {
  it('computes the watermark and initial free lists', () => {
    const m = new RefMachine({ pages: PAGES });
    // sqrt(4096*64) = 512 KiB -> 128 pages
    expect(m.minFreeKbytes).toBe(512);
    expect(m.wmarkMin).toBe(128);
    const c = m.counters();
    expect(c.nr_free_pages).toBe(PAGES - 1);
    // 1 + 2 + ... + 512 below 1024, then two order-10 blocks.
    expect(Array.from(m.nrFree)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3]);
  });

  it('write fault-in of 1000 pages allocates 1000 pages', () => {
    const m = new RefMachine({ pages: PAGES });
    const start = m.counters();
    const mm = m.spawn();
    mm.mmapAnon(0x10000, 1000);
    mm.touch(0x10000, 1000, true, 100n);
    const c = m.counters();
    expect(c.pgfault - start.pgfault).toBe(1000);
    expect(c.pgalloc_normal - start.pgalloc_normal).toBe(1000);
    expect(c.nr_anon_pages).toBe(1000);
    expect(c.nr_free_pages).toBe(start.nr_free_pages - 1000);
    // pgd + pud + pmd + two PTE tables (0x10000 is 512-aligned, 1000 pages span two)
    expect(c.nr_page_table_pages).toBe(5);
    expect(mm.readTag(0x10000)).toBe(100n);
    expect(mm.readTag(0x10000 + 999)).toBe(1099n);
    const w = mm.walk(0x10000, 1000);
    expect(w.present).toBe(1000);
    expect(w.writable).toBe(1000);
    // Touching again faults nothing.
    mm.touch(0x10000, 1000, true, 0n);
    expect(m.counters().pgfault).toBe(c.pgfault);
  });

  it('read faults map the zero page', () => {
    const m = new RefMachine({ pages: PAGES });
    const mm = m.spawn();
    mm.mmapAnon(0, 64);
    mm.touch(0, 64, false, 0n);
    const c = m.counters();
    expect(c.pgfault).toBe(64);
    expect(c.pgalloc_normal).toBe(0);
    expect(c.nr_anon_pages).toBe(0);
    const pte = mm.pteAt(5);
    expect(pte & _PAGE_PRESENT).toBe(_PAGE_PRESENT);
    expect(pte & _PAGE_SPECIAL).toBe(_PAGE_SPECIAL);
    expect(pte & _PAGE_RW).toBe(0n);
    expect(ptePfn(pte)).toBe(0);
    expect(mm.readTag(5)).toBe(0n);
    expect(m.refcount[0]).toBe(1);
    expect(m.mapcount[0]).toBe(0);
    expect(mm.walk(0, 64)).toEqual({ present: 64, writable: 0, pfnSum: 0 });
    // Writing over the zero page allocates.
    mm.touch(5, 1, true, 7n);
    expect(m.counters().pgalloc_normal).toBe(1);
    expect(m.counters().pgfault).toBe(65);
    expect(mm.readTag(5)).toBe(7n);
  });

  it('touching outside a VMA raises SIGSEGV', () => {
    const m = new RefMachine({ pages: PAGES });
    const mm = m.spawn();
    mm.mmapAnon(100, 10);
    expect(() => mm.touch(105, 10, true, 0n)).toThrow('SIGSEGV');
    // The pages before the bad one were touched.
    expect(m.counters().pgalloc_normal).toBe(5);
  });

  it('fork then write in the child copies; parent reuses after child exit', () => {
    const m = new RefMachine({ pages: PAGES });
    const parent = m.spawn();
    parent.mmapAnon(0, 16);
    parent.touch(0, 16, true, 1000n);
    const pfn3 = ptePfn(parent.pteAt(3));
    const child = parent.fork();
    expect(m.refcount[pfn3]).toBe(2);
    expect(m.mapcount[pfn3]).toBe(2);
    expect(m.flags[pfn3] & PG_anon_exclusive).toBe(0);
    expect(parent.walk(0, 16).writable).toBe(0);
    expect(child.walk(0, 16)).toEqual(parent.walk(0, 16));

    const before = m.counters();
    child.touch(3, 1, true, 42n);
    const after = m.counters();
    expect(after.cow_fault - before.cow_fault).toBe(1);
    expect(after.pgalloc_normal - before.pgalloc_normal).toBe(1);
    expect(child.readTag(3)).toBe(42n);
    expect(parent.readTag(3)).toBe(1003n);
    expect(ptePfn(child.pteAt(3))).not.toBe(pfn3);
    expect(m.refcount[pfn3]).toBe(1);
    expect(m.mapcount[pfn3]).toBe(1);

    child.exit();
    const c = m.counters();
    parent.touch(0, 16, true, 5n);
    const d = m.counters();
    expect(d.cow_fault).toBe(c.cow_fault);
    expect(d.pgalloc_normal).toBe(c.pgalloc_normal);
    expect(d.pgfault - c.pgfault).toBe(16); // write-protect faults, all reused
    expect(ptePfn(parent.pteAt(3))).toBe(pfn3);
    expect(parent.readTag(3)).toBe(8n);
    expect(parent.walk(0, 16).writable).toBe(16);
  });

  it('exit frees everything', () => {
    const m = new RefMachine({ pages: PAGES });
    const start = m.counters();
    const a = m.spawn();
    a.mmapAnon(0, 700);
    a.mmapAnon(2 ** 35, 300); // far away: its own pgd slot
    a.touch(0, 700, true, 1n);
    a.touch(2 ** 35, 300, false, 0n);
    a.touch(2 ** 35 + 10, 20, true, 9n);
    const b = a.fork();
    b.touch(0, 100, true, 2n);
    a.exit();
    b.exit();
    const c = m.counters();
    expect(c.nr_free_pages).toBe(start.nr_free_pages);
    expect(c.nr_anon_pages).toBe(0);
    expect(c.nr_page_table_pages).toBe(0);
    expect(c.pgfree).toBe(c.pgalloc_normal);
    expect(Array.from(m.nrFree)).toEqual(Array.from(new RefMachine({ pages: PAGES }).nrFree));
  });

  it('buddy merging restores the initial free-list shape', () => {
    for (const pages of [PAGES, 5000, 3000]) {
      const m = new RefMachine({ pages });
      const shape = Array.from(m.nrFree);
      const held: number[] = [];
      for (let order = 0; order <= 2; order++) {
        for (;;) {
          const pfn = m.allocPages(order);
          if (pfn < 0) break;
          held.push(pfn, order);
        }
      }
      expect(m.counters().nr_free_pages).toBeLessThan(m.wmarkMin + 4);
      // Free in an interleaved order so merges happen out of sequence.
      for (let i = 0; i < held.length; i += 4) m.freePages(held[i]!, held[i + 1]!);
      for (let i = 2; i < held.length; i += 4) m.freePages(held[i]!, held[i + 1]!);
      expect(m.nrFree[MAX_ORDER]).toBe(shape[MAX_ORDER]);
      expect(Array.from(m.nrFree)).toEqual(shape);
      expect(m.counters().nr_free_pages).toBe(pages - 1);
    }
  });

  it('fails allocation at the min watermark and on table exhaustion', () => {
    const m = new RefMachine({ pages: 1024, tablePages: 6 });
    const mm = m.spawn();
    mm.mmapAnon(0, 1024);
    expect(() => mm.touch(0, 1024, true, 0n)).toThrow('ENOMEM');
    expect(m.counters().nr_free_pages).toBe(m.wmarkMin);
    expect(m.counters().nr_page_table_pages).toBe(5);
    const mm2 = m.spawn(); // last table
    mm2.mmapAnon(0, 1);
    expect(() => mm2.touch(0, 1, false, 0n)).toThrow('ENOMEM');
  });
});

describe('reference migrate_vma', () => {
  const DEV = 64;
  /** A device-private entry: marker bit 1 only in the low flag bits, type in bits 57..61. */
  const deviceEntryType = (pte: bigint): number => {
    expect(pte & 0xfffn).toBe(2n);
    return pteSwpType(pte);
  };

  it('moves written pages to device memory and back, tags and counts intact', () => {
    const m = new RefMachine({ pages: PAGES, devicePages: DEV });
    const mm = m.spawn();
    mm.mmapAnon(0x200, 16);
    mm.touch(0x200, 16, true, 500n);
    const before = m.counters();
    const sysPfn = ptePfn(mm.pteAt(0x203));

    expect(mm.migrate(0x200, 16, true)).toEqual({ npages: 16, cpages: 16, migrated: 16 });
    let c = m.counters();
    expect(c.pgmigrate_success).toBe(16);
    expect(c.nr_free_pages).toBe(before.nr_free_pages + 16); // the system pages went back
    expect(c.nr_anon_pages).toBe(16); // device-private pages are anon pages
    expect(m.nrFreeDevicePages).toBe(DEV - 16);
    expect(m.refcount[sysPfn]).toBe(0);
    for (let i = 0; i < 16; i++) {
      const pte = mm.pteAt(0x200 + i);
      expect(deviceEntryType(pte)).toBe(SWP_DEVICE_WRITE);
      const pfn = ptePfn(pte);
      expect(m.isDevicePage(pfn)).toBe(true);
      expect([m.refcount[pfn], m.mapcount[pfn]]).toEqual([1, 1]);
      expect(m.flags[pfn] & (PG_locked | PG_anon_exclusive | PG_dirty)).toBe(PG_anon_exclusive | PG_dirty);
      expect(mm.readTag(0x200 + i)).toBe(500n + BigInt(i));
    }
    expect(mm.walk(0x200, 16).present).toBe(0);

    expect(mm.migrate(0x200, 16, false)).toEqual({ npages: 16, cpages: 16, migrated: 16 });
    c = m.counters();
    expect(c.pgmigrate_success).toBe(32);
    expect(c.pgmigrate_fail).toBe(0);
    expect(c.nr_free_pages).toBe(before.nr_free_pages);
    expect(m.nrFreeDevicePages).toBe(DEV);
    for (let i = 0; i < 16; i++) {
      const pte = mm.pteAt(0x200 + i);
      // Writable again; young and dirty did not travel through the device entry.
      expect(pte & 0xfffn).toBe(_PAGE_PRESENT | _PAGE_USER | _PAGE_RW);
      expect(m.isDevicePage(ptePfn(pte))).toBe(false);
      expect(mm.readTag(0x200 + i)).toBe(500n + BigInt(i));
    }
    mm.exit();
    expect(m.counters().nr_free_pages).toBe(PAGES - 1);
  });

  it('fills holes and the zero page with zeroed pages; device->system leaves the zero page', () => {
    const m = new RefMachine({ pages: PAGES, devicePages: DEV });
    const mm = m.spawn();
    mm.mmapAnon(0, 8);
    mm.touch(0, 4, false, 0n); // zero page
    mm.touch(4, 2, true, 9n); // written; 6 and 7 stay pte_none
    expect(mm.migrate(0, 8, false)).toEqual({ npages: 8, cpages: 2, migrated: 2 }); // the holes only
    expect(ptePfn(mm.pteAt(0))).toBe(0);
    expect(mm.pteAt(6) & 0xfffn).toBe(_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_RW | _PAGE_DIRTY);
    mm.exit();

    const mm2 = m.spawn();
    mm2.mmapAnon(0, 8);
    mm2.touch(0, 4, false, 0n);
    mm2.touch(4, 2, true, 9n);
    expect(mm2.migrate(0, 8, true)).toEqual({ npages: 8, cpages: 8, migrated: 8 });
    expect(m.nrFreeDevicePages).toBe(DEV - 8);
    for (let i = 0; i < 8; i++) {
      expect(deviceEntryType(mm2.pteAt(i))).toBe(SWP_DEVICE_WRITE);
      expect(mm2.readTag(i)).toBe(i === 4 ? 9n : i === 5 ? 10n : 0n);
    }
    mm2.exit();
    expect(m.nrFreeDevicePages).toBe(DEV);
    expect(m.counters().nr_anon_pages).toBe(0);
  });

  it('a read-only page goes as a read entry; a CPU write faults it back and reuses it', () => {
    const m = new RefMachine({ pages: PAGES, devicePages: DEV });
    const parent = m.spawn();
    parent.mmapAnon(0, 4);
    parent.touch(0, 4, true, 1n);
    parent.fork().exit(); // write-protected and no longer exclusive, but mapped once
    expect(parent.migrate(0, 4, true).migrated).toBe(4);
    expect(deviceEntryType(parent.pteAt(2))).toBe(SWP_DEVICE_READ);
    const c = m.counters();
    parent.touch(2, 1, true, 77n); // device fault, migrate_to_ram, then a write fault that reuses
    const d = m.counters();
    expect(d.pgfault - c.pgfault).toBe(2);
    expect(d.cow_fault).toBe(c.cow_fault);
    expect(d.pgmigrate_success - c.pgmigrate_success).toBe(1);
    expect(m.nrFreeDevicePages).toBe(DEV - 3);
    expect(parent.pteAt(2) & (_PAGE_PRESENT | _PAGE_RW)).toBe(_PAGE_PRESENT | _PAGE_RW);
    expect(parent.readTag(2)).toBe(77n);
    parent.touch(0, 1, false, 0n); // a read brings it back read-only
    expect(parent.pteAt(0) & (_PAGE_PRESENT | _PAGE_RW)).toBe(_PAGE_PRESENT);
    expect(parent.readTag(0)).toBe(1n);
  });

  it('skips pages mapped by another process, and fork shares device pages read-only', () => {
    const m = new RefMachine({ pages: PAGES, devicePages: DEV });
    const parent = m.spawn();
    parent.mmapAnon(0, 4);
    parent.touch(0, 4, true, 1n);
    const child = parent.fork();
    const pfn = ptePfn(parent.pteAt(1));
    expect(parent.migrate(0, 4, true)).toEqual({ npages: 4, cpages: 0, migrated: 0 });
    expect(parent.pteAt(1) & 0xfffn).toBe(_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY);
    expect([m.refcount[pfn], m.mapcount[pfn], m.flags[pfn] & PG_locked]).toEqual([2, 2, 0]);
    child.exit();

    expect(parent.migrate(0, 4, true).migrated).toBe(4);
    const c2 = parent.fork();
    const dev = ptePfn(parent.pteAt(1));
    expect(deviceEntryType(parent.pteAt(1))).toBe(SWP_DEVICE_READ);
    expect(deviceEntryType(c2.pteAt(1))).toBe(SWP_DEVICE_READ);
    expect([m.refcount[dev], m.mapcount[dev]]).toEqual([2, 2]);
    expect(c2.readTag(1)).toBe(2n);
    parent.exit();
    expect([m.refcount[dev], m.mapcount[dev]]).toEqual([1, 1]);
    c2.exit();
    expect(m.nrFreeDevicePages).toBe(DEV);
    expect(m.counters().nr_free_pages).toBe(PAGES - 1);
  });

  it('leaves pages in place when device memory runs out, and rejects ranges outside a VMA', () => {
    const m = new RefMachine({ pages: PAGES, devicePages: 8 });
    const mm = m.spawn();
    mm.mmapAnon(0, 12);
    mm.touch(0, 12, true, 100n);
    expect(mm.migrate(0, 12, true)).toEqual({ npages: 12, cpages: 12, migrated: 8 });
    expect(m.counters().pgmigrate_fail).toBe(4);
    expect(deviceEntryType(mm.pteAt(7))).toBe(SWP_DEVICE_WRITE);
    expect(mm.pteAt(8) & 0xfffn).toBe(_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_RW);
    for (let i = 0; i < 12; i++) expect(mm.readTag(i)).toBe(100n + BigInt(i));
    expect(() => mm.migrate(10, 4, true)).toThrow('EINVAL');
  });
});

describe('reference kernel: pin_user_pages', () => {
  it('pins add GUP_PIN_COUNTING_BIAS; unpinning frees pages nobody maps any more', () => {
    const m = new RefMachine({ pages: PAGES });
    const mm = m.spawn();
    mm.mmapAnon(0x100, 8);
    mm.touch(0x100, 8, true, 1n);
    const pages = new Uint32Array(8);
    mm.pinUserPages(0x100, 8, false, pages);
    expect(Array.from(pages, (pfn) => m.refcount[pfn])).toEqual(Array(8).fill(1025));
    expect(m.counters().nr_foll_pin_acquired).toBe(8);
    const free = m.counters().nr_free_pages;
    mm.exit();
    expect(m.counters().nr_free_pages).toBe(free);
    expect(() => m.unpinUserPages(Uint32Array.from([pages[0], pages[0]]), 2)).toThrow('EINVAL');
    expect(m.pincount[pages[0]]).toBe(1);
    m.unpinUserPages(pages, 8);
    expect(m.counters().nr_free_pages).toBe(free + 8);
    expect(m.counters().nr_foll_pin_released).toBe(8);
  });

  it('a read pin unshares a page shared with a child; the zero page is returned unpinned', () => {
    const m = new RefMachine({ pages: PAGES });
    const parent = m.spawn();
    parent.mmapAnon(0x100, 4);
    parent.touch(0x100, 2, true, 7n);
    const child = parent.fork();
    const shared = ptePfn(parent.pteAt(0x100));
    const pages = new Uint32Array(4);
    parent.pinUserPages(0x100, 4, false, pages);
    expect(pages[0]).not.toBe(shared);
    expect(ptePfn(child.pteAt(0x100))).toBe(shared);
    expect(parent.pteAt(0x100) & _PAGE_RW).toBe(0n);
    expect(parent.readTag(0x100)).toBe(7n);
    expect(Array.from(pages.subarray(2))).toEqual([0, 0]);
    expect(m.counters().nr_foll_pin_acquired).toBe(2);
    m.unpinUserPages(pages, 4);
    child.exit();
    parent.exit();
  });
});
