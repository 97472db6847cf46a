// The shape of an injected fault (machine.inject.add): where it strikes (Site) and when (When).
// validateSpec checks a spec whole and names the first bad field; nothing is armed before.
import { fail } from "../errors.js";
import type { BlockOp } from "../block/faults.js";

/**
 * Driver callbacks an injected fault can make throw: the dev_pagemap ops the machine calls
 * (migrate_to_ram, page_free, memory_failure) and the two steps of a driver's migration that
 * the emulator's drivers run (alloc_and_copy: MigrateVma.allocAndCopy and dmirror's loop;
 * finalize_and_map: dmirror mapping the migrated pages in its device table).
 */
export const CALLBACKS = ["migrate_to_ram", "page_free", "memory_failure", "alloc_and_copy", "finalize_and_map"] as const;
export type CallbackName = (typeof CALLBACKS)[number];

export type Site =
  /** Page allocations: the buddy allocator's requests by preferred zone or node, or a device's page allocations. */
  | { site: "alloc"; zone?: number; node?: number; device?: string }
  /** A driver's migrate copy fails (a DMA error): the page is not migrated. */
  | { site: "copy"; device?: string }
  /** A driver callback throws. */
  | { site: "callback"; device?: string; callback: CallbackName }
  /** An interval notifier's invalidate returns false on a non-blockable range (owner: the notifier, its ops, or its process). */
  | { site: "notifier"; owner?: unknown }
  /** Block-device (or pmem storage) I/O fails with -EIO. */
  | { site: "blockio"; device: string; op?: BlockOp }
  /** A copy engine of a Scheduler runs late by delayNs per copy. */
  | { site: "engine"; device: string; delayNs: number };

/** Fail the nth matching event (1-based) and the next times-1 (default 1), or each with probability p (times caps it). */
export type When = { nth: number; times?: number } | { probability: number; seed: number; times?: number };

export type InjectionSpec = Site & When;

export interface Injection {
  readonly id: number;
  readonly spec: InjectionSpec;
  /** Faults it has injected. */
  readonly hits: number;
  remove(): void;
}

const SITE_KEYS: Record<string, readonly string[]> = {
  alloc: ["zone", "node", "device"],
  copy: ["device"],
  callback: ["device", "callback"],
  notifier: ["owner"],
  blockio: ["device", "op"],
  engine: ["device", "delayNs"],
};
const WHEN_KEYS = ["nth", "times", "probability", "seed"];

/** What the machine can name, for the site filters. */
export interface Known {
  zones: number;
  nodes: number;
  devices: ReadonlySet<string>;
  blockDevices: ReadonlySet<string>;
  engines: ReadonlySet<string>;
}

const FN = "inject.add";

/** Checks `spec` whole; returns a frozen copy. */
export function validateSpec(spec: unknown, known: Known): InjectionSpec {
  if (spec === null || typeof spec !== "object") fail("EINVAL", FN, `the spec must be an object like { site: "alloc", nth: 1 }`, spec);
  const s = spec as Record<string, unknown>;
  const site = s.site;
  if (typeof site !== "string" || !Object.hasOwn(SITE_KEYS, site))
    fail("EINVAL", FN, `site must be one of ${Object.keys(SITE_KEYS).join(", ")}; got ${String(site)}`, site);
  const allowed = new Set(["site", ...SITE_KEYS[site]!, ...WHEN_KEYS]);
  for (const k of Object.keys(s)) if (!allowed.has(k)) fail("EINVAL", FN, `unknown field ${k} for site "${site}"`, k);
  validateWhen(s);
  const device = s.device;
  const needsDevice = site === "blockio" || site === "engine";
  if (device !== undefined || needsDevice) {
    if (typeof device !== "string" || device === "") fail("EINVAL", FN, `device must be a device's name`, device);
    const names = site === "blockio" ? known.blockDevices : site === "engine" ? known.engines : known.devices;
    if (!names.has(device)) fail("EINVAL", FN, `device ${device} is not a ${site === "blockio" ? "block device" : site === "engine" ? "copy engine" : "device"} of this machine`, device);
  }
  if (site === "alloc") {
    if (s.zone !== undefined && (!Number.isInteger(s.zone) || (s.zone as number) < 0 || (s.zone as number) >= known.zones))
      fail("EINVAL", FN, `zone ${String(s.zone)} is not a zone of this machine (0..${known.zones - 1}, as zones() lists them)`, s.zone);
    if (s.node !== undefined && (!Number.isInteger(s.node) || (s.node as number) < 0 || (s.node as number) >= known.nodes))
      fail("EINVAL", FN, `node ${String(s.node)} does not exist (the machine has ${known.nodes})`, s.node);
    if (s.device !== undefined && s.zone !== undefined) fail("EINVAL", FN, `zone names a system zone; a device's pages are chosen by device alone`, s.zone);
  }
  if (site === "callback" && !(CALLBACKS as readonly unknown[]).includes(s.callback))
    fail("EINVAL", FN, `callback must be one of ${CALLBACKS.join(", ")}; got ${String(s.callback)}`, s.callback);
  if (site === "blockio" && s.op !== undefined && s.op !== "read" && s.op !== "write" && s.op !== "flush")
    fail("EINVAL", FN, `op must be "read", "write" or "flush"; got ${String(s.op)}`, s.op);
  if (site === "engine" && (typeof s.delayNs !== "number" || !Number.isFinite(s.delayNs) || s.delayNs < 0))
    fail("EINVAL", FN, `delayNs must be a non-negative number of ns; got ${String(s.delayNs)}`, s.delayNs);
  return Object.freeze({ ...s }) as unknown as InjectionSpec;
}

function validateWhen(s: Record<string, unknown>): void {
  const hasNth = s.nth !== undefined;
  const hasP = s.probability !== undefined;
  if (hasNth === hasP) fail("EINVAL", FN, `give either nth or probability (with seed)`, hasNth ? s.probability : s.nth);
  if (hasNth) {
    if (!Number.isInteger(s.nth) || (s.nth as number) < 1) fail("EINVAL", FN, `nth must be a positive integer (1 = the next event); got ${String(s.nth)}`, s.nth);
    if ((s.nth as number) > 0xfffffffe) fail("EINVAL", FN, `nth ${String(s.nth)} is too large`, s.nth);
    if (s.seed !== undefined) fail("EINVAL", FN, `seed goes with probability, not nth`, s.seed);
  } else {
    const p = s.probability;
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) fail("EINVAL", FN, `probability must be a number in [0, 1]; got ${String(p)}`, p);
    if (!Number.isInteger(s.seed)) fail("EINVAL", FN, `seed must be an integer; got ${String(s.seed)}`, s.seed);
  }
  const t = s.times;
  if (t !== undefined && !(t === Infinity || (Number.isInteger(t) && (t as number) >= 1 && (t as number) < 0xffffffff)))
    fail("EINVAL", FN, `times must be a positive integer or Infinity; got ${String(t)}`, t);
}
