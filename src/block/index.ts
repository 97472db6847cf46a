// machine.addBlockDevice: validates the name and options, then attaches a new device.
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import { EmulatedBlockDevice, type ResolvedBlockOptions } from "./device.js";
import type { BlockDevice, BlockDeviceOptions } from "./types.js";

export { EmulatedBlockDevice, BLOCK_SECTOR_BYTES } from "./device.js";
export type { BlockDevice, BlockDeviceOptions, IoStats, InjectedError, Wear } from "./types.js";

/** Most sectors one device may have (8 TiB; the media is allocated only where written). */
export const MAX_BLOCK_SECTORS = 2 ** 31;

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const KEYS = new Set(["sectors", "volatileCache", "readLatencyNs", "writeLatencyNs", "bytesPerNs"]);

export function addBlockDevice(m: Machine, devices: BlockDevice[], name: string, opts: BlockDeviceOptions): BlockDevice {
  const fn = "addBlockDevice";
  if (typeof name !== "string" || !NAME.test(name))
    fail("EINVAL", fn, `device name ${JSON.stringify(name)} must be 1 to 32 lower-case letters, digits, '_' or '-', starting with a letter (like "nvme0n1")`, name);
  if (devices.some((d) => d.name === name)) fail("EEXIST", fn, `a block device named ${name} exists already`, name);
  const resolved = resolveOptions(fn, name, opts);
  const dev = new EmulatedBlockDevice(m, name, resolved);
  devices.push(dev);
  return dev;
}

function resolveOptions(fn: string, name: string, opts: BlockDeviceOptions): ResolvedBlockOptions {
  if (opts === null || typeof opts !== "object") fail("EINVAL", fn, `options for ${name} must be an object like { sectors: 1024 }`, opts);
  for (const k of Object.keys(opts)) if (!KEYS.has(k)) fail("EINVAL", fn, `unknown option ${k} for block device ${name}`, k);
  const { sectors } = opts;
  if (typeof sectors !== "number" || !Number.isInteger(sectors) || sectors < 1 || sectors > MAX_BLOCK_SECTORS)
    fail("EINVAL", fn, `sectors of ${name} must be an integer from 1 to ${MAX_BLOCK_SECTORS}, got ${String(sectors)}`, sectors);
  const volatileCache = opts.volatileCache ?? true;
  if (typeof volatileCache !== "boolean") fail("EINVAL", fn, `volatileCache of ${name} must be a boolean, got ${String(volatileCache)}`, volatileCache);
  const ns = (key: "readLatencyNs" | "writeLatencyNs"): number => {
    const v = opts[key] ?? 20_000;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) fail("EINVAL", fn, `${key} of ${name} must be a finite number >= 0, got ${String(v)}`, v);
    return v;
  };
  const bytesPerNs = opts.bytesPerNs ?? 2;
  if (typeof bytesPerNs !== "number" || !Number.isFinite(bytesPerNs) || bytesPerNs <= 0)
    fail("EINVAL", fn, `bytesPerNs of ${name} must be a finite number > 0, got ${String(bytesPerNs)}`, bytesPerNs);
  return { sectors, volatileCache, readLatencyNs: ns("readLatencyNs"), writeLatencyNs: ns("writeLatencyNs"), bytesPerNs };
}
