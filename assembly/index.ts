// The Wasm surface. Addresses cross the boundary as page numbers in f64 (exact to
// 2^53), never as i64; results that do not fit a return value go to the result block.
import { LAYOUT, readLayout, nzones, maxMms, maxMappings, nframes, resultBase, NONE } from "./layout";
import { setFlag, setRef, PG_reserved } from "./memmap";
import { zoneInit, buildZonelists, drainZone } from "./alloc";
import { tablesInit, allocPageTable, freePageTable, tablesFree, tableAddr, entryTable, entryPresent, walkPte } from "./pagetable";
import { mmInit, mmReset, mmAlive, setMmNvmas, mmPgd, mmRssAnon, mmRssShmem, vmaAddr } from "./mm";
import { rangeOp, zapRange, moveRange, rangeCount, rangeWritable, rangePfnSum, rangeFailed, RANGE_CHANGE_PROT, RANGE_COPY, RANGE_MADV_FREE, RANGE_COUNT } from "./ptrange";
import { accessBatch } from "./access";
import { handleMmFault } from "./fault";
import { mappingOpen, mappingClose, mappingForEach, mappingErase } from "./mapping";
import { putPage } from "./alloc";
import { checkMachine } from "./check";
import { statAdd, NR_SHMEM } from "./stat";
import { ZERO_PFN } from "./rmap";
import { reclaimLazyfree } from "./reclaim";

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

export function access(mm: u32, n: u32): u32 {
  return accessBatch(mm, n);
}

// Faults in [vpn, vpn+n) for write or read without touching contents (MAP_POPULATE).
export function populate(mm: u32, vpn: f64, n: f64, write: bool): f64 {
  const start = <u64>vpn;
  const end = start + <u64>n;
  for (let v = start; v < end; v++) {
    const r = handleMmFault(mm, v, write);
    if (r != 0) {
      store<u32>(resultBase + 4, r);
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

// Number of page-table pages of `mm` (what a full copy of it could need).
export function countTables(mm: u32): u32 {
  const pgd = mmPgd(mm);
  let n: u32 = 1;
  for (let a: u32 = 0; a < 512; a++) {
    const ae = load<u64>(tableAddr(pgd) + (<usize>a << 3));
    if (!entryPresent(ae)) continue;
    n++;
    const pud = entryTable(ae);
    for (let b: u32 = 0; b < 512; b++) {
      const be = load<u64>(tableAddr(pud) + (<usize>b << 3));
      if (!entryPresent(be)) continue;
      n++;
      const pmd = entryTable(be);
      for (let c: u32 = 0; c < 512; c++) {
        if (entryPresent(load<u64>(tableAddr(pmd) + (<usize>c << 3)))) n++;
      }
    }
  }
  return n;
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
  mappingOpen(id, sizePages);
}

let truncId: u32 = 0;
function dropCached(slot: usize, pfn: u32, index: u64): void {
  mappingErase(slot, truncId);
  statAdd(NR_SHMEM, -1);
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
  for (let z: u32 = 0; z < nzones; z++) drainZone(z);
}

export function check(): u32 {
  return checkMachine();
}

export function reclaim(n: u32): u32 {
  return reclaimLazyfree(n);
}

export function framesTotal(): u32 {
  return nframes;
}

export function mappingsMax(): u32 {
  return maxMappings;
}
