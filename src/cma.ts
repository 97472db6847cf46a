// The Contiguous Memory Allocator (mm/cma.c): areas of pageblocks reserved at boot as
// MIGRATE_CMA. Movable allocations may use their free pages; cmaAlloc takes a contiguous run
// of an area back by migrating those pages out (alloc_contig_range), and cmaRelease frees it.
import type { Machine } from "./machine.js";
import { fail } from "./errors.js";
import { L, CMA_RECORD, CMA_BITMAP_OFFSET } from "./layout.js";
import { PAGEBLOCK_NR_PAGES } from "./config.js";
import { PageFailureError, migrateRangeOut, pageFailure, type PageFailure } from "./isolation.js";

export interface CmaAreaInfo {
  /** Its index in the configuration's `cma` list: the `area` of cmaAlloc/cmaRelease. */
  index: number;
  node: number;
  zone: "normal" | "movable";
  base: number;
  pages: number;
  /** Pages allocated by cmaAlloc and not released. */
  allocated: number;
}

/** Writes the area table the core reads (before init: the core sets the areas' pageblocks to MIGRATE_CMA). */
export function writeCmaTable(m: Machine): void {
  const base = m.layout.slots[L.CMA]! / 4;
  const areas = m.config.cma;
  m.u32[base] = areas.length;
  let bit = 0;
  areas.forEach((a, i) => {
    const w = base + (16 + i * CMA_RECORD) / 4;
    m.u32[w] = a.base;
    m.u32[w + 1] = a.pages;
    m.u32[w + 2] = a.zoneId;
    m.u32[w + 3] = bit;
    bit += a.pages;
  });
}

/** cma->bitmap of area `a`: one bit per page, set while allocated. */
class Bitmap {
  private readonly bytes: Uint8Array;
  private readonly first: number;

  constructor(m: Machine, a: number) {
    this.bytes = new Uint8Array(m.core.memory.buffer, m.layout.slots[L.CMA]! + CMA_BITMAP_OFFSET);
    this.first = m.config.cma.slice(0, a).reduce((s, x) => s + x.pages, 0);
  }

  test(i: number): boolean {
    const bit = this.first + i;
    return (this.bytes[bit >> 3]! & (1 << (bit & 7))) !== 0;
  }

  set(i: number, n: number, on: boolean): void {
    for (let k = i; k < i + n; k++) {
      const bit = this.first + k;
      if (on) this.bytes[bit >> 3]! |= 1 << (bit & 7);
      else this.bytes[bit >> 3]! &= ~(1 << (bit & 7));
    }
  }

  /** bitmap_find_next_zero_area_off: the first clear run of n bits at or after `from` whose pfn is aligned. */
  findFree(from: number, n: number, pages: number, base: number, align: number): number {
    for (let i = from; i + n <= pages; i++) {
      if ((base + i) % align !== 0) {
        i += align - ((base + i) % align) - 1;
        continue;
      }
      let k = 0;
      while (k < n && !this.test(i + k)) k++;
      if (k === n) return i;
      i += k;
    }
    return -1;
  }
}

function area(m: Machine, fn: string, a: unknown): number {
  const n = m.config.cma.length;
  if (typeof a !== "number" || !Number.isInteger(a) || a < 0 || a >= n)
    fail("EINVAL", fn, n === 0 ? "the machine has no CMA areas (configure cma)" : `CMA area ${String(a)} does not exist (the machine has ${n})`, a);
  return a;
}

export function cmaAreas(m: Machine): CmaAreaInfo[] {
  return m.config.cma.map((a, index) => {
    const bits = new Bitmap(m, index);
    let allocated = 0;
    for (let i = 0; i < a.pages; i++) if (bits.test(i)) allocated++;
    return { index, node: a.node, zone: a.zone, base: a.base, pages: a.pages, allocated };
  });
}

/**
 * cma_alloc: `count` contiguous pages of area `a`, the first pfn aligned to 2^align pages.
 * Tries each free aligned run of the area in turn, as the kernel does while runs are busy:
 * isolates the run's pageblocks, migrates the movable pages out of it, and takes the pages
 * (each allocated, one reference, not movable). Returns the first pfn. Throws a
 * PageFailureError: EBUSY when every run held pages that cannot move (pinned, unmovable),
 * ENOMEM when no free run was left or no memory to move the pages to; isolation undone and
 * every page as before, except pages that moved (they stay valid, contents intact).
 */
export function cmaAlloc(m: Machine, a: number, count: number, align = 0): number {
  const fn = "cma_alloc";
  area(m, fn, a);
  const spec = m.config.cma[a]!;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > spec.pages)
    fail("EINVAL", fn, `count ${String(count)} must be an integer in [1, ${spec.pages}] (the area's size)`, count);
  if (typeof align !== "number" || !Number.isInteger(align) || align < 0 || align > 30)
    fail("EINVAL", fn, `align ${String(align)} must be an order in [0, 30]`, align);
  m.enter(fn);
  try {
    const bits = new Bitmap(m, a);
    const step = 2 ** align;
    let last: PageFailureError | null = null;
    for (let i = bits.findFree(0, count, spec.pages, spec.base, step); i >= 0; i = bits.findFree(i + step, count, spec.pages, spec.base, step)) {
      const pfn = spec.base + i;
      const failures = allocContigRange(m, pfn, pfn + count, spec.node);
      if (failures.length === 0) {
        bits.set(i, count, true);
        m.core.cmaCount(1);
        return pfn;
      }
      last = rangeError(fn, `pfns ${pfn}-${pfn + count} of CMA area ${a}`, failures);
      if (last.code !== "EBUSY") break;
    }
    m.core.cmaCount(0);
    throw last ?? new PageFailureError("ENOMEM", fn, `CMA area ${a} has no free run of ${count} pages aligned to ${step} pages`, []);
  } finally {
    m.leave();
  }
}

/** The error for a range whose pages could not all move: EBUSY unless only memory was lacking. */
export function rangeError(fn: string, what: string, failures: PageFailure[]): PageFailureError {
  const code = failures.every((f) => f.code === "ENOMEM") ? "ENOMEM" : "EBUSY";
  const shown = failures.slice(0, 3).map((f) => f.reason).join("; ");
  const more = failures.length > 3 ? `; and ${failures.length - 3} more` : "";
  return new PageFailureError(code, fn, `${failures.length} page(s) of ${what} could not move: ${shown}${more}`, failures);
}

/**
 * alloc_contig_range(MIGRATE_CMA) for [start, end) of one zone: the pageblocks around it are
 * isolated, its in-use pages migrated out, and once all are free its pages taken. Returns
 * what could not move (then the isolation is undone and no page is taken).
 */
function allocContigRange(m: Machine, start: number, end: number, node: number): PageFailure[] {
  const outerStart = Math.floor(start / PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES;
  const outerEnd = Math.ceil(end / PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES;
  m.core.isolateRange(outerStart, outerEnd);
  let failures: PageFailure[];
  try {
    failures = migrateRangeOut(m, start, end, node, "cma_alloc", false).failures;
  } catch (e) {
    m.core.undoIsolateRange(outerStart, outerEnd);
    throw e;
  }
  if (failures.length === 0) {
    const bad = m.core.allocIsolatedRange(start, end, outerStart, outerEnd);
    if (bad < 0) return [];
    failures = [pageFailure(bad, "migration")];
  }
  m.core.undoIsolateRange(outerStart, outerEnd);
  return failures;
}

/**
 * cma_release: frees `count` pages from `pfn`, which cmaAlloc gave out from area `a`. Each
 * page loses one reference (a page someone else still holds is freed by their last put).
 * EINVAL, nothing changed, for pages outside the area or not allocated (a double release).
 */
export function cmaRelease(m: Machine, a: number, pfn: number, count: number): void {
  const fn = "cma_release";
  area(m, fn, a);
  const spec = m.config.cma[a]!;
  if (typeof pfn !== "number" || typeof count !== "number" || !Number.isInteger(pfn) || !Number.isInteger(count) || count < 1)
    fail("EINVAL", fn, `pfn ${String(pfn)} and count ${String(count)} must be integers, count at least 1`, pfn);
  if (pfn < spec.base || pfn + count > spec.base + spec.pages)
    fail("EINVAL", fn, `pfns ${pfn}-${pfn + count} are not inside CMA area ${a} (${spec.base}-${spec.base + spec.pages})`, pfn);
  const bits = new Bitmap(m, a);
  for (let i = pfn - spec.base; i < pfn - spec.base + count; i++) {
    if (!bits.test(i)) fail("EINVAL", fn, `pfn ${spec.base + i} is not allocated from CMA area ${a} (released twice, or never allocated)`, spec.base + i);
    if (m.core.pageRefcount(spec.base + i) <= 0) fail("EINVAL", fn, `pfn ${spec.base + i} is free already (a put_page too many)`, spec.base + i);
  }
  m.enter(fn);
  try {
    bits.set(pfn - spec.base, count, false);
    m.core.releaseRange(pfn, count);
  } finally {
    m.leave();
  }
}
