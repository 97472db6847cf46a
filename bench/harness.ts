// Timing: one tinybench task run synchronously and reduced to its median latency, and rounds
// that interleave the variants of a benchmark so that all of them see the same machine load.
// Set-up and tear-down go in beforeEach/afterEach, which tinybench keeps outside the timed call.
import { Bench, type FnOptions } from "tinybench";

export interface Timing {
  /** Median time of one call, in milliseconds (across rounds: the median of the round medians). */
  ms: number;
  /** Fastest and slowest round median, in milliseconds. */
  lo: number;
  hi: number;
  samples: number;
}

export interface TimingOptions {
  /** Time budget of the run phase in ms (default 300). */
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
    time: opts.time ?? 300,
    iterations: opts.iterations ?? 10,
    warmup: warmup > 0,
    warmupIterations: warmup,
    warmupTime: 0,
    throws: true,
  });
  // async: false, or tinybench calls fn once at add() to see whether it returns a promise, outside
  // the hooks: that stray call would leak a forked child or fault on an unmapped region.
  bench.add(name, fn, { ...hooks, async: false });
  const [task] = bench.runSync();
  const r = task!.result;
  if (r.state !== "completed") throw new Error(`benchmark "${name}" ended ${r.state}`);
  const ms = r.latency.p50;
  return { ms, lo: ms, hi: ms, samples: r.latency.samplesCount };
}

/** What a throughput counts: pages, whole operations, or bytes copied. */
export type Unit = "pages/s" | "ops/s" | "B/s";

/** One thing to time: its set-up is done when the variant is made; `run` times one round. */
export interface Variant {
  variant: string;
  /** Work units per call (pages, bytes, or 1 for whole operations). */
  units: number;
  unit: Unit;
  run(): Timing;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Runs every variant once per round, in turn, and merges each one's rounds. */
export function rounds(variants: Variant[], n: number): Timing[] {
  const per: Timing[][] = variants.map(() => []);
  for (let r = 0; r < n; r++) variants.forEach((v, i) => per[i]!.push(v.run()));
  return per.map((ts) => ({
    ms: median(ts.map((t) => t.ms)),
    lo: Math.min(...ts.map((t) => t.ms)),
    hi: Math.max(...ts.map((t) => t.ms)),
    samples: ts.reduce((s, t) => s + t.samples, 0),
  }));
}
