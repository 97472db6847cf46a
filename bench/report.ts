// Result rows and their rendering: an aligned text table for the terminal and a markdown table
// for BENCHMARKS.md. A row's ratios are computed from figures measured in the same run.
import { rounds, type Timing, type Unit, type Variant } from "./harness.js";

export interface Row {
  /** What ran: "Wasm release", "reference (TS)", "limit: …". */
  variant: string;
  timing: Timing;
  /** Work units per call (pages, bytes, or 1 for whole operations). */
  units: number;
  unit: Unit;
  /** Why the row was not timed (it shows "not run" and this reason goes into the group's notes). */
  notRun?: string;
  /** Throughput ratio against the reference row of the group (higher is faster). */
  vsRef?: number;
  /** Throughput ratio against the limit row of the group (1.0 = as fast as the limit). */
  vsLimit?: number;
  /** The bar this row is held to, and whether it met it. */
  bar?: string;
  met?: boolean;
}

export interface Group {
  title: string;
  /** One sentence: what is measured. */
  what: string;
  rows: Row[];
  /** Extra figures reported below the table (memory sizes, ...). */
  notes?: string[];
}

export const rate = (r: Row): number => r.units / (r.timing.ms / 1000);

/**
 * Times `variants` in interleaved rounds and returns their rows, with vsRef and vsLimit filled from
 * the variants at index `ref` and `limit`. `ref` may also give each row its own reference index
 * (-1: none), for groups that compare several operations with their own references.
 */
export function timeRows(variants: Variant[], nRounds: number, ref: number | number[], limit: number): Row[] {
  const timings = rounds(variants, nRounds);
  const rows: Row[] = variants.map((v, i) => ({ variant: v.variant, units: v.units, unit: v.unit, timing: timings[i]! }));
  const limRow = rows[limit];
  rows.forEach((r, i) => {
    const refRow = rows[Array.isArray(ref) ? ref[i] ?? -1 : ref];
    if (refRow && r !== refRow) r.vsRef = rate(r) / rate(refRow);
    if (limRow && r !== limRow) r.vsLimit = rate(r) / rate(limRow);
  });
  return rows;
}

/** A row that was not timed, shown as "not run" with the reason in the notes. */
export function notRunRow(variant: string, unit: Unit, reason: string): Row {
  return { variant, units: 0, unit, timing: { ms: NaN, lo: NaN, hi: NaN, samples: 0 }, notRun: reason };
}

function fmtRate(v: number, unit: string): string {
  const sep = unit === "B/s" ? "" : " ";
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)} G${sep}${unit}`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M${sep}${unit}`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(2)} k${sep}${unit}`;
  return `${v.toFixed(2)} ${unit}`;
}

function fmtMs(ms: number): string {
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${(ms * 1000).toFixed(1)} µs`;
}

const fmtTime = (t: Timing): string =>
  t.lo === t.hi ? fmtMs(t.ms) : `${fmtMs(t.ms)} (${fmtMs(t.lo)} – ${fmtMs(t.hi)})`;

const fmtRatio = (v: number | undefined): string =>
  v === undefined ? "—" : v >= 0.1 ? `${v.toFixed(2)}×` : `${v.toPrecision(2)}×`;

const HEAD = ["Benchmark", "Variant", "Median time (round range)", "Throughput", "vs reference", "vs limit", "Bar", "Met"];

function cells(groups: Group[]): string[][] {
  const out: string[][] = [];
  for (const g of groups) {
    for (const r of g.rows) {
      if (r.notRun !== undefined) {
        out.push([g.title, r.variant, "not run", "—", "—", "—", r.bar ?? "—", r.met === undefined ? "—" : r.met ? "yes" : "**no**"]);
        continue;
      }
      out.push([
        g.title, r.variant, fmtTime(r.timing), fmtRate(rate(r), r.unit),
        fmtRatio(r.vsRef), fmtRatio(r.vsLimit), r.bar ?? "—", r.met === undefined ? "—" : r.met ? "yes" : "**no**",
      ]);
    }
  }
  return out;
}

export function textTable(groups: Group[]): string {
  const rows = [HEAD, ...cells(groups).map((c) => c.map((s) => s.replaceAll("**", "")))];
  const w = HEAD.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((s, i) => s.padEnd(w[i]!)).join("  ").trimEnd();
  return [line(rows[0]!), w.map((n) => "-".repeat(n)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

export function markdownTable(groups: Group[]): string {
  const line = (r: string[]): string => `| ${r.join(" | ")} |`;
  return [line(HEAD), line(HEAD.map(() => "---")), ...cells(groups).map(line)].join("\n");
}
