// Pageblocks (include/linux/pageblock-flags.h, mm/page_isolation.c): every 2^PAGEBLOCK_ORDER
// pages carry one migratetype byte. Free pages of CMA and of isolated pageblocks sit on free
// lists of their own (one more class each), so only movable allocations reach CMA pages and
// no allocation reaches an isolated pageblock. Also the CMA area table and its bitmaps.
import { pageblocksBase, cmaBase, nframes, systemFrames } from "./layout";

export const PAGEBLOCK_ORDER: u32 = 9;
export const PAGEBLOCK_NR_PAGES: u32 = 1 << PAGEBLOCK_ORDER;

// enum migratetype.
export const MIGRATE_UNMOVABLE: u32 = 0;
export const MIGRATE_MOVABLE: u32 = 1;
export const MIGRATE_RECLAIMABLE: u32 = 2;
export const MIGRATE_HIGHATOMIC: u32 = 3;
export const MIGRATE_CMA: u32 = 4;
export const MIGRATE_ISOLATE: u32 = 5;

const PB_MT_MASK: u32 = 7;
// PB_migrate_isolate: the block is isolated and its own type waits in the low bits.
export const PB_ISOLATE: u32 = 1 << 3;
// The block's memory is offline (memory hot-unplug); it stays isolated while offline.
export const PB_OFFLINE: u32 = 1 << 4;

// Free-list classes: which lists of a zone a free block of the pageblock sits on.
export const FL_NORMAL: u32 = 0;
export const FL_CMA: u32 = 1;
export const FL_ISOLATE: u32 = 2;

@inline export function pageblockFlags(pfn: u32): u32 {
  return <u32>load<u8>(pageblocksBase + <usize>(pfn >> PAGEBLOCK_ORDER));
}
@inline export function setPageblockFlags(pfn: u32, v: u32): void {
  store<u8>(pageblocksBase + <usize>(pfn >> PAGEBLOCK_ORDER), <u8>v);
}

// get_pageblock_migratetype.
@inline export function pageblockMigratetype(pfn: u32): u32 {
  const b = pageblockFlags(pfn);
  return (b & PB_ISOLATE) != 0 ? MIGRATE_ISOLATE : b & PB_MT_MASK;
}

// The block's type under any isolation (what undoing the isolation restores).
@inline export function pageblockSavedType(pfn: u32): u32 {
  return pageblockFlags(pfn) & PB_MT_MASK;
}

@inline export function setPageblockMigratetype(pfn: u32, mt: u32): void {
  setPageblockFlags(pfn, (pageblockFlags(pfn) & ~PB_MT_MASK) | mt);
}

@inline export function blockClass(pfn: u32): u32 {
  const b = pageblockFlags(pfn);
  if (b & PB_ISOLATE) return FL_ISOLATE;
  return (b & PB_MT_MASK) == MIGRATE_CMA ? FL_CMA : FL_NORMAL;
}

// is_migrate_cma_page, for every caller (FOLL_LONGTERM must not pin these pages): the
// block's own type, so a CMA block stays CMA while an operation has it isolated.
@inline export function pageblockIsCma(pfn: u32): bool {
  return pfn < systemFrames && pageblockSavedType(pfn) == MIGRATE_CMA;
}

// ---- the per-zone part: CMA and isolate free lists, and counts -------------------------

export const ZX_RECORD: usize = 256;
const ZX_HEADS: usize = 0;
const ZX_COUNTS: usize = 88;
const ZX_CMA_FREE: usize = 176;
const ZX_ISO_FREE: usize = 180;
const ZX_SPECIAL: usize = 184;
const ZX_OFFLINE: usize = 188;
const ZX_CMA_PAGES: usize = 192;
const MAX_ZONES_X: u32 = 64;
const zoneExt: usize = memory.data(<i32>(MAX_ZONES_X * <u32>ZX_RECORD), 16);

export function zoneExtBase(): usize {
  return zoneExt;
}

// A zone slot's CMA/isolate lists and counts, emptied (memory hot-plug reuses slots).
export function zoneExtReset(z: u32): void {
  memory.fill(zoneExt + <usize>z * ZX_RECORD, 0, ZX_RECORD);
}

@inline function zx(z: u32): usize {
  return zoneExt + <usize>z * ZX_RECORD;
}
// Heads and block counts of the CMA (class 1) and isolate (class 2) lists.
@inline export function classHeadAddr(z: u32, cls: u32, order: u32): usize {
  return zx(z) + ZX_HEADS + <usize>((cls - 1) * 11 + order) * 4;
}
@inline export function classCountAddr(z: u32, cls: u32, order: u32): usize {
  return zx(z) + ZX_COUNTS + <usize>((cls - 1) * 11 + order) * 4;
}
// NR_FREE_CMA_PAGES of the zone (counted in its free pages too).
@inline export function zoneCmaFree(z: u32): u32 { return load<u32>(zx(z) + ZX_CMA_FREE); }
@inline export function setZoneCmaFree(z: u32, v: u32): void { store<u32>(zx(z) + ZX_CMA_FREE, v); }
// Free pages of isolated pageblocks: not counted as free, no allocation may take them.
@inline export function zoneIsolatedFree(z: u32): u32 { return load<u32>(zx(z) + ZX_ISO_FREE); }
@inline export function setZoneIsolatedFree(z: u32, v: u32): void { store<u32>(zx(z) + ZX_ISO_FREE, v); }
// CMA plus isolated pageblocks of the zone: while 0, frees need not look at pageblocks.
@inline export function zoneSpecialBlocks(z: u32): u32 { return load<u32>(zx(z) + ZX_SPECIAL); }
@inline export function setZoneSpecialBlocks(z: u32, v: u32): void { store<u32>(zx(z) + ZX_SPECIAL, v); }
@inline export function zoneOfflinePages(z: u32): u32 { return load<u32>(zx(z) + ZX_OFFLINE); }
@inline export function setZoneOfflinePages(z: u32, v: u32): void { store<u32>(zx(z) + ZX_OFFLINE, v); }
@inline export function zoneCmaPages(z: u32): u32 { return load<u32>(zx(z) + ZX_CMA_PAGES); }
@inline export function setZoneCmaPages(z: u32, v: u32): void { store<u32>(zx(z) + ZX_CMA_PAGES, v); }

// ---- CMA areas (mm/cma.c): written by TS at creation --------------------------------------

const CMA_RECORD: usize = 16;
export const CMA_BITMAP: usize = 16 + 16 * CMA_RECORD;

@inline export function nrCmaAreas(): u32 { return load<u32>(cmaBase); }
@inline export function cmaAreaBase(a: u32): u32 { return load<u32>(cmaBase + 16 + <usize>a * CMA_RECORD); }
@inline export function cmaAreaPages(a: u32): u32 { return load<u32>(cmaBase + 16 + <usize>a * CMA_RECORD + 4); }
@inline export function cmaAreaZone(a: u32): u32 { return load<u32>(cmaBase + 16 + <usize>a * CMA_RECORD + 8); }
@inline function cmaAreaFirstBit(a: u32): u32 { return load<u32>(cmaBase + 16 + <usize>a * CMA_RECORD + 12); }

// Whether page `i` of area `a` is allocated (cma->bitmap, one bit per page).
@inline export function cmaBitTest(a: u32, i: u32): bool {
  const bit = cmaAreaFirstBit(a) + i;
  return (load<u8>(cmaBase + CMA_BITMAP + <usize>(bit >> 3)) & (1 << (bit & 7))) != 0;
}

// The area holding `pfn`, or -1.
export function cmaAreaOf(pfn: u32): i32 {
  const n = nrCmaAreas();
  for (let a: u32 = 0; a < n; a++) {
    const base = cmaAreaBase(a);
    if (pfn >= base && pfn < base + cmaAreaPages(a)) return <i32>a;
  }
  return -1;
}

// Boot: every pageblock MIGRATE_MOVABLE (as memmap_init leaves them), CMA areas' blocks
// MIGRATE_CMA (cma_activate_area). Before the zones' free lists are built.
export function pageblocksInit(): void {
  const nblocks = (nframes + PAGEBLOCK_NR_PAGES - 1) >> PAGEBLOCK_ORDER;
  memory.fill(pageblocksBase, <u8>MIGRATE_MOVABLE, nblocks);
  memory.fill(zoneExt, 0, <usize>MAX_ZONES_X * ZX_RECORD);
  const n = nrCmaAreas();
  for (let a: u32 = 0; a < n; a++) {
    const base = cmaAreaBase(a);
    const pages = cmaAreaPages(a);
    const z = cmaAreaZone(a);
    for (let pfn = base; pfn < base + pages; pfn += PAGEBLOCK_NR_PAGES) setPageblockMigratetype(pfn, MIGRATE_CMA);
    setZoneSpecialBlocks(z, zoneSpecialBlocks(z) + (pages >> PAGEBLOCK_ORDER));
    setZoneCmaPages(z, zoneCmaPages(z) + pages);
  }
}
