// migrate_vma and migrate_device_* (mm/migrate_device.c), step by step: collect and
// unmap into migration entries, let the driver allocate and copy, migrate the
// struct page state, then remap the new pages or restore the old ones.
// src/dst are arrays of MIGRATE_PFN entries (u64) in the MIGRATE region.
import { migrateSrc, migrateDst, maxMigrate, maxMms, nframes, NONE, pageMapping, pageIndex, pageRef, pageMapcount, pageOrder, pageFlags } from "./layout";
import {
  flagsOf, setFlagsOf, testFlag, setFlag, clearFlag, refOf, setRef, mapcountOf, setMapcount, mappingOf, setMapping, indexOf, setIndex,
  getPage, pageIsAnon, PAGE_MAPPING_ANON, PG_locked, PG_anon_exclusive, PG_dirty, PG_lru, PG_private, PG_swapbacked, PG_uptodate,
  PG_referenced, PG_active, PG_workingset, PG_hwpoison, PG_reserved, PGTY_buddy, PG_pin, pinpageHoldsOf, setPinpageHolds,
} from "./memmap";
import { putPage, freePages, freePage, freePageCached, freePagesCached4, freePagesCachedReset, zonePgmapOwner, zoneIsDevice, zonePgmapType } from "./alloc";
import { isDevicePrivatePage, isZoneDevicePage, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT } from "./device";
import { walkPte, pteTableBase } from "./pagetable";
import {
  _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RO_MIGRATION, _PAGE_RO_MIGRATION_WRITE, _PAGE_SPECIAL,
  ptePfn, ptepresent, pteSpecial, pteWrite, pfnPte, pteProtnone, pteRoMigration,
  isSwapPte, swpType, swpOffset, swpEntry, SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE,
  SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE, SWP_HWPOISON,
} from "./pte";
import {
  mmAlive, mmPgd, addMmRss, mmNvmas, vmaAddr, vmaStart, vmaEnd, vmaPgoff, vmaFlags, vmaBacking, vmaFile, vmaMapsCache, findVma, linearIndex,
  VM_SHARED, VM_WRITE, VM_LOCKED, VM_ACCESS_FLAGS,
} from "./mm";
import { mlockPage, munlockPage } from "./mlock";
import { pageRemoveRmap, pageDupRmap, anonMappingValue, fileMappingId, ZERO_PFN } from "./rmap";
import { fileLruReplace } from "./filemap";
import { mappingSlot, mappingIsFile } from "./mapping";
import { zoneOf, orderOf } from "./memmap";
import { statAdd, PGMIGRATE_SUCCESS, PGMIGRATE_FAIL, NR_ANON_PAGES, PGMIGRATE_RO_PAGES } from "./stat";

export const MIGRATE_PFN_VALID: u64 = 1 << 0;
export const MIGRATE_PFN_MIGRATE: u64 = 1 << 1;
export const MIGRATE_PFN_WRITE: u64 = 1 << 3;
export const MIGRATE_PFN_COMPOUND: u64 = 1 << 4;
export const MIGRATE_PFN_SHIFT: u64 = 6;

export const MIGRATE_VMA_SELECT_SYSTEM: u32 = 1 << 0;
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE: u32 = 1 << 1;
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT: u32 = 1 << 2;
export const MIGRATE_VMA_SELECT_COMPOUND: u32 = 1 << 3;
// Ours, not the kernel's: page-cache pages of files (shared or private file mappings) may
// move into device memory too. Without it a file page is collected but stays where it is.
export const MIGRATE_VMA_SELECT_FILE: u32 = 1 << 4;

// Migrations in flight, one per slot (a driver's migrate_to_ram may run while another
// migration waits for its driver): each slot has its own src/dst arrays and state.
export const MIGRATE_SLOTS: u32 = 4;
const SLOT_STATE: usize = 48;
const slotState: usize = memory.data(<i32>(MIGRATE_SLOTS * <u32>SLOT_STATE), 16);
const sharedFlags: usize = memory.data(<i32>(MIGRATE_SLOTS * 65536));

// The selected slot's state.
let curSlot: u32 = 0;
let curSrc: usize = 0;
let curDst: usize = 0;
let migShared: usize = 0;
let migMm: u32 = NONE;
let migStart: u64 = 0;
let migFaultPage: u32 = NONE;
// Set when an rmap walk unmapped a page in an mm other than the collecting one.
export let migTouchedOthers: bool = false;
// Entries in the slot (0: the slot is free), and whether its pages the CPU maps with
// present PTEs are write-protected in place (read-only migration) instead of unmapped.
let migNpages: u32 = 0;
let migRo: bool = false;
// Whether pages held by pin control subsystems may move: their holds go to the new page
// (the subsystems were asked first, seed 003). Only pfn-list migrations allow it.
let migPinpage: bool = false;
// MIGRATE_VMA_SELECT_FILE: file pages may move into device memory.
let migFile: bool = false;

// Whether the collect and finalize loops take four entries at once where they can (the
// outcome is the same; tests turn it off to compare the two).
let migLanes: bool = true;
// Groups of four the loops took since the start, for tests to see the paths run.
export let migLaneGroups: u32 = 0;
export function setMigrateLanes(on: bool): void {
  migLanes = on;
}

// Makes `slot` the current migration; saveSlot() writes its state back.
export function selectSlot(slot: u32): void {
  assert(slot < MIGRATE_SLOTS, "migration slot out of range");
  curSlot = slot;
  curSrc = migrateSrc + <usize>slot * <usize>maxMigrate * 8;
  curDst = migrateDst + <usize>slot * <usize>maxMigrate * 8;
  migShared = sharedFlags + <usize>slot * 65536;
  const st = slotState + <usize>slot * SLOT_STATE;
  migMm = load<u32>(st);
  migStart = load<u64>(st + 8);
  migFaultPage = load<u32>(st + 16);
  migTouchedOthers = load<u32>(st + 20) != 0;
  migNpages = load<u32>(st + 24);
  migRo = load<u32>(st + 28) != 0;
  migPinpage = load<u32>(st + 32) != 0;
  migFile = load<u32>(st + 36) != 0;
}

export function saveSlot(): void {
  const st = slotState + <usize>curSlot * SLOT_STATE;
  store<u32>(st, migMm);
  store<u64>(st + 8, migStart);
  store<u32>(st + 16, migFaultPage);
  store<u32>(st + 20, migTouchedOthers ? 1 : 0);
  store<u32>(st + 24, migNpages);
  store<u32>(st + 28, migRo ? 1 : 0);
  store<u32>(st + 32, migPinpage ? 1 : 0);
  store<u32>(st + 36, migFile ? 1 : 0);
}

// The pages of every migration in flight, for machine.check(): `mark` goes on each page a
// slot holds (sources and destinations), `roMark` also on sources whose PTEs may be
// read-only migration PTEs.
export function markInFlight(scratch: usize, mark: u32, roMark: u32): void {
  for (let slot: u32 = 0; slot < MIGRATE_SLOTS; slot++) {
    const st = slotState + <usize>slot * SLOT_STATE;
    const n = load<u32>(st + 24);
    const ro = load<u32>(st + 28) != 0;
    const src = migrateSrc + <usize>slot * <usize>maxMigrate * 8;
    const dst = migrateDst + <usize>slot * <usize>maxMigrate * 8;
    for (let i: u32 = 0; i < n; i++) {
      const s = entryPfn(load<u64>(src + (<usize>i << 3)));
      if (s != NONE && s < nframes) {
        const a = scratch + (<usize>s << 2);
        store<u32>(a, load<u32>(a) | mark | (ro && !isDevicePrivatePage(s) ? roMark : 0));
      }
      const d = entryPfn(load<u64>(dst + (<usize>i << 3)));
      if (d != NONE && d < nframes) store<u32>(scratch + (<usize>d << 2), load<u32>(scratch + (<usize>d << 2)) | mark);
    }
  }
}

// PTEs of the slot's pages were copied or moved (fork, mremap), or the collecting mm is
// going (`dropMm`): the end of the migration finds every mapping through the rmap.
export function forgetOwnPtes(dropMm: bool): void {
  memory.fill(migShared, 1, migNpages);
  if (dropMm) migMm = NONE;
}

@inline export function srcAddr(): usize { return curSrc; }
@inline export function dstAddr(): usize { return curDst; }

@inline function srcAt(i: u32): u64 { return load<u64>(curSrc + (<usize>i << 3)); }
@inline function setSrc(i: u32, v: u64): void { store<u64>(curSrc + (<usize>i << 3), v); }
@inline function dstAt(i: u32): u64 { return load<u64>(curDst + (<usize>i << 3)); }
@inline export function migratePfn(pfn: u32): u64 { return (<u64>pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID; }
@inline function entryPfn(e: u64): u32 { return (e & MIGRATE_PFN_VALID) != 0 ? <u32>(e >> MIGRATE_PFN_SHIFT) : NONE; }

@inline function lockPage(pfn: u32): void { setFlag(pfn, PG_locked); }
@inline function unlockPage(pfn: u32): void { clearFlag(pfn, PG_locked); }

// The migration entry that replaces a mapping: WRITE if writable, else READ_EXCLUSIVE
// for an exclusive anon page, else READ. Young and dirty bits travel with it.
function migrationEntryFor(pfn: u32, writable: bool, bits: u64): u64 {
  const type = writable ? SWP_MIGRATION_WRITE : testFlag(pfn, PG_anon_exclusive) ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
  return swpEntry(type, pfn, bits & (_PAGE_ACCESSED | _PAGE_DIRTY));
}

// A read-only migration's PTE: present, write-protected, its old permission kept aside.
@inline function roProtect(pte: u64): u64 {
  return (pte & ~_PAGE_RW) | _PAGE_RO_MIGRATION | ((pte & _PAGE_RW) != 0 ? _PAGE_RO_MIGRATION_WRITE : 0);
}

// Whether entry `pfn` of the current migration is write-protected in place: a read-only
// migration of a page the CPU can read (device-private pages get migration entries).
@inline function roEntry(pfn: u32): bool {
  return migRo && !isDevicePrivatePage(pfn);
}

// try_to_migrate_one: another mapping (present PTE or device entry) of `pfn` becomes a
// migration entry, and the reference it held goes (with the mlock of a VM_LOCKED mapping).
function unmapOne(mm: u32, ptep: usize, pte: u64, pfn: u32, locked: bool): void {
  let writable: bool;
  if (isSwapPte(pte)) {
    const t = swpType(pte);
    writable = t == SWP_DEVICE_WRITE || (t == SWP_DEVICE_EXCLUSIVE && testFlag(pfn, PG_anon_exclusive));
  } else {
    writable = pteWrite(pte);
    if (pte & _PAGE_DIRTY) setFlag(pfn, PG_dirty);
  }
  store<u64>(ptep, migrationEntryFor(pfn, writable, pte));
  // The page is shared while it moves; the entry type remembers exclusivity.
  clearFlag(pfn, PG_anon_exclusive);
  pageRemoveRmap(pfn, mm);
  if (locked) munlockPage(pfn, false);
  putPage(pfn);
}

// Whether the mapping of `pfn` that replaces a migration entry may be writable. A file
// page the CPU can write must be dirty (write notification: the first store faults and
// dirties it); a clean one comes back read-only. A file page in device-private memory of a
// shared writable mapping gets a writable device entry: the CPU cannot store to it, and
// the device reports what it writes (fileDeviceDirty).
@inline function mayWrite(writeEntry: bool, vmFlags: u32, pfn: u32): bool {
  if ((vmFlags & VM_WRITE) == 0) return false;
  const f = flagsOf(pfn);
  const file = !pageIsAnon(pfn) && (f & (1 << PG_swapbacked)) == 0 && mappingOf(pfn) != 0;
  if (!file) return writeEntry;
  if (isDevicePrivatePage(pfn)) return writeEntry || (vmFlags & VM_SHARED) != 0;
  return writeEntry && (f & (1 << PG_dirty)) != 0;
}

// remove_migration_pte for one entry: map `newPfn` where `pfn` was (mlocked again in a
// VM_LOCKED VMA).
function remapOne(mm: u32, ptep: usize, entry: u64, newPfn: u32, vmFlags: u32): void {
  const t = swpType(entry);
  const writable = mayWrite(t == SWP_MIGRATION_WRITE, vmFlags, newPfn);
  let pte: u64;
  if (isDevicePrivatePage(newPfn)) {
    pte = swpEntry(writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, newPfn, 0);
  } else {
    pte = mkPte(newPfn, (entry & (_PAGE_ACCESSED | _PAGE_DIRTY)) | (writable ? _PAGE_RW : 0), vmFlags);
  }
  if (t != SWP_MIGRATION_READ && pageIsAnon(newPfn)) setFlag(newPfn, PG_anon_exclusive);
  store<u64>(ptep, pte);
  getPage(newPfn);
  pageDupRmap(newPfn, mm);
  if (vmFlags & VM_LOCKED) mlockPage(newPfn);
}

// The end of a read-only migration at one PTE: it maps `newPfn` (the old page again, on a
// restore) with the write permission it had, unless the VMA lost VM_WRITE or the anon page
// stopped being exclusive (a fork) meanwhile.
function remapRo(mm: u32, ptep: usize, pte: u64, pfn: u32, newPfn: u32, vmFlags: u32): void {
  const exclusive = testFlag(pfn, PG_anon_exclusive);
  const writable = (pte & _PAGE_RO_MIGRATION_WRITE) != 0 && (vmFlags & VM_WRITE) != 0 && ((vmFlags & VM_SHARED) != 0 || exclusive);
  if (newPfn == pfn) {
    let n = pte & ~(_PAGE_RO_MIGRATION | _PAGE_RO_MIGRATION_WRITE);
    if (writable && !pteProtnone(pte)) n |= _PAGE_RW;
    store<u64>(ptep, n);
    return;
  }
  if (exclusive && pageIsAnon(newPfn)) setFlag(newPfn, PG_anon_exclusive);
  if (isDevicePrivatePage(newPfn)) {
    store<u64>(ptep, swpEntry(writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, newPfn, 0));
  } else {
    store<u64>(ptep, mkPte(newPfn, (pte & (_PAGE_ACCESSED | _PAGE_DIRTY)) | (writable ? _PAGE_RW : 0), vmFlags));
  }
  getPage(newPfn);
  pageDupRmap(newPfn, mm);
  pageRemoveRmap(pfn, mm);
  // A VM_LOCKED mapping's mlock moves with it, as the blocking path's unmap and remap do.
  if (vmFlags & VM_LOCKED) {
    mlockPage(newPfn);
    munlockPage(pfn, false);
  }
  putPage(pfn);
}

// mk_pte with the VMA's protection: a PROT_NONE VMA gets a PROT_NONE entry.
@inline function mkPte(pfn: u32, bits: u64, vmFlags: u32): u64 {
  if ((vmFlags & VM_ACCESS_FLAGS) == 0) return pfnPte(pfn, _PAGE_PROTNONE | _PAGE_USER | (bits & ~_PAGE_RW));
  return pfnPte(pfn, _PAGE_PRESENT | _PAGE_USER | bits);
}

const RMAP_TRY_TO_MIGRATE: u32 = 0;
const RMAP_REMOVE_MIGRATION: u32 = 1;
const RMAP_POISON: u32 = 2;
const RMAP_WRITE_PROTECT: u32 = 3;

// rmap_walk: every place `pfn` can be mapped, found from page->mapping and ->index:
// private VMAs for anon pages, VMAs of the same shmem object otherwise. The PTE is
// checked, so VMAs that merely could map the index do no harm.
function rmapWalk(pfn: u32, op: u32, newPfn: u32): void {
  const mapping = mappingOf(pfn);
  if (mapping == 0) return;
  const anon = pageIsAnon(pfn);
  const index = <u64>indexOf(pfn);
  for (let mm: u32 = 0; mm < maxMms; mm++) {
    if (!mmAlive(mm)) continue;
    const n = mmNvmas(mm);
    for (let i: u32 = 0; i < n; i++) {
      const v = vmaAddr(mm, i);
      if (anon ? (vmaFlags(v) & VM_SHARED) != 0 : !vmaMapsCache(v, fileMappingId(mapping))) continue;
      const pgoff = vmaPgoff(v);
      if (index < pgoff || index >= pgoff + (vmaEnd(v) - vmaStart(v))) continue;
      const ptep = walkPte(mmPgd(mm), vmaStart(v) + (index - pgoff), false);
      if (ptep == 0) continue;
      const pte = load<u64>(ptep);
      if (op == RMAP_POISON) {
        if (pteMaps(pte, pfn)) {
          // try_to_unmap with TTU_HWPOISON: the next access gets SIGBUS.
          store<u64>(ptep, swpEntry(SWP_HWPOISON, pfn, 0));
          pageRemoveRmap(pfn, mm);
          if (vmaFlags(v) & VM_LOCKED) munlockPage(pfn, true);
          putPage(pfn);
          rmapHits++;
        }
      } else if (op == RMAP_TRY_TO_MIGRATE) {
        if (pteMaps(pte, pfn)) {
          if (mm != migMm) migTouchedOthers = true;
          unmapOne(mm, ptep, pte, pfn, (vmaFlags(v) & VM_LOCKED) != 0);
        }
      } else if (op == RMAP_WRITE_PROTECT) {
        // Every present mapping is write-protected in place, counted in rmapHits; a
        // device-exclusive entry cannot be read in place and becomes a migration entry.
        if (pteMaps(pte, pfn)) {
          if (mm != migMm) migTouchedOthers = true;
          if (isSwapPte(pte)) {
            unmapOne(mm, ptep, pte, pfn, (vmaFlags(v) & VM_LOCKED) != 0);
          } else {
            if ((pte & _PAGE_RO_MIGRATION) == 0) {
              if (pte & _PAGE_DIRTY) setFlag(pfn, PG_dirty);
              store<u64>(ptep, roProtect(pte));
            }
            rmapHits++;
          }
        }
      } else if (isMigrationEntryFor(pte, pfn)) {
        remapOne(mm, ptep, pte, newPfn, vmaFlags(v));
      } else if (isRoMigrationFor(pte, pfn)) {
        remapRo(mm, ptep, pte, pfn, newPfn, vmaFlags(v));
      }
    }
  }
}

@inline function pteMaps(pte: u64, pfn: u32): bool {
  if (isSwapPte(pte)) {
    const t = swpType(pte);
    return (t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ || t == SWP_DEVICE_EXCLUSIVE) && swpOffset(pte) == pfn;
  }
  return ptepresent(pte) && !pteSpecial(pte) && ptePfn(pte) == pfn;
}

@inline function isRoMigrationFor(pte: u64, pfn: u32): bool {
  return pteRoMigration(pte) && !pteSpecial(pte) && ptePfn(pte) == pfn;
}

@inline function isMigrationEntryFor(pte: u64, pfn: u32): bool {
  if (!isSwapPte(pte)) return false;
  const t = swpType(pte);
  return (t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE) && swpOffset(pte) == pfn;
}

let rmapHits: u32 = 0;

// The generic memory_failure handling of a page in use: mark it poisoned, keep a
// reference so it never returns to an allocator, and turn every mapping into a
// hwpoison entry. Returns how many mappings were replaced.
export function poisonPage(pfn: u32): u32 {
  setFlag(pfn, PG_hwpoison);
  getPage(pfn);
  rmapHits = 0;
  rmapWalk(pfn, RMAP_POISON, NONE);
  return rmapHits;
}

// remove_migration_ptes(src, dst) for entry i.
function removeMigrationPtes(i: u32, pfn: u32, newPfn: u32): void {
  if (migMm != NONE && load<u8>(migShared + i) == 0) {
    const vpn = migStart + <u64>i;
    const ptep = knownPtep(vpn);
    if (ptep == 0) return;
    const pte = load<u64>(ptep);
    if (isMigrationEntryFor(pte, pfn)) remapOne(migMm, ptep, pte, newPfn, knownVmaFlags(vpn));
    else if (isRoMigrationFor(pte, pfn)) remapRo(migMm, ptep, pte, pfn, newPfn, knownVmaFlags(vpn));
    return;
  }
  rmapWalk(pfn, RMAP_REMOVE_MIGRATION, newPfn);
}

// The collected range's PTE table and VMA, looked up once per run of pages
// (reset by forgetKnown() at the start of each pass).
let knownTable: usize = 0;
let knownTableVpn: u64 = 0xffffffffffffffff;
let knownVmaStart: u64 = 0;
let knownVmaEnd: u64 = 0;
let knownVmaFlagsOf: u32 = 0;

function forgetKnown(): void {
  knownTable = 0;
  knownTableVpn = 0xffffffffffffffff;
  knownVmaStart = 0;
  knownVmaEnd = 0;
}

@inline function knownPtep(vpn: u64): usize {
  if ((vpn & ~(<u64>511)) != knownTableVpn) {
    knownTableVpn = vpn & ~(<u64>511);
    knownTable = pteTableBase(mmPgd(migMm), vpn);
  }
  return knownTable == 0 ? 0 : knownTable + (<usize>(<u32>vpn & 511) << 3);
}

@inline function knownVmaFlags(vpn: u64): u32 {
  if (vpn < knownVmaStart || vpn >= knownVmaEnd) return lookupVmaFlags(vpn);
  return knownVmaFlagsOf;
}

function lookupVmaFlags(vpn: u64): u32 {
  const v = findVma(migMm, vpn);
  if (v == 0) return 0;
  knownVmaStart = vmaStart(v);
  knownVmaEnd = vmaEnd(v);
  knownVmaFlagsOf = vmaFlags(v);
  return knownVmaFlagsOf;
}

// migrate_vma_check_page: references beyond the mappings and ours mean someone (a pin) holds it.
function checkPage(pfn: u32): bool {
  let extra: i32 = 1;
  if (pfn == migFaultPage) extra++;
  if (isZoneDevicePage(pfn)) extra++;
  if (!pageIsAnon(pfn)) extra += 1 + (testFlag(pfn, PG_private) ? 1 : 0);
  if (migPinpage) extra += <i32>pinpageHoldsOf(pfn);
  return refOf(pfn) - extra <= mapcountOf(pfn);
}

// A fresh migration in the current slot: empty src/dst, where it collects from.
function migrateBegin(mm: u32, start: u64, faultPage: u32, npages: u32, ro: bool): void {
  forgetKnown();
  migNpages = npages;
  migRo = ro;
  migPinpage = false;
  migFile = false;
  migMm = mm;
  migStart = start;
  migFaultPage = faultPage;
  migTouchedOthers = false;
  memory.fill(curSrc, 0, <usize>npages << 3);
  memory.fill(curDst, 0, <usize>npages << 3);
  memory.fill(migShared, 0, npages);
}

// The collect loop's usual case for entries i..i+3 at once: four consecutive anon pages
// s..s+3 of one zone, selected, unlocked, each mapped once by these four PTEs (all present,
// or all device-private entries) and holding no other reference, become migration entries.
// The struct page fields change four lanes at a time; the outcome is the four single
// steps'. Not for read-only migrations or VM_LOCKED VMAs (the caller checks). Every check
// comes first; false (nothing done) otherwise.
@inline function collectOwn4(ptep: usize, i: u32, flags: u32, owner: u32, faultPage: u32): bool {
  const p0 = load<u64>(ptep);
  const p1 = load<u64>(ptep + 8);
  const p2 = load<u64>(ptep + 16);
  const p3 = load<u64>(ptep + 24);
  let s: u32;
  let device: bool;
  if ((p0 & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0) {
    // Present PTEs of ordinary pages, or of device-coherent ones this owner selects.
    if (((p0 & p1 & p2 & p3) & (_PAGE_PRESENT | _PAGE_PROTNONE)) == 0 || ((p0 | p1 | p2 | p3) & _PAGE_SPECIAL) != 0) return false;
    s = ptePfn(p0);
    if (ptePfn(p1) != s + 1 || ptePfn(p2) != s + 2 || ptePfn(p3) != s + 3) return false;
    if (s + 3 >= nframes) return false;
    const z = zoneOf(s);
    if (zoneOf(s + 3) != z) return false;
    device = zoneIsDevice(z);
    if (device && zonePgmapType(z) == MEMORY_DEVICE_COHERENT) {
      if ((flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) == 0 || zonePgmapOwner(z) != owner) return false;
    } else if ((flags & MIGRATE_VMA_SELECT_SYSTEM) == 0) {
      return false;
    }
  } else {
    // Device-private entries of this owner.
    if (!isDeviceEntry(p0) || !isDeviceEntry(p1) || !isDeviceEntry(p2) || !isDeviceEntry(p3)) return false;
    s = swpOffset(p0);
    if (swpOffset(p1) != s + 1 || swpOffset(p2) != s + 2 || swpOffset(p3) != s + 3) return false;
    if (s + 3 >= nframes) return false;
    const z = zoneOf(s);
    if (zoneOf(s + 3) != z || (flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) == 0 || zonePgmapOwner(z) != owner) return false;
    device = zoneIsDevice(z);
  }
  if (faultPage - s < 4) return false;
  const at = <usize>s << 2;
  if (!i32x4.all_true(v128.and(v128.load(pageMapping + at), i32x4.splat(PAGE_MAPPING_ANON)))) return false;
  const f = v128.load(pageFlags + at);
  if (v128.any_true(v128.and(f, i32x4.splat(1 << PG_locked)))) return false;
  if (!i32x4.all_true(i32x4.eq(v128.load(pageMapcount + at), i32x4.splat(1)))) return false;
  // migrate_vma_check_page: no references beyond the mapping (and a device page's own).
  if (!i32x4.all_true(i32x4.le_s(v128.load(pageRef + at), i32x4.splat(device ? 2 : 1)))) return false;
  store<u64>(ptep, collectEntry(p0, s, i32x4.extract_lane(f, 0)));
  store<u64>(ptep + 8, collectEntry(p1, s + 1, i32x4.extract_lane(f, 1)));
  store<u64>(ptep + 16, collectEntry(p2, s + 2, i32x4.extract_lane(f, 2)));
  store<u64>(ptep + 24, collectEntry(p3, s + 3, i32x4.extract_lane(f, 3)));
  const dirty = i32x4(collectDirty(p0), collectDirty(p1), collectDirty(p2), collectDirty(p3));
  v128.store(pageFlags + at, v128.andnot(v128.or(v128.or(f, dirty), i32x4.splat(1 << PG_locked)), i32x4.splat(1 << PG_anon_exclusive)));
  v128.store(pageMapcount + at, i32x4.splat(0));
  setSrc(i, collectSrc(p0, s));
  setSrc(i + 1, collectSrc(p1, s + 1));
  setSrc(i + 2, collectSrc(p2, s + 2));
  setSrc(i + 3, collectSrc(p3, s + 3));
  return true;
}

@inline function isDeviceEntry(pte: u64): bool {
  if (pte == 0 || (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0) return false;
  const t = swpType(pte);
  return t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ;
}

// Whether collectOwn4's PTE `pte` may write: a present writable PTE or a device write entry.
@inline function collectWritable(pte: u64): bool {
  return (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0 ? pteWrite(pte) : swpType(pte) == SWP_DEVICE_WRITE;
}

// The migration entry replacing `pte` (mapping page `pfn` with flags `f`), as the loop makes it.
@inline function collectEntry(pte: u64, pfn: u32, f: i32): u64 {
  const type = collectWritable(pte) ? SWP_MIGRATION_WRITE : (f & (1 << PG_anon_exclusive)) != 0 ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
  return swpEntry(type, pfn, pte & (_PAGE_ACCESSED | _PAGE_DIRTY));
}

// PG_dirty from a present PTE's dirty bit.
@inline function collectDirty(pte: u64): i32 {
  return (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0 && (pte & _PAGE_DIRTY) != 0 ? 1 << PG_dirty : 0;
}

@inline function collectSrc(pte: u64, pfn: u32): u64 {
  return migratePfn(pfn) | MIGRATE_PFN_MIGRATE | (collectWritable(pte) ? MIGRATE_PFN_WRITE : 0);
}

// migrate_vma_setup: collect [start, start+npages) of `mm` into src, then unmap (or, with
// `ro`, write-protect in place what the CPU maps with present PTEs: readers go on reading
// the old page while it is copied, writers wait as for a migration entry).
// The caller checked the range and fired the MMU_NOTIFY_MIGRATE invalidation.
export function migrateVmaCollect(mm: u32, start: u64, npages: u32, flags: u32, owner: u32, faultPage: u32, ro: bool): u32 {
  migrateBegin(mm, start, faultPage, npages, ro);
  migFile = (flags & MIGRATE_VMA_SELECT_FILE) != 0;
  const v = findVma(mm, start);
  // vma_is_anonymous: holes are collected only there (a private file mapping's hole is the file's).
  const anonVma = (vmaFlags(v) & VM_SHARED) == 0 && vmaFile(v) == NONE;
  const locked = (vmaFlags(v) & VM_LOCKED) != 0;
  let cpages: u32 = 0;
  let shared = false;
  // RSS and NR_ANON_PAGES changes of the unmapping, added once at the end.
  let rssAnon: i32 = 0;
  let rssShmem: i32 = 0;
  let nrAnon: i64 = 0;
  let roPages: i64 = 0;
  const fast = migLanes && !ro && !locked;
  for (let i: u32 = 0; i < npages; i++) {
    const ptep = knownPtep(start + <u64>i);
    if (fast && ptep != 0 && i + 4 <= npages && (<u32>(start + <u64>i) & 511) <= 508 && collectOwn4(ptep, i, flags, owner, faultPage)) {
      cpages += 4;
      rssAnon -= 4;
      nrAnon -= 4;
      migLaneGroups++;
      i += 3;
      continue;
    }
    const pte = ptep == 0 ? 0 : load<u64>(ptep);
    if (pte == 0) {
      if (anonVma) {
        setSrc(i, MIGRATE_PFN_MIGRATE);
        cpages++;
      }
      continue;
    }
    let pfn: u32;
    let mapping: u32;
    let writable: bool;
    let device: bool;
    if (isSwapPte(pte)) {
      const t = swpType(pte);
      if (t != SWP_DEVICE_WRITE && t != SWP_DEVICE_READ) continue;
      pfn = swpOffset(pte);
      const z = zoneOf(pfn);
      if ((flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) == 0 || zonePgmapOwner(z) != owner) continue;
      mapping = mappingOf(pfn);
      writable = t == SWP_DEVICE_WRITE;
      device = zoneIsDevice(z);
    } else {
      pfn = ptePfn(pte);
      if (pteSpecial(pte)) {
        if (pfn == ZERO_PFN && (flags & MIGRATE_VMA_SELECT_SYSTEM) != 0) {
          setSrc(i, MIGRATE_PFN_MIGRATE);
          cpages++;
        }
        continue;
      }
      const z = zoneOf(pfn);
      device = zoneIsDevice(z);
      if (device && zonePgmapType(z) == MEMORY_DEVICE_COHERENT) {
        if ((flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) == 0 || zonePgmapOwner(z) != owner) continue;
      } else if ((flags & MIGRATE_VMA_SELECT_SYSTEM) == 0) {
        continue;
      }
      mapping = mappingOf(pfn);
      if (mapping == 0) continue;
      writable = pteWrite(pte);
    }
    // folio_get, then the mapping's reference goes: the count stays, so neither is done.
    let f = flagsOf(pfn);
    if (pfn != faultPage) {
      if (f & (1 << PG_locked)) continue;
      f |= 1 << PG_locked;
    }
    if (ro && !isSwapPte(pte)) {
      // The PTE stays (with the mapping's reference); the migration takes one of its own.
      if (pte & _PAGE_DIRTY) f |= 1 << PG_dirty;
      setFlagsOf(pfn, f);
      getPage(pfn);
      store<u64>(ptep, roProtect(pte));
      setSrc(i, migratePfn(pfn) | MIGRATE_PFN_MIGRATE | (writable ? MIGRATE_PFN_WRITE : 0));
      // Other mappings are write-protected by migrate_device_unmap's rmap walk.
      if (mapcountOf(pfn) > 1) {
        shared = true;
        continue;
      }
      if (checkPage(pfn)) {
        cpages++;
        roPages++;
      } else {
        restoreOne(i, pfn);
      }
      continue;
    }
    // The unmapping (unmapOne without the put), its flag and counter changes made at once.
    if (!isSwapPte(pte) && (pte & _PAGE_DIRTY) != 0) f |= 1 << PG_dirty;
    const type = writable ? SWP_MIGRATION_WRITE : (f & (1 << PG_anon_exclusive)) != 0 ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
    store<u64>(ptep, swpEntry(type, pfn, pte & (_PAGE_ACCESSED | _PAGE_DIRTY)));
    f &= ~(1 << PG_anon_exclusive);
    setFlagsOf(pfn, f);
    if (locked) munlockPage(pfn, false);
    const anon = (mapping & PAGE_MAPPING_ANON) != 0;
    const m = mapcountOf(pfn) - 1;
    assert(m >= 0, "mapcount underflow");
    setMapcount(pfn, m);
    if (anon) {
      rssAnon--;
      if (m == 0) nrAnon--;
    } else {
      rssShmem--;
    }
    setSrc(i, migratePfn(pfn) | MIGRATE_PFN_MIGRATE | (writable ? MIGRATE_PFN_WRITE : 0));
    // A page no other PTE maps gets migrate_device_unmap's check now, which is what
    // that pass would find; shared pages wait for its rmap walk.
    if (m != 0) {
      shared = true;
      continue;
    }
    // checkPage, from what is known here.
    let extra: i32 = pfn == faultPage ? 2 : 1;
    if (device) extra++;
    if (!anon) extra += 1 + ((f & (1 << PG_private)) != 0 ? 1 : 0);
    if (refOf(pfn) - extra <= 0) cpages++;
    else restoreOne(i, pfn);
  }
  addMmRss(mm, true, rssAnon);
  addMmRss(mm, false, rssShmem);
  statAdd(NR_ANON_PAGES, nrAnon);
  if (shared) return migrateUnmap(npages);
  statAdd(PGMIGRATE_RO_PAGES, roPages);
  return cpages;
}

// migrate_device_unmap: other mappings become migration entries too; pages that stay
// mapped or carry extra references (pins) are restored and dropped from the migration.
function migrateUnmap(npages: u32): u32 {
  forgetKnown();
  let cpages: u32 = 0;
  let roPages: i64 = 0;
  for (let i: u32 = 0; i < npages; i++) {
    const e = srcAt(i);
    if ((e & MIGRATE_PFN_MIGRATE) == 0) continue;
    const pfn = entryPfn(e);
    if (pfn == NONE) {
      cpages++;
      continue;
    }
    if (roEntry(pfn)) {
      // The copy may start only once no mapping anywhere can write the page; the
      // collecting mm's own PTE is write-protected already.
      rmapHits = 1;
      if (mapcountOf(pfn) > 1) {
        store<u8>(migShared + i, 1);
        rmapHits = 0;
        rmapWalk(pfn, RMAP_WRITE_PROTECT, NONE);
      }
      if (<i32>rmapHits != mapcountOf(pfn) || !checkPage(pfn)) {
        restoreOne(i, pfn);
        continue;
      }
      cpages++;
      roPages++;
      continue;
    }
    if (mapcountOf(pfn) > 0) {
      store<u8>(migShared + i, 1);
      rmapWalk(pfn, RMAP_TRY_TO_MIGRATE, NONE);
    }
    if (mapcountOf(pfn) > 0 || !checkPage(pfn)) {
      restoreOne(i, pfn);
      continue;
    }
    cpages++;
  }
  statAdd(PGMIGRATE_RO_PAGES, roPages);
  return cpages;
}

// The unmap step's restore: the page stays where it was and leaves the migration.
function restoreOne(i: u32, pfn: u32): void {
  removeMigrationPtes(i, pfn, pfn);
  setSrc(i, 0);
  if (pfn != migFaultPage) unlockPage(pfn);
  putPage(pfn);
}

// migrate_device_range: pfn-based collection for eviction, no VMA.
export function migrateDeviceRange(startPfn: u32, npages: u32): u32 {
  migrateBegin(NONE, 0, NONE, npages, false);
  for (let i: u32 = 0; i < npages; i++) {
    const pfn = startPfn + i;
    if (refOf(pfn) == 0) continue;
    getPage(pfn);
    if (testFlag(pfn, PG_locked)) {
      putPage(pfn);
      continue;
    }
    lockPage(pfn);
    setSrc(i, migratePfn(pfn) | MIGRATE_PFN_MIGRATE);
  }
  return migrateUnmap(npages);
}

// migrate_device_pfns over any frames: src holds migrate_pfn(pfn) entries written by
// the caller; pages in use by a mapping or the page cache are locked and collected,
// the rest (free, reserved, locked, held by nobody we can unmap) leave with src = 0.
// The common engine of migrate_pages, compaction, CMA and offline.
export function migratePfnList(npages: u32, pinpage: bool): u32 {
  forgetKnown();
  migNpages = npages;
  migRo = false;
  migPinpage = pinpage;
  migFile = false;
  migMm = NONE;
  migStart = 0;
  migFaultPage = NONE;
  migTouchedOthers = false;
  memory.fill(curDst, 0, <usize>npages << 3);
  memory.fill(migShared, 0, npages);
  for (let i: u32 = 0; i < npages; i++) {
    const pfn = entryPfn(srcAt(i));
    setSrc(i, 0);
    if (pfn == NONE || pfn >= nframes || pfn == ZERO_PFN) continue;
    const f = flagsOf(pfn);
    if ((f & ((1 << PG_reserved) | (1 << PG_locked) | (1 << PG_hwpoison) | (1 << PGTY_buddy))) != 0) continue;
    if (refOf(pfn) <= 0 || mappingOf(pfn) == 0) continue;
    getPage(pfn);
    lockPage(pfn);
    setSrc(i, migratePfn(pfn) | MIGRATE_PFN_MIGRATE);
  }
  return migrateUnmap(npages);
}

// migrate_vma_insert_page: a new anon page where there was none (or the zero page).
function insertPage(i: u32, d: u32): bool {
  const vpn = migStart + <u64>i;
  const v = findVma(migMm, vpn);
  if (v == 0 || (vmaFlags(v) & VM_SHARED) != 0 || vmaFile(v) != NONE) return false;
  const ptep = walkPte(mmPgd(migMm), vpn, true);
  if (ptep == 0) return false;
  const pte = load<u64>(ptep);
  if (pte != 0 && !(ptepresent(pte) && pteSpecial(pte) && ptePfn(pte) == ZERO_PFN)) return false;
  const write = (vmaFlags(v) & VM_WRITE) != 0;
  setMapping(d, anonMappingValue(vmaBacking(v)));
  setIndex(d, linearIndex(v, vpn));
  setFlagsOf(d, flagsOf(d) | (1 << PG_anon_exclusive) | (1 << PG_swapbacked) | (1 << PG_uptodate));
  getPage(d);
  pageDupRmap(d, migMm);
  if (vmaFlags(v) & VM_LOCKED) mlockPage(d);
  if (isDevicePrivatePage(d)) store<u64>(ptep, swpEntry(write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, d, 0));
  else store<u64>(ptep, mkPte(d, _PAGE_ACCESSED | (write ? _PAGE_RW | _PAGE_DIRTY : 0), vmaFlags(v)));
  return true;
}

// Not PG_mlocked nor PG_unevictable: the old page loses them with its last VM_LOCKED mapping,
// and the new page gains them (and its mlock_count) as remove_migration_ptes maps it there.
const MIGRATED_FLAGS: u32 = (1 << PG_dirty) | (1 << PG_uptodate) | (1 << PG_swapbacked) | (1 << PG_referenced) |
  (1 << PG_active) | (1 << PG_workingset);

// Pin control subsystems' holds of `from`, their references and PG_pin, go to `to`.
function moveHolds(from: u32, to: u32): void {
  const holds = pinpageHoldsOf(from);
  setRef(to, refOf(to) + <i32>holds);
  setRef(from, refOf(from) - <i32>holds);
  setPinpageHolds(to, pinpageHoldsOf(to) + holds);
  setPinpageHolds(from, 0);
  clearFlag(from, PG_pin);
  setFlag(to, PG_pin);
}

// folio_migrate_mapping + folio_migrate_flags: the new page takes the old one's place.
function migrateMapping(s: u32, d: u32): bool {
  // A page that left its object (truncated while a reference held it) has no mapping to
  // move: the kernel's !mapping case, the references alone.
  if (mappingOf(s) == 0) return migrateUnmapped(s, d);
  const anon = pageIsAnon(s);
  const extra: i32 = s == migFaultPage ? 1 : 0;
  const holds: i32 = migPinpage ? <i32>pinpageHoldsOf(s) : 0;
  const expected = mapcountOf(s) + (anon ? 0 : 1) + extra + holds + 1;
  if (refOf(s) != expected) return false;
  if (!anon) {
    // The page cache slot moves to the new page, with its reference.
    const mapping = mappingOf(s);
    const slot = mappingSlot(fileMappingId(mapping), <u64>indexOf(s), false);
    if (slot == 0) return false;
    store<u64>(slot, pfnPte(d, _PAGE_PRESENT));
    setRef(d, refOf(d) + 1);
    setRef(s, refOf(s) - 1);
    if (mappingIsFile(fileMappingId(mapping))) fileLruReplace(s, d);
  }
  // The subsystems' holds, with their references and PG_pin, go to the new page.
  if (holds != 0) moveHolds(s, d);
  setMapping(d, mappingOf(s));
  setIndex(d, indexOf(s));
  setFlagsOf(d, flagsOf(d) | (flagsOf(s) & MIGRATED_FLAGS));
  return true;
}

// folio_migrate_mapping for a page of no mapping: only the references must match.
function migrateUnmapped(s: u32, d: u32): bool {
  const extra: i32 = s == migFaultPage ? 1 : 0;
  const holds: i32 = migPinpage ? <i32>pinpageHoldsOf(s) : 0;
  if (refOf(s) != mapcountOf(s) + extra + holds + 1) return false;
  if (holds != 0) moveHolds(s, d);
  setFlagsOf(d, flagsOf(d) | (flagsOf(s) & MIGRATED_FLAGS));
  return true;
}

// An abort after the pages step: the page cache slot migrateMapping gave the new page `d`
// goes back to the old page `s`, with its reference, so the file and the restored PTEs agree.
function unmigrateMapping(d: u32, s: u32): void {
  const mapping = mappingOf(d);
  if (mapping == 0 || pageIsAnon(d)) return;
  const slot = mappingSlot(fileMappingId(mapping), <u64>indexOf(d), false);
  if (slot == 0 || ptePfn(load<u64>(slot)) != d) return;
  store<u64>(slot, pfnPte(s, _PAGE_PRESENT));
  setRef(s, refOf(s) + 1);
  setRef(d, refOf(d) - 1);
  if (mappingIsFile(fileMappingId(mapping))) fileLruReplace(d, s);
}

// migrate_vma_pages / migrate_device_pages for entry i.
@inline function pagesOne(i: u32): void {
  const e = srcAt(i);
  if ((e & MIGRATE_PFN_MIGRATE) == 0) return;
  const d = entryPfn(dstAt(i));
  if (d == NONE) {
    setSrc(i, e & ~MIGRATE_PFN_MIGRATE);
    return;
  }
  const s = entryPfn(e);
  if (s == NONE) {
    if (migMm == NONE || !insertPage(i, d)) setSrc(i, e & ~MIGRATE_PFN_MIGRATE);
    return;
  }
  // Only anon pages may move into device memory, and file pages with MIGRATE_VMA_SELECT_FILE.
  if (isZoneDevicePage(d) && !pageIsAnon(s) && !(migFile && mappingIsFile(fileMappingId(mappingOf(s))))) {
    setSrc(i, e & ~MIGRATE_PFN_MIGRATE);
    return;
  }
  if (!migrateMapping(s, d)) setSrc(i, e & ~MIGRATE_PFN_MIGRATE);
}

export function migratePages(npages: u32): void {
  for (let i: u32 = 0; i < npages; i++) pagesOne(i);
}

// pgmigrate_success/fail and RSS of the finalize running, added up once at its end.
let finSuccess: i64 = 0;
let finFail: i64 = 0;

let finRssAnon: i32 = 0;
let finRssShmem: i32 = 0;
let finNrAnon: i64 = 0;

// The new page `d` takes migration entry `pte`'s place at `ptep` in a VMA with `vmFlags`: a
// device-private entry or a PTE, writable only for a write entry in a VM_WRITE VMA. Returns
// whether d is device memory.
@inline function mapNewPage(ptep: usize, pte: u64, vmFlags: u32, d: u32): bool {
  const writable = mayWrite(swpType(pte) == SWP_MIGRATION_WRITE, vmFlags, d);
  const z = zoneOf(d);
  const device = zoneIsDevice(z);
  if (device && zonePgmapType(z) == MEMORY_DEVICE_PRIVATE) {
    store<u64>(ptep, swpEntry(writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, d, 0));
  } else {
    store<u64>(ptep, mkPte(d, (pte & (_PAGE_ACCESSED | _PAGE_DIRTY)) | (writable ? _PAGE_RW : 0), vmFlags));
  }
  return device;
}

// The usual success case of finalizeOne in one go: the new page `d` replaces `s` at the
// collecting mm's own migration entry, which no rmap walk is needed for. The map's
// reference and the migration's put cancel out. false (nothing done) for any other case.
@inline function finalizeOwn(i: u32, s: u32, d: u32): bool {
  if (load<u8>(migShared + i) != 0) return false;
  const vpn = migStart + <u64>i;
  const ptep = knownPtep(vpn);
  if (ptep == 0) return false;
  const pte = load<u64>(ptep);
  if (!isMigrationEntryFor(pte, s)) return false;
  const t = swpType(pte);
  const vmFlags = knownVmaFlags(vpn);
  const device = mapNewPage(ptep, pte, vmFlags, d);
  const anon = pageIsAnon(d);
  let f = flagsOf(d) & ~(1 << PG_locked);
  if (t != SWP_MIGRATION_READ && anon) f |= 1 << PG_anon_exclusive;
  if (!device) f |= 1 << PG_lru;
  setFlagsOf(d, f);
  if (vmFlags & VM_LOCKED) mlockPage(d);
  const m = mapcountOf(d);
  setMapcount(d, m + 1);
  if (anon) {
    if (m == 0) statAdd(NR_ANON_PAGES, 1);
    finRssAnon++;
  } else {
    finRssShmem++;
  }
  finSuccess++;
  if (s != migFaultPage) unlockPage(s);
  putPage(s);
  return true;
}

// migrate_vma_finalize / migrate_device_finalize for entry i: remap to the new page, or restore.
@inline function finalizeOne(i: u32): void {
  const e = srcAt(i);
  const s = entryPfn(e);
  const d = entryPfn(dstAt(i));
  if (s != NONE && d != NONE && (e & MIGRATE_PFN_MIGRATE) != 0 && migMm != NONE && finalizeOwn(i, s, d)) return;
  if (s == NONE) {
    if (d != NONE) {
      if ((e & MIGRATE_PFN_MIGRATE) != 0) finSuccess++;
      else finFail++;
      if (!isZoneDevicePage(d)) setFlag(d, PG_lru);
      unlockPage(d);
      putPage(d);
    }
    return;
  }
  let newPfn = s;
  if ((e & MIGRATE_PFN_MIGRATE) != 0 && d != NONE) {
    newPfn = d;
    finSuccess++;
  } else {
    finFail++;
    if (d != NONE) {
      // An abort after the pages step: the holds it moved go back with the page.
      if (migPinpage && pinpageHoldsOf(d) != 0) moveHolds(d, s);
      unmigrateMapping(d, s);
      unlockPage(d);
      putPage(d);
    }
  }
  removeMigrationPtes(i, s, newPfn);
  if (!isZoneDevicePage(newPfn)) setFlag(newPfn, PG_lru);
  if (s != migFaultPage) unlockPage(s);
  putPage(s);
  if (newPfn != s) {
    unlockPage(newPfn);
    putPage(newPfn);
  }
}

function finalizeBegin(): void {
  forgetKnown();
  finSuccess = 0;
  finFail = 0;
  finRssAnon = 0;
  finRssShmem = 0;
  finNrAnon = 0;
  ownZone = NONE;
  freePagesCachedReset();
}

function finalizeEnd(): void {
  statAdd(PGMIGRATE_SUCCESS, finSuccess);
  statAdd(PGMIGRATE_FAIL, finFail);
  statAdd(NR_ANON_PAGES, finNrAnon);
  if (migMm != NONE) {
    addMmRss(migMm, true, finRssAnon);
    addMmRss(migMm, false, finRssShmem);
  }
  migMm = NONE;
  migFaultPage = NONE;
  migNpages = 0;
  migRo = false;
  migPinpage = false;
  migFile = false;
}

export function migrateFinalize(npages: u32): void {
  finalizeBegin();
  for (let i: u32 = 0; i < npages; i++) finalizeOne(i);
  finalizeEnd();
}

// The zone facts pagesFinalizeOwn needs of a new page: consecutive pages mostly share a
// zone, so they are looked up again only when the zone changes.
let ownZone: u32 = NONE;
let ownZoneDevice: bool = false;
let ownZonePrivate: bool = false;

@inline function ownZoneOf(d: u32): void {
  const z = zoneOf(d);
  if (z == ownZone) return;
  ownZone = z;
  ownZoneDevice = zoneIsDevice(z);
  ownZonePrivate = ownZoneDevice && zonePgmapType(z) == MEMORY_DEVICE_PRIVATE;
}

// pagesOne then finalizeOne for the usual entry, in one go: an anon page that only the
// collecting mm's own migration entry maps moves to its new page `d`. Every check comes
// before any change; false (nothing done) for any other case.
@inline function pagesFinalizeOwn(i: u32): bool {
  const e = srcAt(i);
  const de = dstAt(i);
  if ((e & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) != (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID) || (de & MIGRATE_PFN_VALID) == 0) return false;
  if (load<u8>(migShared + i) != 0) return false;
  const s = <u32>(e >> MIGRATE_PFN_SHIFT);
  const d = <u32>(de >> MIGRATE_PFN_SHIFT);
  const mapping = mappingOf(s);
  if ((mapping & PAGE_MAPPING_ANON) == 0) return false;
  // migrateMapping's check: no references beyond the mappings, ours and the fault's.
  const ref = refOf(s);
  if (ref != mapcountOf(s) + (s == migFaultPage ? 1 : 0) + 1) return false;
  const vpn = migStart + <u64>i;
  const ptep = knownPtep(vpn);
  if (ptep == 0) return false;
  const pte = load<u64>(ptep);
  if (!isMigrationEntryFor(pte, s)) return false;
  // migrateMapping: the new page takes the old one's place.
  setMapping(d, mapping);
  setIndex(d, indexOf(s));
  // finalizeOwn: the new page is mapped where the entry was (mapNewPage for an anon page).
  const t = swpType(pte);
  const vmFlags = knownVmaFlags(vpn);
  const writable = t == SWP_MIGRATION_WRITE && (vmFlags & VM_WRITE) != 0;
  ownZoneOf(d);
  if (ownZonePrivate) store<u64>(ptep, swpEntry(writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, d, 0));
  else store<u64>(ptep, mkPte(d, (pte & (_PAGE_ACCESSED | _PAGE_DIRTY)) | (writable ? _PAGE_RW : 0), vmFlags));
  let f = (flagsOf(d) | (flagsOf(s) & MIGRATED_FLAGS)) & ~(1 << PG_locked);
  if (t != SWP_MIGRATION_READ) f |= 1 << PG_anon_exclusive;
  if (!ownZoneDevice) f |= 1 << PG_lru;
  setFlagsOf(d, f);
  if (vmFlags & VM_LOCKED) mlockPage(d);
  const m = mapcountOf(d);
  setMapcount(d, m + 1);
  if (m == 0) finNrAnon++;
  finRssAnon++;
  finSuccess++;
  // The migration's reference goes; the last one frees the page, flags and all.
  if (ref == 1) {
    freePageCached(s);
  } else {
    if (s != migFaultPage) unlockPage(s);
    setRef(s, ref - 1);
  }
  return true;
}

// pagesFinalizeOwn for entries i..i+3 at once, when all four are its simplest case:
// consecutive old pages s..s+3, each with nothing but the migration's reference left, mapped
// by the collecting mm's own migration entries in one page table and one VMA without
// VM_LOCKED, going to consecutive fresh pages d..d+3 of one zone; the old pages, of one
// zone too, are freed. The struct page fields move four lanes at a time; the outcome is
// the four single steps'. Every check comes first; false (nothing done) otherwise.
@inline function pagesFinalizeOwn4(i: u32): bool {
  const e = srcAt(i);
  const de = dstAt(i);
  const s = <u32>(e >> MIGRATE_PFN_SHIFT);
  const d = <u32>(de >> MIGRATE_PFN_SHIFT);
  for (let k: u32 = 0; k < 4; k++) {
    const ek = srcAt(i + k);
    const dk = dstAt(i + k);
    if ((ek & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) != (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID) || (dk & MIGRATE_PFN_VALID) == 0) return false;
    if (<u32>(ek >> MIGRATE_PFN_SHIFT) != s + k || <u32>(dk >> MIGRATE_PFN_SHIFT) != d + k) return false;
  }
  if (load<u32>(migShared + i) != 0 || migFaultPage - s < 4) return false;
  if (s + 3 >= nframes || d + 3 >= nframes || zoneOf(s) != zoneOf(s + 3) || zoneOf(d) != zoneOf(d + 3)) return false;
  const sAt = <usize>s << 2;
  const dAt = <usize>d << 2;
  // Anon old pages with one reference and no mapping left, fresh order-0 new pages.
  const mapping = v128.load(pageMapping + sAt);
  if (!i32x4.all_true(v128.and(mapping, i32x4.splat(PAGE_MAPPING_ANON)))) return false;
  if (!i32x4.all_true(i32x4.eq(v128.load(pageRef + sAt), i32x4.splat(1)))) return false;
  if (v128.any_true(v128.load(pageMapcount + sAt)) || v128.any_true(v128.load(pageMapcount + dAt))) return false;
  if (load<u32>(pageOrder + <usize>s) != 0) return false;
  const vpn = migStart + <u64>i;
  if ((<u32>vpn & 511) > 508) return false;
  const ptep = knownPtep(vpn);
  if (ptep == 0) return false;
  const vmFlags = knownVmaFlags(vpn);
  if (vpn + 3 >= knownVmaEnd || (vmFlags & VM_LOCKED) != 0) return false;
  const p0 = load<u64>(ptep);
  const p1 = load<u64>(ptep + 8);
  const p2 = load<u64>(ptep + 16);
  const p3 = load<u64>(ptep + 24);
  if (!isMigrationEntryFor(p0, s) || !isMigrationEntryFor(p1, s + 1) || !isMigrationEntryFor(p2, s + 2) || !isMigrationEntryFor(p3, s + 3)) return false;
  // migrateMapping, four at a time.
  v128.store(pageMapping + dAt, mapping);
  v128.store(pageIndex + (dAt << 1), v128.load(pageIndex + (sAt << 1)));
  v128.store(pageIndex + (dAt << 1) + 16, v128.load(pageIndex + (sAt << 1) + 16));
  // finalizeOwn: each new page mapped where its entry was.
  ownZoneOf(d);
  const w = (vmFlags & VM_WRITE) != 0;
  store<u64>(ptep, ownPte(p0, d, w, vmFlags));
  store<u64>(ptep + 8, ownPte(p1, d + 1, w, vmFlags));
  store<u64>(ptep + 16, ownPte(p2, d + 2, w, vmFlags));
  store<u64>(ptep + 24, ownPte(p3, d + 3, w, vmFlags));
  const exclusive = i32x4(ownExclusive(p0), ownExclusive(p1), ownExclusive(p2), ownExclusive(p3));
  const moved = v128.and(v128.load(pageFlags + sAt), i32x4.splat(<i32>MIGRATED_FLAGS));
  let f = v128.andnot(v128.or(v128.load(pageFlags + dAt), moved), i32x4.splat(1 << PG_locked));
  f = v128.or(f, exclusive);
  if (!ownZoneDevice) f = v128.or(f, i32x4.splat(1 << PG_lru));
  v128.store(pageFlags + dAt, f);
  v128.store(pageMapcount + dAt, i32x4.splat(1));
  finNrAnon += 4;
  finRssAnon += 4;
  finSuccess += 4;
  // The migration's references were the last ones.
  freePagesCached4(s);
  return true;
}

// The mapping of new page `d` (of the zone ownZoneOf looked up) for migration entry `pte`
// in a VMA with `vmFlags`, anon: a device-private entry or a PTE, writable for a write entry.
@inline function ownPte(pte: u64, d: u32, vmaWrite: bool, vmFlags: u32): u64 {
  const writable = vmaWrite && swpType(pte) == SWP_MIGRATION_WRITE;
  if (ownZonePrivate) return swpEntry(writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, d, 0);
  return mkPte(d, (pte & (_PAGE_ACCESSED | _PAGE_DIRTY)) | (writable ? _PAGE_RW : 0), vmFlags);
}

// PG_anon_exclusive for the new page of migration entry `pte`: all but a READ entry's.
@inline function ownExclusive(pte: u64): i32 {
  return swpType(pte) != SWP_MIGRATION_READ ? 1 << PG_anon_exclusive : 0;
}

// migrate_vma_pages and migrate_vma_finalize in one pass, entry by entry. Only for a
// dst filled by allocAndCopy alone: its pages are fresh, distinct and not sources, so
// no entry's pages step can see another entry's finalize, and the result is the two
// passes' result.
export function migratePagesFinalize(npages: u32): void {
  finalizeBegin();
  const own = migMm != NONE;
  for (let i: u32 = 0; i < npages; i++) {
    if (own && migLanes && i + 4 <= npages && pagesFinalizeOwn4(i)) {
      migLaneGroups++;
      i += 3;
      continue;
    }
    if (own && pagesFinalizeOwn(i)) continue;
    pagesOne(i);
    finalizeOne(i);
  }
  finalizeEnd();
}
