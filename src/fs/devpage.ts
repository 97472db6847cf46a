// File pages in device-private memory (ours, beside the kernel, which keeps the page cache
// in RAM; see MIGRATE_VMA_SELECT_FILE). The CPU never reads or writes a device-private
// frame, so the file system's I/O reaches such a page one of two ways, chosen per file
// system: the page migrates back to RAM first ("migrate-back"), or its bytes go through a
// temporary system page that the device's copy engine fills or drains ("bounce", the idea
// of block/bounce.c), and the page stays on the device.
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { MEMORY_DEVICE_PRIVATE } from "../device/pagemap.js";
import { MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, migrateDevicePfns } from "../migrate.js";
import { MAX_MIGRATE } from "../layout.js";

export type DevicePageWriteback = "migrate-back" | "bounce";
export const DEVICE_PAGE_WRITEBACK: readonly DevicePageWriteback[] = ["migrate-back", "bounce"];

/** What the file system did with device-resident file pages (per file system, since mount). */
export interface DevicePageStats {
  /** Device-resident pages written to the block device through a bounce page. */
  bounced: number;
  /** Bounce pages used by read(2)/write(2) of device-resident pages. */
  bouncedIo: number;
  /** Device pages migrated back to RAM for writeback or read(2)/write(2). */
  migratedBack: number;
}

export function newDevicePageStats(): DevicePageStats {
  return { bounced: 0, bouncedIo: 0, migratedBack: 0 };
}

/** Whether `pfn` is a page of device-private memory (which the CPU cannot touch). */
export function isDevicePrivatePfn(m: Machine, pfn: number): boolean {
  return pfn >= m.config.frames && m.pagemapOf(pfn)?.type === MEMORY_DEVICE_PRIVATE;
}

/**
 * Migrates device pages of the page cache back to RAM (migrate_device_pfns, system pages
 * on each range's node, contents copied by the device). Returns how many moved; the rest
 * (locked by another migration, no memory) stay where they are.
 */
export function migrateBackToRam(m: Machine, pfns: readonly number[]): number {
  let moved = 0;
  for (let at = 0; at < pfns.length; at += MAX_MIGRATE) {
    const chunk = pfns.slice(at, at + MAX_MIGRATE);
    const mig = migrateDevicePfns(m, chunk);
    if (mig.cpages > 0) mig.allocAndCopy({ node: m.pagemapOf(chunk[0]!)?.node ?? 0 });
    mig.finalize();
    // The slot's src entries keep MIGRATE for the pages that moved until its next use.
    for (const e of mig.src) if ((e & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) === (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) moved++;
  }
  return moved;
}

/**
 * A bounce page holding a copy of device page `dev` (the device's copy engine did it).
 * ENOMEM when no system page can be had; give it back with m.core.bounceFree.
 */
export function bounceFrom(m: Machine, dev: number, fn: string): number {
  const b = m.core.bounceAlloc(m.pagemapOf(dev)?.node ?? 0);
  if (b < 0) fail("ENOMEM", fn, `no system page to bounce device page ${dev} through`, dev);
  m.core.pageCopy(b, dev);
  return b;
}
