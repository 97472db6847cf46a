// vmstat counter names, in the slot order of assembly/stat.ts.
export const STAT_NAMES = [
  "nr_free_pages",
  "nr_anon_pages",
  "nr_shmem",
  "nr_page_table_pages",
  "pgfault",
  "pgalloc_normal",
  "pgalloc_movable",
  "pgfree",
  "cow_fault",
  "pglazyfree",
  "pglazyfreed",
  "zero_page_fault",
  "reuse_fault",
  "pgalloc_fail",
  "nr_radix_nodes",
  "pgmigrate_success",
  "pgmigrate_fail",
] as const;

export type StatName = (typeof STAT_NAMES)[number];
export type Counters = Record<StatName, number>;

export function readCounters(stats: BigInt64Array): Counters {
  const out = {} as Counters;
  STAT_NAMES.forEach((name, i) => {
    out[name] = Number(stats[i]);
  });
  return out;
}
