// mlock(2), munlock(2), mlockall(2) and munlockall(2) (mm/mlock.c): VM_LOCKED on the VMAs of a
// range (split off as mprotect does), their pages faulted in and mlocked (PG_mlocked and
// PG_unevictable: resident, passed by reclaim, still migratable). A page stays mlocked while
// any VM_LOCKED VMA maps it. The caller is privileged: no RLIMIT_MEMLOCK applies.
import type { Machine } from "./machine.js";
import type { Process } from "./process.js";
import { fail, hex, MmError } from "./errors.js";
import { PAGE_SIZE, TASK_SIZE, VM_LOCKED, VM_IO, VM_PFNMAP } from "./constants.js";
import { changeRange, rangeMapped, type Vma } from "./vma.js";
import { liveProc } from "./numa/mpol.js";
import { isU32 } from "./validate.js";

export const MCL_CURRENT = 1;
export const MCL_FUTURE = 2;
export const MCL_ONFAULT = 4;

const TASK_PAGES = TASK_SIZE / PAGE_SIZE;

/** mlock's range: the pages holding [addr, addr+len), as do_mlock rounds it. */
function pageRange(fn: string, addr: number, len: number): [number, number] {
  if (!Number.isInteger(addr) || addr < 0) fail("EINVAL", fn, `address ${String(addr)} is not a non-negative integer`, addr);
  if (!Number.isInteger(len) || len < 0) fail("EINVAL", fn, `length ${String(len)} is not a non-negative integer`, len);
  if (addr + len > 2 ** 64) fail("EINVAL", fn, `range ${hex(addr)}+${hex(len)} wraps around`, len);
  return [Math.floor(addr / PAGE_SIZE), Math.ceil((addr + len) / PAGE_SIZE)];
}

/** apply_vma_lock_flags after the checks: VM_LOCKED set or cleared, pages mlocked or munlocked. */
function lockVmas(m: Machine, proc: Process, fn: string, start: number, end: number, lock: boolean): void {
  // VM_IO and VM_PFNMAP mappings are never locked.
  const change = (v: Vma): Vma => (v.flags & (VM_IO | VM_PFNMAP) ? v : { ...v, flags: lock ? v.flags | VM_LOCKED : v.flags & ~VM_LOCKED });
  const { list, pieces } = changeRange(proc.vmaList(), start, end, change);
  proc.checkMapCount(fn, list);
  proc.installVmas(list);
  for (const { before, after } of pieces) {
    if ((before.flags ^ after.flags) & VM_LOCKED) m.core.mlockRange(proc.mm, after.start, after.end - after.start, lock ? 1 : 0);
  }
}

/** __mlock_posix_error_return: what a failed populate makes of mlock's error. */
function populateError(fn: string, err: MmError): MmError {
  const code = err.code === "ENOMEM" || err.code === "EBUSY" ? "EAGAIN" : "ENOMEM";
  const e = new MmError(code, fn, `the range is VM_LOCKED, but faulting its pages in stopped: ${err.message}`, err.value);
  (e as { cause?: unknown }).cause = err;
  return e;
}

/**
 * mlock(2): the pages of [addr, addr+len) (addr rounded down to its page) locked in memory.
 * ENOMEM, changing nothing, when part of the range is unmapped. Populating follows the
 * kernel: a PROT_NONE VMA (EFAULT there, ENOMEM here) or a fault that fails stops it with the
 * VMAs already VM_LOCKED; a failed allocation is EAGAIN.
 */
export function mlock(m: Machine, proc: Process, addr: number, len: number): void {
  const fn = "mlock";
  liveProc(m, fn, proc);
  const [start, end] = pageRange(fn, addr, len);
  if (end === start) return;
  if (end > TASK_PAGES || !rangeMapped(proc.vmaList(), start, end))
    fail("ENOMEM", fn, `${hex(start * PAGE_SIZE)}-${hex(end * PAGE_SIZE)} is not fully mapped`, addr);
  lockVmas(m, proc, fn, start, end, true);
  const err = proc.populate(start, end, false);
  if (err) throw populateError(fn, err);
}

/** munlock(2): [addr, addr+len) unlocked; pages no other VM_LOCKED VMA maps lose PG_mlocked. */
export function munlock(m: Machine, proc: Process, addr: number, len: number): void {
  const fn = "munlock";
  liveProc(m, fn, proc);
  const [start, end] = pageRange(fn, addr, len);
  if (end === start) return;
  if (end > TASK_PAGES || !rangeMapped(proc.vmaList(), start, end))
    fail("ENOMEM", fn, `${hex(start * PAGE_SIZE)}-${hex(end * PAGE_SIZE)} is not fully mapped`, addr);
  lockVmas(m, proc, fn, start, end, false);
}

/**
 * mlockall(2): MCL_CURRENT locks (and populates, ignoring failures) every mapping now;
 * MCL_FUTURE makes every later mapping locked (mm->def_flags) until munlockall or an
 * mlockall without it. MCL_ONFAULT (lock as pages fault in) is not modelled.
 */
export function mlockall(m: Machine, proc: Process, flags: number): void {
  const fn = "mlockall";
  liveProc(m, fn, proc);
  if (!isU32(flags) || flags === 0 || flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) || flags === MCL_ONFAULT)
    fail("EINVAL", fn, `flags ${String(flags)} must be MCL_CURRENT and/or MCL_FUTURE`, flags);
  if (flags & MCL_ONFAULT) fail("EINVAL", fn, "MCL_ONFAULT (lock pages as they fault in) is not modelled", flags);
  proc.defFlags = flags & MCL_FUTURE ? VM_LOCKED : 0;
  if (!(flags & MCL_CURRENT)) return;
  // Locking every VMA only merges some: max_map_count cannot stop it.
  lockVmas(m, proc, fn, 0, TASK_PAGES, true);
  proc.populate(0, TASK_PAGES, true);
}

/** munlockall(2): every mapping unlocked, and MCL_FUTURE ended. */
export function munlockall(m: Machine, proc: Process): void {
  const fn = "munlockall";
  liveProc(m, fn, proc);
  proc.defFlags = 0;
  lockVmas(m, proc, fn, 0, TASK_PAGES, false);
}
