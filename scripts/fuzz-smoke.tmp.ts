import { generateProgram } from "../src/fuzz/generate.js";
import { runProgram } from "../src/fuzz/exec.js";
const fails = new Map<string, number>();
let ops = 0; const t0 = Date.now();
const N = Number(process.argv[2] ?? 50);
for (let s = 1; s <= N; s++) {
  const p = generateProgram(s);
  const r = runProgram(p, { build: (process.env.B as any) ?? "release" });
  ops += r.operations;
  if (r.failure) { const k = r.failure.message.slice(0, 200); fails.set(k, (fails.get(k) ?? 0) + 1); if ((fails.get(k) ?? 0) === 1) console.log("seed", s, p.machine.content, k); }
}
console.log({ ops, ms: Date.now() - t0, failures: [...fails.values()].reduce((a, b) => a + b, 0) });
