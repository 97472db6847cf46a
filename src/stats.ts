// vmstat counters by their kernel names, each at its slot of assembly/stat.ts.
export const STAT_SLOTS = {
  nr_free_pages: 0,
  nr_anon_pages: 1,
  nr_shmem: 2,
  nr_page_table_pages: 3,
  pgfault: 4,
  pgalloc_normal: 5,
  pgalloc_movable: 6,
  pgfree: 7,
  cow_fault: 8,
  pglazyfree: 9,
  pglazyfreed: 10,
  zero_page_fault: 11,
  reuse_fault: 12,
  pgalloc_fail: 13,
  nr_radix_nodes: 14,
  pgmigrate_success: 15,
  pgmigrate_fail: 16,
  pgmigrate_ro_pages: 36,
  pgmigrate_entry_wait: 37,
  nr_foll_pin_acquired: 17,
  nr_foll_pin_released: 18,
  compact_migrate_scanned: 26,
  compact_free_scanned: 27,
  compact_isolated: 28,
  compact_stall: 29,
  compact_fail: 30,
  compact_success: 31,
  cma_alloc_success: 32,
  cma_alloc_fail: 33,
  nr_free_cma: 34,
  nr_mlock: 19,
  unevictable_pgs_mlocked: 20,
  unevictable_pgs_munlocked: 21,
  numa_hit: 22,
  numa_miss: 23,
  numa_foreign: 24,
  numa_interleave: 25,
  nr_file_pages: 38,
  nr_dirty: 39,
  nr_writeback: 40,
  nr_inactive_file: 41,
  nr_active_file: 42,
  pgscan_file: 43,
  pgsteal_file: 44,
  nr_dirtied: 45,
  nr_written: 46,
  nr_bounce: 47,
} as const;

export type StatName = keyof typeof STAT_SLOTS;
export type Counters = Record<StatName, number>;

/** Counter names in slot order. */
export const STAT_NAMES: readonly StatName[] = (Object.keys(STAT_SLOTS) as StatName[]).sort((a, b) => STAT_SLOTS[a] - STAT_SLOTS[b]);

/** The name of the counter at a slot, if any. */
export function statNameAt(slot: number): StatName | undefined {
  return STAT_NAMES.find((n) => STAT_SLOTS[n] === slot);
}

export function readCounters(stats: BigInt64Array): Counters {
  const out = {} as Counters;
  for (const name of STAT_NAMES) out[name] = Number(stats[STAT_SLOTS[name]]);
  return out;
}
