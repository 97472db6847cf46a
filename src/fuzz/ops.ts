// The fuzzer's operations: a program is a list of ops, each a name and small integer
// arguments (JSON-serialisable, replayable). Arguments name things by id (process ids,
// region ids per process, file ids, pin holds, CMA slots); an op whose id names nothing
// live is skipped, so dropping ops while shrinking never makes a program invalid.
import { MAX_FAULT_ARG, MAX_FAULT_SITE, MAX_FAULT_TIMES } from "./faults.js";

/** Ids each kind of thing may take (the generator and the replay schema use the same bounds). */
export const MAX_PID = 7;
export const MAX_RID = 15;
export const MAX_FID = 2;
export const MAX_HOLD = 15;
export const MAX_CMA_SLOT = 3;
export const MAX_DEV = 3;
export const MAX_NODE = 1;
export const MAX_REGION_PAGES = 16;
export const MAX_FILE_PAGES = 16;
export const MAX_CPU_ACCESSES = 256;

/** Per op: the names of its arguments and each one's largest value (all are integers from 0). */
export const OP_SPECS = {
  spawn: [["pid", MAX_PID]],
  fork: [["child", MAX_PID], ["parent", MAX_PID]],
  exit: [["pid", MAX_PID]],
  /** kind: 0 private anonymous, 1 shared anonymous, 2 shared file, 3 private file. */
  mmap: [["pid", MAX_PID], ["rid", MAX_RID], ["pages", MAX_REGION_PAGES], ["kind", 3], ["fid", MAX_FID]],
  munmap: [["pid", MAX_PID], ["rid", MAX_RID]],
  mprotect: [["pid", MAX_PID], ["rid", MAX_RID], ["writable", 1]],
  madvise: [["pid", MAX_PID], ["rid", MAX_RID], ["page", MAX_REGION_PAGES - 1], ["n", MAX_REGION_PAGES]],
  mremap: [["pid", MAX_PID], ["rid", MAX_RID], ["pages", MAX_REGION_PAGES]],
  mlock: [["pid", MAX_PID], ["rid", MAX_RID], ["lock", 1]],
  mbind: [["pid", MAX_PID], ["rid", MAX_RID], ["node", MAX_NODE], ["move", 1]],
  /** `count` CPU loads and stores over the region, drawn from `seed`; each counts as one op. */
  cpu: [["pid", MAX_PID], ["rid", MAX_RID], ["seed", 0xffff], ["count", MAX_CPU_ACCESSES]],
  /** cmd: 0 READ, 1 WRITE, 2 MIGRATE_TO_DEV, 3 MIGRATE_TO_SYS, 4 SNAPSHOT, 5 EXCLUSIVE (dmirror ioctls). */
  dev: [["pid", MAX_PID], ["rid", MAX_RID], ["dev", MAX_DEV], ["cmd", 5], ["page", MAX_REGION_PAGES - 1], ["n", MAX_REGION_PAGES]],
  /** HMM_DMIRROR_RELEASE (evict and unregister), or just evict (`unregister` 0). */
  devrelease: [["dev", MAX_DEV], ["unregister", 1]],
  movepages: [["pid", MAX_PID], ["rid", MAX_RID], ["page", MAX_REGION_PAGES - 1], ["n", MAX_REGION_PAGES], ["node", MAX_NODE]],
  migratepages: [["pid", MAX_PID], ["from", MAX_NODE], ["to", MAX_NODE]],
  compact: [],
  cmaalloc: [["slot", MAX_CMA_SLOT], ["count", 64]],
  cmarelease: [["slot", MAX_CMA_SLOT]],
  /** mode: 0 FOLL_GET, 1 FOLL_PIN, 2 FOLL_PIN|FOLL_LONGTERM, 3 FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE, 4 FOLL_GET|FOLL_WRITE. */
  gup: [["hold", MAX_HOLD], ["pid", MAX_PID], ["rid", MAX_RID], ["page", MAX_REGION_PAGES - 1], ["n", MAX_REGION_PAGES], ["mode", 4]],
  unpin: [["hold", MAX_HOLD]],
  /** One page of a file: written with a fresh tag (pwrite / writeTags), or read and compared. */
  fwrite: [["fid", MAX_FID], ["page", MAX_FILE_PAGES - 1]],
  fread: [["fid", MAX_FID], ["page", MAX_FILE_PAGES - 1]],
  ftruncate: [["fid", MAX_FID], ["pages", MAX_FILE_PAGES]],
  fsync: [["fid", MAX_FID]],
  msync: [["pid", MAX_PID], ["rid", MAX_RID]],
  powerfail: [],
  /** Simulated threads on one region: each stores to and loads back its own pages while one migrates the region to `node`. */
  threads: [["pid", MAX_PID], ["rid", MAX_RID], ["threads", 3], ["steps", 16], ["seed", 0xffff], ["node", MAX_NODE]],
  /** An injected fault (src/fuzz/faults.ts FAULT_SITES: machine.inject), with a site argument and a count. */
  fault: [["site", MAX_FAULT_SITE], ["arg", MAX_FAULT_ARG], ["times", MAX_FAULT_TIMES]],
  /** machine.oomReap: the OOM reaper frees the process's private memory, then it exits. */
  oomreap: [["pid", MAX_PID]],
} as const satisfies Record<string, readonly (readonly [string, number])[]>;

export type OpName = keyof typeof OP_SPECS;
export const OP_NAMES = Object.keys(OP_SPECS) as OpName[];

/** One op: its name, then its arguments in OP_SPECS order. */
export type Op = [OpName, ...number[]];

/** What the machine of a program looks like (small, so many short programs run). */
export interface FuzzMachine {
  content: "bytes" | "tags";
}

export interface Program {
  /** The seed the generator drew the program from (informational in a replay). */
  seed: number;
  machine: FuzzMachine;
  ops: Op[];
}
