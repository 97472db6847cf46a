// Replay files: a fuzz program as JSON. Read back with a schema check and size limits;
// anything else (unknown fields, wrong types, values out of range, too big) is one
// ReplayError naming what was wrong. Nothing in the file is evaluated.
import { InputError } from "../stress/machine-spec.js";
import { parseJsonInput } from "../stress/json-input.js";
import { OP_SPECS, type Op, type OpName, type Program } from "./ops.js";

export const REPLAY_VERSION = 1;
/** Ops a replay file may hold, and its size in bytes. */
export const MAX_REPLAY_OPS = 100_000;
export const MAX_REPLAY_BYTES = 8 * 1024 * 1024;

export class ReplayError extends Error {
  constructor(message: string) {
    super(`replay file: ${message}`);
    this.name = "ReplayError";
  }
}

export interface ReplayFile {
  version: number;
  /** What the run saw when it wrote the file (informational). */
  failure?: string;
  program: Program;
}

export function encodeReplay(program: Program, failure?: string): string {
  const file: ReplayFile = { version: REPLAY_VERSION, ...(failure ? { failure } : {}), program };
  // One op a line: small diffs, easy to read.
  const ops = program.ops.map((o) => "    " + JSON.stringify(o)).join(",\n");
  const head = JSON.stringify({ ...file, program: { ...program, ops: [] } }, null, 2);
  return head.replace(/"ops": \[\]/, `"ops": [\n${ops}\n    ]`) + "\n";
}

function keys(what: string, o: unknown, allowed: readonly string[], required: readonly string[]): Record<string, unknown> {
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new ReplayError(`${what} must be an object`);
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ReplayError(`${what} has an unknown field "${k}"`);
  for (const k of required) if (!(k in o)) throw new ReplayError(`${what} lacks the field "${k}"`);
  return o as Record<string, unknown>;
}

function int(what: string, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) throw new ReplayError(`${what} must be an integer in [0, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

/** Parses and checks a replay file's text. */
export function decodeReplay(text: string): ReplayFile {
  if (typeof text !== "string") throw new ReplayError("the content must be text");
  let raw: unknown;
  try {
    // Bytes before parsing, then depth, prototype keys and unsafe integers, as every file from outside.
    raw = parseJsonInput(text, "replay file", MAX_REPLAY_BYTES);
  } catch (e) {
    if (e instanceof InputError) throw new ReplayError(e.message);
    throw e;
  }
  const top = keys("the file", raw, ["version", "failure", "program"], ["version", "program"]);
  if (top.version !== REPLAY_VERSION) throw new ReplayError(`version must be ${REPLAY_VERSION}, got ${JSON.stringify(top.version)}`);
  if (top.failure !== undefined && (typeof top.failure !== "string" || top.failure.length > 4096)) throw new ReplayError("failure must be a string of at most 4096 characters");
  const p = keys("program", top.program, ["seed", "machine", "ops"], ["seed", "machine", "ops"]);
  const seed = int("program.seed", p.seed, 0xffffffff);
  const mach = keys("program.machine", p.machine, ["content"], ["content"]);
  if (mach.content !== "bytes" && mach.content !== "tags") throw new ReplayError(`program.machine.content must be "bytes" or "tags", got ${JSON.stringify(mach.content)}`);
  if (!Array.isArray(p.ops)) throw new ReplayError("program.ops must be an array");
  if (p.ops.length > MAX_REPLAY_OPS) throw new ReplayError(`program.ops holds ${p.ops.length} ops, more than the limit of ${MAX_REPLAY_OPS}`);
  const ops: Op[] = p.ops.map((o: unknown, i: number) => {
    if (!Array.isArray(o) || o.length === 0) throw new ReplayError(`program.ops[${i}] must be a non-empty array`);
    const name = o[0];
    if (typeof name !== "string" || !Object.hasOwn(OP_SPECS, name)) throw new ReplayError(`program.ops[${i}] names no operation: ${JSON.stringify(name)}`);
    const spec = OP_SPECS[name as OpName] as readonly (readonly [string, number])[];
    if (o.length !== spec.length + 1) throw new ReplayError(`program.ops[${i}] (${name}) takes ${spec.length} arguments, got ${o.length - 1}`);
    return [name as OpName, ...spec.map(([arg, max], j) => int(`program.ops[${i}] (${name}) argument ${arg}`, o[j + 1], max))];
  });
  return { version: REPLAY_VERSION, ...(typeof top.failure === "string" ? { failure: top.failure } : {}), program: { seed, machine: { content: mach.content }, ops } };
}
