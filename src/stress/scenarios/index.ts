// The stress scenarios by name.
import type { Scenario } from "./common.js";
import { gpuOffload } from "./gpu-offload.js";
import { coherentShare } from "./coherent-share.js";
import { oversubscribe } from "./oversubscribe.js";
import { mixed } from "./mixed.js";
import { migrateContention } from "./migrate-contention.js";
import { pinStorm } from "./pin-storm.js";
import { pmem } from "./pmem.js";
import { fileWriteback } from "./file-writeback.js";

export const SCENARIOS: readonly Scenario[] = [mixed, gpuOffload, coherentShare, oversubscribe, migrateContention, pinStorm, fileWriteback, pmem];
export const DEFAULT_SCENARIO = "mixed";

export function scenarioByName(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

export { Emitter, type Scenario, type Generator } from "./common.js";
