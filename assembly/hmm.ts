// hmm_range_fault's page walk (mm/hmm.c): fills the HMM_PFNS array with pfns and
// HMM_PFN_* flags, or stops where a fault is needed so TypeScript can run it
// (a device-private fault calls a driver) and walk again from there.
import { hmmPfns } from "./layout";
import { zoneOf } from "./memmap";
import { zonePgmapOwner } from "./alloc";
import { pteTableBase } from "./pagetable";
import {
  _PAGE_PRESENT, _PAGE_SPECIAL, _PAGE_RW, _PAGE_RO_MIGRATION, ptePfn, pteWrite, pteSpecial, pteProtnone, isSwapPte, swpType, swpOffset,
  SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE, SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE,
  MAX_SWAPFILES,
} from "./pte";
import { findVma, vmaFlags, vmaStart, vmaEnd, mmPgd, VM_READ, VM_WRITE, VM_IO, VM_PFNMAP } from "./mm";
import { ZERO_PFN } from "./rmap";

export const HMM_PFN_VALID: u64 = 1 << 63;
export const HMM_PFN_WRITE: u64 = 1 << 62;
export const HMM_PFN_ERROR: u64 = 1 << 61;
export const HMM_PFN_DMA_MAPPED: u64 = 1 << 60;
export const HMM_PFN_P2PDMA: u64 = 1 << 59;
export const HMM_PFN_P2PDMA_BUS: u64 = 1 << 58;
export const HMM_PFN_REQ_FAULT: u64 = HMM_PFN_VALID;
export const HMM_PFN_REQ_WRITE: u64 = HMM_PFN_WRITE;
const HMM_PFN_STICKY: u64 = HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS;

const EFAULT: i32 = -14;
const EPERM: i32 = -1;
const EBUSY: i32 = -16;

// Set when the walk stops for a fault: is it a write fault?
export let hmmFaultWrite: bool = false;

const U64_NONE: u64 = 0xffffffffffffffff;

// Walks entries [from, npages) of the range starting at `start`. Returns npages when
// every entry is filled, an index < npages where a fault is needed, or a negative errno.
// Flags arrive as their high 32 bits (all HMM_PFN_* flags live there).
export function hmmWalk(mm: u32, start: u64, npages: u32, from: u32, defaultHi: u32, maskHi: u32, owner: u32): i32 {
  const pgd = mmPgd(mm);
  const defaultFlags = <u64>defaultHi << 32;
  const mask = <u64>maskHi << 32;
  // The VMA and the PTE table stay the same for runs of pages: look them up once per run.
  let v: usize = 0;
  let vStart: u64 = 0;
  let vEnd: u64 = 0;
  let flags: u32 = 0;
  let table: usize = 0;
  let tableVpn: u64 = U64_NONE;
  for (let i = from; i < npages; i++) {
    const slot = hmmPfns + (<usize>i << 3);
    const cur = load<u64>(slot);
    const req = ((cur & mask) | defaultFlags) & (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
    const wantWrite = (req & HMM_PFN_REQ_WRITE) != 0;
    const wantFault = wantWrite || (req & HMM_PFN_REQ_FAULT) != 0;
    const sticky = cur & HMM_PFN_STICKY;
    const vpn = start + <u64>i;
    if (vpn >= vEnd || vpn < vStart) {
      v = findVma(mm, vpn);
      vStart = v == 0 ? 0 : vmaStart(v);
      vEnd = v == 0 ? 0 : vmaEnd(v);
      flags = v == 0 ? 0 : vmaFlags(v);
    }
    if (v == 0 || (flags & (VM_IO | VM_PFNMAP)) != 0 || (flags & VM_READ) == 0) {
      if (wantFault) return EFAULT;
      store<u64>(slot, sticky | HMM_PFN_ERROR);
      continue;
    }
    if ((vpn & ~(<u64>511)) != tableVpn) {
      tableVpn = vpn & ~(<u64>511);
      table = pteTableBase(pgd, vpn);
    }
    const pte = table == 0 ? 0 : load<u64>(table + (<usize>(<u32>vpn & 511) << 3));
    // The common case first: a present, ordinary PTE that satisfies the request.
    if ((pte & (_PAGE_PRESENT | _PAGE_SPECIAL)) == _PAGE_PRESENT && (!wantWrite || (pte & _PAGE_RW) != 0)) {
      store<u64>(slot, <u64>ptePfn(pte) | HMM_PFN_VALID | ((pte & _PAGE_RW) != 0 ? HMM_PFN_WRITE : 0) | sticky);
      continue;
    }
    let cpu: u64 = 0;
    let pfn: u32 = 0;
    if (pte == 0 || pteProtnone(pte)) {
      cpu = 0;
    } else if (isSwapPte(pte)) {
      const t = swpType(pte);
      const off = swpOffset(pte);
      if ((t == SWP_DEVICE_WRITE || t == SWP_DEVICE_READ) && zonePgmapOwner(zoneOf(off)) == owner) {
        // The caller's own device memory is reported, never faulted back.
        cpu = HMM_PFN_VALID | (t == SWP_DEVICE_WRITE ? HMM_PFN_WRITE : 0);
        pfn = off;
      } else if (wantFault) {
        if (t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE) return EBUSY;
        if (t != SWP_DEVICE_WRITE && t != SWP_DEVICE_READ && t != SWP_DEVICE_EXCLUSIVE && t >= MAX_SWAPFILES) return EFAULT;
        return needFault(i, wantWrite, flags);
      } else {
        store<u64>(slot, sticky);
        continue;
      }
    } else {
      pfn = ptePfn(pte);
      // A write to a page under read-only migration waits for it, as for a migration entry.
      if (wantWrite && (pte & _PAGE_RO_MIGRATION) != 0) return EBUSY;
      if (pteSpecial(pte) && pfn != ZERO_PFN) {
        if (wantFault) return EFAULT;
        store<u64>(slot, sticky | HMM_PFN_ERROR);
        continue;
      }
      cpu = HMM_PFN_VALID | (pteWrite(pte) ? HMM_PFN_WRITE : 0);
    }
    if ((wantFault && (cpu & HMM_PFN_VALID) == 0) || (wantWrite && (cpu & HMM_PFN_WRITE) == 0)) {
      return needFault(i, wantWrite, flags);
    }
    store<u64>(slot, (cpu == 0 ? 0 : (<u64>pfn | cpu)) | sticky);
  }
  return <i32>npages;
}

function needFault(i: u32, write: bool, flags: u32): i32 {
  if (write && (flags & VM_WRITE) == 0) return EPERM;
  hmmFaultWrite = write;
  return <i32>i;
}

