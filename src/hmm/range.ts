// hmm_range_fault (mm/hmm.c): snapshot a range of CPU page tables into pfns with
// HMM_PFN_* flags, faulting pages in as asked. The walk runs in Wasm; faults it
// needs (which may call a driver's migrate_to_ram) run here, then the walk resumes.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { MmuIntervalNotifier } from "./notifier.js";
import { fail, type MmError } from "../errors.js";
import { MAX_MIGRATE } from "../layout.js";
import { PAGE_SIZE } from "../constants.js";

export const HMM_PFN_VALID = 1n << 63n;
export const HMM_PFN_WRITE = 1n << 62n;
export const HMM_PFN_ERROR = 1n << 61n;
export const HMM_PFN_DMA_MAPPED = 1n << 60n;
export const HMM_PFN_P2PDMA = 1n << 59n;
export const HMM_PFN_P2PDMA_BUS = 1n << 58n;
export const HMM_PFN_ORDER_SHIFT = 53n;
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
export const HMM_PFN_FLAGS = 0xffen << 52n;
/** The last three flags are sticky: they go out as they came in. */
export const HMM_RANGE_DEFAULT_TIMEOUT = 1000;

export function hmmPfnToPfn(x: bigint): number {
  return Number(x & ~HMM_PFN_FLAGS);
}

export interface HmmRange {
  notifier: MmuIntervalNotifier;
  /** From notifier.readBegin(). */
  notifierSeq: number;
  /** Page-aligned byte addresses, end exclusive. */
  start: number;
  end: number;
  /** One entry per page: requests in, pfns and flags out. */
  hmmPfns: BigUint64Array;
  defaultFlags: bigint;
  pfnFlagsMask: bigint;
  devPrivateOwner: unknown;
}

/** Faults one page of a walk may take before the walk gives up (-EBUSY). */
export const HMM_FAULT_RETRIES = 16;

const HIGH = (x: bigint): number => Number((x >> 32n) & 0xffffffffn);

/** Returns 0, or -EBUSY (the notifier fired: read_begin and retry), -EFAULT, -EPERM, -ENOMEM. */
export function hmmRangeFault(m: Machine, range: HmmRange): number {
  const fn = "hmm_range_fault";
  if (typeof range !== "object" || range === null) fail("EINVAL", fn, "range must be an object", range);
  const { start, end, notifier, hmmPfns } = range;
  if (!(notifier instanceof MmuIntervalNotifier) || notifier.mm.machineOf() !== m) fail("EINVAL", fn, "range.notifier is not an interval notifier of this machine", notifier);
  const proc: Process = notifier.mm;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start % PAGE_SIZE || end % PAGE_SIZE || start < 0 || end <= start)
    fail("EINVAL", fn, `start ${String(start)} / end ${String(end)} must be page-aligned with start < end`, start);
  const npages = (end - start) / PAGE_SIZE;
  if (npages > MAX_MIGRATE) fail("EINVAL", fn, `${npages} pages is more than one call handles (${MAX_MIGRATE}); split the range`, npages);
  if (!(hmmPfns instanceof BigUint64Array) || hmmPfns.length < npages)
    fail("EINVAL", fn, `hmmPfns must be a BigUint64Array of at least ${npages} entries`, hmmPfns);
  if (typeof range.defaultFlags !== "bigint" || typeof range.pfnFlagsMask !== "bigint") fail("EINVAL", fn, "defaultFlags and pfnFlagsMask must be bigints", range.defaultFlags);
  if (proc.exited) return 0; // the mm is gone
  // A driver that walks in the machine's own pfn buffer (machine.hmmPfnsBuffer) saves two copies.
  const work = m.hmmPfnsView(npages);
  const inPlace = hmmPfns.buffer === work.buffer && hmmPfns.byteOffset === work.byteOffset;
  if (!inPlace) work.set(hmmPfns.subarray(0, npages));
  const owner = m.ownerId(range.devPrivateOwner);
  const vpn0 = start / PAGE_SIZE;
  let from = 0;
  let stuck = 0;
  for (;;) {
    if (notifier.checkRetry(range.notifierSeq)) return -16;
    const r = m.core.hmmRangeWalk(proc.mm, vpn0, npages, from, HIGH(range.defaultFlags), HIGH(range.pfnFlagsMask), owner);
    if (r < 0) return r;
    if (r === npages) break;
    // A page whose fault "succeeds" but never becomes walkable (a driver that keeps moving it) ends
    // the call with -EBUSY, as a notifier retry would, instead of spinning.
    stuck = r === from ? stuck + 1 : 0;
    if (stuck > HMM_FAULT_RETRIES) return -16;
    const err = proc.faultPage(start + r * PAGE_SIZE, m.core.hmmLastFaultWrite() !== 0);
    if (err) return faultErrno(err);
    from = r;
  }
  if (!inPlace) hmmPfns.set(work);
  return 0;
}

function faultErrno(e: MmError): number {
  if (e.code === "ENOMEM") return -12;
  if (e.code === "EBUSY") return -16;
  return -14;
}

