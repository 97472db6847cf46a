// Command-line parsing for mmemu: flags by name with their value types; anything unknown
// or malformed is an InputError (one line, exit status 2).
import { InputError } from "../stress/machine-spec.js";

export interface FlagSpec {
  /** "int" | "number" | "string" | "bool" */
  type: "int" | "number" | "string" | "bool";
  min?: number;
  max?: number;
}

export type Parsed = { positional: string[]; flags: Record<string, string | number | boolean> };

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>, command: string): Parsed {
  const out: Parsed = { positional: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--") && a !== "-h") {
      out.positional.push(a);
      continue;
    }
    const [name, inline] = a === "-h" ? ["help", undefined] : a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const f = spec[name!];
    if (!f) throw new InputError(`${command}: unknown flag ${a.split("=")[0]} (see mmemu ${command} --help)`);
    if (name! in out.flags) throw new InputError(`${command}: --${name} given twice`);
    if (f.type === "bool") {
      if (inline !== undefined) throw new InputError(`${command}: --${name} takes no value`);
      out.flags[name!] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined || (inline === undefined && v.startsWith("--"))) throw new InputError(`${command}: --${name} needs a value`);
    if (f.type === "string") {
      out.flags[name!] = v;
      continue;
    }
    const n = Number(v);
    const intOk = f.type === "int" ? Number.isSafeInteger(n) : Number.isFinite(n);
    if (v.trim() === "" || !intOk || (f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max)) {
      const range = f.max !== undefined ? ` in [${f.min ?? "-inf"}, ${f.max}]` : f.min !== undefined ? ` >= ${f.min}` : "";
      throw new InputError(`${command}: --${name} needs ${f.type === "int" ? "an integer" : "a number"}${range}, got "${v}"`);
    }
    out.flags[name!] = n;
  }
  return out;
}

/** "i/N" with 1 <= i <= N. */
export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count || count > 1_000_000) throw new InputError(`run: --shard needs i/N with 1 <= i <= N, got "${v}"`);
  return { index, count };
}
