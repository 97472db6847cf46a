// Eviction of a device range back to system memory (what dmirror's release and
// memunmap_pages do): migrate_device_range, system pages with the contents copied,
// migrate_device_pages, migrate_device_finalize, in batches.
import type { Machine } from "../machine.js";
import type { DevPagemap } from "./pagemap.js";
import { migrateDeviceRange } from "../migrate.js";
import { MAX_MIGRATE } from "../layout.js";

/** Moves every in-use page of `pg` to system memory; returns how many stayed (pinned, locked, no memory). */
export function evictDevicePages(m: Machine, pg: DevPagemap, first = pg.start, count = pg.nrPages): number {
  for (let at = first; at < first + count; at += MAX_MIGRATE) {
    const n = Math.min(MAX_MIGRATE, first + count - at);
    const mig = migrateDeviceRange(m, at, n);
    if (mig.cpages > 0) mig.allocAndCopy({ node: pg.node });
    mig.finalize();
  }
  let left = 0;
  for (let pfn = first; pfn < first + count; pfn++) if (m.core.pageRefcount(pfn) > 0) left++;
  return left;
}
