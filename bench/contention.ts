// Migration under contention: the migrate-contention scenario on the default machine, the same
// workload with the kernel's blocking migration entries and with read-only entries (seed 004).
// Its stall figures are simulated time, so they are the same on every run and every machine:
// they go into the notes as a table. The row times the whole run (both modes) in wall time.
import { Bench } from "tinybench";
import type { Group, Row } from "./report.js";
import { PRESETS } from "../src/stress/machine-spec.js";
import { runScenario } from "../src/stress/run.js";
import { formatContention, mergeContention, type ContentionReport } from "../src/stress/contention.js";

/** Operations per run (both modes together), and the seeds whose figures the table adds up. */
const OPS = 1_000_000;
const SEEDS = [1, 2, 3];
/** The bar: read-only entries cut reader stall time by this much at least, with no write lost. */
const BAR = 0.9;

export async function contention(nRounds: number): Promise<Group> {
  let failed = 0;
  const runs: ContentionReport[] = [];
  for (const seed of SEEDS) {
    const r = runScenario({ scenario: "migrate-contention", seed, ops: OPS, machine: PRESETS.default!, build: "release" }).report;
    if (r.failure) failed++;
    runs.push(r.contention!);
  }
  const report = mergeContention(runs)!;
  const bench = new Bench({ name: "contention", iterations: nRounds, time: 0, warmup: false, throws: true });
  bench.add("migrate-contention", () => {
    const r = runScenario({ scenario: "migrate-contention", seed: SEEDS[0]!, ops: OPS, machine: PRESETS.default!, build: "release" }).report;
    if (r.failure) throw new Error(`bench: migrate-contention failed: ${r.failure.message}`);
  });
  const [task] = await bench.run();
  const t = task!.result;
  if (t.state !== "completed") throw new Error(`benchmark contention ended ${t.state}`);
  const row: Row = {
    variant: "both modes, seed 1 (wall time)", units: OPS, unit: "ops/s",
    timing: { ms: t.latency.p50, lo: t.latency.min, hi: t.latency.max, samples: t.latency.samplesCount },
    bar: `read-only: reader stall −≥ ${BAR * 100}%, 0 lost writes`,
    met: failed === 0 && report.readerStallReduction >= BAR,
  };
  const [b, ro] = report.modes;
  return {
    title: `Migration contention, migrate-contention, ${OPS / 1e6} M operations per seed`,
    what: `the scenario's CPU readers and writers against device-coherent drivers migrating their region, run with blocking and ` +
      `with read-only migration entries on the same workload (seeds ${SEEDS.join(", ")}, default machine); the stall table is ` +
      `simulated time and deterministic; the row is the wall time of one whole run.`,
    rows: [row],
    notes: [
      ...formatContention(report, failed === 0).slice(1).map((l) => l.trimEnd()),
      `reader stall: ${(b!.reads.totalNs / 1e6).toFixed(2)} ms blocking vs ${(ro!.reads.totalNs / 1e6).toFixed(2)} ms read-only ` +
        `(simulated, ${SEEDS.length} seeds); writers: ${(b!.writes.totalNs / 1e6).toFixed(2)} vs ${(ro!.writes.totalNs / 1e6).toFixed(2)} ms.`,
    ],
  };
}
