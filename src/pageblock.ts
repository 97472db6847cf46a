// Pageblocks: every PAGEBLOCK_NR_PAGES pages carry a migratetype byte (assembly/pageblock.ts
// keeps them). Read straight from the machine's memory, without a Wasm call.
import type { Machine } from "./machine.js";
import { L } from "./layout.js";
import { PAGEBLOCK_NR_PAGES } from "./config.js";

export { PAGEBLOCK_NR_PAGES };
export const PAGEBLOCK_ORDER = 9;

// enum migratetype.
export const MIGRATE_UNMOVABLE = 0;
export const MIGRATE_MOVABLE = 1;
export const MIGRATE_RECLAIMABLE = 2;
export const MIGRATE_HIGHATOMIC = 3;
export const MIGRATE_CMA = 4;
export const MIGRATE_ISOLATE = 5;

export const MIGRATETYPE_NAMES = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"] as const;

const PB_MT_MASK = 7;
const PB_ISOLATE = 1 << 3;
const PB_OFFLINE = 1 << 4;

/** A view of every pageblock byte (valid for the machine's life: its memory never grows after creation). */
export function pageblockView(m: Machine): Uint8Array {
  return new Uint8Array(m.core.memory.buffer, m.layout.slots[L.PAGEBLOCKS]!, Math.ceil((m.config.frames + m.config.deviceFrames) / PAGEBLOCK_NR_PAGES));
}

/** The pageblock byte of `pfn` (no checks). */
function pageblockByte(m: Machine, pfn: number): number {
  return m.pageblocks[pfn >>> PAGEBLOCK_ORDER]!;
}

/** get_pageblock_migratetype: MIGRATE_ISOLATE while the block is isolated (or offline). */
export function pageblockMigratetype(m: Machine, pfn: number): number {
  const b = pageblockByte(m, pfn);
  return b & PB_ISOLATE ? MIGRATE_ISOLATE : b & PB_MT_MASK;
}

/** Whether the pageblock of `pfn` is offline (memory hot-unplug). */
export function pageblockOffline(m: Machine, pfn: number): boolean {
  return (pageblockByte(m, pfn) & PB_OFFLINE) !== 0;
}

/**
 * is_migrate_cma_page: whether `pfn` is a page of a CMA area (also while an operation has its
 * block isolated). FOLL_LONGTERM must not pin such pages. false for anything that is not a
 * system frame.
 */
export function pageIsCma(m: Machine, pfn: number): boolean {
  if (!Number.isInteger(pfn) || pfn < 0 || pfn >= m.config.frames) return false;
  return (pageblockByte(m, pfn) & PB_MT_MASK) === MIGRATE_CMA;
}
