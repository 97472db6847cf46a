// get_user_pages and pin_user_pages (mm/gup.c): one call walks a range of a process's page
// table and takes a reference (FOLL_GET) or a pin (FOLL_PIN) on each page, writing the pfns
// to GUP_PAGES. It stops where TypeScript must act (a fault, which may call a driver, or an
// unshare) and is called again from there. Releasing validates the whole list first.
import { nframes, NONE } from "./layout";
import {
  refOf, setRef, pincountOf, setPincount, gupRefsOf, setGupRefs, flagsOf, setFlagsOf, orderOf, zoneOf, pageIsAnon,
  GUP_PIN_COUNTING_BIAS, PG_anon_exclusive, PG_dirty,
} from "./memmap";
import { freePages, zoneIsDevice, zonePgmapType, zoneType, zoneNode, ZONE_MOVABLE } from "./alloc";
import { MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_FS_DAX } from "./device";
import { pteTableBase } from "./pagetable";
import { _PAGE_PRESENT, _PAGE_RW, _PAGE_DIRTY, _PAGE_SPECIAL, ptePfn, pteProtnone } from "./pte";
import { findVma, vmaStart, vmaEnd, vmaFlags, mmPgd, setMmHasPinned, VM_WRITE, VM_SHARED, VM_MAYWRITE, VM_MAYSHARE } from "./mm";
import { ZERO_PFN } from "./rmap";
import { pageblockIsCma, blockClass, FL_ISOLATE } from "./pageblock";
import { statAdd, NR_FOLL_PIN_ACQUIRED, NR_FOLL_PIN_RELEASED } from "./stat";

// The FOLL_* bits the walk looks at, with the kernel's values.
export const FOLL_WRITE: u32 = 0x1;
export const FOLL_DUMP: u32 = 0x4;
export const FOLL_FORCE: u32 = 0x8;
export const FOLL_LONGTERM: u32 = 0x100;
export const FOLL_PIN: u32 = 1 << 19;

// Pages one call handles; each buffer holds that many u32 pfns.
export const GUP_MAX: u32 = 65536;
// The walk's output (and the input of a release that works in place).
export const gupPages: usize = memory.data(<i32>(GUP_MAX * 4), 16);
// A release's input copied from a caller's array, so a release never clobbers a walk's output.
export const gupIn: usize = memory.data(<i32>(GUP_MAX * 4), 16);

// Why the walk stopped before the end of the range.
export const GUP_STOP_FAULT: u32 = 1;
export const GUP_STOP_UNSHARE: u32 = 2;
export const GUP_STOP_EFAULT: u32 = 3;
export let gupStop: u32 = 0;
// For GUP_STOP_FAULT: is the fault a write fault?
export let gupStopWrite: bool = false;

// Why a release refused its list: the entry is not a frame, or holds no reference or pin of ours.
export const GUP_BAD_PFN: u32 = 1;
export const GUP_NOT_HELD: u32 = 2;
export let gupBadReason: u32 = 0;

const U64_NONE: u64 = 0xffffffffffffffff;

@inline function isCowMapping(vmFlags: u32): bool {
  return (vmFlags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE;
}

// can_follow_write_pte for a PTE without the write bit: FOLL_FORCE on a private mapping
// without VM_WRITE may write to an exclusive anon page (its COW was broken already).
@inline function canFollowForcedWrite(flags: u32, vmFlags: u32, pfn: u32): bool {
  if ((flags & FOLL_FORCE) == 0 || (vmFlags & (VM_SHARED | VM_MAYSHARE)) != 0) return false;
  if ((vmFlags & VM_MAYWRITE) == 0 || (vmFlags & VM_WRITE) != 0) return false;
  return pageIsAnon(pfn) && (flagsOf(pfn) & (1 << PG_anon_exclusive)) != 0;
}

// gup_must_unshare for a read-only PTE: a read pin of an anon page needs it exclusive (or a
// later COW would leave the pin on a page the process no longer maps); a long-term read pin
// of another page (the zero page) in a COW mapping needs a private copy.
@inline function mustUnshare(flags: u32, vmFlags: u32, pfn: u32): bool {
  if ((flags & (FOLL_WRITE | FOLL_PIN)) != FOLL_PIN) return false;
  if (pfn == ZERO_PFN || !pageIsAnon(pfn)) return (flags & FOLL_LONGTERM) != 0 && isCowMapping(vmFlags);
  return (flagsOf(pfn) & (1 << PG_anon_exclusive)) == 0;
}

@inline function stopFor(why: u32, write: bool): void {
  gupStop = why;
  gupStopWrite = write;
}

// __get_user_pages over entries [from, n) of the range at `start`: takes a reference or a pin
// on each page, its pfn into GUP_PAGES[i]. The zero page is returned but never counted.
// Returns n, or the index where it stopped (gupStop says why; entries before it are taken).
// The caller validated the VMAs and the flags.
export function gupWalk(mm: u32, start: u64, n: u32, from: u32, flags: u32): u32 {
  const pin = (flags & FOLL_PIN) != 0;
  const write = (flags & FOLL_WRITE) != 0;
  const pgd = mmPgd(mm);
  if (pin) setMmHasPinned(mm);
  // PTEs the run loops take as they are: present, no special page, and writable when
  // writing, or for a read pin (a read-only page must be checked for unsharing first).
  const fastMask: u64 = _PAGE_PRESENT | _PAGE_SPECIAL | (write || pin ? _PAGE_RW : 0);
  const fastWant: u64 = _PAGE_PRESENT | (write || pin ? _PAGE_RW : 0);
  // The VMA and the PTE table stay the same for runs of pages: looked up once per run.
  let vStart: u64 = 0;
  let vEnd: u64 = 0;
  let vmFlags: u32 = 0;
  let table: usize = 0;
  let tableVpn: u64 = U64_NONE;
  let pinned: u32 = 0;
  gupStop = 0;
  let i = from;
  while (i < n) {
    const vpn = start + <u64>i;
    if (vpn >= vEnd || vpn < vStart) {
      const v = findVma(mm, vpn);
      // A driver's migrate_to_ram, run for an earlier fault, may have unmapped the rest.
      if (v == 0) {
        stopFor(GUP_STOP_EFAULT, false);
        break;
      }
      vStart = vmaStart(v);
      vEnd = vmaEnd(v);
      vmFlags = vmaFlags(v);
    }
    if ((vpn & ~(<u64>511)) != tableVpn) {
      tableVpn = vpn & ~(<u64>511);
      table = pteTableBase(pgd, vpn);
    }
    let ptep = table == 0 ? 0 : table + (<usize>(<u32>vpn & 511) << 3);
    if (ptep != 0) {
      // The run: to the end of the PTE table, the VMA or the range, whichever comes first.
      let end = n;
      const tableLeft = <u64>(512 - (<u32>vpn & 511));
      if (<u64>(end - i) > tableLeft) end = i + <u32>tableLeft;
      if (<u64>(end - i) > vEnd - vpn) end = i + <u32>(vEnd - vpn);
      const k = grabRun(ptep, i, end, fastMask, fastWant, write, pin);
      if (pin) pinned += k - i;
      ptep += <usize>(k - i) << 3;
      i = k;
      if (i == end) continue;
    }
    // One page the run loops leave alone.
    const pte = ptep == 0 ? 0 : load<u64>(ptep);
    if ((pte & _PAGE_PRESENT) == 0 && !((flags & FOLL_FORCE) != 0 && pteProtnone(pte))) {
      // No page, a software entry, or PROT_NONE: the fault path brings the page (FOLL_DUMP
      // wants no zero-filled holes of anonymous memory).
      if (pte == 0 && (flags & FOLL_DUMP) != 0 && (vmFlags & VM_SHARED) == 0) stopFor(GUP_STOP_EFAULT, false);
      else stopFor(GUP_STOP_FAULT, write);
      break;
    }
    const pfn = ptePfn(pte);
    if (pte & _PAGE_SPECIAL) {
      // No struct page behind it but the zero page, which core dumps skip.
      if (pfn != ZERO_PFN || (flags & FOLL_DUMP) != 0) stopFor(GUP_STOP_EFAULT, false);
      else if (write) stopFor(GUP_STOP_FAULT, true);
      else if (mustUnshare(flags, vmFlags, pfn)) stopFor(GUP_STOP_UNSHARE, false);
      if (gupStop != 0) break;
      store<u32>(gupPages + (<usize>i << 2), ZERO_PFN);
      i++;
      continue;
    }
    if ((pte & _PAGE_RW) == 0) {
      if (write && !canFollowForcedWrite(flags, vmFlags, pfn)) stopFor(GUP_STOP_FAULT, true);
      else if (mustUnshare(flags, vmFlags, pfn)) stopFor(GUP_STOP_UNSHARE, false);
      if (gupStop != 0) break;
    }
    if (pin) {
      grabPin(pfn, pte, write);
      pinned++;
    } else {
      grabRef(pfn, pte, write);
    }
    store<u32>(gupPages + (<usize>i << 2), pfn);
    i++;
  }
  statAdd(NR_FOLL_PIN_ACQUIRED, <i64>pinned);
  return i;
}

// try_grab_folio with FOLL_PIN; FOLL_TOUCH marks a page written through GUP dirty.
@inline function grabPin(pfn: u32, pte: u64, write: bool): void {
  setRef(pfn, refOf(pfn) + GUP_PIN_COUNTING_BIAS);
  setPincount(pfn, pincountOf(pfn) + 1);
  if (write && (pte & _PAGE_DIRTY) == 0) setFlagsOf(pfn, flagsOf(pfn) | (1 << PG_dirty));
}

// try_grab_folio with FOLL_GET.
@inline function grabRef(pfn: u32, pte: u64, write: bool): void {
  setRef(pfn, refOf(pfn) + 1);
  setGupRefs(pfn, gupRefsOf(pfn) + 1);
  if (write && (pte & _PAGE_DIRTY) == 0) setFlagsOf(pfn, flagsOf(pfn) | (1 << PG_dirty));
}

// Takes entries [i, end) from the PTE at `ptep` (a pin, or a FOLL_GET reference) while their
// PTEs need nothing more; returns where it stopped.
function grabRun(ptep: usize, i: u32, end: u32, mask: u64, want: u64, write: bool, pin: bool): u32 {
  let out = gupPages + (<usize>i << 2);
  for (; i < end; i++) {
    const pte = load<u64>(ptep);
    if ((pte & mask) != want) break;
    const pfn = ptePfn(pte);
    if (pin) grabPin(pfn, pte, write);
    else grabRef(pfn, pte, write);
    store<u32>(out, pfn);
    ptep += 8;
    out += 4;
  }
  return i;
}

// folio_is_longterm_pinnable: the zero page, and pages outside ZONE_MOVABLE, device-coherent
// and fs-dax memory. (CMA and isolated pageblocks are not long-term pinnable either.)
export function folioIsLongtermPinnable(pfn: u32): bool {
  if (pfn == ZERO_PFN) return true;
  const z = zoneOf(pfn);
  if (zoneIsDevice(z)) {
    const t = zonePgmapType(z);
    return t != MEMORY_DEVICE_COHERENT && t != MEMORY_DEVICE_FS_DAX;
  }
  // CMA and isolated pageblocks are for allocations that can be moved away again.
  if (pageblockIsCma(pfn) || blockClass(pfn) == FL_ISOLATE) return false;
  return zoneType(z) != ZONE_MOVABLE;
}

// collect_longterm_unpinnable_folios over GUP_PAGES[0, n): the pages that are not long-term
// pinnable go to GUP_IN (a page repeated next to itself once). Returns how many.
export function gupCollectUnpinnable(n: u32): u32 {
  let k: u32 = 0;
  let prev: u32 = NONE;
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(gupPages + (<usize>i << 2));
    if (pfn == prev || folioIsLongtermPinnable(pfn)) continue;
    prev = pfn;
    store<u32>(gupIn + (<usize>k << 2), pfn);
    k++;
  }
  return k;
}

@inline export function pageNode(pfn: u32): u32 {
  return zoneNode(zoneOf(pfn));
}

// Releasing the pins (pin = true) or FOLL_GET references (pin = false) of n pfns at `list`
// goes in two steps: gupTake validates while it takes the ledger down, gupDrop then drops
// the references, freeing pages whose last reference goes. The zero page is skipped.

// Every entry must hold a pin (or a reference) from GUP, counting repeats. Returns n, or the
// index of the first bad entry (gupBadReason) with the ledger as it was.
export function gupTake(list: usize, n: u32, pin: bool): u32 {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    if (pfn >= nframes) return untakeBefore(list, i, pin, GUP_BAD_PFN);
    if (pin) {
      const held = pincountOf(pfn);
      if (held <= 0) return untakeBefore(list, i, pin, GUP_NOT_HELD);
      setPincount(pfn, held - 1);
    } else {
      const held = gupRefsOf(pfn);
      if (held == 0) return untakeBefore(list, i, pin, GUP_NOT_HELD);
      setGupRefs(pfn, held - 1);
    }
  }
  return n;
}

function untakeBefore(list: usize, bad: u32, pin: bool, why: u32): u32 {
  gupUntake(list, bad, pin);
  gupBadReason = why;
  return bad;
}

// The ledger of entries gupTake took, back (a release of a later batch failed).
export function gupUntake(list: usize, n: u32, pin: bool): void {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    if (pin) setPincount(pfn, pincountOf(pfn) + 1);
    else setGupRefs(pfn, gupRefsOf(pfn) + 1);
  }
}

// gup_put_folio for entries gupTake took; with `dirty`, pages are marked dirty first
// (unpin_user_pages_dirty_lock).
export function gupDrop(list: usize, n: u32, pin: bool, dirty: bool): void {
  const drop: i32 = pin ? GUP_PIN_COUNTING_BIAS : 1;
  let released: i64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    released++;
    if (dirty) setFlagsOf(pfn, flagsOf(pfn) | (1 << PG_dirty));
    const r = refOf(pfn) - drop;
    assert(r >= 0, "GUP release below zero");
    if (r == 0) freePages(pfn, orderOf(pfn));
    else setRef(pfn, r);
  }
  if (pin) statAdd(NR_FOLL_PIN_RELEASED, released);
}

// unpin_user_pages / release_pages of one batch in one call: n, or the bad entry's index.
// Without `dirty` one pass takes the ledger and the references down together; pages whose
// last reference goes are freed only once every entry proved good (a bad one undoes the pass).
export function gupRelease(list: usize, n: u32, pin: bool, dirty: bool): u32 {
  if (dirty) {
    const r = gupTake(list, n, pin);
    if (r == n) gupDrop(list, n, pin, true);
    return r;
  }
  releaseZeroed = 0;
  releaseCount = 0;
  const r = pin ? unpinPass(list, n) : putPass(list, n);
  if (r != n) {
    undoRelease(list, r, pin, pin ? GUP_PIN_COUNTING_BIAS : 1);
    return r;
  }
  // Pages down to no reference kept a refcount of -1 until the pass was through.
  for (let i: u32 = 0; releaseZeroed > 0 && i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN || refOf(pfn) != -1) continue;
    freePages(pfn, orderOf(pfn));
    releaseZeroed--;
  }
  if (pin) statAdd(NR_FOLL_PIN_RELEASED, <i64>releaseCount);
  return n;
}

let releaseZeroed: u32 = 0;
let releaseCount: u32 = 0;

// The pass of gupRelease for pins: n, or the index of the first entry without a pin.
function unpinPass(list: usize, n: u32): u32 {
  let zeroed: u32 = 0;
  let count: u32 = 0;
  let i: u32 = 0;
  for (; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    if (pfn >= nframes) {
      gupBadReason = GUP_BAD_PFN;
      break;
    }
    const held = pincountOf(pfn);
    if (held <= 0) {
      gupBadReason = GUP_NOT_HELD;
      break;
    }
    setPincount(pfn, held - 1);
    const r = refOf(pfn) - GUP_PIN_COUNTING_BIAS;
    assert(r >= 0, "GUP release below zero");
    setRef(pfn, r == 0 ? -1 : r);
    if (r == 0) zeroed++;
    count++;
  }
  releaseZeroed = zeroed;
  releaseCount = count;
  return i;
}

// The pass of gupRelease for FOLL_GET references.
function putPass(list: usize, n: u32): u32 {
  let zeroed: u32 = 0;
  let i: u32 = 0;
  for (; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    if (pfn >= nframes) {
      gupBadReason = GUP_BAD_PFN;
      break;
    }
    const held = gupRefsOf(pfn);
    if (held == 0) {
      gupBadReason = GUP_NOT_HELD;
      break;
    }
    setGupRefs(pfn, held - 1);
    const r = refOf(pfn) - 1;
    assert(r >= 0, "GUP release below zero");
    setRef(pfn, r == 0 ? -1 : r);
    if (r == 0) zeroed++;
  }
  releaseZeroed = zeroed;
  return i;
}

function undoRelease(list: usize, n: u32, pin: bool, drop: i32): void {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn == ZERO_PFN) continue;
    if (pin) setPincount(pfn, pincountOf(pfn) + 1);
    else setGupRefs(pfn, gupRefsOf(pfn) + 1);
    const r = refOf(pfn);
    setRef(pfn, (r < 0 ? 0 : r) + drop);
  }
}
