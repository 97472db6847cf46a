// machine.inject: fault injection as an API. Allocation failures are armed in the Wasm core
// (assembly/inject.ts, up to 8 at once); the other sites are decided here, where the machine
// and the emulator's drivers call the hooks below on their own paths.
import type { Machine } from "../machine.js";
import { MmError, fail } from "../errors.js";
import { Rng } from "../random.js";
import { EmulatedBlockDevice } from "../block/device.js";
import { PmemDevice } from "../pmem/device.js";
import type { ErrorRules } from "../block/faults.js";
import type { MmuIntervalNotifier } from "../hmm/notifier.js";
import { validateSpec, type CallbackName, type Injection, type InjectionSpec, type Known } from "./spec.js";

/** Wasm slots for allocation rules (assembly/inject.ts INJECT_SLOTS). */
const ALLOC_SLOTS = 8;
const UNLIMITED = 0xffffffff;

/** When a TypeScript-side rule fires: the nth-and-times countdown, or a seeded coin. */
class Trigger {
  private skip: number;
  private left: number;
  private readonly p: number;
  private readonly rng: Rng | null;
  hits = 0;

  constructor(spec: InjectionSpec) {
    if ("nth" in spec && spec.nth !== undefined) {
      this.skip = spec.nth - 1;
      this.left = spec.times ?? 1;
      this.p = 1;
      this.rng = null;
    } else {
      const s = spec as { probability: number; seed: number; times?: number };
      this.skip = 0;
      this.left = s.times ?? Infinity;
      this.p = s.probability;
      this.rng = new Rng(s.seed);
    }
  }

  /** One matching event: whether it fails. */
  fire(): boolean {
    if (this.left <= 0) return false;
    if (this.rng === null) {
      if (this.skip > 0) {
        this.skip--;
        return false;
      }
    } else if (this.rng.next() >= this.p) {
      return false;
    }
    this.left--;
    this.hits++;
    return true;
  }
}

class Entry implements Injection {
  /** @internal */ trigger: Trigger | null = null;
  /** @internal The Wasm slot of an allocation rule, while it holds one. */
  slot = -1;
  /** @internal Hits of an allocation rule whose slot went back. */
  doneHits = 0;
  /** @internal Takes a blockio rule off its device. */
  undo: (() => void) | null = null;
  /** @internal The zone id an allocation rule's `zone` (an index into zones() when added) named. */
  zoneId = -1;

  constructor(
    private readonly owner: Injector,
    readonly id: number,
    readonly spec: InjectionSpec,
  ) {}

  get hits(): number {
    if (this.trigger) return this.trigger.hits;
    return this.slot >= 0 ? this.owner.slotHits(this.slot) : this.doneHits;
  }

  remove(): void {
    this.owner.remove(this);
  }
}

export class Injector {
  private readonly entries: Entry[] = [];
  private nextId = 1;
  private readonly slots: (Entry | null)[] = new Array(ALLOC_SLOTS).fill(null);
  private readonly drivers = new Set<string>();
  private readonly engines = new Set<string>();
  /** Whether any TypeScript-side rule exists (the hooks return at once otherwise). */
  private tsRules = 0;

  /** @internal */
  constructor(private readonly m: Machine) {}

  /** Arms a fault; EINVAL naming the bad field (and nothing armed) for a bad spec. */
  add(spec: InjectionSpec): Injection {
    const s = validateSpec(spec, this.known());
    const e = new Entry(this, this.nextId, s);
    if (s.site === "alloc") {
      if (s.zone !== undefined) e.zoneId = this.m.layout.zones[s.zone]!.id;
      const slot = this.freeSlot();
      if (slot < 0) fail("EBUSY", "inject.add", `${ALLOC_SLOTS} allocation faults are armed already; remove one first`, ALLOC_SLOTS);
      this.armSlot(e, slot);
    } else {
      e.trigger = new Trigger(s);
      if (s.site === "blockio") {
        const trig = e.trigger;
        e.undo = this.blockRules(s.device).addGate(s.op ?? null, () => trig.fire());
      }
      this.tsRules++;
    }
    this.nextId++;
    this.entries.push(e);
    return e;
  }

  /** Disarms one fault (EINVAL if it is not armed on this machine). */
  remove(inj: Injection): void {
    const i = this.entries.indexOf(inj as Entry);
    if (i < 0) fail("EINVAL", "inject.remove", `injection ${String((inj as Entry)?.id)} is not armed on this machine`, inj);
    const e = this.entries[i]!;
    this.entries.splice(i, 1);
    this.release(e);
  }

  /** Disarms every fault. */
  clear(): void {
    for (const e of this.entries.splice(0)) this.release(e);
  }

  /** The faults armed, oldest first (with what they have injected so far). */
  list(): Injection[] {
    return [...this.entries];
  }

  // ---- for the machine and the drivers -----------------------------------------------

  /** @internal A driver's device name that `device` may use before it has memory (dmirror, pagers). */
  registerDevice(name: string): void {
    this.drivers.add(name);
  }

  /** @internal A Scheduler's copy engine. */
  registerEngine(name: string): void {
    this.engines.add(name);
  }

  /** @internal Device ranges came or went: allocation rules' zone masks follow. */
  zonesChanged(): void {
    for (const e of this.slots) if (e) {
      const [lo, hi] = this.zoneMask(e);
      this.m.core.injectAllocMask(e.slot, lo, hi);
    }
  }

  /** @internal Hits of a Wasm slot. */
  slotHits(slot: number): number {
    return this.m.core.injectAllocHits(slot);
  }

  /** @internal One page request of a driver's allocator in device zone `zone`: whether it fails. */
  deviceAllocFails(zone: number): boolean {
    // No rule holds a slot: no call into the core per page.
    return this.slots.some((e) => e !== null) && this.m.core.injectAllocCheck(zone) !== 0;
  }

  /** @internal Whether any rule decided in TypeScript is armed (hooks cost nothing otherwise). */
  driverRulesArmed(): boolean {
    return this.tsRules > 0;
  }

  /** @internal Whether any copy rule is armed (allocAndCopy then looks at each page it filled). */
  copyArmed(): boolean {
    return this.tsRules > 0 && this.entries.some((e) => e.spec.site === "copy");
  }

  /** @internal One page a driver copies for a migration on `device`: whether the copy fails. */
  copyFails(device: string | null): boolean {
    if (this.tsRules === 0) return false;
    let failed = false;
    for (const e of this.entries) {
      if (e.spec.site !== "copy" || !matchesDevice(e.spec.device, device)) continue;
      if (e.trigger!.fire()) failed = true;
    }
    return failed;
  }

  /** @internal A driver callback is about to run: throws if an injected fault makes it throw. */
  callback(device: string | null, cb: CallbackName): void {
    if (this.tsRules === 0) return;
    let failed = false;
    for (const e of this.entries) {
      if (e.spec.site !== "callback" || e.spec.callback !== cb || !matchesDevice(e.spec.device, device)) continue;
      if (e.trigger!.fire()) failed = true;
    }
    if (failed) throw new MmError("EIO", cb, `${device ?? "the driver"}'s ${cb} callback threw (injected fault)`, device);
  }

  /** @internal A non-blockable invalidation reaches `sub`: whether its invalidate returns false. */
  notifierRefuses(sub: MmuIntervalNotifier): boolean {
    if (this.tsRules === 0) return false;
    let refused = false;
    for (const e of this.entries) {
      if (e.spec.site !== "notifier") continue;
      const o = e.spec.owner;
      if (o !== undefined && o !== sub && o !== sub.ops && o !== sub.mm) continue;
      if (e.trigger!.fire()) refused = true;
    }
    return refused;
  }

  /** @internal Extra ns the next copy of engine `name` takes. */
  engineDelay(name: string): number {
    if (this.tsRules === 0) return 0;
    let ns = 0;
    for (const e of this.entries) {
      if (e.spec.site !== "engine" || e.spec.device !== name) continue;
      if (e.trigger!.fire()) ns += e.spec.delayNs;
    }
    return ns;
  }

  // ---- internals -------------------------------------------------------------------

  private known(): Known {
    const devices = new Set<string>(this.drivers);
    for (const pg of this.m.pgmaps.values()) devices.add(pg.name);
    const blockDevices = new Set<string>(this.m.blockDevices.map((d) => d.name));
    for (const p of this.m.pmems) blockDevices.add(p.name);
    return { zones: this.m.layout.zones.length, nodes: this.m.config.nodes.length, devices, blockDevices, engines: this.engines };
  }

  private blockRules(name: string): ErrorRules {
    const d = this.m.blockDevices.find((x) => x.name === name) ?? this.m.pmems.find((x) => x.name === name);
    if (d instanceof EmulatedBlockDevice) return d.rules;
    if (d instanceof PmemDevice) return d.errors;
    return fail("EINVAL", "inject.add", `device ${name} takes no injected I/O errors`, name);
  }

  /** A free Wasm slot, taking back those of allocation rules that are used up. */
  private freeSlot(): number {
    let slot = this.slots.indexOf(null);
    if (slot >= 0) return slot;
    for (let i = 0; i < ALLOC_SLOTS; i++) {
      const e = this.slots[i]!;
      if (this.m.core.injectAllocLive(i)) continue;
      e.doneHits = this.slotHits(i);
      e.slot = -1;
      this.slots[i] = null;
      slot = i;
      break;
    }
    return slot;
  }

  private armSlot(e: Entry, slot: number): void {
    const s = e.spec as Extract<InjectionSpec, { site: "alloc" }> & { nth?: number; probability?: number; seed?: number; times?: number };
    const [lo, hi] = this.zoneMask(e);
    const left = s.times === Infinity ? UNLIMITED : s.times ?? (s.nth !== undefined ? 1 : UNLIMITED);
    if (s.nth !== undefined) this.m.core.injectAllocSet(slot, lo, hi, 1, s.nth - 1, left, 1, 0);
    else this.m.core.injectAllocSet(slot, lo, hi, 2, 0, left, s.probability!, s.seed! >>> 0);
    e.slot = slot;
    this.slots[slot] = e;
  }

  /** The zone ids an allocation rule covers, as a 64-bit mask in two u32 halves. */
  private zoneMask(e: Entry): [number, number] {
    const s = e.spec as Extract<InjectionSpec, { site: "alloc" }>;
    const zones: { id: number; node: number; device: string | null }[] = [
      ...this.m.layout.zones.map((z) => ({ id: z.id, node: z.node, device: null })),
      ...[...this.m.pgmaps.values()].map((p) => ({ id: p.zone, node: p.node, device: p.name })),
    ];
    let lo = 0;
    let hi = 0;
    for (const z of zones) {
      if (s.zone !== undefined && (z.device !== null || z.id !== e.zoneId)) continue;
      if (s.node !== undefined && z.node !== s.node) continue;
      if (s.device !== undefined && z.device !== s.device) continue;
      if (z.id < 32) lo |= 1 << z.id;
      else hi |= 1 << (z.id - 32);
    }
    return [lo >>> 0, hi >>> 0];
  }

  private release(e: Entry): void {
    if (e.slot >= 0) {
      e.doneHits = this.slotHits(e.slot);
      this.m.core.injectAllocSet(e.slot, 0, 0, 0, 0, 0, 0, 0);
      this.slots[e.slot] = null;
      e.slot = -1;
    }
    if (e.trigger) this.tsRules--;
    e.undo?.();
    e.undo = null;
  }
}

function matchesDevice(want: string | undefined, device: string | null): boolean {
  return want === undefined || want === device;
}
