// Reclaim of lazily-freed (MADV_FREE) anon pages under memory pressure: pages still
// clean are discarded, pages written again since become ordinary anon pages.
import { maxMms } from "./layout";
import { mmAlive, mmHasNotifiers, mmNvmas, vmaAddr, vmaStart, vmaEnd, vmaFlags, VM_SHARED } from "./mm";
import { rangeOp, rangeCount, lazyfreePending, setReclaimTarget, RANGE_RECLAIM_LAZYFREE } from "./ptrange";

export function reclaimLazyfree(want: u32): u32 {
  if (lazyfreePending == 0) return 0;
  let freed: u32 = 0;
  for (let mm: u32 = 0; mm < maxMms && freed < want; mm++) {
    // Unmapping pages of an mm that interval notifiers watch would need them told first.
    if (!mmAlive(mm) || mmHasNotifiers(mm)) continue;
    const n = mmNvmas(mm);
    for (let i: u32 = 0; i < n && freed < want; i++) {
      const v = vmaAddr(mm, i);
      if (vmaFlags(v) & VM_SHARED) continue;
      setReclaimTarget(want - freed);
      rangeOp(mm, vmaStart(v), vmaEnd(v), RANGE_RECLAIM_LAZYFREE, 0, 0);
      freed += rangeCount;
    }
  }
  return freed;
}
