// Persistent memory (seed 001). Storage mode: pfns with no struct page, reached by block
// I/O (a memcpy) or DAX mappings of special PTEs; a write counter per sector for endurance.
// RAM mode (dax_kmem): the range becomes a hot-plugged ZONE_MOVABLE of a node.
import { systemFrames, nframes, pmemWear, pageZone } from "./layout";
import { zoneOf, clearPageFields, setFlagsOf, PG_reserved } from "./memmap";
import { zoneBase, zoneStart, zoneEnd, zoneInit, buildZonelists, ZONE_RECORD } from "./alloc";
import { setPageblockFlags, zoneExtReset, PAGEBLOCK_NR_PAGES, MIGRATE_MOVABLE } from "./pageblock";
import { walkPte } from "./pagetable";
import { _PAGE_PRESENT, _PAGE_USER, _PAGE_ACCESSED, _PAGE_RW, _PAGE_DIRTY, _PAGE_SPECIAL, userPte } from "./pte";
import { mmPgd, findVma, vmaFlags, vmaBacking, linearIndex, VM_PFNMAP, VM_MIXEDMAP } from "./mm";
import { runCopyAdd, runCopyFlush } from "./content";

// A pfn has a struct page if it is system RAM or lies in a zone that covers it (a
// registered ZONE_DEVICE range, or pmem onlined as RAM). The rest of the device address
// space (holes, pmem in storage mode) has none.
export function pfnHasStructPage(pfn: u32): bool {
  if (pfn < systemFrames) return true;
  if (pfn >= nframes) return false;
  const z = zoneOf(pfn);
  return pfn >= zoneStart(z) && pfn < zoneEnd(z);
}

// ---- endurance: one u32 write counter per frame of the device address space --------------

// Every write that reaches device media: block writes and CPU stores (access batches).
@inline export function wearAdd(pfn: u32): void {
  if (pfn < systemFrames) return;
  const at = pmemWear + (<usize>(pfn - systemFrames) << 2);
  store<u32>(at, load<u32>(at) + 1);
}

// ---- block I/O: a batch of (sector pfn, frame pfn) pairs ---------------------------------

export const PMEM_IO_MAX: u32 = 4096;
const ioPairs: usize = memory.data(<i32>(PMEM_IO_MAX * 8), 16);

export function pmemIoBuf(): usize {
  return ioPairs;
}

// The pmem driver's memcpy: a read copies each sector's frame to its target frame, a write
// the other way and counts a write on the sector.
export function pmemIo(n: u32, write: bool): void {
  for (let i: u32 = 0; i < n; i++) {
    const sector = load<u32>(ioPairs + (<usize>i << 3));
    const frame = load<u32>(ioPairs + (<usize>i << 3) + 4);
    if (write) {
      runCopyAdd(sector, frame);
      wearAdd(sector);
    } else {
      runCopyAdd(frame, sector);
    }
  }
  runCopyFlush();
}

// ---- DAX: special PTEs to pfns without struct page ----------------------------------------

// Linear pfn ranges VM_PFNMAP VMAs map (device-dax): the VMA's backing id picks the range,
// its page offset the pfn in it.
export const PFN_RANGES_MAX: u32 = 64;
const pfnRanges: usize = memory.data(<i32>(PFN_RANGES_MAX * 8), 16);

export function pfnRangeSet(id: u32, start: u32, pages: u32): void {
  store<u32>(pfnRanges + (<usize>id << 3), start);
  store<u32>(pfnRanges + (<usize>id << 3) + 4, pages);
}

const SPECIAL_BITS: u64 = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_SPECIAL | _PAGE_RW;

// vmf_insert_pfn: a special PTE (no refcount, no mapcount, no rmap) for `pfn` at `ptep`,
// writable if the VMA is (a shared mapping needs no write notification), dirty for a write.
@inline function insertPfn(ptep: usize, pfn: u32, vmFlags: u32, write: bool): void {
  store<u64>(ptep, userPte(pfn, write ? SPECIAL_BITS | _PAGE_DIRTY : SPECIAL_BITS, vmFlags));
}

// The fault of a VM_PFNMAP VMA over a pfn range: SIGBUS (false) past the range's end.
export function pfnmapFault(v: usize, vpn: u64, ptep: usize, write: bool): bool {
  const id = vmaBacking(v);
  if (id >= PFN_RANGES_MAX) return false;
  const index = linearIndex(v, vpn);
  const pages = load<u32>(pfnRanges + (<usize>id << 3) + 4);
  if (index >= <u64>pages) return false;
  insertPfn(ptep, load<u32>(pfnRanges + (<usize>id << 3)) + <u32>index, vmaFlags(v), write);
  return true;
}

// vmf_insert_pfn over [vpn, vpn + n) with the pfns of the u32 list at `pfns`. Slots already
// filled are left as they are (insert_pfn's pte_none test). Returns the PTEs inserted,
// -EINVAL for a page outside a VM_PFNMAP/VM_MIXEDMAP VMA, -ENOMEM if a table cannot be had.
export function insertPfnRange(mm: u32, vpn: u64, n: u32, pfns: usize, write: bool): i32 {
  const pgd = mmPgd(mm);
  let done: i32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const v = findVma(mm, vpn + <u64>i);
    if (v == 0 || (vmaFlags(v) & (VM_PFNMAP | VM_MIXEDMAP)) == 0) return -22;
    const ptep = walkPte(pgd, vpn + <u64>i, true);
    if (ptep == 0) return -12;
    if (load<u64>(ptep) != 0) continue;
    insertPfn(ptep, load<u32>(pfns + (<usize>i << 2)), vmaFlags(v), write);
    done++;
  }
  return done;
}

// ---- RAM mode: hot-plug as ZONE_MOVABLE, and removal -------------------------------------

// online_pages for a whole range whose zone record TS wrote: struct pages initialised,
// pageblocks movable, every page freed to the zone, the zonelists rebuilt.
export function pmemOnline(z: u32): void {
  const start = zoneStart(z);
  const end = zoneEnd(z);
  for (let pfn = start; pfn < end; pfn++) clearPageFields(pfn);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) setPageblockFlags(pb, MIGRATE_MOVABLE);
  zoneExtReset(z);
  zoneInit(z);
  buildZonelists();
}

// remove_memory after the whole zone went offline: the struct pages go (the frames become
// the hole they were), the zone slot is emptied, the zonelists rebuilt.
export function pmemRemoveZone(z: u32): void {
  const start = zoneStart(z);
  const end = zoneEnd(z);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) setPageblockFlags(pb, MIGRATE_MOVABLE);
  for (let pfn = start; pfn < end; pfn++) {
    clearPageFields(pfn);
    setFlagsOf(pfn, 1 << PG_reserved);
  }
  memory.fill(pageZone + <usize>start, 0, <usize>(end - start));
  zoneExtReset(z);
  memory.fill(zoneBase(z), 0, ZONE_RECORD);
  buildZonelists();
}

// Storage-mode frames are holes: reserved, owned by no zone, never written as struct pages.
export function pmemStorageInit(start: u32, end: u32): void {
  for (let pfn = start; pfn < end; pfn++) {
    clearPageFields(pfn);
    setFlagsOf(pfn, 1 << PG_reserved);
  }
  memory.fill(pageZone + <usize>start, 0, <usize>(end - start));
  memory.fill(pmemWear + (<usize>(start - systemFrames) << 2), 0, <usize>(end - start) << 2);
}
