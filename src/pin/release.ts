// unpin_user_pages and release_pages: giving back what GUP handed out. A list is checked as a
// whole before anything is released: every entry must hold a pin (or a FOLL_GET reference)
// from GUP, counting repeats, or the call fails with EINVAL and nothing changes.
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { GUP_MAX } from "../layout.js";

const GUP_BAD_PFN = 1;

/**
 * Releases the pins (`pin`) or FOLL_GET references of `pfns`, marking the pages dirty first if
 * asked. `fromGup`: GUP itself gives back what it took (it may use its own buffer meanwhile).
 */
export function releaseList(m: Machine, fn: string, pfns: ArrayLike<number>, pin: boolean, dirty: boolean, fromGup = false): void {
  if (pfns === null || typeof pfns !== "object" || !Number.isInteger(pfns.length) || pfns.length < 0)
    fail("EINVAL", fn, "pages must be an array of pfns", pfns);
  const n = pfns.length;
  if (!(pfns instanceof Uint32Array)) {
    for (let i = 0; i < n; i++) {
      const pfn = pfns[i];
      if (typeof pfn !== "number" || !Number.isInteger(pfn) || pfn < 0 || pfn > 0xffffffff)
        fail("EINVAL", fn, `pages[${i}] = ${String(pfn)} is not a pfn`, pfn);
    }
  }
  if (n === 0) return;
  const core = m.core;
  const buf = m.gupPagesView(Math.min(n, GUP_MAX));
  if (n <= GUP_MAX && pfns instanceof Uint32Array && pfns.buffer === buf.buffer && pfns.byteOffset === buf.byteOffset) {
    // The machine's own GUP buffer: released in place, no copy.
    if (m.gupBusy && !fromGup) fail("EBUSY", fn, "the machine's GUP buffer is in use by a GUP call in progress", pfns);
    const r = core.gupReleaseList(1, n, pin ? 1 : 0, dirty ? 1 : 0);
    if (r !== n) refuse(m, fn, pfns[r]!, r, pin);
    m.settle();
    return;
  }
  if (n <= GUP_MAX) {
    const r = core.gupReleaseList(0, copyIn(m, pfns, 0, n), pin ? 1 : 0, dirty ? 1 : 0);
    if (r !== n) refuse(m, fn, pfns[r]!, r, pin);
    m.settle();
    return;
  }
  // Batch by batch: every batch's ledger is taken first, so a bad entry anywhere changes nothing.
  for (let off = 0; off < n; off += GUP_MAX) {
    const len = copyIn(m, pfns, off, Math.min(n, off + GUP_MAX));
    const r = core.gupTakeList(len, pin ? 1 : 0);
    if (r === len) continue;
    for (let back = 0; back < off; back += GUP_MAX) core.gupUntakeList(copyIn(m, pfns, back, back + GUP_MAX), pin ? 1 : 0);
    refuse(m, fn, pfns[off + r]!, off + r, pin);
  }
  for (let off = 0; off < n; off += GUP_MAX) {
    core.gupDropList(copyIn(m, pfns, off, Math.min(n, off + GUP_MAX)), pin ? 1 : 0, dirty ? 1 : 0);
  }
  m.settle();
}

/** pfns[from, to) into the machine's GUP_IN buffer (checked as pfns already). Returns the count. */
function copyIn(m: Machine, pfns: ArrayLike<number>, from: number, to: number): number {
  const dst = m.gupInView(to - from);
  if (pfns instanceof Uint32Array) dst.set(pfns.subarray(from, to));
  else for (let i = from; i < to; i++) dst[i - from] = pfns[i]!;
  return to - from;
}

function refuse(m: Machine, fn: string, pfn: number, i: number, pin: boolean): never {
  if (m.core.gupBadEntryReason() === GUP_BAD_PFN) fail("EINVAL", fn, `pages[${i}] = ${pfn} is not a frame of this machine`, pfn);
  const what = pin ? "pin from pin_user_pages" : "reference from get_user_pages";
  fail("EINVAL", fn, `pages[${i}] = pfn ${pfn} holds no ${what} (left to release); nothing was released`, pfn);
}
