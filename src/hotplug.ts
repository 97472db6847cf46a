// Memory hot-unplug and hot-plug of system RAM (mm/memory_hotplug.c offline_pages and
// online_pages) over pageblock-aligned pfn ranges of one zone.
import type { Machine } from "./machine.js";
import { fail } from "./errors.js";
import { PAGEBLOCK_NR_PAGES } from "./config.js";
import type { ZoneLayout } from "./layout.js";
import { migrateRangeOut, scanRange, failuresOf, pageFailure } from "./isolation.js";
import { rangeError } from "./cma.js";

export interface OfflineResult {
  startPfn: number;
  nrPages: number;
  /** Pages migrated out of the range before it went offline. */
  migrated: number;
}

/** The zone holding [start, start + n), after the checks both directions share. */
function checkRange(m: Machine, fn: string, start: unknown, n: unknown): ZoneLayout {
  if (typeof start !== "number" || typeof n !== "number" || !Number.isInteger(start) || !Number.isInteger(n) || start < 0 || n < 1)
    fail("EINVAL", fn, `startPfn ${String(start)} and nrPages ${String(n)} must be integers, nrPages at least 1`, start);
  if (start % PAGEBLOCK_NR_PAGES || n % PAGEBLOCK_NR_PAGES)
    fail("EINVAL", fn, `pfns ${start}-${start + n} are not pageblock-aligned (${PAGEBLOCK_NR_PAGES} pages)`, start);
  // System RAM, and memory hot-plugged since (pmem onlined as RAM), is in the zone list.
  const zone = m.layout.zones.find((z) => start >= z.start && start + n <= z.end);
  if (!zone) {
    if (!m.layout.zones.some((z) => start < z.end && z.start < start + n))
      fail("EINVAL", fn, `pfns ${start}-${start + n} are not system RAM (${m.config.frames} frames, plus memory hot-plugged since)`, start);
    fail("EINVAL", fn, `pfns ${start}-${start + n} span more than one zone`, start);
  }
  return zone;
}

/**
 * offline_pages: takes [startPfn, startPfn + nrPages) away from the page allocator: its
 * pageblocks are isolated, every in-use page migrates out (to other memory of the node, or
 * other nodes), its free pages leave the free lists, and the zone's managed and present pages
 * shrink; no allocation can use the range until onlinePages. Fails with a PageFailureError
 * and a per-page report: EBUSY before anything is migrated for PG_reserved pages (the zero
 * page), unmovable kernel pages, hwpoisoned pages and CMA pageblocks; after migrating what
 * it could, EBUSY for pages held by extra references (pins) and ENOMEM when there was no
 * memory to move pages to. On failure the isolation is undone and nothing has changed except
 * that pages which moved stay moved (valid, contents intact).
 */
export function offlinePages(m: Machine, startPfn: number, nrPages: number): OfflineResult {
  const fn = "offline_pages";
  const zone = checkRange(m, fn, startPfn, nrPages);
  const end = startPfn + nrPages;
  if (m.core.rangeOfflineState(startPfn, end) !== 0) fail("EINVAL", fn, `pfns ${startPfn}-${end} are offline already (in part or whole)`, startPfn);
  m.enter(fn);
  try {
    // has_unmovable_pages, at isolation: pins are not seen there, only while migrating.
    const unmovable = failuresOf(m, scanRange(m, startPfn, end, true).filter((p) => p.kind !== "pinned" && p.kind !== "locked"), fn);
    if (unmovable.length > 0) throw rangeError(fn, `pfns ${startPfn}-${end} (nothing was migrated)`, unmovable);
    m.core.isolateRange(startPfn, end);
    let outcome;
    try {
      outcome = migrateRangeOut(m, startPfn, end, zone.node, fn, true);
    } catch (e) {
      m.core.undoIsolateRange(startPfn, end);
      throw e;
    }
    let failures = outcome.failures;
    if (failures.length === 0) {
      const bad = m.core.rangeFirstNotIsolated(startPfn, end);
      if (bad >= 0) failures = [pageFailure(bad, "migration")];
    }
    if (failures.length > 0) {
      m.core.undoIsolateRange(startPfn, end);
      throw rangeError(fn, `pfns ${startPfn}-${end}`, failures);
    }
    m.core.offlineIsolatedRange(startPfn, end);
    return { startPfn, nrPages, migrated: outcome.migrated };
  } finally {
    m.leave();
    m.settle();
  }
}

/** online_pages: an offline range (as offlinePages left it, in whole) becomes free movable memory of its zone again. */
export function onlinePages(m: Machine, startPfn: number, nrPages: number): void {
  const fn = "online_pages";
  checkRange(m, fn, startPfn, nrPages);
  const end = startPfn + nrPages;
  if (m.core.rangeOfflineState(startPfn, end) !== 2) fail("EINVAL", fn, `pfns ${startPfn}-${end} are not all offline`, startPfn);
  m.enter(fn);
  try {
    m.core.onlineRange(startPfn, end);
  } finally {
    m.leave();
  }
}
