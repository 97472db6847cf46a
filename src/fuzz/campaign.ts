// A fuzz campaign: programs drawn from consecutive seeds until a time or operation budget
// runs out. A failing program is shrunk and kept as replay text; the report sums it all.
import { runProgram, type ExecOptions, type ExecResult } from "./exec.js";
import { generateProgram } from "./generate.js";
import { shrinkProgram } from "./shrink.js";
import { encodeReplay } from "./replay.js";

export interface CampaignOptions extends ExecOptions {
  /** The first program's seed; program i uses seed + i. */
  seed: number;
  /** Stop starting programs after this many seconds (default 10). */
  seconds?: number;
  /** Stop once this many operations ran (default: no limit). */
  maxOperations?: number;
  /** Ops per program (default 160). */
  ops?: number;
  /** Stop after this many failures (default 5). */
  maxFailures?: number;
  /** Shrink failing programs (default true). */
  shrink?: boolean;
  /** Called after each program (progress). */
  onProgram?: (report: CampaignReport) => void;
}

export interface CampaignFailure {
  seed: number;
  kind: string;
  message: string;
  /** Ops of the program as generated, and after shrinking. */
  ops: number;
  shrunkOps: number;
  shrinkRuns: number;
  /** The shrunk program as a replay file. */
  replay: string;
}

/** The programs' ExecResult counts, summed. */
export interface CampaignReport
  extends Pick<ExecResult, "operations" | "faultsInjected" | "faultsRefused" | "faultsBySite" | "oomGaveUp" | "expectedErrors" | "checks" | "verifiedPages"> {
  seed: number;
  build: string;
  programs: number;
  failures: CampaignFailure[];
  elapsedMs: number;
  opsPerSec: number;
}

export function runCampaign(opts: CampaignOptions): CampaignReport {
  const t0 = Date.now();
  const deadline = t0 + (opts.seconds ?? 10) * 1000;
  const maxOps = opts.maxOperations ?? Infinity;
  const report: CampaignReport = {
    seed: opts.seed, build: opts.build ?? "release", programs: 0, operations: 0, faultsInjected: 0, faultsRefused: 0, faultsBySite: {}, oomGaveUp: 0, expectedErrors: 0,
    checks: 0, verifiedPages: 0, failures: [], elapsedMs: 0, opsPerSec: 0,
  };
  const exec: ExecOptions = { build: opts.build, checkEvery: opts.checkEvery, plantedBug: opts.plantedBug };
  for (let i = 0; Date.now() < deadline && report.operations < maxOps && report.failures.length < (opts.maxFailures ?? 5); i++) {
    const seed = (opts.seed + i) >>> 0;
    const prog = generateProgram(seed, { ops: opts.ops });
    const r = runProgram(prog, exec);
    report.programs++;
    report.operations += r.operations;
    report.faultsInjected += r.faultsInjected;
    report.faultsRefused += r.faultsRefused;
    report.oomGaveUp += r.oomGaveUp;
    for (const [k, c] of Object.entries(r.faultsBySite)) {
      const t = (report.faultsBySite[k] ??= { armed: 0, hits: 0 });
      t.armed += c.armed;
      t.hits += c.hits;
    }
    report.expectedErrors += r.expectedErrors;
    report.checks += r.checks;
    report.verifiedPages += r.verifiedPages;
    if (r.failure) {
      const s = opts.shrink === false ? { program: prog, failure: r.failure, runs: 0 } : shrinkProgram(prog, r.failure, exec);
      report.failures.push({
        seed, kind: r.failure.kind, message: s.failure.message, ops: prog.ops.length, shrunkOps: s.program.ops.length, shrinkRuns: s.runs,
        replay: encodeReplay(s.program, s.failure.message),
      });
    }
    report.elapsedMs = Date.now() - t0;
    report.opsPerSec = Math.round(report.operations / Math.max(1, report.elapsedMs / 1000));
    opts.onProgram?.(report);
  }
  report.elapsedMs = Date.now() - t0;
  report.opsPerSec = Math.round(report.operations / Math.max(1, report.elapsedMs / 1000));
  return report;
}

/** The one-line summary the command prints. */
export function summaryLine(r: CampaignReport): string {
  const hits = Object.values(r.faultsBySite).reduce((s, c) => s + c.hits, 0);
  return `fuzz: seed ${r.seed}, ${r.build}: ${r.programs} programs, ${r.operations} operations, ${r.faultsInjected} fault rules armed ` +
    `(${r.faultsRefused} refused), ${hits} faults injected, ${r.failures.length} failures, ${r.opsPerSec} ops/s (${(r.elapsedMs / 1000).toFixed(1)} s)`;
}

/** Fault rules armed and faults injected by site, one line. */
export function sitesLine(r: CampaignReport): string {
  return "faults by site: " + Object.entries(r.faultsBySite).sort(([a], [b]) => a.localeCompare(b))
    .map(([k, c]) => `${k} ${c.armed}/${c.hits}`).join(", ") + ` (rules/faults); oomReap gave up ${r.oomGaveUp} times`;
}
