// Machine configuration: validated once, with defaults filled in.
import { fail } from "./errors.js";

export type ContentMode = "bytes" | "tags";
export type WasmBuild = "release" | "debug";

export interface NodeConfig {
  /** Pages in ZONE_NORMAL. */
  normal: number;
  /** Pages in ZONE_MOVABLE (default 0). */
  movable?: number;
}

/** A CMA area (cma= / reserved-memory "shared-dma-pool"): pageblocks of one zone kept for cmaAlloc. */
export interface CmaConfig {
  /** The node whose zone holds the area. */
  node: number;
  /** Size in pages: a positive multiple of the pageblock (512 pages). */
  pages: number;
  /** Which of the node's zones holds it (default "normal"). */
  zone?: "normal" | "movable";
  /** First pfn, pageblock-aligned, inside that zone (default: the zone's highest pageblocks no other area uses). */
  base?: number;
}

export interface MachineConfig {
  /** NUMA nodes, each with its zones (default: one node of 16 Ki normal pages). */
  nodes?: NodeConfig[];
  /** Frame contents: 4096 real bytes per frame, or a 64-bit tag per frame (default "bytes"). */
  content?: ContentMode;
  /** Page-table pool size in 4 KiB tables (default max(256, frames/128)). */
  tablePages?: number;
  /** Process slots (default 64). */
  maxProcesses?: number;
  /** VMAs per process, like vm.max_map_count (default 1024). */
  maxVmas?: number;
  /** Shared anonymous objects alive at once (default 1024). */
  maxShmem?: number;
  /** vm.min_free_kbytes; default as the kernel computes it from memory size. */
  minFreeKbytes?: number;
  /** Physical address space, in pages, for ZONE_DEVICE ranges registered later (default 0). */
  deviceMemory?: number;
  /** Which Wasm build runs the machine (default "release"; tests also use "debug"). */
  build?: WasmBuild;
  /** CMA areas, at most 16 (default none). */
  cma?: CmaConfig[];
}

/** A placed CMA area. */
export interface CmaArea {
  node: number;
  zone: "normal" | "movable";
  /** Id of the zone that holds it (its index in machine.zones()). */
  zoneId: number;
  base: number;
  pages: number;
}

export interface ResolvedConfig {
  nodes: { normal: number; movable: number }[];
  content: ContentMode;
  tablePages: number;
  maxProcesses: number;
  maxVmas: number;
  maxShmem: number;
  minFreeKbytes: number;
  build: WasmBuild;
  /** System RAM frames. */
  frames: number;
  /** Frames of ZONE_DEVICE address space after system RAM. */
  deviceFrames: number;
  cma: CmaArea[];
}

const MAX_NODES = 16;
const MAX_FRAMES = 2 ** 31;
/** pageblock_nr_pages: 2^pageblock_order pages. */
export const PAGEBLOCK_NR_PAGES = 512;
/** CONFIG_CMA_AREAS. */
export const MAX_CMA_AREAS = 16;

function count(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    fail("EINVAL", "Machine.create", `${name} must be an integer in [${min}, ${max}], got ${String(v)}`, v);
  return v;
}

const KNOWN_KEYS = new Set(["nodes", "deviceMemory", "content", "tablePages", "maxProcesses", "maxVmas", "maxShmem", "minFreeKbytes", "build", "cma"]);

export function resolveConfig(cfg: MachineConfig = {}): ResolvedConfig {
  if (typeof cfg !== "object" || cfg === null) fail("EINVAL", "Machine.create", "the configuration must be an object", cfg);
  for (const k of Object.keys(cfg)) {
    if (!KNOWN_KEYS.has(k)) fail("EINVAL", "Machine.create", `unknown configuration key "${k}"`, k);
  }
  const rawNodes = cfg.nodes ?? [{ normal: 16384 }];
  if (!Array.isArray(rawNodes) || rawNodes.length < 1 || rawNodes.length > MAX_NODES)
    fail("EINVAL", "Machine.create", `nodes must be an array of 1 to ${MAX_NODES} nodes`, rawNodes);
  const nodes = rawNodes.map((n, i) => {
    if (typeof n !== "object" || n === null) fail("EINVAL", "Machine.create", `nodes[${i}] must be an object`, n);
    return {
      normal: count(`nodes[${i}].normal`, n.normal, i === 0 ? 2 : 0, MAX_FRAMES),
      movable: count(`nodes[${i}].movable`, n.movable ?? 0, 0, MAX_FRAMES),
    };
  });
  const frames = nodes.reduce((s, n) => s + n.normal + n.movable, 0);
  const deviceFrames = count("deviceMemory", cfg.deviceMemory ?? 0, 0, MAX_FRAMES);
  if (frames + deviceFrames > MAX_FRAMES) fail("ENOMEM", "Machine.create", `${frames} frames is more than a 32-bit machine can lay out`, frames);
  const content = cfg.content ?? "bytes";
  if (content !== "bytes" && content !== "tags")
    fail("EINVAL", "Machine.create", `content must be "bytes" or "tags", got ${String(content)}`, content);
  const build = cfg.build ?? defaultBuild();
  if (build !== "release" && build !== "debug")
    fail("EINVAL", "Machine.create", `build must be "release" or "debug", got ${String(build)}`, build);
  const cma = placeCmaAreas(cfg.cma, nodes);
  const lowmemKb = nodes.reduce((s, n) => s + n.normal, 0) * 4;
  const kernelMinFree = Math.min(262144, Math.max(128, Math.floor(Math.sqrt(lowmemKb * 16))));
  return {
    nodes,
    content,
    frames,
    deviceFrames,
    tablePages: count("tablePages", cfg.tablePages ?? Math.max(256, Math.ceil(frames / 128)), 16, 2 ** 20),
    maxProcesses: count("maxProcesses", cfg.maxProcesses ?? 64, 1, 65536),
    maxVmas: count("maxVmas", cfg.maxVmas ?? 1024, 4, 65536),
    maxShmem: count("maxShmem", cfg.maxShmem ?? 1024, 1, 1 << 20),
    minFreeKbytes: count("minFreeKbytes", cfg.minFreeKbytes ?? kernelMinFree, 0, 2 ** 31),
    build,
    cma,
  };
}

export interface ZoneSpan {
  node: number;
  type: "normal" | "movable";
  start: number;
  end: number;
}

/** The system zones in pfn order, node by node: ZONE_NORMAL then ZONE_MOVABLE, empty zones left out (as layoutZones lays them out). */
export function zoneSpans(nodes: { normal: number; movable: number }[]): ZoneSpan[] {
  const spans: ZoneSpan[] = [];
  let pfn = 0;
  nodes.forEach((n, node) => {
    for (const [type, size] of [["normal", n.normal], ["movable", n.movable]] as const) {
      if (size === 0) continue;
      spans.push({ node, type, start: pfn, end: pfn + size });
      pfn += size;
    }
  });
  return spans;
}

// Validates the CMA areas and places those without a base at the top of their zone, below
// the areas placed already (memblock hands out memory top-down).
function placeCmaAreas(raw: unknown, nodes: { normal: number; movable: number }[]): CmaArea[] {
  const fn = "Machine.create";
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length > MAX_CMA_AREAS) fail("EINVAL", fn, `cma must be an array of at most ${MAX_CMA_AREAS} areas`, raw);
  const spans = zoneSpans(nodes);
  const areas: CmaArea[] = [];
  const overlaps = (base: number, pages: number): CmaArea | undefined => areas.find((a) => base < a.base + a.pages && a.base < base + pages);
  raw.forEach((a: CmaConfig, i) => {
    if (typeof a !== "object" || a === null) fail("EINVAL", fn, `cma[${i}] must be an object`, a);
    for (const k of Object.keys(a)) if (!["node", "pages", "zone", "base"].includes(k)) fail("EINVAL", fn, `cma[${i}] has an unknown key "${k}"`, k);
    const node = count(`cma[${i}].node`, a.node, 0, nodes.length - 1);
    const pages = count(`cma[${i}].pages`, a.pages, PAGEBLOCK_NR_PAGES, MAX_FRAMES);
    if (pages % PAGEBLOCK_NR_PAGES) fail("EINVAL", fn, `cma[${i}].pages ${pages} is not a multiple of the pageblock (${PAGEBLOCK_NR_PAGES} pages)`, pages);
    const zone = a.zone ?? "normal";
    if (zone !== "normal" && zone !== "movable") fail("EINVAL", fn, `cma[${i}].zone must be "normal" or "movable", got ${String(zone)}`, zone);
    const span = spans.find((s) => s.node === node && s.type === zone);
    if (!span) fail("EINVAL", fn, `cma[${i}]: node ${node} has no ${zone} zone`, node);
    let base: number;
    if (a.base !== undefined) {
      base = count(`cma[${i}].base`, a.base, 0, MAX_FRAMES);
      if (base % PAGEBLOCK_NR_PAGES) fail("EINVAL", fn, `cma[${i}].base ${base} is not pageblock-aligned (${PAGEBLOCK_NR_PAGES} pages)`, base);
      if (base < span.start || base + pages > span.end)
        fail("EINVAL", fn, `cma[${i}]: pfns ${base}-${base + pages} do not lie inside node ${node}'s ${zone} zone (${span.start}-${span.end})`, base);
      const other = overlaps(base, pages);
      if (other) fail("EINVAL", fn, `cma[${i}]: pfns ${base}-${base + pages} overlap the area at ${other.base}-${other.base + other.pages}`, base);
    } else {
      base = Math.floor(span.end / PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES - pages;
      for (let other = overlaps(base, pages); other && base >= span.start; other = overlaps(base, pages)) base = other.base - pages;
      if (base < span.start) fail("EINVAL", fn, `cma[${i}]: node ${node}'s ${zone} zone has no room for ${pages} pageblock-aligned pages`, pages);
    }
    // The zero page is reserved: no area may hold it.
    if (base === 0) fail("EINVAL", fn, `cma[${i}] would hold pfn 0 (the zero page)`, base);
    areas.push({ node, zone, zoneId: spans.indexOf(span), base, pages });
  });
  return areas;
}

function defaultBuild(): WasmBuild {
  const env = typeof process !== "undefined" ? process.env?.MMEMU_BUILD : undefined;
  return env === "debug" ? "debug" : "release";
}
