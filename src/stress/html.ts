// The --html report: one self-contained page (inline CSS, inline script, no external
// resources). Tables are rendered here; the plots are drawn on <canvas> by an inline
// script from the report's numbers embedded as JSON (parsed, never evaluated). Nothing
// in the output depends on the clock or randomness, so the same report gives the same bytes.
import { Histogram } from "./histogram.js";
import { LATENCY_KINDS } from "./timeline.js";
import type { Report } from "./report.js";
import type { RunReport } from "./run.js";
import { PAGE_SCRIPT, STATE_COLORS } from "./html-script.js";
import { CONTENTION_HEAD, contentionRows } from "./contention.js";
import { PIN_STORM_HEAD, pinStormNote, pinStormRows } from "./pinstorm.js";
import { PMEM_HEAD, pmemNote, pmemRows } from "./pmemreport.js";
import { FILE_WB_HEAD, fileWritebackNote, fileWritebackRows } from "./filewb.js";

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside a <script> element: no `<` (so no `</script>`), no line separators. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const fmtN = (n: number): string => {
  const s = String(Math.round(Math.abs(n)));
  return (n < 0 ? "-" : "") + s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
};
const fmtNs = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${Math.round(ns)} ns`);

/** Seeds as a short list: runs of consecutive seeds collapse to ranges. */
function seedList(seeds: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seeds.length; ) {
    let j = i;
    while (j + 1 < seeds.length && seeds[j + 1] === seeds[j]! + 1) j++;
    parts.push(j > i + 1 ? `${seeds[i]}–${seeds[j]}` : j > i ? `${seeds[i]}, ${seeds[j]}` : `${seeds[i]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

function table(head: string[], rows: (string | number)[][], numericFrom = 1): string {
  const cell = (v: string | number, i: number, tag: string): string =>
    `<${tag}${i >= numericFrom ? ' class="num"' : ""}>${escapeHtml(typeof v === "number" ? fmtN(v) : v)}</${tag}>`;
  return `<table><thead><tr>${head.map((h, i) => cell(h, i, "th")).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v, i) => cell(v, i, "td")).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

const systemFrames = (run: RunReport): number => run.machine.nodes.reduce((s, n) => s + n.normal + n.movable, 0);

/** The numbers the plots need, per run, in columns (smaller than an array of sample objects). */
function plotData(report: Report) {
  return {
    colors: STATE_COLORS,
    runs: report.runs.map((r) => {
      const s = r.timeline.samples;
      return {
        seed: r.seed,
        states: r.timeline.states,
        frames: r.timeline.frames,
        framesPerBucket: r.timeline.framesPerBucket,
        systemFrames: systemFrames(r),
        devices: r.devices.map((d) => ({ name: d.name, pages: d.pages })),
        failureOp: r.failure ? r.failure.opIndex : null,
        op: s.map((x) => x.op),
        simNs: s.map((x) => x.simNs),
        migrated: s.map((x) => x.pgmigrate_success),
        faults: s.map((x) => x.pgfault),
        counts: s.map((x) => x.counts),
        map: s.map((x) => x.map),
      };
    }),
    // Histogram bucket edges are computed here so the page need not know the bucket scheme.
    latency: LATENCY_KINDS.map((kind) => {
      const l = report.total.latency[kind];
      const buckets = Object.entries(l.histogram.buckets)
        .map(([b, c]) => [Histogram.bucketLow(Number(b)), Histogram.bucketLow(Number(b) + 1), c] as [number, number, number])
        .sort((a, b) => a[0] - b[0]);
      return { kind, count: l.count, p50: l.p50Ns, p90: l.p90Ns, p99: l.p99Ns, max: l.maxNs, buckets };
    }),
  };
}

export type PlotData = ReturnType<typeof plotData>;

function header(report: Report): string {
  const t = report.total;
  const seeds = report.runs.map((r) => r.seed);
  const simS = t.simulatedNs / 1e9;
  const migrated = report.runs.reduce((s, r) => s + r.devices.reduce((x, d) => x + d.migratedIn + d.migratedOut + d.evicted, 0), 0);
  const facts: [string, string][] = [
    ["scenario", report.scenario],
    [seeds.length === 1 ? "seed" : `seeds (${seeds.length} runs)`, seedList(seeds)],
    ["operations", fmtN(t.ops)],
    ["simulated time", `${(simS * 1000).toFixed(3)} ms`],
    ["page migrations / simulated s", fmtN(migrated / Math.max(simS, 1e-9))],
    ["invariant checks run", fmtN(t.checks)],
    ["pages verified at the end", fmtN(t.verifiedPages)],
    ["failures", String(t.failures)],
  ];
  const failures = report.runs
    .filter((r) => r.failure)
    .map((r) => {
      const f = r.failure!;
      const repro = `mmemu run ${r.scenario} --seed ${r.seed} --ops ${f.opIndex + 1}`;
      return `<div class="failure"><b>FAILED (${escapeHtml(f.kind)})</b> seed ${r.seed} at operation ${fmtN(f.opIndex)}: <pre>${escapeHtml(f.message)}</pre>reproduce: <code>${escapeHtml(repro)}</code></div>`;
    })
    .join("");
  const status = t.failures ? `<span class="bad">${t.failures} failed</span>` : `<span class="ok">passed</span>`;
  return `<header><h1>mmemu stress report: ${escapeHtml(report.scenario)} ${status}</h1><dl class="facts">${facts
    .map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`)
    .join("")}</dl>${failures}</header>`;
}

function summaryTables(report: Report): string {
  const t = report.total;
  const latency = table(
    ["latency (simulated)", "count", "mean", "p50", "p90", "p99", "max"],
    LATENCY_KINDS.map((k) => {
      const l = t.latency[k];
      return [k, l.count, fmtNs(l.meanNs), fmtNs(l.p50Ns), fmtNs(l.p90Ns), fmtNs(l.p99Ns), fmtNs(l.maxNs)];
    }),
  );
  const ops = table(["operation", "count"], Object.entries(t.opCounts).filter(([, v]) => v > 0));
  const vmstat = table(["vmstat", "value"], Object.entries(t.counters));
  const many = report.runs.length > 1;
  const devices = table(
    [...(many ? ["seed"] : []), "device", "pages", "migrated in", "migrated out", "evicted", "CPU faults", "hmm_range_fault calls", "pages read", "written"],
    report.runs.flatMap((r) =>
      r.devices.map((d) => [
        ...(many ? [String(r.seed)] : []), d.name, d.pages, d.migratedIn, d.migratedOut, d.evicted, d.cpuFaults, d.hmmCalls, d.pagesRead, d.pagesWritten,
      ]),
    ),
    many ? 2 : 1,
  );
  const m = report.runs[0]?.machine;
  const machine = m
    ? `<p class="note">machine${many ? " (first run)" : ""}: ${m.nodes
        .map((n, i) => `node ${i} ${fmtN(n.normal)} normal + ${fmtN(n.movable)} movable frames`)
        .join("; ")}; ${m.devices.map((d) => `device-${escapeHtml(d.kind)} ${fmtN(d.pages)} pages`).join("; ") || "no devices"}</p>`
    : "";
  return `<section><h2>Summary</h2><div class="tables">${latency}${ops}${vmstat}</div><div class="tables">${devices}</div>${machine}</section>`;
}

/** migrate-contention: the stall table of the two modes and what read-only entries cut. */
function contentionSection(report: Report): string {
  const c = report.total.contention;
  if (!c) return "";
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const runs = c.modes.map((m) => `${m.mode}: ${fmtN(m.migrations)} migrations moved ${fmtN(m.pagesMigrated)} pages in ${fmtNs(m.simulatedNs)}`).join("; ");
  return `<section><h2>Stall time: blocking vs read-only migration entries <span class="note">(simulated; ${c.rounds} round${c.rounds === 1 ? "" : "s"} of the same workload in each mode)</span></h2>
<div class="tables">${table(CONTENTION_HEAD, contentionRows(c), 2)}</div>
<p>Read-only migration entries cut reader stall time by <b>${pct(c.readerStallReduction)}</b> and writer stall time by <b>${pct(c.writerStallReduction)}</b>.
${report.total.failures === 0 ? `Lost writes: 0 (${fmtN(c.readsChecked)} reads and the final read-back of every page checked against the last write).` : ""}</p>
<p class="note">${escapeHtml(runs)}. ${c.threads.readers} readers, ${c.threads.writers} writers and ${c.threads.migrators} driver threads on a region of ${fmtN(c.regionPages)} pages per mode, migrated in chunks of ${c.chunkPages} pages.</p></section>`;
}

/** file-writeback: per writeback policy, what the same workload did and lost. */
function fileWritebackSection(report: Report): string {
  const f = report.total.fileWriteback;
  if (!f) return "";
  return `<section><h2>Writeback of device-dirtied file pages <span class="note">(${escapeHtml(fileWritebackNote(f))})</span></h2>
<div class="tables">${table(FILE_WB_HEAD, fileWritebackRows(f), 1)}</div>
</section>`;
}

/** pin-storm: per holder mode, how compaction, CMA allocation and offline fared, and what the holders verified. */
function pinStormSection(report: Report): string {
  const p = report.total.pinStorm;
  if (!p) return "";
  const longterm = p.modes.filter((m) => m.longtermMigrated > 0).map((m) => `${m.mode}: FOLL_LONGTERM moved ${fmtN(m.longtermMigrated)} pages out of ZONE_MOVABLE and CMA before pinning.`).join(" ");
  return `<section><h2>Holds vs compaction, CMA and memory offline <span class="note">(${escapeHtml(pinStormNote(p))})</span></h2>
<div class="tables">${table(PIN_STORM_HEAD, pinStormRows(p), 1)}</div>
<p>get: plain FOLL_GET references held long; longterm: FOLL_PIN|FOLL_LONGTERM; pinpage: the pin control subsystem (seed 003), whose holders follow their pages. ${escapeHtml(longterm)}
${report.total.failures === 0 ? `Lost bytes: ${fmtN(p.lostBytes)} (every holder's table entry and every page read back against the last write).` : ""}</p></section>`;
}

/** pmem: the same workload on pmem as storage and as RAM. */
function pmemSection(report: Report): string {
  const p = report.total.pmem;
  if (!p) return "";
  return `<section><h2>pmem as storage vs as RAM <span class="note">(${escapeHtml(pmemNote(p))})</span></h2>
<div class="tables">${table(PMEM_HEAD, pmemRows(p), 1)}</div>
<p>storage: a DAX mapping (special PTEs, no struct pages) plus raw block writes; ram: onlined as ZONE_MOVABLE, offlined at the end of each round.
${report.total.failures === 0 ? `Lost bytes: ${fmtN(p.lostBytes)} (every page and sector read back against the last write after each phase).` : ""}</p></section>`;
}

function plots(report: Report): string {
  const many = report.runs.length > 1;
  const selector = many
    ? `<label class="run-select">run <select id="run">${report.runs.map((r, i) => `<option value="${i}">seed ${r.seed}</option>`).join("")}</select></label>`
    : `<span class="run-select">seed ${report.runs[0]?.seed ?? ""}</span>`;
  const states = report.runs[0]?.timeline.states ?? [];
  const legend = `<div class="legend">${states
    .map((s) => `<span><i style="background:${STATE_COLORS[s] ?? "#000"}"></i>${escapeHtml(s)}</span>`)
    .join("")}</div>`;
  const heatmaps = report.runs
    .map((r, i) => `<canvas class="heatmap" id="heatmap-${i}" data-run="${i}" aria-label="page-state map of seed ${r.seed}"${i ? " hidden" : ""}></canvas>`)
    .join("");
  return `<section id="plots"><h2>Per run ${selector}</h2>
<h3>Page-state map over time</h3>
<p class="note">Each column is a census of every frame; each row a bucket of adjacent frames (system RAM at the top, device memory below the line), coloured by its most common state other than free.</p>
${legend}<div class="plot">${heatmaps}<div id="tip" class="tip"></div></div>
<h3>Page states over time <label class="opt"><input type="checkbox" id="with-free"> include free</label></h3>
${legend}<canvas id="areas"></canvas>
<h3>Throughput over simulated time</h3>
<canvas id="throughput"></canvas>
</section>
<section><h2>Latency histograms <span class="note">(simulated, ${many ? "all runs" : "the run"}; log-scale time)</span> <label class="opt"><input type="checkbox" id="log-count"> log-scale counts</label></h2>
<div id="latency">${LATENCY_KINDS.map((k) => `<canvas id="latency-${k}"></canvas>`).join("")}</div></section>`;
}

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;padding:16px 24px;max-width:1400px;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:16px 0 4px}
.ok{color:#1a7f37;font-size:15px;border:1px solid #1a7f37;border-radius:4px;padding:1px 6px;vertical-align:middle}
.bad{color:#fff;background:#c62828;font-size:15px;border-radius:4px;padding:1px 6px;vertical-align:middle}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:8px 0}.facts div{min-width:120px}.facts dt{color:#666;font-size:12px}.facts dd{margin:0;font-size:16px;font-variant-numeric:tabular-nums}
.failure{border:1px solid #c62828;background:#fdecea;padding:8px 12px;margin:8px 0;border-radius:4px}.failure pre{white-space:pre-wrap;margin:4px 0;font-size:12px;max-height:16em;overflow:auto}
.tables{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start;margin-bottom:12px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}th{background:#f5f5f5;font-weight:600}.num{text-align:right}
.note{color:#666;font-size:12px;font-weight:normal}.opt{font-size:12px;font-weight:normal;margin-left:12px;color:#444}
.run-select{font-size:14px;font-weight:normal;margin-left:12px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;margin:4px 0}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid #0002}
[hidden]{display:none!important}canvas{display:block;width:100%;margin:4px 0}.plot{position:relative}
.tip{position:absolute;pointer-events:none;background:#fffe;border:1px solid #999;padding:2px 6px;font-size:12px;display:none;white-space:nowrap}
#latency{display:flex;flex-wrap:wrap;gap:12px}#latency canvas{width:calc(33% - 8px);min-width:360px}
`;

/** The report as one self-contained HTML page. */
export function renderHtml(report: Report): string {
  const title = `mmemu ${report.scenario}: ${report.runs.length === 1 ? `seed ${report.runs[0]!.seed}` : `${report.runs.length} runs`}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>
${header(report)}
${summaryTables(report)}
${contentionSection(report)}
${pinStormSection(report)}
${pmemSection(report)}
${fileWritebackSection(report)}
${report.runs.length ? plots(report) : "<p>No runs.</p>"}
<script type="application/json" id="mmemu-data">${scriptJson(plotData(report))}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}
