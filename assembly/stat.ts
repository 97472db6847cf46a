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
export const NR_STATS = 24;

@inline export function statAdd(i: i32, n: i64): void {
  const p = statsBase + (<usize>i << 3);
  store<i64>(p, load<i64>(p) + n);
}

@inline export function statGet(i: i32): i64 {
  return load<i64>(statsBase + (<usize>i << 3));
}
