// mm_struct slots and their VMA tables. TypeScript owns the VMA list (split,
// merge, placement) and publishes it here sorted by start; the fault path looks it up.
import { mmsBase, maxMms, vmasBase, maxVmas, NONE } from "./layout";

export const MM_RECORD: usize = 64;
const MM_PGD = 0;
const MM_ALIVE = 4;
const MM_NVMAS = 8;
const MM_NODE = 12;
const MM_RSS_ANON = 16;
const MM_RSS_SHMEM = 20;
const MM_HAS_NOTIFIERS = 24;
const MM_HAS_PINNED = 28;
// The task's memory policy (set_mempolicy): MPOL_* mode and nodemask.
const MM_MPOL_MODE = 32;
const MM_MPOL_NODES = 36;

export const VMA_RECORD: usize = 48;
const VMA_START = 0;
const VMA_END = 8;
const VMA_PGOFF = 16;
const VMA_FLAGS = 24;
const VMA_BACKING = 28;
// vm_policy (mbind): MPOL_* mode and nodemask; MPOL_DEFAULT falls back to the task's.
const VMA_MPOL_MODE = 32;
const VMA_MPOL_NODES = 36;
// vm_file: the file a mapping maps (its address_space id), NONE for anonymous memory.
// A shared file mapping's backing is the file too; a private one's is its anon_vma.
const VMA_FILE = 40;

// vm_flags, with the kernel's values.
export const VM_READ: u32 = 0x1;
export const VM_WRITE: u32 = 0x2;
export const VM_EXEC: u32 = 0x4;
export const VM_SHARED: u32 = 0x8;
export const VM_MAYREAD: u32 = 0x10;
export const VM_MAYWRITE: u32 = 0x20;
export const VM_MAYEXEC: u32 = 0x40;
export const VM_MAYSHARE: u32 = 0x80;
export const VM_PFNMAP: u32 = 0x400;
export const VM_LOCKED: u32 = 0x2000;
export const VM_IO: u32 = 0x4000;
export const VM_DONTEXPAND: u32 = 0x40000;
export const VM_MIXEDMAP: u32 = 0x10000000;
export const VM_ACCESS_FLAGS: u32 = VM_READ | VM_WRITE | VM_EXEC;

@inline export function mmBase(mm: u32): usize {
  assert(mm < maxMms, "mm out of range");
  return mmsBase + <usize>mm * MM_RECORD;
}
@inline export function mmPgd(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_PGD); }
@inline export function mmAlive(mm: u32): bool { return mm < maxMms && load<u32>(mmBase(mm) + MM_ALIVE) != 0; }
@inline export function mmNvmas(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_NVMAS); }
@inline export function mmNode(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_NODE); }
// Set while interval notifiers watch the mm: PTE changes inside a fault must be announced first.
@inline export function mmHasNotifiers(mm: u32): bool { return load<u32>(mmBase(mm) + MM_HAS_NOTIFIERS) != 0; }
export function setMmHasNotifiers(mm: u32, v: bool): void { store<u32>(mmBase(mm) + MM_HAS_NOTIFIERS, v ? 1 : 0); }
// MMF_HAS_PINNED: the mm has had pages pinned (FOLL_PIN), so fork copies maybe-pinned pages.
@inline export function mmHasPinned(mm: u32): bool { return load<u32>(mmBase(mm) + MM_HAS_PINNED) != 0; }
export function setMmHasPinned(mm: u32): void { store<u32>(mmBase(mm) + MM_HAS_PINNED, 1); }
@inline export function mmRssAnon(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_RSS_ANON); }
@inline export function mmRssShmem(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_RSS_SHMEM); }
@inline export function addMmRss(mm: u32, anon: bool, n: i32): void {
  const p = mmBase(mm) + (anon ? MM_RSS_ANON : MM_RSS_SHMEM);
  store<u32>(p, <u32>(<i32>load<u32>(p) + n));
}

@inline export function mmPolicyMode(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_MPOL_MODE); }
@inline export function mmPolicyNodes(mm: u32): u32 { return load<u32>(mmBase(mm) + MM_MPOL_NODES); }
export function setMmPolicy(mm: u32, mode: u32, nodes: u32): void {
  store<u32>(mmBase(mm) + MM_MPOL_MODE, mode);
  store<u32>(mmBase(mm) + MM_MPOL_NODES, nodes);
}

export function mmInit(mm: u32, pgd: u32, node: u32): void {
  mmReset(mm);
  store<u32>(mmBase(mm) + MM_PGD, pgd);
  store<u32>(mmBase(mm) + MM_NODE, node);
  store<u32>(mmBase(mm) + MM_ALIVE, 1);
}

export function setMmNvmas(mm: u32, n: u32): void {
  vmacacheInvalidate();
  store<u32>(mmBase(mm) + MM_NVMAS, n);
}

export function mmReset(mm: u32): void {
  vmacacheInvalidate();
  memory.fill(mmBase(mm), 0, MM_RECORD);
  store<u32>(mmBase(mm) + MM_PGD, NONE);
}

@inline export function vmaAddr(mm: u32, i: u32): usize {
  assert(i < maxVmas, "vma index out of range");
  return vmasBase + (<usize>mm * <usize>maxVmas + <usize>i) * VMA_RECORD;
}
@inline export function vmaStart(v: usize): u64 { return load<u64>(v + VMA_START); }
@inline export function vmaEnd(v: usize): u64 { return load<u64>(v + VMA_END); }
@inline export function vmaPgoff(v: usize): u64 { return load<u64>(v + VMA_PGOFF); }
@inline export function vmaFlags(v: usize): u32 { return load<u32>(v + VMA_FLAGS); }
@inline export function vmaBacking(v: usize): u32 { return load<u32>(v + VMA_BACKING); }
@inline export function vmaPolicyMode(v: usize): u32 { return load<u32>(v + VMA_MPOL_MODE); }
@inline export function vmaPolicyNodes(v: usize): u32 { return load<u32>(v + VMA_MPOL_NODES); }
@inline export function vmaFile(v: usize): u32 { return load<u32>(v + VMA_FILE); }

// Whether VMA v can map the cached page of address_space `id`: shared mappings of it
// (shmem or file), and private mappings of the file, which map its clean pages until COW.
@inline export function vmaMapsCache(v: usize, id: u32): bool {
  return (vmaFlags(v) & VM_SHARED) != 0 ? vmaBacking(v) == id : vmaFile(v) == id;
}

// The last VMA found (like the old per-thread vmacache); reset whenever a table changes.
let cachedMm: u32 = NONE;
let cachedVma: usize = 0;

export function vmacacheInvalidate(): void {
  cachedMm = NONE;
  cachedVma = 0;
}

// find_vma for exactly-containing lookups: binary search over the sorted table.
export function findVma(mm: u32, vpn: u64): usize {
  if (cachedMm == mm && vpn >= vmaStart(cachedVma) && vpn < vmaEnd(cachedVma)) return cachedVma;
  let lo: u32 = 0;
  let hi: u32 = mmNvmas(mm);
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const v = vmaAddr(mm, mid);
    if (vpn < vmaStart(v)) hi = mid;
    else if (vpn >= vmaEnd(v)) lo = mid + 1;
    else {
      cachedMm = mm;
      cachedVma = v;
      return v;
    }
  }
  return 0;
}

// linear_page_index: the page's index in its anon_vma or shmem object.
@inline export function linearIndex(v: usize, vpn: u64): u64 {
  return vpn - vmaStart(v) + vmaPgoff(v);
}
