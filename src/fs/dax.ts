// DAX: files on a pmem device mounted with { dax: true } have no page cache. read/write copy
// straight to and from the sectors' pmem frames, and shared mappings map those pfns with
// special PTEs (VM_MIXEDMAP), as fsdax does; a page gets its sector on first touch.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { MmError, hex } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import { PmemDevice } from "../pmem/device.js";
import type { Inode } from "./inode.js";
import { frameBytes, setFrameTag } from "./frames.js";

/** The pmem device behind a DAX inode. */
export function daxDevice(inode: Inode): PmemDevice {
  return inode.fs.dev as PmemDevice;
}

/**
 * The pmem pfn of page `index` of a DAX inode: -1 for a hole when `allocate` is false; with it,
 * a new zeroed sector (ENOSPC when the device is full).
 */
export function daxPfn(m: Machine, inode: Inode, index: number, allocate: boolean, fn: string): number {
  const dev = daxDevice(inode);
  let sector = inode.blocks.get(index);
  if (sector === undefined) {
    if (!allocate) return -1;
    sector = inode.fs.allocSector();
    if (sector < 0) throw new MmError("ENOSPC", fn, `no free sector on ${dev.name} for page ${index} of ${inode.name}`, index);
    inode.blocks.set(index, sector);
    const pfn = dev.pfn(sector);
    if (m.config.content === "bytes") frameBytes(m, pfn).fill(0);
    else setFrameTag(m, pfn, 0n);
  }
  return dev.pfn(sector);
}

/** FAULT_DAX: the page's sector (allocated on first touch) goes into the PTE as a special pfn. */
export function daxFault(m: Machine, proc: Process, addr: number, write: boolean): MmError | null {
  const vpn = Math.floor(addr / PAGE_SIZE);
  const v = proc.vmaList().find((x) => x.start <= vpn && vpn < x.end);
  const inode = v?.file;
  const access = write ? "write" : "read";
  if (!v || !inode) return new MmError("SIGSEGV", "access", `${access} at ${hex(addr)}: no mapping (SEGV_MAPERR)`, addr);
  const index = v.pgoff + (vpn - v.start);
  if (index >= inode.sizePages)
    return new MmError("SIGBUS", "access", `${access} at ${hex(addr)}: past the end of ${inode.name} (VM_FAULT_SIGBUS)`, addr, { addr, access, si_code: "BUS_ADRERR" });
  let pfn: number;
  try {
    pfn = daxPfn(m, inode, index, true, "dax_iomap_fault");
  } catch (e) {
    if (!(e instanceof MmError)) throw e;
    return new MmError("SIGBUS", "access", `${access} at ${hex(addr)}: ${e.message} (VM_FAULT_SIGBUS)`, addr, { addr, access, si_code: "BUS_ADRERR" });
  }
  m.vmfInsertPfns(proc, vpn * PAGE_SIZE, [pfn], write);
  return null;
}
