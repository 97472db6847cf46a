// The stress runner as a library: scenarios, runs, reports.
export { StressRun, runScenario, replay, checkRunOptions, type RunOptions, type RunReport, type StressResult, type RecordHeader, type LatencySummary, type DeviceReport, type TimelineSample } from "./run.js";
export { renderHtml } from "./html.js";
export { STATE_COLORS } from "./html-script.js";
export { buildReport, mergeReports, formatSummary, type Report, type Totals } from "./report.js";
export { SCENARIOS, DEFAULT_SCENARIO, scenarioByName, Emitter, type Scenario, type Generator } from "./scenarios/index.js";
export { PRESETS, checkMachineSpec, resolveMachine, withPmem, InputError, type MachineSpec, type DeviceSpec, type DeviceKind, type CmaSpec, type PmemSpec } from "./machine-spec.js";
export { World, StressFailure, type Region } from "./world.js";
export { Gpu } from "./gpu.js";
export { PAGE_STATES, type Census, type PageState } from "./census.js";
export { DEFAULT_COST, type CostModel } from "./cost.js";
export { LATENCY_KINDS, type LatencyKind, type TraceEvent } from "./timeline.js";
export * from "./ops.js";
