#!/usr/bin/env -S node --no-wasm-dynamic-tiering
// npm run fuzz -- --seconds N --seed S [--ops N] [--replay FILE] [--out DIR] [--build debug|release]
// Exit status: 0 no failure, 1 a failure found (or the replay still fails), 2 bad input.
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runCampaign, sitesLine, summaryLine } from "./campaign.js";
import { runProgram } from "./exec.js";
import { decodeReplay, MAX_REPLAY_BYTES, ReplayError } from "./replay.js";

const USAGE = `usage: npm run fuzz -- [--seconds N] [--seed S] [--ops N] [--max-operations N] [--out DIR] [--build debug|release]
       npm run fuzz -- --replay FILE [--build debug|release]`;

function bad(msg: string): never {
  process.stderr.write(`fuzz: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function num(name: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) bad(`--${name} must be an integer in [${min}, ${max}], got ${v}`);
  return n;
}

function main(): void {
  let args;
  try {
    args = parseArgs({
      options: {
        seconds: { type: "string" }, seed: { type: "string" }, ops: { type: "string" }, "max-operations": { type: "string" },
        replay: { type: "string" }, out: { type: "string" }, build: { type: "string" }, help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (e) {
    bad((e as Error).message);
  }
  if (args.help) {
    process.stdout.write(USAGE + "\n");
    return;
  }
  const build = args.build ?? "release";
  if (build !== "release" && build !== "debug") bad(`--build must be release or debug, got ${build}`);
  if (args.replay !== undefined) return replay(args.replay, build);
  const report = runCampaign({
    seed: num("seed", args.seed, 1, 0, 0xffffffff),
    seconds: num("seconds", args.seconds, 10, 1, 7 * 24 * 3600),
    ops: num("ops", args.ops, 160, 1, 100_000),
    maxOperations: args["max-operations"] === undefined ? undefined : num("max-operations", args["max-operations"], 0, 1, Number.MAX_SAFE_INTEGER),
    build,
  });
  process.stdout.write(summaryLine(report) + "\n" + sitesLine(report) + "\n");
  for (const f of report.failures) process.stdout.write(`  seed ${f.seed}: ${f.message} (shrunk from ${f.ops} to ${f.shrunkOps} ops)\n`);
  if (args.out !== undefined) {
    mkdirSync(args.out, { recursive: true });
    const files = report.failures.map((f) => {
      const name = `fuzz-replay-${f.seed}.json`;
      writeFileSync(join(args.out!, name), f.replay);
      return name;
    });
    const json = { ...report, failures: report.failures.map(({ replay: _r, ...f }, i) => ({ ...f, replayFile: files[i] })) };
    writeFileSync(join(args.out, "fuzz-report.json"), JSON.stringify(json, null, 2) + "\n");
    process.stdout.write(`report: ${join(args.out, "fuzz-report.json")}\n`);
  }
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}

function replay(file: string, build: "debug" | "release"): void {
  let text: string;
  try {
    if (statSync(file).size > MAX_REPLAY_BYTES) bad(`${file} is larger than ${MAX_REPLAY_BYTES} bytes`);
    text = readFileSync(file, "utf8");
  } catch (e) {
    bad(`cannot read ${file}: ${(e as Error).message}`);
  }
  let prog;
  try {
    prog = decodeReplay(text).program;
  } catch (e) {
    if (e instanceof ReplayError) bad(e.message);
    throw e;
  }
  const r = runProgram(prog, { build });
  process.stdout.write(`replay ${file}: ${prog.ops.length} ops, ${r.operations} operations, ${r.skipped} skipped: ` +
    `${r.failure ? `FAILS: ${r.failure.message}` : "passes"}\n`);
  process.exitCode = r.failure ? 1 : 0;
}

main();
