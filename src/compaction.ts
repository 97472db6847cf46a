// Memory compaction (mm/compaction.c), driven from here one pageblock of the migrate scanner
// at a time (assembly/compaction.ts does the scanning, isolation and migration): between the
// collection and the migration of a batch, the notifiers of the processes whose pages were
// unmapped hear of it, and pages held by extra references go to resolveExtraRefs.
import type { Machine } from "./machine.js";
import { fail } from "./errors.js";
import { MigrateVma, MIGRATE_PFN_MIGRATE } from "./migrate.js";
import { resolveExtraRefs } from "./isolation.js";
import { askHolders, settleHolders } from "./pin/pinpage.js";

export type CompactStatus = "COMPACT_SKIPPED" | "COMPACT_SUCCESS" | "COMPACT_COMPLETE";

/** What one zone's compaction did. */
export interface CompactResult {
  /** The zone's index in machine.zones(). */
  zone: number;
  node: number;
  /** The order compacted for; -1 for the whole zone (/proc/sys/vm/compact_memory). */
  order: number;
  /**
   * COMPACT_SUCCESS: a free block of `order` exists (perhaps already before); COMPACT_COMPLETE:
   * the scanners met; COMPACT_SKIPPED: too little free memory to compact for `order`.
   */
  status: CompactStatus;
  /** Pages the migrate scanner and the free scanner looked at. */
  migrateScanned: number;
  freeScanned: number;
  /** In-use pages collected for migration, and free pages isolated as targets. */
  isolated: number;
  freeIsolated: number;
  migrated: number;
  /** Collected pages that did not move (no target left, or their references changed). */
  failed: number;
  /** In-use pages left alone: held by extra references, unmovable (kernel pages), PG_reserved. */
  skippedPinned: number;
  skippedUnmovable: number;
  skippedReserved: number;
  /** Free blocks per order (normal and CMA lists) before and after. */
  freeAreaBefore: number[];
  freeAreaAfter: number[];
}

const COMPACT_CONTINUE = 0;
const STATUS: CompactStatus[] = ["COMPACT_COMPLETE", "COMPACT_COMPLETE", "COMPACT_SUCCESS", "COMPACT_SKIPPED"];
const MAX_ORDER = 10;

function checkOrder(fn: string, order: unknown): number {
  if (typeof order !== "number" || !Number.isInteger(order) || order < -1 || order > MAX_ORDER)
    fail("EINVAL", fn, `order ${String(order)} must be -1 (the whole zone) or in [0, ${MAX_ORDER}]`, order);
  return order;
}

interface Run {
  result: CompactResult;
  /** Whether it compacted at all (not skipped, and no block of the order free before). */
  ran: boolean;
}

/** compact_zone: one run over zone `z`. */
function compactZoneRun(m: Machine, z: number, order: number): Run {
  const core = m.core;
  const freeAreaBefore = m.zones()[z]!.freeArea;
  const slot = m.migrations.indexOf(null);
  if (slot < 0) fail("EBUSY", "compact_zone", `${m.migrations.length} migrations are in flight on this machine already`, m.migrations.length);
  let st = core.compactBegin(z, order);
  const ran = st === COMPACT_CONTINUE;
  try {
    while (st === COMPACT_CONTINUE) {
      const cpages = core.compactIsolate(slot);
      const n = core.compactBatch();
      // The collected batch holds the slot until it is migrated or rolled back.
      const mig = n > 0 ? new MigrateVma(m, slot, n, cpages, null, null) : null;
      m.migrations[slot] = mig;
      try {
        const nPinned = new Uint32Array(core.memory.buffer, core.compactStatsBase(), 10)[9]!;
        if (nPinned > 0) resolveExtraRefs(m, [...new Uint32Array(core.memory.buffer, core.compactPinnedBase(), nPinned)], "compact_zone");
        if (mig) m.notifyOtherMappings(slot, null);
        core.compactFill(slot);
        // Pin control subsystems move with their pages (or refuse) before the pages step.
        const moves = mig && m.pinpageSystems.length ? askHolders(m, mig, m.migrateSrcView(slot, n), m.migrateDstView(slot, n)) : null;
        st = core.compactFinish(slot);
        if (moves) settleHolders(moves, (i) => (m.migrateSrcView(slot, n)[i]! & MIGRATE_PFN_MIGRATE) !== 0n);
      } catch (e) {
        mig?.abort();
        throw e;
      } finally {
        m.migrations[slot] = null;
      }
    }
  } finally {
    core.compactEnd();
    m.settle();
  }
  const s = new Uint32Array(core.memory.buffer, core.compactStatsBase(), 10);
  const zi = m.layout.zones[z]!;
  const result: CompactResult = {
    zone: z, node: zi.node, order, status: STATUS[st]!,
    migrateScanned: s[0]!, freeScanned: s[1]!, isolated: s[2]!, freeIsolated: s[3]!, migrated: s[4]!, failed: s[5]!,
    skippedPinned: s[6]!, skippedUnmovable: s[7]!, skippedReserved: s[8]!,
    freeAreaBefore, freeAreaAfter: m.zones()[z]!.freeArea,
  };
  return { result, ran };
}

/** Direct compaction's accounting: compact_stall once it ran, then compact_success or compact_fail. */
function countDirect(m: Machine, runs: Run[], order: number): void {
  if (order < 0 || !runs.some((r) => r.ran)) return;
  m.core.compactCountDirect(runs.some((r) => m.core.compactOrderFree(r.result.zone, order)) ? 1 : 0);
}

/**
 * compact_zone for zone `zone` (an index into machine.zones()). With an order, it is direct
 * compaction for an allocation of that order: it stops once a free block that large exists
 * and counts compact_stall and compact_success/compact_fail; order -1 compacts the whole zone.
 */
export function compactZone(m: Machine, zone: number, order = -1): CompactResult {
  const fn = "compact_zone";
  const nz = m.layout.zones.length;
  if (typeof zone !== "number" || !Number.isInteger(zone) || zone < 0 || zone >= nz)
    fail("EINVAL", fn, `zone ${String(zone)} does not exist (the machine has ${nz}: an index into zones())`, zone);
  checkOrder(fn, order);
  m.enter(fn);
  try {
    const r = compactZoneRun(m, zone, order);
    countDirect(m, [r], order);
    return r.result;
  } finally {
    m.leave();
  }
}

/**
 * compact_node: every zone of `node`; with an order, zone by zone until one has a free block
 * of that order (try_to_compact_pages), counted as one direct compaction.
 */
export function compactNode(m: Machine, node: number, order = -1): CompactResult[] {
  const fn = "compact_node";
  if (typeof node !== "number" || !Number.isInteger(node) || node < 0 || node >= m.config.nodes.length)
    fail("EINVAL", fn, `node ${String(node)} does not exist (the machine has ${m.config.nodes.length})`, node);
  checkOrder(fn, order);
  m.enter(fn);
  try {
    const runs: Run[] = [];
    for (const z of m.layout.zones) {
      if (z.node !== node) continue;
      const r = compactZoneRun(m, z.id, order);
      runs.push(r);
      if (order >= 0 && r.result.status === "COMPACT_SUCCESS") break;
    }
    countDirect(m, runs, order);
    return runs.map((r) => r.result);
  } finally {
    m.leave();
  }
}

/** What writing 1 to /proc/sys/vm/compact_memory does: every zone of every node, whole. */
export function compactMemory(m: Machine): CompactResult[] {
  const fn = "compact_memory";
  m.enter(fn);
  try {
    return m.layout.zones.map((z) => compactZoneRun(m, z.id, -1).result);
  } finally {
    m.leave();
  }
}
