// Zones and the buddy allocator (mm/page_alloc.c): free_area[order] lists per zone,
// split on allocation (expand), merge with the buddy on free.
import { zonesBase, nnodes, MAX_ORDER, NONE, pageZone, pageLruNext, pageLruPrev, pageOrder } from "./layout";
import { flagsOf, setFlagsOf, setRef, mapcountOf, pincountOf, gupRefsOf, mappingOf, indexOf, pinpageHoldsOf, clearPageFields, lruNext, lruPrev, setLruNext, setLruPrev, orderOf, setOrder, zoneOf, refOf, PGTY_buddy, PG_reserved, clearPageFields4 } from "./memmap";
import { freeDevicePage, releaseDevicePages4 } from "./device";
import { statAdd, NR_FREE_PAGES, PGALLOC_NORMAL, PGALLOC_MOVABLE, PGFREE, PGALLOC_FAIL, NR_FREE_CMA, NUMA_HIT, NUMA_MISS, NUMA_FOREIGN } from "./stat";
import {
  blockClass, classHeadAddr, classCountAddr, zoneCmaFree, setZoneCmaFree, zoneIsolatedFree, setZoneIsolatedFree, zoneSpecialBlocks,
  pageblockMigratetype, setPageblockMigratetype, PAGEBLOCK_ORDER, FL_NORMAL, FL_CMA, FL_ISOLATE, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE,
} from "./pageblock";

export const ZONE_NORMAL: u32 = 2;
export const ZONE_MOVABLE: u32 = 3;
export const ZONE_DEVICE: u32 = 4;

export const ZONE_RECORD: usize = 256;
const Z_START = 0;
const Z_END = 4;
const Z_NODE = 8;
const Z_TYPE = 12;
const Z_MANAGED = 16;
const Z_FREE = 20;
const Z_WMARK_MIN = 24;
const Z_WMARK_LOW = 28;
const Z_WMARK_HIGH = 32;
const Z_PCP_HEAD = 36;
const Z_PCP_COUNT = 40;
const Z_PGMAP_TYPE = 44;
const Z_PGMAP_OWNER = 48;
const Z_PCP_TAIL = 52;

// Per-cpu pagesets (one "cpu"): order-0 pages cached off the buddy lists. They still
// count as free. Refills split one order-6 block at once; frees beyond `high` drain a batch.
const PCP_BATCH_ORDER: u32 = 6;
const PCP_BATCH: u32 = 1 << PCP_BATCH_ORDER;
const PCP_HIGH: u32 = 6 * PCP_BATCH;
const Z_FREE_AREA = 64;
const Z_NR_FREE = 112;

@inline export function zoneBase(z: u32): usize {
  return zonesBase + <usize>z * ZONE_RECORD;
}
@inline export function zoneStart(z: u32): u32 { return load<u32>(zoneBase(z) + Z_START); }
@inline export function zoneEnd(z: u32): u32 { return load<u32>(zoneBase(z) + Z_END); }
@inline export function zoneNode(z: u32): u32 { return load<u32>(zoneBase(z) + Z_NODE); }
@inline export function zoneType(z: u32): u32 { return load<u32>(zoneBase(z) + Z_TYPE); }
@inline export function zoneFree(z: u32): u32 { return load<u32>(zoneBase(z) + Z_FREE); }
@inline export function setZoneFree(z: u32, v: u32): void { store<u32>(zoneBase(z) + Z_FREE, v); }
@inline export function zonePgmapType(z: u32): u32 { return load<u32>(zoneBase(z) + Z_PGMAP_TYPE); }
@inline export function zonePgmapOwner(z: u32): u32 { return load<u32>(zoneBase(z) + Z_PGMAP_OWNER); }
// A zone slot in use: system zones from the layout, device zones while registered.
@inline export function zoneExists(z: u32): bool { return zoneEnd(z) > zoneStart(z); }
@inline export function zoneIsDevice(z: u32): bool { return zoneType(z) == ZONE_DEVICE; }
@inline export function zoneWmarkMin(z: u32): u32 { return load<u32>(zoneBase(z) + Z_WMARK_MIN); }
@inline export function zoneWmarkLow(z: u32): u32 { return load<u32>(zoneBase(z) + Z_WMARK_LOW); }
@inline export function zoneManaged(z: u32): u32 { return load<u32>(zoneBase(z) + Z_MANAGED); }
@inline export function setZoneManaged(z: u32, v: u32): void { store<u32>(zoneBase(z) + Z_MANAGED, v); }
@inline export function pcpHead(z: u32): u32 { return load<u32>(zoneBase(z) + Z_PCP_HEAD); }
@inline export function pcpCount(z: u32): u32 { return load<u32>(zoneBase(z) + Z_PCP_COUNT); }

// The pcp list is doubly linked (lru next/prev) with a tail: pages are freed onto and
// allocated from its head (hot pages first), free_pcppages_bulk drains the tail (the coldest).
@inline export function pcpTail(z: u32): u32 { return load<u32>(zoneBase(z) + Z_PCP_TAIL); }

@inline export function pcpPush(z: u32, pfn: u32): void {
  const head = pcpHead(z);
  setLruNext(pfn, head);
  setLruPrev(pfn, NONE);
  if (head != NONE) setLruPrev(head, pfn);
  else store<u32>(zoneBase(z) + Z_PCP_TAIL, pfn);
  setOrder(pfn, 0);
  store<u32>(zoneBase(z) + Z_PCP_HEAD, pfn);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, pcpCount(z) + 1);
}

@inline export function pcpPop(z: u32): u32 {
  const pfn = pcpHead(z);
  if (pfn == NONE) return NONE;
  const next = lruNext(pfn);
  store<u32>(zoneBase(z) + Z_PCP_HEAD, next);
  if (next != NONE) setLruPrev(next, NONE);
  else store<u32>(zoneBase(z) + Z_PCP_TAIL, NONE);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, pcpCount(z) - 1);
  return pfn;
}

// pcpPush of pfn, pfn+1, pfn+2 and pfn+3 in that order, the links written four at a time.
@inline export function pcpPush4(z: u32, pfn: u32): void {
  const head = pcpHead(z);
  const at = <usize>pfn << 2;
  v128.store(pageLruNext + at, i32x4(head, pfn, pfn + 1, pfn + 2));
  v128.store(pageLruPrev + at, i32x4(pfn + 1, pfn + 2, pfn + 3, NONE));
  if (head != NONE) setLruPrev(head, pfn);
  else store<u32>(zoneBase(z) + Z_PCP_TAIL, pfn);
  store<u32>(pageOrder + <usize>pfn, 0);
  store<u32>(zoneBase(z) + Z_PCP_HEAD, pfn + 3);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, pcpCount(z) + 4);
}

// pcpPop `n` times (at most the list's count), the pages into the u32 array at `out`.
@inline export function pcpPopBulk(z: u32, n: u32, out: usize): void {
  let pfn = pcpHead(z);
  for (let k: u32 = 0; k < n; k++) {
    store<u32>(out + (<usize>k << 2), pfn);
    pfn = lruNext(pfn);
  }
  store<u32>(zoneBase(z) + Z_PCP_HEAD, pfn);
  if (pfn != NONE) setLruPrev(pfn, NONE);
  else store<u32>(zoneBase(z) + Z_PCP_TAIL, NONE);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, pcpCount(z) - n);
}

@inline function pcpPopTail(z: u32): u32 {
  const pfn = pcpTail(z);
  if (pfn == NONE) return NONE;
  const prev = lruPrev(pfn);
  store<u32>(zoneBase(z) + Z_PCP_TAIL, prev);
  if (prev != NONE) setLruNext(prev, NONE);
  else store<u32>(zoneBase(z) + Z_PCP_HEAD, NONE);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, pcpCount(z) - 1);
  return pfn;
}

// rmqueue_bulk: a batch of order-0 pages from the buddy lists onto the pcp list. Only
// FL_NORMAL pages go there: the pcp list serves unmovable allocations too.
function pcpRefill(z: u32): void {
  const block = rmqueue(z, PCP_BATCH_ORDER, FL_NORMAL);
  if (block != NONE) {
    for (let i = PCP_BATCH; i > 0; i--) pcpPush(z, block + i - 1);
    return;
  }
  for (let i: u32 = 0; i < PCP_BATCH; i++) {
    const pfn = rmqueue(z, 0, FL_NORMAL);
    if (pfn == NONE) return;
    pcpPush(z, pfn);
  }
}

// drain_zone_pages: every cached page back to the buddy lists.
export function drainZone(z: u32): void {
  for (let pfn = pcpPopTail(z); pfn != NONE; pfn = pcpPopTail(z)) freeToBuddy(z, pfn, 0);
}

@inline function setFreeAreaHead(z: u32, order: u32, pfn: u32): void {
  store<u32>(zoneBase(z) + Z_FREE_AREA + (<usize>order << 2), pfn);
}
@inline function setFreeAreaCount(z: u32, order: u32, n: u32): void {
  store<u32>(zoneBase(z) + Z_NR_FREE + (<usize>order << 2), n);
}

// The free lists of a class (assembly/pageblock.ts): FL_NORMAL's in the zone record, the others beside it.
@inline function listHeadAddr(z: u32, cls: u32, order: u32): usize {
  return cls == FL_NORMAL ? zoneBase(z) + Z_FREE_AREA + (<usize>order << 2) : classHeadAddr(z, cls, order);
}
@inline function listCountAddr(z: u32, cls: u32, order: u32): usize {
  return cls == FL_NORMAL ? zoneBase(z) + Z_NR_FREE + (<usize>order << 2) : classCountAddr(z, cls, order);
}
@inline export function freeListHead(z: u32, cls: u32, order: u32): u32 {
  return load<u32>(listHeadAddr(z, cls, order));
}
@inline export function freeListCount(z: u32, cls: u32, order: u32): u32 {
  return load<u32>(listCountAddr(z, cls, order));
}

// Free pages entering (n > 0) or leaving (n < 0) a class's lists. Isolated pages are not
// free memory (account_freepages); CMA pages are, and are counted apart as well.
export function accountFree(z: u32, cls: u32, n: i32): void {
  if (cls == FL_ISOLATE) {
    setZoneIsolatedFree(z, zoneIsolatedFree(z) + n);
    return;
  }
  setZoneFree(z, zoneFree(z) + n);
  statAdd(NR_FREE_PAGES, <i64>n);
  if (cls == FL_CMA) {
    setZoneCmaFree(z, zoneCmaFree(z) + n);
    statAdd(NR_FREE_CMA, <i64>n);
  }
}

@inline export function pageIsBuddy(pfn: u32): bool {
  return (flagsOf(pfn) & (1 << PGTY_buddy)) != 0;
}

// A block onto the lists of class `cls`, which must be its pageblock's class (no accounting).
export function addToFreeList(z: u32, pfn: u32, order: u32, cls: u32): void {
  const headAt = listHeadAddr(z, cls, order);
  const head = load<u32>(headAt);
  setLruNext(pfn, head);
  setLruPrev(pfn, NONE);
  if (head != NONE) setLruPrev(head, pfn);
  store<u32>(headAt, pfn);
  const countAt = listCountAddr(z, cls, order);
  store<u32>(countAt, load<u32>(countAt) + 1);
  setOrder(pfn, order);
  setFlagsOf(pfn, flagsOf(pfn) | (1 << PGTY_buddy));
}

export function delFromFreeList(z: u32, pfn: u32, order: u32, cls: u32): void {
  const next = lruNext(pfn);
  const prev = lruPrev(pfn);
  if (prev != NONE) setLruNext(prev, next);
  else store<u32>(listHeadAddr(z, cls, order), next);
  if (next != NONE) setLruPrev(next, prev);
  setLruNext(pfn, NONE);
  setLruPrev(pfn, NONE);
  const countAt = listCountAddr(z, cls, order);
  store<u32>(countAt, load<u32>(countAt) - 1);
  setFlagsOf(pfn, flagsOf(pfn) & ~(1 << PGTY_buddy));
}

// Empty free lists (buddy and pcp) for zone z, its pages tagged with its id.
export function zoneListsInit(z: u32): void {
  memory.fill(pageZone + <usize>zoneStart(z), <u8>z, <usize>(zoneEnd(z) - zoneStart(z)));
  for (let o: u32 = 0; o <= MAX_ORDER; o++) {
    setFreeAreaHead(z, o, NONE);
    setFreeAreaCount(z, o, 0);
    for (let cls = FL_CMA; cls <= FL_ISOLATE; cls++) {
      store<u32>(classHeadAddr(z, cls, o), NONE);
      store<u32>(classCountAddr(z, cls, o), 0);
    }
  }
  setZoneFree(z, 0);
  setZoneCmaFree(z, 0);
  setZoneIsolatedFree(z, 0);
  store<u32>(zoneBase(z) + Z_PCP_HEAD, NONE);
  store<u32>(zoneBase(z) + Z_PCP_TAIL, NONE);
  store<u32>(zoneBase(z) + Z_PCP_COUNT, 0);
}

// Sets up one zone: tags its pages with the zone id and frees every page not
// reserved, in the largest aligned blocks that fit (like memblock_free_all). Pageblock
// types are set already: no block spans two classes.
export function zoneInit(z: u32): void {
  const start = zoneStart(z);
  const end = zoneEnd(z);
  zoneListsInit(z);
  let pfn = start;
  let managed: u32 = 0;
  while (pfn < end) {
    if (flagsOf(pfn) & (1 << PG_reserved)) {
      pfn++;
      continue;
    }
    let order: u32 = MAX_ORDER;
    while (order > 0 && ((pfn & ((1 << order) - 1)) != 0 || pfn + (1 << order) > end || !rangeFree(pfn, 1 << order) ||
      (order > PAGEBLOCK_ORDER && blockClass(pfn) != blockClass(pfn + (1 << order) - 1)))) order--;
    const cls = blockClass(pfn);
    addToFreeList(z, pfn, order, cls);
    accountFree(z, cls, 1 << order);
    managed += 1 << order;
    pfn += 1 << order;
  }
  store<u32>(zoneBase(z) + Z_MANAGED, managed);
}

function rangeFree(pfn: u32, n: u32): bool {
  for (let i: u32 = 0; i < n; i++) if (flagsOf(pfn + i) & (1 << PG_reserved)) return false;
  return true;
}

// __rmqueue_smallest + expand: take the smallest block of at least `order` from the
// lists of class `cls`, give the upper halves back to that class's lower-order lists.
function rmqueue(z: u32, order: u32, cls: u32): u32 {
  for (let cur = order; cur <= MAX_ORDER; cur++) {
    const pfn = freeListHead(z, cls, cur);
    if (pfn == NONE) continue;
    delFromFreeList(z, pfn, cur, cls);
    let high = cur;
    while (high > order) {
      high--;
      addToFreeList(z, pfn + (1 << high), high, cls);
    }
    return pfn;
  }
  return NONE;
}

// Free pages keep every field cleared (freePages does it), so a new page only needs its
// first reference; debug builds verify the rest.
@inline function prepNewPage(pfn: u32, order: u32): void {
  assert(flagsOf(pfn) == 0 && refOf(pfn) == 0 && mapcountOf(pfn) == 0 && pincountOf(pfn) == 0 && gupRefsOf(pfn) == 0, "bad free page");
  assert(mappingOf(pfn) == 0 && indexOf(pfn) == 0 && pinpageHoldsOf(pfn) == 0, "bad free page");
  setRef(pfn, 1);
  setOrder(pfn, order);
  statAdd(NR_FREE_PAGES, -(<i64>1 << order));
}

// Allocation from one zone, honouring the min watermark (ALLOC_WMARK_MIN). Only movable
// allocations (ALLOC_CMA) may use CMA pages, so for the others those are not free memory.
// The usual user page: order 0, movable, off a filled pcp list while CMA is not due (the
// watermark admits it). NONE when any of that does not hold: allocFromZone decides then.
@inline export function pcpAllocMovable(z: u32): u32 {
  const free = zoneFree(z);
  if (zoneCmaFree(z) > (free >> 1) || free <= zoneWmarkMin(z)) return NONE;
  const pfn = pcpPop(z);
  if (pfn == NONE) return NONE;
  setZoneFree(z, free - 1);
  prepNewPage(pfn, 0);
  statAdd(zoneType(z) == ZONE_MOVABLE ? PGALLOC_MOVABLE : PGALLOC_NORMAL, 1);
  return pfn;
}

// A movable page of the local node's first zone off its pcp list, as allocPages(node, 0,
// true) would hand it out (and count it); NONE sends the caller down the full path.
export function allocLocalPcp(node: u32): u32 {
  const z = load<u32>(zonelist(node, true));
  const pfn = pcpAllocMovable(z);
  if (pfn != NONE) statAdd(NUMA_HIT, 1);
  return pfn;
}

export function allocFromZone(z: u32, order: u32, movable: bool = true): u32 {
  const n: u32 = 1 << order;
  if (order == 0 && movable) {
    const fast = pcpAllocMovable(z);
    if (fast != NONE) return fast;
  }
  const free = zoneFree(z);
  const cma = zoneCmaFree(z);
  const usable = movable ? free : free - cma;
  if (usable < n || usable - n < zoneWmarkMin(z)) return NONE;
  let pfn: u32 = NONE;
  let cls = FL_NORMAL;
  // __rmqueue: movable allocations use CMA first while it holds over half the free pages.
  if (movable && cma > (free >> 1)) {
    pfn = rmqueue(z, order, FL_CMA);
    cls = FL_CMA;
  }
  if (pfn == NONE) {
    cls = FL_NORMAL;
    if (order == 0) {
      if (pcpHead(z) == NONE) pcpRefill(z);
      pfn = pcpPop(z);
    } else {
      pfn = rmqueue(z, order, FL_NORMAL);
    }
    if (pfn == NONE && movable && cma != 0) {
      pfn = rmqueue(z, order, FL_CMA);
      cls = FL_CMA;
    }
  }
  if (pfn == NONE) return NONE;
  setZoneFree(z, free - n);
  if (cls == FL_CMA) {
    setZoneCmaFree(z, cma - n);
    statAdd(NR_FREE_CMA, -(<i64>n));
  } else if (!movable) {
    markUnmovable(pfn, n);
  }
  prepNewPage(pfn, order);
  statAdd(zoneType(z) == ZONE_MOVABLE ? PGALLOC_MOVABLE : PGALLOC_NORMAL, <i64>n);
  return pfn;
}

// An unmovable allocation claims a movable pageblock (steal_suitable_fallback, whole blocks
// only in effect): compaction no longer picks it as a target.
function markUnmovable(pfn: u32, n: u32): void {
  for (let p = pfn; p < pfn + n; p += 1 << PAGEBLOCK_ORDER) {
    if (pageblockMigratetype(p) == MIGRATE_MOVABLE) setPageblockMigratetype(p, MIGRATE_UNMOVABLE);
  }
}

// alloc_pages_bulk from one zone: up to `want` order-0 pages into the u32 array at `out`,
// the pages and the lists left behind exactly those of as many allocFromZone calls (the
// watermark admits free - min of them). A refill's block is handed out straight, only its
// untaken tail goes onto the pcp list, in the order pcpRefill would leave it.
function allocBulkFromZone(z: u32, want: u32, out: usize, movable: bool): u32 {
  // With CMA pages free, or for unmovable pages, each page takes allocFromZone's way.
  if (!movable || zoneCmaFree(z) != 0) {
    let got: u32 = 0;
    while (got < want) {
      const pfn = allocFromZone(z, 0, movable);
      if (pfn == NONE) break;
      store<u32>(out + (<usize>got << 2), pfn);
      got++;
    }
    return got;
  }
  const free = zoneFree(z);
  const min = zoneWmarkMin(z);
  if (free <= min) return 0;
  const n = free - min < want ? free - min : want;
  let i: u32 = 0;
  while (i < n) {
    if (pcpHead(z) == NONE) {
      const block = rmqueue(z, PCP_BATCH_ORDER, FL_NORMAL);
      if (block == NONE) {
        pcpRefill(z);
        if (pcpHead(z) == NONE) break;
        continue;
      }
      const take = n - i < PCP_BATCH ? n - i : PCP_BATCH;
      for (let k = PCP_BATCH; k > take; k--) pcpPush(z, block + k - 1);
      for (let k: u32 = 0; k < take; k++) {
        store<u32>(out + (<usize>(i + k) << 2), block + k);
        prepBulkPage(block + k);
      }
      i += take;
      continue;
    }
    // The pcp list's pages, as many as wanted, at once.
    const take = n - i < pcpCount(z) ? n - i : pcpCount(z);
    const at = out + (<usize>i << 2);
    pcpPopBulk(z, take, at);
    for (let k: u32 = 0; k < take; k++) prepBulkPage(load<u32>(at + (<usize>k << 2)));
    i += take;
  }
  setZoneFree(z, free - i);
  statAdd(NR_FREE_PAGES, -(<i64>i));
  statAdd(zoneType(z) == ZONE_MOVABLE ? PGALLOC_MOVABLE : PGALLOC_NORMAL, <i64>i);
  return i;
}

// prepNewPage for an order-0 page of a bulk allocation (the counters are added once).
@inline function prepBulkPage(pfn: u32): void {
  assert(flagsOf(pfn) == 0 && refOf(pfn) == 0 && mapcountOf(pfn) == 0 && pincountOf(pfn) == 0 && gupRefsOf(pfn) == 0, "bad free page");
  assert(mappingOf(pfn) == 0 && indexOf(pfn) == 0 && pinpageHoldsOf(pfn) == 0, "bad free page");
  setRef(pfn, 1);
  setOrder(pfn, 0);
}

// Zonelists (build_zonelists), built once at init: for each node and each kind of
// allocation, the zones to try in order — the local node first, highest usable zone
// first, then the other nodes. Entries end with NONE.
const MAX_NODES: u32 = 16;
export const MAX_ZONES: u32 = 64;
const ZONELIST_LEN: u32 = MAX_ZONES + 1;
const zonelists: usize = memory.data(<i32>(MAX_NODES * 2 * ZONELIST_LEN * 4), 16);

@inline export function zonelist(node: u32, movable: bool): usize {
  return zonelists + <usize>((node * 2 + (movable ? 1 : 0)) * ZONELIST_LEN) * 4;
}

export function buildZonelists(): void {
  for (let node: u32 = 0; node < nnodes; node++) {
    for (let kind = 0; kind < 2; kind++) {
      const movable = kind == 1;
      const list = zonelist(node, movable);
      let len: u32 = 0;
      for (let i: u32 = 0; i < nnodes; i++) {
        const n = (node + i) % nnodes;
        for (let pass = 0; pass < 2; pass++) {
          const want = pass == 0 ? ZONE_MOVABLE : ZONE_NORMAL;
          if (want == ZONE_MOVABLE && !movable) continue;
          for (let z: u32 = 0; z < MAX_ZONES; z++) {
            if (zoneExists(z) && zoneNode(z) == n && zoneType(z) == want) {
              store<u32>(list + (<usize>len << 2), z);
              len++;
            }
          }
        }
      }
      store<u32>(list + (<usize>len << 2), NONE);
    }
  }
}

// zone_statistics: numa_hit for a page from the preferred zone's node, else numa_miss (and
// numa_foreign for the node that was preferred).
@inline export function zoneStatistics(preferred: u32, z: u32, n: i64): void {
  if (z == preferred || zoneNode(z) == zoneNode(preferred)) {
    statAdd(NUMA_HIT, n);
  } else {
    statAdd(NUMA_MISS, n);
    statAdd(NUMA_FOREIGN, n);
  }
}

// Allocation for a movable (GFP_HIGHUSER_MOVABLE) or a kernel request from `node`'s zonelist.
export function allocPages(node: u32, order: u32, movable: bool): u32 {
  let p = zonelist(node, movable);
  const preferred = load<u32>(p);
  for (let z = preferred; z != NONE; z = load<u32>(p)) {
    const pfn = allocFromZone(z, order, movable);
    if (pfn != NONE) {
      zoneStatistics(preferred, z, <i64>1 << order);
      return pfn;
    }
    p += 4;
  }
  statAdd(PGALLOC_FAIL, 1);
  return NONE;
}

// alloc_pages_bulk: up to `want` order-0 pages for `node` into the u32 array at `out`, the
// same pages in the same order as `want` calls of allocPages(node, 0, movable).
export function allocPagesBulk(node: u32, movable: bool, want: u32, out: usize): u32 {
  let got: u32 = 0;
  let p = zonelist(node, movable);
  const preferred = load<u32>(p);
  for (let z = preferred; z != NONE && got < want; z = load<u32>(p)) {
    const n = allocBulkFromZone(z, want - got, out + (<usize>got << 2), movable);
    if (n > 0) zoneStatistics(preferred, z, <i64>n);
    got += n;
    p += 4;
  }
  if (got < want) statAdd(PGALLOC_FAIL, <i64>(want - got));
  return got;
}

// Frees a block: order-0 pages go to the pcp list, larger blocks straight to the buddy lists.
export function freePages(pfn: u32, order: u32): void {
  const z = zoneOf(pfn);
  if (zoneIsDevice(z)) {
    freeDevicePage(z, pfn);
    return;
  }
  const n: u32 = 1 << order;
  clearPageFields(pfn);
  statAdd(PGFREE, <i64>n);
  // CMA and isolated pageblocks' pages skip the pcp list for their own lists.
  if (zoneSpecialBlocks(z) != 0) {
    const cls = blockClass(pfn);
    if (cls != FL_NORMAL) {
      accountFree(z, cls, n);
      freeToBuddy(z, pfn, order);
      return;
    }
  }
  setZoneFree(z, zoneFree(z) + n);
  statAdd(NR_FREE_PAGES, <i64>n);
  if (order != 0) {
    freeToBuddy(z, pfn, order);
    return;
  }
  pcpPush(z, pfn);
  if (pcpCount(z) > PCP_HIGH) pcpDrainBatch(z);
}

// freePages(pfn, orderOf(pfn)) inline for the usual page: a device page, or an order-0 page
// of a system zone without CMA or isolated pageblocks (onto the pcp list).
@inline export function freePage(pfn: u32): void {
  const z = zoneOf(pfn);
  if (zoneIsDevice(z)) {
    freeDevicePage(z, pfn);
    return;
  }
  if (zoneSpecialBlocks(z) != 0 || orderOf(pfn) != 0) {
    freePages(pfn, orderOf(pfn));
    return;
  }
  freeToPcp(z, pfn);
}

// An order-0 page of a system zone of the general class onto the zone's pcp list.
@inline function freeToPcp(z: u32, pfn: u32): void {
  clearPageFields(pfn);
  statAdd(PGFREE, 1);
  setZoneFree(z, zoneFree(z) + 1);
  statAdd(NR_FREE_PAGES, 1);
  pcpPush(z, pfn);
  if (pcpCount(z) > PCP_HIGH) pcpDrainBatch(z);
}

// freePage for many pages in a row (a migration's old pages): a zone's facts are looked up
// again only when the zone changes. freePagesCachedReset() starts a row.
let cachedFreeZone: u32 = NONE;
let cachedFreeKind: u32 = 0;
const FREE_KIND_PCP: u32 = 0;
const FREE_KIND_DEVICE: u32 = 1;
const FREE_KIND_OTHER: u32 = 2;

export function freePagesCachedReset(): void {
  cachedFreeZone = NONE;
}

// How pages of zone `z` are freed, looked up again only when the zone changes.
@inline function freeKindOf(z: u32): u32 {
  if (z != cachedFreeZone) {
    cachedFreeZone = z;
    cachedFreeKind = zoneIsDevice(z) ? FREE_KIND_DEVICE : zoneSpecialBlocks(z) != 0 ? FREE_KIND_OTHER : FREE_KIND_PCP;
  }
  return cachedFreeKind;
}

@inline export function freePageCached(pfn: u32): void {
  const z = zoneOf(pfn);
  const kind = freeKindOf(z);
  if (kind == FREE_KIND_DEVICE) {
    freeDevicePage(z, pfn);
  } else if (kind == FREE_KIND_PCP && orderOf(pfn) == 0) {
    freeToPcp(z, pfn);
  } else {
    freePages(pfn, orderOf(pfn));
  }
}

// freePageCached for the four consecutive order-0 pages from `pfn`, of one zone, each
// holding nothing but its last reference, flags, mapping and index: the fields are
// cleared four at a time, the pages leave as four calls would leave them.
@inline export function freePagesCached4(pfn: u32): void {
  const z = zoneOf(pfn);
  const kind = freeKindOf(z);
  if (kind == FREE_KIND_OTHER) {
    for (let k: u32 = 0; k < 4; k++) freePages(pfn + k, 0);
    return;
  }
  clearPageFields4(pfn);
  if (kind == FREE_KIND_DEVICE) {
    releaseDevicePages4(z, pfn);
    return;
  }
  statAdd(PGFREE, 4);
  setZoneFree(z, zoneFree(z) + 4);
  statAdd(NR_FREE_PAGES, 4);
  // No drain falls between the four pushes unless the list reaches its high mark.
  if (pcpCount(z) + 4 <= PCP_HIGH) {
    pcpPush4(z, pfn);
    return;
  }
  for (let k: u32 = 0; k < 4; k++) {
    pcpPush(z, pfn + k);
    if (pcpCount(z) > PCP_HIGH) pcpDrainBatch(z);
  }
}

// free_pcppages_bulk: the PCP_BATCH pages at the tail of the pcp list (the coldest) go to
// the buddy lists, run by run: pages freed in pfn order sit there as runs of consecutive pfns.
function pcpDrainBatch(z: u32): void {
  let left = PCP_BATCH;
  while (left > 0) {
    const first = pcpPopTail(z);
    const step: u32 = pcpTail(z) == first - 1 ? -1 : 1;
    let last = first;
    let n: u32 = 1;
    while (n < left && pcpTail(z) == last + step) {
      last = pcpPopTail(z);
      n++;
    }
    if (step == 1) freeRunAscending(z, first, n);
    else freeRunDescending(z, last, n);
    left -= n;
  }
}

// Freeing the pages of an aligned block one by one, in either direction, merges every
// partial block inside it away (their buddies are inside it too) and ends with the whole
// block freed at its order. So a run freed page by page is its aligned blocks freed in
// the same direction, each at its order: the same free lists, with fewer steps.
function freeRunAscending(z: u32, lo: u32, n: u32): void {
  const end = lo + n;
  for (let b = lo; b < end; ) {
    const o = runBlockOrder(b, end - b);
    freeToBuddy(z, b, o);
    b += 1 << o;
  }
}

function freeRunDescending(z: u32, lo: u32, n: u32): void {
  for (let e = lo + n; e > lo; ) {
    const o = runBlockOrder(e, e - lo);
    e -= 1 << o;
    freeToBuddy(z, e, o);
  }
}

// The largest order of a block that `edge` (a block's start, or its end) is aligned to
// and whose size fits in `room`.
@inline function runBlockOrder(edge: u32, room: u32): u32 {
  const o = min(<u32>ctz(edge), 31 - <u32>clz(room));
  return min(o, MAX_ORDER);
}

// __free_one_page: merge with free buddies of equal order inside the zone, onto the lists
// of the block's class; blocks of different classes never merge. A whole free pageblock
// of the general class is movable again.
export function freeToBuddy(z: u32, pfn: u32, order: u32): void {
  const start = zoneStart(z);
  const end = zoneEnd(z);
  const cls = blockClass(pfn);
  while (order < MAX_ORDER) {
    const buddy = pfn ^ (1 << order);
    if (buddy < start || buddy >= end || !pageIsBuddy(buddy) || orderOf(buddy) != order) break;
    if (order >= PAGEBLOCK_ORDER && blockClass(buddy) != cls) break;
    delFromFreeList(z, buddy, order, cls);
    pfn = pfn < buddy ? pfn : buddy;
    order++;
  }
  if (order >= PAGEBLOCK_ORDER && cls == FL_NORMAL) {
    for (let p = pfn; p < pfn + (1 << order); p += 1 << PAGEBLOCK_ORDER) setPageblockMigratetype(p, MIGRATE_MOVABLE);
  }
  addToFreeList(z, pfn, order, cls);
}

// put_page for an order-0 page: frees it when the last reference goes.
export function putPage(pfn: u32): void {
  const r = refOf(pfn) - 1;
  assert(r >= 0, "put_page on a free page");
  if (r == 0) freePages(pfn, orderOf(pfn));
  else setRef(pfn, r);
}

// Free lists are LIFO, so pages freed in ascending order come back descending. Each
// descending run of consecutive pfns in the u32 list at `pfns` is handed out ascending
// instead, which keeps consecutive sources with consecutive destinations for a run copy.
export function ascendRuns(pfns: usize, n: u32): void {
  let i: u32 = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && load<u32>(pfns + (<usize>j << 2)) + 1 == load<u32>(pfns + (<usize>(j - 1) << 2))) j++;
    if (j - i > 1) {
      const first = load<u32>(pfns + (<usize>(j - 1) << 2));
      for (let k = i; k < j; k++) store<u32>(pfns + (<usize>k << 2), first + (k - i));
    }
    i = j;
  }
}
