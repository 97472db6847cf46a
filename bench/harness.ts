// One timed measurement: a tinybench task run synchronously, reduced to its median latency.
// Set-up and tear-down go in beforeEach/afterEach, which tinybench keeps outside the timed call.
import { Bench, type FnOptions } from "tinybench";

export interface Timing {
  /** Median time of one call, in milliseconds. */
  ms: number;
  /** Relative margin of error of the mean, in percent. */
  rme: number;
  samples: number;
}

export interface TimingOptions {
  /** Time budget of the run phase in ms (default 400). */
  time?: number;
  /** Minimum iterations of the run phase (default 10). */
  iterations?: number;
  /** Warm-up iterations (default 5; 0 disables warm-up). */
  warmup?: number;
}

export function measure(name: string, fn: () => unknown, hooks: FnOptions = {}, opts: TimingOptions = {}): Timing {
  const warmup = opts.warmup ?? 5;
  const bench = new Bench({
    name,
    time: opts.time ?? 400,
    iterations: opts.iterations ?? 10,
    warmup: warmup > 0,
    warmupIterations: warmup,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, fn, hooks);
  const [task] = bench.runSync();
  const r = task!.result;
  if (r.state !== "completed") throw new Error(`benchmark "${name}" ended ${r.state}`);
  return { ms: r.latency.p50, rme: r.latency.rme, samples: r.latency.samplesCount };
}
