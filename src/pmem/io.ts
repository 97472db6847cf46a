// The pmem driver's block I/O (pmem_submit_bio): a memcpy between the pmem frame of each
// sector and the target frame, durable at once (ADR: no volatile write cache).
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { PG_reserved } from "../page.js";
import { MEMORY_DEVICE_PRIVATE } from "../device/pagemap.js";
import type { IoStats } from "../block/types.js";

/** pmem latency: a fixed cost per request plus the copy at 10 bytes/ns. */
export const PMEM_REQUEST_NS = 100;
export const PMEM_BYTES_PER_NS = 10;
/** Pairs one core call copies (assembly/pmem.ts PMEM_IO_MAX). */
const IO_MAX = 4096;

export function ioCostNs(sectors: number): number {
  return PMEM_REQUEST_NS + (sectors * 4096) / PMEM_BYTES_PER_NS;
}

export function newStats(): IoStats {
  return { reads: 0, writes: 0, flushes: 0, sectorsRead: 0, sectorsWritten: 0, busyNs: 0, errors: 0 };
}

/** Validates a request: sector numbers inside the device, target frames the CPU can copy to and from. */
export function checkRequest(m: Machine, fn: string, nrSectors: number, sectors: ArrayLike<number>, pfns: ArrayLike<number>): void {
  if (sectors === null || typeof sectors !== "object" || typeof sectors.length !== "number") fail("EINVAL", fn, "sectors must be an array of sector numbers", sectors);
  if (pfns === null || typeof pfns !== "object" || pfns.length !== sectors.length)
    fail("EINVAL", fn, `pfns must be an array as long as sectors (${sectors.length})`, pfns);
  if (sectors.length === 0) fail("EINVAL", fn, "the request is empty", sectors);
  const limit = m.config.frames + m.config.deviceFrames;
  for (let i = 0; i < sectors.length; i++) {
    const s = sectors[i]!;
    if (!Number.isInteger(s) || s < 0 || s >= nrSectors) fail("EINVAL", fn, `sectors[${i}] = ${String(s)} is not a sector of this device (0..${nrSectors - 1})`, s);
    const pfn = pfns[i]!;
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= limit) fail("EINVAL", fn, `pfns[${i}] = ${String(pfn)} is not a frame of this machine`, pfn);
    if (!m.core.pfnHasStructPage(pfn)) fail("EINVAL", fn, `pfns[${i}] = ${pfn} has no struct page: I/O goes to and from pages`, pfn);
    if (m.core.pageFlags(pfn) & (1 << PG_reserved)) fail("EINVAL", fn, `pfns[${i}] = ${pfn} is reserved`, pfn);
    if (m.core.pageRefcount(pfn) <= 0) fail("EINVAL", fn, `pfns[${i}] = ${pfn} is free (refcount 0): I/O needs an allocated page`, pfn);
    if (m.pagemapOf(pfn)?.type === MEMORY_DEVICE_PRIVATE) fail("EINVAL", fn, `pfns[${i}] = ${pfn} is device-private memory, which the CPU cannot copy`, pfn);
  }
}

/** The copies of a checked request, in batches of the core's pair buffer; a write counts one write per sector. */
export function copySectors(m: Machine, base: number, sectors: ArrayLike<number>, pfns: ArrayLike<number>, write: boolean): void {
  const buf = new Uint32Array(m.core.memory.buffer, m.core.pmemIoBuf(), 2 * IO_MAX);
  for (let at = 0; at < sectors.length; at += IO_MAX) {
    const n = Math.min(IO_MAX, sectors.length - at);
    for (let k = 0; k < n; k++) {
      buf[2 * k] = base + sectors[at + k]!;
      buf[2 * k + 1] = pfns[at + k]!;
    }
    m.core.pmemIo(n, write ? 1 : 0);
  }
}
