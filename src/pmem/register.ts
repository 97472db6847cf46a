// Registering a pmem device: its range carved out of the device address space after system
// RAM (request_free_mem_region, pageblock-aligned so that RAM mode can online it whole).
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { PAGEBLOCK_NR_PAGES } from "../config.js";
import { requestFreeMemRegion } from "../device/memremap.js";
import { PmemDevice } from "./device.js";

/** pfn ranges DAX faults can map (assembly/pmem.ts PFN_RANGES_MAX). */
const MAX_PMEM = 64;

export interface PmemConfig {
  /** Size in pages (= 4096-byte sectors), a positive multiple of the pageblock (512). */
  pages: number;
  /** The node RAM mode onlines to by default (0). */
  node?: number;
}

export function registerPmem(m: Machine, name: string, cfg: PmemConfig): PmemDevice {
  const fn = "pmem_attach_disk";
  if (typeof name !== "string" || name.length === 0) fail("EINVAL", fn, "the name must be a non-empty string", name);
  if (m.pmems.some((p) => p.name === name)) fail("EEXIST", fn, `a pmem device named "${name}" exists already`, name);
  if (typeof cfg !== "object" || cfg === null) fail("EINVAL", fn, "the configuration must be an object", cfg);
  const { pages } = cfg;
  if (!Number.isInteger(pages) || pages <= 0 || pages % PAGEBLOCK_NR_PAGES)
    fail("EINVAL", fn, `pages must be a positive multiple of the pageblock (${PAGEBLOCK_NR_PAGES}), got ${String(pages)}`, pages);
  const node = cfg.node ?? 0;
  if (!Number.isInteger(node) || node < 0 || node >= m.config.nodes.length) fail("EINVAL", fn, `node ${String(node)} does not exist`, node);
  const ids = new Set(m.pmems.map((p) => p.rangeId));
  let id = 0;
  while (ids.has(id)) id++;
  if (id >= MAX_PMEM) fail("ENOSPC", fn, `at most ${MAX_PMEM} pmem devices`, id);
  const start = requestFreeMemRegion(m, fn, pages, PAGEBLOCK_NR_PAGES);
  m.core.pmemStorageInit(start, start + pages);
  m.core.pfnRangeSet(id, start, pages);
  const dev = new PmemDevice(m, name, start, start + pages, node, id);
  m.pmems.push(dev);
  return dev;
}
