// The simulated-time cost model: what each event costs in nanoseconds of simulated time.
// Figures are round numbers of the order a 2020s x86 server with a PCIe 4.0 GPU and a
// CXL-attached coherent device shows; they make latencies comparable between runs and
// scenarios, not predictions for a particular machine.
export interface CostModel {
  /** A CPU load or store that hits a present PTE. */
  cpuAccessNs: number;
  /** A read fault that maps the shared zero page. */
  zeroPageFaultNs: number;
  /** A demand fault that allocates and zeroes a fresh page. */
  anonFaultNs: number;
  /** A copy-on-write fault: fault plus a 4 KiB copy. */
  cowFaultNs: number;
  /** Fixed cost of a CPU fault on a device-private page (trap, driver, TLB shootdown). */
  deviceFaultNs: number;
  /** Fixed cost of one migrate_vma call (setup, unmap, notifiers, finalize). */
  migrateCallNs: number;
  /** Copying one page over the device link, per device type. */
  pageCopyPrivateNs: number;
  pageCopyCoherentNs: number;
  /** One hmm_range_fault call, and per page it walks. */
  hmmCallNs: number;
  hmmPageNs: number;
  /** A device load or store of one page in its own memory, and of one page across the link. */
  deviceLocalNs: number;
  deviceRemoteNs: number;
  /** mmap / munmap / mprotect of a region, and per page a zap or fork copies. */
  syscallNs: number;
  perPageNs: number;
  /** fork and exit, fixed part. */
  forkNs: number;
}

export const DEFAULT_COST: CostModel = {
  cpuAccessNs: 5,
  zeroPageFaultNs: 350,
  anonFaultNs: 700,
  cowFaultNs: 1500,
  deviceFaultNs: 10_000,
  migrateCallNs: 5_000,
  pageCopyPrivateNs: 256, // 4 KiB at 16 GB/s
  pageCopyCoherentNs: 128, // 4 KiB at 32 GB/s
  hmmCallNs: 1_500,
  hmmPageNs: 20,
  deviceLocalNs: 2,
  deviceRemoteNs: 300,
  syscallNs: 1_000,
  perPageNs: 25,
  forkNs: 30_000,
};
