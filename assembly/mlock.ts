// mlock (mm/mlock.c): a page mapped in a VM_LOCKED VMA carries PG_mlocked and PG_unevictable
// (resident: reclaim passes it by) and stays migratable. Its mlock_count, kept in lru.prev as
// the kernel overlays it on the unevictable list's links, counts those mappings, so the last
// one to go (munlock, munmap, exit, COW, migration's unmap) clears the flags. A cached file
// page leaves its file LRU list first (lru.prev is its link there) and goes back to the
// inactive list when the last mlock goes. ZONE_DEVICE pages are never mlocked.
import { flagsOf, setFlagsOf, lruPrev, setLruPrev, PG_mlocked, PG_unevictable, PAGE_MAPPING_ANON, mappingOf } from "./memmap";
import { isZoneDevicePage } from "./device";
import { fileLruMlock, fileLruMunlock } from "./filemap";
import { statAdd, NR_MLOCK, UNEVICTABLE_PGMLOCKED, UNEVICTABLE_PGMUNLOCKED } from "./stat";

export const MLOCK_FLAGS: u32 = (1 << PG_mlocked) | (1 << PG_unevictable);

@inline export function mlockCountOf(pfn: u32): u32 {
  return lruPrev(pfn);
}

// mlock_vma_folio: one more VM_LOCKED mapping of `pfn`.
export function mlockPage(pfn: u32): void {
  const f = flagsOf(pfn);
  if (f & (1 << PG_mlocked)) {
    setLruPrev(pfn, lruPrev(pfn) + 1);
    return;
  }
  if (isZoneDevicePage(pfn)) return;
  const m = mappingOf(pfn);
  if (m != 0 && (m & PAGE_MAPPING_ANON) == 0) fileLruMlock(pfn);
  setFlagsOf(pfn, flagsOf(pfn) | MLOCK_FLAGS);
  setLruPrev(pfn, 1);
  statAdd(NR_MLOCK, 1);
  statAdd(UNEVICTABLE_PGMLOCKED, 1);
}

// munlock_vma_folio: one VM_LOCKED mapping of `pfn` fewer. A migration's unmap does not count
// the event (the kernel counts the page stranded, not munlocked: it is off the LRU then).
export function munlockPage(pfn: u32, countEvent: bool): void {
  const f = flagsOf(pfn);
  if ((f & (1 << PG_mlocked)) == 0) return;
  const c = lruPrev(pfn);
  if (c > 1) {
    setLruPrev(pfn, c - 1);
    return;
  }
  setFlagsOf(pfn, f & ~MLOCK_FLAGS);
  const m = mappingOf(pfn);
  if (m != 0 && (m & PAGE_MAPPING_ANON) == 0) fileLruMunlock(pfn);
  statAdd(NR_MLOCK, -1);
  if (countEvent) statAdd(UNEVICTABLE_PGMUNLOCKED, 1);
}
