export { Machine, type ZoneInfo } from "./machine.js";
export { Process, type SpawnOptions, type RunResult } from "./process.js";
export { AccessBatch } from "./batch.js";
export { MmError, ERRNO, type ErrnoName, type FaultInfo } from "./errors.js";
export type { MachineConfig, NodeConfig, ContentMode, WasmBuild } from "./config.js";
export { STAT_NAMES, type Counters, type StatName } from "./stats.js";
export { setWasmBinary } from "./wasm.js";
export * from "./constants.js";
