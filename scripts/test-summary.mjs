// Prints vitest's JSON results as the one line CI reads: "N passed, N failed".
import { readFileSync } from "node:fs";

const file = process.argv[2];
let r;
try {
  r = JSON.parse(readFileSync(file, "utf8"));
} catch {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);
process.exit(r.success && r.numFailedTests === 0 ? 0 : 1);
