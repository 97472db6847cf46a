// Every fault the fuzzer injects goes through this module, and every one is armed with
// machine.inject (src/inject): page allocations (any, or by zone, node or dmirror device),
// dmirror copies and driver callbacks, interval-notifier refusals (for the oomreap op),
// block-device I/O and late copy engines. The `fault` op's three small integers decode to
// one injection spec here, so a replay file names its faults as data.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import type { CallbackName, Injection, InjectionSpec } from "../inject/spec.js";
import { MmError } from "../errors.js";

/** The `fault` op's sites (its first argument). Sites 0-6 keep the meaning they had before machine.inject. */
export const FAULT_SITES = [
  "blockio-write", "blockio-read", "blockio-flush", "devalloc", "engine", "alloc", "clear",
  "alloc-filtered", "copy", "callback", "notifier", "blockio",
] as const;
export const MAX_FAULT_SITE = FAULT_SITES.length - 1;
/** The `fault` op's second argument: sites 7 and up read a target (bits 0-3), a level (4-6) and a mode (bit 7). */
export const MAX_FAULT_ARG = 255;
export const MAX_FAULT_TIMES = 3;

/** The callbacks the fuzzer reaches through dmirror (memory_failure has no path in its programs). */
const FUZZ_CALLBACKS: readonly CallbackName[] = ["migrate_to_ram", "alloc_and_copy", "finalize_and_map", "page_free"];
/** `times` of sites 7 and up: the count of failures (nth mode) or their cap (probability mode). */
const TIMES = [1, 2, 8, Infinity];

/** What a fault op needs to know about the fuzzer's machine. */
export interface FaultWorld {
  /** System zones (index into zones()). */
  zones: number;
  nodes: number;
  /** dmirror device names, by device id. */
  devices: readonly string[];
  /** The block device's name. */
  blockDevice: string;
  /** The simulated threads' copy engine (a Scheduler engine name). */
  engine: string;
  /** The live process with fuzzer id `pid`, if any (a notifier rule may name one as owner). */
  process(pid: number): Process | undefined;
}

/** A decoded fault op: an injection spec and the label it is counted under, or "clear". */
export interface FaultRule {
  label: string;
  spec: InjectionSpec;
}

/** The fuzzer's `fault` op: (site, arg, times) → the injection it arms. */
export function faultRule(site: number, arg: number, times: number, w: FaultWorld): FaultRule | "clear" {
  const t = times + 1;
  const target = arg & 15;
  const level = (arg >> 4) & 7;
  // Sites 7 and up: fail the nth matching event and the next ones, or each with a seeded
  // probability. Page allocations are frequent; a device's copies and callbacks come a few per program.
  const prob = (arg & 128) !== 0;
  const seed = arg * 131 + times;
  const when = prob ? { probability: (level + 1) / 32, seed, times: TIMES[times]! } : { nth: 1 + 3 * level, times: TIMES[times]! };
  const rare = prob ? { probability: (level + 1) / 8, seed, times: TIMES[times]! } : { nth: 1 + (level & 3), times: TIMES[times]! };
  const dev = (i: number) => w.devices[i % w.devices.length]!;
  switch (site) {
    case 0: return { label: "blockio", spec: { site: "blockio", device: w.blockDevice, op: "write", nth: 1, times: t } };
    case 1: return { label: "blockio", spec: { site: "blockio", device: w.blockDevice, op: "read", nth: 1, times: t } };
    case 2: return { label: "blockio", spec: { site: "blockio", device: w.blockDevice, op: "flush", nth: 1, times: t } };
    // Was dmirror's one-shot FAIL_ALLOC: the device's next page allocations fail.
    case 3: return { label: "alloc:device", spec: { site: "alloc", device: dev(arg), nth: 1, times: t } };
    // Was the scheduler's failed migration (now alloc and copy sites); a late engine instead.
    case 4: return { label: "engine", spec: { site: "engine", device: w.engine, delayNs: (arg + 1) * 2000, nth: 1, times: t } };
    case 5: return { label: "alloc", spec: { site: "alloc", nth: arg + 1, times: t } };
    case 7: {
      const f = target % (1 + w.zones + w.nodes + w.devices.length);
      if (f === 0) return { label: "alloc", spec: { site: "alloc", ...when } };
      if (f <= w.zones) return { label: "alloc:zone", spec: { site: "alloc", zone: f - 1, ...when } };
      if (f <= w.zones + w.nodes) return { label: "alloc:node", spec: { site: "alloc", node: f - 1 - w.zones, ...when } };
      return { label: "alloc:device", spec: { site: "alloc", device: dev(f - 1 - w.zones - w.nodes), ...when } };
    }
    case 8: {
      // Devices 0-3, or any migration (a system-to-system one of the simulated threads too).
      const d = target % (w.devices.length + 1);
      return { label: "copy", spec: d < w.devices.length ? { site: "copy", device: dev(d), ...rare } : { site: "copy", ...rare } };
    }
    case 9: {
      const callback = FUZZ_CALLBACKS[target & 3]!;
      // Only the device-private devices (0 and 1) have a migrate_to_ram.
      const d = callback === "migrate_to_ram" ? (target >> 2) & 1 : target >> 2;
      return { label: `callback:${callback}`, spec: { site: "callback", callback, device: dev(d), ...rare } };
    }
    case 10: {
      // Any notifier, or those of one process (the notifier's mm).
      const owner = target & 8 ? w.process(target & 7) : undefined;
      return { label: "notifier", spec: owner ? { site: "notifier", owner, ...rare } : { site: "notifier", ...rare } };
    }
    case 11: {
      const op = (["read", "write", "flush", undefined] as const)[target & 3];
      return { label: "blockio", spec: op ? { site: "blockio", device: w.blockDevice, op, ...rare } : { site: "blockio", device: w.blockDevice, ...rare } };
    }
    default: return "clear";
  }
}

/** Errnos the restore paths of a site give the caller (ENOMEM, EBUSY and EAGAIN are always expected). */
function siteErrnos(spec: InjectionSpec): readonly string[] {
  switch (spec.site) {
    // Write-back errors stay with the file (AS_EIO); a read error is SIGBUS on a fault, EFAULT on GUP.
    case "blockio": return ["EIO", "ENOSPC", "SIGBUS", "EFAULT"];
    // dmirror gives -EIO for a failed DMA; migrate_to_ram gives VM_FAULT_SIGBUS.
    case "copy": return ["EIO", "SIGBUS"];
    // dmirror's -EIO; migrate_to_ram → SIGBUS; page_free → the call completes, the error goes to machine.driverErrors.
    case "callback": return ["EIO", "SIGBUS"];
    // alloc: ENOMEM (always expected); notifier: only the OOM reaper, which reports; engine: only time.
    default: return [];
  }
}

export interface SiteCount {
  /** Rules armed. */
  armed: number;
  /** Faults they injected. */
  hits: number;
}

export class FaultInjector {
  /** Rules armed (a rule counts once, however many times it fires). */
  injected = 0;
  /** Rules machine.inject refused (EBUSY: all 8 allocation slots hold live rules). */
  refused = 0;
  private readonly all: { label: string; inj: Injection }[] = [];
  private live: Injection[] = [];
  private errnos = new Set<string>();

  constructor(private readonly m: Machine) {}

  /** Arms a rule; false when machine.inject refuses it (its allocation slots are full). */
  add(rule: FaultRule): boolean {
    let inj: Injection;
    try {
      inj = this.m.inject.add(rule.spec);
    } catch (e) {
      if (e instanceof MmError && e.code === "EBUSY") {
        this.refused++;
        return false;
      }
      throw e;
    }
    this.all.push({ label: rule.label, inj });
    this.live.push(inj);
    for (const x of siteErrnos(rule.spec)) this.errnos.add(x);
    this.injected++;
    return true;
  }

  /** Clears every rule (machine.inject.clear()): afterwards no injected fault fires. */
  clear(): void {
    this.m.inject.clear();
    this.live = [];
    this.errnos = new Set();
  }

  /** Whether a rule was armed since the last clear. */
  get armed(): boolean {
    return this.live.length > 0;
  }

  /** The errnos the armed rules' sites may give (empty when none is armed). */
  expectedErrnos(): ReadonlySet<string> {
    return this.errnos;
  }

  /** Whether a rule of this spec shape is armed. */
  armedWhere(pred: (s: InjectionSpec) => boolean): boolean {
    return this.live.some((i) => pred(i.spec));
  }

  /** Rules armed and faults injected, by label. */
  bySite(): Record<string, SiteCount> {
    const out: Record<string, SiteCount> = {};
    for (const { label, inj } of this.all) {
      const c = (out[label] ??= { armed: 0, hits: 0 });
      c.armed++;
      c.hits += inj.hits;
    }
    return out;
  }
}
