import { runProgram } from "../src/fuzz/exec.js";
import { readFileSync } from "node:fs";
const prog = JSON.parse(readFileSync(process.argv[2]!, "utf8"));
const r = runProgram(prog, { build: "debug", checkEvery: Number(process.argv[3] ?? 256) });
console.log(r.failure?.message, r.failure?.stack?.split("\n").slice(0, 8).join("\n"));
