// Runs seeds on N worker threads (independent machines) and gathers their reports.
import { Worker } from "node:worker_threads";
import type { RunOptions, RunReport } from "../stress/run.js";
import { InputError } from "../stress/machine-spec.js";
import type { WorkerJob, WorkerMessage } from "./worker.js";

export async function runInWorkers(opts: Omit<RunOptions, "seed" | "onProgress">, seeds: number[], workers: number,
  onProgress: (done: number) => void): Promise<RunReport[]> {
  const shares = Array.from({ length: Math.min(workers, seeds.length) }, (_, w) => seeds.filter((_, i) => i % workers === w));
  const done = new Array<number>(shares.length).fill(0);
  const reports: RunReport[] = [];
  const threads: Worker[] = [];
  const finished = shares.map((share, w) => new Promise<void>((resolve, reject) => {
    const job: WorkerJob = { opts, seeds: share };
    // A large young generation: the run makes many short-lived numbers, and fewer scavenges
    // leave the other cores to the other workers.
    const t = new Worker(new URL("./worker.js", import.meta.url), { workerData: job, resourceLimits: { maxYoungGenerationSizeMb: 64 } });
    threads.push(t);
    t.on("message", (m: WorkerMessage) => {
      if (m.type === "progress") {
        done[w] = m.done;
        onProgress(done.reduce((a, b) => a + b, 0));
      } else if (m.type === "report") {
        reports.push(m.report);
      } else {
        reject(m.input ? new InputError(m.message) : new Error(`worker ${w}: ${m.message}`));
      }
    });
    t.on("error", reject);
    t.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`worker ${w} exited with status ${code}`))));
  }));
  try {
    await Promise.all(finished);
  } catch (e) {
    // One worker's error ends the sweep: the others stop too.
    await Promise.all(threads.map((t) => t.terminate()));
    throw e;
  }
  return reports;
}
