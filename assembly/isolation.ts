// Page isolation (mm/page_isolation.c) and what alloc_contig_range (CMA) and memory
// offline (mm/memory_hotplug.c) do with an isolated range: its free pages move out of every
// allocation's reach, its in-use pages are classified and collected for migration, and once
// all of them are free the range's pages are taken (allocated, or offline).
// Ranges are pageblock-aligned and lie in one zone; the caller (TS) checks that first.
import { MAX_ORDER, NONE } from "./layout";
import { flagsOf, refOf, setRef, setOrder, orderOf, mapcountOf, mappingOf, zoneOf, pageIsAnon, testFlag, PG_private, PG_reserved, PG_locked, PG_hwpoison, PGTY_buddy, pinpageHoldsOf } from "./memmap";
import {
  zoneStart, zoneEnd, drainZone, pageIsBuddy, addToFreeList, delFromFreeList, accountFree, freeToBuddy, zoneManaged, setZoneManaged, putPage,
} from "./alloc";
import {
  PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES, PB_ISOLATE, PB_OFFLINE, FL_NORMAL, FL_ISOLATE, MIGRATE_MOVABLE, MIGRATE_CMA, blockClass, pageblockFlags, setPageblockFlags,
  pageblockSavedType, zoneSpecialBlocks, setZoneSpecialBlocks, zoneOfflinePages, setZoneOfflinePages,
} from "./pageblock";
import { selectSlot, saveSlot, srcAddr, migratePfn, migratePfnList } from "./migrate";

// Isolations started and not yet undone or turned offline (machine.check() allows isolated
// pageblocks at rest only while offline).
export let isolationsInFlight: u32 = 0;

// Why a page of a range cannot simply migrate (its movable pages are CANNOT_NONE).
export const CANNOT_NONE: u32 = 0;
export const CANNOT_RESERVED: u32 = 1;
export const CANNOT_UNMOVABLE: u32 = 2;
export const CANNOT_PINNED: u32 = 3;
export const CANNOT_HWPOISON: u32 = 4;
export const CANNOT_LOCKED: u32 = 5;
export const CANNOT_CMA: u32 = 6;

// References beyond the mappings and the page cache's (folio_expected_ref_count): pins and
// other get_page holders. A page with any cannot move; what happens to it is decided in TS
// (src/isolation.ts resolveExtraRefs).
export function pageExtraRefs(pfn: u32): i32 {
  // Pin control subsystems' holds move with the page (their holders are asked): not extra.
  let expected = mapcountOf(pfn) + <i32>pinpageHoldsOf(pfn);
  if (!pageIsAnon(pfn)) expected += 1 + (testFlag(pfn, PG_private) ? 1 : 0);
  return refOf(pfn) - expected;
}

// The reason an in-use system page cannot migrate, or CANNOT_NONE.
export function pageCannotMigrate(pfn: u32): u32 {
  const f = flagsOf(pfn);
  if (f & (1 << PG_reserved)) return CANNOT_RESERVED;
  if (f & (1 << PG_hwpoison)) return CANNOT_HWPOISON;
  if (mappingOf(pfn) == 0) return CANNOT_UNMOVABLE;
  if (f & (1 << PG_locked)) return CANNOT_LOCKED;
  if (pageExtraRefs(pfn) > 0) return CANNOT_PINNED;
  return CANNOT_NONE;
}

// A free page in use by no one: on a free list, or on no list at all (pcp pages and
// offline frames have refcount 0 and no PG_reserved).
@inline function pageFreeOrUnused(pfn: u32): bool {
  const f = flagsOf(pfn);
  return (f & (1 << PGTY_buddy)) != 0 || (refOf(pfn) <= 0 && (f & (1 << PG_reserved)) == 0);
}

// ---- the problem list: pfn and CANNOT_*, per page ---------------------------------------

export const PROBLEMS_MAX: u32 = 4096;
const PROBLEM: usize = 8;
const problems: usize = memory.data(<i32>(PROBLEMS_MAX * <u32>PROBLEM), 16);
export let nrProblems: u32 = 0;
// Movable in-use pages the last scan saw (collected or not).
export let nrMovable: u32 = 0;

export function problemsBase(): usize {
  return problems;
}

function addProblem(pfn: u32, why: u32): void {
  if (nrProblems >= PROBLEMS_MAX) return;
  const at = problems + <usize>nrProblems * PROBLEM;
  store<u32>(at, pfn);
  store<u32>(at + 4, why);
  nrProblems++;
}

export const SCAN_CLASSIFY: u32 = 0;
export const SCAN_COLLECT: u32 = 1;
export const SCAN_LIST_ALL: u32 = 2;

// has_unmovable_pages + scan_movable_pages over [start, end) (at most PROBLEMS_MAX pages):
// every in-use page that cannot migrate goes to the problem list (SCAN_LIST_ALL: the
// movable ones too, as CANNOT_NONE). SCAN_COLLECT collects the movable ones in migration
// slot `slot` (migratePfnList) and returns how many it collected. `offline` reports CMA
// pageblocks too (memory offline refuses them).
export function rangeScan(slot: u32, start: u32, end: u32, mode: u32, offline: bool): u32 {
  const collect = mode == SCAN_COLLECT;
  nrProblems = 0;
  nrMovable = 0;
  if (collect) selectSlot(slot);
  const src = srcAddr();
  let pfn = start;
  while (pfn < end) {
    if (offline && (pfn & (PAGEBLOCK_NR_PAGES - 1)) == 0 && pageblockSavedType(pfn) == MIGRATE_CMA) {
      addProblem(pfn, CANNOT_CMA);
      pfn += PAGEBLOCK_NR_PAGES;
      continue;
    }
    if (pageIsBuddy(pfn)) {
      pfn += 1 << orderOf(pfn);
      continue;
    }
    if (pageFreeOrUnused(pfn)) {
      pfn++;
      continue;
    }
    const why = pageCannotMigrate(pfn);
    if (why != CANNOT_NONE || mode == SCAN_LIST_ALL) {
      addProblem(pfn, why);
    }
    if (why == CANNOT_NONE) {
      if (collect) store<u64>(src + (<usize>nrMovable << 3), migratePfn(pfn));
      nrMovable++;
    }
    pfn++;
  }
  if (!collect) return 0;
  const cpages = nrMovable > 0 ? migratePfnList(nrMovable, true) : 0;
  saveSlot();
  return cpages;
}

// ---- isolation ----------------------------------------------------------------------

// The free block at `head` (order o, taken off its list) is halved toward `x` until the piece
// holding `x` starts there with an order of at most `maxOrder`; every other half goes back
// on the lists of class `cls`, as expand() gives back the halves it does not need.
function splitToward(z: u32, head: u32, o: u32, x: u32, maxOrder: u32, cls: u32): void {
  let lo = head;
  let cur = o;
  while (lo < x || cur > maxOrder) {
    cur--;
    const mid = lo + (<u32>1 << cur);
    if (x >= mid) {
      addToFreeList(z, lo, cur, cls);
      lo = mid;
    } else {
      addToFreeList(z, mid, cur, cls);
    }
  }
  addToFreeList(z, lo, cur, cls);
}

// A free block larger than a pageblock that holds `pb` is split so that `pb` is a block
// of its own (isolate_single_pageblock); every piece stays on its class's lists.
function splitAround(z: u32, pb: u32): void {
  for (let o = MAX_ORDER; o > PAGEBLOCK_ORDER; o--) {
    const head = pb & ~((<u32>1 << o) - 1);
    if (head < zoneStart(z) || !pageIsBuddy(head) || orderOf(head) != o) continue;
    const cls = blockClass(head);
    delFromFreeList(z, head, o, cls);
    splitToward(z, head, o, pb, PAGEBLOCK_ORDER, cls);
    return;
  }
}

// The free (buddy) blocks that start in pageblock `pb`, in order, each handed to visit.
function forEachBuddyBlock(pb: u32, visit: (pfn: u32, order: u32) => void): void {
  let pfn = pb;
  while (pfn < pb + PAGEBLOCK_NR_PAGES) {
    if (!pageIsBuddy(pfn)) {
      pfn++;
      continue;
    }
    const o = orderOf(pfn);
    visit(pfn, o);
    pfn += 1 << o;
  }
}

// The zone and free-list class of the pageblock a visitor works on.
let walkZone: u32 = 0;
let walkCls: u32 = 0;

function moveToIsolate(pfn: u32, o: u32): void {
  delFromFreeList(walkZone, pfn, o, walkCls);
  accountFree(walkZone, walkCls, -(<i32>1 << o));
  addToFreeList(walkZone, pfn, o, FL_ISOLATE);
  accountFree(walkZone, FL_ISOLATE, <i32>1 << o);
}

// start_isolate_page_range: every pageblock of [start, end) becomes MIGRATE_ISOLATE and
// its free pages move to the isolate lists, off the free counts. The pcp list is drained
// first, so that no page of the range is left where an allocation could find it.
export function isolateRange(start: u32, end: u32): void {
  const z = zoneOf(start);
  drainZone(z);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) {
    splitAround(z, pb);
    walkZone = z;
    walkCls = blockClass(pb);
    forEachBuddyBlock(pb, moveToIsolate);
    setPageblockFlags(pb, pageblockFlags(pb) | PB_ISOLATE);
    setZoneSpecialBlocks(z, zoneSpecialBlocks(z) + 1);
  }
  isolationsInFlight++;
}

const undoBlocks: usize = memory.data(<i32>(PAGEBLOCK_NR_PAGES * 4), 16);
let undoCount: u32 = 0;

function takeFromIsolate(pfn: u32, o: u32): void {
  delFromFreeList(walkZone, pfn, o, FL_ISOLATE);
  accountFree(walkZone, FL_ISOLATE, -(<i32>1 << o));
  store<u32>(undoBlocks + (<usize>undoCount << 2), pfn);
  undoCount++;
}

// undo_isolate_page_range: the pageblocks get their own type back, and their free pages
// return to its lists, merging with their buddies again.
export function undoIsolateRange(start: u32, end: u32): void {
  const z = zoneOf(start);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) {
    // Off the isolate lists first, all of them: a block freed back must not meet a buddy still there.
    walkZone = z;
    undoCount = 0;
    forEachBuddyBlock(pb, takeFromIsolate);
    const n = undoCount;
    setPageblockFlags(pb, pageblockFlags(pb) & ~PB_ISOLATE);
    setZoneSpecialBlocks(z, zoneSpecialBlocks(z) - 1);
    const cls = blockClass(pb);
    for (let i: u32 = 0; i < n; i++) {
      const b = load<u32>(undoBlocks + (<usize>i << 2));
      const o = orderOf(b);
      accountFree(z, cls, <i32>1 << o);
      freeToBuddy(z, b, o);
    }
  }
  isolationsInFlight--;
}

// test_pages_isolated: the first pfn of [start, end) that is not a free page on the
// isolate lists, or NONE.
export function firstNotIsolated(start: u32, end: u32): u32 {
  let pfn = start;
  while (pfn < end) {
    if (!pageIsBuddy(pfn) || blockClass(pfn) != FL_ISOLATE || pfn + (1 << orderOf(pfn)) > end) return pfn;
    pfn += 1 << orderOf(pfn);
  }
  return NONE;
}

// Takes every page of the isolated, all-free range off the isolate lists.
function takeIsolated(start: u32, end: u32, allocate: bool): void {
  const z = zoneOf(start);
  let pfn = start;
  while (pfn < end) {
    const o = orderOf(pfn);
    const n: u32 = 1 << o;
    delFromFreeList(z, pfn, o, FL_ISOLATE);
    accountFree(z, FL_ISOLATE, -(<i32>n));
    for (let p = pfn; p < pfn + n; p++) {
      setOrder(p, 0);
      if (allocate) setRef(p, 1);
    }
    pfn += n;
  }
}

// A free block of the isolate lists that holds `x` but does not start there is split so that
// a block starts at `x` (the pieces stay on the isolate lists).
function splitIsolatedAt(z: u32, x: u32): void {
  for (let o: u32 = 1; o <= MAX_ORDER; o++) {
    const head = x & ~((<u32>1 << o) - 1);
    if (head == x || head < zoneStart(z) || !pageIsBuddy(head) || orderOf(head) != o) continue;
    delFromFreeList(z, head, o, FL_ISOLATE);
    splitToward(z, head, o, x, MAX_ORDER, FL_ISOLATE);
    return;
  }
}

// alloc_contig_range's end for [start, end) inside the isolated pageblocks [outerStart,
// outerEnd): once every page of it is free, they become allocated (one reference each,
// isolate_freepages_range) and the blocks get their type back (undo_isolate_page_range).
// Returns -1, or (changing nothing but splitting free blocks) the first pfn not free.
export function allocIsolatedRange(start: u32, end: u32, outerStart: u32, outerEnd: u32): i32 {
  const z = zoneOf(start);
  if (start > outerStart) splitIsolatedAt(z, start);
  if (end < outerEnd) splitIsolatedAt(z, end);
  const bad = firstNotIsolated(start, end);
  if (bad != NONE) return <i32>bad;
  takeIsolated(start, end, true);
  undoIsolateRange(outerStart, outerEnd);
  return -1;
}

// __offline_isolated_pages: the pages leave the allocator for good and the zone shrinks;
// the pageblocks stay isolated, now offline.
export function offlineIsolatedRange(start: u32, end: u32): void {
  const z = zoneOf(start);
  takeIsolated(start, end, false);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) setPageblockFlags(pb, pageblockFlags(pb) | PB_OFFLINE);
  setZoneOfflinePages(z, zoneOfflinePages(z) + (end - start));
  setZoneManaged(z, zoneManaged(z) - (end - start));
  isolationsInFlight--;
}

// online_pages: the offline pageblocks become movable memory of the zone again, their pages
// freed in the largest aligned blocks (generic_online_page).
export function onlineRange(start: u32, end: u32): void {
  const z = zoneOf(start);
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) {
    setPageblockFlags(pb, MIGRATE_MOVABLE);
    setZoneSpecialBlocks(z, zoneSpecialBlocks(z) - 1);
  }
  setZoneOfflinePages(z, zoneOfflinePages(z) - (end - start));
  setZoneManaged(z, zoneManaged(z) + (end - start));
  let pfn = start;
  while (pfn < end) {
    let o = MAX_ORDER;
    while (o > 0 && ((pfn & ((<u32>1 << o) - 1)) != 0 || pfn + (<u32>1 << o) > end)) o--;
    accountFree(z, FL_NORMAL, <i32>1 << o);
    freeToBuddy(z, pfn, o);
    pfn += 1 << o;
  }
}

// Whether any pageblock of [start, end) is offline, and whether all are.
export function rangeOfflineState(start: u32, end: u32): u32 {
  let offline: u32 = 0;
  for (let pb = start; pb < end; pb += PAGEBLOCK_NR_PAGES) if (pageblockFlags(pb) & PB_OFFLINE) offline++;
  return offline == 0 ? 0 : offline == (end - start) >> PAGEBLOCK_ORDER ? 2 : 1;
}

// cma_release's free_contig_range: one reference of each page goes.
export function releaseRange(start: u32, n: u32): void {
  for (let pfn = start; pfn < start + n; pfn++) putPage(pfn);
}
