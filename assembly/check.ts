// machine.check(): the invariants of DESIGN.md §5 (our CONFIG_DEBUG_VM), over the
// whole machine. Returns 0, or a CHECK_* code with its values in the result block.
import { nframes, nnodes, systemFrames, maxMms, maxMappings, scratchBase, resultBase, MAX_ORDER, NONE } from "./layout";
import { flagsOf, refOf, mapcountOf, pincountOf, gupRefsOf, pinpageHoldsOf, GUP_PIN_COUNTING_BIAS, PG_pin, mappingOf, indexOf, orderOf, lruNext, lruPrev, pageIsAnon, testFlag, zoneOf, PG_reserved, PG_locked, PG_uptodate, PG_dirty, PG_writeback, PG_swapbacked, PG_anon_exclusive, PG_hwpoison, PGTY_buddy, PG_lru, PG_unevictable, PG_active } from "./memmap";
import { zoneStart, zoneEnd, zoneFree, freeListHead, freeListCount, pcpHead, pcpTail, pcpCount, zoneIsDevice, zoneExists, MAX_ZONES } from "./alloc";
import {
  PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES, PB_ISOLATE, PB_OFFLINE, FL_NORMAL, FL_CMA, FL_ISOLATE, MIGRATE_CMA, blockClass, pageblockFlags, pageblockSavedType,
  zoneCmaFree, zoneIsolatedFree, zoneSpecialBlocks, zoneOfflinePages, nrCmaAreas, cmaAreaBase, cmaAreaPages, cmaBitTest, cmaAreaOf,
} from "./pageblock";
import { isolationsInFlight } from "./isolation";
import { isDevicePrivatePage, isZoneDevicePage } from "./device";
import { tableAddr, entryTable, entryPresent, tablesInUse } from "./pagetable";
import {
  pteSpecial, ptePfn, _PAGE_RW, _PAGE_PRESENT, _PAGE_RO_MIGRATION, _PAGE_RO_MIGRATION_WRITE, isSwapPte, swpType,
  SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE, SWP_HWPOISON, SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE,
} from "./pte";
import {
  mmAlive, mmPgd, mmNvmas, mmRssAnon, mmRssShmem, mmPolicyMode, mmPolicyNodes, vmaAddr, vmaStart, vmaEnd, vmaFlags,
  vmaPolicyMode, vmaPolicyNodes, VM_WRITE, VM_SHARED, VM_LOCKED, VM_PFNMAP, VM_MIXEDMAP,
} from "./mm";
import { pfnHasStructPage } from "./pmem";
import { pteTableBase, pteTableEnd } from "./pagetable";
import { policyValid } from "./mempolicy";
import { mlockCountOf, MLOCK_FLAGS } from "./mlock";
import { mappingAlive, mappingNrpages, mappingForEach, mappingIsFile } from "./mapping";
import { checkFileLru, lruBadPfn } from "./filemap";
import { ZERO_PFN, fileMappingValue, fileMappingId } from "./rmap";
import { markInFlight } from "./migrate";
import { statGet, NR_FREE_PAGES, NR_ANON_PAGES, NR_SHMEM, NR_PAGE_TABLE_PAGES, NR_RADIX_NODES, NR_FOLL_PIN_ACQUIRED, NR_FOLL_PIN_RELEASED, NR_FREE_CMA, NR_MLOCK,
  NR_FILE_PAGES, NR_DIRTY, NR_WRITEBACK, NR_INACTIVE_FILE, NR_ACTIVE_FILE } from "./stat";

export const CHECK_OK: u32 = 0;
export const CHECK_FREE_LIST_CORRUPT: u32 = 1;
export const CHECK_FREE_PAGE_IN_USE: u32 = 2;
export const CHECK_FREE_COUNT: u32 = 3;
export const CHECK_PTE_BAD_PFN: u32 = 4;
export const CHECK_PTE_MAPS_FREE_PAGE: u32 = 5;
export const CHECK_PTE_OUTSIDE_VMA: u32 = 6;
export const CHECK_PTE_WRITE_NOT_VM_WRITE: u32 = 7;
export const CHECK_MAPCOUNT: u32 = 8;
export const CHECK_REFCOUNT: u32 = 9;
export const CHECK_PAGE_LOCKED: u32 = 10;
export const CHECK_PAGE_LEAKED: u32 = 11;
export const CHECK_CACHE: u32 = 12;
export const CHECK_STAT: u32 = 13;
export const CHECK_TABLES: u32 = 14;
export const CHECK_RSS: u32 = 15;
export const CHECK_SPECIAL_PTE: u32 = 16;
export const CHECK_SWAP_ENTRY: u32 = 17;
export const CHECK_DEVICE_PRIVATE_PRESENT: u32 = 18;
export const CHECK_DEVICE_ENTRY: u32 = 19;
export const CHECK_WRITABLE_NOT_EXCLUSIVE: u32 = 20;
export const CHECK_PIN_LEDGER: u32 = 21;
export const CHECK_GUP_DEVICE_PRIVATE: u32 = 22;
export const CHECK_FREE_PAGE_HELD: u32 = 23;
export const CHECK_GUP_ONLY_REFCOUNT: u32 = 24;
export const CHECK_PINPAGE_FLAG: u32 = 25;
export const CHECK_RO_MIGRATION: u32 = 36;
export const CHECK_RO_MIGRATION_WRITE: u32 = 37;
// Pageblocks, CMA and memory offline (40..46).
export const CHECK_PAGEBLOCK: u32 = 40;
export const CHECK_FREE_CLASS: u32 = 41;
export const CHECK_ISOLATED_AT_REST: u32 = 42;
export const CHECK_OFFLINE_PAGE: u32 = 43;
export const CHECK_CMA_PAGE: u32 = 44;
export const CHECK_ZONE_SPECIAL: u32 = 45;
export const CHECK_ZONE_OFFLINE: u32 = 46;
// mlock and memory policy (50..52).
export const CHECK_MLOCK: u32 = 50;
export const CHECK_MLOCK_COUNT: u32 = 51;
export const CHECK_MEMPOLICY: u32 = 52;
// The page cache of files (53..56).
export const CHECK_FILE_LRU: u32 = 53;
export const CHECK_FILE_DIRTY_PTE: u32 = 54;
export const CHECK_FILE_NOT_UPTODATE: u32 = 55;
export const CHECK_FILE_WRITEBACK: u32 = 56;
// pfns without struct page: pmem in storage mode, DAX special PTEs, hot-plugged zones (60..64).
export const CHECK_SPECIAL_OUTSIDE_PFNMAP: u32 = 60;
export const CHECK_SPECIAL_STRUCT_PAGE: u32 = 61;
export const CHECK_NORMAL_NO_STRUCT_PAGE: u32 = 62;
export const CHECK_NO_STRUCT_PAGE_USED: u32 = 63;
export const CHECK_HOTPLUG_ZONE: u32 = 64;
// File pages in device memory (57..58): off the LRU lists, and none outside its file's cache.
export const CHECK_FILE_DEVICE_LRU: u32 = 57;
export const CHECK_FILE_DEVICE_STALE: u32 = 58;
// A mapped page that names a file is that file's cached page (59).
export const CHECK_FILE_MAPPED_STALE: u32 = 59;

const SCRATCH_FREE: u32 = 1 << 31;
const SCRATCH_CACHED: u32 = 1 << 30;
// A page of a migration in flight (it may be locked, unmapped, behind migration entries),
// and one whose PTEs may be read-only migration PTEs.
const SCRATCH_MIGRATING: u32 = 1 << 29;
const SCRATCH_RO_SOURCE: u32 = 1 << 28;
// A frame allocated from a CMA area, and an offline frame.
const SCRATCH_CMA: u32 = 1 << 27;
const SCRATCH_OFFLINE: u32 = 1 << 26;
const SCRATCH_COUNT: u32 = SCRATCH_OFFLINE - 1;

const R_CODE = 32;
const R_A = 40;
const R_B = 48;
const R_C = 56;

function fail(code: u32, a: f64, b: f64, c: f64): u32 {
  store<u32>(resultBase + R_CODE, code);
  store<f64>(resultBase + R_A, a);
  store<f64>(resultBase + R_B, b);
  store<f64>(resultBase + R_C, c);
  return code;
}

@inline function scratch(pfn: u32): usize {
  return scratchBase + (<usize>pfn << 2);
}

let listPages: u32 = 0;

// One free list: blocks inside the zone, aligned, marked buddy with their order, on the list
// of their pageblocks' class, never seen twice; their pages unused. Counts its pages.
function checkFreeList(z: u32, cls: u32, o: u32): u32 {
  let n: u32 = 0;
  let pfn = freeListHead(z, cls, o);
  while (pfn != NONE) {
    if (pfn < zoneStart(z) || pfn + (1 << o) > zoneEnd(z) || (pfn & ((1 << o) - 1)) != 0)
      return fail(CHECK_FREE_LIST_CORRUPT, pfn, o, z);
    if ((flagsOf(pfn) & (1 << PGTY_buddy)) == 0 || orderOf(pfn) != o)
      return fail(CHECK_FREE_LIST_CORRUPT, pfn, o, z);
    if (blockClass(pfn) != cls || (o > PAGEBLOCK_ORDER && blockClass(pfn + (1 << o) - 1) != cls))
      return fail(CHECK_FREE_CLASS, pfn, o, cls);
    for (let i: u32 = 0; i < (<u32>1 << o); i++) {
      const p = pfn + i;
      if (load<u32>(scratch(p)) & SCRATCH_FREE) return fail(CHECK_FREE_LIST_CORRUPT, p, o, z);
      if (refOf(p) != 0 || mapcountOf(p) != 0) return fail(CHECK_FREE_PAGE_IN_USE, p, refOf(p), mapcountOf(p));
      if (gupRefsOf(p) != 0 || pincountOf(p) != 0 || pinpageHoldsOf(p) != 0) return fail(CHECK_FREE_PAGE_HELD, p, gupRefsOf(p), pincountOf(p));
      store<u32>(scratch(p), SCRATCH_FREE);
    }
    n++;
    if (n > nframes) return fail(CHECK_FREE_LIST_CORRUPT, pfn, o, z);
    pfn = lruNext(pfn);
  }
  if (n != freeListCount(z, cls, o)) return fail(CHECK_FREE_COUNT, z, n, freeListCount(z, cls, o));
  listPages = n << o;
  return CHECK_OK;
}

function checkFreeLists(): u32 {
  let total: i64 = 0;
  let cmaTotal: i64 = 0;
  for (let z: u32 = 0; z < MAX_ZONES; z++) {
    if (!zoneExists(z)) continue;
    let zoneTotal: u32 = 0;
    let cma: u32 = 0;
    let isolated: u32 = 0;
    for (let o: u32 = 0; o <= MAX_ORDER; o++) {
      let r = checkFreeList(z, FL_NORMAL, o);
      if (r != CHECK_OK) return r;
      zoneTotal += listPages;
      r = checkFreeList(z, FL_CMA, o);
      if (r != CHECK_OK) return r;
      cma += listPages;
      r = checkFreeList(z, FL_ISOLATE, o);
      if (r != CHECK_OK) return r;
      isolated += listPages;
    }
    if (cma != zoneCmaFree(z)) return fail(CHECK_FREE_COUNT, z, cma, zoneCmaFree(z));
    if (isolated != zoneIsolatedFree(z)) return fail(CHECK_FREE_COUNT, z, isolated, zoneIsolatedFree(z));
    zoneTotal += cma;
    let pcp: u32 = 0;
    let prev: u32 = NONE;
    for (let pfn = pcpHead(z); pfn != NONE; pfn = lruNext(pfn)) {
      if (pfn < zoneStart(z) || pfn >= zoneEnd(z) || (load<u32>(scratch(pfn)) & SCRATCH_FREE) != 0 || pcp > nframes || lruPrev(pfn) != prev)
        return fail(CHECK_FREE_LIST_CORRUPT, pfn, 0, z);
      prev = pfn;
      if (refOf(pfn) != 0 || mapcountOf(pfn) != 0 || flagsOf(pfn) != 0) return fail(CHECK_FREE_PAGE_IN_USE, pfn, refOf(pfn), mapcountOf(pfn));
      if (gupRefsOf(pfn) != 0 || pincountOf(pfn) != 0 || pinpageHoldsOf(pfn) != 0) return fail(CHECK_FREE_PAGE_HELD, pfn, gupRefsOf(pfn), pincountOf(pfn));
      // Device zones keep their free pages here; system zones only pages of the general class.
      if (!zoneIsDevice(z) && blockClass(pfn) != FL_NORMAL) return fail(CHECK_FREE_CLASS, pfn, 0, FL_NORMAL);
      store<u32>(scratch(pfn), SCRATCH_FREE);
      pcp++;
    }
    if (pcpTail(z) != prev) return fail(CHECK_FREE_LIST_CORRUPT, pcpTail(z), 1, z);
    if (pcp != pcpCount(z)) return fail(CHECK_FREE_COUNT, z, pcp, pcpCount(z));
    zoneTotal += pcp;
    if (zoneTotal != zoneFree(z)) return fail(CHECK_FREE_COUNT, z, zoneTotal, zoneFree(z));
    // ZONE_DEVICE pages are the drivers', not the page allocator's.
    if (!zoneIsDevice(z)) {
      total += <i64>zoneTotal;
      cmaTotal += <i64>cma;
    }
  }
  if (total != statGet(NR_FREE_PAGES)) return fail(CHECK_STAT, NR_FREE_PAGES, <f64>total, <f64>statGet(NR_FREE_PAGES));
  if (cmaTotal != statGet(NR_FREE_CMA)) return fail(CHECK_STAT, NR_FREE_CMA, <f64>cmaTotal, <f64>statGet(NR_FREE_CMA));
  return CHECK_OK;
}

// Pageblock types agree with the CMA areas; isolated blocks exist at rest only offline;
// offline frames are on no list and used by no one; allocated CMA pages are in use (they
// are marked so that no mapping or cache need hold them). Per zone, the counts agree.
const zoneSpecialSeen: usize = memory.data(<i32>(MAX_ZONES * 4), 16);
const zoneOfflineSeen: usize = memory.data(<i32>(MAX_ZONES * 4), 16);

// A device-space pfn of a zone that is system memory (pmem onlined as RAM).
@inline function hotplugged(pfn: u32): bool {
  const z = zoneOf(pfn);
  return zoneExists(z) && !zoneIsDevice(z) && pfn >= zoneStart(z) && pfn < zoneEnd(z);
}

// Every frame of a hot-plugged zone carries its zone id.
function checkHotplugZones(): u32 {
  for (let z: u32 = 0; z < MAX_ZONES; z++) {
    if (!zoneExists(z) || zoneIsDevice(z) || zoneStart(z) < systemFrames) continue;
    for (let pfn = zoneStart(z); pfn < zoneEnd(z); pfn++) if (zoneOf(pfn) != z) return fail(CHECK_HOTPLUG_ZONE, z, pfn, zoneOf(pfn));
  }
  return CHECK_OK;
}

function checkPageblocks(): u32 {
  memory.fill(zoneSpecialSeen, 0, MAX_ZONES * 4);
  memory.fill(zoneOfflineSeen, 0, MAX_ZONES * 4);
  for (let pb: u32 = 0; pb < nframes; pb += PAGEBLOCK_NR_PAGES) {
    if (pb >= systemFrames && !hotplugged(pb)) continue;
    const b = pageblockFlags(pb);
    const cma = pageblockSavedType(pb) == MIGRATE_CMA;
    if (cma != (cmaAreaOf(pb) >= 0) || ((b & PB_OFFLINE) != 0 && (b & PB_ISOLATE) == 0)) return fail(CHECK_PAGEBLOCK, pb, b, cmaAreaOf(pb));
    if ((b & (PB_ISOLATE | PB_OFFLINE)) == PB_ISOLATE && isolationsInFlight == 0) return fail(CHECK_ISOLATED_AT_REST, pb, b, 0);
    const z = zoneOf(pb);
    if (cma || (b & PB_ISOLATE) != 0) store<u32>(zoneSpecialSeen + (<usize>z << 2), load<u32>(zoneSpecialSeen + (<usize>z << 2)) + 1);
    if ((b & PB_OFFLINE) == 0) continue;
    for (let pfn = pb; pfn < pb + PAGEBLOCK_NR_PAGES; pfn++) {
      if ((load<u32>(scratch(pfn)) & SCRATCH_FREE) != 0 || refOf(pfn) != 0 || mapcountOf(pfn) != 0 || flagsOf(pfn) != 0)
        return fail(CHECK_OFFLINE_PAGE, pfn, refOf(pfn), mapcountOf(pfn));
      store<u32>(scratch(pfn), SCRATCH_OFFLINE);
    }
    store<u32>(zoneOfflineSeen + (<usize>z << 2), load<u32>(zoneOfflineSeen + (<usize>z << 2)) + PAGEBLOCK_NR_PAGES);
  }
  for (let z: u32 = 0; z < MAX_ZONES; z++) {
    if (!zoneExists(z) || zoneIsDevice(z)) continue;
    const special = load<u32>(zoneSpecialSeen + (<usize>z << 2));
    if (special != zoneSpecialBlocks(z)) return fail(CHECK_ZONE_SPECIAL, z, special, zoneSpecialBlocks(z));
    const offline = load<u32>(zoneOfflineSeen + (<usize>z << 2));
    if (offline != zoneOfflinePages(z)) return fail(CHECK_ZONE_OFFLINE, z, offline, zoneOfflinePages(z));
  }
  const n = nrCmaAreas();
  for (let a: u32 = 0; a < n; a++) {
    const base = cmaAreaBase(a);
    for (let i: u32 = 0; i < cmaAreaPages(a); i++) {
      if (!cmaBitTest(a, i)) continue;
      const pfn = base + i;
      if ((load<u32>(scratch(pfn)) & SCRATCH_FREE) != 0 || refOf(pfn) <= 0) return fail(CHECK_CMA_PAGE, pfn, refOf(pfn), a);
      store<u32>(scratch(pfn), load<u32>(scratch(pfn)) | SCRATCH_CMA);
    }
  }
  return CHECK_OK;
}

let tablesSeen: u32 = 0;
let rssAnon: u32 = 0;
let rssShmem: u32 = 0;

function checkPte(mm: u32, vpn: u64, pte: u64, vmaIdx: u32): u32 {
  if (vmaIdx == NONE) return fail(CHECK_PTE_OUTSIDE_VMA, mm, <f64>vpn, 0);
  const flags = vmaFlags(vmaAddr(mm, vmaIdx));
  if ((pte & _PAGE_RW) != 0 && (pte & _PAGE_PRESENT) != 0 && (flags & VM_WRITE) == 0)
    return fail(CHECK_PTE_WRITE_NOT_VM_WRITE, mm, <f64>vpn, 0);
  const pfn = ptePfn(pte);
  // A special PTE maps no struct page: the zero page, or a pfn of a VM_PFNMAP/VM_MIXEDMAP
  // VMA that has none (DAX of pmem in storage mode). Neither counts in mapcount or RSS.
  if (!isSwapPte(pte) && pteSpecial(pte)) {
    if (pfn == ZERO_PFN) return (pte & _PAGE_RW) != 0 ? fail(CHECK_SPECIAL_PTE, mm, <f64>vpn, pfn) : CHECK_OK;
    if ((flags & (VM_PFNMAP | VM_MIXEDMAP)) == 0) return fail(CHECK_SPECIAL_OUTSIDE_PFNMAP, mm, <f64>vpn, pfn);
    if (pfn >= nframes) return fail(CHECK_PTE_BAD_PFN, mm, <f64>vpn, pfn);
    if (pfnHasStructPage(pfn)) return fail(CHECK_SPECIAL_STRUCT_PAGE, mm, <f64>vpn, pfn);
    return CHECK_OK;
  }
  if (isSwapPte(pte)) {
    const t = swpType(pte);
    // A hwpoison entry maps nothing: its page is held by the poison reference alone.
    if (t == SWP_HWPOISON) return pfn < nframes && testFlag(pfn, PG_hwpoison) ? CHECK_OK : fail(CHECK_SWAP_ENTRY, mm, <f64>vpn, t);
    // A migration entry maps nothing either; it stands for a page of a migration in flight.
    if (t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE) {
      if (pfn >= nframes || (load<u32>(scratch(pfn)) & SCRATCH_MIGRATING) == 0) return fail(CHECK_SWAP_ENTRY, mm, <f64>vpn, t);
      if (t == SWP_MIGRATION_WRITE && (flags & VM_WRITE) == 0) return fail(CHECK_PTE_WRITE_NOT_VM_WRITE, mm, <f64>vpn, 0);
      return CHECK_OK;
    }
    const ok = (t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ) ? pfn < nframes && isDevicePrivatePage(pfn)
      : t == SWP_DEVICE_EXCLUSIVE ? pfn < nframes && !isDevicePrivatePage(pfn) && (!isZoneDevicePage(pfn) || pageIsAnon(pfn)) : false;
    if (!ok) return fail(t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ || t == SWP_DEVICE_EXCLUSIVE ? CHECK_DEVICE_ENTRY : CHECK_SWAP_ENTRY, mm, <f64>vpn, t);
    if (t == SWP_DEVICE_WRITE && (flags & VM_WRITE) == 0) return fail(CHECK_PTE_WRITE_NOT_VM_WRITE, mm, <f64>vpn, 0);
  } else if (pfn < nframes && isDevicePrivatePage(pfn)) {
    return fail(CHECK_DEVICE_PRIVATE_PRESENT, mm, <f64>vpn, pfn);
  } else if ((pte & (_PAGE_RO_MIGRATION | _PAGE_RO_MIGRATION_WRITE)) != 0) {
    // Only a read-only migration in flight write-protects a PTE this way, and what it
    // gives back at its end must be a permission the PTE may have.
    if ((pte & _PAGE_RO_MIGRATION) == 0 || pfn >= nframes || (load<u32>(scratch(pfn)) & SCRATCH_RO_SOURCE) == 0)
      return fail(CHECK_RO_MIGRATION, mm, <f64>vpn, pfn);
    if ((pte & _PAGE_RW) != 0) return fail(CHECK_RO_MIGRATION_WRITE, mm, <f64>vpn, pfn);
    if ((pte & _PAGE_RO_MIGRATION_WRITE) != 0 &&
        ((flags & VM_WRITE) == 0 || ((flags & VM_SHARED) == 0 && pageIsAnon(pfn) && !testFlag(pfn, PG_anon_exclusive))))
      return fail(CHECK_RO_MIGRATION_WRITE, mm, <f64>vpn, pfn);
  }
  if (pfn >= nframes) return fail(CHECK_PTE_BAD_PFN, mm, <f64>vpn, pfn);
  if (!pfnHasStructPage(pfn)) return fail(CHECK_NORMAL_NO_STRUCT_PAGE, mm, <f64>vpn, pfn);
  // A page a VM_LOCKED VMA maps (present, or behind a device-exclusive entry) is mlocked.
  if ((flags & VM_LOCKED) != 0 && !isZoneDevicePage(pfn) && (flagsOf(pfn) & MLOCK_FLAGS) != MLOCK_FLAGS)
    return fail(CHECK_MLOCK, mm, <f64>vpn, pfn);
  const s = load<u32>(scratch(pfn));
  if ((s & SCRATCH_FREE) != 0 || refOf(pfn) <= 0) return fail(CHECK_PTE_MAPS_FREE_PAGE, mm, <f64>vpn, pfn);
  store<u32>(scratch(pfn), s + 1);
  // COW's promise: a writable PTE of a private anon page maps an exclusive page.
  if (!isSwapPte(pte) && (pte & _PAGE_RW) != 0 && (flags & VM_SHARED) == 0 && (!pageIsAnon(pfn) || !testFlag(pfn, PG_anon_exclusive)))
    return fail(CHECK_WRITABLE_NOT_EXCLUSIVE, mm, <f64>vpn, pfn);
  // Write notification's promise: a writable PTE of a file page maps a dirty page.
  if (!isSwapPte(pte) && (pte & _PAGE_RW) != 0 && !pageIsAnon(pfn) && !testFlag(pfn, PG_swapbacked) && !testFlag(pfn, PG_dirty))
    return fail(CHECK_FILE_DIRTY_PTE, mm, <f64>vpn, pfn);
  if (pageIsAnon(pfn)) rssAnon++;
  else rssShmem++;
  return CHECK_OK;
}

// Walks the whole tree of one mm in address order with a cursor over its sorted VMAs.
function checkMm(mm: u32): u32 {
  const pgd = mmPgd(mm);
  tablesSeen++;
  const nv = mmNvmas(mm);
  if (!policyValid(mmPolicyMode(mm), mmPolicyNodes(mm), nnodes)) return fail(CHECK_MEMPOLICY, mm, -1, mmPolicyMode(mm));
  for (let i: u32 = 0; i < nv; i++) {
    const v = vmaAddr(mm, i);
    if (!policyValid(vmaPolicyMode(v), vmaPolicyNodes(v), nnodes)) return fail(CHECK_MEMPOLICY, mm, <f64>vmaStart(v), vmaPolicyMode(v));
  }
  let cur: u32 = 0;
  rssAnon = 0;
  rssShmem = 0;
  for (let a: u32 = 0; a < 512; a++) {
    const ae = load<u64>(tableAddr(pgd) + (<usize>a << 3));
    if (!entryPresent(ae)) continue;
    const pud = entryTable(ae);
    tablesSeen++;
    for (let b: u32 = 0; b < 512; b++) {
      const be = load<u64>(tableAddr(pud) + (<usize>b << 3));
      if (!entryPresent(be)) continue;
      const pmd = entryTable(be);
      tablesSeen++;
      for (let c: u32 = 0; c < 512; c++) {
        const ce = load<u64>(tableAddr(pmd) + (<usize>c << 3));
        if (!entryPresent(ce)) continue;
        const pt = tableAddr(entryTable(ce));
        tablesSeen++;
        const base = (<u64>a << 27) | (<u64>b << 18) | (<u64>c << 9);
        for (let d: u32 = 0; d < 512; d++) {
          const pte = load<u64>(pt + (<usize>d << 3));
          if (pte == 0) continue;
          const vpn = base | <u64>d;
          while (cur < nv && vmaEnd(vmaAddr(mm, cur)) <= vpn) cur++;
          const inVma = cur < nv && vmaStart(vmaAddr(mm, cur)) <= vpn;
          const r = checkPte(mm, vpn, pte, inVma ? cur : NONE);
          if (r != CHECK_OK) return r;
        }
      }
    }
  }
  if (rssAnon != mmRssAnon(mm)) return fail(CHECK_RSS, mm, rssAnon, mmRssAnon(mm));
  if (rssShmem != mmRssShmem(mm)) return fail(CHECK_RSS, mm, rssShmem, mmRssShmem(mm));
  return CHECK_OK;
}

let cacheId: u32 = 0;
let cacheBad: bool = false;
let cacheBadIndex: u64 = 0;
let cachePages: u32 = 0;
let cacheFile: bool = false;
let fileOnLru: i64 = 0;
let fileDirty: i64 = 0;
let fileWriteback: i64 = 0;

function visitCached(slot: usize, pfn: u32, index: u64): void {
  cachePages++;
  if (cacheBad) return;
  if (pfn >= nframes || mappingOf(pfn) != fileMappingValue(cacheId) || <u64>indexOf(pfn) != index ||
      (load<u32>(scratch(pfn)) & (SCRATCH_FREE | SCRATCH_CACHED)) != 0) {
    cacheBad = true;
    cacheBadIndex = index;
    return;
  }
  store<u32>(scratch(pfn), load<u32>(scratch(pfn)) | SCRATCH_CACHED);
  if (!cacheFile) return;
  const f = flagsOf(pfn);
  // A file page is read in before anything can find it unlocked.
  if ((f & ((1 << PG_uptodate) | (1 << PG_locked))) == 0) {
    cacheBad = true;
    cacheBadIndex = index;
    cacheBadUptodate = true;
    return;
  }
  // On a file LRU list unless in device memory or mlocked (on the unevictable list).
  if (!isZoneDevicePage(pfn)) {
    if ((f & (1 << PG_unevictable)) == 0) fileOnLru++;
  } else if ((f & (1 << PG_lru)) != 0 && !cacheDeviceBad) {
    cacheDeviceBad = true;
    cacheDevicePfn = pfn;
  }
  if (f & (1 << PG_dirty)) fileDirty++;
  if (f & (1 << PG_writeback)) fileWriteback++;
}
let cacheBadUptodate: bool = false;
let cacheDeviceBad: bool = false;
let cacheDevicePfn: u32 = 0;

export function checkMachine(): u32 {
  memory.fill(scratchBase, 0, <usize>nframes << 2);
  let r = checkHotplugZones();
  if (r != CHECK_OK) return r;
  r = checkFreeLists();
  if (r != CHECK_OK) return r;
  markInFlight(scratchBase, SCRATCH_MIGRATING, SCRATCH_RO_SOURCE);
  r = checkPageblocks();
  if (r != CHECK_OK) return r;

  tablesSeen = 0;
  for (let mm: u32 = 0; mm < maxMms; mm++) {
    if (!mmAlive(mm)) continue;
    r = checkMm(mm);
    if (r != CHECK_OK) return r;
  }
  if (<i64>tablesSeen != statGet(NR_PAGE_TABLE_PAGES)) return fail(CHECK_TABLES, tablesSeen, <f64>statGet(NR_PAGE_TABLE_PAGES), 0);
  if (<i64>tablesInUse != statGet(NR_PAGE_TABLE_PAGES) + statGet(NR_RADIX_NODES))
    return fail(CHECK_TABLES, tablesInUse, <f64>statGet(NR_PAGE_TABLE_PAGES), <f64>statGet(NR_RADIX_NODES));

  let shmem: u32 = 0;
  let filePages: u32 = 0;
  fileOnLru = 0;
  fileDirty = 0;
  fileWriteback = 0;
  cacheDeviceBad = false;
  for (let id: u32 = 0; id < maxMappings; id++) {
    if (!mappingAlive(id)) continue;
    cacheId = id;
    cacheBad = false;
    cacheBadUptodate = false;
    cachePages = 0;
    cacheFile = mappingIsFile(id);
    mappingForEach(id, 0, visitCached, false);
    if (cacheBad) return fail(cacheBadUptodate ? CHECK_FILE_NOT_UPTODATE : CHECK_CACHE, id, <f64>cacheBadIndex, 0);
    if (cachePages != mappingNrpages(id)) return fail(CHECK_CACHE, id, cachePages, mappingNrpages(id));
    if (cacheFile) filePages += cachePages;
    else shmem += cachePages;
  }
  if (cacheDeviceBad) return fail(CHECK_FILE_DEVICE_LRU, cacheDevicePfn, 0, 0);
  if (<i64>shmem != statGet(NR_SHMEM)) return fail(CHECK_STAT, NR_SHMEM, shmem, <f64>statGet(NR_SHMEM));
  if (<i64>(shmem + filePages) != statGet(NR_FILE_PAGES)) return fail(CHECK_STAT, NR_FILE_PAGES, shmem + filePages, <f64>statGet(NR_FILE_PAGES));
  if (fileDirty != statGet(NR_DIRTY)) return fail(CHECK_STAT, NR_DIRTY, <f64>fileDirty, <f64>statGet(NR_DIRTY));
  if (fileWriteback != statGet(NR_WRITEBACK)) return fail(CHECK_STAT, NR_WRITEBACK, <f64>fileWriteback, <f64>statGet(NR_WRITEBACK));
  // No I/O is in flight between operations.
  if (fileWriteback != 0) return fail(CHECK_FILE_WRITEBACK, <f64>fileWriteback, 0, 0);
  const onLists = checkFileLru();
  if (onLists < 0) return fail(CHECK_FILE_LRU, lruBadPfn, 0, 0);
  if (onLists != fileOnLru) return fail(CHECK_FILE_LRU, NONE, <f64>onLists, <f64>fileOnLru);
  if (onLists != statGet(NR_INACTIVE_FILE) + statGet(NR_ACTIVE_FILE))
    return fail(CHECK_STAT, NR_INACTIVE_FILE, <f64>onLists, <f64>(statGet(NR_INACTIVE_FILE) + statGet(NR_ACTIVE_FILE)));

  let anon: u32 = 0;
  let pins: i64 = 0;
  for (let pfn: u32 = 0; pfn < nframes; pfn++) {
    const s = load<u32>(scratch(pfn));
    if (s & (SCRATCH_FREE | SCRATCH_OFFLINE)) continue;
    const f = flagsOf(pfn);
    if (pfn >= systemFrames && !pfnHasStructPage(pfn)) {
      if (f != (1 << PG_reserved) || refOf(pfn) != 0 || mapcountOf(pfn) != 0 || pincountOf(pfn) != 0 || gupRefsOf(pfn) != 0 || pinpageHoldsOf(pfn) != 0 || s != 0)
        return fail(CHECK_NO_STRUCT_PAGE_USED, pfn, f, refOf(pfn));
      continue;
    }
    if (f & (1 << PG_reserved)) continue;
    const maps = <i32>(s & SCRATCH_COUNT);
    const cached: i32 = (s & SCRATCH_CACHED) != 0 ? 1 : 0;
    // Holders outside mappings: FOLL_GET references, pin control subsystems' holds, and
    // FOLL_PIN pins at GUP_PIN_COUNTING_BIAS each.
    const pinned = pincountOf(pfn);
    const holds = pinpageHoldsOf(pfn);
    const gup = <i64>gupRefsOf(pfn) + <i64>holds + <i64>pinned * GUP_PIN_COUNTING_BIAS;
    if ((holds != 0) != ((f & (1 << PG_pin)) != 0)) return fail(CHECK_PINPAGE_FLAG, pfn, holds, f);
    pins += <i64>pinned;
    if (maps != mapcountOf(pfn)) return fail(CHECK_MAPCOUNT, pfn, maps, mapcountOf(pfn));
    if (<i64>refOf(pfn) < <i64>(maps + cached) + gup) return fail(CHECK_REFCOUNT, pfn, refOf(pfn), <f64>(<i64>(maps + cached) + gup));
    if (gup != 0 && isDevicePrivatePage(pfn)) return fail(CHECK_GUP_DEVICE_PRIVATE, pfn, gupRefsOf(pfn), pinned);
    // A migration in flight holds its pages locked, and new or unmapped ones by its references.
    const migrating = (s & SCRATCH_MIGRATING) != 0;
    if ((f & (1 << PG_locked)) != 0 && !migrating) return fail(CHECK_PAGE_LOCKED, pfn, 0, 0);
    if (maps == 0 && cached == 0 && (f & (1 << PG_hwpoison)) == 0 && !migrating && (s & SCRATCH_CMA) == 0) {
      // A page only GUP holds (pinned, then unmapped) lives on until it is released.
      if (gup == 0) return fail(CHECK_PAGE_LEAKED, pfn, refOf(pfn), 0);
      if (<i64>refOf(pfn) != gup) return fail(CHECK_GUP_ONLY_REFCOUNT, pfn, refOf(pfn), <f64>gup);
    }
    if (maps > 0 && pageIsAnon(pfn)) anon++;
    // A device page that names a file is that file's cached page: truncation and power
    // failure leave no device copy of file data reachable.
    if (cached == 0 && !migrating && maps > 0 && !isZoneDevicePage(pfn)) {
      const mv = mappingOf(pfn);
      if (mv != 0 && (mv & 1) == 0 && mappingIsFile(fileMappingId(mv))) return fail(CHECK_FILE_MAPPED_STALE, pfn, refOf(pfn), maps);
    }
    if (cached == 0 && !migrating && isZoneDevicePage(pfn) && refOf(pfn) > 0) {
      const mv = mappingOf(pfn);
      if (mv != 0 && (mv & 1) == 0 && mappingIsFile(fileMappingId(mv))) return fail(CHECK_FILE_DEVICE_STALE, pfn, refOf(pfn), maps);
    }
  }
  if (<i64>anon != statGet(NR_ANON_PAGES)) return fail(CHECK_STAT, NR_ANON_PAGES, anon, <f64>statGet(NR_ANON_PAGES));
  // Pins never exceed what was taken: every pin held is one acquired and not yet released.
  const acquired = statGet(NR_FOLL_PIN_ACQUIRED);
  const released = statGet(NR_FOLL_PIN_RELEASED);
  if (pins != acquired - released) return fail(CHECK_PIN_LEDGER, <f64>pins, <f64>acquired, <f64>released);
  return checkMlockCounts();
}

// Every mlocked page's mlock_count is the number of VM_LOCKED mappings of it, and nothing
// else is mlocked or unevictable: the scratch counts those mappings afresh.
function checkMlockCounts(): u32 {
  memory.fill(scratchBase, 0, <usize>nframes << 2);
  for (let mm: u32 = 0; mm < maxMms; mm++) {
    if (!mmAlive(mm)) continue;
    const n = mmNvmas(mm);
    for (let i: u32 = 0; i < n; i++) {
      const v = vmaAddr(mm, i);
      if (vmaFlags(v) & VM_LOCKED) countLockedMappings(mmPgd(mm), vmaStart(v), vmaEnd(v));
    }
  }
  let mlocked: i64 = 0;
  for (let pfn: u32 = 0; pfn < nframes; pfn++) {
    const f = flagsOf(pfn) & MLOCK_FLAGS;
    const c = load<u32>(scratch(pfn));
    if (f == 0 && c == 0) continue;
    if (f != MLOCK_FLAGS || c != mlockCountOf(pfn)) return fail(CHECK_MLOCK_COUNT, pfn, c, f == MLOCK_FLAGS ? <f64>mlockCountOf(pfn) : -1);
    // An unevictable page is never active (munlock puts it back on the inactive list).
    if (testFlag(pfn, PG_active)) return fail(CHECK_MLOCK_COUNT, pfn, c, -2);
    mlocked++;
  }
  if (mlocked != statGet(NR_MLOCK)) return fail(CHECK_STAT, NR_MLOCK, <f64>mlocked, <f64>statGet(NR_MLOCK));
  return CHECK_OK;
}

// Counts, per pfn, the present PTEs and device-exclusive entries of [start, end) that map a
// page with a struct page of system memory.
function countLockedMappings(pgd: u32, start: u64, end: u64): void {
  let v = start;
  while (v < end) {
    const pt = pteTableBase(pgd, v);
    const stop = min<u64>(pteTableEnd, end);
    if (pt != 0) {
      for (; v < stop; v++) {
        const pte = load<u64>(pt + (<usize>(<u32>v & 511) << 3));
        if (pte == 0 || pteSpecial(pte)) continue;
        if (isSwapPte(pte) && swpType(pte) != SWP_DEVICE_EXCLUSIVE) continue;
        const pfn = ptePfn(pte);
        if (pfn >= nframes || isZoneDevicePage(pfn)) continue;
        store<u32>(scratch(pfn), load<u32>(scratch(pfn)) + 1);
      }
    }
    v = stop;
  }
}
