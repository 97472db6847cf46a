// The whole stress runner on `mixed` (the default scenario, default machine, invariant checks every
// 64 Ki operations, every read checked against the shadow, final verification): operations per
// second in one worker thread, and with two worker threads running one seed each. Each call is a
// whole `runInWorkers` (thread start, Wasm compile, machine creation, the run, the report).
import { Bench } from "tinybench";
import type { Timing } from "./harness.js";
import type { Group, Row } from "./report.js";
import { PRESETS } from "../src/stress/machine-spec.js";
import { runInWorkers } from "../src/cli/workers.js";

/** Operations per run. */
const OPS = 16_000_000;
const CHECK_EVERY = 65536;

async function time(workers: number, nRounds: number): Promise<Timing> {
  // The same seed in every worker: each does the same work as the single one.
  const seeds = new Array<number>(workers).fill(1);
  const bench = new Bench({ name: `runner ${workers}`, iterations: nRounds, time: 0, warmup: true, warmupIterations: 1, warmupTime: 0, throws: true });
  bench.add(`mixed x${workers}`, async () => {
    const reports = await runInWorkers({ scenario: "mixed", ops: OPS, machine: PRESETS.default!, checkEvery: CHECK_EVERY }, seeds, workers, () => {});
    for (const r of reports) if (r.failure) throw new Error(`bench: mixed seed ${r.seed} failed: ${r.failure.message}`);
  });
  const [task] = await bench.run();
  const r = task!.result;
  if (r.state !== "completed") throw new Error(`benchmark runner x${workers} ended ${r.state}`);
  return { ms: r.latency.p50, lo: r.latency.min, hi: r.latency.max, samples: r.latency.samplesCount };
}

export async function runner(nRounds: number): Promise<Group> {
  // Alternate so both see the same machine load.
  const one: Timing[] = [];
  const two: Timing[] = [];
  for (let i = 0; i < Math.max(1, Math.ceil(nRounds / 2)); i++) {
    one.push(await time(1, 2));
    two.push(await time(2, 2));
  }
  const merge = (ts: Timing[]): Timing => {
    const ms = ts.map((t) => t.ms).sort((a, b) => a - b);
    return { ms: ms[ms.length >> 1]!, lo: Math.min(...ts.map((t) => t.lo)), hi: Math.max(...ts.map((t) => t.hi)), samples: ts.reduce((s, t) => s + t.samples, 0) };
  };
  const rowOne: Row = { variant: "1 worker thread", units: OPS, unit: "ops/s", timing: merge(one) };
  const rowTwo: Row = { variant: "2 worker threads (seed 1 each)", units: 2 * OPS, unit: "ops/s", timing: merge(two) };
  const perWorker = OPS / (rowOne.timing.ms / 1000);
  const scaling = (2 * OPS) / rowTwo.timing.ms / (OPS / rowOne.timing.ms);
  rowOne.bar = "≥ 2 M ops/s per worker";
  rowOne.met = perWorker >= 2e6;
  rowTwo.bar = "≥ 1.7× one worker";
  rowTwo.met = scaling >= 1.7;
  return {
    title: `Stress runner, mixed, ${OPS / 1e6} M operations per seed`,
    what: `\`runInWorkers\` (what \`mmemu run mixed --workers N\` does) on the default machine with invariant checks every ` +
      `${CHECK_EVERY} operations, every read compared with the shadow and the final read-back of every page; a call includes ` +
      `starting the threads, compiling the Wasm, creating the machines and building the reports.`,
    rows: [rowOne, rowTwo],
    notes: [`2 workers run ${scaling.toFixed(2)}× the operations per second of one (per worker: ${(perWorker / 1e6).toFixed(2)} M ops/s alone).`],
  };
}
