// The report of a stress command: its runs (one per seed) and their totals, and the
// terminal summary. Workers and shards produce runs; merging is concatenating runs in
// seed order and summing, so the report does not depend on how the runs were spread.
import { Histogram } from "./histogram.js";
import { LATENCY_KINDS, type LatencyKind } from "./timeline.js";
import type { LatencySummary, RunReport } from "./run.js";
import { formatContention, mergeContention, type ContentionReport } from "./contention.js";
import { formatPinStorm, mergePinStorm, type PinStormReport } from "./pinstorm.js";
import { formatPmem, mergePmem, type PmemReport } from "./pmemreport.js";
import { formatFileWriteback, mergeFileWriteback, type FileWritebackReport } from "./filewb.js";

export interface Totals {
  runs: number;
  ops: number;
  failures: number;
  checks: number;
  verifiedPages: number;
  simulatedNs: number;
  opCounts: Record<string, number>;
  counters: Record<string, number>;
  latency: Record<LatencyKind, LatencySummary>;
  /** The runs' contention figures together (migrate-contention only). */
  contention?: ContentionReport;
  /** The runs' pin-storm figures together. */
  pinStorm?: PinStormReport;
  /** The runs' pmem figures together. */
  pmem?: PmemReport;
  /** The runs' file-writeback figures together. */
  fileWriteback?: FileWritebackReport;
}

export interface Report {
  format: "mmemu-report";
  version: 1;
  scenario: string;
  runs: RunReport[];
  total: Totals;
}

function sum(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function summarizeHistogram(h: Histogram): LatencySummary {
  return {
    count: h.count, meanNs: h.count ? Math.round(h.sumNs / h.count) : 0,
    p50Ns: h.percentile(50), p90Ns: h.percentile(90), p99Ns: h.percentile(99), maxNs: h.maxNs, histogram: h.toJSON(),
  };
}

/** The report of some runs, in seed order. */
export function buildReport(scenario: string, runs: RunReport[]): Report {
  const sorted = [...runs].sort((a, b) => a.seed - b.seed);
  const total: Totals = {
    runs: sorted.length, ops: 0, failures: 0, checks: 0, verifiedPages: 0, simulatedNs: 0, opCounts: {}, counters: {},
    latency: {} as Record<LatencyKind, LatencySummary>,
  };
  const hist = Object.fromEntries(LATENCY_KINDS.map((k) => [k, new Histogram()])) as Record<LatencyKind, Histogram>;
  for (const r of sorted) {
    total.ops += r.ops;
    total.failures += r.failure ? 1 : 0;
    total.checks += r.checks;
    total.verifiedPages += r.verifiedPages;
    total.simulatedNs += r.simulatedNs;
    sum(total.opCounts, r.opCounts);
    sum(total.counters, r.counters);
    for (const k of LATENCY_KINDS) hist[k].add(r.latency[k].histogram);
  }
  for (const k of LATENCY_KINDS) total.latency[k] = summarizeHistogram(hist[k]);
  const contention = mergeContention(sorted.map((r) => r.contention));
  if (contention) total.contention = contention;
  const pinStorm = mergePinStorm(sorted.map((r) => r.pinStorm));
  if (pinStorm) total.pinStorm = pinStorm;
  const pmem = mergePmem(sorted.map((r) => r.pmem));
  if (pmem) total.pmem = pmem;
  const fileWriteback = mergeFileWriteback(sorted.map((r) => r.fileWriteback));
  if (fileWriteback) total.fileWriteback = fileWriteback;
  return { format: "mmemu-report", version: 1, scenario, runs: sorted, total };
}

/** Merges reports of shards of one sweep (same scenario). */
export function mergeReports(reports: Report[]): Report {
  const scenarios = new Set(reports.map((r) => r.scenario));
  if (scenarios.size !== 1) throw new Error(`reports of different scenarios cannot be merged: ${[...scenarios].join(", ")}`);
  return buildReport(reports[0]!.scenario, reports.flatMap((r) => r.runs));
}

const fmtNs = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${Math.round(ns)} ns`);
const fmtN = (n: number): string => n.toLocaleString("en-US");

/** The terminal summary; `wallMs` (not part of the report) gives real throughput. */
export function formatSummary(report: Report, wallMs?: number, workers = 1): string {
  const t = report.total;
  const out: string[] = [];
  const seeds = report.runs.map((r) => r.seed);
  out.push(`mmemu ${report.scenario}: ${t.runs} run${t.runs === 1 ? "" : "s"} (seed${seeds.length === 1 ? "" : "s"} ${seedList(seeds)}), ${fmtN(t.ops)} operations`);
  if (wallMs !== undefined) {
    const perWorker = workers > 1 ? `, ${fmtN(Math.round(t.ops / (wallMs / 1000) / workers))} per worker` : "";
    out.push(`wall time ${(wallMs / 1000).toFixed(2)} s: ${fmtN(Math.round(t.ops / (wallMs / 1000)))} ops/s${perWorker}`);
  }
  const simS = t.simulatedNs / 1e9;
  const migrated = report.runs.reduce((s, r) => s + r.devices.reduce((x, d) => x + d.migratedIn + d.migratedOut + d.evicted, 0), 0);
  out.push(`simulated time ${simS.toFixed(3)} s: ${fmtN(Math.round(migrated / Math.max(simS, 1e-9)))} page migrations per simulated second`);
  out.push(`invariant checks run: ${fmtN(t.checks)}; pages verified at the end: ${fmtN(t.verifiedPages)}; failures: ${t.failures}`);
  out.push("", "latency (simulated)      count        p50        p90        p99        max");
  for (const k of LATENCY_KINDS) {
    const l = t.latency[k];
    out.push(`  ${k.padEnd(20)} ${fmtN(l.count).padStart(9)} ${fmtNs(l.p50Ns).padStart(10)} ${fmtNs(l.p90Ns).padStart(10)} ${fmtNs(l.p99Ns).padStart(10)} ${fmtNs(l.maxNs).padStart(10)}`);
  }
  if (t.contention) out.push(...formatContention(t.contention, t.failures === 0));
  if (t.pinStorm) out.push(...formatPinStorm(t.pinStorm, t.failures === 0));
  if (t.pmem) out.push(...formatPmem(t.pmem, t.failures === 0));
  if (t.fileWriteback) out.push(...formatFileWriteback(t.fileWriteback, t.failures === 0));
  out.push("", "operations");
  for (const [k, v] of Object.entries(t.opCounts)) if (v > 0) out.push(`  ${k.padEnd(24)} ${fmtN(v).padStart(12)}`);
  out.push("", "vmstat");
  for (const [k, v] of Object.entries(t.counters)) out.push(`  ${k.padEnd(24)} ${fmtN(v).padStart(12)}`);
  if (report.runs.length === 1) {
    out.push("", "devices                   migrated in  migrated out    evicted  CPU faults  pages read  written");
    for (const d of report.runs[0]!.devices) {
      out.push(`  ${d.name.padEnd(22)} ${fmtN(d.migratedIn).padStart(12)} ${fmtN(d.migratedOut).padStart(13)} ${fmtN(d.evicted).padStart(10)} ${fmtN(d.cpuFaults).padStart(11)} ${fmtN(d.pagesRead).padStart(11)} ${fmtN(d.pagesWritten).padStart(8)}`);
    }
  }
  for (const r of report.runs) {
    if (r.failure) out.push("", `FAILED (${r.failure.kind}) seed ${r.seed} at operation ${r.failure.opIndex}: ${r.failure.message}`,
      `  reproduce: mmemu run ${r.scenario} --seed ${r.seed} --ops ${r.failure.opIndex + 1} --check-every ${r.checkEvery} (and the same --machine)`);
  }
  return out.join("\n");
}

function seedList(seeds: number[]): string {
  if (seeds.length <= 4) return seeds.join(", ");
  return `${seeds.slice(0, 3).join(", ")}, … ${seeds.at(-1)}`;
}
