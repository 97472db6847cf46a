#!/usr/bin/env -S node --no-wasm-dynamic-tiering
// mmemu: the stress runner's command line (run, list, replay, merge).
// Exit status: 0 success, 1 an invariant broke or data was lost, 2 bad input.
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { parseArgs, parseShard, type FlagSpec } from "./args.js";
import { Progress } from "./progress.js";
import { runInWorkers } from "./workers.js";
import { InputError, LIMITS, PRESETS, resolveMachine, type MachineSpec } from "../stress/machine-spec.js";
import { DEFAULT_SCENARIO, SCENARIOS, scenarioByName } from "../stress/scenarios/index.js";
import { checkRunOptions, StressRun, type RunOptions, type RunReport, type StressResult } from "../stress/run.js";
import { buildReport, formatSummary, mergeReports, type Report } from "../stress/report.js";
import { checkReport } from "../stress/report-check.js";
import { decodeRecord, encodeRecord, MAX_RECORD_OPS } from "../stress/record.js";
import { renderHtml } from "../stress/html.js";
import { parseJsonInput } from "../stress/json-input.js";

const HELP: Record<string, string> = {
  main: `usage: mmemu <command> [options]

commands:
  run [scenario]   run a stress scenario and print its report (default: ${DEFAULT_SCENARIO})
  list             list the scenarios and machine presets
  replay FILE      re-run a recorded op stream (from run --record) and print its report
  merge FILE...    merge the JSON reports of shards of one sweep

mmemu with no command runs "mmemu run". "mmemu <command> --help" tells more.
Exit status: 0 success, 1 an invariant broke or data was lost, 2 bad input.`,
  run: `usage: mmemu run [scenario] [options]

Runs a scenario (default ${DEFAULT_SCENARIO}; see mmemu list) on an emulated machine,
checking the invariants every --check-every operations and every value read against
a shadow of what was written, and prints a report.

  --seed N           first seed (default 1); run i uses seed N+i
  --ops N            operations per run (default 1000000)
  --duration S       run each seed for S seconds of wall time instead of --ops
  --machine M        machine preset (${Object.keys(PRESETS).join(", ")}; default "default") or a JSON file
  --runs N           runs (seeds) in the sweep (default: --workers)
  --workers N        worker threads, each running its own machines (default 1)
  --shard i/N        run only the i-th of N slices of the sweep's seeds (for CI matrices, job arrays)
  --check-every N    operations between invariant checks (default 65536)
  --json FILE        write the report as JSON (the same seed gives the same bytes)
  --html FILE        write a self-contained HTML report with plots
  --trace FILE       write Chrome trace events of simulated time (open in Perfetto); one run only
  --record FILE      write the op stream for mmemu replay; one run only
  --build B          Wasm build: release (default) or debug (all checks on)
  --quiet            no progress output`,
  list: `usage: mmemu list

Lists the scenarios and the machine presets.`,
  replay: `usage: mmemu replay FILE [--json FILE] [--html FILE] [--trace FILE] [--quiet]

Re-runs the op stream a "mmemu run --record FILE" wrote, without the scenario's
generator, and prints the same report as the recorded run.`,
  merge: `usage: mmemu merge REPORT.json... [--json FILE] [--html FILE]

Merges the JSON reports of the shards of one sweep (mmemu run --shard i/N --json ...)
into one report, as if the sweep had run in one place.`,
};

const OUTPUT_FLAGS = { json: { type: "string" }, html: { type: "string" }, trace: { type: "string" } } as const;
const RUN_FLAGS: Record<string, FlagSpec> = {
  help: { type: "bool" }, seed: { type: "int", min: 0, max: 0xffffffff }, ops: { type: "int", min: 1, max: 1e12 },
  duration: { type: "number", min: 0.001, max: 86400 * 7 }, machine: { type: "string" }, runs: { type: "int", min: 1, max: 1_000_000 },
  workers: { type: "int", min: 1, max: 256 }, shard: { type: "string" }, "check-every": { type: "int", min: 1, max: 2 ** 31 },
  record: { type: "string" }, build: { type: "string" }, quiet: { type: "bool" }, ...OUTPUT_FLAGS,
};

/** Where outputs go: checked before the run; written whole (temp file, then rename) after it. */
function outputPath(flag: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  const path = resolve(file);
  if (!existsSync(dirname(path)) || !statSync(dirname(path)).isDirectory()) throw new InputError(`--${flag}: directory ${dirname(path)} does not exist`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InputError(`--${flag}: ${path} is a directory`);
  return path;
}

function writeWhole(path: string | undefined, data: string | Uint8Array): void {
  if (!path) return;
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function readInput(file: string, what: string, maxBytes: number): Uint8Array {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new InputError(`${what} ${file} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > maxBytes) throw new InputError(`${what} ${file} is ${size} bytes; the limit is ${maxBytes}`);
  return new Uint8Array(readFileSync(file));
}

function machineOf(value: string | undefined): MachineSpec {
  if (value === undefined) return resolveMachine("default", false);
  if (PRESETS[value]) return resolveMachine(value, false);
  if (!existsSync(value)) throw new InputError(`--machine: "${value}" is neither a preset (${Object.keys(PRESETS).join(", ")}) nor an existing file`);
  const text = new TextDecoder().decode(readInput(value, "machine file", LIMITS.fileBytes));
  return resolveMachine(text, true, `machine file ${value}`);
}

function buildOf(value: string | undefined): "debug" | "release" {
  if (value === undefined || value === "release" || value === "debug") return value ?? "release";
  throw new InputError(`--build must be "release" or "debug", got "${value}"`);
}

function write(report: Report, out: { json?: string; html?: string }): void {
  writeWhole(out.json, JSON.stringify(report, null, 1) + "\n");
  writeWhole(out.html, renderHtml(report));
}

async function cmdRun(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv, RUN_FLAGS, "run");
  if (flags.help) return help("run");
  if (positional.length > 1) throw new InputError(`run: one scenario at a time, got ${positional.join(" ")}`);
  const scenario = positional[0] ?? DEFAULT_SCENARIO;
  if (!scenarioByName(scenario)) throw new InputError(`run: unknown scenario "${scenario}" (scenarios: ${SCENARIOS.map((s) => s.name).join(", ")})`);
  if (flags.ops !== undefined && flags.duration !== undefined) throw new InputError("run: --ops and --duration exclude each other");
  const workers = (flags.workers as number | undefined) ?? 1;
  const runs = (flags.runs as number | undefined) ?? workers;
  const first = (flags.seed as number | undefined) ?? 1;
  if (first + runs - 1 > 0xffffffff) throw new InputError("run: --seed plus --runs goes past 2^32 - 1");
  let seeds = Array.from({ length: runs }, (_, i) => first + i);
  if (flags.shard !== undefined) {
    const { index, count } = parseShard(flags.shard as string);
    seeds = seeds.filter((_, i) => i % count === index - 1);
  }
  const opts: Omit<RunOptions, "seed" | "onProgress"> = {
    scenario, machine: machineOf(flags.machine as string | undefined), build: buildOf(flags.build as string | undefined),
    checkEvery: flags["check-every"] as number | undefined,
  };
  if (flags.duration !== undefined) opts.durationMs = (flags.duration as number) * 1000;
  else opts.ops = (flags.ops as number | undefined) ?? 1_000_000;
  checkRunOptions({ ...opts, seed: first, record: flags.record !== undefined });
  const out = {
    json: outputPath("json", flags.json as string | undefined), html: outputPath("html", flags.html as string | undefined),
    trace: outputPath("trace", flags.trace as string | undefined), record: outputPath("record", flags.record as string | undefined),
  };
  if ((out.trace || out.record) && seeds.length !== 1) throw new InputError(`run: --trace and --record take one run; this sweep has ${seeds.length}`);
  if (out.record && opts.ops !== undefined && opts.ops > MAX_RECORD_OPS) throw new InputError(`run: --record keeps at most ${MAX_RECORD_OPS} ops`);
  if (seeds.length === 0) {
    console.log(`mmemu ${scenario}: shard ${flags.shard} of ${runs} runs holds no seeds; nothing to do`);
    write(buildReport(scenario, []), out);
    return 0;
  }

  const total = opts.ops !== undefined ? opts.ops * seeds.length : null;
  const progress = new Progress(total, `mmemu ${scenario}`, Boolean(flags.quiet), opts.durationMs);
  const t0 = performance.now();
  let runsDone: RunReport[];
  let single: StressResult | null = null;
  if (workers === 1 || seeds.length === 1) {
    runsDone = [];
    let before = 0;
    for (const seed of seeds) {
      const run = StressRun.fromScenario({ ...opts, seed, trace: Boolean(out.trace), record: Boolean(out.record), onProgress: (d) => progress.update(before + d) });
      single = run.finish();
      before += single.report.ops;
      runsDone.push(single.report);
    }
  } else {
    runsDone = await runInWorkers(opts, seeds, workers, (d) => progress.update(d));
  }
  const wallMs = performance.now() - t0;
  progress.end();
  const report = buildReport(scenario, runsDone);
  write(report, out);
  if (single && out.trace) writeWhole(out.trace, JSON.stringify(single.trace));
  if (single?.record && out.record) writeWhole(out.record, gzipSync(encodeRecord(single.record.header, single.record.words)));
  console.log(formatSummary(report, wallMs, Math.min(workers, seeds.length)));
  return report.total.failures > 0 ? 1 : 0;
}

async function cmdReplay(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv, { help: { type: "bool" }, quiet: { type: "bool" }, ...OUTPUT_FLAGS }, "replay");
  if (flags.help) return help("replay");
  if (positional.length !== 1) throw new InputError("replay: needs exactly one record file");
  const file = positional[0]!;
  const maxBytes = MAX_RECORD_OPS * 16 + LIMITS.fileBytes;
  let bytes = readInput(file, "replay file", maxBytes);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes, { maxOutputLength: maxBytes }));
    } catch (e) {
      throw new InputError(`replay file ${file} is not a readable gzip stream (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  const { header, words } = decodeRecord(bytes);
  const out = { json: outputPath("json", flags.json as string | undefined), html: outputPath("html", flags.html as string | undefined), trace: outputPath("trace", flags.trace as string | undefined) };
  const progress = new Progress(header.ops, `mmemu replay ${header.scenario}`, Boolean(flags.quiet));
  const t0 = performance.now();
  const r = StressRun.fromRecord(header, words, { trace: Boolean(out.trace), onProgress: (d) => progress.update(d) }).finish();
  progress.end();
  const report = buildReport(header.scenario, [r.report]);
  write(report, out);
  if (out.trace) writeWhole(out.trace, JSON.stringify(r.trace));
  console.log(formatSummary(report, performance.now() - t0));
  return report.total.failures > 0 ? 1 : 0;
}

function cmdMerge(argv: string[]): number {
  const { positional, flags } = parseArgs(argv, { help: { type: "bool" }, json: OUTPUT_FLAGS.json, html: OUTPUT_FLAGS.html }, "merge");
  if (flags.help) return help("merge");
  if (positional.length === 0) throw new InputError("merge: needs at least one report file");
  const out = { json: outputPath("json", flags.json as string | undefined), html: outputPath("html", flags.html as string | undefined) };
  const reports = positional.map((f) => {
    const max = 256 * 1024 * 1024;
    return checkReport(parseJsonInput(readInput(f, "report", max), `report ${f}`, max), `report ${f}`);
  });
  let merged: Report;
  try {
    merged = mergeReports(reports);
  } catch (e) {
    throw new InputError(`merge: ${(e as Error).message}`);
  }
  const seeds = merged.runs.map((r) => r.seed);
  if (new Set(seeds).size !== seeds.length) throw new InputError("merge: the reports hold the same seed twice (a shard given twice?)");
  write(merged, out);
  console.log(formatSummary(merged));
  return merged.total.failures > 0 ? 1 : 0;
}

function cmdList(argv: string[]): number {
  const { flags, positional } = parseArgs(argv, { help: { type: "bool" } }, "list");
  if (flags.help) return help("list");
  if (positional.length) throw new InputError(`list: takes no arguments, got ${positional.join(" ")}`);
  console.log("scenarios:");
  const width = Math.max(16, ...SCENARIOS.map((s) => s.name.length));
  for (const s of SCENARIOS) console.log(`  ${s.name.padEnd(width)} ${s.summary}${s.name === DEFAULT_SCENARIO ? " (default)" : ""}`);
  console.log("\nmachine presets:");
  for (const [name, m] of Object.entries(PRESETS)) {
    const ram = m.nodes.reduce((s, n) => s + n.normal + n.movable, 0);
    const devs = m.devices.map((d) => `${d.kind} ${d.pages * 4 / 1024} MiB`).join(", ");
    console.log(`  ${name.padEnd(width)} ${m.nodes.length} node(s), ${ram * 4 / 1024} MiB RAM; devices: ${devs}`);
  }
  return 0;
}

function help(cmd: string): number {
  console.log(HELP[cmd]);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
      return cmdRun([]);
    case "--help":
    case "-h":
    case "help":
      return help("main");
    case "run":
      return cmdRun(rest);
    case "list":
      return cmdList(rest);
    case "replay":
      return cmdReplay(rest);
    case "merge":
      return cmdMerge(rest);
    default:
      if (cmd.startsWith("--")) return cmdRun(argv);
      throw new InputError(`unknown command "${cmd}" (commands: run, list, replay, merge; see mmemu --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof InputError) {
      console.error(`mmemu: ${e.message}`);
      process.exitCode = 2;
      return;
    }
    console.error(`mmemu: internal error: ${(e as Error)?.stack ?? String(e)}`);
    process.exitCode = 1;
  },
);
