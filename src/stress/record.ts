// Record files: the op stream of one run, for `mmemu replay` and bug reports. One line
// of JSON (the header: scenario, seed, machine, intervals, op count), then the ops as
// little-endian u32 words, four per op. Files from outside are checked field by field.
import { InputError, checkMachineSpec, LIMITS } from "./machine-spec.js";
import { scenarioByName } from "./scenarios/index.js";
import { OP_WORDS } from "./ops.js";
import type { RecordHeader } from "./run.js";
import { parseJsonInput } from "./json-input.js";

/** The largest record a replay accepts (ops). */
export const MAX_RECORD_OPS = 50_000_000;
const MAX_HEADER_BYTES = LIMITS.fileBytes;

export function encodeRecord(header: RecordHeader, words: Uint32Array): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header) + "\n");
  const out = new Uint8Array(head.length + words.length * 4);
  out.set(head);
  const view = new DataView(out.buffer, head.length);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!, true);
  return out;
}

const bad = (what: string): never => {
  throw new InputError(`replay file: ${what}`);
};

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) bad(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v as number;
}

export function decodeRecord(bytes: Uint8Array): { header: RecordHeader; words: Uint32Array } {
  const nl = bytes.subarray(0, MAX_HEADER_BYTES).indexOf(10);
  if (nl < 0) bad(bytes.length === 0 ? "the file is empty" : `no header line in the first ${MAX_HEADER_BYTES} bytes (not an mmemu record?)`);
  const raw = parseJsonInput(bytes.subarray(0, nl), "replay file: the header", MAX_HEADER_BYTES);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("the header must be a JSON object");
  const h = raw as Record<string, unknown>;
  const known = ["format", "version", "scenario", "seed", "machine", "checkEvery", "sampleEvery", "ops"];
  for (const k of Object.keys(h)) if (!known.includes(k)) bad(`the header has an unknown field "${k}"`);
  if (h.format !== "mmemu-record") bad(`format must be "mmemu-record", got ${JSON.stringify(h.format)}`);
  if (h.version !== 1) bad(`version ${JSON.stringify(h.version)} is not supported (this mmemu reads version 1)`);
  if (typeof h.scenario !== "string" || !scenarioByName(h.scenario)) bad(`unknown scenario ${JSON.stringify(h.scenario)}`);
  const header: RecordHeader = {
    format: "mmemu-record",
    version: 1,
    scenario: h.scenario as string,
    seed: int(h.seed, "seed", 0, 0xffffffff),
    machine: checkMachineSpec(h.machine, "replay file: machine"),
    checkEvery: int(h.checkEvery, "checkEvery", 1, 2 ** 31),
    sampleEvery: int(h.sampleEvery, "sampleEvery", 0, 2 ** 31),
    ops: int(h.ops, "ops", 0, MAX_RECORD_OPS),
  };
  const payload = bytes.length - nl - 1;
  const want = header.ops * OP_WORDS * 4;
  if (payload !== want) bad(`the header promises ${header.ops} ops (${want} bytes) but ${payload} bytes follow (${payload < want ? "truncated" : "trailing data"})`);
  const words = new Uint32Array(header.ops * OP_WORDS);
  const view = new DataView(bytes.buffer, bytes.byteOffset + nl + 1, payload);
  for (let i = 0; i < words.length; i++) words[i] = view.getUint32(i * 4, true);
  return { header, words };
}
