// Shared set-up for the compaction, CMA and memory offline tests: fragmented memory whose
// every page holds a known tag, and ways to see where pages are and that nothing else changed.
import { expect } from "vitest";
import { Machine, MmError, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MADV_DONTNEED, type MachineConfig, type Process } from "../src/index.js";
import { L } from "../src/layout.js";

export const RW = PROT_READ | PROT_WRITE;
export const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

export const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

/** The pfn a process maps at `addr`. */
export const pfnAt = (p: Process, addr: number): number => pfnOf(p.pte(addr));

/** `n` written pages from `addr`, every other one dropped again: order-0 holes all over. */
export interface Fragmented {
  m: Machine;
  p: Process;
  a: number;
  n: number;
  /** Addresses of the pages that stayed, and the tag each holds. */
  kept: number[];
}

export const TAG = 0x7a600000n;

export function fragmented(cfg: MachineConfig = { nodes: [{ normal: 4096 }] }, n = 3840): Fragmented {
  const m = Machine.create(cfg);
  const p = m.spawn();
  const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
  p.touch(a, n, true, TAG);
  for (let i = 0; i < n; i += 2) p.madvise(a + i * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
  const kept = Array.from({ length: n / 2 }, (_, i) => a + (2 * i + 1) * PAGE_SIZE);
  return { m, p, a, n, kept };
}

/** Every kept page still holds its tag. */
export function contentsIntact(f: Fragmented): void {
  for (const addr of f.kept) expect(f.p.readTag(addr), `page at 0x${addr.toString(16)}`).toBe(TAG + BigInt((addr - f.a) / PAGE_SIZE));
}

/** The call throws an MmError with this errno name; returns it. */
export function throwsCode(code: string, call: () => unknown): MmError {
  let err: unknown;
  try {
    call();
  } catch (e) {
    err = e;
  }
  expect(err, "the call should have thrown").toBeInstanceOf(MmError);
  expect((err as MmError).code, (err as MmError).message).toBe(code);
  expect((err as MmError).message).toMatch(new RegExp(`: ${code}: \\S`));
  return err as MmError;
}

/**
 * The call is refused with `code` and leaves the machine exactly as it was: every byte of
 * struct pages, zones, page tables, pageblocks, CMA bitmaps, counters and frame contents.
 */
export function refused(m: Machine, code: string, call: () => unknown): MmError {
  const before = snapshot(m);
  const err = throwsCode(code, call);
  const after = snapshot(m);
  expect(after.length).toBe(before.length);
  let diff = -1;
  for (let i = 0; i < after.length; i++) if (after[i] !== before[i]) { diff = i; break; }
  expect(diff, "machine state changed").toBe(-1);
  m.check();
  return err;
}

function snapshot(m: Machine): Uint8Array {
  const s = m.layout.slots;
  const mem = new Uint8Array(m.core.memory.buffer);
  const n = m.config.frames + m.config.deviceFrames;
  m.core.foldStats();
  const ranges: [number, number][] = [
    [s[L.PAGE_FLAGS]!, s[L.PAGE_ORDER]! + n],
    [s[L.ZONES]!, s[L.ZONES]! + 256 * m.layout.zones.length],
    [s[L.STATS]!, s[L.STATS]! + 512],
    [s[L.PAGEBLOCKS]!, s[L.CMA]!],
    [s[L.CMA]!, s[L.FREED_RING]!],
    [s[L.TABLES]!, s[L.TABLES]! + 4096 * s[L.NTABLES]!],
  ];
  if (m.config.content === "tags") ranges.push([s[L.TAGS]!, s[L.TAGS]! + 8 * n]);
  else ranges.push([s[L.FRAMES]!, s[L.FRAMES]! + 4096 * n]);
  const parts = ranges.map(([a, b]) => mem.slice(a, b));
  const out = new Uint8Array(parts.reduce((t, x) => t + x.length, 0));
  let at = 0;
  for (const x of parts) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}
