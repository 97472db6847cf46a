// The fixed memory map of one machine (assembly/layout.ts reads it): every region's
// offset, computed once from the configuration. Nothing moves or grows afterwards.
import { PAGEBLOCK_NR_PAGES, MAX_CMA_AREAS, type ResolvedConfig } from "./config.js";
import { fail } from "./errors.js";

export const ZONE_NORMAL = 2;
export const ZONE_MOVABLE = 3;
export const ZONE_DEVICE = 4;

export const ZONE_RECORD = 256;
export const MAX_ZONES = 64;
export const MM_RECORD = 64;
export const VMA_RECORD = 48;
export const MAPPING_RECORD = 16;
export const OP_RECORD = 32;
export const MAX_OPS = 4096;
export const DATA_SIZE = 1 << 20;
export const NR_STAT_SLOTS = 64;
export const RESULT_SIZE = 256;
/**
 * Bytes of struct page per frame: eight u32 fields, the u64 index, two u8 (zone, order), and
 * GUP's u32 ledger of FOLL_GET references (the kernel has no such field; it makes check() exact).
 */
export const STRUCT_PAGE_BYTES = 8 * 4 + 8 + 2;
/** Per-frame scratch for machine.check(). */
export const SCRATCH_BYTES = 4;
/** Bytes between the struct page arrays' offsets modulo 4 KiB: five cache lines, so 12 arrays fit. */
const ARRAY_STAGGER = 320;
const WASM_PAGE = 65536;
const WASM32_MAX_PAGES = 65536;

// Slot numbers of the LAYOUT block, as in assembly/layout.ts.
export const L = {
  NFRAMES: 0, NZONES: 1, NNODES: 2, CONTENT: 3, PAGE_FLAGS: 4, PAGE_REF: 5, PAGE_MAPCOUNT: 6,
  PAGE_PINCOUNT: 7, PAGE_MAPPING: 8, PAGE_INDEX: 9, PAGE_PRIVATE: 10, PAGE_LRU_NEXT: 11,
  PAGE_LRU_PREV: 12, PAGE_ZONE: 13, PAGE_ORDER: 14, TAGS: 15, FRAMES: 16, SCRATCH: 17, ZONES: 18,
  TABLES: 19, NTABLES: 20, MMS: 21, MAX_MMS: 22, VMAS: 23, MAX_VMAS: 24, MAPPINGS: 25,
  MAX_MAPPINGS: 26, OPS: 27, MAX_OPS: 28, DATA: 29, DATA_SIZE: 30, STATS: 31, RESULT: 32,
  MIGRATE_SRC: 33, MIGRATE_DST: 34, MAX_MIGRATE: 35, HMM_PFNS: 36, FREED_RING: 37, FREED_RING_SIZE: 38,
  SYSTEM_FRAMES: 39, PAGE_GUP_REFS: 40, PAGEBLOCKS: 41, CMA: 42, PMEM_WEAR: 43,
} as const;
/** Slots in the LAYOUT block (assembly/layout.ts L_END). */
export const NR_LAYOUT_SLOTS = 47;

/** The CMA region: a u32 area count, then MAX_CMA_AREAS records of four u32 (base, pages, zone, first bitmap bit), then the bitmaps. */
export const CMA_RECORD = 16;
export const CMA_BITMAP_OFFSET = 16 + MAX_CMA_AREAS * CMA_RECORD;

/** Entries of the migrate_vma src/dst arrays and of the hmm_range_fault pfn array. */
export const MAX_MIGRATE = 65536;
/** Pages one GUP walk or release handles in one Wasm call (assembly/gup.ts GUP_MAX). */
export const GUP_MAX = 65536;
/** Migrations that may be in flight at once (assembly/migrate.ts MIGRATE_SLOTS). */
export const MIGRATE_SLOTS = 4;

export interface ZoneLayout {
  id: number;
  node: number;
  type: number;
  start: number;
  end: number;
  wmarkMin: number;
  wmarkLow: number;
  wmarkHigh: number;
}

export interface Layout {
  slots: Uint32Array;
  zones: ZoneLayout[];
  bytes: number;
  wasmPages: number;
  /** Metadata bytes per emulated frame: struct page, plus the check scratch. */
  metadataPerPage: number;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function computeLayout(cfg: ResolvedConfig, heapBase: number): Layout {
  const slots = new Uint32Array(NR_LAYOUT_SLOTS);
  const n = cfg.frames + cfg.deviceFrames;
  let at = align(heapBase, 64);
  const region = (slot: number, size: number, alignment = 64): void => {
    at = align(at, alignment);
    slots[slot] = at;
    at += size;
  };
  // The struct page arrays start at distinct offsets modulo 4 KiB (ARRAY_STAGGER apart): with
  // a round frame count they would all share one, and the CPU takes a store to one field and
  // a load of another field of the same page for a possible overlap (4K aliasing) and stalls.
  let staggered = 0;
  const pageArray = (slot: number, bytesPerFrame: number): void => {
    at = align(at, 4096) + (staggered++ * ARRAY_STAGGER) % 4096;
    region(slot, bytesPerFrame * n);
  };
  slots[L.NFRAMES] = n;
  slots[L.SYSTEM_FRAMES] = cfg.frames;
  slots[L.NNODES] = cfg.nodes.length;
  slots[L.CONTENT] = cfg.content === "tags" ? 1 : 0;
  pageArray(L.PAGE_FLAGS, 4);
  pageArray(L.PAGE_REF, 4);
  pageArray(L.PAGE_MAPCOUNT, 4);
  pageArray(L.PAGE_PINCOUNT, 4);
  pageArray(L.PAGE_MAPPING, 4);
  pageArray(L.PAGE_INDEX, 8);
  pageArray(L.PAGE_LRU_NEXT, 4);
  pageArray(L.PAGE_LRU_PREV, 4);
  pageArray(L.PAGE_ZONE, 1);
  pageArray(L.PAGE_ORDER, 1);
  pageArray(L.PAGE_GUP_REFS, 4);
  pageArray(L.SCRATCH, SCRATCH_BYTES);
  if (cfg.content === "tags") pageArray(L.TAGS, 8);
  region(L.ZONES, ZONE_RECORD * MAX_ZONES);
  region(L.MMS, MM_RECORD * cfg.maxProcesses);
  slots[L.MAX_MMS] = cfg.maxProcesses;
  region(L.VMAS, VMA_RECORD * cfg.maxVmas * cfg.maxProcesses);
  slots[L.MAX_VMAS] = cfg.maxVmas;
  region(L.MAPPINGS, MAPPING_RECORD * cfg.maxShmem);
  slots[L.MAX_MAPPINGS] = cfg.maxShmem;
  region(L.OPS, OP_RECORD * MAX_OPS);
  slots[L.MAX_OPS] = MAX_OPS;
  region(L.DATA, DATA_SIZE);
  slots[L.DATA_SIZE] = DATA_SIZE;
  region(L.STATS, 8 * NR_STAT_SLOTS);
  region(L.RESULT, RESULT_SIZE);
  region(L.MIGRATE_SRC, 8 * MAX_MIGRATE * MIGRATE_SLOTS, 8);
  region(L.MIGRATE_DST, 8 * MAX_MIGRATE * MIGRATE_SLOTS, 8);
  slots[L.MAX_MIGRATE] = MAX_MIGRATE;
  region(L.HMM_PFNS, 8 * MAX_MIGRATE, 8);
  region(L.PAGEBLOCKS, Math.ceil(n / PAGEBLOCK_NR_PAGES));
  region(L.CMA, CMA_BITMAP_OFFSET + Math.ceil(cfg.cma.reduce((s, a) => s + a.pages, 0) / 8));
  region(L.PMEM_WEAR, 4 * Math.max(1, cfg.deviceFrames));
  region(L.FREED_RING, 4 * Math.max(1, cfg.deviceFrames));
  slots[L.FREED_RING_SIZE] = Math.max(1, cfg.deviceFrames);
  region(L.TABLES, 4096 * cfg.tablePages, 4096);
  slots[L.NTABLES] = cfg.tablePages;
  if (cfg.content === "bytes") region(L.FRAMES, 4096 * n, 4096);

  const zones = layoutZones(cfg);
  slots[L.NZONES] = zones.length;
  const bytes = at;
  const wasmPages = Math.ceil(bytes / WASM_PAGE);
  if (wasmPages > WASM32_MAX_PAGES) {
    fail("ENOMEM", "Machine.create",
      `this configuration needs ${(bytes / 2 ** 30).toFixed(2)} GiB of Wasm memory; 32-bit Wasm memory holds at most 4 GiB ` +
      `(use content "tags" or fewer frames)`, bytes);
  }
  return { slots, zones, bytes, wasmPages, metadataPerPage: STRUCT_PAGE_BYTES + SCRATCH_BYTES };
}

// Zones lie in pfn order node by node: ZONE_NORMAL then ZONE_MOVABLE. pfn 0 is the zero page.
function layoutZones(cfg: ResolvedConfig): ZoneLayout[] {
  const zones: ZoneLayout[] = [];
  let pfn = 0;
  const lowmem = cfg.nodes.reduce((s, n) => s + n.normal, 0);
  const minPages = Math.floor(cfg.minFreeKbytes / 4);
  for (let node = 0; node < cfg.nodes.length; node++) {
    const spec = cfg.nodes[node]!;
    for (const [type, size] of [[ZONE_NORMAL, spec.normal], [ZONE_MOVABLE, spec.movable]] as const) {
      if (size === 0) continue;
      if (zones.length >= MAX_ZONES) fail("EINVAL", "Machine.create", `more than ${MAX_ZONES} zones`, zones.length);
      // __setup_per_zone_wmarks: lowmem zones share min_free_kbytes by size; movable zones keep a small floor.
      const min = type === ZONE_NORMAL
        ? Math.min(Math.floor(size / 4), Math.floor((minPages * size) / Math.max(1, lowmem)))
        : Math.min(128, Math.max(32, Math.floor(size / 1024)), Math.floor(size / 4));
      const step = Math.max(Math.floor(min / 4), Math.floor(size / 1000));
      zones.push({ id: zones.length, node, type, start: pfn, end: pfn + size, wmarkMin: min, wmarkLow: min + step, wmarkHigh: min + 2 * step });
      pfn += size;
    }
  }
  return zones;
}
