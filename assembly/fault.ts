// The CPU fault path (handle_mm_fault): demand-zero and zero-page faults, shmem
// faults, write-protect faults with COW or reuse. Returns a VM_FAULT-like code.
import { NONE } from "./layout";
import { testFlag, setFlag, refOf, mapcountOf, getPage, pageIsAnon, PG_locked, PG_anon_exclusive, PG_dirty, PG_uptodate, PG_swapbacked, PG_lru, setMapping, setIndex } from "./memmap";
import { freePages, putPage, allocLocalPcp } from "./alloc";
import { allocUserPagePolicy, userPageNode, MPOL_DEFAULT } from "./mempolicy";
import { allocInjectArmed, allocInjectedZone } from "./inject";
import { zonelist } from "./alloc";
import { mlockPage, munlockPage } from "./mlock";
import { walkPte } from "./pagetable";
import {
  _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_SPECIAL, _PAGE_RO_MIGRATION, pfnPte, userPte, ptePfn, pteWrite, pteSpecial,
  isSwapPte, pteProtnone, swpType, swpOffset, SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE,
  SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE, SWP_HWPOISON,
} from "./pte";
import { findVma, vmaFlags, vmaBacking, vmaFile, linearIndex, mmPgd, mmNode, vmaPolicyMode, mmPolicyMode, mmHasNotifiers, VM_WRITE, VM_SHARED, VM_LOCKED, VM_ACCESS_FLAGS, VM_PFNMAP, VM_MIXEDMAP } from "./mm";
import { pfnmapFault } from "./pmem";
import { clearFrame, copyFrame } from "./content";
import { pageAddNewAnonRmap, pageDupRmap, pageRemoveRmap, ZERO_PFN, fileMappingValue, anonMappingValue } from "./rmap";
import { mappingSlot, mappingStore, mappingSize, mappingIsFile } from "./mapping";
import { filemapAddFolio, folioMarkDirty, markPageAccessed, shrinkFileLru } from "./filemap";
import { reclaimLazyfree } from "./reclaim";
import { isDevicePrivatePage } from "./device";
import { swpEntry } from "./pte";
import { statAdd, PGFAULT, COW_FAULT, ZERO_PAGE_FAULT, REUSE_FAULT, NR_SHMEM, NR_FILE_PAGES, PGMIGRATE_ENTRY_WAIT } from "./stat";

export const FAULT_OK: u32 = 0;
export const FAULT_SIGSEGV_MAPERR: u32 = 1;
export const FAULT_SIGSEGV_ACCERR: u32 = 2;
export const FAULT_OOM: u32 = 3;
export const FAULT_SIGBUS: u32 = 4;
// Faults the core hands back to TypeScript, which runs the driver or notifier and retries.
export const FAULT_DEVICE_PRIVATE: u32 = 5;
export const FAULT_DEVICE_EXCLUSIVE: u32 = 6;
export const FAULT_MIGRATION: u32 = 7;
export const FAULT_NOTIFY: u32 = 8;
export const FAULT_HWPOISON: u32 = 9;
// A file page was added to the cache locked and must be read in (faultPfn) before a retry.
export const FAULT_READPAGE: u32 = 10;
// A page of a file on a DAX mount: TypeScript finds (or allocates) its pmem sector and inserts the pfn.
export const FAULT_DAX: u32 = 11;

// The page behind the entry of the last FAULT_DEVICE_* / FAULT_MIGRATION.
export let faultPfn: u32 = 0;

// A COW replaces a PTE, which interval notifiers must hear of before it happens
// (MMU_NOTIFY_CLEAR): the first attempt returns FAULT_NOTIFY, TS invalidates, and
// marks this page as announced for the retry.
let notifiedMm: u32 = NONE;
let notifiedVpn: u64 = 0;

export function setNotified(mm: u32, vpn: u64): void {
  notifiedMm = mm;
  notifiedVpn = vpn;
}

function needNotify(mm: u32, vpn: u64): bool {
  if (!mmHasNotifiers(mm)) return false;
  if (notifiedMm == mm && notifiedVpn == vpn) {
    notifiedMm = NONE;
    return false;
  }
  return true;
}

// The PTE slot the last successful fault filled, so the access need not walk again.
export let faultPtep: usize = 0;

const PTE_USER_BITS: u64 = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;

// A movable user page for `mm` at `vpn` of VMA `v`, where the memory policy puts it; under
// pressure, lazily-freed pages and then clean file pages are reclaimed first.
export function allocUserPage(mm: u32, v: usize, vpn: u64): u32 {
  // An injected failure fails the whole request, reclaim included (should_fail_alloc_page).
  if (allocInjectArmed && allocInjectedZone(load<u32>(zonelist(userPageNode(mm, v, vpn), true)))) return NONE;
  // No policy anywhere: the local node's pcp list, as the default policy would pick.
  if (vmaPolicyMode(v) == MPOL_DEFAULT && mmPolicyMode(mm) == MPOL_DEFAULT) {
    const pfn = allocLocalPcp(mmNode(mm));
    if (pfn != NONE) return pfn;
  }
  let pfn = allocUserPagePolicy(mm, v, vpn);
  if (pfn == NONE && reclaimLazyfree(32) > 0) pfn = allocUserPagePolicy(mm, v, vpn);
  if (pfn == NONE && shrinkFileLru(32) > 0) pfn = allocUserPagePolicy(mm, v, vpn);
  return pfn;
}

export function handleMmFault(mm: u32, vpn: u64, write: bool): u32 {
  return handleMmFaultAt(mm, vpn, write, 0);
}

// GUP's faults (faultin_page). `unshare` is FAULT_FLAG_UNSHARE: a shared anon page (or the
// zero page) mapped read-only gets an exclusive copy, still mapped read-only. `force` is
// FOLL_FORCE: GUP checked the VMA itself, so the VMA's protection does not refuse the fault;
// the PTE it makes still follows that protection (read-only, or PROT_NONE).
let gupUnshare = false;
let gupForce = false;

export function handleGupFault(mm: u32, vpn: u64, write: bool, unshare: bool, force: bool): u32 {
  gupUnshare = unshare;
  gupForce = force;
  const r = handleMmFaultAt(mm, vpn, write && !unshare, 0);
  gupUnshare = false;
  gupForce = false;
  return r;
}

// The fault path with the PTE slot already known (0: walk, allocating tables).
export function handleMmFaultAt(mm: u32, vpn: u64, write: bool, knownPtep: usize): u32 {
  const v = findVma(mm, vpn);
  if (v == 0) return FAULT_SIGSEGV_MAPERR;
  const flags = vmaFlags(v);
  // x86: any of read/write/exec makes a page readable.
  if (!gupForce && (write ? (flags & VM_WRITE) == 0 : (flags & VM_ACCESS_FLAGS) == 0)) return FAULT_SIGSEGV_ACCERR;
  const ptep = knownPtep != 0 ? knownPtep : walkPte(mmPgd(mm), vpn, true);
  if (ptep == 0) return FAULT_OOM;
  faultPtep = ptep;
  statAdd(PGFAULT, 1);
  const pte = load<u64>(ptep);
  if (pte == 0) {
    if (flags & (VM_PFNMAP | VM_MIXEDMAP)) {
      if (vmaFile(v) != NONE) return FAULT_DAX;
      return pfnmapFault(v, vpn, ptep, write) ? FAULT_OK : FAULT_SIGBUS;
    }
    if (flags & VM_SHARED) return doSharedFault(mm, v, vpn, ptep, write);
    if (vmaFile(v) != NONE) return doPrivateFileFault(mm, v, vpn, ptep, write);
    return doAnonymousPage(mm, v, vpn, ptep, write);
  }
  if (isSwapPte(pte)) {
    const t = swpType(pte);
    faultPfn = swpOffset(pte);
    if (t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ) return FAULT_DEVICE_PRIVATE;
    if (t == SWP_DEVICE_EXCLUSIVE) return FAULT_DEVICE_EXCLUSIVE;
    if (t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE) {
      statAdd(PGMIGRATE_ENTRY_WAIT, 1);
      return FAULT_MIGRATION;
    }
    if (t == SWP_HWPOISON) return FAULT_HWPOISON;
    return FAULT_SIGBUS;
  }
  if (pteProtnone(pte) && !gupForce) return FAULT_SIGSEGV_ACCERR;
  // A read-only migration lets readers through; a writer (or GUP's unshare, which would
  // replace the page) waits for its end, like a migration entry, so nothing lands on the
  // page being copied.
  if ((write || gupUnshare) && (pte & _PAGE_RO_MIGRATION) != 0) {
    faultPfn = ptePfn(pte);
    statAdd(PGMIGRATE_ENTRY_WAIT, 1);
    return FAULT_MIGRATION;
  }
  // wp_pfn_shared: a special PTE of a shared VM_PFNMAP/VM_MIXEDMAP VMA has no page to
  // copy or dirty; the PTE itself becomes writable.
  if (write && !pteWrite(pte) && pteSpecial(pte) && (flags & (VM_PFNMAP | VM_MIXEDMAP)) != 0) {
    store<u64>(ptep, pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
    return FAULT_OK;
  }
  if (gupUnshare && !pteWrite(pte)) return doWpPage(mm, v, vpn, ptep, pte, true);
  if (write && !pteWrite(pte)) return doWpPage(mm, v, vpn, ptep, pte, false);
  store<u64>(ptep, pte | _PAGE_ACCESSED);
  return FAULT_OK;
}

function doAnonymousPage(mm: u32, v: usize, vpn: u64, ptep: usize, write: bool): u32 {
  if (!write) {
    store<u64>(ptep, userPte(ZERO_PFN, PTE_USER_BITS | _PAGE_SPECIAL, vmaFlags(v)));
    statAdd(ZERO_PAGE_FAULT, 1);
    return FAULT_OK;
  }
  const pfn = allocUserPage(mm, v, vpn);
  if (pfn == NONE) return FAULT_OOM;
  clearFrame(pfn);
  pageAddNewAnonRmap(pfn, mm, vmaBacking(v), linearIndex(v, vpn));
  if (vmaFlags(v) & VM_LOCKED) mlockPage(pfn);
  store<u64>(ptep, userPte(pfn, PTE_USER_BITS | _PAGE_RW | _PAGE_DIRTY, vmaFlags(v)));
  return FAULT_OK;
}

// The cached page of `id` at `index`, or NONE with the fault code in cacheFault: a file page
// missing from the cache is added locked for TypeScript to read in (FAULT_READPAGE), a page
// locked by a migration or a read makes the fault wait (lock_page in filemap_fault).
let cacheFault: u32 = FAULT_OK;
function findCachedPage(mm: u32, v: usize, vpn: u64, id: u32, index: u64): u32 {
  if (index >= <u64>mappingSize(id)) { cacheFault = FAULT_SIGBUS; return NONE; }
  const slot = mappingSlot(id, index, true);
  if (slot == 0) { cacheFault = FAULT_OOM; return NONE; }
  const e = load<u64>(slot);
  if (e != 0) {
    const pfn = ptePfn(e);
    if (testFlag(pfn, PG_locked)) {
      faultPfn = pfn;
      statAdd(PGMIGRATE_ENTRY_WAIT, 1);
      cacheFault = FAULT_MIGRATION;
      return NONE;
    }
    return pfn;
  }
  const pfn = allocUserPage(mm, v, vpn);
  if (pfn == NONE) { cacheFault = FAULT_OOM; return NONE; }
  if (mappingIsFile(id)) {
    filemapAddFolio(slot, id, index, pfn);
    faultPfn = pfn;
    cacheFault = FAULT_READPAGE;
    return NONE;
  }
  // shmem_get_folio: a new zeroed page.
  clearFrame(pfn);
  setFlag(pfn, PG_uptodate);
  setFlag(pfn, PG_swapbacked);
  setFlag(pfn, PG_lru);
  setMapping(pfn, fileMappingValue(id));
  setIndex(pfn, index);
  mappingStore(slot, id, pfn);
  statAdd(NR_SHMEM, 1);
  statAdd(NR_FILE_PAGES, 1);
  return pfn;
}

// shmem_fault / filemap_fault + finish_fault: find or create the page in the object's cache, map it.
function doSharedFault(mm: u32, v: usize, vpn: u64, ptep: usize, write: bool): u32 {
  const id = vmaBacking(v);
  const pfn = findCachedPage(mm, v, vpn, id, linearIndex(v, vpn));
  if (pfn == NONE) return cacheFault;
  if (isDevicePrivatePage(pfn)) return mapDeviceFilePage(mm, v, ptep, pfn);
  getPage(pfn);
  pageDupRmap(pfn, mm);
  if (vmaFlags(v) & VM_LOCKED) mlockPage(pfn);
  let bits = PTE_USER_BITS;
  if (mappingIsFile(id)) {
    // A file mapping wants write notification: a read maps the page read-only, so the first
    // store faults (do_wp_page) and dirties the page for writeback.
    markPageAccessed(pfn);
    if (write) {
      bits |= _PAGE_RW | _PAGE_DIRTY;
      folioMarkDirty(pfn);
    }
  } else {
    // shmem needs no write notification: a writable VMA maps the page writable at once.
    if (vmaFlags(v) & VM_WRITE) bits |= _PAGE_RW;
    if (write) {
      bits |= _PAGE_DIRTY;
      setFlag(pfn, PG_dirty);
    }
  }
  store<u64>(ptep, userPte(pfn, bits, vmaFlags(v)));
  return FAULT_OK;
}

// A file page the cache holds in device-private memory (MIGRATE_VMA_SELECT_FILE): the CPU
// cannot map it, so the PTE gets the device entry the page's other mappings have, and the
// fault goes to its driver's migrate_to_ram like any device-private entry's.
function mapDeviceFilePage(mm: u32, v: usize, ptep: usize, pfn: u32): u32 {
  const flags = vmaFlags(v);
  const write = (flags & (VM_SHARED | VM_WRITE)) == (VM_SHARED | VM_WRITE);
  getPage(pfn);
  pageDupRmap(pfn, mm);
  store<u64>(ptep, swpEntry(write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, pfn, 0));
  faultPfn = pfn;
  return FAULT_DEVICE_PRIVATE;
}

// do_read_fault / do_cow_fault of a private file mapping: a read maps the cached page
// read-only, a write copies it into a new anon page at once.
function doPrivateFileFault(mm: u32, v: usize, vpn: u64, ptep: usize, write: bool): u32 {
  const index = linearIndex(v, vpn);
  const pfn = findCachedPage(mm, v, vpn, vmaFile(v), index);
  if (pfn == NONE) return cacheFault;
  if (isDevicePrivatePage(pfn)) return mapDeviceFilePage(mm, v, ptep, pfn);
  markPageAccessed(pfn);
  if (!write) {
    getPage(pfn);
    pageDupRmap(pfn, mm);
    if (vmaFlags(v) & VM_LOCKED) mlockPage(pfn);
    store<u64>(ptep, userPte(pfn, PTE_USER_BITS, vmaFlags(v)));
    return FAULT_OK;
  }
  // The reference keeps reclaim away from the cached page while we allocate.
  getPage(pfn);
  const copy = allocUserPage(mm, v, vpn);
  if (copy == NONE) {
    putPage(pfn);
    return FAULT_OOM;
  }
  copyFrame(copy, pfn);
  putPage(pfn);
  pageAddNewAnonRmap(copy, mm, vmaBacking(v), index);
  if (vmaFlags(v) & VM_LOCKED) mlockPage(copy);
  store<u64>(ptep, userPte(copy, PTE_USER_BITS | _PAGE_RW | _PAGE_DIRTY, vmaFlags(v)));
  statAdd(COW_FAULT, 1);
  return FAULT_OK;
}

// do_wp_page: a write to a present, write-protected PTE in a VM_WRITE VMA (or a FOLL_FORCE
// write to a private one without VM_WRITE), or an unshare (the new PTE stays read-only).
function doWpPage(mm: u32, v: usize, vpn: u64, ptep: usize, pte: u64, unshare: bool): u32 {
  const old = ptePfn(pte);
  const vmFlags = vmaFlags(v);
  if (vmFlags & VM_SHARED) {
    if (unshare) return FAULT_OK;
    folioMarkDirty(old);
    store<u64>(ptep, pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
    return FAULT_OK;
  }
  const bits = unshare ? PTE_USER_BITS : PTE_USER_BITS | _PAGE_RW | _PAGE_DIRTY;
  if (pteSpecial(pte)) {
    // Breaking a zero-page mapping: a fresh zeroed page, nothing to copy.
    if (needNotify(mm, vpn)) return FAULT_NOTIFY;
    const pfn = allocUserPage(mm, v, vpn);
    if (pfn == NONE) return FAULT_OOM;
    clearFrame(pfn);
    pageAddNewAnonRmap(pfn, mm, vmaBacking(v), linearIndex(v, vpn));
    if (vmFlags & VM_LOCKED) mlockPage(pfn);
    store<u64>(ptep, userPte(pfn, bits, vmFlags));
    return FAULT_OK;
  }
  // wp_can_reuse_anon_folio: exclusive, or nobody else holds a reference.
  if (testFlag(old, PG_anon_exclusive) || (pageIsAnon(old) && refOf(old) == 1 && mapcountOf(old) == 1)) {
    // folio_move_anon_rmap: the page now belongs to this VMA's anon_vma alone.
    setMapping(old, anonMappingValue(vmaBacking(v)));
    setFlag(old, PG_anon_exclusive);
    if (unshare) return FAULT_OK;
    // Without VM_WRITE (FOLL_FORCE) the PTE stays read-only: GUP follows the exclusive page.
    const rw = (vmFlags & VM_WRITE) != 0 && (pte & _PAGE_PRESENT) != 0 ? _PAGE_RW : 0;
    store<u64>(ptep, pte | rw | _PAGE_DIRTY | _PAGE_ACCESSED);
    statAdd(REUSE_FAULT, 1);
    return FAULT_OK;
  }
  // wp_page_copy. The extra reference keeps reclaim away from `old` while we allocate.
  if (needNotify(mm, vpn)) return FAULT_NOTIFY;
  getPage(old);
  const pfn = allocUserPage(mm, v, vpn);
  if (pfn == NONE) {
    putPage(old);
    return FAULT_OOM;
  }
  if (load<u64>(ptep) != pte) {
    // The PTE changed under us (pte_same failed): let the access retry.
    freePages(pfn, 0);
    putPage(old);
    return FAULT_OK;
  }
  copyFrame(pfn, old);
  pageAddNewAnonRmap(pfn, mm, vmaBacking(v), linearIndex(v, vpn));
  store<u64>(ptep, userPte(pfn, bits, vmFlags));
  if (vmFlags & VM_LOCKED) {
    mlockPage(pfn);
    munlockPage(old, true);
  }
  pageRemoveRmap(old, mm);
  putPage(old);
  putPage(old);
  statAdd(COW_FAULT, 1);
  return FAULT_OK;
}
