// Simulated time: the scheduler, its threads, copy engines, cost model and stall records.
export { Scheduler, type SchedulerOptions, type SchedTrace } from "./scheduler.js";
export { SimThread, type Program, type ThreadApi, type Action, type MigrateRequest, type MigrateResult, type ThreadState } from "./thread.js";
export { CopyEngine } from "./engine.js";
export { DEFAULT_SCHED_COST, PCIE_BYTES_PER_NS, CXL_BYTES_PER_NS, type SchedCost } from "./cost.js";
export { StallStats, StallRecord, type StallSummary } from "./stall.js";
