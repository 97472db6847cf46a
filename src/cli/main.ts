#!/usr/bin/env -S node --no-wasm-dynamic-tiering
// mmemu: runs the default demo and prints its report.
import { runDemo } from "../demo.js";
import { MmError } from "../errors.js";

const HELP = `usage: mmemu [demo] [--seed N] [--ops N] [--pages N]

Runs a seeded demo workload (processes mapping, touching, forking, remapping and
unmapping memory) on an emulated machine and prints vmstat-style counters.`;

function parse(argv: string[]): { seed: number; ops: number; pages: number } {
  const out = { seed: 1, ops: 20000, pages: 65536 };
  const args = argv[0] === "demo" ? argv.slice(1) : argv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      process.exit(0);
    }
    const key = a.replace(/^--/, "") as keyof typeof out;
    if (!a.startsWith("--") || !(key in out)) throw new Error(`unknown argument "${a}" (see --help)`);
    const v = Number(args[++i]);
    if (!Number.isInteger(v) || v < (key === "seed" ? 0 : 1)) throw new Error(`--${key} needs a ${key === "seed" ? "non-negative" : "positive"} integer`);
    out[key] = v;
  }
  return out;
}

function main(): void {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (e) {
    console.error(`mmemu: ${(e as Error).message}`);
    process.exit(2);
  }
  try {
    const r = runDemo(opts);
    console.log(`mmemu demo: seed ${r.seed}, ${r.ops} operations, ${r.pagesTouched} pages touched in ${r.elapsedMs.toFixed(0)} ms`);
    console.log(`accesses stopped: SIGSEGV ${r.faults.SIGSEGV}, SIGBUS ${r.faults.SIGBUS}, out of memory ${r.faults.ENOMEM}; invariant checks run: ${r.checks} (all passed)`);
    console.log("vmstat:");
    for (const [k, v] of Object.entries(r.counters)) console.log(`  ${k.padEnd(22)} ${v}`);
  } catch (e) {
    if (e instanceof MmError) {
      console.error(`mmemu: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}

main();
