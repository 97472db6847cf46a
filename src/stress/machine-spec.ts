// The machine a stress run uses: NUMA nodes and the devices its drivers register.
// Presets by name, or a JSON file checked field by field with size limits.
import type { MachineConfig } from "../config.js";

export type DeviceKind = "private" | "coherent";

export interface DeviceSpec {
  kind: DeviceKind;
  /** Pages of device memory. */
  pages: number;
}

export interface MachineSpec {
  /** Frames per node: ZONE_NORMAL and ZONE_MOVABLE. */
  nodes: { normal: number; movable: number }[];
  devices: DeviceSpec[];
}

export const PRESETS: Record<string, MachineSpec> = {
  small: { nodes: [{ normal: 16384, movable: 8192 }], devices: [{ kind: "private", pages: 4096 }, { kind: "coherent", pages: 4096 }] },
  default: { nodes: [{ normal: 65536, movable: 32768 }], devices: [{ kind: "private", pages: 16384 }, { kind: "coherent", pages: 16384 }] },
  large: {
    nodes: [{ normal: 262144, movable: 131072 }, { normal: 262144, movable: 131072 }],
    devices: [{ kind: "private", pages: 65536 }, { kind: "private", pages: 65536 }, { kind: "coherent", pages: 65536 }],
  },
};

export const LIMITS = { nodes: 8, zonePages: 1 << 22, totalPages: 1 << 23, devices: 4, devicePages: 1 << 20, fileBytes: 64 * 1024 };

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
  const o = object(v, where, ["nodes", "devices"]);
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
  const total = nodes.reduce((s, n) => s + n.normal + n.movable, 0) + devices.reduce((s, d) => s + d.pages, 0);
  if (total > LIMITS.totalPages) bad(`${where} has ${total} pages in all; the limit is ${LIMITS.totalPages}`);
  return { nodes, devices };
}

/** A preset name, or the text of a JSON machine file. */
export function resolveMachine(nameOrJson: string, fromFile: boolean, where = "machine"): MachineSpec {
  if (!fromFile) {
    const p = PRESETS[nameOrJson];
    if (!p) bad(`unknown machine preset "${nameOrJson}" (presets: ${Object.keys(PRESETS).join(", ")}; or a path to a .json file)`);
    return structuredClone(p!);
  }
  if (nameOrJson.length > LIMITS.fileBytes) bad(`${where} file is larger than ${LIMITS.fileBytes} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(nameOrJson);
  } catch (e) {
    bad(`${where} file is not valid JSON (${(e as Error).message})`);
  }
  return checkMachineSpec(parsed, where);
}

export function machineConfig(spec: MachineSpec, build: "debug" | "release"): MachineConfig {
  return {
    build,
    content: "tags",
    nodes: spec.nodes.map((n) => ({ normal: n.normal, movable: n.movable })),
    deviceMemory: spec.devices.reduce((s, d) => s + d.pages, 0),
    maxProcesses: 64,
  };
}
