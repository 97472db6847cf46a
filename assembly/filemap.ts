// The page cache of files (mm/filemap.c, mm/page-writeback.c, mm/vmscan.c for file pages):
// pages added locked and read in by TypeScript, dirty and writeback state with its
// counters, the per-node inactive/active file LRU lists, and reclaim of clean file pages.
// Block I/O itself is TypeScript's: the core hands out pfns and takes back the results.
import { allocInjected } from "./inject";
import { NONE, maxMms } from "./layout";
import {
  flagsOf, setFlagsOf, testFlag, setFlag, clearFlag, refOf, mapcountOf, mappingOf, indexOf, setMapping, setIndex,
  lruNext, lruPrev, setLruNext, setLruPrev, zoneOf,
  PG_locked, PG_lru, PG_dirty, PG_writeback, PG_uptodate, PG_referenced, PG_active, PG_mlocked, PG_unevictable, PAGE_MAPPING_ANON,
} from "./memmap";
import { zoneNode, putPage, allocPages, freePages } from "./alloc";
import { isZoneDevicePage, isDevicePrivatePage } from "./device";
import { mappingSlot, mappingStore, mappingErase, mappingIsFile, mappingForEach } from "./mapping";
import { fileMappingValue, fileMappingId, zapPage } from "./rmap";
import { mmAlive, mmPgd, mmNvmas, mmHasNotifiers, vmaAddr, vmaStart, vmaEnd, vmaPgoff, vmaFlags, vmaMapsCache, VM_SHARED } from "./mm";
import { walkPte } from "./pagetable";
import { copyFrame } from "./content";
import { _PAGE_RW, _PAGE_DIRTY, ptePfn, isSwapPte, pteSpecial, ptepresent } from "./pte";
import {
  statAdd, NR_FILE_PAGES, NR_DIRTY, NR_WRITEBACK, NR_INACTIVE_FILE, NR_ACTIVE_FILE, PGSCAN_FILE, PGSTEAL_FILE,
  NR_DIRTIED, NR_WRITTEN, NR_BOUNCE,
} from "./stat";

// ---- the file LRU lists ---------------------------------------------------------------
// One inactive and one active list per node, linked through page->lru (free pages use the
// same links on the free lists, and a cached page is never free). Heads hold pfn+1, 0 = empty.
// A file's page-cache page in system RAM is on exactly one of its node's lists unless it is
// mlocked: then it is PG_unevictable, on the kernel's unevictable "list", which is not kept
// (so lru.prev can hold its mlock_count), and reclaim never meets it. Isolation by migration
// or compaction clears PG_lru but leaves the page linked; reclaim passes such pages by.
const MAX_NODES: u32 = 16;
const LRUVEC: usize = memory.data(<i32>(MAX_NODES * 2 * 12));
const L_HEAD: usize = 0;
const L_TAIL: usize = 4;
const L_COUNT: usize = 8;

@inline function lruList(nid: u32, active: bool): usize {
  return LRUVEC + (<usize>nid * 2 + (active ? 1 : 0)) * 12;
}
@inline function pfnNode(pfn: u32): u32 { return zoneNode(zoneOf(pfn)); }

export function lruListCount(nid: u32, active: bool): u32 { return load<u32>(lruList(nid, active) + L_COUNT); }

function lruLink(pfn: u32, active: bool): void {
  const l = lruList(pfnNode(pfn), active);
  const head = load<u32>(l + L_HEAD);
  setLruPrev(pfn, NONE);
  setLruNext(pfn, head - 1);
  if (head != 0) setLruPrev(head - 1, pfn);
  else store<u32>(l + L_TAIL, pfn + 1);
  store<u32>(l + L_HEAD, pfn + 1);
  store<u32>(l + L_COUNT, load<u32>(l + L_COUNT) + 1);
  statAdd(active ? NR_ACTIVE_FILE : NR_INACTIVE_FILE, 1);
}

function lruUnlink(pfn: u32, active: bool): void {
  const l = lruList(pfnNode(pfn), active);
  const next = lruNext(pfn);
  const prev = lruPrev(pfn);
  if (prev != NONE) setLruNext(prev, next);
  else store<u32>(l + L_HEAD, next + 1);
  if (next != NONE) setLruPrev(next, prev);
  else store<u32>(l + L_TAIL, prev + 1);
  setLruNext(pfn, NONE);
  setLruPrev(pfn, NONE);
  store<u32>(l + L_COUNT, load<u32>(l + L_COUNT) - 1);
  statAdd(active ? NR_ACTIVE_FILE : NR_INACTIVE_FILE, -1);
}

// Whether a page of a file's cache lives on the LRU lists: device memory has none, and an
// mlocked page is on the unevictable list instead.
@inline function onFileLru(pfn: u32): bool {
  return !isZoneDevicePage(pfn) && (flagsOf(pfn) & (1 << PG_unevictable)) == 0;
}

// Whether `pfn` is the page its file's cache holds at its index, in system RAM. A page that
// names a file need not be: a migration's old page keeps page->mapping after its slot moved.
function isFileCachePage(pfn: u32): bool {
  const m = mappingOf(pfn);
  if (m == 0 || (m & PAGE_MAPPING_ANON) != 0 || isZoneDevicePage(pfn)) return false;
  const id = fileMappingId(m);
  if (!mappingIsFile(id)) return false;
  const slot = mappingSlot(id, indexOf(pfn), false);
  if (slot == 0) return false;
  const e = load<u64>(slot);
  return e != 0 && ptePfn(e) == pfn;
}

// mlock_folio's move to the unevictable list, before PG_unevictable is set: a cached file
// page leaves its file LRU list, and PG_active (an unevictable folio is never active, so
// munlock puts it back on the inactive list).
export function fileLruMlock(pfn: u32): void {
  if (!isFileCachePage(pfn)) return;
  const f = flagsOf(pfn);
  if ((f & (1 << PG_unevictable)) != 0) return;
  const active = (f & (1 << PG_active)) != 0;
  lruUnlink(pfn, active);
  if (active) setFlagsOf(pfn, f & ~(1 << PG_active));
}

// __munlock_folio's putback, after PG_unevictable is cleared: a cached file page goes back
// to the inactive list (a page no longer in the cache has no list to go to).
export function fileLruMunlock(pfn: u32): void {
  if (isFileCachePage(pfn) && onFileLru(pfn)) lruLink(pfn, false);
}

// folio_migrate_mapping for a file page: the new page takes the old one's LRU place. An
// mlocked old page (a read-only migration keeps its mappings) is on no list; the new page
// goes on one until remove_migration_ptes mlocks it.
export function fileLruReplace(old: u32, d: u32): void {
  const active = testFlag(old, PG_active);
  if (onFileLru(old)) lruUnlink(old, active);
  if (onFileLru(d)) lruLink(d, active);
}

// folio_mark_accessed: a second reference moves an inactive page to the active list.
export function markPageAccessed(pfn: u32): void {
  const f = flagsOf(pfn);
  if ((f & (1 << PG_referenced)) == 0) {
    setFlagsOf(pfn, f | (1 << PG_referenced));
    return;
  }
  // An unevictable page is activated by nothing (it is on no evictable list).
  if ((f & ((1 << PG_active) | (1 << PG_unevictable))) != 0 || !onFileLru(pfn)) return;
  lruUnlink(pfn, false);
  setFlagsOf(pfn, (f | (1 << PG_active)) & ~(1 << PG_referenced));
  lruLink(pfn, true);
}

// ---- cache insertion and removal --------------------------------------------------------

// filemap_add_folio: `pfn`, fresh from the allocator (its one reference becomes the cache's),
// is the locked, not yet uptodate page at `index` of file `id`; the caller reads it in.
export function filemapAddFolio(slot: usize, id: u32, index: u64, pfn: u32): void {
  setFlagsOf(pfn, (1 << PG_locked) | (1 << PG_lru));
  setMapping(pfn, fileMappingValue(id));
  setIndex(pfn, index);
  mappingStore(slot, id, pfn);
  statAdd(NR_FILE_PAGES, 1);
  if (onFileLru(pfn)) lruLink(pfn, false);
}

// filemap_remove_folio: the page leaves the cache with the cache's reference. Whoever else
// holds it (a pin) keeps a page that belongs to no file any more. An mlocked page (callers
// take the mappings, and with them the mlock, first) is on no list to leave.
export function filemapRemoveFolio(pfn: u32): void {
  const id = fileMappingId(mappingOf(pfn));
  const slot = mappingSlot(id, indexOf(pfn), false);
  assert(slot != 0, "cached page without a slot");
  mappingErase(slot, id);
  const f = flagsOf(pfn);
  if (onFileLru(pfn)) lruUnlink(pfn, (f & (1 << PG_active)) != 0);
  if (f & (1 << PG_dirty)) statAdd(NR_DIRTY, -1);
  setFlagsOf(pfn, f & ~((1 << PG_dirty) | (1 << PG_lru) | (1 << PG_active) | (1 << PG_referenced)));
  setMapping(pfn, 0);
  statAdd(NR_FILE_PAGES, -1);
  putPage(pfn);
}

// The read of a page added by filemapAddFolio finished: uptodate and unlocked, or, after an
// I/O error, out of the cache again (the fault gets SIGBUS, the read EIO).
export function filemapReadDone(pfn: u32, ok: bool): void {
  clearFlag(pfn, PG_locked);
  if (ok) setFlag(pfn, PG_uptodate);
  else filemapRemoveFolio(pfn);
}

// folio_mark_dirty for a page of a file: counted once until it is cleaned.
export function folioMarkDirty(pfn: u32): void {
  const f = flagsOf(pfn);
  if (f & (1 << PG_dirty)) return;
  setFlagsOf(pfn, f | (1 << PG_dirty));
  const m = mappingOf(pfn);
  if (m != 0 && (m & 1) == 0 && mappingIsFile(fileMappingId(m))) {
    statAdd(NR_DIRTY, 1);
    statAdd(NR_DIRTIED, 1);
  }
}

// ---- the file rmap --------------------------------------------------------------------

const RMAP_MKCLEAN: u32 = 0;
const RMAP_UNMAP: u32 = 1;
const RMAP_NOTIFIED: u32 = 2;
let rmapFound: u32 = 0;

// Every PTE that maps cached page `pfn`: in shared mappings of its file and in private ones
// that have not COWed the index. MKCLEAN write-protects and cleans them (folio_mkclean),
// NOTIFIED counts those in mms that interval notifiers watch, UNMAP zaps them.
function fileRmapWalk(pfn: u32, op: u32): void {
  const id = fileMappingId(mappingOf(pfn));
  const index = indexOf(pfn);
  rmapFound = 0;
  for (let mm: u32 = 0; mm < maxMms; mm++) {
    if (!mmAlive(mm)) continue;
    const n = mmNvmas(mm);
    for (let i: u32 = 0; i < n; i++) {
      const v = vmaAddr(mm, i);
      if (!vmaMapsCache(v, id)) continue;
      const pgoff = vmaPgoff(v);
      if (index < pgoff || index >= pgoff + (vmaEnd(v) - vmaStart(v))) continue;
      const ptep = walkPte(mmPgd(mm), vmaStart(v) + (index - pgoff), false);
      if (ptep == 0) continue;
      const pte = load<u64>(ptep);
      if (!ptepresent(pte) || isSwapPte(pte) || pteSpecial(pte) || ptePfn(pte) != pfn) continue;
      if (op == RMAP_MKCLEAN) {
        if ((vmaFlags(v) & VM_SHARED) != 0) store<u64>(ptep, pte & ~(_PAGE_RW | _PAGE_DIRTY));
      } else if (op == RMAP_NOTIFIED) {
        if (mmHasNotifiers(mm)) rmapFound++;
      } else {
        if (pte & _PAGE_DIRTY) folioMarkDirty(pfn);
        store<u64>(ptep, 0);
        zapPage(pfn, mm);
        rmapFound++;
      }
    }
  }
}

// ---- writeback ------------------------------------------------------------------------

// The pages of one writeback batch: (index, pfn) pairs, index < 2^27.
export const WB_MAX: u32 = 4096;
const WB: usize = memory.data(<i32>(WB_MAX * 8));
let wbCount: u32 = 0;
let wbTo: u64 = 0;
let wbNext: u64 = 0;
export function wbBase(): usize { return WB; }
export function wbNextIndex(): f64 { return <f64>wbNext; }

function wbCollect(slot: usize, pfn: u32, index: u64): void {
  if (wbCount >= WB_MAX || index >= wbTo) {
    if (index < wbNext) wbNext = index;
    return;
  }
  const f = flagsOf(pfn);
  // A locked page belongs to a migration or a read in flight: the next pass takes it.
  if ((f & (1 << PG_dirty)) == 0 || (f & ((1 << PG_locked) | (1 << PG_writeback))) != 0) return;
  // folio_clear_dirty_for_io: the mappings go read-only and clean, so the next store
  // faults and dirties the page again; then PG_writeback covers the I/O.
  fileRmapWalk(pfn, RMAP_MKCLEAN);
  setFlagsOf(pfn, (f & ~(1 << PG_dirty)) | (1 << PG_writeback));
  statAdd(NR_DIRTY, -1);
  statAdd(NR_WRITEBACK, 1);
  store<u32>(WB + (<usize>wbCount << 3), <u32>index);
  store<u32>(WB + (<usize>wbCount << 3) + 4, pfn);
  wbCount++;
}

// write_cache_pages' first half: the dirty pages of file `id` in [from, to), up to WB_MAX,
// cleaned and set under writeback. Returns how many; wbNextIndex() is where to go on from
// (`to` when the range is done).
export function filemapWritebackBegin(id: u32, from: f64, to: f64): u32 {
  wbCount = 0;
  wbTo = <u64>to;
  wbNext = <u64>to;
  mappingForEach(id, <u64>from, wbCollect, false);
  return wbCount;
}

// folio_end_writeback for entries [from, from+n) of the batch: written, or (an I/O error)
// dirty again, so nothing is lost and a later fsync retries.
export function filemapWritebackEnd(from: u32, n: u32, ok: bool): void {
  for (let i = from; i < from + n; i++) {
    const pfn = load<u32>(WB + (<usize>i << 3) + 4);
    assert(testFlag(pfn, PG_writeback), "end of writeback for a page not under writeback");
    clearFlag(pfn, PG_writeback);
    statAdd(NR_WRITEBACK, -1);
    if (ok) statAdd(NR_WRITTEN, 1);
    else folioMarkDirty(pfn);
  }
}

// ---- truncation -----------------------------------------------------------------------

let truncBusy: u32 = 0;
function truncateOne(slot: usize, pfn: u32, index: u64): void {
  // A page under migration or I/O stays: truncate_inode_pages would wait for it.
  if ((flagsOf(pfn) & ((1 << PG_locked) | (1 << PG_writeback))) != 0 || mapcountOf(pfn) != 0) {
    truncBusy++;
    return;
  }
  filemapRemoveFolio(pfn);
}

// truncate_inode_pages_range from `from` to the end, after unmap_mapping_range took the
// mappings away. Returns the pages it had to leave (locked, under writeback, still mapped).
export function truncateInodePages(id: u32, from: f64): u32 {
  truncBusy = 0;
  mappingForEach(id, <u64>from, truncateOne, true);
  return truncBusy;
}

// ---- reclaim --------------------------------------------------------------------------

let dirtySeen: u32 = 0;
export function reclaimDirtySeen(): u32 { return dirtySeen; }

// shrink_folio_list for one page at the inactive tail: true when it was freed.
function reclaimOne(pfn: u32): bool {
  const f = flagsOf(pfn);
  if ((f & ((1 << PG_locked) | (1 << PG_writeback) | (1 << PG_mlocked))) != 0 || (f & (1 << PG_lru)) == 0) return false;
  if (f & (1 << PG_referenced)) {
    clearFlag(pfn, PG_referenced);
    return false;
  }
  if (f & (1 << PG_dirty)) {
    // Reclaim does not write file pages itself: the flusher does (TypeScript, on FAULT_OOM).
    dirtySeen++;
    return false;
  }
  // Only the cache and the mappings may hold it; a mapping in an mm watched by interval
  // notifiers would need them told first, which the core cannot do.
  if (refOf(pfn) != 1 + mapcountOf(pfn)) return false;
  if (mapcountOf(pfn) != 0) {
    fileRmapWalk(pfn, RMAP_NOTIFIED);
    if (rmapFound != 0) return false;
    fileRmapWalk(pfn, RMAP_UNMAP);
    if (testFlag(pfn, PG_dirty)) {
      dirtySeen++;
      return false;
    }
  }
  if (refOf(pfn) != 1) return false;
  filemapRemoveFolio(pfn);
  statAdd(PGSTEAL_FILE, 1);
  return true;
}

// shrink_active_list: the active tail goes back to the inactive list, unreferenced.
function ageActive(nid: u32, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const tail = load<u32>(lruList(nid, true) + L_TAIL);
    if (tail == 0) return;
    const pfn = tail - 1;
    lruUnlink(pfn, true);
    setFlagsOf(pfn, flagsOf(pfn) & ~((1 << PG_active) | (1 << PG_referenced)));
    lruLink(pfn, false);
  }
}

// shrink_lruvec for file pages of every node: scans inactive tails, frees clean pages, and
// keeps the inactive list at least as long as the active one. Returns the pages freed;
// reclaimDirtySeen() counts the dirty pages it passed, which need writeback first.
export function shrinkFileLru(want: u32): u32 {
  let freed: u32 = 0;
  dirtySeen = 0;
  for (let nid: u32 = 0; nid < MAX_NODES && freed < want; nid++) {
    const inactive = lruListCount(nid, false);
    const active = lruListCount(nid, true);
    if (active > inactive) ageActive(nid, min(active - inactive, want * 2));
    // Up to two passes over the list: the first may only take referenced bits away.
    let scan = lruListCount(nid, false) * 2;
    while (scan > 0 && freed < want) {
      scan--;
      const tail = load<u32>(lruList(nid, false) + L_TAIL);
      if (tail == 0) break;
      const pfn = tail - 1;
      statAdd(PGSCAN_FILE, 1);
      if (reclaimOne(pfn)) {
        freed++;
      } else {
        // Kept: rotated to the head so the scan moves on.
        lruUnlink(pfn, false);
        lruLink(pfn, false);
      }
    }
  }
  return freed;
}

// ---- check ----------------------------------------------------------------------------

// The file LRU lists against the caches: every page on a list is the cached page of its
// file's index, in system RAM, not unevictable, on its node's list of its PG_active kind,
// and the counts add up. Returns the number of pages on all lists, or -1 (with `lruBadPfn`)
// when a list is corrupt.
export let lruBadPfn: u32 = 0;
export function checkFileLru(): i64 {
  let total: i64 = 0;
  for (let nid: u32 = 0; nid < MAX_NODES; nid++) {
    for (let a = 0; a < 2; a++) {
      const active = a == 1;
      const l = lruList(nid, active);
      let pfn = load<u32>(l + L_HEAD) - 1;
      let prev = NONE;
      let n: u32 = 0;
      while (pfn != NONE) {
        const m = mappingOf(pfn);
        if (n > load<u32>(l + L_COUNT) || lruPrev(pfn) != prev || m == 0 || (m & 1) != 0 || !isFileCachePage(pfn) ||
            testFlag(pfn, PG_active) != active || pfnNode(pfn) != nid || !onFileLru(pfn)) {
          lruBadPfn = pfn;
          return -1;
        }
        n++;
        prev = pfn;
        pfn = lruNext(pfn);
      }
      if (n != load<u32>(l + L_COUNT) || (prev + 1) != load<u32>(l + L_TAIL)) {
        lruBadPfn = prev;
        return -1;
      }
      total += n;
    }
  }
  return total;
}

// ---- page cache access for read(2)/write(2) -------------------------------------------------

let grabbedNew: bool = false;
export function filemapGrabbedNew(): bool { return grabbedNew; }

// __filemap_get_folio(FGP_CREAT) for file `id`: the cached page at `index`, or a new locked
// one from node `nid` (reclaiming clean file pages under pressure) that the caller fills and
// releases with filemapReadDone. NONE when out of memory or the page is locked by a
// migration. filemapGrabbedNew() tells which.
export function filemapGrabFolio(id: u32, index: f64, nid: u32): u32 {
  grabbedNew = false;
  const slot = mappingSlot(id, <u64>index, true);
  if (slot == 0) return NONE;
  const e = load<u64>(slot);
  if (e != 0) {
    const pfn = ptePfn(e);
    if (testFlag(pfn, PG_locked)) return NONE;
    markPageAccessed(pfn);
    return pfn;
  }
  if (allocInjected(nid, true)) return NONE;
  let pfn = allocPages(nid, 0, true);
  if (pfn == NONE && shrinkFileLru(32) > 0) pfn = allocPages(nid, 0, true);
  if (pfn == NONE) return NONE;
  filemapAddFolio(slot, id, <u64>index, pfn);
  grabbedNew = true;
  return pfn;
}

// The cached page of file `id` at `index`, or NONE.
export function filemapLookup(id: u32, index: f64): u32 {
  const slot = mappingSlot(id, <u64>index, false);
  if (slot == 0) return NONE;
  const e = load<u64>(slot);
  return e == 0 ? NONE : ptePfn(e);
}

let busyPages: u32 = 0;
function countBusy(slot: usize, pfn: u32, index: u64): void {
  if ((flagsOf(pfn) & ((1 << PG_locked) | (1 << PG_writeback))) != 0) busyPages++;
}

// Pages from `from` on that truncation would have to wait for (locked or under writeback).
export function truncateInodePagesBusy(id: u32, from: f64): u32 {
  busyPages = 0;
  mappingForEach(id, <u64>from, countBusy, false);
  return busyPages;
}

// ---- file pages in device-private memory (ours; the kernel keeps file pages in RAM) ----------

// The device-private pages of file `id` in [from, to), up to WB_MAX, as (index, pfn) pairs in
// the writeback array (`dirtyOnly`: only dirty ones; locked pages are left out, a migration
// holds them). wbNextIndex() is where to go on from. Nothing changes.
let devDirtyOnly: bool = false;
function devCollect(slot: usize, pfn: u32, index: u64): void {
  if (wbCount >= WB_MAX || index >= wbTo) {
    if (index < wbNext) wbNext = index;
    return;
  }
  if (!isDevicePrivatePage(pfn)) return;
  const f = flagsOf(pfn);
  if ((f & ((1 << PG_locked) | (1 << PG_writeback))) != 0) return;
  if (devDirtyOnly && (f & (1 << PG_dirty)) == 0) return;
  store<u32>(WB + (<usize>wbCount << 3), <u32>index);
  store<u32>(WB + (<usize>wbCount << 3) + 4, pfn);
  wbCount++;
}

export function filemapDevicePages(id: u32, from: f64, to: f64, dirtyOnly: bool): u32 {
  wbCount = 0;
  wbTo = <u64>to;
  wbNext = <u64>to;
  devDirtyOnly = dirtyOnly;
  mappingForEach(id, <u64>from, devCollect, false);
  return wbCount;
}

// A bounce page (block/bounce.c): a system page for I/O of a page the block layer cannot
// reach, from node `nid` (clean file pages reclaimed under pressure); NONE when there is none.
export function bounceAlloc(nid: u32): u32 {
  if (allocInjected(nid, false)) return NONE;
  let pfn = allocPages(nid, 0, false);
  if (pfn == NONE && shrinkFileLru(8) > 0) pfn = allocPages(nid, 0, false);
  return pfn;
}

// The bounce page's I/O is over: back to the allocator, counted in nr_bounce.
export function bounceFree(pfn: u32): void {
  freePages(pfn, 0);
  statAdd(NR_BOUNCE, 1);
}

// The writeback batch's pages as the block layer gets them: a device-private page's entry is
// a bounce page holding its copy (the device's copy engine), others the page itself. One call
// per batch; -1, with nothing left allocated, when a bounce page cannot be had.
const WB_IO: usize = memory.data(<i32>(WB_MAX * 4));
export function wbIoBase(): usize { return WB_IO; }

export function wbBounce(n: u32): i32 {
  let bounced: i32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(WB + (<usize>i << 3) + 4);
    let io = pfn;
    if (isDevicePrivatePage(pfn)) {
      io = bounceAlloc(zoneNode(zoneOf(pfn)));
      if (io == NONE) {
        for (let j: u32 = 0; j < i; j++) {
          const b = load<u32>(WB_IO + (<usize>j << 2));
          if (b != load<u32>(WB + (<usize>j << 3) + 4)) freePages(b, 0);
        }
        return -1;
      }
      copyFrame(io, pfn);
      bounced++;
    }
    store<u32>(WB_IO + (<usize>i << 2), io);
  }
  return bounced;
}

// The batch's I/O is over: its bounce pages go back (counted in nr_bounce).
export function wbBounceDone(n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const b = load<u32>(WB_IO + (<usize>i << 2));
    if (b != load<u32>(WB + (<usize>i << 3) + 4)) bounceFree(b);
  }
}

// invalidate_inode_page for one page of file `id`: a clean, unlocked page that nothing maps or
// holds leaves the cache (a device's pager dropping what it wrote back). Whether it did.
export function filemapInvalidateFolio(id: u32, index: f64): bool {
  const slot = mappingSlot(id, <u64>index, false);
  if (slot == 0) return false;
  const e = load<u64>(slot);
  if (e == 0) return false;
  const pfn = ptePfn(e);
  if ((flagsOf(pfn) & ((1 << PG_locked) | (1 << PG_writeback) | (1 << PG_dirty))) != 0) return false;
  if (mapcountOf(pfn) != 0 || refOf(pfn) != 1) return false;
  filemapRemoveFolio(pfn);
  return true;
}
