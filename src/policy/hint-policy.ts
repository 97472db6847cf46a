// Placement policies for migration hints: given a page's access counters, where it should live.
import { fail } from "../errors.js";

export type Placement = "system" | "device";

/** What a policy sees of one page. Counters restart when the page moves. */
export interface PageHint {
  /** CPU accesses since the page last moved. */
  cpu: number;
  /** Device accesses since the page last moved. */
  device: number;
  /** Times the page has moved. */
  moves: number;
  /** Accesses (either side) since the page last moved. */
  since: number;
  /** Where it lives now. */
  placement: Placement;
}

export interface HintPolicy {
  /** Where the page should be, or null to leave it. */
  decide(page: Readonly<PageHint>): Placement | null;
}

export interface HysteresisOptions {
  /** Device accesses before a system page moves to the device (default 8). */
  toDevice?: number;
  /** CPU accesses before a device page moves back (default 8). */
  toSystem?: number;
  /** The winning side must have this many times the other side's accesses (default 2). */
  dominance?: number;
  /** After a move, accesses that must pass before the page may move again (default 32). */
  minDwell?: number;
}

/**
 * Threshold placement with hysteresis against ping-pong: a page moves only after enough
 * accesses from the other side, only when that side clearly dominates, and never again
 * before it has stayed put for `minDwell` accesses. With toDevice = toSystem = 1 and
 * dominance = minDwell = 0 it is the naive policy that follows every access.
 */
export class HysteresisPolicy implements HintPolicy {
  readonly toDevice: number;
  readonly toSystem: number;
  readonly dominance: number;
  readonly minDwell: number;

  constructor(opts: HysteresisOptions = {}) {
    this.toDevice = count("toDevice", opts.toDevice ?? 8, 1);
    this.toSystem = count("toSystem", opts.toSystem ?? 8, 1);
    this.dominance = count("dominance", opts.dominance ?? 2, 0);
    this.minDwell = count("minDwell", opts.minDwell ?? 32, 0);
  }

  decide(p: Readonly<PageHint>): Placement | null {
    if (p.moves > 0 && p.since < this.minDwell) return null;
    if (p.placement === "system") return p.device >= this.toDevice && p.device >= this.dominance * p.cpu ? "device" : null;
    return p.cpu >= this.toSystem && p.cpu >= this.dominance * p.device ? "system" : null;
  }
}

function count(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > 2 ** 31)
    fail("EINVAL", "HysteresisPolicy", `${name} must be an integer >= ${min}, got ${String(v)}`, v);
  return v;
}
