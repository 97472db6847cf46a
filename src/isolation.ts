// Moving every in-use page out of a pfn range (mm/page_isolation.c and the migration loops of
// alloc_contig_range and offline_pages), for CMA allocation and memory offline: the core
// classifies and collects the range's pages, the migration engine (MigrateVma over
// migratePfnList) moves the movable ones to memory outside the range, and what cannot move
// comes back page by page with the kernel's errno and the reason.
import type { Machine } from "./machine.js";
import { MmError, fail, type ErrnoName } from "./errors.js";
import { MigrateVma } from "./migrate.js";

/** Why a page of a range could not move. */
export type PageFailureKind = "reserved" | "unmovable" | "pinned" | "hwpoison" | "locked" | "cma" | "nomem" | "migration";

/** One page a CMA allocation or a memory offline could not move out of its range. */
export interface PageFailure {
  pfn: number;
  /** What it makes the operation fail with: -EBUSY, or -ENOMEM when no page was left to move it to. */
  errno: number;
  code: "EBUSY" | "ENOMEM";
  kind: PageFailureKind;
  /** For "pinned": references beyond its mappings and the page cache. */
  extraRefs?: number;
  reason: string;
}

/** An MmError that carries the per-page report of what could not move. */
export class PageFailureError extends MmError {
  readonly failures: readonly PageFailure[];

  constructor(code: ErrnoName, fn: string, sentence: string, failures: readonly PageFailure[]) {
    super(code, fn, sentence, failures);
    this.name = "PageFailureError";
    this.failures = failures;
  }
}

// The core's CANNOT_* codes (assembly/isolation.ts), by number.
const KINDS: (PageFailureKind | null)[] = [null, "reserved", "unmovable", "pinned", "hwpoison", "locked", "cma"];

export function pageFailure(pfn: number, kind: PageFailureKind, extraRefs = 0): PageFailure {
  const code = kind === "nomem" ? "ENOMEM" : "EBUSY";
  const reason = {
    reserved: `pfn ${pfn} is reserved (PG_reserved): the kernel owns it`,
    unmovable: `pfn ${pfn} is an unmovable kernel page (in use, held by no mapping or page cache)`,
    pinned: `pfn ${pfn} is held by ${extraRefs} reference(s) beyond its mappings and the page cache (pinned)`,
    hwpoison: `pfn ${pfn} is hwpoisoned`,
    locked: `pfn ${pfn} is locked by someone else`,
    cma: `the pageblock at pfn ${pfn} belongs to a CMA area, which memory offline refuses`,
    nomem: `pfn ${pfn} could not move: no free page outside the range was left to move it to`,
    migration: `pfn ${pfn} did not migrate (its references changed while it moved)`,
  }[kind];
  const f: PageFailure = { pfn, errno: code === "ENOMEM" ? -12 : -16, code, kind, reason };
  if (kind === "pinned") f.extraRefs = extraRefs;
  return f;
}

/**
 * The one place that decides about pages that cannot move because they carry references
 * beyond their mappings and the page cache (pins, get_page holders). Compaction, CMA
 * allocation and memory offline all bring such pages here, `caller` naming which; no one can
 * move them, so each is reported -EBUSY. Holds of pin control subsystems (seed 003) are not
 * extra references: those pages migrate, their holders asked first (src/pin/pinpage.ts).
 */
export function resolveExtraRefs(m: Machine, pfns: readonly number[], caller: string): PageFailure[] {
  return pfns.map((pfn) => pageFailure(pfn, "pinned", m.core.pageExtraRefs(pfn)));
}

/** Pages classified and collected per core call (assembly/isolation.ts PROBLEMS_MAX). */
export const RANGE_CHUNK = 4096;
/** Migration passes over a range before what stays is reported (__alloc_contig_migrate_range retries). */
const PASSES = 3;

const SCAN_CLASSIFY = 0;
const SCAN_COLLECT = 1;
const SCAN_LIST_ALL = 2;

/** An in-use page of a range, and why it cannot move (null: it can). */
export interface Problem {
  pfn: number;
  kind: PageFailureKind | null;
}

function readProblems(m: Machine): Problem[] {
  const n = m.core.rangeProblems();
  const v = new Uint32Array(m.core.memory.buffer, m.core.problemsBase(), 2 * n);
  const out: Problem[] = [];
  for (let i = 0; i < n; i++) out.push({ pfn: v[2 * i]!, kind: KINDS[v[2 * i + 1]!] ?? null });
  return out;
}

/** Classifies [start, end): its pages that cannot move; with `all`, the movable ones too. */
export function scanRange(m: Machine, start: number, end: number, offline: boolean, all = false): Problem[] {
  const out: Problem[] = [];
  for (let c = start; c < end; c += RANGE_CHUNK) {
    m.core.rangeCollect(0, c, Math.min(end, c + RANGE_CHUNK), all ? SCAN_LIST_ALL : SCAN_CLASSIFY, offline ? 1 : 0);
    out.push(...readProblems(m));
  }
  return out;
}

/** Turns problems into failures; pinned pages go through resolveExtraRefs. */
export function failuresOf(m: Machine, problems: Problem[], caller: string): PageFailure[] {
  const pinned = problems.filter((p) => p.kind === "pinned").map((p) => p.pfn);
  const held = new Map(resolveExtraRefs(m, pinned, caller).map((f) => [f.pfn, f]));
  const out: PageFailure[] = [];
  for (const p of problems) {
    if (p.kind === "pinned") {
      const f = held.get(p.pfn);
      if (f) out.push(f);
    } else if (p.kind) {
      out.push(pageFailure(p.pfn, p.kind));
    }
  }
  return out;
}

export interface RangeOutcome {
  /** Pages migrated out of the range. */
  migrated: number;
  /** What could not move (empty: every page of the range is free now). */
  failures: PageFailure[];
}

/**
 * Migrates every in-use page of [start, end), whose pageblocks the caller isolated, to
 * memory outside it (a movable allocation from `node`'s zonelist: the range's own free pages
 * are out of reach), pass after pass while pages keep moving. Pages that cannot move stop it
 * after the pass that found them (the others of that pass still move, as in the kernel).
 */
export function migrateRangeOut(m: Machine, start: number, end: number, node: number, caller: string, offline: boolean): RangeOutcome {
  let migrated = 0;
  let short = false;
  for (let pass = 0; pass < PASSES; pass++) {
    const problems: Problem[] = [];
    let seen = 0;
    let moved = 0;
    short = false;
    for (let c = start; c < end; c += RANGE_CHUNK) {
      const r = migrateChunk(m, c, Math.min(end, c + RANGE_CHUNK), node, offline);
      problems.push(...r.problems);
      seen += r.seen;
      moved += r.moved;
      short ||= r.short;
    }
    migrated += moved;
    const failures = failuresOf(m, problems, caller);
    if (failures.length > 0) return { migrated, failures };
    if (seen === 0) return { migrated, failures: [] };
    if (moved === 0) break;
  }
  // Movable pages that stayed: nothing was left to move them to, or their migration failed.
  const left = scanRange(m, start, end, offline, true);
  const failures = failuresOf(m, left, caller);
  for (const p of left) if (!p.kind) failures.push(pageFailure(p.pfn, short ? "nomem" : "migration"));
  return { migrated, failures };
}

function migrateChunk(m: Machine, start: number, end: number, node: number, offline: boolean): { problems: Problem[]; seen: number; moved: number; short: boolean } {
  const slot = m.migrations.indexOf(null);
  if (slot < 0) fail("EBUSY", "migrate_pages", `${m.migrations.length} migrations are in flight on this machine already`, m.migrations.length);
  const cpages = m.core.rangeCollect(slot, start, end, SCAN_COLLECT, offline ? 1 : 0);
  const seen = m.core.rangeMovable();
  const problems = readProblems(m);
  if (seen === 0) return { problems, seen, moved: 0, short: false };
  const mig = new MigrateVma(m, slot, seen, cpages, null, null);
  mig.pinpage = true;
  m.migrations[slot] = mig;
  const before = m.counters().pgmigrate_success;
  let short = false;
  try {
    m.notifyOtherMappings(slot, null);
    short = mig.allocAndCopy({ node, movable: true }, { holes: false }) < cpages;
    mig.finalize();
  } finally {
    if (!mig.finished) mig.abort();
  }
  return { problems, seen, moved: m.counters().pgmigrate_success - before, short };
}
