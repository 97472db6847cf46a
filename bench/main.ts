// The benchmark suite (`npm run bench`): each group times the release Wasm core through the
// TypeScript API against the plain-TypeScript reference kernel and a raw limit, in the same run.
// Prints a text table and a markdown table; `--write` also rewrites BENCHMARKS.md at the repo root.
// `--no-debug` skips the debug-build rows; `--rounds N` sets how many interleaved rounds each
// benchmark runs (default 5; the reported time is the median of the round medians); `--only TEXT`
// runs only the benchmarks whose step name contains TEXT (e.g. `--only migrate`, `--only compact`).
import { writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { create } from "./create.js";
import { faultIn } from "./faultin.js";
import { fork } from "./fork.js";
import { walk, walkSink } from "./walk.js";
import { migrateBytes, migrateTags } from "./migrate.js";
import { hmm, hmmSink } from "./hmm.js";
import { gup, gupSink } from "./gup.js";
import { compactBytes, compactTags } from "./compact.js";
import { runner } from "./runner.js";
import { contention } from "./contention.js";
import { numa } from "./numa.js";
import { devfileWriteback } from "./devfile.js";
import { markdownTable, textTable, type Group } from "./report.js";

const argv = process.argv.slice(2);
const args = new Set(argv);
const debug = !args.has("--no-debug");
const ri = argv.indexOf("--rounds");
const nRounds = ri >= 0 ? Math.max(1, Number.parseInt(argv[ri + 1] ?? "", 10) || 1) : 5;
const oi = argv.indexOf("--only");
const only = oi >= 0 ? argv[oi + 1] ?? "" : "";
const load = loadavg()[0]!.toFixed(2);
const t0 = performance.now();

const steps: [string, () => Group | Group[] | Promise<Group>][] = [
  ["anon fault-in", () => faultIn(debug, nRounds)],
  ["fork", () => fork(debug, false, nRounds)],
  ["fork + COW break", () => fork(debug, true, nRounds)],
  ["PTE walk", () => walk(debug, nRounds)],
  ["machine creation", () => create(nRounds)],
  ["migrate_vma, bytes mode", () => migrateBytes(nRounds)],
  ["migrate_vma, tags mode", () => migrateTags(nRounds)],
  ["hmm_range_fault", () => hmm(debug, nRounds)],
  ["gup pin+unpin", () => gup(debug, nRounds)],
  ["compaction, bytes mode", () => compactBytes(nRounds)],
  ["compaction, tags mode", () => compactTags(nRounds)],
  ["numa: migrate_pages and move_pages between nodes", () => numa(nRounds)],
  ["stress runner", () => runner(nRounds)],
  ["migration contention", () => contention(nRounds)],
  ["writeback of device-dirtied file pages", () => devfileWriteback(nRounds)],
];
const groups: Group[] = [];
for (const [name, run] of steps) {
  if (!name.includes(only)) continue;
  const t = performance.now();
  process.stderr.write(`bench: ${name}...`);
  groups.push(...[await run()].flat());
  process.stderr.write(` ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}
if (walkSink() < 0 || hmmSink() < 0 || gupSink() < 0) console.log("unreachable");

const seconds = (performance.now() - t0) / 1000;
// The suite itself keeps one core busy, so about 1 of this is its own.
const loadEnd = loadavg()[0]!.toFixed(2);
const cpu = cpus();
const machine = `${cpu[0]?.model.trim() ?? "unknown CPU"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`;
const date = new Date().toISOString().slice(0, 10);

console.log(`\n${textTable(groups)}\n`);
for (const g of groups) for (const n of g.notes ?? []) console.log(n);
console.log(`\nnode ${process.version}, ${machine}; 1-min load average ${load} at start, ${loadEnd} at the end; suite took ${seconds.toFixed(0)} s\n`);

const md = [
  "# Benchmarks",
  "",
  "Produced by `npm run bench -- --write` (plain `npm run bench` prints the same table without writing this file).",
  `Date ${date}; node ${process.version}; ${machine}; 1-min load average ${load} when the run started ` +
    `and ${loadEnd} when it ended (the suite's own process adds about 1); ` +
    `${nRounds} rounds; the suite took ${seconds.toFixed(0)} s.`,
  "",
  "Each benchmark runs its variants in turn, round after round; a time is the median over rounds of each round's",
  "tinybench median, with the fastest and slowest round in brackets. Ratios compare throughputs from the same run.",
  "\"vs reference\" is the speed-up over the plain-TypeScript reference kernel (`bench/reference/kernel.ts`);",
  "\"vs limit\" is the fraction of the raw limit's throughput (1.00× = as fast as the limit).",
  "The Wasm rows run the release build unless they say debug. node runs with --no-wasm-dynamic-tiering, so V8",
  "compiles the Wasm core with its optimizing tier (TurboFan) up front, as a deployed engine would; under V8's default",
  "dynamic tiering a long batch call can run to its end in baseline (Liftoff) code and measure about 1.5× slower.",
  "",
  markdownTable(groups),
  "",
  "## What is measured",
  "",
  ...groups.flatMap((g) => [`- **${g.title}**: ${g.what}`, ...(g.notes ?? []).map((n) => `  ${n}`)]),
  "",
].join("\n");
console.log(md);
if (args.has("--write")) {
  writeFileSync(new URL("../BENCHMARKS.md", import.meta.url), md);
  process.stderr.write("bench: wrote BENCHMARKS.md\n");
}
