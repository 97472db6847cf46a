// struct page as structure-of-arrays, one slot per pfn.
import {
  nframes, pageFlags, pageRef, pageMapcount, pagePincount, pageMapping, pageIndex,
  pageLruNext, pageLruPrev, pageZone, pageOrder, pageGupRefs,
} from "./layout";

// enum pageflags, with the kernel's bit numbers.
export const PG_locked: u32 = 0;
export const PG_writeback: u32 = 1;
export const PG_referenced: u32 = 2;
export const PG_uptodate: u32 = 3;
export const PG_dirty: u32 = 4;
export const PG_lru: u32 = 5;
export const PG_head: u32 = 6;
export const PG_waiters: u32 = 7;
export const PG_active: u32 = 8;
export const PG_workingset: u32 = 9;
export const PG_owner_priv_1: u32 = 10;
export const PG_owner_2: u32 = 11;
export const PG_anon_exclusive: u32 = 11;
export const PG_arch_1: u32 = 12;
export const PG_reserved: u32 = 13;
export const PG_private: u32 = 14;
export const PG_private_2: u32 = 15;
export const PG_reclaim: u32 = 16;
export const PG_isolated: u32 = 16;
export const PG_swapbacked: u32 = 17;
export const PG_unevictable: u32 = 18;
export const PG_dropbehind: u32 = 19;
export const PG_mlocked: u32 = 20;
export const PG_hwpoison: u32 = 21;
// The pin control subsystem's flag (seed 003's PG_pin): some subsystem holds the page.
export const PG_pin: u32 = 22;
// Page types live outside the PG_* bits in the kernel (page_type); ours sit in the top bits.
export const PGTY_buddy: u32 = 31;

// page->mapping low bit: the mapping is an anon_vma id, not an address_space.
export const PAGE_MAPPING_ANON: u32 = 1;

@inline export function pfnValid(pfn: u32): bool {
  return pfn < nframes;
}

@inline export function flagsOf(pfn: u32): u32 {
  assert(pfn < nframes, "pfn out of range");
  return load<u32>(pageFlags + (<usize>pfn << 2));
}
@inline export function setFlagsOf(pfn: u32, v: u32): void {
  assert(pfn < nframes, "pfn out of range");
  store<u32>(pageFlags + (<usize>pfn << 2), v);
}
@inline export function testFlag(pfn: u32, bit: u32): bool {
  return (flagsOf(pfn) & (1 << bit)) != 0;
}
@inline export function setFlag(pfn: u32, bit: u32): void {
  setFlagsOf(pfn, flagsOf(pfn) | (1 << bit));
}
@inline export function clearFlag(pfn: u32, bit: u32): void {
  setFlagsOf(pfn, flagsOf(pfn) & ~(1 << bit));
}

@inline export function refOf(pfn: u32): i32 {
  assert(pfn < nframes, "pfn out of range");
  return load<i32>(pageRef + (<usize>pfn << 2));
}
@inline export function setRef(pfn: u32, v: i32): void {
  assert(pfn < nframes, "pfn out of range");
  store<i32>(pageRef + (<usize>pfn << 2), v);
}
@inline export function mapcountOf(pfn: u32): i32 {
  assert(pfn < nframes, "pfn out of range");
  return load<i32>(pageMapcount + (<usize>pfn << 2));
}
@inline export function setMapcount(pfn: u32, v: i32): void {
  assert(pfn < nframes, "pfn out of range");
  store<i32>(pageMapcount + (<usize>pfn << 2), v);
}
@inline export function pincountOf(pfn: u32): i32 {
  return load<i32>(pagePincount + (<usize>pfn << 2));
}
@inline export function setPincount(pfn: u32, v: i32): void {
  store<i32>(pagePincount + (<usize>pfn << 2), v);
}
// The ledger of references held outside mappings and the page cache, one u32 per page:
// FOLL_GET references GUP handed out in the low 24 bits, holds of pin control subsystems
// (seed 003, one per subsystem) in the top 8. FOLL_PIN pins are counted in pincount.
export const GUP_REFS_MAX: u32 = 0xffffff;
export const PINPAGE_HOLDS_MAX: u32 = 0xff;
@inline export function gupRefsOf(pfn: u32): u32 {
  return load<u32>(pageGupRefs + (<usize>pfn << 2)) & GUP_REFS_MAX;
}
@inline export function setGupRefs(pfn: u32, v: u32): void {
  const at = pageGupRefs + (<usize>pfn << 2);
  store<u32>(at, (load<u32>(at) & ~GUP_REFS_MAX) | (v & GUP_REFS_MAX));
}
@inline export function pinpageHoldsOf(pfn: u32): u32 {
  return load<u32>(pageGupRefs + (<usize>pfn << 2)) >>> 24;
}
@inline export function setPinpageHolds(pfn: u32, n: u32): void {
  const at = pageGupRefs + (<usize>pfn << 2);
  store<u32>(at, (load<u32>(at) & GUP_REFS_MAX) | (n << 24));
}
@inline export function mappingOf(pfn: u32): u32 {
  return load<u32>(pageMapping + (<usize>pfn << 2));
}
@inline export function setMapping(pfn: u32, v: u32): void {
  store<u32>(pageMapping + (<usize>pfn << 2), v);
}
// page->index is 64-bit: anon pages' linear index is the virtual page number (up to 2^35).
@inline export function indexOf(pfn: u32): u64 {
  return load<u64>(pageIndex + (<usize>pfn << 3));
}
@inline export function setIndex(pfn: u32, v: u64): void {
  store<u64>(pageIndex + (<usize>pfn << 3), v);
}
@inline export function lruNext(pfn: u32): u32 {
  return load<u32>(pageLruNext + (<usize>pfn << 2));
}
@inline export function setLruNext(pfn: u32, v: u32): void {
  store<u32>(pageLruNext + (<usize>pfn << 2), v);
}
@inline export function lruPrev(pfn: u32): u32 {
  return load<u32>(pageLruPrev + (<usize>pfn << 2));
}
@inline export function setLruPrev(pfn: u32, v: u32): void {
  store<u32>(pageLruPrev + (<usize>pfn << 2), v);
}
@inline export function zoneOf(pfn: u32): u32 {
  assert(pfn < nframes, "pfn out of range");
  return <u32>load<u8>(pageZone + <usize>pfn);
}
@inline export function orderOf(pfn: u32): u32 {
  return <u32>load<u8>(pageOrder + <usize>pfn);
}
@inline export function setOrder(pfn: u32, v: u32): void {
  store<u8>(pageOrder + <usize>pfn, <u8>v);
}

@inline export function pageIsAnon(pfn: u32): bool {
  return (mappingOf(pfn) & PAGE_MAPPING_ANON) != 0;
}

// A pin adds this to an order-0 page's refcount (FOLL_PIN), so a pin shows in the refcount.
export const GUP_PIN_COUNTING_BIAS: i32 = 1024;

// folio_maybe_dma_pinned for an order-0 page: a refcount of at least the bias, which 1024
// plain references also reach (the kernel's false positive).
@inline export function folioMaybeDmaPinned(pfn: u32): bool {
  return <u32>refOf(pfn) >= <u32>GUP_PIN_COUNTING_BIAS;
}

@inline export function getPage(pfn: u32): void {
  setRef(pfn, refOf(pfn) + 1);
}

// A page going back to an allocator keeps no state: new pages need only their first reference.
@inline export function clearPageFields(pfn: u32): void {
  setRef(pfn, 0);
  setMapcount(pfn, 0);
  setPincount(pfn, 0);
  setMapping(pfn, 0);
  setIndex(pfn, 0);
  store<u32>(pageGupRefs + (<usize>pfn << 2), 0);
  setFlagsOf(pfn, 0);
}

// clearPageFields for four consecutive pages, four lanes at a time.
@inline export function clearPageFields4(pfn: u32): void {
  assert(pfn + 3 < nframes, "pfn out of range");
  const zero = i32x4.splat(0);
  const at = <usize>pfn << 2;
  v128.store(pageRef + at, zero);
  v128.store(pageMapcount + at, zero);
  v128.store(pagePincount + at, zero);
  v128.store(pageMapping + at, zero);
  v128.store(pageGupRefs + at, zero);
  v128.store(pageFlags + at, zero);
  v128.store(pageIndex + (at << 1), zero);
  v128.store(pageIndex + (at << 1) + 16, zero);
}
