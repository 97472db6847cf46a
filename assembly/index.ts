// The Wasm surface. Addresses cross the boundary as page numbers in f64 (exact to
// 2^53), never as i64; results that do not fit a return value go to the result block.
import { LAYOUT, readLayout, nzones, maxMms, nframes, resultBase, NONE } from "./layout";
import { setFlag, setRef, setMapping, PG_reserved } from "./memmap";
import { zoneInit, buildZonelists, drainZone, zoneExists, zoneIsDevice, MAX_ZONES } from "./alloc";
import { tablesInit, allocPageTable, freePageTable, tablesFree, walkPte } from "./pagetable";
import { mmInit, mmReset, mmAlive, setMmNvmas, mmPgd, mmRssAnon, mmRssShmem, vmaAddr, setMmPolicy } from "./mm";
import { rangeOp, zapRange, moveRange, rangeCount, rangeWritable, rangePfnSum, rangeFailed, RANGE_CHANGE_PROT, RANGE_COPY, RANGE_MADV_FREE, RANGE_COUNT, RANGE_COUNT_TABLES, RANGE_MLOCK, RANGE_MUNLOCK } from "./ptrange";
import { accessBatch } from "./access";
import { mappingOpen, mappingClose, mappingForEach, mappingErase, mappingSetSize, mappingNrpages, MAPPING_SHMEM, MAPPING_FILE } from "./mapping";
import { putPage } from "./alloc";
import { checkMachine } from "./check";
import { statAdd, statFold, NR_SHMEM, NR_FILE_PAGES } from "./stat";
import { ZERO_PFN } from "./rmap";
import { reclaimLazyfree } from "./reclaim";
import { zoneDeviceInit, zoneDeviceRelease, allocDevicePage, allocDevicePagesBulk, zoneDevicePageInit, freedPages, freedReset, deviceSpaceInit } from "./device";
import { refOf, mapcountOf, flagsOf, zoneOf, mappingOf, indexOf, getPage, testFlag, setFlag, clearFlag, pageIsAnon, PG_locked, PG_dirty, PG_anon_exclusive, PG_hwpoison, PG_reserved } from "./memmap";
import { copyFrame, copyFrames, clearFrame, frameAddr, readTag, writeTag } from "./content";
import { handleMmFault, handleGupFault, faultPfn, setNotified } from "./fault";
import { gupPages, gupIn, gupWalk, gupStop, gupStopWrite, gupRelease, gupTake, gupUntake, gupDrop, gupBadReason, gupCollectUnpinnable, pageNode } from "./gup";
import { pinpageHoldList, pinpageReleaseList, pinpageBadReason } from "./pinpage";
import { gupRefsOf, pincountOf, pinpageHoldsOf } from "./memmap";
import { setMmHasNotifiers, findVma, vmaFlags, VM_WRITE } from "./mm";
import { _PAGE_PRESENT, _PAGE_USER, _PAGE_DIRTY, _PAGE_ACCESSED, _PAGE_RW, pteSpecial, ptePfn, pfnPte, swpEntry, swpType, swpOffset, isSwapPte, SWP_DEVICE_EXCLUSIVE } from "./pte";
import { poisonPage, migTouchedOthers, selectSlot, saveSlot, forgetOwnPtes, srcAddr, dstAddr, migrateVmaCollect, migrateDeviceRange, migratePfnList, migratePages, migrateFinalize, migratePagesFinalize, setMigrateLanes, migLaneGroups, migratePfn, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, MIGRATE_PFN_SHIFT } from "./migrate";
import { hmmWalk, hmmFaultWrite } from "./hmm";
import { allocPagesBulk, allocPages, ascendRuns } from "./alloc";
import { allocInjectArmed, allocInjectFail, allocInjected } from "./inject";
export { injectAllocSet, injectAllocMask, injectAllocHits, injectAllocLive } from "./inject";
import { dataBase, scratchBase } from "./layout";
import { pageblocksInit } from "./pageblock";
import { nrProblems, nrMovable, firstNotIsolated, rangeScan } from "./isolation";
import { statAdd as statAddCore, CMA_ALLOC_SUCCESS, CMA_ALLOC_FAIL } from "./stat";


export function layoutPtr(): usize {
  return LAYOUT;
}

export function heapBase(): usize {
  return __heap_base;
}

// Lays the machine out: reserves the zero page, builds every zone's free lists.
export function init(): void {
  readLayout();
  tablesInit();
  setFlag(ZERO_PFN, PG_reserved);
  setRef(ZERO_PFN, 1);
  deviceSpaceInit();
  pageblocksInit();
  for (let z: u32 = 0; z < nzones; z++) zoneInit(z);
  buildZonelists();
  for (let mm: u32 = 0; mm < maxMms; mm++) mmReset(mm);
}

// mm_alloc: a fresh mm with an empty pgd. Returns the mm id, or -ENOMEM.
export function mmCreate(node: u32): i32 {
  for (let mm: u32 = 0; mm < maxMms; mm++) {
    if (mmAlive(mm)) continue;
    const pgd = allocPageTable();
    if (pgd == NONE) return -12;
    mmInit(mm, pgd, node);
    return <i32>mm;
  }
  return -12;
}

export function mmVmaTable(mm: u32): usize {
  return vmaAddr(mm, 0);
}

export function mmSetNvmas(mm: u32, n: u32): void {
  setMmNvmas(mm, n);
}

// exit_mmap: unmap everything, free every table, release the slot.
export function mmDestroy(mm: u32): void {
  const pgd = mmPgd(mm);
  zapRange(mm, 0, <u64>1 << 36);
  freePageTable(pgd);
  mmReset(mm);
}

export function rssAnon(mm: u32): u32 { return mmRssAnon(mm); }
export function rssShmem(mm: u32): u32 { return mmRssShmem(mm); }

export function access(mm: u32, from: u32, n: u32): u32 {
  return accessBatch(mm, from, n);
}

// Faults in [vpn, vpn+n) for write or read without touching contents (MAP_POPULATE).
export function populate(mm: u32, vpn: f64, n: f64, write: bool): f64 {
  const start = <u64>vpn;
  const end = start + <u64>n;
  for (let v = start; v < end; v++) {
    const r = handleMmFault(mm, v, write);
    if (r != 0) {
      // As fault(): the caller resolves this fault (a FAULT_READPAGE needs its locked page).
      store<u32>(resultBase + 4, r);
      store<u32>(resultBase + 20, faultPfn);
      return <f64>(v - start);
    }
  }
  return n;
}

export function zap(mm: u32, vpn: f64, n: f64): void {
  zapRange(mm, <u64>vpn, <u64>vpn + <u64>n);
}

export function changeProt(mm: u32, vpn: f64, n: f64, vmFlags: u32): void {
  rangeOp(mm, <u64>vpn, <u64>vpn + <u64>n, RANGE_CHANGE_PROT, vmFlags, 0);
}

export function madvFree(mm: u32, vpn: f64, n: f64): void {
  rangeOp(mm, <u64>vpn, <u64>vpn + <u64>n, RANGE_MADV_FREE, 0, 0);
}

// mremap's move_page_tables; the caller checked tablesFree() first.
export function move(mm: u32, vpn: f64, n: f64, newVpn: f64): bool {
  return moveRange(mm, <u64>vpn, <u64>vpn + <u64>n, <i64>newVpn - <i64>vpn);
}

// copy_page_range for one private VMA of a fork.
export function copyRange(dst: u32, src: u32, vpn: f64, n: f64): bool {
  rangeOp(src, <u64>vpn, <u64>vpn + <u64>n, RANGE_COPY, dst, 0);
  return !rangeFailed;
}

// Page-table pages of `mm` under [vpn, vpn+n): what copying that range can need at most.
export function countTablesIn(mm: u32, vpn: f64, n: f64): u32 {
  rangeOp(mm, <u64>vpn, <u64>vpn + <u64>n, RANGE_COUNT_TABLES, 0, 0);
  return rangeCount;
}

export function freeTables(): u32 {
  return tablesFree();
}

// The PTE walk: present and writable entries in [vpn, vpn+n); the pfn sum goes to the result block.
export function walk(mm: u32, vpn: f64, n: f64): u32 {
  rangeOp(mm, <u64>vpn, <u64>vpn + <u64>n, RANGE_COUNT, 0, 0);
  store<u32>(resultBase + 64, rangeWritable);
  store<f64>(resultBase + 72, <f64>rangePfnSum);
  return rangeCount;
}

// The raw PTE for `vpn` as two u32 halves in the result block; false when no table covers it.
export function readPte(mm: u32, vpn: f64): bool {
  const ptep = walkPte(mmPgd(mm), <u64>vpn, false);
  const pte: u64 = ptep == 0 ? 0 : load<u64>(ptep);
  store<u32>(resultBase + 80, <u32>pte);
  store<u32>(resultBase + 84, <u32>(pte >> 32));
  return ptep != 0;
}

export function shmemOpen(id: u32, sizePages: u32): void {
  mappingOpen(id, sizePages, MAPPING_SHMEM);
}

let truncId: u32 = 0;
function dropCached(slot: usize, pfn: u32, index: u64): void {
  mappingErase(slot, truncId);
  // The page leaves the cache: whoever still holds it (a GUP reference) keeps a page of no
  // object. Its id goes back to the free list, and a stale page->mapping would let migration
  // put the page into the next object that takes the id.
  setMapping(pfn, 0);
  statAdd(NR_SHMEM, -1);
  statAdd(NR_FILE_PAGES, -1);
  putPage(pfn);
}

// shmem_evict_inode after the last mapping went: drops the cache's page references.
export function shmemClose(id: u32): void {
  truncId = id;
  mappingForEach(id, 0, dropCached, true);
  mappingClose(id);
}

// drain_all_pages: the pcp caches of every zone back to the buddy lists.
export function drainAllPages(): void {
  for (let z: u32 = 0; z < MAX_ZONES; z++) if (zoneExists(z) && !zoneIsDevice(z)) drainZone(z);
}

export function foldStats(): void {
  statFold();
}

export function check(): u32 {
  return checkMachine();
}

export function reclaim(n: u32): u32 {
  return reclaimLazyfree(n);
}

// ---- ZONE_DEVICE -----------------------------------------------------------------

export function deviceZoneInit(z: u32): void {
  zoneDeviceInit(z);
}

export function deviceZoneRelease(z: u32): bool {
  return zoneDeviceRelease(z);
}

// A free page of device zone z, with one reference and locked; -1 when none is free.
export function deviceAllocPage(z: u32): i32 {
  return <i32>allocDevicePage(z);
}

// One page-allocation request in zone z made outside the core (a driver's allocator): whether
// an injected failure takes it.
export function injectAllocCheck(z: u32): bool {
  return allocInjectArmed && allocInjectFail(z);
}

export function devicePageInit(pfn: u32): void {
  zoneDevicePageInit(pfn);
}

// Device pages freed since the last call; their pfns are in the FREED_RING region.
export function deviceTakeFreed(): u32 {
  const n = freedPages();
  freedReset();
  return n;
}

// ---- struct page access for drivers ------------------------------------------------

export function pageRefcount(pfn: u32): i32 { return refOf(pfn); }
export function pageMapcount(pfn: u32): i32 { return mapcountOf(pfn); }
export function pageFlags(pfn: u32): u32 { return flagsOf(pfn); }
export function pageZoneId(pfn: u32): u32 { return zoneOf(pfn); }
export function pageMappingValue(pfn: u32): u32 { return mappingOf(pfn); }
export function pageIndexValue(pfn: u32): f64 { return <f64>indexOf(pfn); }
export function pageGet(pfn: u32): void { getPage(pfn); }
export function pagePut(pfn: u32): void { putPage(pfn); }

export function pageTrylock(pfn: u32): bool {
  if (testFlag(pfn, PG_locked)) return false;
  setFlag(pfn, PG_locked);
  return true;
}

export function pageUnlock(pfn: u32): void {
  clearFlag(pfn, PG_locked);
}

export function pageCopy(dst: u32, src: u32): void {
  copyFrame(dst, src);
}

export function pageClear(pfn: u32): void {
  clearFrame(pfn);
}

// Bytes mode: the frame's 4096 bytes to/from the DATA region at `offset`.
export function pageReadData(pfn: u32, offset: u32): void {
  memory.copy(dataBase + <usize>offset, frameAddr(pfn), 4096);
}

export function pageWriteData(pfn: u32, offset: u32): void {
  memory.copy(frameAddr(pfn), dataBase + <usize>offset, 4096);
}

// The frame's tag, as two u32 halves at result+88.
export function pageReadTag(pfn: u32): void {
  const t = readTag(pfn);
  store<u32>(resultBase + 88, <u32>t);
  store<u32>(resultBase + 92, <u32>(t >> 32));
}

export function pageWriteTag(pfn: u32, lo: u32, hi: u32): void {
  writeTag(pfn, (<u64>hi << 32) | <u64>lo);
}

// ---- faults, notifiers, exclusive access --------------------------------------------

// handle_mm_fault for one page (GUP, hmm_range_fault's faults): a FAULT_* code;
// the page of a device or migration entry is in the result block.
export function fault(mm: u32, vpn: f64, write: bool): u32 {
  const r = handleMmFault(mm, <u64>vpn, write);
  store<u32>(resultBase + 20, faultPfn);
  return r;
}

export function notified(mm: u32, vpn: f64): void {
  setNotified(mm, <u64>vpn);
}

export function mmSetNotifiers(mm: u32, on: bool): void {
  setMmHasNotifiers(mm, on);
}

// make_device_exclusive's PTE swap: the present PTE at vpn becomes a device-exclusive
// entry; the page is returned locked with a reference. -EBUSY if it is locked,
// -EFAULT if no present anon page is mapped there.
export function makeExclusive(mm: u32, vpn: f64): i32 {
  const ptep = walkPte(mmPgd(mm), <u64>vpn, false);
  if (ptep == 0) return -14;
  const pte = load<u64>(ptep);
  if ((pte & _PAGE_PRESENT) == 0 || pteSpecial(pte)) return -14;
  const pfn = ptePfn(pte);
  if (!pageIsAnon(pfn)) return -95;
  if (testFlag(pfn, PG_locked)) return -16;
  setFlag(pfn, PG_locked);
  getPage(pfn);
  if (pte & _PAGE_DIRTY) setFlag(pfn, PG_dirty);
  store<u64>(ptep, swpEntry(SWP_DEVICE_EXCLUSIVE, pfn, pte & (_PAGE_DIRTY | _PAGE_ACCESSED)));
  return <i32>pfn;
}

// restore_exclusive_pte: a CPU access ends device-exclusive access. false if no such entry.
export function restoreExclusive(mm: u32, vpn: f64): bool {
  const ptep = walkPte(mmPgd(mm), <u64>vpn, false);
  if (ptep == 0) return false;
  const e = load<u64>(ptep);
  if (!isSwapPte(e) || swpType(e) != SWP_DEVICE_EXCLUSIVE) return false;
  const pfn = swpOffset(e);
  const v = findVma(mm, <u64>vpn);
  const write = v != 0 && (vmaFlags(v) & VM_WRITE) != 0 && testFlag(pfn, PG_anon_exclusive);
  store<u64>(ptep, pfnPte(pfn, _PAGE_PRESENT | _PAGE_USER | (e & _PAGE_DIRTY) | (write ? _PAGE_RW : 0)));
  return true;
}

// ---- migrate_vma -----------------------------------------------------------------

// Every migration call names its slot (see assembly/migrate.ts).
// `readOnly`: read-only migration entries (see migrateVmaCollect).
export function migrateVmaSetup(slot: u32, mm: u32, vpn: f64, npages: u32, flags: u32, owner: u32, faultPage: i32, readOnly: bool): u32 {
  selectSlot(slot);
  const r = migrateVmaCollect(mm, <u64>vpn, npages, flags, owner, faultPage < 0 ? NONE : <u32>faultPage, readOnly);
  saveSlot();
  return r;
}

export function migrateDeviceRangeSetup(slot: u32, startPfn: u32, npages: u32): u32 {
  selectSlot(slot);
  const r = migrateDeviceRange(startPfn, npages);
  saveSlot();
  return r;
}

export function migratePfnListSetup(slot: u32, npages: u32, pinpage: bool): u32 {
  selectSlot(slot);
  const r = migratePfnList(npages, pinpage);
  saveSlot();
  return r;
}

// PTEs of the slot's pages were copied or moved, or its mm exits (`dropMm`): its end walks the rmap.
export function migrateForgetOwnPtes(slot: u32, dropMm: bool): void {
  selectSlot(slot);
  forgetOwnPtes(dropMm);
  saveSlot();
}

export function migrateTouchedOthers(slot: u32): bool {
  selectSlot(slot);
  return migTouchedOthers;
}

export function migrateRunPages(slot: u32, npages: u32): void {
  selectSlot(slot);
  migratePages(npages);
  saveSlot();
}

export function migrateRunFinalize(slot: u32, npages: u32): void {
  selectSlot(slot);
  migrateFinalize(npages);
  saveSlot();
}

export function migrateSetLanes(on: bool): void {
  setMigrateLanes(on);
}

export function migrateLaneGroups(): u32 {
  return migLaneGroups;
}

export function migrateRunPagesFinalize(slot: u32, npages: u32): void {
  selectSlot(slot);
  migratePagesFinalize(npages);
  saveSlot();
}

let dstHasHoles: bool = false;

// Checks the driver's dst entries before migrate_vma_pages: each must be a locked,
// unmapped page in use that is not one of the sources. Returns -1, or the first bad
// entry as index << 4 | reason (1 no VALID, 2 no such frame, 3 reserved, 4 free,
// 5 not locked, 6 mapped, 7 a source page). With `drop`, bad entries are zeroed instead.
export function migrateCheckDst(slot: u32, npages: u32, drop: bool): i32 {
  selectSlot(slot);
  const src = srcAddr();
  const dst = dstAddr();
  // The check scratch marks the sources; what check() left there is cleared first.
  for (let i: u32 = 0; i < npages; i++) {
    const d = load<u64>(dst + (<usize>i << 3));
    if ((d & MIGRATE_PFN_VALID) != 0 && (d >> MIGRATE_PFN_SHIFT) < <u64>nframes) store<u32>(scratchBase + (<usize>(<u32>(d >> MIGRATE_PFN_SHIFT)) << 2), 0);
  }
  for (let i: u32 = 0; i < npages; i++) {
    const e = load<u64>(src + (<usize>i << 3));
    if (e & MIGRATE_PFN_VALID) store<u32>(scratchBase + (<usize>(<u32>(e >> MIGRATE_PFN_SHIFT)) << 2), 1);
  }
  let first: i32 = -1;
  dstHasHoles = false;
  for (let i: u32 = 0; i < npages; i++) {
    const e = load<u64>(src + (<usize>i << 3));
    const d = load<u64>(dst + (<usize>i << 3));
    if ((e & MIGRATE_PFN_MIGRATE) == 0 || d == 0) continue;
    let reason: i32 = 0;
    const pfn = d >> MIGRATE_PFN_SHIFT;
    if ((d & MIGRATE_PFN_VALID) == 0) reason = 1;
    else if (pfn >= <u64>nframes) reason = 2;
    else if (testFlag(<u32>pfn, PG_reserved)) reason = 3;
    else if (refOf(<u32>pfn) < 1) reason = 4;
    else if (!testFlag(<u32>pfn, PG_locked)) reason = 5;
    else if (mapcountOf(<u32>pfn) != 0) reason = 6;
    else if (load<u32>(scratchBase + (<usize>(<u32>pfn) << 2)) != 0) reason = 7;
    if (reason == 0) {
      if ((e & MIGRATE_PFN_VALID) == 0) dstHasHoles = true;
    } else if (drop) {
      store<u64>(dst + (<usize>i << 3), 0);
    } else if (first < 0) {
      first = (<i32>i << 4) | reason;
    }
  }
  for (let i: u32 = 0; i < npages; i++) {
    const e = load<u64>(src + (<usize>i << 3));
    if (e & MIGRATE_PFN_VALID) store<u32>(scratchBase + (<usize>(<u32>(e >> MIGRATE_PFN_SHIFT)) << 2), 0);
  }
  return first;
}

// Whether the last checked (or allocated) dst fills a hole (migrate_vma_insert_page will run).
export function migrateDstFillsHoles(): bool {
  return dstHasHoles;
}

// The restore path for a driver that cannot go on: nothing migrates.
export function migrateClearAll(slot: u32, npages: u32): void {
  selectSlot(slot);
  const src = srcAddr();
  for (let i: u32 = 0; i < npages; i++) {
    const a = src + (<usize>i << 3);
    store<u64>(a, load<u64>(a) & ~MIGRATE_PFN_MIGRATE);
  }
}

// A driver's alloc-and-copy in one call: for every src entry marked MIGRATE, a page
// from device zone `z` (or, with z = -1, a locked system page from `node`), filled
// from the source (or zeroed), with dst = migrate_pfn | the source's WRITE bit.
// System pages are movable (GFP_HIGHUSER_MOVABLE) unless `movable` is false (FOLL_LONGTERM's targets).
// `failFirst` makes the first allocation fail (FAIL_ALLOC); without `fillHoles`, entries
// with no source page (holes, the zero page) are left alone. Returns pages allocated.
export function migrateAllocCopy(slot: u32, npages: u32, z: i32, node: u32, movable: bool, failFirst: bool, fillHoles: bool): u32 {
  selectSlot(slot);
  const src = srcAddr();
  const dst = dstAddr();
  let want: u32 = 0;
  let fail = failFirst;
  // Entries that take a page: MIGRATE, no page in dst yet, and a source page (or fillHoles).
  const need = fillHoles ? MIGRATE_PFN_MIGRATE : MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID;
  for (let i: u32 = 0; i < npages; i++) {
    // Four at a time while all four take one.
    if (!fail && i + 4 <= npages && takesPage4(src, dst, i, need)) {
      v128.store(allocIdx + (<usize>want << 2), i32x4(i, i + 1, i + 2, i + 3));
      want += 4;
      i += 3;
      continue;
    }
    const e = load<u64>(src + (<usize>i << 3));
    if ((e & MIGRATE_PFN_MIGRATE) == 0 || load<u64>(dst + (<usize>i << 3)) != 0) continue;
    if (!fillHoles && (e & MIGRATE_PFN_VALID) == 0) continue;
    if (fail) {
      fail = false;
      continue;
    }
    store<u32>(allocIdx + (<usize>want << 2), i);
    want++;
  }
  // The first `n` entries get pages, as allocating entry by entry until the memory runs out would.
  // Device pages come locked (zone_device_page_init); system pages are locked in copyRuns.
  const n = allocInjectArmed ? allocEach(z, node, movable, want)
    : z >= 0 ? allocDevicePagesBulk(<u32>z, want, allocPfn) : allocPagesBulk(node, movable, want, allocPfn);
  ascendRuns(allocPfn, n);
  copyRuns(src, dst, n, z < 0);
  return n;
}

// Whether src entries i..i+3 all have the `need` bits and their dst entries are empty.
@inline function takesPage4(src: usize, dst: usize, i: u32, need: u64): bool {
  const at = <usize>i << 3;
  const bits = i64x2.splat(need);
  const s0 = v128.and(v128.load(src + at), bits);
  const s1 = v128.and(v128.load(src + at + 16), bits);
  if (!i64x2.all_true(i64x2.eq(s0, bits)) || !i64x2.all_true(i64x2.eq(s1, bits))) return false;
  return !v128.any_true(v128.or(v128.load(dst + at), v128.load(dst + at + 16)));
}

// migrateAllocCopy's allocation while failures are injected: entry by entry, as a driver's
// loop; an injected failure leaves its entry without a page (not migrated) and the next
// entries go on, a real shortage ends the allocation. Keeps allocIdx to the entries served.
function allocEach(z: i32, node: u32, movable: bool, want: u32): u32 {
  let n: u32 = 0;
  for (let k: u32 = 0; k < want; k++) {
    const i = load<u32>(allocIdx + (<usize>k << 2));
    let pfn: u32;
    if (z >= 0) {
      if (allocInjectFail(<u32>z)) continue;
      pfn = allocDevicePage(<u32>z);
    } else {
      if (allocInjected(node, movable)) continue;
      pfn = allocPages(node, 0, movable);
    }
    if (pfn == NONE) break;
    store<u32>(allocIdx + (<usize>n << 2), i);
    store<u32>(allocPfn + (<usize>n << 2), pfn);
    n++;
  }
  return n;
}

// The entries the current migrateAllocCopy filled (a driver may have set others
// itself), in order, and the pages they got.
const allocIdx: usize = memory.data(65536 * 4);
const allocPfn: usize = memory.data(65536 * 4);


// Fills dst (locking the new pages if `lock`) and copies: runs of entries whose source and
// destination frames are both consecutive go in one memory.copy; holes are zeroed.
// (runCopyAdd's run, kept in locals: this loop is the hot one.)
function copyRuns(src: usize, dst: usize, n: u32, lock: bool): void {
  dstHasHoles = false;
  let runS: u32 = 0;
  let runD: u32 = 0;
  let runN: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const i = load<u32>(allocIdx + (<usize>k << 2));
    const dp = load<u32>(allocPfn + (<usize>k << 2));
    if (lock) setFlag(dp, PG_locked);
    const e = load<u64>(src + (<usize>i << 3));
    store<u64>(dst + (<usize>i << 3), migratePfn(dp) | (e & MIGRATE_PFN_WRITE));
    if ((e & MIGRATE_PFN_VALID) == 0) {
      dstHasHoles = true;
      clearFrame(dp);
      continue;
    }
    const sp = <u32>(e >> MIGRATE_PFN_SHIFT);
    if (runN > 0 && sp == runS + runN && dp == runD + runN) {
      runN++;
      continue;
    }
    if (runN > 0) copyFrames(runD, runS, runN);
    runS = sp;
    runD = dp;
    runN = 1;
  }
  if (runN > 0) copyFrames(runD, runS, runN);
}

// memory_failure's generic path for a page in use; returns mappings replaced, or -EBUSY
// for a free page (taking one off the free lists is not modelled).
export function memoryFailurePoison(pfn: u32): i32 {
  if (refOf(pfn) <= 0) return -16;
  return <i32>poisonPage(pfn);
}

export function pageSetHwpoison(pfn: u32): void {
  setFlag(pfn, PG_hwpoison);
}

// ---- hmm_range_fault -------------------------------------------------------------

export function hmmRangeWalk(mm: u32, vpn: f64, npages: u32, from: u32, defaultHi: u32, maskHi: u32, owner: u32): i32 {
  return hmmWalk(mm, <u64>vpn, npages, from, defaultHi, maskHi, owner);
}

export function hmmLastFaultWrite(): bool {
  return hmmFaultWrite;
}

// ---- page-state census (the stress runner's page map) --------------------------

export { pageCensus } from "./census";

// ---- get_user_pages / pin_user_pages ----------------------------------------------

export function gupPagesPtr(): usize {
  return gupPages;
}

export function gupInPtr(): usize {
  return gupIn;
}

// Walks entries [from, n) of the range at vpn; returns n, or where it stopped (gupStopReason).
export function gupRange(mm: u32, vpn: f64, n: u32, from: u32, flags: u32): u32 {
  return gupWalk(mm, <u64>vpn, n, from, flags);
}

export function gupStopReason(): u32 {
  return gupStop;
}

export function gupStopIsWrite(): bool {
  return gupStopWrite;
}

// A GUP fault (faultin_page): unshare and FOLL_FORCE as handleGupFault takes them.
export function gupFault(mm: u32, vpn: f64, write: bool, unshare: bool, force: bool): u32 {
  const r = handleGupFault(mm, <u64>vpn, write, unshare, force);
  store<u32>(resultBase + 20, faultPfn);
  return r;
}

// Releases n pins (or FOLL_GET references) listed in GUP_PAGES (inPlace) or GUP_IN:
// n, or the index of the first entry that holds none (nothing released then).
export function gupReleaseList(inPlace: bool, n: u32, pin: bool, dirty: bool): u32 {
  return gupRelease(inPlace ? gupPages : gupIn, n, pin, dirty);
}

// The two steps of a release over several batches (see assembly/gup.ts), on GUP_IN.
export function gupTakeList(n: u32, pin: bool): u32 {
  return gupTake(gupIn, n, pin);
}

export function gupUntakeList(n: u32, pin: bool): void {
  gupUntake(gupIn, n, pin);
}

export function gupDropList(n: u32, pin: bool, dirty: bool): void {
  gupDrop(gupIn, n, pin, dirty);
}

export function gupBadEntryReason(): u32 {
  return gupBadReason;
}

export function gupUnpinnable(n: u32): u32 {
  return gupCollectUnpinnable(n);
}

export function pageNodeId(pfn: u32): u32 {
  return pageNode(pfn);
}

export function pageGupRefCount(pfn: u32): u32 {
  return gupRefsOf(pfn);
}

export function pagePincount(pfn: u32): i32 {
  return pincountOf(pfn);
}

// ---- the pin control subsystem (seed 003) -------------------------------------------

export function pinpageHold(n: u32): i32 {
  return pinpageHoldList(gupIn, n);
}

export function pinpageRelease(n: u32): i32 {
  return pinpageReleaseList(gupIn, n);
}

export function pinpageBadWhy(): u32 {
  return pinpageBadReason;
}

export function pagePinpageHolds(pfn: u32): u32 {
  return pinpageHoldsOf(pfn);
}

// ---- pageblocks, compaction, CMA, memory offline -------------------------------------

export { zoneExtBase } from "./pageblock";
export {
  compactBegin, compactIsolate, compactBatch, compactFill, compactFinish, compactEnd, compactStatsBase, compactPinnedBase, compactOrderFree,
  compactCountDirect,
} from "./compaction";
export { problemsBase, pageExtraRefs, isolateRange, undoIsolateRange, allocIsolatedRange, offlineIsolatedRange, onlineRange, rangeOfflineState, releaseRange } from "./isolation";

// Classifies [start, end) (at most PROBLEMS_MAX pages) into the problem list; SCAN_COLLECT
// collects the movable pages in migration slot `slot` (see rangeScan). Returns the pages
// collected; rangeProblems/rangeMovable tell the rest.
export function rangeCollect(slot: u32, start: u32, end: u32, mode: u32, offline: bool): u32 {
  return rangeScan(slot, start, end, mode, offline);
}

export function rangeProblems(): u32 {
  return nrProblems;
}

export function rangeMovable(): u32 {
  return nrMovable;
}

// The first pfn of the range that is not free and isolated, or -1.
export function rangeFirstNotIsolated(start: u32, end: u32): i32 {
  const pfn = firstNotIsolated(start, end);
  return pfn == NONE ? -1 : <i32>pfn;
}

export function cmaCount(success: bool): void {
  statAddCore(success ? CMA_ALLOC_SUCCESS : CMA_ALLOC_FAIL, 1);
}
// ---- NUMA: memory policy, mlock, move_pages ---------------------------------------

// set_mempolicy's record for the fault path.
export function mmSetPolicy(mm: u32, mode: u32, nodes: u32): void {
  setMmPolicy(mm, mode, nodes);
}

// mlock_vma_pages_range: the pages of [vpn, vpn+n) mlocked (lock) or munlocked, after the
// VMAs there gained or lost VM_LOCKED (or before a VM_LOCKED range is unmapped).
export function mlockRange(mm: u32, vpn: f64, n: f64, lock: bool): void {
  rangeOp(mm, <u64>vpn, <u64>vpn + <u64>n, lock ? RANGE_MLOCK : RANGE_MUNLOCK, 0, 0);
}

export {
  doPagesStat, addPagesForMigration, storeMoveStatus, queuePagesRange, putbackMovablePages, migrateQueuedSetup, migrateAllocCopyPolicy, migrateQueuedOutcome,
  numaVpnsPtr, numaOutPtr, numaResultPtr, numaStatusPtr,
} from "./numa";

// Files: an address_space per file (its id from the same pool as shmem objects).
export function fileOpen(id: u32, sizePages: u32): void {
  mappingOpen(id, sizePages, MAPPING_FILE);
}
export function fileSetSize(id: u32, sizePages: u32): void {
  mappingSetSize(id, sizePages);
}
// The file's last reference went: its cache must be empty (truncated) by now.
export function fileClose(id: u32): void {
  assert(mappingNrpages(id) == 0, "closing a file with cached pages");
  mappingClose(id);
}
export {
  filemapGrabFolio, filemapGrabbedNew, filemapLookup, filemapReadDone, folioMarkDirty, filemapWritebackBegin, filemapWritebackEnd,
  wbBase, wbNextIndex, truncateInodePages, truncateInodePagesBusy, shrinkFileLru, reclaimDirtySeen, lruListCount,
  filemapDevicePages, bounceAlloc, bounceFree, wbBounce, wbBounceDone, wbIoBase, filemapInvalidateFolio,
} from "./filemap";
// ---- pmem: storage mode, DAX, RAM mode (dax_kmem) ---------------------------------------

import { pmemIoBuf } from "./pmem";
export { pfnHasStructPage, pmemIoBuf, pmemIo, pfnRangeSet, pmemOnline, pmemRemoveZone, pmemStorageInit } from "./pmem";
import { insertPfnRange } from "./pmem";

// vmf_insert_pfn over [vpn, vpn + n), pfns from the pmem I/O buffer (u32 each).
export function insertPfns(mm: u32, vpn: f64, n: u32, write: bool): i32 {
  return insertPfnRange(mm, <u64>vpn, n, pmemIoBuf(), write);
}
