// Argument checks shared by the public entry points: each refuses a bad value with
// MmError(EINVAL) naming the function and the value, before anything reaches the core.
import { fail } from "./errors.js";

const TWO32 = 2 ** 32;

/** A u32 flag word with no bits outside `known`. */
export function flagWord(fn: string, what: string, v: unknown, known: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= TWO32) fail("EINVAL", fn, `${what} ${String(v)} is not a u32 flag word`, v);
  if ((v & ~known) !== 0) fail("EINVAL", fn, `unknown ${what} bits 0x${((v & ~known) >>> 0).toString(16)}`, v);
  return v;
}

/** A non-negative safe integer (an address, offset or length before its own range checks). */
export function safeCount(fn: string, what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) fail("EINVAL", fn, `${what} ${String(v)} is not a non-negative safe integer`, v);
  return v;
}

/** An options object: undefined means none; null, arrays and primitives are refused. */
export function options<T extends object>(fn: string, what: string, v: T | undefined): Partial<T> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("EINVAL", fn, `${what} must be an object`, v);
  return v;
}

/** Whether `v` is a u32 (a flag word the bit tests below it can trust: 2^32 would read as 0). */
export function isU32(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < TWO32;
}
