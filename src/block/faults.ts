// Injected I/O errors: each rule fails the next `left` requests of its kind that touch its
// sector range; every rule a request matches uses up one of its times.

export type BlockOp = "read" | "write" | "flush";

interface Rule {
  op: BlockOp;
  start: number;
  end: number;
  left: number;
  /** No sector given: every request of the kind matches (a flush with nothing cached too). */
  whole: boolean;
}

export class ErrorRules {
  private rules: Rule[] = [];

  add(op: BlockOp, start: number, end: number, times: number, whole: boolean): void {
    this.rules.push({ op, start, end, left: times, whole });
  }

  clear(): void {
    this.rules = [];
  }

  get size(): number {
    return this.rules.length;
  }

  /** Whether a request of kind op fails (`touches` says whether it touches a range); consumes the matching rules' times. */
  take(op: BlockOp, touches: (start: number, end: number) => boolean): boolean {
    if (this.rules.length === 0) return false;
    const hit: Rule[] = [];
    for (const r of this.rules) {
      if (r.op !== op) continue;
      if (r.whole || touches(r.start, r.end)) hit.push(r);
    }
    if (hit.length === 0) return false;
    for (const r of hit) r.left--;
    this.rules = this.rules.filter((r) => r.left > 0);
    return true;
  }
}

