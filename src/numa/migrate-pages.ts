// move_pages(2), migrate_pages(2) and mbind's MPOL_MF_MOVE (mm/migrate.c, mm/mempolicy.c) over
// the pfn-list migration engine: the core looks pages up (or queues the misplaced pages of a
// range), collects them into migration entries, allocates each destination where a policy
// puts it, copies, and finalizes. Pages locked by someone else or held by extra references
// are retried, at most NR_MAX_MIGRATE_PAGES_RETRY passes in all.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { fail } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import { MigrateVma } from "../migrate.js";
import type { VmaPolicy } from "../vma.js";
import { MPOL_BIND, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MAX_NUMNODES, memoryNodes, nodesToMask, popcount, liveProc } from "./mpol.js";
import { isU32 } from "../validate.js";

/** The kernel's bound on migrate_pages passes over pages that failed with -EAGAIN. */
export const NR_MAX_MIGRATE_PAGES_RETRY = 10;
/** Entries of the core's look-up and queue buffers (assembly/numa.ts). */
const NUMA_MAX = 65536;
const EAGAIN = -11;
const EBUSY = -16;
const ENOMEM = -12;

export interface RetryOptions {
  /**
   * Called before each retry pass over pages that were locked or held by extra references
   * (pass 1, 2, ...): the moment other threads run, in the kernel. Without it nothing can
   * change between passes, so no pass is retried.
   */
  onRetry?: (pass: number) => void;
}

export interface MovePagesResult {
  /** Per address: the node its page is on (after the move), or a negative errno. */
  status: number[];
  /** Pages that were to move and did not (-EBUSY, -ENOMEM): move_pages' return value. */
  notMigrated: number;
}

/** Where a batch's new pages go: an allocation policy and the node it counts as local. */
interface Target {
  mode: number;
  nodes: number;
  local: number;
}

interface Buffers {
  vpns: Float64Array;
  out: Int32Array;
  status: Int32Array;
  res: DataView;
}

const views = new WeakMap<Machine, Buffers>();

function buffers(m: Machine): Buffers {
  let b = views.get(m);
  if (!b) {
    const { core } = m;
    const buf = core.memory.buffer;
    b = {
      vpns: new Float64Array(buf, core.numaVpnsPtr(), NUMA_MAX),
      out: new Int32Array(buf, core.numaOutPtr(), NUMA_MAX),
      status: new Int32Array(buf, core.numaStatusPtr(), NUMA_MAX),
      res: new DataView(buf, core.numaResultPtr(), 16),
    };
    views.set(m, b);
  }
  return b;
}

function needSlot(m: Machine, fn: string): void {
  if (!m.migrations.includes(null)) fail("EBUSY", fn, `${m.migrations.length} migrations are in flight on this machine already`, m.migrations.length);
}

/**
 * One migrate_pages() call over the first n pfns of the core's list: collected (and unmapped
 * everywhere), new pages allocated by `target`, copied, finalized. The core's out buffer then
 * holds each entry's outcome: 0 moved, -EAGAIN locked, -EBUSY extra references, -ENOMEM no page.
 */
function migrateBatch(m: Machine, n: number, target: Target): void {
  const core = m.core;
  const slot = m.migrations.indexOf(null);
  const cpages = core.migrateQueuedSetup(slot, n);
  const mig = new MigrateVma(m, slot, n, cpages, null, null);
  mig.pinpage = true;
  m.migrations[slot] = mig;
  try {
    m.notifyOtherMappings(slot, null);
  } catch (e) {
    // A notifier that throws gets the restore path: nothing moves.
    mig.abort();
    throw e;
  }
  core.migrateAllocCopyPolicy(slot, n, target.mode, target.nodes, target.local);
  mig.finalize();
  core.migrateQueuedOutcome(slot, n);
}

/**
 * queue_pages_range + migrate_pages over the page ranges `ranges()` gives (page numbers):
 * pages on a node of `wantMask` move by `target`; unless `moveAll`, pages other mappings
 * share stay. Returns pages that failed (isolation, allocation, or still busy after the
 * retries) and whether an allocation failed, which ends it as in the kernel.
 */
function queueAndMigrate(m: Machine, proc: Process, ranges: () => [number, number][], wantMask: number, moveAll: boolean, target: Target, opts: RetryOptions): { failed: number; enomem: boolean } {
  const core = m.core;
  const b = buffers(m);
  let failed = 0;
  for (let pass = 0; ; pass++) {
    let busy = 0;
    let enomem = false;
    let n = 0;
    const flush = (): void => {
      if (n === 0) return;
      try {
        migrateBatch(m, n, target);
      } finally {
        core.putbackMovablePages(n);
      }
      for (let i = 0; i < n; i++) {
        const o = b.out[i]!;
        if (o === ENOMEM) {
          failed++;
          enomem = true;
        } else if (o !== 0) {
          busy++;
        }
      }
      n = 0;
    };
    for (const [lo, hi] of ranges()) {
      for (let at = lo; at < hi && !enomem; ) {
        n += core.queuePagesRange(proc.mm, at, hi, wantMask, moveAll ? 1 : 0, n, NUMA_MAX);
        // Isolation failures (a page queued twice) count once; later passes meet moved pages.
        if (pass === 0) failed += b.res.getUint32(4, true);
        at = b.res.getFloat64(8, true);
        if (n === NUMA_MAX) flush();
      }
    }
    if (!enomem) flush();
    if (enomem) return { failed: failed + busy, enomem };
    if (busy === 0) return { failed, enomem };
    if (pass + 1 >= NR_MAX_MIGRATE_PAGES_RETRY || !opts.onRetry) return { failed: failed + busy, enomem };
    opts.onRetry(pass + 1);
  }
}

/** The parts of `proc`'s VMAs inside [start, end). */
function vmaRanges(proc: Process, start: number, end: number): [number, number][] {
  return proc.vmaList().filter((v) => v.end > start && v.start < end).map((v) => [Math.max(v.start, start), Math.min(v.end, end)]);
}

/** Present pages of [start, end) on a node of `mask` (MPOL_MF_STRICT's check). */
export function countMisplaced(m: Machine, proc: Process, start: number, end: number, mask: number): number {
  const b = buffers(m);
  let n = 0;
  for (const [lo, hi] of vmaRanges(proc, start, end)) {
    m.core.queuePagesRange(proc.mm, lo, hi, mask, 0, 0, 0);
    n += b.res.getUint32(0, true);
  }
  return n;
}

/**
 * mbind's MPOL_MF_MOVE: the pages of [start, end) on a node of `wantMask` move to where
 * `policy` places them (interleave by each page's index). Returns pages that failed to move.
 */
export function migrateRange(m: Machine, proc: Process, start: number, end: number, wantMask: number, moveAll: boolean, policy: VmaPolicy, opts: RetryOptions): number {
  needSlot(m, "mbind");
  const target = { mode: policy.mode, nodes: policy.nodes, local: proc.node };
  return queueAndMigrate(m, proc, () => vmaRanges(proc, start, end), wantMask, moveAll, target, opts).failed;
}

/**
 * move_pages(2). `nodes` null: only the status (each page's node, or -EFAULT for no mapping or
 * the zero page, -ENOENT for no page present or device memory). Otherwise each address's page
 * moves to its node: status is that node, -EACCES for a page other mappings share (without
 * MPOL_MF_MOVE_ALL), -EBUSY for one locked or held by extra references (pins) through every
 * retry, or met twice in one run of equal nodes, -ENOMEM when that node ran out of memory.
 * Runs of equal target nodes move as one batch, in order. A node that does not exist or has
 * no memory is ENODEV before anything moves. Where the kernel stops at the first batch with
 * failures (its status entries for them unwritten) and fails with ENOMEM for a full node,
 * every address is tried and reported here.
 */
export function movePages(m: Machine, proc: Process, addrs: readonly number[], nodes: readonly number[] | null, flags = 0, opts: RetryOptions = {}): MovePagesResult {
  const fn = "move_pages";
  liveProc(m, fn, proc);
  if (!isU32(flags) || flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) fail("EINVAL", fn, `flags ${String(flags)} hold bits other than MPOL_MF_MOVE and MPOL_MF_MOVE_ALL`, flags);
  if (!Array.isArray(addrs)) fail("EINVAL", fn, "addrs must be an array of addresses", addrs);
  addrs.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a >= 2 ** 64) fail("EINVAL", fn, `addrs[${i}] = ${String(a)} is not an address`, a);
  });
  if (nodes !== null) {
    if (!Array.isArray(nodes) || nodes.length !== addrs.length) fail("EINVAL", fn, `nodes must be null or an array as long as addrs (${addrs.length})`, nodes);
    const have = memoryNodes(m);
    nodes.forEach((n, i) => {
      if (!Number.isInteger(n)) fail("EINVAL", fn, `nodes[${i}] = ${String(n)} is not a node number`, n);
      if (n < 0 || n >= MAX_NUMNODES || !(have & (1 << n))) fail("ENODEV", fn, `nodes[${i}] = ${n} is not a node with memory`, n);
    });
    needSlot(m, fn);
  }
  const status = new Array<number>(addrs.length).fill(0);
  const result = { status, notMigrated: 0 };
  const b = buffers(m);
  if (nodes === null) {
    for (let c = 0; c < addrs.length; c += NUMA_MAX) {
      const n = Math.min(NUMA_MAX, addrs.length - c);
      for (let k = 0; k < n; k++) b.vpns[k] = Math.floor(addrs[c + k]! / PAGE_SIZE);
      m.core.doPagesStat(proc.mm, n);
      for (let k = 0; k < n; k++) status[c + k] = b.status[k]!;
    }
    return result;
  }
  const moveAll = (flags & MPOL_MF_MOVE_ALL) !== 0;
  for (let i = 0; i < addrs.length; ) {
    let j = i;
    while (j < addrs.length && nodes[j] === nodes[i]) j++;
    for (let c = i; c < j; c += NUMA_MAX) {
      const entries = Array.from({ length: Math.min(NUMA_MAX, j - c) }, (_, k) => c + k);
      moveRun(m, proc, addrs, entries, nodes[i]!, moveAll, opts, result);
    }
    i = j;
  }
  return result;
}

/**
 * One batch of move_pages: addrs[entries] to `node`. The core looks the pages up, sets the
 * status of those that stay and isolates the others; those still busy after the batch are
 * looked up and tried again, up to NR_MAX_MIGRATE_PAGES_RETRY passes.
 */
function moveRun(m: Machine, proc: Process, addrs: readonly number[], entries: number[], node: number, moveAll: boolean, opts: RetryOptions, result: MovePagesResult): void {
  const core = m.core;
  const b = buffers(m);
  const { status } = result;
  const target = { mode: MPOL_BIND, nodes: 1 << node, local: node };
  let pending = entries;
  for (let pass = 0; ; pass++) {
    pending.forEach((i, k) => (b.vpns[k] = Math.floor(addrs[i]! / PAGE_SIZE)));
    const q = core.addPagesForMigration(proc.mm, pending.length, node, moveAll ? 1 : 0);
    if (q > 0) {
      try {
        migrateBatch(m, q, target);
      } finally {
        core.putbackMovablePages(q);
      }
      core.storeMoveStatus(q, node);
    }
    const retry: number[] = [];
    pending.forEach((i, k) => {
      const s = b.status[k]!;
      if (s === EAGAIN) retry.push(i);
      else status[i] = s;
      if (s === ENOMEM) result.notMigrated++;
    });
    if (retry.length === 0) return;
    if (pass + 1 >= NR_MAX_MIGRATE_PAGES_RETRY || !opts.onRetry) {
      for (const i of retry) status[i] = EBUSY;
      result.notMigrated += retry.length;
      return;
    }
    opts.onRetry(pass + 1);
    pending = retry;
  }
}

/** node_remap: the node at `s`'s position among `from`, counted round `to`. */
function nodeRemap(s: number, from: number, to: number): number {
  const ord = popcount(from & ((1 << s) - 1));
  let k = ord % popcount(to);
  let mask = to;
  for (; k > 0; k--) mask &= mask - 1;
  return 31 - Math.clz32(mask & -mask);
}

/**
 * migrate_pages(2): every page of `proc` on a node of `fromNodes` moves to the node of the same
 * rank in `toNodes`, both taken as nodemasks (sorted sets; the rank counted round `toNodes`), in
 * do_migrate_pages' order, which empties a node before pages move onto it where it can. `flags` is MPOL_MF_MOVE_ALL (the default: the caller has
 * CAP_SYS_NICE and pages other processes map move too) or MPOL_MF_MOVE (they stay). Returns the
 * pages that could not be moved. A destination node that runs out of memory ends the call with
 * ENOMEM, the pages moved so far staying moved, as in the kernel.
 */
export function migratePages(m: Machine, proc: Process, fromNodes: readonly number[], toNodes: readonly number[], flags = MPOL_MF_MOVE_ALL, opts: RetryOptions = {}): number {
  const fn = "migrate_pages";
  liveProc(m, fn, proc);
  const from = nodesToMask(fn, fromNodes, "fromNodes");
  const to = nodesToMask(fn, toNodes, "toNodes") & memoryNodes(m);
  if (flags !== MPOL_MF_MOVE && flags !== MPOL_MF_MOVE_ALL) fail("EINVAL", fn, `flags must be MPOL_MF_MOVE or MPOL_MF_MOVE_ALL, got ${String(flags)}`, flags);
  if (to === 0) fail("EINVAL", fn, `none of toNodes [${toNodes.join(", ")}] is a node with memory`, toNodes);
  needSlot(m, fn);
  const all = (): [number, number][] => proc.vmaList().map((v) => [v.start, v.end]);
  let busy = 0;
  let tmp = from;
  while (tmp !== 0) {
    let source = -1;
    let dest = 0;
    for (let s = 0; s < MAX_NUMNODES; s++) {
      if (!(tmp & (1 << s))) continue;
      // With unequal sets, a node that is also a destination keeps its pages.
      if (popcount(from) !== popcount(to) && to & (1 << s)) continue;
      const d = nodeRemap(s, from, to);
      if (s === d) continue;
      source = s;
      dest = d;
      if (!(tmp & (1 << dest))) break;
    }
    if (source < 0) break;
    tmp &= ~(1 << source);
    const r = queueAndMigrate(m, proc, all, 1 << source, flags === MPOL_MF_MOVE_ALL, { mode: MPOL_BIND, nodes: 1 << dest, local: dest }, opts);
    busy += r.failed;
    if (r.enomem) fail("ENOMEM", fn, `node ${dest} ran out of memory while pages of node ${source} moved to it (${busy} pages not moved so far)`, busy);
  }
  return busy;
}
