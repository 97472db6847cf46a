// migrate_longterm_unpinnable_folios: the pages a FOLL_LONGTERM pin may not hold (ZONE_MOVABLE,
// device-coherent memory; see folioIsLongtermPinnable in assembly/gup.ts) move to memory that
// can stay pinned, after every pin of the attempt was dropped. The caller then pins again.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { fail } from "../errors.js";
import { MAX_MIGRATE } from "../layout.js";
import { MEMORY_DEVICE_COHERENT } from "../device/pagemap.js";
import { MIGRATE_PFN_MIGRATE, migratePfnToPage } from "../migrate.js";

/** Pin-and-migrate rounds before a FOLL_LONGTERM pin gives up (the kernel loops while -EAGAIN). */
export const MAX_LONGTERM_ATTEMPTS = 8;

/**
 * Moves `pfns` (unpinned now) out: device-coherent pages to system memory of the process's node
 * (-EBUSY if one stays), the rest to ZONE_NORMAL of their own node (-ENOMEM if one stays).
 */
export function migrateUnpinnable(m: Machine, fn: string, proc: Process, pfns: number[]): void {
  const unique = [...new Set(pfns)];
  const coherent = unique.filter((pfn) => m.pagemapOf(pfn)?.type === MEMORY_DEVICE_COHERENT);
  const stuck = moveTo(m, coherent, () => proc.node);
  if (stuck >= 0) fail("EBUSY", fn, `device-coherent pfn ${stuck} could not be migrated to system memory for a long-term pin`, stuck);
  const movable = unique.filter((pfn) => m.pagemapOf(pfn) === undefined);
  const left = moveTo(m, movable, (pfn) => m.core.pageNodeId(pfn));
  if (left >= 0) fail("ENOMEM", fn, `pfn ${left} could not be migrated out of ZONE_MOVABLE for a long-term pin`, left);
}

/** migrate_device_pfns of `pfns` to non-movable system memory, node by node; the first pfn that stayed, or -1. */
function moveTo(m: Machine, pfns: number[], nodeOf: (pfn: number) => number): number {
  const byNode = new Map<number, number[]>();
  for (const pfn of pfns) {
    const node = nodeOf(pfn);
    const list = byNode.get(node);
    if (list) list.push(pfn);
    else byNode.set(node, [pfn]);
  }
  let stayed = -1;
  for (const [node, list] of byNode) {
    for (let off = 0; off < list.length; off += MAX_MIGRATE) {
      const batch = list.slice(off, off + MAX_MIGRATE);
      const mig = m.migrateDevicePfns(batch);
      if (mig.cpages > 0) mig.allocAndCopy({ node, movable: false });
      mig.finalize();
      const dst = mig.dst;
      batch.forEach((pfn, i) => {
        const moved = (mig.src[i]! & MIGRATE_PFN_MIGRATE) !== 0n && migratePfnToPage(dst[i]!) >= 0;
        if (!moved && stayed < 0) stayed = pfn;
      });
    }
  }
  return stayed;
}
