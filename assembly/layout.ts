// The fixed memory map. TypeScript computes it from the machine configuration
// (src/layout.ts), writes it into LAYOUT and calls init(); the regions never move.

export const LAYOUT: usize = memory.data(256, 16);

// Slots of LAYOUT (u32 each), shared with src/layout.ts.
export const L_NFRAMES = 0;
export const L_NZONES = 1;
export const L_NNODES = 2;
export const L_CONTENT = 3;
export const L_PAGE_FLAGS = 4;
export const L_PAGE_REF = 5;
export const L_PAGE_MAPCOUNT = 6;
export const L_PAGE_PINCOUNT = 7;
export const L_PAGE_MAPPING = 8;
export const L_PAGE_INDEX = 9;
// Slot 10 held page->private, which nothing used.
export const L_PAGE_PRIVATE = 10;
export const L_PAGE_LRU_NEXT = 11;
export const L_PAGE_LRU_PREV = 12;
export const L_PAGE_ZONE = 13;
export const L_PAGE_ORDER = 14;
export const L_TAGS = 15;
export const L_FRAMES = 16;
export const L_SCRATCH = 17;
export const L_ZONES = 18;
export const L_TABLES = 19;
export const L_NTABLES = 20;
export const L_MMS = 21;
export const L_MAX_MMS = 22;
export const L_VMAS = 23;
export const L_MAX_VMAS = 24;
export const L_MAPPINGS = 25;
export const L_MAX_MAPPINGS = 26;
export const L_OPS = 27;
export const L_MAX_OPS = 28;
export const L_DATA = 29;
export const L_DATA_SIZE = 30;
export const L_STATS = 31;
export const L_RESULT = 32;
export const L_MIGRATE_SRC = 33;
export const L_MIGRATE_DST = 34;
export const L_MAX_MIGRATE = 35;
export const L_HMM_PFNS = 36;
export const L_FREED_RING = 37;
export const L_FREED_RING_SIZE = 38;
export const L_SYSTEM_FRAMES = 39;
// The ledger of GUP references and pin control holds, u32 per pfn (assembly/memmap.ts).
export const L_PAGE_GUP_REFS = 40;
export const L_PAGEBLOCKS = 41;
export const L_CMA = 42;
// pmem write counters (endurance), u32 per frame of the device address space (assembly/pmem.ts).
export const L_PMEM_WEAR = 43;
// Slots 44..46 are free.
export const L_END = 47;

export const CONTENT_BYTES: u32 = 0;
export const CONTENT_TAGS: u32 = 1;

export const PAGE_SHIFT: u32 = 12;
export const PAGE_SIZE: u32 = 4096;
export const MAX_ORDER: u32 = 10;
export const NONE: u32 = 0xffffffff;

export let nframes: u32 = 0;
export let nzones: u32 = 0;
export let nnodes: u32 = 0;
export let contentMode: u32 = 0;
export let pageFlags: usize = 0;
export let pageRef: usize = 0;
export let pageMapcount: usize = 0;
export let pagePincount: usize = 0;
export let pageMapping: usize = 0;
export let pageIndex: usize = 0;
export let pageLruNext: usize = 0;
export let pageLruPrev: usize = 0;
export let pageZone: usize = 0;
export let pageOrder: usize = 0;
export let tagsBase: usize = 0;
export let framesBase: usize = 0;
export let scratchBase: usize = 0;
export let zonesBase: usize = 0;
export let tablesBase: usize = 0;
export let ntables: u32 = 0;
export let mmsBase: usize = 0;
export let maxMms: u32 = 0;
export let vmasBase: usize = 0;
export let maxVmas: u32 = 0;
export let mappingsBase: usize = 0;
export let maxMappings: u32 = 0;
export let opsBase: usize = 0;
export let maxOps: u32 = 0;
export let dataBase: usize = 0;
export let dataSize: u32 = 0;
export let statsBase: usize = 0;
export let resultBase: usize = 0;
export let migrateSrc: usize = 0;
export let migrateDst: usize = 0;
export let maxMigrate: u32 = 0;
export let hmmPfns: usize = 0;
export let freedRing: usize = 0;
export let freedRingSize: u32 = 0;
// Frames below this pfn are system RAM; the rest is physical address space for ZONE_DEVICE.
export let systemFrames: u32 = 0;
export let pageGupRefs: usize = 0;
// One migratetype byte per pageblock (assembly/pageblock.ts).
export let pageblocksBase: usize = 0;
// The CMA area table and the areas' allocation bitmaps (assembly/pageblock.ts).
export let cmaBase: usize = 0;
export let pmemWear: usize = 0;

@inline function slot(i: i32): u32 {
  return load<u32>(LAYOUT + (<usize>i << 2));
}

export function readLayout(): void {
  nframes = slot(L_NFRAMES);
  nzones = slot(L_NZONES);
  nnodes = slot(L_NNODES);
  contentMode = slot(L_CONTENT);
  pageFlags = slot(L_PAGE_FLAGS);
  pageRef = slot(L_PAGE_REF);
  pageMapcount = slot(L_PAGE_MAPCOUNT);
  pagePincount = slot(L_PAGE_PINCOUNT);
  pageMapping = slot(L_PAGE_MAPPING);
  pageIndex = slot(L_PAGE_INDEX);
  pageLruNext = slot(L_PAGE_LRU_NEXT);
  pageLruPrev = slot(L_PAGE_LRU_PREV);
  pageZone = slot(L_PAGE_ZONE);
  pageOrder = slot(L_PAGE_ORDER);
  tagsBase = slot(L_TAGS);
  framesBase = slot(L_FRAMES);
  scratchBase = slot(L_SCRATCH);
  zonesBase = slot(L_ZONES);
  tablesBase = slot(L_TABLES);
  ntables = slot(L_NTABLES);
  mmsBase = slot(L_MMS);
  maxMms = slot(L_MAX_MMS);
  vmasBase = slot(L_VMAS);
  maxVmas = slot(L_MAX_VMAS);
  mappingsBase = slot(L_MAPPINGS);
  maxMappings = slot(L_MAX_MAPPINGS);
  opsBase = slot(L_OPS);
  maxOps = slot(L_MAX_OPS);
  dataBase = slot(L_DATA);
  dataSize = slot(L_DATA_SIZE);
  statsBase = slot(L_STATS);
  resultBase = slot(L_RESULT);
  migrateSrc = slot(L_MIGRATE_SRC);
  migrateDst = slot(L_MIGRATE_DST);
  maxMigrate = slot(L_MAX_MIGRATE);
  hmmPfns = slot(L_HMM_PFNS);
  freedRing = slot(L_FREED_RING);
  freedRingSize = slot(L_FREED_RING_SIZE);
  systemFrames = slot(L_SYSTEM_FRAMES);
  pageGupRefs = slot(L_PAGE_GUP_REFS);
  pageblocksBase = slot(L_PAGEBLOCKS);
  cmaBase = slot(L_CMA);
  pmemWear = slot(L_PMEM_WEAR);
}
