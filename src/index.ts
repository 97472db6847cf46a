export { Machine, type ZoneInfo } from "./machine.js";
export { Process, type SpawnOptions, type RunResult } from "./process.js";
export { AccessBatch } from "./batch.js";
export { MmError, ERRNO, type ErrnoName, type FaultInfo } from "./errors.js";
export type { MachineConfig, NodeConfig, ContentMode, WasmBuild, CmaConfig, CmaArea } from "./config.js";
export { STAT_NAMES, STAT_SLOTS, type Counters, type StatName } from "./stats.js";
export { setWasmBinary } from "./wasm.js";
export * from "./constants.js";
export {
  DevPagemap, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_FS_DAX, MEMORY_DEVICE_GENERIC,
  VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_HWPOISON, type DevPagemapOps, type DevPagemapConfig, type VmFault, type MemoryType,
} from "./device/pagemap.js";
export {
  MigrateVma, migratePfn, migratePfnToPage, MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_SHIFT, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_FILE, type MigrateVmaArgs,
} from "./migrate.js";
export {
  MmuIntervalNotifier, MMU_NOTIFY_UNMAP, MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA, MMU_NOTIFY_PROTECTION_PAGE,
  MMU_NOTIFY_SOFT_DIRTY, MMU_NOTIFY_RELEASE, MMU_NOTIFY_MIGRATE, MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFIER_RANGE_BLOCKABLE,
  MMU_NOTIFY_EVENT_NAMES, type MmuNotifierRange, type MmuIntervalNotifierOps,
} from "./hmm/notifier.js";
export {
  HMM_PFN_VALID, HMM_PFN_WRITE, HMM_PFN_ERROR, HMM_PFN_DMA_MAPPED, HMM_PFN_P2PDMA, HMM_PFN_P2PDMA_BUS, HMM_PFN_ORDER_SHIFT,
  HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_FLAGS, HMM_RANGE_DEFAULT_TIMEOUT, hmmPfnToPfn, type HmmRange,
} from "./hmm/range.js";
export { PageAccess } from "./page.js";
export { MigrationHints, type MigrationHintsOptions, type HintStats } from "./policy/hints.js";
export { HysteresisPolicy, type HintPolicy, type HysteresisOptions, type PageHint, type Placement } from "./policy/hint-policy.js";
export * from "./sched/index.js";
export {
  FOLL_WRITE, FOLL_GET, FOLL_DUMP, FOLL_FORCE, FOLL_NOWAIT, FOLL_NOFAULT, FOLL_HWPOISON, FOLL_ANON, FOLL_LONGTERM,
  FOLL_SPLIT_PMD, FOLL_PCI_P2PDMA, FOLL_INTERRUPTIBLE, FOLL_HONOR_NUMA_FAULT, FOLL_TOUCH, FOLL_TRIED, FOLL_REMOTE,
  FOLL_PIN, FOLL_FAST_ONLY, FOLL_UNLOCKABLE, FOLL_MADV_POPULATE, GUP_PIN_COUNTING_BIAS,
} from "./pin/flags.js";
export { PinpageSystem, type PinpageOps } from "./pin/pinpage.js";
export {
  PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC, MIGRATE_CMA,
  MIGRATE_ISOLATE, MIGRATETYPE_NAMES, pageIsCma,
} from "./pageblock.js";
export type { CompactResult, CompactStatus } from "./compaction.js";
export type { CmaAreaInfo } from "./cma.js";
export type { OfflineResult } from "./hotplug.js";
export { PageFailureError, resolveExtraRefs, type PageFailure, type PageFailureKind } from "./isolation.js";
export {
  MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES,
  MPOL_F_NUMA_BALANCING, MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED,
  MAX_NUMNODES,
} from "./numa/mpol.js";
export type { Mempolicy } from "./numa/mempolicy.js";
export { NR_MAX_MIGRATE_PAGES_RETRY, type MovePagesResult, type RetryOptions } from "./numa/migrate-pages.js";
export { MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT } from "./mlock.js";
export * from "./stress/index.js";
export {
  EmulatedBlockDevice, BLOCK_SECTOR_BYTES, MAX_BLOCK_SECTORS, type BlockDevice, type BlockDeviceOptions, type IoStats,
  type InjectedError, type Wear,
} from "./block/index.js";
export { FileSystem } from "./fs/filesystem.js";
export { OpenFile } from "./fs/file.js";
export type { Inode } from "./fs/inode.js";
export { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, MS_ASYNC, MS_SYNC, MS_INVALIDATE, MAX_FILE_PAGES } from "./fs/constants.js";
export { DIRTY_BACKGROUND_RATIO } from "./fs/pagecache.js";
export {
  PmemDevice, KERNEL_STRUCT_PAGE_BYTES, DAX_VM_FLAGS, PMEM_REQUEST_NS, PMEM_BYTES_PER_NS, type PmemMode, type StructPageOverhead,
  type PmemConfig, type DaxMmapOptions,
} from "./pmem/index.js";
export type { DevicePageWriteback, DevicePageStats } from "./fs/devpage.js";
export { Injector } from "./inject/injector.js";
export { CALLBACKS, type CallbackName, type Injection, type InjectionSpec, type Site, type When } from "./inject/spec.js";
export { MAX_OOM_REAP_RETRIES, type OomReapResult } from "./oom.js";
