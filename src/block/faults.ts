// Injected I/O errors: each rule fails the next `left` requests of its kind that touch its
// sector range; every rule a request matches uses up one of its times.

import { fail } from "../errors.js";
import type { InjectedError } from "./types.js";

export type BlockOp = "read" | "write" | "flush";

interface Rule {
  /** null: every kind of request (machine.inject rules without an op). */
  op: BlockOp | null;
  start: number;
  end: number;
  left: number;
  /** No sector given: every request of the kind matches (a flush with nothing cached too). */
  whole: boolean;
  /** machine.inject's rules: asked, request by request, whether a matching one fails. */
  gate?: () => boolean;
}

export class ErrorRules {
  private rules: Rule[] = [];

  /**
   * injectError's rule for a device of `nrSectors` named `dev`: checked whole (EINVAL, no
   * rule added) before it is kept. No sector means every request of the kind.
   */
  inject(fn: string, dev: string, nrSectors: number, e: InjectedError): void {
    if (e === null || typeof e !== "object") fail("EINVAL", fn, `the error must be an object like { op: "write", sector: 0 }`, e);
    for (const k of Object.keys(e)) if (!["op", "sector", "count", "times"].includes(k)) fail("EINVAL", fn, `unknown key ${k}`, k);
    if (e.op !== "read" && e.op !== "write" && e.op !== "flush") fail("EINVAL", fn, `op must be "read", "write" or "flush", got ${String(e.op)}`, e.op);
    const times = e.times ?? Infinity;
    if (!(times === Infinity || (Number.isInteger(times) && times >= 1)))
      fail("EINVAL", fn, `times must be a positive integer or Infinity, got ${String(times)}`, times);
    if (e.sector === undefined) {
      if (e.count !== undefined) fail("EINVAL", fn, `count needs a sector to start from`, e.count);
      this.rules.push({ op: e.op, start: 0, end: nrSectors, left: times, whole: true });
      return;
    }
    if (!Number.isInteger(e.sector) || e.sector < 0 || e.sector >= nrSectors)
      fail("EINVAL", fn, `sector ${String(e.sector)} is beyond the end of device ${dev} (${nrSectors} sectors)`, e.sector);
    const count = e.count ?? 1;
    if (!Number.isInteger(count) || count < 1) fail("EINVAL", fn, `count must be a positive integer, got ${String(count)}`, count);
    if (e.sector + count > nrSectors)
      fail("EINVAL", fn, `sectors ${e.sector}..${e.sector + count - 1} run beyond the end of device ${dev} (${nrSectors} sectors)`, count);
    this.rules.push({ op: e.op, start: e.sector, end: e.sector + count, left: times, whole: false });
  }

  /** Clears injectError's rules (machine.inject's stay until it removes them). */
  clear(): void {
    this.rules = this.rules.filter((r) => r.gate);
  }

  /** @internal A machine.inject rule: requests of `op` (null: all) fail when `gate` says so. Returns its removal. */
  addGate(op: BlockOp | null, gate: () => boolean): () => void {
    const rule: Rule = { op, start: 0, end: Infinity, left: Infinity, whole: true, gate };
    this.rules.push(rule);
    return () => {
      this.rules = this.rules.filter((r) => r !== rule);
    };
  }

  get size(): number {
    return this.rules.length;
  }

  /** take() for a request over a list of sectors: it touches a rule whose range holds one of them. */
  takeSectors(op: BlockOp, sectors: ArrayLike<number>): boolean {
    return this.take(op, (start, end) => Array.prototype.some.call(sectors, (x: number) => x >= start && x < end));
  }

  /** Whether a request of kind op fails (`touches` says whether it touches a range); consumes the matching rules' times. */
  take(op: BlockOp, touches: (start: number, end: number) => boolean): boolean {
    if (this.rules.length === 0) return false;
    const hit: Rule[] = [];
    for (const r of this.rules) {
      if (r.op !== null && r.op !== op) continue;
      if (r.gate ? r.gate() : r.whole || touches(r.start, r.end)) hit.push(r);
    }
    if (hit.length === 0) return false;
    for (const r of hit) r.left--;
    this.rules = this.rules.filter((r) => r.left > 0);
    return true;
  }
}

