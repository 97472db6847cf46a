// 4-level page tables of 512 u64 entries, taken from a fixed pool of table pages.
// Tables are not emulated frames: an upper-level entry holds the pool index.
import { tablesBase, ntables, NONE } from "./layout";
import { _PAGE_TABLE, _PAGE_PRESENT, PTE_PFN_SHIFT, PTE_PFN_MASK } from "./pte";
import { statAdd, NR_PAGE_TABLE_PAGES } from "./stat";

export const PTRS_PER_TABLE: u32 = 512;
export const TABLE_BYTES: usize = 4096;

let freeTableHead: u32 = NONE;
// Tables never handed out yet are taken in order, so creating a machine touches none of the pool.
let nextFreshTable: u32 = 0;
export let tablesInUse: u32 = 0;

export function tablesInit(): void {
  freeTableHead = NONE;
  nextFreshTable = 0;
  tablesInUse = 0;
}

@inline export function tableAddr(t: u32): usize {
  assert(t < ntables, "table index out of range");
  return tablesBase + (<usize>t << 12);
}

// Free tables are all-zero except word 0 of those on the free list, the link to the next.
export function allocTable(): u32 {
  let t = freeTableHead;
  if (t != NONE) {
    freeTableHead = <u32>load<u64>(tableAddr(t));
    store<u64>(tableAddr(t), 0);
  } else {
    if (nextFreshTable >= ntables) return NONE;
    t = nextFreshTable++;
  }
  tablesInUse++;
  return t;
}

// A table for a page-table level: accounted in nr_page_table_pages.
export function allocPageTable(): u32 {
  const t = allocTable();
  if (t != NONE) statAdd(NR_PAGE_TABLE_PAGES, 1);
  return t;
}

export function freePageTable(t: u32): void {
  freeTable(t);
  statAdd(NR_PAGE_TABLE_PAGES, -1);
}

export function freeTable(t: u32): void {
  store<u64>(tableAddr(t), <u64>freeTableHead);
  freeTableHead = t;
  tablesInUse--;
}

export function tablesFree(): u32 {
  return ntables - tablesInUse;
}

@inline export function entryTable(e: u64): u32 {
  return <u32>((e & PTE_PFN_MASK) >> PTE_PFN_SHIFT);
}
@inline export function tableEntry(t: u32): u64 {
  return (<u64>t << PTE_PFN_SHIFT) | _PAGE_TABLE;
}
@inline export function entryPresent(e: u64): bool {
  return (e & _PAGE_PRESENT) != 0;
}

@inline export function pgdIndex(vpn: u64): u32 { return <u32>(vpn >> 27) & 511; }
@inline export function pudIndex(vpn: u64): u32 { return <u32>(vpn >> 18) & 511; }
@inline export function pmdIndex(vpn: u64): u32 { return <u32>(vpn >> 9) & 511; }
@inline export function pteIndex(vpn: u64): u32 { return <u32>vpn & 511; }

// Address of the entry for `vpn` one level down from table `t`, allocating the
// next-level table when `alloc` is set. Returns 0 when absent (or the pool is empty).
@inline function descend(t: u32, idx: u32, alloc: bool): u32 {
  const slot = tableAddr(t) + (<usize>idx << 3);
  const e = load<u64>(slot);
  if (entryPresent(e)) return entryTable(e);
  if (!alloc) return NONE;
  const n = allocPageTable();
  if (n == NONE) return NONE;
  store<u64>(slot, tableEntry(n));
  return n;
}

// Address of the PTE slot for `vpn` under pgd table `pgd`, or 0.
export function walkPte(pgd: u32, vpn: u64, alloc: bool): usize {
  const pud = descend(pgd, pgdIndex(vpn), alloc);
  if (pud == NONE) return 0;
  const pmd = descend(pud, pudIndex(vpn), alloc);
  if (pmd == NONE) return 0;
  const pt = descend(pmd, pmdIndex(vpn), alloc);
  if (pt == NONE) return 0;
  return tableAddr(pt) + (<usize>pteIndex(vpn) << 3);
}

// Address of the first entry of the PTE table covering `vpn`, or 0: loops over
// consecutive pages walk once per 512 with it.
export function pteTableBase(pgd: u32, vpn: u64): usize {
  const t = pteTableOf(pgd, vpn);
  return t == NONE ? 0 : tableAddr(t);
}

// Where a range walk goes on after pteTableOf(vpn): past that PTE table's range, or past the
// whole range of the upper table found missing.
export let pteTableEnd: u64 = 0;

// The PTE table covering `vpn`, or NONE.
export function pteTableOf(pgd: u32, vpn: u64): u32 {
  const pud = descend(pgd, pgdIndex(vpn), false);
  if (pud == NONE) {
    pteTableEnd = (vpn | ((<u64>1 << 27) - 1)) + 1;
    return NONE;
  }
  const pmd = descend(pud, pudIndex(vpn), false);
  if (pmd == NONE) {
    pteTableEnd = (vpn | ((<u64>1 << 18) - 1)) + 1;
    return NONE;
  }
  pteTableEnd = (vpn | 511) + 1;
  return descend(pmd, pmdIndex(vpn), false);
}

export function tableEmpty(t: u32): bool {
  const base = tableAddr(t);
  for (let i: usize = 0; i < 512; i++) if (load<u64>(base + (i << 3)) != 0) return false;
  return true;
}

// free_pgtables for the tables that cover [start, end): every table left empty is
// freed and unlinked from its parent, level by level. The pgd itself stays.
export function freeEmptyTables(pgd: u32, start: u64, end: u64): void {
  if (start >= end) return;
  const last = end - 1;
  const g0 = <u32>(start >> 27);
  const g1 = <u32>min<u64>(last >> 27, 511);
  for (let g = g0; g <= g1; g++) {
    const gSlot = tableAddr(pgd) + (<usize>g << 3);
    const ge = load<u64>(gSlot);
    if (!entryPresent(ge)) continue;
    const pud = entryTable(ge);
    const gBase = <u64>g << 27;
    const u0 = start > gBase ? pudIndex(start) : 0;
    const u1 = last < gBase + (<u64>1 << 27) - 1 ? pudIndex(last) : 511;
    for (let u = u0; u <= u1; u++) {
      const uSlot = tableAddr(pud) + (<usize>u << 3);
      const ue = load<u64>(uSlot);
      if (!entryPresent(ue)) continue;
      const pmd = entryTable(ue);
      const uBase = gBase | (<u64>u << 18);
      const m0 = start > uBase ? pmdIndex(start) : 0;
      const m1 = last < uBase + (<u64>1 << 18) - 1 ? pmdIndex(last) : 511;
      for (let d = m0; d <= m1; d++) {
        const dSlot = tableAddr(pmd) + (<usize>d << 3);
        const de = load<u64>(dSlot);
        if (entryPresent(de) && tableEmpty(entryTable(de))) {
          freePageTable(entryTable(de));
          store<u64>(dSlot, 0);
        }
      }
      if (tableEmpty(pmd)) {
        freePageTable(pmd);
        store<u64>(uSlot, 0);
      }
    }
    if (tableEmpty(pud)) {
      freePageTable(pud);
      store<u64>(gSlot, 0);
    }
  }
}
