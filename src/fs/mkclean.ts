// folio_mkclean's mmu notifier calls for a writeback batch: writeback write-protects every
// shared mapping of the pages it cleans, and a device mirroring such a mapping (an interval
// notifier) must lose its writable copy too (MMU_NOTIFY_PROTECTION_PAGE), or its next write
// would reach the page without dirtying it and the next writeback would miss it.
import type { Machine } from "../machine.js";
import { PAGE_SIZE, VM_SHARED } from "../constants.js";
import { MMU_NOTIFY_PROTECTION_PAGE } from "../hmm/notifier.js";
import type { Inode } from "./inode.js";

/** Tells the notifiers of every shared mapping of `inode` about the batch's pages (`wb`: index, pfn pairs). */
export function mkcleanNotify(m: Machine, inode: Inode, wb: Uint32Array, n: number): void {
  for (const p of m.liveProcesses) {
    if (!p.subscriptions) continue;
    for (const v of p.vmaList()) {
      if (v.file !== inode || !(v.flags & VM_SHARED)) continue;
      // Runs of consecutive indices become one range each.
      let runStart = -1;
      let runEnd = -1;
      for (let i = 0; i < n; i++) {
        const index = wb[2 * i]!;
        if (index < v.pgoff || index >= v.pgoff + (v.end - v.start)) continue;
        const vpn = v.start + (index - v.pgoff);
        if (vpn === runEnd) {
          runEnd++;
          continue;
        }
        if (runStart >= 0) p.notify(runStart * PAGE_SIZE, runEnd * PAGE_SIZE, MMU_NOTIFY_PROTECTION_PAGE);
        runStart = vpn;
        runEnd = vpn + 1;
      }
      if (runStart >= 0) p.notify(runStart * PAGE_SIZE, runEnd * PAGE_SIZE, MMU_NOTIFY_PROTECTION_PAGE);
    }
  }
}
