// The migrate-contention report: reader and writer stall times of the same workload run
// with the kernel's blocking migration entries and with read-only entries (seed 004),
// and how much the read-only entries cut them. Runs of several seeds merge by adding.
import { StallRecord, type StallSummary } from "../sched/stall.js";
import type { Scheduler } from "../sched/scheduler.js";

export const CONTENTION_MODES = ["blocking", "read-only"] as const;
export type ContentionModeName = (typeof CONTENTION_MODES)[number];

export interface ContentionMode {
  mode: ContentionModeName;
  /** Simulated time the mode's rounds took. */
  simulatedNs: number;
  migrations: number;
  pagesMigrated: number;
  /** Time pages spent under migration: each migration's setup to its end, summed. */
  migrationNs: number;
  reads: StallSummary;
  writes: StallSummary;
}

export interface ContentionReport {
  rounds: number;
  threads: { readers: number; writers: number; migrators: number };
  regionPages: number;
  chunkPages: number;
  /** Blocking first, then read-only. */
  modes: ContentionMode[];
  /** 1 - read-only / blocking total stall time (0 when blocking entries caused none). */
  readerStallReduction: number;
  writerStallReduction: number;
  /** Reads checked against the shadow of the last write, in both modes (a mismatch fails the run). */
  readsChecked: number;
  writesChecked: number;
}

class ModeTally {
  simulatedNs = 0;
  migrations = 0;
  pagesMigrated = 0;
  migrationNs = 0;
  readonly reads = new StallRecord();
  readonly writes = new StallRecord();

  constructor(readonly mode: ContentionModeName) {}

  summary(): ContentionMode {
    const { mode, simulatedNs, migrations, pagesMigrated, migrationNs } = this;
    return { mode, simulatedNs, migrations, pagesMigrated, migrationNs, reads: this.reads.summary(), writes: this.writes.summary() };
  }
}

const reduction = (blocking: number, ro: number): number => (blocking > 0 ? 1 - ro / blocking : 0);

/** Adds up the rounds of one run, or the runs of a sweep. */
export class ContentionTally {
  rounds = 0;
  readsChecked = 0;
  writesChecked = 0;
  private readonly modes = CONTENTION_MODES.map((m) => new ModeTally(m));

  constructor(
    readonly threads: ContentionReport["threads"],
    readonly regionPages: number,
    readonly chunkPages: number,
  ) {}

  /** One mode's round, from its scheduler. */
  addRound(mode: ContentionModeName, s: Scheduler): void {
    const t = this.modes[CONTENTION_MODES.indexOf(mode)]!;
    t.simulatedNs += s.now;
    t.migrations += s.migrations;
    t.pagesMigrated += s.pagesMoved;
    t.migrationNs += s.migrationNs;
    t.reads.add(s.stalls.read.summary());
    t.writes.add(s.stalls.write.summary());
    if (mode === "read-only") this.rounds++;
  }

  /** Another report's figures (merging runs). */
  addReport(r: ContentionReport): void {
    this.rounds += r.rounds;
    this.readsChecked += r.readsChecked;
    this.writesChecked += r.writesChecked;
    for (const m of r.modes) {
      const t = this.modes[CONTENTION_MODES.indexOf(m.mode)]!;
      t.simulatedNs += m.simulatedNs;
      t.migrations += m.migrations;
      t.pagesMigrated += m.pagesMigrated;
      t.migrationNs += m.migrationNs;
      t.reads.add(m.reads);
      t.writes.add(m.writes);
    }
  }

  report(): ContentionReport {
    const [b, ro] = this.modes.map((m) => m.summary()) as [ContentionMode, ContentionMode];
    return {
      rounds: this.rounds, threads: this.threads, regionPages: this.regionPages, chunkPages: this.chunkPages, modes: [b, ro],
      readerStallReduction: reduction(b.reads.totalNs, ro.reads.totalNs),
      writerStallReduction: reduction(b.writes.totalNs, ro.writes.totalNs),
      readsChecked: this.readsChecked, writesChecked: this.writesChecked,
    };
  }
}

/** The contention figures of several runs together (null when none has any). */
export function mergeContention(reports: (ContentionReport | undefined)[]): ContentionReport | null {
  const have = reports.filter((r): r is ContentionReport => r !== undefined);
  if (have.length === 0) return null;
  const t = new ContentionTally(have[0]!.threads, have[0]!.regionPages, have[0]!.chunkPages);
  for (const r of have) t.addReport(r);
  return t.report();
}

const fmtNs = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${Math.round(ns)} ns`);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** Rows of the stall table: mode, access kind, then the figures (for the terminal and the HTML). */
export function contentionRows(c: ContentionReport): string[][] {
  const rows: string[][] = [];
  for (const m of c.modes) {
    for (const [kind, s] of [["reads", m.reads], ["writes", m.writes]] as const) {
      rows.push([m.mode, kind, s.accesses.toLocaleString("en-US"), s.stalled.toLocaleString("en-US"), fmtNs(s.totalNs), fmtNs(s.meanNs), fmtNs(s.p50Ns), fmtNs(s.p99Ns), fmtNs(s.maxNs)]);
    }
  }
  return rows;
}

export const CONTENTION_HEAD = ["mode", "access", "count", "stalled", "total stall", "mean", "p50", "p99", "max"];

/** The terminal lines of the contention section; `clean`: no run failed (so no write was lost). */
export function formatContention(c: ContentionReport, clean: boolean): string[] {
  const out = ["", `stall time, blocking vs read-only migration entries (simulated; ${c.rounds} round${c.rounds === 1 ? "" : "s"} of the same workload in each mode)`];
  out.push(`  ${"mode".padEnd(10)} ${"access".padEnd(7)} ${"count".padStart(10)} ${"stalled".padStart(9)} ${"total".padStart(10)} ${"mean".padStart(9)} ${"p50".padStart(9)} ${"p99".padStart(9)} ${"max".padStart(9)}`);
  for (const r of contentionRows(c)) {
    out.push(`  ${r[0]!.padEnd(10)} ${r[1]!.padEnd(7)} ${r[2]!.padStart(10)} ${r[3]!.padStart(9)} ${r[4]!.padStart(10)} ${r[5]!.padStart(9)} ${r[6]!.padStart(9)} ${r[7]!.padStart(9)} ${r[8]!.padStart(9)}`);
  }
  for (const m of c.modes) out.push(`  ${m.mode}: ${m.migrations.toLocaleString("en-US")} migrations moved ${m.pagesMigrated.toLocaleString("en-US")} pages in ${fmtNs(m.simulatedNs)}`);
  out.push(`  reader stall time cut by ${pct(c.readerStallReduction)}, writer stall time by ${pct(c.writerStallReduction)}`);
  if (clean) out.push(`  lost writes: 0 (${c.readsChecked.toLocaleString("en-US")} reads and the final read-back of every page checked against the last write)`);
  return out;
}
