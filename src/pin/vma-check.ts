// check_vma_flags over a whole range, before GUP takes anything: every page must lie in a
// VMA that allows the access GUP was asked for, or the call fails with -EFAULT.
import type { Process } from "../process.js";
import { fail, hex } from "../errors.js";
import { PAGE_SIZE, VM_READ, VM_WRITE, VM_SHARED, VM_MAYREAD, VM_MAYWRITE, VM_MAYSHARE, VM_IO, VM_PFNMAP } from "../constants.js";
import { FOLL_WRITE, FOLL_FORCE, FOLL_ANON, FOLL_PIN, FOLL_LONGTERM } from "./flags.js";

export function checkVmaFlags(fn: string, proc: Process, start: number, nrPages: number, flags: number): void {
  const end = start + nrPages * PAGE_SIZE;
  const write = (flags & FOLL_WRITE) !== 0;
  const force = (flags & FOLL_FORCE) !== 0;
  for (let addr = start; addr < end; ) {
    const vma = proc.vmaAt(addr);
    if (!vma) fail("EFAULT", fn, `no mapping at ${hex(addr)}: the range has a hole`, addr);
    const at = `the mapping at ${hex(vma.start)}`;
    const vf = vma.flags;
    if (vf & (VM_IO | VM_PFNMAP)) fail("EFAULT", fn, `${at} is VM_IO/VM_PFNMAP: its pages have no struct page to pin`, addr);
    if ((flags & FOLL_ANON) && vma.shared) fail("EFAULT", fn, `FOLL_ANON: ${at} is not anonymous private memory`, addr);
    // writable_file_mapping_allowed: a long-term writable pin of a shared file mapping would
    // let the page be written behind writeback's back (no write notification); refused.
    if (write && (flags & (FOLL_PIN | FOLL_LONGTERM)) === (FOLL_PIN | FOLL_LONGTERM) && (vf & VM_SHARED) && sharedFileAt(proc, addr))
      fail("EFAULT", fn, `FOLL_LONGTERM|FOLL_WRITE: ${at} is a shared file mapping, whose pages need dirty tracking`, addr);
    if (write && !(vf & VM_WRITE)) {
      if (!force) fail("EFAULT", fn, `FOLL_WRITE: ${at} is not writable (no VM_WRITE, and no FOLL_FORCE)`, addr);
      // FOLL_FORCE writes only break COW in private mappings that could be made writable.
      if ((vf & (VM_SHARED | VM_MAYSHARE)) || !(vf & VM_MAYWRITE))
        fail("EFAULT", fn, `FOLL_FORCE cannot write to ${at}: it is not a private mapping that may be writable`, addr);
    } else if (!write && !(vf & VM_READ)) {
      if (!force) fail("EFAULT", fn, `${at} is not readable (no VM_READ, e.g. PROT_NONE), and no FOLL_FORCE`, addr);
      if (!(vf & VM_MAYREAD)) fail("EFAULT", fn, `FOLL_FORCE cannot read ${at}: it has no VM_MAYREAD`, addr);
    }
    addr = vma.end;
  }
}

/** Whether the VMA at `addr` maps a file's page cache shared (vma_needs_dirty_tracking). */
function sharedFileAt(proc: Process, addr: number): boolean {
  const vpn = Math.floor(addr / PAGE_SIZE);
  const v = proc.vmaList().find((x) => x.start <= vpn && vpn < x.end);
  return !!v?.file && (v.flags & VM_SHARED) !== 0;
}
