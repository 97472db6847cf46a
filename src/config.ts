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
}

const MAX_NODES = 16;
const MAX_FRAMES = 2 ** 31;

function count(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    fail("EINVAL", "Machine.create", `${name} must be an integer in [${min}, ${max}], got ${String(v)}`, v);
  return v;
}

const KNOWN_KEYS = new Set(["nodes", "deviceMemory", "content", "tablePages", "maxProcesses", "maxVmas", "maxShmem", "minFreeKbytes", "build"]);

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
  };
}

function defaultBuild(): WasmBuild {
  const env = typeof process !== "undefined" ? process.env?.MMEMU_BUILD : undefined;
  return env === "debug" ? "debug" : "release";
}
