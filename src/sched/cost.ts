// What simulated threads and copy engines spend, in nanoseconds of simulated time. The
// figures follow the stress runner's cost model (src/stress/cost.ts); they make stall
// times comparable between runs and modes, not predictions for a particular machine.
import { DEFAULT_COST } from "../stress/cost.js";

export interface SchedCost {
  /** A CPU load or store that hits a present PTE. */
  cpuAccessNs: number;
  /** Each CPU fault an access takes (demand, COW, or the trap into migration_entry_wait). */
  faultNs: number;
  /** From the end of a migration to a thread it woke running again. */
  wakeNs: number;
  /** The MMU_NOTIFY_MIGRATE invalidation and TLB shootdown at setup. */
  notifierNs: number;
  /** migrate_vma_setup: fixed, and per page collected (unmap or write-protect). */
  migrateSetupNs: number;
  migrateSetupPageNs: number;
  /** migrate_vma_pages + migrate_vma_finalize: fixed, and per page remapped. */
  finalizeNs: number;
  finalizePageNs: number;
  /** Any other call a thread makes (mmap, fork, munmap, mprotect). */
  syscallNs: number;
}

export const DEFAULT_SCHED_COST: SchedCost = {
  cpuAccessNs: DEFAULT_COST.cpuAccessNs,
  faultNs: DEFAULT_COST.anonFaultNs,
  wakeNs: 2_000,
  notifierNs: DEFAULT_COST.hmmCallNs,
  migrateSetupNs: DEFAULT_COST.migrateCallNs / 2,
  migrateSetupPageNs: 50,
  finalizeNs: DEFAULT_COST.migrateCallNs / 2,
  finalizePageNs: 50,
  syscallNs: DEFAULT_COST.syscallNs,
};

/** Copy bandwidth of a PCIe 4.0 x16 device and of a CXL-attached one, in bytes per ns (= GB/s). */
export const PCIE_BYTES_PER_NS = 16;
export const CXL_BYTES_PER_NS = 32;
