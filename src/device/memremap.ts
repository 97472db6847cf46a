// memremap_pages / memunmap_pages: carving ZONE_DEVICE ranges out of the device
// address space laid out after system RAM, and giving them back.
import type { Machine } from "../machine.js";
import { DevPagemap, type DevPagemapConfig, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_GENERIC } from "./pagemap.js";
import { fail } from "../errors.js";
import { L, MAX_ZONES, ZONE_DEVICE, ZONE_RECORD } from "../layout.js";
import { evictDevicePages } from "./evict.js";

const TYPES = new Set<number>([MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_GENERIC]);

export function memremapPages(m: Machine, cfg: DevPagemapConfig): DevPagemap {
  const fn = "memremap_pages";
  if (typeof cfg !== "object" || cfg === null) fail("EINVAL", fn, "the pagemap configuration must be an object", cfg);
  if (!TYPES.has(cfg.type)) fail("EINVAL", fn, `type ${String(cfg.type)} is not MEMORY_DEVICE_PRIVATE, _COHERENT or _GENERIC`, cfg.type);
  const n = cfg.nrPages;
  if (!Number.isInteger(n) || n <= 0) fail("EINVAL", fn, `nrPages must be a positive integer, got ${String(n)}`, n);
  const node = cfg.node ?? 0;
  if (!Number.isInteger(node) || node < 0 || node >= m.config.nodes.length) fail("EINVAL", fn, `node ${String(node)} does not exist`, node);
  if (cfg.name !== undefined && (typeof cfg.name !== "string" || cfg.name === "")) fail("EINVAL", fn, `name must be a non-empty string`, cfg.name);
  if (cfg.ops !== undefined && (typeof cfg.ops !== "object" || cfg.ops === null)) fail("EINVAL", fn, "ops must be an object", cfg.ops);
  if (cfg.type === MEMORY_DEVICE_PRIVATE && typeof cfg.ops?.migrateToRam !== "function")
    fail("EINVAL", fn, "MEMORY_DEVICE_PRIVATE needs ops.migrateToRam", cfg.ops);
  const start = requestFreeMemRegion(m, fn, n, 1);
  const zone = firstFreeZone(m);
  if (zone < 0) fail("ENOMEM", fn, `all ${MAX_ZONES} zone slots are in use`);
  const w = (m.layout.slots[L.ZONES]! + zone * ZONE_RECORD) / 4;
  m.u32.fill(0, w, w + ZONE_RECORD / 4);
  m.u32[w] = start;
  m.u32[w + 1] = start + n;
  m.u32[w + 2] = node;
  m.u32[w + 3] = ZONE_DEVICE;
  const ownerId = m.ownerId(cfg.owner);
  m.u32[w + 11] = cfg.type;
  m.u32[w + 12] = ownerId;
  m.core.deviceZoneInit(zone);
  const pg = new DevPagemap(cfg.type, cfg.owner, cfg.ops ?? {}, start, start + n, node, zone, ownerId, cfg.name);
  m.pgmaps.set(zone, pg);
  m.inject.zonesChanged();
  return pg;
}

/**
 * request_free_mem_region: the first fit for `n` pages, starting at a multiple of `align`, in
 * the device address space after system RAM, around the dev_pagemaps and pmem devices there.
 */
export function requestFreeMemRegion(m: Machine, fn: string, n: number, align: number): number {
  const base = m.config.frames;
  const taken = [...m.pgmaps.values(), ...m.pmems].sort((a, b) => a.start - b.start);
  const up = (pfn: number): number => Math.ceil(pfn / align) * align;
  let start = up(base);
  for (const r of taken) {
    if (r.start - start >= n) break;
    start = up(Math.max(start, r.end));
  }
  if (start + n > base + m.config.deviceFrames)
    fail("ENOMEM", fn, `no free device address space for ${n} pages (deviceMemory ${m.config.deviceFrames})`, n);
  return start;
}

/** A zone slot after the system zones that no dev_pagemap or hot-plugged pmem uses, or -1. */
export function firstFreeZone(m: Machine): number {
  const used = new Set<number>(m.pgmaps.keys());
  for (const p of m.pmems) if (p.zoneId >= 0) used.add(p.zoneId);
  for (let z = m.layout.slots[L.NZONES]!; z < MAX_ZONES; z++) if (!used.has(z)) return z;
  return -1;
}

export function memunmapPages(m: Machine, pg: DevPagemap): void {
  const fn = "memunmap_pages";
  if (!(pg instanceof DevPagemap) || m.pgmaps.get(pg.zone) !== pg) fail("EINVAL", fn, "not a registered dev_pagemap of this machine", pg);
  const left = evictDevicePages(m, pg);
  if (left > 0 || m.core.deviceZoneRelease(pg.zone) === 0)
    fail("EBUSY", fn, `${left || "some"} device pages are still in use (pinned or locked) and cannot be evicted`, left);
  const w = (m.layout.slots[L.ZONES]! + pg.zone * ZONE_RECORD) / 4;
  m.u32.fill(0, w, w + ZONE_RECORD / 4);
  m.pgmaps.delete(pg.zone);
  pg.live = false;
  m.inject.zonesChanged();
}
