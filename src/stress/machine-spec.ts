// The machine a stress run uses: NUMA nodes and the devices its drivers register.
// Presets by name, or a JSON file checked field by field with size limits.
import type { MachineConfig } from "../config.js";
import { parseJsonInput } from "./json-input.js";

export type DeviceKind = "private" | "coherent";

export interface DeviceSpec {
  kind: DeviceKind;
  /** Pages of device memory. */
  pages: number;
}

/** A CMA area: pageblocks at the top of a node's ZONE_NORMAL kept for cmaAlloc. */
export interface CmaSpec {
  node: number;
  /** A multiple of the pageblock (512 pages). */
  pages: number;
}

/** A pmem device (storage, or RAM when onlined): its pfns come after the devices' in deviceMemory. */
export interface PmemSpec {
  /** A multiple of the pageblock (512 pages). */
  pages: number;
  /** The node RAM mode onlines it to. */
  node: number;
}

export interface MachineSpec {
  /** Frames per node: ZONE_NORMAL and ZONE_MOVABLE. */
  nodes: { normal: number; movable: number }[];
  devices: DeviceSpec[];
  /** CMA areas (pin-storm needs one); none when absent. */
  cma?: CmaSpec[];
  /** pmem devices (the pmem scenario needs one); none when absent. */
  pmem?: PmemSpec[];
}

// Each preset has a CMA area of 1/16 of node 0's normal zone.
export const PRESETS: Record<string, MachineSpec> = {
  small: { nodes: [{ normal: 16384, movable: 8192 }], devices: [{ kind: "private", pages: 4096 }, { kind: "coherent", pages: 4096 }], cma: [{ node: 0, pages: 1024 }] },
  default: {
    nodes: [{ normal: 65536, movable: 32768 }], devices: [{ kind: "private", pages: 16384 }, { kind: "coherent", pages: 16384 }], cma: [{ node: 0, pages: 4096 }],
  },
  large: {
    nodes: [{ normal: 262144, movable: 131072 }, { normal: 262144, movable: 131072 }],
    devices: [{ kind: "private", pages: 65536 }, { kind: "private", pages: 65536 }, { kind: "coherent", pages: 65536 }],
    cma: [{ node: 0, pages: 16384 }],
  },
};

export const LIMITS = { nodes: 8, zonePages: 1 << 22, totalPages: 1 << 23, devices: 4, devicePages: 1 << 20, fileBytes: 64 * 1024, cmaAreas: 8, pmem: 4 };
/** CMA areas are whole pageblocks. */
const CMA_UNIT = 512;

/** Bad input from outside (a flag, a machine or replay file): the CLI prints it and exits 2. */
export class InputError extends Error {}

const bad = (what: string): never => {
  throw new InputError(what);
};

function count(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) bad(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v as number;
}

function object(v: unknown, what: string, keys: string[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  for (const k of Object.keys(v as object)) if (!keys.includes(k)) bad(`${what} has an unknown field "${k}" (known: ${keys.join(", ")})`);
  return v as Record<string, unknown>;
}

/** Checks a parsed machine description; returns a clean copy. */
export function checkMachineSpec(v: unknown, where = "machine"): MachineSpec {
  const o = object(v, where, ["nodes", "devices", "cma", "pmem"]);
  if (!Array.isArray(o.nodes) || o.nodes.length < 1 || o.nodes.length > LIMITS.nodes) bad(`${where}.nodes must be an array of 1 to ${LIMITS.nodes} nodes`);
  const nodes = (o.nodes as unknown[]).map((n, i) => {
    const x = object(n, `${where}.nodes[${i}]`, ["normal", "movable"]);
    return {
      normal: count(x.normal, `${where}.nodes[${i}].normal`, 1024, LIMITS.zonePages),
      movable: x.movable === undefined ? 0 : count(x.movable, `${where}.nodes[${i}].movable`, 0, LIMITS.zonePages),
    };
  });
  const devs = o.devices ?? [];
  if (!Array.isArray(devs) || devs.length > LIMITS.devices) bad(`${where}.devices must be an array of at most ${LIMITS.devices} devices`);
  const devices = (devs as unknown[]).map((d, i) => {
    const x = object(d, `${where}.devices[${i}]`, ["kind", "pages"]);
    if (x.kind !== "private" && x.kind !== "coherent") bad(`${where}.devices[${i}].kind must be "private" or "coherent", got ${JSON.stringify(x.kind)}`);
    return { kind: x.kind as DeviceKind, pages: count(x.pages, `${where}.devices[${i}].pages`, 64, LIMITS.devicePages) };
  });
  const pmem = o.pmem === undefined ? undefined : checkPmem(o.pmem, nodes, `${where}.pmem`);
  const total = nodes.reduce((s, n) => s + n.normal + n.movable, 0) + devices.reduce((s, d) => s + d.pages, 0) + (pmem ?? []).reduce((s, p) => s + p.pages, 0);
  if (total > LIMITS.totalPages) bad(`${where} has ${total} pages in all; the limit is ${LIMITS.totalPages}`);
  const out: MachineSpec = { nodes, devices };
  if (o.cma !== undefined) out.cma = checkCma(o.cma, nodes, `${where}.cma`);
  if (pmem) out.pmem = pmem;
  return out;
}

/** pmem devices: whole pageblocks, each on a node of the machine. */
function checkPmem(v: unknown, nodes: MachineSpec["nodes"], where: string): PmemSpec[] {
  if (!Array.isArray(v) || v.length > LIMITS.pmem) bad(`${where} must be an array of at most ${LIMITS.pmem} devices`);
  return (v as unknown[]).map((a, i) => {
    const x = object(a, `${where}[${i}]`, ["pages", "node"]);
    const pages = count(x.pages, `${where}[${i}].pages`, CMA_UNIT, LIMITS.devicePages);
    if (pages % CMA_UNIT) bad(`${where}[${i}].pages must be a multiple of the pageblock (${CMA_UNIT} pages), got ${pages}`);
    const node = x.node === undefined ? 0 : count(x.node, `${where}[${i}].node`, 0, nodes.length - 1);
    return { pages, node };
  });
}

/**
 * The spec with a pmem device added when it has none (the pmem scenario on a preset): an
 * eighth of node 0's normal zone, in whole pageblocks.
 */
export function withPmem(spec: MachineSpec): MachineSpec {
  if (spec.pmem?.length) return spec;
  const pages = Math.max(CMA_UNIT, Math.floor(spec.nodes[0]!.normal / 8 / CMA_UNIT) * CMA_UNIT);
  return { ...structuredClone(spec), pmem: [{ pages, node: 0 }] };
}

/** CMA areas: whole pageblocks in a node's normal zone, all of a node's areas at most half of it. */
function checkCma(v: unknown, nodes: MachineSpec["nodes"], where: string): CmaSpec[] {
  if (!Array.isArray(v) || v.length > LIMITS.cmaAreas) bad(`${where} must be an array of at most ${LIMITS.cmaAreas} areas`);
  const used = new Array<number>(nodes.length).fill(0);
  return (v as unknown[]).map((a, i) => {
    const x = object(a, `${where}[${i}]`, ["node", "pages"]);
    const node = count(x.node, `${where}[${i}].node`, 0, nodes.length - 1);
    const pages = count(x.pages, `${where}[${i}].pages`, CMA_UNIT, LIMITS.zonePages);
    if (pages % CMA_UNIT) bad(`${where}[${i}].pages must be a multiple of the pageblock (${CMA_UNIT} pages), got ${pages}`);
    used[node]! += pages;
    // Half the zone at most: the kernel's own allocations need the rest.
    if (used[node]! > nodes[node]!.normal / 2) bad(`${where}: the CMA areas of node ${node} take ${used[node]} pages, more than half its normal zone (${nodes[node]!.normal})`);
    return { node, pages };
  });
}

/** A preset name, or the text of a JSON machine file. */
export function resolveMachine(nameOrJson: string, fromFile: boolean, where = "machine"): MachineSpec {
  if (!fromFile) {
    const p = PRESETS[nameOrJson];
    if (!p) bad(`unknown machine preset "${nameOrJson}" (presets: ${Object.keys(PRESETS).join(", ")}; or a path to a .json file)`);
    return structuredClone(p!);
  }
  return checkMachineSpec(parseJsonInput(nameOrJson, `${where} file`, LIMITS.fileBytes), where);
}

export function machineConfig(spec: MachineSpec, build: "debug" | "release"): MachineConfig {
  return {
    build,
    content: "tags",
    nodes: spec.nodes.map((n) => ({ normal: n.normal, movable: n.movable })),
    deviceMemory: spec.devices.reduce((s, d) => s + d.pages, 0) + (spec.pmem ?? []).reduce((s, p) => s + p.pages, 0),
    maxProcesses: 64,
    ...(spec.cma?.length ? { cma: spec.cma.map((a) => ({ node: a.node, pages: a.pages })) } : {}),
  };
}
