// DAX: mappings whose PTEs are special (pte_special: no struct page, no refcount, no
// mapcount) and point straight at pmem pfns, as device-dax (/dev/daxX.Y) and vmf_insert_pfn.
import type { Machine } from "../machine.js";
import { Process } from "../process.js";
import { fail, hex } from "../errors.js";
import {
  PAGE_SIZE, MAP_TYPE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_ANONYMOUS, VM_SHARED, VM_MAYSHARE, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC,
  VM_PFNMAP, VM_MIXEDMAP, VM_DONTEXPAND,
} from "../constants.js";

/** What device-dax's mmap sets: a shared mapping of raw pfns that never grows. */
export const DAX_VM_FLAGS = VM_SHARED | VM_MAYSHARE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_PFNMAP | VM_DONTEXPAND;
/** Pages one core call inserts (assembly/pmem.ts PMEM_IO_MAX, u32 pfns in its pair buffer). */
const INSERT_MAX = 8192;

export interface DaxMmapOptions {
  /** Address (a hint, or exact with MAP_FIXED); default 0: the kernel picks. */
  addr?: number;
  /** Byte offset into the device, page-aligned. */
  offset: number;
  length: number;
  prot: number;
  /** MAP_SHARED or MAP_SHARED_VALIDATE, with MAP_FIXED / MAP_FIXED_NOREPLACE if wanted. */
  flags: number;
}

export function liveProcess(m: Machine, fn: string, proc: unknown): Process {
  if (!(proc instanceof Process) || proc.machineOf() !== m) fail("EINVAL", fn, "not a process of this machine", proc);
  if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
  return proc;
}

/**
 * mmap of a pfn range as device-dax does: MAP_SHARED only; faults insert special PTEs for
 * `rangeId`'s pfns (assembly/pmem.ts pfnmapFault); pages past the range's end SIGBUS.
 */
export function daxMmapRange(m: Machine, fn: string, proc: Process, rangeId: number, opts: DaxMmapOptions): number {
  if (typeof opts !== "object" || opts === null) fail("EINVAL", fn, "options must be an object", opts);
  const { offset, flags } = opts;
  if (!Number.isInteger(offset) || offset < 0 || offset % PAGE_SIZE) fail("EINVAL", fn, `offset ${String(offset)} is not a page-aligned byte offset`, offset);
  if (!Number.isInteger(flags)) fail("EINVAL", fn, `flags ${String(flags)} is not an integer`, flags);
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE) fail("EINVAL", fn, "device-dax mappings must be MAP_SHARED: a private copy of pmem has no page to copy into", flags);
  if (flags & MAP_ANONYMOUS) fail("EINVAL", fn, "MAP_ANONYMOUS does not map a device", flags);
  return proc.mmapSpecial(fn, opts.addr ?? 0, opts.length, opts.prot, flags, { pgoff: offset / PAGE_SIZE, flags: DAX_VM_FLAGS, backing: rangeId });
}

/**
 * vmf_insert_pfn for each page of [addr, addr + pfns.length pages): a special PTE to pfns[i],
 * writable if the VMA is (dirty for a write). Every page must lie in a VM_PFNMAP or
 * VM_MIXEDMAP VMA and every pfn must have no struct page. PTEs already present stay as they
 * are. Returns how many were inserted. For drivers that map pfns themselves (DAX of files).
 */
export function vmfInsertPfns(m: Machine, proc: Process, addr: number, pfns: ArrayLike<number>, write = false): number {
  const fn = "vmf_insert_pfn";
  liveProcess(m, fn, proc);
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE) fail("EINVAL", fn, `address ${String(addr)} is not page-aligned`, addr);
  const n = pfns?.length;
  if (!Number.isInteger(n) || n <= 0) fail("EINVAL", fn, "pfns must be a non-empty array", pfns);
  const limit = m.config.frames + m.config.deviceFrames;
  for (let i = 0; i < n; i++) {
    const pfn = pfns[i]!;
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= limit) fail("EINVAL", fn, `pfns[${i}] = ${String(pfn)} is not a frame of this machine`, pfn);
    if (m.core.pfnHasStructPage(pfn)) fail("EINVAL", fn, `pfns[${i}] = ${pfn} has a struct page: a special PTE would leave its references uncounted`, pfn);
  }
  const vpn = addr / PAGE_SIZE;
  for (let v = vpn; v < vpn + n; ) {
    const vma = proc.vmaList().find((x) => x.start <= v && v < x.end);
    if (!vma || !(vma.flags & (VM_PFNMAP | VM_MIXEDMAP))) fail("EINVAL", fn, `${hex(v * PAGE_SIZE)} is not in a VM_PFNMAP or VM_MIXEDMAP mapping`, v * PAGE_SIZE);
    v = vma.end;
  }
  if (m.core.freeTables() < 3 * (Math.ceil(n / 512) + 2)) fail("ENOMEM", fn, "the page-table pool cannot hold the PTEs", n);
  const buf = new Uint32Array(m.core.memory.buffer, m.core.pmemIoBuf(), INSERT_MAX);
  let done = 0;
  for (let at = 0; at < n; at += INSERT_MAX) {
    const k = Math.min(INSERT_MAX, n - at);
    for (let i = 0; i < k; i++) buf[i] = pfns[at + i]!;
    const r = m.core.insertPfns(proc.mm, vpn + at, k, write ? 1 : 0);
    if (r < 0) fail(r === -12 ? "ENOMEM" : "EINVAL", fn, `inserting at ${hex((vpn + at) * PAGE_SIZE)} failed (${r})`, r);
    done += r;
  }
  return done;
}
