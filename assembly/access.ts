// CPU accesses at virtual addresses, a batch per call. Each access finds the PTE,
// faults when it must (handle_mm_fault), then touches the frame and sets A/D bits.
import { opsBase, dataBase, resultBase, NONE, contentMode, CONTENT_TAGS } from "./layout";
import { walkPte } from "./pagetable";
import { _PAGE_PRESENT, _PAGE_RW, _PAGE_ACCESSED, _PAGE_DIRTY, ptePfn } from "./pte";
import { mmPgd } from "./mm";
import { handleMmFaultAt, faultPtep, faultPfn, FAULT_OK, FAULT_SIGBUS } from "./fault";
import { frameAddr, readTag, writeTag } from "./content";
import { wearAdd } from "./pmem";

export const OP_READ_U32: u32 = 1;
export const OP_WRITE_U32: u32 = 2;
export const OP_READ_TAG: u32 = 3;
export const OP_WRITE_TAG: u32 = 4;
export const OP_READ_BYTES: u32 = 5;
export const OP_WRITE_BYTES: u32 = 6;
export const OP_TOUCH_READ: u32 = 7;
export const OP_TOUCH_WRITE: u32 = 8;
// A touch op's pages already done when it faulted (TypeScript clears it when the fault ends the run).
export const OP_TOUCH_DONE: usize = 28;

// Op record (8 × u32): kind, addr lo, addr hi, len (bytes, or pages for TOUCH),
// value lo, value hi, data offset, spare. Reads return their value in place.
export const OP_RECORD: usize = 32;

// Result block: failing op index, fault code, fault address lo/hi, write.
const R_INDEX = 0;
const R_CODE = 4;
const R_ADDR_LO = 8;
const R_ADDR_HI = 12;
const R_WRITE = 16;
const R_PFN = 20;

let faultCode: u32 = 0;

const ACCESS_BITS_READ: u64 = _PAGE_ACCESSED;
const ACCESS_BITS_WRITE: u64 = _PAGE_ACCESSED | _PAGE_DIRTY;

// The frame behind the PTE at `ptep` if it allows the access (marking it young, and
// dirty for a write), else NONE.
@inline function pteAllows(ptep: usize, write: bool): u32 {
  const pte = load<u64>(ptep);
  if ((pte & _PAGE_PRESENT) == 0 || (write && (pte & _PAGE_RW) == 0)) return NONE;
  store<u64>(ptep, pte | (write ? ACCESS_BITS_WRITE : ACCESS_BITS_READ));
  return ptePfn(pte);
}

// Faults `vpn` in as the CPU would, retrying while the fault path makes progress.
// Returns the frame, or NONE with faultCode set.
function faultIn(mm: u32, vpn: u64, write: bool, ptep: usize): u32 {
  for (let tries = 0; tries < 4; tries++) {
    const r = handleMmFaultAt(mm, vpn, write, ptep);
    if (r != FAULT_OK) {
      faultCode = r;
      return NONE;
    }
    const pfn = pteAllows(faultPtep, write);
    if (pfn != NONE) return pfn;
  }
  faultCode = FAULT_SIGBUS;
  return NONE;
}

// The frame behind `vpn` for a read or a write; NONE on failure.
export function pfnForAccess(mm: u32, vpn: u64, write: bool): u32 {
  const ptep = walkPte(mmPgd(mm), vpn, false);
  if (ptep != 0) {
    const pfn = pteAllows(ptep, write);
    if (pfn != NONE) return pfn;
  }
  return faultIn(mm, vpn, write, ptep);
}

// Touches [vpn, vpn+n) in order, keeping the PTE table between pages of one table.
// Returns the index of the page that failed, or n.
function touchRange(mm: u32, vpn: u64, n: u32, write: bool, tagBase: u64): u32 {
  const pgd = mmPgd(mm);
  let table: usize = 0;
  for (let k: u32 = 0; k < n; k++) {
    const v = vpn + <u64>k;
    const slot = <usize>(<u32>v & 511) << 3;
    if (table == 0 || slot == 0) {
      const ptep = walkPte(pgd, v, false);
      table = ptep == 0 ? 0 : ptep - slot;
    }
    let pfn = table != 0 ? pteAllows(table + slot, write) : NONE;
    if (pfn == NONE) {
      pfn = faultIn(mm, v, write, table != 0 ? table + slot : 0);
      if (pfn == NONE) return k;
      table = faultPtep - slot;
    }
    if (write) {
      writeTag(pfn, tagBase + <u64>k);
      wearAdd(pfn);
    }
  }
  return n;
}

function recordFault(index: u32, addr: u64, write: bool): void {
  store<u32>(resultBase + R_INDEX, index);
  store<u32>(resultBase + R_CODE, faultCode);
  store<u32>(resultBase + R_ADDR_LO, <u32>addr);
  store<u32>(resultBase + R_ADDR_HI, <u32>(addr >> 32));
  store<u32>(resultBase + R_WRITE, write ? 1 : 0);
  store<u32>(resultBase + R_PFN, faultPfn);
}

// Byte copy between a user range and `buf`, page by page. Returns the failing address + 1, or 0.
function accessBytes(mm: u32, addr: u64, len: u32, write: bool, buf: usize): u64 {
  let done: u32 = 0;
  while (done < len) {
    const a = addr + <u64>done;
    const off = <u32>a & 4095;
    const chunk = min<u32>(4096 - off, len - done);
    const pfn = pfnForAccess(mm, a >> 12, write);
    if (pfn == NONE) return a + 1;
    const p = frameAddr(pfn) + <usize>off;
    if (write) {
      memory.copy(p, buf + <usize>done, chunk);
      wearAdd(pfn);
    } else {
      memory.copy(buf + <usize>done, p, chunk);
    }
    done += chunk;
  }
  return 0;
}

// Runs ops [from, n) of the OPS region; returns the index of the op that faulted, or n.
export function accessBatch(mm: u32, from: u32, n: u32): u32 {
  for (let i = from; i < n; i++) {
    const op = opsBase + <usize>i * OP_RECORD;
    const kind = load<u32>(op);
    const addr = (<u64>load<u32>(op + 8) << 32) | <u64>load<u32>(op + 4);
    const len = load<u32>(op + 12);
    const write = kind == OP_WRITE_U32 || kind == OP_WRITE_TAG || kind == OP_WRITE_BYTES || kind == OP_TOUCH_WRITE;
    if (kind == OP_TOUCH_READ || kind == OP_TOUCH_WRITE) {
      // A retried touch resumes at the page that faulted, as a CPU restarts only the faulting
      // access: restarting the range could loop for ever once it is larger than the memory
      // (reclaim takes back its first pages while the last ones are read in).
      const done = load<u32>(op + OP_TOUCH_DONE);
      const base = (<u64>load<u32>(op + 20) << 32) | <u64>load<u32>(op + 16);
      const vpn = (addr >> 12) + <u64>done;
      const k = touchRange(mm, vpn, len - done, write, base + <u64>done);
      if (k != len - done) {
        store<u32>(op + OP_TOUCH_DONE, done + k);
        recordFault(i, (vpn + <u64>k) << 12, write);
        return i;
      }
      store<u32>(op + OP_TOUCH_DONE, 0);
      continue;
    }
    if (kind == OP_READ_TAG || kind == OP_WRITE_TAG) {
      const pfn = pfnForAccess(mm, addr >> 12, write);
      if (pfn == NONE) {
        recordFault(i, addr, write);
        return i;
      }
      if (write) {
        writeTag(pfn, (<u64>load<u32>(op + 20) << 32) | <u64>load<u32>(op + 16));
        wearAdd(pfn);
      } else {
        const t = readTag(pfn);
        store<u32>(op + 16, <u32>t);
        store<u32>(op + 20, <u32>(t >> 32));
      }
      continue;
    }
    // Byte-level ops exist only in bytes mode (TS rejects them earlier in tags mode).
    if (contentMode == CONTENT_TAGS) {
      faultCode = FAULT_SIGBUS;
      recordFault(i, addr, write);
      return i;
    }
    const buf = (kind == OP_READ_U32 || kind == OP_WRITE_U32) ? op + 16 : dataBase + <usize>load<u32>(op + 24);
    const size = (kind == OP_READ_U32 || kind == OP_WRITE_U32) ? 4 : len;
    const failed = accessBytes(mm, addr, size, write, buf);
    if (failed != 0) {
      recordFault(i, failed - 1, write);
      return i;
    }
  }
  return n;
}
