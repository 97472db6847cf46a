// __get_user_pages for TypeScript callers: the walk runs in Wasm a batch of up to GUP_MAX
// pages per call; faults it needs (which may call a driver's migrate_to_ram) and unshares run
// here, then the walk resumes. A call takes all pages or none: a fault that fails midway
// releases what the call took and reports the errno.
import type { Machine } from "../machine.js";
import { Process } from "../process.js";
import { MmError, fail, hex } from "../errors.js";
import { PAGE_SIZE, TASK_SIZE } from "../constants.js";
import { GUP_MAX } from "../layout.js";
import { FOLL_WRITE, FOLL_FORCE, FOLL_NOFAULT, FOLL_HWPOISON, FOLL_PIN, FOLL_LONGTERM, validGupFlags } from "./flags.js";
import { checkVmaFlags } from "./vma-check.js";
import { releaseList } from "./release.js";
import { migrateUnpinnable, MAX_LONGTERM_ATTEMPTS } from "./longterm.js";

const GUP_STOP_FAULT = 1;
const GUP_STOP_UNSHARE = 2;

/** A walk's output: the pfns, and (FOLL_LONGTERM) the pages that are not long-term pinnable. */
interface Taken {
  pages: Uint32Array;
  unpinnable: number[];
}

/**
 * get_user_pages (toSet FOLL_GET) or pin_user_pages (toSet FOLL_PIN) of `nrPages` pages from
 * `start` in `proc`: the pfns, in `pages` if given. Everything is checked before anything is taken.
 */
export function getUserPagesCommon(
  m: Machine, fn: string, proc: Process, start: number, nrPages: number, gupFlags: number, toSet: number, pages?: Uint32Array,
): Uint32Array {
  const flags = validGupFlags(fn, gupFlags, toSet);
  if (!(proc instanceof Process) || proc.machineOf() !== m) fail("EINVAL", fn, "not a process of this machine", proc);
  if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
  if (typeof start !== "number" || !Number.isInteger(start) || start < 0 || start % PAGE_SIZE)
    fail("EINVAL", fn, `start ${String(start)} is not a page-aligned address`, start);
  if (typeof nrPages !== "number" || !Number.isInteger(nrPages) || nrPages < 0)
    fail("EINVAL", fn, `nr_pages ${String(nrPages)} is not a non-negative integer`, nrPages);
  if (start + nrPages * PAGE_SIZE > TASK_SIZE)
    fail("EFAULT", fn, `${hex(start)}+${nrPages} pages runs past the user address space`, start);
  if (pages !== undefined && (!(pages instanceof Uint32Array) || pages.length < nrPages))
    fail("EINVAL", fn, `pages must be a Uint32Array of at least ${nrPages} entries`, pages?.length);
  checkVmaFlags(fn, proc, start, nrPages, flags);
  const out = pages ?? new Uint32Array(nrPages);
  if (nrPages === 0) return out;
  if (m.gupBusy) fail("EBUSY", fn, "a GUP call is in progress (called from a driver callback of another GUP)", proc.pid);
  m.gupBusy = true;
  try {
    if (!(flags & FOLL_LONGTERM)) return takeRange(m, fn, proc, start, nrPages, flags, out).pages;
    return pinLongterm(m, fn, proc, start, nrPages, flags, out);
  } finally {
    m.gupBusy = false;
    m.settle();
  }
}

/**
 * __gup_longterm_locked: pin, then migrate the pages that may not stay pinned for long
 * (check_and_migrate_movable_pages) and pin again, until nothing needs to move.
 */
function pinLongterm(m: Machine, fn: string, proc: Process, start: number, n: number, flags: number, out: Uint32Array): Uint32Array {
  for (let attempt = 1; ; attempt++) {
    const { pages, unpinnable } = takeRange(m, fn, proc, start, n, flags, out);
    if (unpinnable.length === 0) return pages;
    releaseList(m, fn, pages.subarray(0, n), true, false, true);
    if (attempt === MAX_LONGTERM_ATTEMPTS)
      fail("ENOMEM", fn, `pages of ${hex(start)}+${n} pages are still not long-term pinnable after ${attempt} migrations`, start);
    migrateUnpinnable(m, fn, proc, unpinnable);
  }
}

/** Takes every page of the range, batch by batch; on failure releases what it took and throws. */
function takeRange(m: Machine, fn: string, proc: Process, start: number, n: number, flags: number, out: Uint32Array): Taken {
  const buf = m.gupPagesView(Math.min(n, GUP_MAX));
  const inPlace = out.buffer === buf.buffer && out.byteOffset === buf.byteOffset;
  const unpinnable: number[] = [];
  for (let off = 0; off < n; off += GUP_MAX) {
    const len = Math.min(GUP_MAX, n - off);
    try {
      walkBatch(m, fn, proc, start + off * PAGE_SIZE, len, flags);
    } catch (err) {
      if (off > 0) releaseList(m, fn, out.subarray(0, off), (flags & FOLL_PIN) !== 0, false, true);
      throw err;
    }
    if (flags & FOLL_LONGTERM) {
      const k = m.core.gupUnpinnable(len);
      for (const pfn of m.gupInView(k)) unpinnable.push(pfn);
    }
    if (!inPlace) out.set(m.gupPagesView(len), off);
  }
  return { pages: out, unpinnable };
}

/** One batch of at most GUP_MAX pages: walk, resolve what stopped the walk, walk on. */
function walkBatch(m: Machine, fn: string, proc: Process, start: number, n: number, flags: number): void {
  const core = m.core;
  const pin = (flags & FOLL_PIN) !== 0;
  let from = 0;
  let stuck = 0;
  for (;;) {
    const r = core.gupRange(proc.mm, start / PAGE_SIZE, n, from, flags);
    if (r === n) return;
    const addr = start + r * PAGE_SIZE;
    const why = core.gupStopReason();
    let err: MmError | null;
    if (why !== GUP_STOP_FAULT && why !== GUP_STOP_UNSHARE) {
      err = new MmError("EFAULT", fn, `no page GUP can return at ${hex(addr)} (no mapping, no struct page, or a hole FOLL_DUMP skips)`, addr);
    } else if (flags & FOLL_NOFAULT) {
      err = new MmError("EFAULT", fn, `FOLL_NOFAULT: the page at ${hex(addr)} needs a fault`, addr);
    } else if (r === from && ++stuck >= 16) {
      err = new MmError("EBUSY", fn, `the page at ${hex(addr)} still needed a fault after 16 resolved ones`, addr);
    } else {
      const unshare = why === GUP_STOP_UNSHARE;
      const write = !unshare && core.gupStopIsWrite() !== 0;
      const fault = proc.faultPage(addr, write, { unshare, force: (flags & FOLL_FORCE) !== 0 });
      err = fault && gupFaultError(fn, fault, addr, flags);
    }
    if (err) {
      if (r > 0) core.gupReleaseList(1, r, pin ? 1 : 0, 0);
      throw err;
    }
    if (r !== from) stuck = 0;
    from = r;
  }
}

/** vm_fault_to_errno: what a failed fault makes of the GUP call. */
function gupFaultError(fn: string, fault: MmError, addr: number, flags: number): MmError {
  const what = (flags & FOLL_WRITE) ? "write" : "read";
  let err: MmError;
  if (fault.code === "ENOMEM") err = new MmError("ENOMEM", fn, `faulting in the page at ${hex(addr)} ran out of memory`, addr);
  else if (fault.code === "EBUSY") err = new MmError("EBUSY", fn, `the page at ${hex(addr)} is busy: ${fault.message}`, addr);
  else if (fault.fault?.si_code === "BUS_MCEERR_AR" && (flags & FOLL_HWPOISON))
    err = new MmError("EHWPOISON", fn, `the page at ${hex(addr)} is poisoned (memory failure)`, addr);
  else err = new MmError("EFAULT", fn, `the ${what} fault at ${hex(addr)} failed: ${fault.message}`, addr);
  (err as { cause?: unknown }).cause = fault;
  return err;
}
