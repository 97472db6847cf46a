// Reverse-map accounting of a page's mappings: mapcount, the anon counters, RSS.
import {
  setMapcount, mapcountOf, setMapping, setIndex, setFlagsOf, flagsOf, pageIsAnon,
  PG_anon_exclusive, PG_swapbacked, PG_lru, PG_uptodate, PAGE_MAPPING_ANON,
} from "./memmap";
import { addMmRss } from "./mm";
import { statAdd, NR_ANON_PAGES } from "./stat";
import { putPage } from "./alloc";

// The zero page: a reserved frame mapped by special PTEs, never counted.
export const ZERO_PFN: u32 = 0;

@inline export function anonMappingValue(anonVma: u32): u32 {
  return (anonVma << 1) | PAGE_MAPPING_ANON;
}
@inline export function fileMappingValue(id: u32): u32 {
  return (id + 1) << 1;
}
@inline export function fileMappingId(mapping: u32): u32 {
  return (mapping >> 1) - 1;
}

// folio_add_new_anon_rmap: a fresh, exclusively owned anon page.
export function pageAddNewAnonRmap(pfn: u32, mm: u32, anonVma: u32, index: u64): void {
  assert(flagsOf(pfn) == 0, "new anon page with flags set");
  setMapping(pfn, anonMappingValue(anonVma));
  setIndex(pfn, index);
  setFlagsOf(pfn, (1 << PG_anon_exclusive) | (1 << PG_swapbacked) | (1 << PG_lru) | (1 << PG_uptodate));
  setMapcount(pfn, 1);
  statAdd(NR_ANON_PAGES, 1);
  addMmRss(mm, true, 1);
}

// One more PTE (or device entry) maps an existing page: fork, shared fault, and
// remove_migration_ptes, which maps a page whose mapcount the migration took to zero.
export function pageDupRmap(pfn: u32, mm: u32): void {
  const anon = pageIsAnon(pfn);
  const m = mapcountOf(pfn);
  setMapcount(pfn, m + 1);
  if (anon && m == 0) statAdd(NR_ANON_PAGES, 1);
  addMmRss(mm, anon, 1);
}

// folio_remove_rmap_pte: one PTE stops mapping the page.
export function pageRemoveRmap(pfn: u32, mm: u32): void {
  const anon = pageIsAnon(pfn);
  const m = mapcountOf(pfn) - 1;
  assert(m >= 0, "mapcount underflow");
  setMapcount(pfn, m);
  if (anon && m == 0) statAdd(NR_ANON_PAGES, -1);
  addMmRss(mm, anon, -1);
}

// zap one present PTE's page: drop the mapping and the reference it held.
export function zapPage(pfn: u32, mm: u32): void {
  pageRemoveRmap(pfn, mm);
  putPage(pfn);
}
