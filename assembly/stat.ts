// vmstat counters: i64 slots in the STATS region, read by TS as a plain object
// (src/stats.ts keeps the same order).
import { statsBase } from "./layout";

export const NR_FREE_PAGES = 0;
export const NR_ANON_PAGES = 1;
export const NR_SHMEM = 2;
export const NR_PAGE_TABLE_PAGES = 3;
export const PGFAULT = 4;
export const PGALLOC_NORMAL = 5;
export const PGALLOC_MOVABLE = 6;
export const PGFREE = 7;
export const COW_FAULT = 8;
export const PGLAZYFREE = 9;
export const PGLAZYFREED = 10;
export const ZERO_PAGE_FAULT = 11;
export const REUSE_FAULT = 12;
export const PGALLOC_FAIL = 13;
export const NR_RADIX_NODES = 14;
export const PGMIGRATE_SUCCESS = 15;
export const PGMIGRATE_FAIL = 16;
// Read-only migration entries (seed 004): pages a migration collected write-protected
// instead of unmapped, and CPU faults that found their page under migration (a migration
// entry, or a write to a read-only migration PTE) and would sleep in migration_entry_wait.
export const PGMIGRATE_RO_PAGES = 36;
export const PGMIGRATE_ENTRY_WAIT = 37;
export const NR_FOLL_PIN_ACQUIRED = 17;
export const NR_FOLL_PIN_RELEASED = 18;
export const COMPACT_MIGRATE_SCANNED = 26;
export const COMPACT_FREE_SCANNED = 27;
export const COMPACT_ISOLATED = 28;
export const COMPACT_STALL = 29;
export const COMPACT_FAIL = 30;
export const COMPACT_SUCCESS = 31;
export const CMA_ALLOC_SUCCESS = 32;
export const CMA_ALLOC_FAIL = 33;
export const NR_FREE_CMA = 34;
// mlock and NUMA placement (slots 19..25).
export const NR_MLOCK = 19;
export const UNEVICTABLE_PGMLOCKED = 20;
export const UNEVICTABLE_PGMUNLOCKED = 21;
export const NUMA_HIT = 22;
export const NUMA_MISS = 23;
export const NUMA_FOREIGN = 24;
export const NUMA_INTERLEAVE_HIT = 25;
// The page cache and writeback (38..47).
export const NR_FILE_PAGES = 38;
export const NR_DIRTY = 39;
export const NR_WRITEBACK = 40;
export const NR_INACTIVE_FILE = 41;
export const NR_ACTIVE_FILE = 42;
export const PGSCAN_FILE = 43;
export const PGSTEAL_FILE = 44;
export const NR_DIRTIED = 45;
export const NR_WRITTEN = 46;
export const NR_BOUNCE = 47;
export const NR_STATS = 64;

// The hottest counters accumulate in globals, like the kernel's per-cpu vm_stat_diff,
// and are folded into the STATS region before anyone reads it (statFold).
let dNrFree: i64 = 0;
let dNrAnon: i64 = 0;
let dPgfault: i64 = 0;
let dPgallocNormal: i64 = 0;
let dNumaHit: i64 = 0;
let dPgallocMovable: i64 = 0;
let dPgfree: i64 = 0;

@inline function slot(i: i32): usize {
  return statsBase + (<usize>i << 3);
}

@inline export function statAdd(i: i32, n: i64): void {
  if (i == NR_FREE_PAGES) dNrFree += n;
  else if (i == NR_ANON_PAGES) dNrAnon += n;
  else if (i == PGFAULT) dPgfault += n;
  else if (i == PGALLOC_NORMAL) dPgallocNormal += n;
  else if (i == NUMA_HIT) dNumaHit += n;
  else if (i == PGALLOC_MOVABLE) dPgallocMovable += n;
  else if (i == PGFREE) dPgfree += n;
  else store<i64>(slot(i), load<i64>(slot(i)) + n);
}

export function statFold(): void {
  store<i64>(slot(NR_FREE_PAGES), load<i64>(slot(NR_FREE_PAGES)) + dNrFree);
  store<i64>(slot(NR_ANON_PAGES), load<i64>(slot(NR_ANON_PAGES)) + dNrAnon);
  store<i64>(slot(PGFAULT), load<i64>(slot(PGFAULT)) + dPgfault);
  store<i64>(slot(PGALLOC_NORMAL), load<i64>(slot(PGALLOC_NORMAL)) + dPgallocNormal);
  store<i64>(slot(NUMA_HIT), load<i64>(slot(NUMA_HIT)) + dNumaHit);
  store<i64>(slot(PGALLOC_MOVABLE), load<i64>(slot(PGALLOC_MOVABLE)) + dPgallocMovable);
  store<i64>(slot(PGFREE), load<i64>(slot(PGFREE)) + dPgfree);
  dNrFree = 0;
  dNrAnon = 0;
  dPgfault = 0;
  dPgallocNormal = 0;
  dNumaHit = 0;
  dPgallocMovable = 0;
  dPgfree = 0;
}

// A counter's value; folds the pending diffs first.
export function statGet(i: i32): i64 {
  statFold();
  return load<i64>(slot(i));
}
