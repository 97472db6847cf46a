// JSON from outside (machine files, record headers, reports to merge): the byte size is
// checked before parsing, then the parsed value's shape before any field is read: nesting
// depth, prototype-named keys, and integers past 2^53 (which JSON.parse silently rounds).
import { InputError } from "./machine-spec.js";

/** Deeper than any file mmemu writes (a report nests about 6 levels). */
export const MAX_JSON_DEPTH = 32;
const PROTO_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Parses `input` (text or UTF-8 bytes) as JSON from outside; InputError naming `what` for anything out of bounds. */
export function parseJsonInput(input: string | Uint8Array, what: string, maxBytes: number, maxDepth = MAX_JSON_DEPTH): unknown {
  const bad = (why: string): never => {
    throw new InputError(`${what}: ${why}`);
  };
  // A string has at least as many UTF-8 bytes as code units: the cheap test first.
  if (input.length > maxBytes) bad(`${input.length} ${typeof input === "string" ? "characters" : "bytes"} is more than the limit of ${maxBytes} bytes`);
  let text: string;
  if (typeof input === "string") {
    const bytes = new TextEncoder().encode(input).length;
    if (bytes > maxBytes) bad(`${bytes} bytes is more than the limit of ${maxBytes}`);
    text = input;
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(input);
    } catch {
      return bad("not valid UTF-8");
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    bad(`not valid JSON (${(e as Error).message})`);
  }
  checkShape(value, maxDepth, bad);
  return value;
}

/** Walks the parsed value without recursion (its depth is what is being checked). */
function checkShape(root: unknown, maxDepth: number, bad: (why: string) => never): void {
  const stack: [unknown, number, string][] = [[root, 0, "$"]];
  while (stack.length) {
    const [v, depth, path] = stack.pop()!;
    if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v)) bad(`${path} = ${v} is an integer past 2^53 (not exact in JSON)`);
    if (typeof v !== "object" || v === null) continue;
    if (depth >= maxDepth) bad(`${path} nests deeper than ${maxDepth} levels`);
    if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, depth + 1, `${path}[${i}]`]));
      continue;
    }
    for (const [k, x] of Object.entries(v)) {
      if (PROTO_KEYS.has(k)) bad(`${path} has a key named "${k}"`);
      stack.push([x, depth + 1, `${path}.${k}`]);
    }
  }
}
