// A worker thread of `mmemu run --workers N`: runs its share of the seeds, each on its
// own machine (one Wasm instance), and posts progress and one report per seed.
import { parentPort, workerData } from "node:worker_threads";
import { runScenario, type RunOptions } from "../stress/run.js";
import { InputError } from "../stress/machine-spec.js";

export interface WorkerJob {
  opts: Omit<RunOptions, "seed" | "onProgress">;
  seeds: number[];
}

export type WorkerMessage =
  | { type: "progress"; done: number }
  | { type: "report"; report: import("../stress/run.js").RunReport; wallMs: number }
  | { type: "error"; message: string; input: boolean };

const job = workerData as WorkerJob;
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);
let finished = 0;
try {
  for (const seed of job.seeds) {
    const r = runScenario({ ...job.opts, seed, onProgress: (done) => post({ type: "progress", done: finished + done }) });
    finished += r.report.ops;
    post({ type: "report", report: r.report, wallMs: r.wallMs });
  }
} catch (e) {
  post({ type: "error", message: (e as Error).message, input: e instanceof InputError });
}
