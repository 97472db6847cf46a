// The page-table side of move_pages, migrate_pages and mbind(MPOL_MF_MOVE) (mm/migrate.c,
// mm/mempolicy.c), a batch per call: look pages up by address, queue (isolate) the pages of a
// range that sit on the wrong nodes, then move a list through the pfn-list migration engine
// (migratePfnList) with destinations allocated per page by a memory policy.
import { nframes, NONE } from "./layout";
import { flagsOf, testFlag, setFlag, clearFlag, refOf, mapcountOf, indexOf, zoneOf, PG_locked, PG_lru, PGTY_buddy } from "./memmap";
import { zoneNode, ascendRuns } from "./alloc";
import { isZoneDevicePage } from "./device";
import { walkPte, pteTableBase, pteTableEnd } from "./pagetable";
import { ptePfn, pteSpecial, isSwapPte } from "./pte";
import { findVma, mmPgd, vmaFlags, VM_IO, VM_PFNMAP } from "./mm";
import { ZERO_PFN } from "./rmap";
import { runCopyAdd, runCopyFlush } from "./content";
import { allocPagesPolicy, MPOL_INTERLEAVE } from "./mempolicy";
import {
  selectSlot, saveSlot, srcAddr, dstAddr, migratePfnList, migratePfn, MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE, MIGRATE_PFN_SHIFT,
} from "./migrate";

const EFAULT: i32 = -14;
const ENOENT: i32 = -2;
const EAGAIN: i32 = -11;
const EBUSY: i32 = -16;
const EACCES: i32 = -13;
const ENOMEM: i32 = -12;
// A looked-up page mapped more than once (folio_maybe_mapped_shared), next to its node.
const NUMA_SHARED: i32 = 256;

const NUMA_MAX: u32 = 65536;
// Addresses in (as page numbers, f64), pfns and per-entry results out.
const numaVpns: usize = memory.data(<i32>NUMA_MAX * 8, 8);
const numaPfns: usize = memory.data(<i32>NUMA_MAX * 4, 4);
const numaOut: usize = memory.data(<i32>NUMA_MAX * 4, 4);
// move_pages: each address's status, and the address each queued page came from.
const numaStatus: usize = memory.data(<i32>NUMA_MAX * 4, 4);
const numaIdx: usize = memory.data(<i32>NUMA_MAX * 4, 4);
// queuePagesRange's results: pages on the wanted nodes, isolation failures, where it stopped.
const numaRes: usize = memory.data(16, 8);

export function numaVpnsPtr(): usize { return numaVpns; }
export function numaOutPtr(): usize { return numaOut; }
export function numaResultPtr(): usize { return numaRes; }
export function numaStatusPtr(): usize { return numaStatus; }

@inline function pfnAt(i: u32): u32 { return load<u32>(numaPfns + (<usize>i << 2)); }
@inline function setOut(i: u32, v: i32): void { store<i32>(numaOut + (<usize>i << 2), v); }

// do_pages_stat / add_folio_for_migration's look-up of one address of `mm`: the page's node
// (| NUMA_SHARED when mapped more than once) with its pfn in `lookedUp`, or -EFAULT (no VMA,
// or the zero page) or -ENOENT (nothing present, or device memory).
let lookedUp: u32 = 0;

function lookUp(mm: u32, vpn: u64): i32 {
  if (findVma(mm, vpn) == 0) return EFAULT;
  const ptep = walkPte(mmPgd(mm), vpn, false);
  const pte = ptep == 0 ? 0 : load<u64>(ptep);
  if (pte == 0 || isSwapPte(pte)) return ENOENT;
  const pfn = ptePfn(pte);
  if (pteSpecial(pte)) return pfn == ZERO_PFN ? EFAULT : ENOENT;
  if (pfn >= nframes || isZoneDevicePage(pfn)) return ENOENT;
  lookedUp = pfn;
  return <i32>zoneNode(zoneOf(pfn)) | (mapcountOf(pfn) > 1 ? NUMA_SHARED : 0);
}

// do_pages_stat: each of the n addresses' node, or -errno, into the status array.
export function doPagesStat(mm: u32, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const r = lookUp(mm, <u64>load<f64>(numaVpns + (<usize>i << 3)));
    store<i32>(numaStatus + (<usize>i << 2), r < 0 ? r : r & 0xff);
  }
}

// do_pages_move's look-up and isolation for n addresses bound for `node`: a page already there
// has the node as its status, one mapped more than once (unless `moveAll`) -EACCES, one that
// cannot be isolated (met before in this batch) -EBUSY; the rest are isolated (PG_lru cleared)
// into the pfn list. Returns how many; storeMoveStatus fills in their status after the move.
export function addPagesForMigration(mm: u32, n: u32, node: u32, moveAll: bool): u32 {
  let q: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const vpn = <u64>load<f64>(numaVpns + (<usize>i << 3));
    // vma_migratable: VM_IO and VM_PFNMAP mappings have no pages to move.
    const v = findVma(mm, vpn);
    let r = v != 0 && (vmaFlags(v) & (VM_IO | VM_PFNMAP)) != 0 ? EFAULT : lookUp(mm, vpn);
    if (r >= 0) {
      const pfn = lookedUp;
      if (<u32>(r & 0xff) == node) {
        r = <i32>node;
      } else if ((r & NUMA_SHARED) != 0 && !moveAll) {
        r = EACCES;
      } else if (!testFlag(pfn, PG_lru)) {
        r = EBUSY;
      } else {
        clearFlag(pfn, PG_lru);
        store<u32>(numaPfns + (<usize>q << 2), pfn);
        store<u32>(numaIdx + (<usize>q << 2), i);
        q++;
        continue;
      }
    }
    store<i32>(numaStatus + (<usize>i << 2), r);
  }
  return q;
}

// After addPagesForMigration's q pages went through a batch: each one's status is `node` if it
// moved, -ENOMEM, or -EAGAIN when it was busy (locked or pinned: worth a retry). Returns
// how many are busy.
export function storeMoveStatus(q: u32, node: u32): u32 {
  let busy: u32 = 0;
  for (let k: u32 = 0; k < q; k++) {
    const o = load<i32>(numaOut + (<usize>k << 2));
    const s: i32 = o == 0 ? <i32>node : o == ENOMEM ? ENOMEM : EAGAIN;
    if (s == EAGAIN) busy++;
    store<i32>(numaStatus + (<usize>load<u32>(numaIdx + (<usize>k << 2)) << 2), s);
  }
  return busy;
}

// queue_pages_range over [lo, hi) of `mm`: present pages on a node of `wantMask` count as
// misplaced; unless `moveAll`, pages mapped more than once stay (not a failure); the rest
// are isolated (PG_lru cleared; one already off the LRU fails) into the pfn list from `at`,
// until `cap` entries are there. cap = 0 only counts. Returns entries added; the result
// block holds the misplaced and failed counts and the page number it stopped at.
export function queuePagesRange(mm: u32, lo: f64, hi: f64, wantMask: u32, moveAll: bool, at: u32, cap: u32): u32 {
  const pgd = mmPgd(mm);
  const end = <u64>hi;
  let v = <u64>lo;
  let misplaced: u32 = 0;
  let failed: u32 = 0;
  let k = at;
  while (v < end) {
    const pt = pteTableBase(pgd, v);
    const stop = min<u64>(pteTableEnd, end);
    if (pt == 0) { v = stop; continue; }
    for (; v < stop; v++) {
      const pte = load<u64>(pt + (<usize>(<u32>v & 511) << 3));
      if (pte == 0 || isSwapPte(pte) || pteSpecial(pte)) continue;
      const pfn = ptePfn(pte);
      if (pfn >= nframes || isZoneDevicePage(pfn)) continue;
      if ((wantMask & (1 << zoneNode(zoneOf(pfn)))) == 0) continue;
      misplaced++;
      if (cap == 0 || (!moveAll && mapcountOf(pfn) > 1)) continue;
      if (!testFlag(pfn, PG_lru)) {
        failed++;
        continue;
      }
      clearFlag(pfn, PG_lru);
      store<u32>(numaPfns + (<usize>k << 2), pfn);
      k++;
      if (k >= cap) {
        v++;
        store<u32>(numaRes, misplaced);
        store<u32>(numaRes + 4, failed);
        store<f64>(numaRes + 8, <f64>v);
        return k - at;
      }
    }
  }
  store<u32>(numaRes, misplaced);
  store<u32>(numaRes + 4, failed);
  store<f64>(numaRes + 8, hi);
  return k - at;
}

// putback_movable_pages: queued pages still in use go back on the LRU.
export function putbackMovablePages(n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = pfnAt(i);
    if (refOf(pfn) > 0 && (flagsOf(pfn) & (1 << PGTY_buddy)) == 0) setFlag(pfn, PG_lru);
  }
}

// Collects the n pages of the pfn list into migration slot `slot` (migrate_device_pfns).
export function migrateQueuedSetup(slot: u32, n: u32): u32 {
  selectSlot(slot);
  const src = srcAddr();
  for (let i: u32 = 0; i < n; i++) store<u64>(src + (<usize>i << 3), migratePfn(pfnAt(i)));
  const r = migratePfnList(n, true);
  saveSlot();
  return r;
}

const allocIdx: usize = memory.data(<i32>NUMA_MAX * 4, 4);
const allocPfn: usize = memory.data(<i32>NUMA_MAX * 4, 4);

// The destinations of a collected slot, page by page where the policy (mode, nodes, the
// caller's node, interleave by the source's index) puts them, locked and filled from the
// sources; like migrate_pages, the first allocation that fails ends the allocating.
// Returns pages allocated.
export function migrateAllocCopyPolicy(slot: u32, n: u32, mode: u32, nodes: u32, local: u32): u32 {
  selectSlot(slot);
  const src = srcAddr();
  const dst = dstAddr();
  let k: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const e = load<u64>(src + (<usize>i << 3));
    if ((e & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) != (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID)) continue;
    const s = <u32>(e >> MIGRATE_PFN_SHIFT);
    const d = allocPagesPolicy(mode, nodes, local, mode == MPOL_INTERLEAVE ? indexOf(s) : 0);
    if (d == NONE) break;
    store<u32>(allocIdx + (<usize>k << 2), i);
    store<u32>(allocPfn + (<usize>k << 2), d);
    k++;
  }
  ascendRuns(allocPfn, k);
  // Runs of consecutive sources and destinations go in one copy.
  for (let j: u32 = 0; j < k; j++) {
    const i = load<u32>(allocIdx + (<usize>j << 2));
    const d = load<u32>(allocPfn + (<usize>j << 2));
    const e = load<u64>(src + (<usize>i << 3));
    const s = <u32>(e >> MIGRATE_PFN_SHIFT);
    setFlag(d, PG_locked);
    store<u64>(dst + (<usize>i << 3), migratePfn(d) | (e & MIGRATE_PFN_WRITE));
    runCopyAdd(d, s);
  }
  runCopyFlush();
  return k;
}


// What became of each entry of a finalized slot: 0 moved; -EAGAIN the page was locked by
// someone else and -EBUSY it held extra references (both worth a retry); -ENOMEM no page
// could be allocated for it.
export function migrateQueuedOutcome(slot: u32, n: u32): void {
  selectSlot(slot);
  const src = srcAddr();
  const dst = dstAddr();
  for (let i: u32 = 0; i < n; i++) {
    const e = load<u64>(src + (<usize>i << 3));
    const d = load<u64>(dst + (<usize>i << 3));
    if ((e & MIGRATE_PFN_VALID) == 0) setOut(i, testFlag(pfnAt(i), PG_locked) ? EAGAIN : EBUSY);
    else if ((d & MIGRATE_PFN_VALID) == 0) setOut(i, ENOMEM);
    else if ((e & MIGRATE_PFN_MIGRATE) == 0) setOut(i, EAGAIN);
    else setOut(i, 0);
  }
}
