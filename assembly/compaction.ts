// Memory compaction (mm/compaction.c): a migrate scanner walks the zone up from its start,
// pageblock by pageblock, collecting movable pages; a free scanner walks down from its end
// isolating free pages as targets; the pages move down-to-up through the migration engine
// (migratePfnList) until the scanners meet or, for an order, a free block that large exists.
// TS drives it step by step (src/compaction.ts), so notifiers can hear of every unmapping.
import { MAX_ORDER, NONE } from "./layout";
import { flagsOf, setFlag, refOf, setRef, setOrder, orderOf, PG_locked, PGTY_buddy } from "./memmap";
import {
  zoneStart, zoneEnd, zoneFree, zoneWmarkMin, zoneWmarkLow, drainZone, pageIsBuddy, delFromFreeList, accountFree, freePages, freeListHead,
} from "./alloc";
import { PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES, FL_NORMAL, FL_CMA, FL_ISOLATE, MIGRATE_MOVABLE, MIGRATE_CMA, blockClass, pageblockMigratetype } from "./pageblock";
import { pageCannotMigrate, CANNOT_NONE, CANNOT_RESERVED, CANNOT_PINNED, CANNOT_LOCKED } from "./isolation";
import { selectSlot, saveSlot, srcAddr, dstAddr, migratePfn, migratePfnList, migratePagesFinalize, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_PFN_SHIFT } from "./migrate";
import { runCopyAdd, runCopyFlush } from "./content";
import { statAdd, statGet, COMPACT_MIGRATE_SCANNED, COMPACT_FREE_SCANNED, COMPACT_ISOLATED, COMPACT_STALL, COMPACT_SUCCESS, COMPACT_FAIL, PGMIGRATE_SUCCESS } from "./stat";

// enum compact_result, the values we return.
export const COMPACT_CONTINUE: u32 = 0;
export const COMPACT_COMPLETE: u32 = 1;
export const COMPACT_SUCCESS_RESULT: u32 = 2;
export const COMPACT_SKIPPED: u32 = 3;

// The compact_control of the run in progress, and its counts (read by TS).
const CS_MIGRATE_SCANNED = 0;
const CS_FREE_SCANNED = 1;
const CS_ISOLATED = 2;
const CS_FREE_ISOLATED = 3;
const CS_MIGRATED = 4;
const CS_FAILED = 5;
const CS_PINNED = 6;
const CS_UNMOVABLE = 7;
const CS_RESERVED = 8;
const CS_NR_PINNED_LIST = 9;
const CS_COUNT = 10;
const ccStats: usize = memory.data(CS_COUNT * 4, 16);

let ccZone: u32 = 0;
let ccOrder: i32 = -1;
// Next pfn the migrate scanner looks at (the end of the block it looked at last).
let ccMigratePfn: u32 = 0;
// Start of the next pageblock the free scanner looks at; ccFreeDone once it passed the zone start.
let ccFreePfn: u32 = 0;
let ccFreeDone: bool = false;
// Entries of the current batch in the migration slot's src array.
let ccBatch: u32 = 0;

// Isolated free pages waiting to be targets, first in first out (cc->freepages).
const FREE_MAX: u32 = 4096;
const ccFree: usize = memory.data(<i32>(FREE_MAX * 4), 16);
let ccHead: u32 = 0;
let ccTail: u32 = 0;

// Pages of the last batch's block skipped for extra references, for TS to report.
const ccPinned: usize = memory.data(<i32>(PAGEBLOCK_NR_PAGES * 4), 16);

export function compactStatsBase(): usize {
  return ccStats;
}
export function compactPinnedBase(): usize {
  return ccPinned;
}

@inline function bump(i: i32, n: u32): void {
  store<u32>(ccStats + (<usize>i << 2), load<u32>(ccStats + (<usize>i << 2)) + n);
}

// A free block of at least `order` that an allocation of it could take (normal or CMA lists).
function freeBlockOfOrder(z: u32, order: u32): bool {
  for (let o = order; o <= MAX_ORDER; o++) {
    if (freeListHead(z, FL_NORMAL, o) != NONE || freeListHead(z, FL_CMA, o) != NONE) return true;
  }
  return false;
}

// compact_zone's set-up: compaction_suit_allocation_order for an order (order -1 is
// /proc/sys/vm/compact_memory: the whole zone, unconditionally).
export function compactBegin(z: u32, order: i32): u32 {
  memory.fill(ccStats, 0, CS_COUNT * 4);
  ccZone = z;
  ccOrder = order;
  ccBatch = 0;
  ccHead = 0;
  ccTail = 0;
  drainZone(z);
  if (order >= 0) {
    if (freeBlockOfOrder(z, <u32>order)) return COMPACT_SUCCESS_RESULT;
    // __compaction_suitable: room for the pages in flight (compact_gap) above the watermark.
    const wmark = (order > 3 ? zoneWmarkLow(z) : zoneWmarkMin(z)) + (<u32>2 << <u32>order);
    if (zoneFree(z) < wmark) return COMPACT_SKIPPED;
  }
  ccMigratePfn = zoneStart(z);
  ccFreePfn = (zoneEnd(z) - 1) & ~(PAGEBLOCK_NR_PAGES - 1);
  ccFreeDone = false;
  return COMPACT_CONTINUE;
}

// The free scanner takes only blocks above the migrate scanner's next one (kernel: below
// pageblock_end_pfn(migrate_pfn) it stops); they have met once it would take that one.
@inline function scannersMet(): bool {
  return ccFreeDone || ccFreePfn <= ccMigratePfn;
}

// isolate_migratepages: the migrate scanner's next pageblock. Movable pages, as many as
// the free scanner finds targets for, go to the src array of migration slot `slot` and are
// collected (locked, unmapped); returns how many were.
export function compactIsolate(slot: u32): u32 {
  ccBatch = 0;
  store<u32>(ccStats + (CS_NR_PINNED_LIST << 2), 0);
  const z = ccZone;
  const end = zoneEnd(z);
  if (ccMigratePfn >= end || scannersMet()) return 0;
  const blockEnd = min((ccMigratePfn & ~(PAGEBLOCK_NR_PAGES - 1)) + PAGEBLOCK_NR_PAGES, end);
  let pfn = ccMigratePfn;
  ccMigratePfn = blockEnd;
  // Isolated (offline, or taken by another operation) blocks are no one's to compact.
  if (blockClass(pfn) == FL_ISOLATE) return 0;
  selectSlot(slot);
  const src = srcAddr();
  let n: u32 = 0;
  let pinned: u32 = 0;
  bump(CS_MIGRATE_SCANNED, blockEnd - pfn);
  statAdd(COMPACT_MIGRATE_SCANNED, <i64>(blockEnd - pfn));
  while (pfn < blockEnd) {
    const f = flagsOf(pfn);
    if (f & (1 << PGTY_buddy)) {
      pfn += 1 << orderOf(pfn);
      continue;
    }
    if (refOf(pfn) <= 0) {
      pfn++;
      continue;
    }
    const why = pageCannotMigrate(pfn);
    if (why == CANNOT_NONE) {
      store<u64>(src + (<usize>n << 3), migratePfn(pfn));
      n++;
    } else if (why == CANNOT_PINNED) {
      store<u32>(ccPinned + (<usize>pinned << 2), pfn);
      pinned++;
    } else if (why == CANNOT_RESERVED) {
      bump(CS_RESERVED, 1);
    } else if (why != CANNOT_LOCKED) {
      bump(CS_UNMOVABLE, 1);
    }
    pfn++;
  }
  bump(CS_PINNED, pinned);
  store<u32>(ccStats + (CS_NR_PINNED_LIST << 2), pinned);
  // Targets first: pages no target waits for are not collected (unmapped) in vain.
  isolateFreePages(n);
  if (n > ccTail - ccHead) n = ccTail - ccHead;
  ccBatch = n;
  if (n == 0) {
    saveSlot();
    return 0;
  }
  const cpages = migratePfnList(n, true);
  saveSlot();
  bump(CS_ISOLATED, cpages);
  statAdd(COMPACT_ISOLATED, <i64>cpages);
  return cpages;
}

// Entries of the current batch (src entries written by compactIsolate).
export function compactBatch(): u32 {
  return ccBatch;
}

// suitable_migration_target: a movable or CMA block, or one free as a whole.
function suitableTarget(pb: u32): bool {
  if (blockClass(pb) == FL_ISOLATE) return false;
  if (pageIsBuddy(pb) && orderOf(pb) >= PAGEBLOCK_ORDER) return true;
  const mt = pageblockMigratetype(pb);
  return mt == MIGRATE_MOVABLE || mt == MIGRATE_CMA;
}

// isolate_freepages: the free scanner takes free blocks off their lists, pageblock by
// pageblock from the top, until `need` targets wait or it meets the migrate scanner. The
// pages become order-0 pages with one reference, as split_page leaves them.
function isolateFreePages(need: u32): void {
  const z = ccZone;
  const zs = zoneStart(z);
  const ze = zoneEnd(z);
  while (ccTail - ccHead < need && !scannersMet()) {
    if (ccTail + 2 * PAGEBLOCK_NR_PAGES > FREE_MAX) {
      memory.copy(ccFree, ccFree + (<usize>ccHead << 2), <usize>(ccTail - ccHead) << 2);
      ccTail -= ccHead;
      ccHead = 0;
    }
    const pb = ccFreePfn;
    if (pb < zs + PAGEBLOCK_NR_PAGES) ccFreeDone = true;
    else ccFreePfn = pb - PAGEBLOCK_NR_PAGES;
    if (!suitableTarget(pb)) continue;
    let pfn = max(pb, zs);
    const end = min(pb + PAGEBLOCK_NR_PAGES, ze);
    bump(CS_FREE_SCANNED, end - pfn);
    statAdd(COMPACT_FREE_SCANNED, <i64>(end - pfn));
    while (pfn < end) {
      if (!pageIsBuddy(pfn)) {
        pfn++;
        continue;
      }
      const o = orderOf(pfn);
      const n: u32 = 1 << o;
      const cls = blockClass(pfn);
      delFromFreeList(z, pfn, o, cls);
      accountFree(z, cls, -(<i32>n));
      for (let p = pfn; p < pfn + n; p++) {
        setRef(p, 1);
        setOrder(p, 0);
        store<u32>(ccFree + (<usize>ccTail << 2), p);
        ccTail++;
      }
      bump(CS_FREE_ISOLATED, n);
      statAdd(COMPACT_ISOLATED, <i64>n);
      pfn += n;
    }
  }
}

// Source pages of the batch that had a target.
let ccNeed: u32 = 0;

// The batch's migration: a target for every collected page while targets last (locked, as
// compaction_alloc's pages are used), contents copied run by run, then migrate_pages.
// Freed sources go back to the buddy lists (lru_add_drain_cpu_zone) so they can merge.
// The work is split in two calls, compactFill (targets and copies) and compactFinish (the
// pages and finalize steps), so that pin control subsystems are asked in between.
export function compactFill(slot: u32): void {
  const n = ccBatch;
  ccNeed = 0;
  if (n > 0) {
    selectSlot(slot);
    const src = srcAddr();
    const dst = dstAddr();
    let need: u32 = 0;
    for (let i: u32 = 0; i < n; i++) if (load<u64>(src + (<usize>i << 3)) & MIGRATE_PFN_MIGRATE) need++;
    isolateFreePages(need);
    for (let i: u32 = 0; i < n && ccHead < ccTail; i++) {
      const e = load<u64>(src + (<usize>i << 3));
      if ((e & MIGRATE_PFN_MIGRATE) == 0) continue;
      const d = load<u32>(ccFree + (<usize>ccHead << 2));
      ccHead++;
      setFlag(d, PG_locked);
      store<u64>(dst + (<usize>i << 3), migratePfn(d) | (e & MIGRATE_PFN_WRITE));
      runCopyAdd(d, <u32>(e >> MIGRATE_PFN_SHIFT));
    }
    runCopyFlush();
    ccNeed = need;
    saveSlot();
  }
}

export function compactFinish(slot: u32): u32 {
  const n = ccBatch;
  if (n > 0) {
    selectSlot(slot);
    const need = ccNeed;
    const before = statGet(PGMIGRATE_SUCCESS);
    migratePagesFinalize(n);
    saveSlot();
    const migrated = <u32>(statGet(PGMIGRATE_SUCCESS) - before);
    bump(CS_MIGRATED, migrated);
    bump(CS_FAILED, need - migrated);
    ccBatch = 0;
    drainZone(ccZone);
  }
  return compactFinished();
}

// __compact_finished.
function compactFinished(): u32 {
  if (scannersMet() || ccMigratePfn >= zoneEnd(ccZone)) return COMPACT_COMPLETE;
  if (ccOrder >= 0 && freeBlockOfOrder(ccZone, <u32>ccOrder)) return COMPACT_SUCCESS_RESULT;
  return COMPACT_CONTINUE;
}

// The run's end: targets left over go back (release_free_list), the pcp list drained.
export function compactEnd(): void {
  while (ccHead < ccTail) {
    freePages(load<u32>(ccFree + (<usize>ccHead << 2)), 0);
    ccHead++;
  }
  ccHead = 0;
  ccTail = 0;
  ccBatch = 0;
  drainZone(ccZone);
}

// Whether the zone now has a free block of `order` (direct compaction's test of success).
export function compactOrderFree(z: u32, order: u32): bool {
  return freeBlockOfOrder(z, order);
}

// compact_stall, then compact_success or compact_fail: one direct compaction for an allocation.
export function compactCountDirect(success: bool): void {
  statAdd(COMPACT_STALL, 1);
  statAdd(success ? COMPACT_SUCCESS : COMPACT_FAIL, 1);
}
