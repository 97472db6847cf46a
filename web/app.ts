// The demo page: runs a scenario in slices between frames, so the page stays responsive,
// and redraws the machine's memory after each slice. Inputs are only ever matched against
// known names or parsed as integers; nothing the user types is evaluated.
import {
  PAGE_STATES, PRESETS, SCENARIOS, DEFAULT_SCENARIO, StressRun, buildReport, formatSummary, type Census, type StressResult,
} from "./mmemu.js";
import { MemoryPicture, STATE_COLORS } from "./draw.js";

/** Ops per step() call, and wall time per slice before the page gets to draw. */
const STEP_OPS = 8192;
const SLICE_MS = 30;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const controls = {
  form: $<HTMLFormElement>("controls"),
  scenario: $<HTMLSelectElement>("scenario"),
  seed: $<HTMLInputElement>("seed"),
  ops: $<HTMLInputElement>("ops"),
  machine: $<HTMLSelectElement>("machine"),
  randomSeed: $<HTMLButtonElement>("random-seed"),
};
const view = {
  status: $("status"),
  progress: $("progress"),
  grid: $<HTMLCanvasElement>("map"),
  strip: $<HTMLCanvasElement>("history"),
  legend: $("legend"),
  results: $("results"),
  countersTable: $<HTMLTableSectionElement>("counters-table"),
  countersJson: $("counters"),
  summary: $("summary"),
  download: $<HTMLAnchorElement>("download"),
};

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

function fillSelect(select: HTMLSelectElement, names: string[], chosen: string): void {
  for (const name of names) select.add(new Option(name, name, false, name === chosen));
}

/** Initial values from the query string (?scenario=&seed=&ops=&machine=), so a run can be linked. */
function initControls(): void {
  const q = new URLSearchParams(location.search);
  const scenarios = SCENARIOS.map((s) => s.name);
  const presets = Object.keys(PRESETS);
  const pick = (v: string | null, names: string[], dflt: string) => (v !== null && names.includes(v) ? v : dflt);
  fillSelect(controls.scenario, scenarios, pick(q.get("scenario"), scenarios, DEFAULT_SCENARIO));
  fillSelect(controls.machine, presets, pick(q.get("machine"), presets, "small"));
  if (q.get("seed") !== null) controls.seed.value = q.get("seed")!;
  if (q.get("ops") !== null) controls.ops.value = q.get("ops")!;
}

function buildLegend(): Map<string, HTMLElement> {
  const counts = new Map<string, HTMLElement>();
  view.legend.replaceChildren();
  for (const state of PAGE_STATES) {
    const item = document.createElement("span");
    item.dataset.state = state;
    const swatch = document.createElement("i");
    swatch.style.background = STATE_COLORS[state] ?? "#000";
    const count = document.createElement("b");
    count.textContent = "–";
    item.append(swatch, ` ${state} `, count);
    view.legend.append(item);
    counts.set(state, count);
  }
  return counts;
}
const legendCounts = buildLegend();

function setStatus(state: "idle" | "running" | "done" | "failed" | "error", text: string): void {
  view.status.dataset.state = state;
  view.status.textContent = text;
}

function showCensus(census: Census): void {
  census.counts.forEach((n, i) => (legendCounts.get(PAGE_STATES[i]!)!.textContent = `${fmt(n)} frames`));
}

function showResults(result: StressResult): void {
  const { report } = result;
  view.countersTable.replaceChildren();
  const addRows = (group: string, values: Record<string, number>) => {
    for (const [name, value] of Object.entries(values)) {
      const row = view.countersTable.insertRow();
      row.dataset.group = group;
      row.dataset.name = name;
      row.dataset.value = String(value);
      row.insertCell().textContent = group;
      row.insertCell().textContent = name;
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = fmt(value);
    }
  };
  addRows("vmstat", report.counters as unknown as Record<string, number>);
  addRows("ops", report.opCounts);
  view.countersJson.textContent = JSON.stringify({ counters: report.counters, opCounts: report.opCounts }, null, 2);
  view.summary.textContent = formatSummary(buildReport(report.scenario, [report]), result.wallMs);
  URL.revokeObjectURL(view.download.href);
  view.download.href = URL.createObjectURL(new Blob([JSON.stringify(buildReport(report.scenario, [report]), null, 2)], { type: "application/json" }));
  view.download.download = `mmemu-${report.scenario}-seed${report.seed}.json`;
  view.results.hidden = false;
}

/** Increments when a run starts; a slice of an older run sees it and stops. */
let generation = 0;

function start(): void {
  const id = ++generation;
  const scenario = controls.scenario.value;
  const seed = Number(controls.seed.value);
  const ops = Number(controls.ops.value);
  const machine = structuredClone(PRESETS[controls.machine.value]!);
  history.replaceState(null, "", `?${new URLSearchParams({ scenario, seed: String(seed), ops: String(ops), machine: controls.machine.value })}`);
  view.results.hidden = true;

  let run: StressRun;
  try {
    run = StressRun.fromScenario({ scenario, seed, ops, machine });
  } catch (e) {
    setStatus("error", (e as Error).message);
    return;
  }
  const world = run.world;
  const picture = new MemoryPicture(view.grid, view.strip, PAGE_STATES, {
    ...world.buckets,
    rangeStarts: world.gpus.map((g) => g.pgmap.start),
  });
  const began = performance.now();
  setStatus("running", `running ${scenario}, seed ${seed}…`);

  const slice = () => {
    if (id !== generation) return;
    const until = performance.now() + SLICE_MS;
    let more = true;
    while (more && performance.now() < until) more = run.step(STEP_OPS);
    // The census reads the machine as it stands; finish() tears it down, so take it first.
    let census: Census | null = null;
    try {
      census = world.censusNow();
    } catch {
      // A failed run's machine may be past reading; the report says why.
    }
    if (census) {
      picture.draw(census, world.ops / ops);
      showCensus(census);
      view.grid.dataset.draws = String(picture.draws);
    }
    const wallS = (performance.now() - began) / 1000;
    view.progress.textContent = `${fmt(world.ops)} / ${fmt(ops)} operations · ${fmt(world.ops / Math.max(wallS, 1e-3))} ops/s · ${wallS.toFixed(1)} s`;
    if (more) {
      setTimeout(slice, 0);
      return;
    }
    const result = run.finish();
    showResults(result);
    const f = result.report.failure;
    if (f) setStatus("failed", `FAILED (${f.kind}) at operation ${f.opIndex}: ${f.message}`);
    else setStatus("done", `done: ${fmt(result.report.ops)} operations, ${fmt(result.report.checks)} invariant checks, ${fmt(result.report.verifiedPages)} pages verified`);
  };
  setTimeout(slice, 0);
}

initControls();
controls.form.addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
controls.randomSeed.addEventListener("click", () => {
  controls.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
});
setStatus("idle", "ready: pick a scenario and press Run");
