// RAM mode, as dax_kmem: the pmem range hot-plugged as memory with struct pages into a
// node's ZONE_MOVABLE (add_memory_driver_managed + online_pages to the movable zone), and
// offlined and removed again (offline_pages + remove_memory).
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { L, ZONE_MOVABLE, ZONE_RECORD, type ZoneLayout } from "../layout.js";
import { firstFreeZone } from "../device/memremap.js";
import { offlinePages, type OfflineResult } from "../hotplug.js";

/** Watermarks of a movable zone of `size` pages, as layoutZones gives the boot-time ones. */
function movableWatermarks(size: number): { wmarkMin: number; wmarkLow: number; wmarkHigh: number } {
  const min = Math.min(128, Math.max(32, Math.floor(size / 1024)), Math.floor(size / 4));
  const step = Math.max(Math.floor(min / 4), Math.floor(size / 1000));
  return { wmarkMin: min, wmarkLow: min + step, wmarkHigh: min + 2 * step };
}

/**
 * Onlines [start, end) as a ZONE_MOVABLE of `node`: struct pages initialised, every page free
 * for movable allocations. The node's boot-time movable zone (if it has one) keeps its span;
 * the hot-plugged range is a movable zone of its own beside it, after it in the node's
 * zonelist, and listed by machine.zones() as another "Movable" zone of the node. Returns
 * the zone slot.
 */
export function onlineMovable(m: Machine, fn: string, start: number, end: number, node: number): number {
  const z = firstFreeZone(m);
  if (z < 0) fail("ENOMEM", fn, "all zone slots are in use", z);
  const zone: ZoneLayout = { id: z, node, type: ZONE_MOVABLE, start, end, ...movableWatermarks(end - start) };
  const w = (m.layout.slots[L.ZONES]! + z * ZONE_RECORD) / 4;
  m.u32.fill(0, w, w + ZONE_RECORD / 4);
  m.u32[w] = start;
  m.u32[w + 1] = end;
  m.u32[w + 2] = node;
  m.u32[w + 3] = ZONE_MOVABLE;
  m.u32[w + 6] = zone.wmarkMin;
  m.u32[w + 7] = zone.wmarkLow;
  m.u32[w + 8] = zone.wmarkHigh;
  m.core.pmemOnline(z);
  m.layout.zones.push(zone);
  m.inject.zonesChanged();
  return z;
}

/**
 * offline_pages over the whole zone (everything migrates out; a PageFailureError with the
 * pages that would not, and the zone still online, if any stays), then remove_memory: the
 * struct pages go and the zone slot is free again.
 */
export function offlineAndRemove(m: Machine, z: number, start: number, end: number): OfflineResult {
  const r = offlinePages(m, start, end - start);
  m.core.pmemRemoveZone(z);
  const i = m.layout.zones.findIndex((x) => x.id === z);
  m.layout.zones.splice(i, 1);
  m.inject.zonesChanged();
  return r;
}
