// Checks a JSON report from outside (mmemu merge) before anything sums or draws it:
// the fields the totals and the HTML use, with their types.
import { InputError, checkMachineSpec } from "./machine-spec.js";
import { LATENCY_KINDS } from "./timeline.js";
import { buildReport, type Report } from "./report.js";
import type { RunReport } from "./run.js";
import { CONTENTION_MODES } from "./contention.js";
import { FILE_WB_FIELDS, FILE_WB_POLICIES } from "./filewb.js";
import { PIN_STORM_MODES, PIN_STORM_OPS } from "./pinstorm.js";
import { PMEM_MODES } from "./pmemreport.js";

type Obj = Record<string, unknown>;

class Checker {
  constructor(private readonly where: string) {}

  fail(path: string, what: string): never {
    throw new InputError(`${this.where}: ${path} ${what}`);
  }

  obj(v: unknown, path: string): Obj {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(path, "must be an object");
    return v as Obj;
  }

  num(v: unknown, path: string): number {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) this.fail(path, "must be a non-negative number");
    return v as number;
  }

  str(v: unknown, path: string, max = 10_000): string {
    if (typeof v !== "string" || v.length > max) this.fail(path, `must be a string of at most ${max} characters`);
    return v as string;
  }

  arr(v: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(v) || v.length > max) this.fail(path, `must be an array of at most ${max} items`);
    return v as unknown[];
  }

  numbers(v: unknown, path: string): void {
    const o = this.obj(v, path);
    if (Object.keys(o).length > 1000) this.fail(path, "has too many fields");
    for (const [k, x] of Object.entries(o)) this.num(x, `${path}.${k}`);
  }
}

function checkHistogram(c: Checker, v: unknown, path: string): void {
  const h = c.obj(v, path);
  for (const f of ["count", "sumNs", "maxNs"]) c.num(h[f], `${path}.${f}`);
  const b = c.obj(h.buckets, `${path}.buckets`);
  for (const [idx, n] of Object.entries(b)) {
    if (!/^\d{1,3}$/.test(idx) || Number(idx) >= 384) c.fail(`${path}.buckets`, `has a bad bucket index "${idx.slice(0, 20)}"`);
    c.num(n, `${path}.buckets.${idx}`);
  }
}

function checkContention(c: Checker, v: unknown, path: string): void {
  const o = c.obj(v, path);
  for (const k of ["rounds", "regionPages", "chunkPages", "readsChecked", "writesChecked"]) c.num(o[k], `${path}.${k}`);
  for (const k of ["readerStallReduction", "writerStallReduction"]) {
    if (typeof o[k] !== "number" || !Number.isFinite(o[k]) || (o[k] as number) > 1) c.fail(`${path}.${k}`, "must be a number of at most 1");
  }
  c.numbers(o.threads, `${path}.threads`);
  const modes = c.arr(o.modes, `${path}.modes`, 2);
  CONTENTION_MODES.forEach((name, i) => {
    const m = c.obj(modes[i], `${path}.modes[${i}]`);
    if (m.mode !== name) c.fail(`${path}.modes[${i}].mode`, `must be "${name}"`);
    for (const k of ["simulatedNs", "migrations", "pagesMigrated", "migrationNs"]) c.num(m[k], `${path}.modes[${i}].${k}`);
    for (const kind of ["reads", "writes"]) {
      const s = c.obj(m[kind], `${path}.modes[${i}].${kind}`);
      for (const f of ["accesses", "stalled", "totalNs", "meanNs", "p50Ns", "p99Ns", "maxNs"]) c.num(s[f], `${path}.modes[${i}].${kind}.${f}`);
      checkHistogram(c, s.histogram, `${path}.modes[${i}].${kind}.histogram`);
    }
  });
}

function checkPinStorm(c: Checker, v: unknown, path: string): void {
  const o = c.obj(v, path);
  for (const k of ["rounds", "holders", "regionPages", "heldPerHolder", "compactOrder", "cmaPages", "lostBytes"]) c.num(o[k], `${path}.${k}`);
  const modes = c.arr(o.modes, `${path}.modes`, PIN_STORM_MODES.length);
  PIN_STORM_MODES.forEach((name, i) => {
    const at = `${path}.modes[${i}]`;
    const m = c.obj(modes[i], at);
    if (m.mode !== name) c.fail(`${at}.mode`, `must be "${name}"`);
    for (const k of ["holds", "heldPages", "longtermMigrated", "pagesMigrated", "holderMoves", "holderPagesVerified", "pagesVerified"]) c.num(m[k], `${at}.${k}`);
    for (const op of PIN_STORM_OPS) {
      const x = c.obj(m[op], `${at}.${op}`);
      for (const k of ["attempts", "successes", "migrated"]) c.num(x[k], `${at}.${op}.${k}`);
      if ((x.successes as number) > (x.attempts as number)) c.fail(`${at}.${op}.successes`, "must be at most attempts");
    }
    const stuck = c.obj(m.stuck, `${at}.stuck`);
    if (Object.keys(stuck).length > 16) c.fail(`${at}.stuck`, "has too many fields");
    for (const [k, x] of Object.entries(stuck)) {
      if (!/^[a-z]{1,20}$/.test(k)) c.fail(`${at}.stuck`, `has a bad reason "${k.slice(0, 20)}"`);
      c.num(x, `${at}.stuck.${k}`);
    }
  });
}

function checkPmem(c: Checker, v: unknown, path: string): void {
  const o = c.obj(v, path);
  for (const k of ["rounds", "pmemPages", "workingSetPages", "hotPages", "lostBytes"]) c.num(o[k], `${path}.${k}`);
  const modes = c.arr(o.modes, `${path}.modes`, PMEM_MODES.length);
  PMEM_MODES.forEach((name, i) => {
    const at = `${path}.modes[${i}]`;
    const m = c.obj(modes[i], at);
    if (m.mode !== name) c.fail(`${at}.mode`, `must be "${name}"`);
    for (const k of [
      "ops", "pagesOnPmem", "workingPages", "maxSectorWrites", "sectorWrites", "blockWrites", "blockReads", "structPageBytes", "kernelStructPageBytes",
      "offlineAttempts", "offlineSuccesses", "offlineMigrated", "pagesVerified",
    ]) c.num(m[k], `${at}.${k}`);
    if ((m.offlineSuccesses as number) > (m.offlineAttempts as number)) c.fail(`${at}.offlineSuccesses`, "must be at most offlineAttempts");
  });
}

function checkFileWriteback(c: Checker, v: unknown, path: string): void {
  const o = c.obj(v, path);
  for (const k of ["rounds", "filePages"]) c.num(o[k], `${path}.${k}`);
  const pol = c.arr(o.policies, `${path}.policies`, FILE_WB_POLICIES.length);
  FILE_WB_POLICIES.forEach((name, i) => {
    const at = `${path}.policies[${i}]`;
    const p = c.obj(pol[i], at);
    if (p.policy !== name) c.fail(`${at}.policy`, `must be "${name}"`);
    for (const k of FILE_WB_FIELDS) c.num(p[k], `${at}.${k}`);
  });
}

function checkRun(c: Checker, v: unknown, path: string): RunReport {
  const r = c.obj(v, path);
  c.str(r.scenario, `${path}.scenario`, 100);
  c.num(r.seed, `${path}.seed`);
  checkMachineSpec(r.machine, `${path}.machine`);
  for (const k of ["ops", "checkEvery", "checks", "simulatedNs", "exclusiveRefused", "verifiedPages"]) c.num(r[k], `${path}.${k}`);
  c.numbers(r.opCounts, `${path}.opCounts`);
  c.numbers(r.counters, `${path}.counters`);
  c.numbers(r.rates, `${path}.rates`);
  for (const [i, d] of c.arr(r.devices, `${path}.devices`, 16).entries()) {
    const o = c.obj(d, `${path}.devices[${i}]`);
    c.str(o.name, `${path}.devices[${i}].name`, 100);
    c.str(o.kind, `${path}.devices[${i}].kind`, 20);
    for (const [k, x] of Object.entries(o)) if (k !== "name" && k !== "kind") c.num(x, `${path}.devices[${i}].${k}`);
  }
  const lat = c.obj(r.latency, `${path}.latency`);
  for (const k of LATENCY_KINDS) {
    const l = c.obj(lat[k], `${path}.latency.${k}`);
    for (const f of ["count", "meanNs", "p50Ns", "p90Ns", "p99Ns", "maxNs"]) c.num(l[f], `${path}.latency.${k}.${f}`);
    const h = c.obj(l.histogram, `${path}.latency.${k}.histogram`);
    for (const f of ["count", "sumNs", "maxNs"]) c.num(h[f], `${path}.latency.${k}.histogram.${f}`);
    const b = c.obj(h.buckets, `${path}.latency.${k}.histogram.buckets`);
    for (const [idx, n] of Object.entries(b)) {
      if (!/^\d{1,3}$/.test(idx) || Number(idx) >= 384) c.fail(`${path}.latency.${k}.histogram.buckets`, `has a bad bucket index "${idx.slice(0, 20)}"`);
      c.num(n, `${path}.latency.${k}.histogram.buckets.${idx}`);
    }
  }
  const t = c.obj(r.timeline, `${path}.timeline`);
  c.arr(t.states, `${path}.timeline.states`, 16).forEach((s, i) => c.str(s, `${path}.timeline.states[${i}]`, 40));
  c.num(t.frames, `${path}.timeline.frames`);
  c.num(t.framesPerBucket, `${path}.timeline.framesPerBucket`);
  for (const [i, s] of c.arr(t.samples, `${path}.timeline.samples`, 100_000).entries()) {
    const o = c.obj(s, `${path}.timeline.samples[${i}]`);
    for (const f of ["op", "simNs", "pgmigrate_success", "pgfault"]) c.num(o[f], `${path}.timeline.samples[${i}].${f}`);
    c.arr(o.counts, `${path}.timeline.samples[${i}].counts`, 16).forEach((n, j) => c.num(n, `${path}.timeline.samples[${i}].counts[${j}]`));
    if (!/^[0-9]{0,4096}$/.test(c.str(o.map, `${path}.timeline.samples[${i}].map`, 4096))) c.fail(`${path}.timeline.samples[${i}].map`, "must be digits");
  }
  if (r.contention !== undefined) checkContention(c, r.contention, `${path}.contention`);
  if (r.pinStorm !== undefined) checkPinStorm(c, r.pinStorm, `${path}.pinStorm`);
  if (r.pmem !== undefined) checkPmem(c, r.pmem, `${path}.pmem`);
  if (r.fileWriteback !== undefined) checkFileWriteback(c, r.fileWriteback, `${path}.fileWriteback`);
  if (r.failure !== null) {
    const f = c.obj(r.failure, `${path}.failure`);
    if (!["invariant", "data", "error"].includes(f.kind as string)) c.fail(`${path}.failure.kind`, "must be invariant, data or error");
    c.num(f.opIndex, `${path}.failure.opIndex`);
    c.str(f.message, `${path}.failure.message`);
  }
  return r as unknown as RunReport;
}

export function checkReport(v: unknown, where: string): Report {
  const c = new Checker(where);
  const o = c.obj(v, "the report");
  if (o.format !== "mmemu-report" || o.version !== 1) c.fail("the report", 'is not an mmemu report of version 1 (format "mmemu-report")');
  const scenario = c.str(o.scenario, "scenario", 100);
  const runs = c.arr(o.runs, "runs", 1_000_000).map((r, i) => checkRun(c, r, `runs[${i}]`));
  for (const [i, r] of runs.entries()) if (r.scenario !== scenario) c.fail(`runs[${i}].scenario`, `is "${r.scenario}", not the report's "${scenario}"`);
  // The totals are recomputed from the runs, never trusted.
  return buildReport(scenario, runs);
}
