// address_space: an index → page radix tree (3 levels of 512 slots from the table
// pool, 2^27 pages per object) for shmem objects and files.
import { mappingsBase, maxMappings, NONE } from "./layout";
import { allocTable, freeTable, tableAddr, entryTable, tableEntry, entryPresent, tableEmpty } from "./pagetable";
import { _PAGE_PRESENT, PTE_PFN_SHIFT, PTE_PFN_MASK } from "./pte";
import { statAdd, NR_RADIX_NODES } from "./stat";

export const MAPPING_RECORD: usize = 16;
const M_ROOT = 0;
const M_NRPAGES = 4;
const M_ALIVE = 8;
const M_SIZE = 12;
export const MAPPING_MAX_INDEX: u64 = (<u64>1 << 27) - 1;

@inline function mappingBase(id: u32): usize {
  assert(id < maxMappings, "mapping out of range");
  return mappingsBase + <usize>id * MAPPING_RECORD;
}
@inline export function mappingAlive(id: u32): bool { return id < maxMappings && load<u32>(mappingBase(id) + M_ALIVE) != 0; }
@inline export function mappingNrpages(id: u32): u32 { return load<u32>(mappingBase(id) + M_NRPAGES); }
@inline function mappingRoot(id: u32): u32 { return load<u32>(mappingBase(id) + M_ROOT); }

// i_size in pages: faults at or past it get SIGBUS, as shmem's do.
@inline export function mappingSize(id: u32): u32 { return load<u32>(mappingBase(id) + M_SIZE); }

// What an address_space caches: shmem pages (no backing store) or a file's pages.
export const MAPPING_SHMEM: u32 = 1;
export const MAPPING_FILE: u32 = 2;
@inline export function mappingKind(id: u32): u32 { return load<u32>(mappingBase(id) + M_ALIVE); }
@inline export function mappingIsFile(id: u32): bool { return id < maxMappings && load<u32>(mappingBase(id) + M_ALIVE) == MAPPING_FILE; }

export function mappingOpen(id: u32, sizePages: u32, kind: u32): void {
  store<u32>(mappingBase(id) + M_SIZE, sizePages);
  store<u32>(mappingBase(id) + M_ROOT, NONE);
  store<u32>(mappingBase(id) + M_NRPAGES, 0);
  store<u32>(mappingBase(id) + M_ALIVE, kind);
}

export function mappingSetSize(id: u32, sizePages: u32): void {
  store<u32>(mappingBase(id) + M_SIZE, sizePages);
}

export function mappingClose(id: u32): void {
  const root = mappingRoot(id);
  if (root != NONE) {
    freeTable(root);
    statAdd(NR_RADIX_NODES, -1);
  }
  store<u32>(mappingBase(id) + M_ROOT, NONE);
  store<u32>(mappingBase(id) + M_ALIVE, 0);
}

@inline function child(t: u32, idx: u32, alloc: bool): u32 {
  const slot = tableAddr(t) + (<usize>idx << 3);
  const e = load<u64>(slot);
  if (entryPresent(e)) return entryTable(e);
  if (!alloc) return NONE;
  const n = allocTable();
  if (n == NONE) return NONE;
  statAdd(NR_RADIX_NODES, 1);
  store<u64>(slot, tableEntry(n));
  return n;
}

// Address of the slot for `index`, or 0 (absent, or out of nodes when allocating).
export function mappingSlot(id: u32, index: u64, alloc: bool): usize {
  let root = mappingRoot(id);
  if (root == NONE) {
    if (!alloc) return 0;
    root = allocTable();
    if (root == NONE) return 0;
    statAdd(NR_RADIX_NODES, 1);
    store<u32>(mappingBase(id) + M_ROOT, root);
  }
  const mid = child(root, <u32>(index >> 18) & 511, alloc);
  if (mid == NONE) return 0;
  const leaf = child(mid, <u32>(index >> 9) & 511, alloc);
  if (leaf == NONE) return 0;
  return tableAddr(leaf) + (<usize>(<u32>index & 511) << 3);
}

export function mappingLookup(id: u32, index: u64): u32 {
  const slot = mappingSlot(id, index, false);
  if (slot == 0) return NONE;
  const e = load<u64>(slot);
  return e == 0 ? NONE : <u32>((e & PTE_PFN_MASK) >> PTE_PFN_SHIFT);
}

export function mappingStore(slot: usize, id: u32, pfn: u32): void {
  store<u64>(slot, (<u64>pfn << PTE_PFN_SHIFT) | _PAGE_PRESENT);
  store<u32>(mappingBase(id) + M_NRPAGES, mappingNrpages(id) + 1);
}

export function mappingErase(slot: usize, id: u32): void {
  store<u64>(slot, 0);
  store<u32>(mappingBase(id) + M_NRPAGES, mappingNrpages(id) - 1);
}

// Calls visit(pfn, index) for every cached page with index >= from, in order.
// Nodes left empty are freed when `prune` is set.
export function mappingForEach(id: u32, from: u64, visit: (slot: usize, pfn: u32, index: u64) => void, prune: bool): void {
  const root = mappingRoot(id);
  if (root == NONE) return;
  for (let a: u32 = <u32>(from >> 18); a < 512; a++) {
    const aSlot = tableAddr(root) + (<usize>a << 3);
    const aE = load<u64>(aSlot);
    if (!entryPresent(aE)) continue;
    const mid = entryTable(aE);
    for (let b: u32 = 0; b < 512; b++) {
      const bSlot = tableAddr(mid) + (<usize>b << 3);
      const bE = load<u64>(bSlot);
      if (!entryPresent(bE)) continue;
      const leaf = entryTable(bE);
      const base = (<u64>a << 18) | (<u64>b << 9);
      for (let c: u32 = 0; c < 512; c++) {
        const idx = base | <u64>c;
        if (idx < from) continue;
        const slot = tableAddr(leaf) + (<usize>c << 3);
        const e = load<u64>(slot);
        if (e != 0) visit(slot, <u32>((e & PTE_PFN_MASK) >> PTE_PFN_SHIFT), idx);
      }
      if (prune && tableEmpty(leaf)) {
        freeTable(leaf);
        statAdd(NR_RADIX_NODES, -1);
        store<u64>(bSlot, 0);
      }
    }
    if (prune && tableEmpty(mid)) {
      freeTable(mid);
      statAdd(NR_RADIX_NODES, -1);
      store<u64>(aSlot, 0);
    }
  }
}
