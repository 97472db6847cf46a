// Every fault the fuzzer injects goes through this module. Today it reaches the machine
// through what exists: block-device injected errors (BlockDevice.injectError), dmirror's
// one-shot HMM_DMIRROR_FLAG_FAIL_ALLOC, and the scheduler's migration failure (a copy
// engine whose next migration fails its allocation or aborts). Page-allocation faults in
// a zone (site "alloc") wait for machine.inject: add() says it could not arm them.
import type { BlockDevice } from "../block/types.js";
import { HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC, type HmmDmirror } from "../testing/dmirror.js";

export type FaultRule =
  /** The next `times` block requests of kind `op` on the device fail with EIO. */
  | { site: "blockio"; op: "read" | "write" | "flush"; times: number }
  /** The next page a dmirror device allocates for a migration to it is refused. */
  | { site: "devalloc"; device: number }
  /** The next simulated migration's engine fails: its allocation ("alloc") or its copy ("abort"). */
  | { site: "engine"; mode: "alloc" | "abort" }
  /** The nth page allocation from now fails, `times` times. */
  | { site: "alloc"; nth: number; times: number };

/** The fuzzer's `fault` op: site index → rule (arg and times are the op's other arguments). */
export function faultRule(site: number, arg: number, times: number): FaultRule | "clear" {
  const t = times + 1;
  switch (site) {
    case 0: return { site: "blockio", op: "write", times: t };
    case 1: return { site: "blockio", op: "read", times: t };
    case 2: return { site: "blockio", op: "flush", times: t };
    case 3: return { site: "devalloc", device: arg % 4 };
    case 4: return { site: "engine", mode: arg % 2 === 0 ? "alloc" : "abort" };
    case 5: return { site: "alloc", nth: arg + 1, times: t };
    default: return "clear";
  }
}

/** What the injector needs from the fuzzer's world. */
export interface FaultTargets {
  blockDevices(): readonly BlockDevice[];
  /** The open mirrors of dmirror device `device`. */
  mirrors(device: number): readonly HmmDmirror[];
  /** The flags a mirror of `device` keeps besides FAIL_ALLOC. */
  mirrorFlags(device: number): number;
}

export class FaultInjector {
  /** Rules armed (a rule counts once, however many times it fires). */
  injected = 0;
  /** Rules refused because the machine cannot inject that site yet. */
  unsupported = 0;
  private pendingEngine: ("alloc" | "abort")[] = [];
  private armedSince = false;

  constructor(private readonly targets: FaultTargets) {}

  /** Arms a rule; false (nothing armed) when this machine cannot inject at that site. */
  add(rule: FaultRule): boolean {
    switch (rule.site) {
      case "blockio": {
        const devs = this.targets.blockDevices();
        if (devs.length === 0) return this.refuse();
        for (const d of devs) d.injectError({ op: rule.op, times: rule.times });
        break;
      }
      case "devalloc": {
        const mirrors = this.targets.mirrors(rule.device);
        if (mirrors.length === 0) return this.refuse();
        for (const mi of mirrors) mi.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: this.targets.mirrorFlags(rule.device) | HMM_DMIRROR_FLAG_FAIL_ALLOC });
        break;
      }
      case "engine":
        this.pendingEngine.push(rule.mode);
        break;
      case "alloc":
        return this.refuse();
    }
    this.injected++;
    this.armedSince = true;
    return true;
  }

  /** Clears every rule: afterwards no injected fault fires. */
  clear(): void {
    for (const d of this.targets.blockDevices()) d.clearErrors();
    for (let dev = 0; dev < 4; dev++) for (const mi of this.targets.mirrors(dev)) mi.cmd(HMM_DMIRROR_FLAGS, { addr: 0, npages: this.targets.mirrorFlags(dev) });
    this.pendingEngine = [];
    this.armedSince = false;
  }

  /** Whether a fault may fire (a rule was armed since the last clear): then injected errnos are expected. */
  get armed(): boolean {
    return this.armedSince;
  }

  /** The failure the next simulated migration takes, if one is armed. */
  takeEngineFault(): "alloc" | "abort" | undefined {
    return this.pendingEngine.shift();
  }

  private refuse(): false {
    this.unsupported++;
    return false;
  }
}
