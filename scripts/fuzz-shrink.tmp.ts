import { generateProgram } from "../src/fuzz/generate.js";
import { runProgram } from "../src/fuzz/exec.js";
import { shrinkProgram } from "../src/fuzz/shrink.js";
const seed = Number(process.argv[2]);
const p = generateProgram(seed);
const r = runProgram(p);
if (!r.failure) { console.log("no failure"); process.exit(0); }
console.log(r.failure.message);
const s = shrinkProgram(p, r.failure);
console.log(s.runs, s.failure.message);
console.log(JSON.stringify(s.program.machine), "\n" + s.program.ops.map((o) => JSON.stringify(o)).join("\n"));
