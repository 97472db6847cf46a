// vm_area_struct and the sorted VMA list of one mm: find, split at a boundary, merge
// compatible neighbours. Pure bookkeeping; page tables are the Wasm core's business.
import { VM_SHARED, VM_SPECIAL } from "./constants.js";
import type { Inode } from "./fs/inode.js";

/** A shared anonymous object (shmem): its pages live in an address_space in the core. */
export interface ShmemObject {
  id: number;
  /** VMAs (in any process) that map it. */
  refs: number;
  /** Size in pages (i_size): accesses at or past it fault with SIGBUS. */
  pages: number;
}

/** A VMA's memory policy (vm_policy): an MPOL_* mode and a nodemask (bit n = node n). */
export interface VmaPolicy {
  readonly mode: number;
  readonly nodes: number;
}

export interface Vma {
  /** First virtual page number. */
  start: number;
  /** One past the last virtual page number. */
  end: number;
  /** Page offset into the backing object (for anon: the linear page index base). */
  pgoff: number;
  flags: number;
  /** anon_vma id for private anon, or the shmem object for shared. */
  anonVma: number;
  shmem: ShmemObject | null;
  /** The file a file mapping maps (vm_file); shared ones map its page cache, private ones copy on write. */
  file?: Inode | null;
  /** mbind's policy; absent means MPOL_DEFAULT (the task's policy applies). */
  mpol?: VmaPolicy;
}

/** mpol_equal: the same mode and nodes (absent is MPOL_DEFAULT). */
export function mpolEqual(a: VmaPolicy | undefined, b: VmaPolicy | undefined): boolean {
  return (a?.mode ?? 0) === (b?.mode ?? 0) && (a?.nodes ?? 0) === (b?.nodes ?? 0);
}

/** Index of the first VMA that ends after `vpn`. */
export function findVmaIndex(vmas: readonly Vma[], vpn: number): number {
  let lo = 0;
  let hi = vmas.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (vmas[mid]!.end <= vpn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function findVma(vmas: readonly Vma[], vpn: number): Vma | undefined {
  const v = vmas[findVmaIndex(vmas, vpn)];
  return v && v.start <= vpn ? v : undefined;
}

/** True when [start, end) is covered by VMAs with no hole. */
export function rangeMapped(vmas: readonly Vma[], start: number, end: number): boolean {
  let at = start;
  for (let i = findVmaIndex(vmas, start); i < vmas.length && at < end; i++) {
    const v = vmas[i]!;
    if (v.start > at) return false;
    at = v.end;
  }
  return at >= end;
}

export function rangeFree(vmas: readonly Vma[], start: number, end: number): boolean {
  const v = vmas[findVmaIndex(vmas, start)];
  return !v || v.start >= end;
}

function piece(v: Vma, start: number, end: number): Vma {
  return { ...v, start, end, pgoff: v.pgoff + (start - v.start) };
}

/**
 * The list with [start, end) cut out. `removed` receives the cut pieces.
 */
export function cutRange(vmas: readonly Vma[], start: number, end: number, removed: Vma[] = []): Vma[] {
  const out: Vma[] = [];
  for (const v of vmas) {
    if (v.end <= start || v.start >= end) {
      out.push(v);
      continue;
    }
    if (v.start < start) out.push(piece(v, v.start, start));
    removed.push(piece(v, Math.max(v.start, start), Math.min(v.end, end)));
    if (v.end > end) out.push(piece(v, end, v.end));
  }
  return out;
}

/** vma_merge's test: same flags, backing and policy, contiguous offsets. */
export function canMerge(a: Vma, b: Vma): boolean {
  if (a.end !== b.start || a.flags !== b.flags || !mpolEqual(a.mpol, b.mpol)) return false;
  // vma_merge leaves VM_SPECIAL mappings alone.
  if (a.flags & VM_SPECIAL) return false;
  if (a.pgoff + (a.end - a.start) !== b.pgoff) return false;
  if ((a.file ?? null) !== (b.file ?? null)) return false;
  if (a.flags & VM_SHARED) return a.shmem === b.shmem;
  return a.anonVma === b.anonVma;
}

/**
 * The list with `change` applied to every piece of [start, end) (split at the ends, merged
 * after, as mprotect does), and each piece before and after the change.
 */
export function changeRange(vmas: readonly Vma[], start: number, end: number, change: (v: Vma) => Vma): { list: Vma[]; pieces: { before: Vma; after: Vma }[] } {
  const removed: Vma[] = [];
  const rest = cutRange(vmas, start, end, removed);
  const pieces = removed.map((before) => ({ before, after: change(before) }));
  return { list: insertVmas(rest, pieces.map((p) => p.after)).list, pieces };
}

/** Inserts `add` (which overlaps nothing) and merges neighbours; returns the list and merged-away shmem refs. */
export function insertVmas(vmas: readonly Vma[], add: readonly Vma[]): { list: Vma[]; dropped: Vma[] } {
  const all = [...vmas, ...add].sort((a, b) => a.start - b.start);
  const list: Vma[] = [];
  const dropped: Vma[] = [];
  for (const v of all) {
    const last = list[list.length - 1];
    if (last && canMerge(last, v)) {
      list[list.length - 1] = { ...last, end: v.end };
      dropped.push(v);
    } else {
      list.push(v);
    }
  }
  return { list, dropped };
}
