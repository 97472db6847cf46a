// Operations over a range of PTEs (zap_page_range, change_protection, copy_page_range,
// move_page_tables, madvise_free, the lazyfree part of reclaim), one walker for all:
// missing tables are skipped a whole level at a time.
import { allocInjected } from "./inject";
import { NONE } from "./layout";
import { testFlag, setFlag, clearFlag, refOf, mapcountOf, getPage, pageIsAnon, folioMaybeDmaPinned, PG_anon_exclusive, PG_dirty, PG_swapbacked, PG_mlocked } from "./memmap";
import { walkPte, freeEmptyTables, pteIndex, pteTableBase, pteTableEnd } from "./pagetable";
import {
  _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RO_MIGRATION, _PAGE_RO_MIGRATION_WRITE,
  ptePfn, ptepresent, pteSpecial, pfnPte, userPte, isSwapPte, swpType, swpOffset, SWP_TYPE_MASK, SWP_TYPE_SHIFT,
  SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE, SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE,
} from "./pte";
import { mmPgd, mmNode, mmHasPinned, findVma, vmaFlags, vmaBacking, linearIndex, VM_WRITE, VM_SHARED, VM_ACCESS_FLAGS } from "./mm";
import { zapPage, pageDupRmap, pageAddNewAnonRmap } from "./rmap";
import { allocPages } from "./alloc";
import { copyFrame } from "./content";
import { statAdd, PGLAZYFREE, PGLAZYFREED } from "./stat";
import { mlockPage, munlockPage } from "./mlock";

export const RANGE_ZAP: u32 = 0;
export const RANGE_CHANGE_PROT: u32 = 1;
export const RANGE_COPY: u32 = 2;
export const RANGE_MOVE: u32 = 3;
export const RANGE_MADV_FREE: u32 = 4;
export const RANGE_RECLAIM_LAZYFREE: u32 = 5;
export const RANGE_COUNT: u32 = 6;
export const RANGE_COUNT_TABLES: u32 = 7;
export const RANGE_MLOCK: u32 = 8;
export const RANGE_MUNLOCK: u32 = 9;

// Results of the last range operation.
export let rangeCount: u32 = 0;
export let rangeWritable: u32 = 0;
export let rangePfnSum: u64 = 0;
export let rangeFailed: bool = false;
export let lazyfreePending: u32 = 0;
let reclaimTarget: u32 = 0;

// Runs `op` over every PTE table that covers [start, end) in `mm`.
export function rangeOp(mm: u32, start: u64, end: u64, op: u32, arg: u32, delta: i64): void {
  rangeCount = 0;
  rangeWritable = 0;
  rangePfnSum = 0;
  rangeFailed = false;
  const pgd = mmPgd(mm);
  let v = start;
  while (v < end) {
    const table = pteTableBase(pgd, v);
    const stop = pteTableEnd < end ? pteTableEnd : end;
    if (table != 0) {
      // Each PTE table counts with the pmd and pud above it: an upper bound for a copy.
      if (op == RANGE_COUNT_TABLES) {
        rangeCount += 3;
        v = stop;
        continue;
      }
      pteTableOp(op, mm, table, v, stop, arg, delta);
      if (rangeFailed || (op == RANGE_RECLAIM_LAZYFREE && rangeCount >= reclaimTarget)) return;
    }
    v = stop;
  }
}

function pteTableOp(op: u32, mm: u32, table: usize, v: u64, stop: u64, arg: u32, delta: i64): void {
  let dst: usize = 0;
  if (op == RANGE_COPY) {
    dst = walkPte(mmPgd(arg), v, true);
    if (dst == 0) { rangeFailed = true; return; }
  }
  for (; v < stop; v++) {
    const ptep = table + (<usize>pteIndex(v) << 3);
    const pte = load<u64>(ptep);
    if (pte == 0) { dst += 8; continue; }
    const mapped = ptepresent(pte) && !pteSpecial(pte);
    const pfn = ptePfn(pte);
    switch (op) {
      case RANGE_ZAP: {
        // Device entries hold a mapping like a PTE; a migration entry's page was unmapped already.
        if (mapped || isDeviceEntry(pte)) zapPage(pfn, mm);
        store<u64>(ptep, 0);
        break;
      }
      case RANGE_CHANGE_PROT: {
        if (isSwapPte(pte)) {
          // Write permission leaves writable device-private and migration entries too.
          if ((arg & VM_WRITE) == 0) {
            const t = swpType(pte);
            if (t == SWP_DEVICE_WRITE) store<u64>(ptep, swpSetType(pte, SWP_DEVICE_READ));
            else if (t == SWP_MIGRATION_WRITE) store<u64>(ptep, swpSetType(pte, testFlag(pfn, PG_anon_exclusive) ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ));
          }
          break;
        }
        let n: u64;
        if ((arg & VM_ACCESS_FLAGS) == 0) {
          n = (pte & ~(_PAGE_PRESENT | _PAGE_RW)) | _PAGE_PROTNONE;
        } else {
          n = (pte & ~_PAGE_PROTNONE) | _PAGE_PRESENT;
          if ((arg & VM_WRITE) == 0) n &= ~_PAGE_RW;
          // can_change_pte_writable; a file page keeps write notification until it is dirty.
          else if (mapped && ((arg & VM_SHARED) != 0 ? pageIsAnon(pfn) || testFlag(pfn, PG_swapbacked) || (pte & _PAGE_DIRTY) != 0 : testFlag(pfn, PG_anon_exclusive))) n |= _PAGE_RW;
        }
        // Under a read-only migration the PTE stays write-protected: what changes is the
        // permission it gets back at the migration's end.
        if ((pte & _PAGE_RO_MIGRATION) != 0) n = (n & _PAGE_RW) != 0 ? (n & ~_PAGE_RW) | _PAGE_RO_MIGRATION_WRITE : n & ~_PAGE_RO_MIGRATION_WRITE;
        store<u64>(ptep, n);
        break;
      }
      case RANGE_COPY: {
        if (isSwapPte(pte)) {
          const t = swpType(pte);
          if (t != SWP_DEVICE_EXCLUSIVE || !pageNeedsCowForDma(mm, swpOffset(pte))) {
            store<u64>(dst, copyNonpresentPte(ptep, pte, arg));
            break;
          }
          // A maybe-pinned page under a device-exclusive entry: restored, then copied as below.
          restoreExclusiveForFork(mm, v, ptep, pte);
        }
        // copy_present_page: a maybe-pinned exclusive page stays the parent's, mapped as it
        // was; the child gets its own copy now, so a later COW cannot take the pinned page away.
        if ((mapped || isSwapPte(pte)) && pageNeedsCowForDma(mm, pfn)) {
          if (!copyPinnedPage(arg, v, pfn, dst)) { rangeFailed = true; return; }
          break;
        }
        // copy_present_pte for a private mapping: write-protect both sides (and a read-only
        // migration gives neither side its write permission back).
        let child = pte & ~_PAGE_ACCESSED;
        if (mapped) {
          if (pte & (_PAGE_RW | _PAGE_RO_MIGRATION_WRITE)) {
            store<u64>(ptep, pte & ~(_PAGE_RW | _PAGE_RO_MIGRATION_WRITE));
            child &= ~(_PAGE_RW | _PAGE_RO_MIGRATION_WRITE);
          }
          clearFlag(pfn, PG_anon_exclusive);
          getPage(pfn);
          pageDupRmap(pfn, arg);
        }
        store<u64>(dst, child);
        break;
      }
      case RANGE_MOVE: {
        const to = walkPte(mmPgd(mm), <u64>(<i64>v + delta), true);
        if (to == 0) { rangeFailed = true; return; }
        store<u64>(to, pte);
        store<u64>(ptep, 0);
        break;
      }
      case RANGE_MADV_FREE: {
        if (!mapped || isSwapPte(pte) || !pageIsAnon(pfn) || mapcountOf(pfn) != 1 || refOf(pfn) != 1) break;
        store<u64>(ptep, pte & ~(_PAGE_DIRTY | _PAGE_ACCESSED));
        clearFlag(pfn, PG_dirty);
        if (testFlag(pfn, PG_swapbacked)) {
          clearFlag(pfn, PG_swapbacked);
          statAdd(PGLAZYFREE, 1);
          lazyfreePending++;
        }
        break;
      }
      case RANGE_RECLAIM_LAZYFREE: {
        if (!mapped || isSwapPte(pte) || !pageIsAnon(pfn) || testFlag(pfn, PG_swapbacked)) break;
        if ((pte & _PAGE_DIRTY) != 0 || testFlag(pfn, PG_dirty)) {
          // Written again since MADV_FREE: the contents matter once more.
          setFlag(pfn, PG_swapbacked);
          if (lazyfreePending > 0) lazyfreePending--;
          break;
        }
        // An mlocked page is on the unevictable list, where reclaim never looks.
        if (mapcountOf(pfn) != 1 || refOf(pfn) != 1 || testFlag(pfn, PG_mlocked)) break;
        store<u64>(ptep, 0);
        zapPage(pfn, mm);
        if (lazyfreePending > 0) lazyfreePending--;
        statAdd(PGLAZYFREED, 1);
        rangeCount++;
        if (rangeCount >= reclaimTarget) return;
        break;
      }
      case RANGE_MLOCK:
      case RANGE_MUNLOCK: {
        // mlock_pte_range: present pages (and device-exclusive entries, which still map
        // their system page) of a range whose VM_LOCKED just changed.
        if (!mapped && !(isSwapPte(pte) && swpType(pte) == SWP_DEVICE_EXCLUSIVE)) break;
        if (op == RANGE_MLOCK) mlockPage(pfn);
        else munlockPage(pfn, true);
        break;
      }
      case RANGE_COUNT: {
        if (pte & _PAGE_PRESENT) {
          rangeCount++;
          if (pte & _PAGE_RW) rangeWritable++;
          rangePfnSum += <u64>pfn;
        }
        break;
      }
    }
    dst += 8;
  }
}

// page_needs_cow_for_dma for a private mapping: an exclusive anon page of an mm that has
// pinned pages (MMF_HAS_PINNED) and folio_maybe_dma_pinned: the kernel's test, so a page
// with 1024 plain references is copied too.
@inline function pageNeedsCowForDma(mm: u32, pfn: u32): bool {
  return mmHasPinned(mm) && folioMaybeDmaPinned(pfn) && pageIsAnon(pfn) && testFlag(pfn, PG_anon_exclusive);
}

// The child's own copy of `src` at `vpn`, mapped with its VMA's protection and dirty.
function copyPinnedPage(child: u32, vpn: u64, src: u32, dst: usize): bool {
  const cv = findVma(child, vpn);
  if (cv == 0) return false;
  if (allocInjected(mmNode(child), true)) return false;
  const pfn = allocPages(mmNode(child), 0, true);
  if (pfn == NONE) return false;
  copyFrame(pfn, src);
  pageAddNewAnonRmap(pfn, child, vmaBacking(cv), linearIndex(cv, vpn));
  store<u64>(dst, userPte(pfn, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW | _PAGE_DIRTY, vmaFlags(cv)));
  return true;
}

// restore_exclusive_pte in the parent: the page mapped again, writable as its VMA and
// exclusivity allow (the fork's invalidation already told the device).
function restoreExclusiveForFork(mm: u32, vpn: u64, ptep: usize, pte: u64): void {
  const pfn = swpOffset(pte);
  const v = findVma(mm, vpn);
  const flags = v == 0 ? 0 : vmaFlags(v);
  store<u64>(ptep, userPte(pfn, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW | (pte & (_PAGE_DIRTY | _PAGE_ACCESSED)), flags));
}

// A device-private or device-exclusive entry: a mapping of its page by another name.
@inline export function isDeviceEntry(pte: u64): bool {
  if (!isSwapPte(pte)) return false;
  const t = swpType(pte);
  return t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ || t == SWP_DEVICE_EXCLUSIVE;
}

@inline export function isMigrationEntry(pte: u64): bool {
  if (!isSwapPte(pte)) return false;
  const t = swpType(pte);
  return t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE;
}

@inline export function swpSetType(pte: u64, type: u32): u64 {
  return (pte & ~(SWP_TYPE_MASK << SWP_TYPE_SHIFT)) | (<u64>type << SWP_TYPE_SHIFT);
}

// copy_nonpresent_pte for a private (COW) mapping of the parent's entry at ptep:
// device entries are one more mapping of their page, and writable entries become
// readable in both processes. A device-exclusive entry is restored to a plain PTE
// first (the fork's invalidation already told the device).
function copyNonpresentPte(ptep: usize, pte: u64, child: u32): u64 {
  const t = swpType(pte);
  const pfn = swpOffset(pte);
  if (t == SWP_DEVICE_EXCLUSIVE) {
    const restored = pfnPte(pfn, _PAGE_PRESENT | _PAGE_USER | (pte & (_PAGE_DIRTY | _PAGE_ACCESSED)));
    clearFlag(pfn, PG_anon_exclusive);
    store<u64>(ptep, restored);
    getPage(pfn);
    pageDupRmap(pfn, child);
    return restored & ~_PAGE_ACCESSED;
  }
  if (t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ) {
    const ro = swpSetType(pte, SWP_DEVICE_READ);
    store<u64>(ptep, ro);
    clearFlag(pfn, PG_anon_exclusive);
    getPage(pfn);
    pageDupRmap(pfn, child);
    return ro;
  }
  if (t == SWP_MIGRATION_WRITE || t == SWP_MIGRATION_READ_EXCLUSIVE) {
    const ro = swpSetType(pte, SWP_MIGRATION_READ);
    store<u64>(ptep, ro);
    return ro;
  }
  return pte;
}

export function setReclaimTarget(n: u32): void {
  reclaimTarget = n;
}

export function zapRange(mm: u32, start: u64, end: u64): void {
  rangeOp(mm, start, end, RANGE_ZAP, 0, 0);
  freeEmptyTables(mmPgd(mm), start, end);
}

export function moveRange(mm: u32, start: u64, end: u64, delta: i64): bool {
  rangeOp(mm, start, end, RANGE_MOVE, 0, delta);
  if (rangeFailed) return false;
  freeEmptyTables(mmPgd(mm), start, end);
  return true;
}
