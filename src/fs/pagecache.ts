// The page cache seen from the file system: pages looked up or read in from the block
// device, and writeback of dirty pages (write_cache_pages + the block layer).
import type { Machine } from "../machine.js";
import { MmError, fail } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import type { Inode } from "./inode.js";
import { frameBytes, setFrameTag } from "./frames.js";
import { mkcleanNotify } from "./mkclean.js";
import { daxPfn, daxDevice } from "./dax.js";
import { isDevicePrivatePfn, migrateBackToRam, bounceFrom } from "./devpage.js";

/** The shared zero page's frame, where a read of a DAX hole comes from. */
const ZERO_PFN = 0;

/**
 * The cached page of `inode` at `index`, read in when it was not cached (a hole reads as
 * zeros). ENOMEM when no page can be had even after writing dirty pages back, EIO when the
 * device fails the read (the page leaves the cache again, unlocked).
 */
export function grabPage(m: Machine, inode: Inode, index: number, fn: string): number {
  const core = m.core;
  let pfn = core.filemapGrabFolio(inode.id, index, 0);
  if (pfn < 0) {
    // Out of memory: write dirty file pages back so reclaim can take clean ones, then retry.
    balanceDirty(m, true);
    pfn = core.filemapGrabFolio(inode.id, index, 0);
    if (pfn < 0) fail("ENOMEM", fn, `no page for index ${index} of ${inode.name}: out of memory`, index);
  }
  if (core.filemapGrabbedNew() !== 0) readPage(m, inode, index, pfn, fn);
  return pfn;
}

/**
 * read(2)/write(2)'s access to the cached page at `index`: `use` gets a frame the CPU may
 * touch. A page in device-private memory migrates back to RAM first (policy "migrate-back")
 * or is copied through a bounce page ("bounce", also the fallback when it cannot move); a
 * write goes back to the device page. `write` pages end dirty.
 */
export function accessPage(m: Machine, inode: Inode, index: number, fn: string, write: boolean, use: (pfn: number) => void): void {
  if (inode.fs.dax) {
    // fsdax: the sector's own pmem frame (a hole reads from the zero page, a write allocates).
    const dax = daxPfn(m, inode, index, write, fn);
    use(dax >= 0 ? dax : ZERO_PFN);
    if (write) daxDevice(inode).noteWrite(inode.blocks.get(index)!);
    return;
  }
  let pfn = grabPage(m, inode, index, fn);
  if (isDevicePrivatePfn(m, pfn)) {
    const fs = inode.fs;
    if (fs.devicePageWriteback === "migrate-back" && migrateBackToRam(m, [pfn]) === 1) {
      fs.deviceStats.migratedBack++;
      pfn = grabPage(m, inode, index, fn);
    }
  }
  if (isDevicePrivatePfn(m, pfn)) {
    const b = bounceFrom(m, pfn, fn);
    try {
      use(b);
      if (write) m.core.pageCopy(pfn, b);
    } finally {
      m.core.bounceFree(b);
      inode.fs.deviceStats.bouncedIo++;
    }
  } else {
    use(pfn);
  }
  if (write) m.core.folioMarkDirty(pfn);
}

/** The device-resident dirty pages of `inode` in [from, to) go back to RAM; returns how many moved. */
function migrateDirtyBack(m: Machine, inode: Inode, from: number, to: number): number {
  const core = m.core;
  const pfns: number[] = [];
  let next = from;
  while (next < to) {
    const n = core.filemapDevicePages(inode.id, next, to, 1);
    next = core.wbNextIndex();
    if (n === 0) break;
    const wb = new Uint32Array(core.memory.buffer, core.wbBase(), 2 * n);
    for (let i = 0; i < n; i++) pfns.push(wb[2 * i + 1]!);
  }
  if (pfns.length === 0) return 0;
  const moved = migrateBackToRam(m, pfns);
  inode.fs.deviceStats.migratedBack += moved;
  return moved;
}

/** @internal Fills a new locked cache page from the device and unlocks it (or drops it on EIO). */
export function readPage(m: Machine, inode: Inode, index: number, pfn: number, fn: string): void {
  const sector = inode.blocks.get(index);
  if (sector === undefined) {
    zeroFrame(m, pfn);
  } else {
    try {
      inode.fs.dev.read([sector], [pfn]);
    } catch (e) {
      m.core.filemapReadDone(pfn, 0);
      if (e instanceof MmError) throw new MmError("EIO", fn, `reading page ${index} of ${inode.name} from sector ${sector} failed: ${e.message}`, index);
      throw e;
    }
  }
  m.core.filemapReadDone(pfn, 1);
}

function zeroFrame(m: Machine, pfn: number): void {
  if (m.config.content === "bytes") frameBytes(m, pfn).fill(0);
  else setFrameTag(m, pfn, 0n);
}

/** How writeback of one batch ended: pages written, and the error that stopped it. */
export interface WritebackResult {
  written: number;
  error: MmError | null;
}

/**
 * Writes back the dirty pages of `inode` in [from, to) page indices: each gets a sector
 * (allocated on first writeback), goes out in one request per batch, and ends clean, or
 * dirty again if the device failed (then the inode remembers the error for fsync).
 */
export function writebackRange(m: Machine, inode: Inode, from = 0, to = inode.sizePages): WritebackResult {
  const core = m.core;
  // Device-dirtied pages: back to RAM first, or (below) written through bounce pages.
  if (inode.fs.devicePageWriteback === "migrate-back") migrateDirtyBack(m, inode, from, to);
  let written = 0;
  let error: MmError | null = null;
  let next = from;
  while (next < to) {
    const n = core.filemapWritebackBegin(inode.id, next, to);
    next = core.wbNextIndex();
    if (n === 0) break;
    const wb = new Uint32Array(core.memory.buffer, core.wbBase(), 2 * n).slice();
    mkcleanNotify(m, inode, wb, n);
    const sectors: number[] = [];
    const pfns: number[] = [];
    const fresh: number[] = [];
    let ok = true;
    for (let i = 0; i < n; i++) {
      const index = wb[2 * i]!;
      let sector = inode.blocks.get(index);
      if (sector === undefined) {
        sector = inode.fs.allocSector();
        if (sector < 0) {
          ok = false;
          break;
        }
        inode.blocks.set(index, sector);
        fresh.push(index);
      }
      sectors.push(sector);
      pfns.push(wb[2 * i + 1]!);
    }
    if (!ok) error = new MmError("ENOSPC", "writeback", `no free sector on ${inode.fs.dev.name} for ${inode.name}`);
    // A device-private page never goes to the block layer: a bounce page does.
    let bounced = 0;
    if (ok) {
      bounced = core.wbBounce(n);
      if (bounced < 0) {
        ok = false;
        error = new MmError("ENOMEM", "writeback", `no bounce page for the device-resident pages of ${inode.name}`);
      } else if (bounced > 0) {
        const io = new Uint32Array(core.memory.buffer, core.wbIoBase(), n);
        for (let i = 0; i < n; i++) pfns[i] = io[i]!;
      }
    }
    // block_write_full_folio: the part of the last page past i_size goes out as zeros, so a
    // store there through a mapping never reaches the disk (nor a later extension of the file).
    const tail = inode.size % PAGE_SIZE;
    if (ok && tail !== 0 && m.config.content === "bytes") {
      const last = Math.floor(inode.size / PAGE_SIZE);
      for (let i = 0; i < n; i++) if (wb[2 * i] === last) frameBytes(m, pfns[i]!).fill(0, tail);
    }
    if (ok) {
      try {
        inode.fs.dev.write(sectors, pfns);
      } catch (e) {
        if (!(e instanceof MmError)) throw e;
        ok = false;
        error = new MmError("EIO", "writeback", `writing ${n} pages of ${inode.name} failed: ${e.message}`);
      }
    }
    if (bounced > 0) {
      core.wbBounceDone(n);
      if (ok) inode.fs.deviceStats.bounced += bounced;
    }
    if (!ok) {
      // Nothing reached the device: new sectors go back, the pages stay dirty.
      for (const index of fresh) inode.fs.freeSector(inode, index, inode.blocks.get(index)!);
      inode.wbError = error!.code as "EIO" | "ENOSPC" | "ENOMEM";
      core.filemapWritebackEnd(0, n, 0);
      break;
    }
    core.filemapWritebackEnd(0, n, 1);
    written += n;
  }
  return { written, error };
}

/** Dirty pages above which writers start the flusher (vm.dirty_background_ratio of memory). */
export const DIRTY_BACKGROUND_RATIO = 10;

/**
 * balance_dirty_pages / wakeup_flusher_threads: with `force` (reclaim needs clean pages),
 * or when dirty pages pass the background threshold, every inode is written back.
 */
export function balanceDirty(m: Machine, force: boolean): number {
  if (!force) {
    const dirty = m.counter("nr_dirty");
    if (dirty * 100 < m.config.frames * DIRTY_BACKGROUND_RATIO) return 0;
  }
  let written = 0;
  for (const fs of m.filesystems) for (const inode of fs.inodes.values()) written += writebackRange(m, inode).written;
  return written;
}
