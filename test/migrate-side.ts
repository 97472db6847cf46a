// The ops two-machine migrate_vma tests share beside their migrations: CPU touches of the
// region, references a test holds on a page (a pin without GUP), and a child process.
import fc from "fast-check";
import { PAGE_SIZE, type Machine, type Process } from "../src/index.js";

export type HolderOp = { kind: "pin"; vpn: number } | { kind: "unpin" } | { kind: "fork" } | { kind: "childExit" };

/** The holder ops for fc.oneof, each with weight 1, pins among the first `pages` pages. */
export function holderOpArbs(pages: number): fc.WeightedArbitrary<HolderOp>[] {
  return [
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("pin" as const), vpn: fc.nat(pages - 1) }) },
    { weight: 1, arbitrary: fc.constant({ kind: "unpin" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "fork" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "childExit" as const }) },
  ];
}

export class Holders {
  child: Process | null = null;
  pins: number[] = [];

  constructor(private readonly m: Machine, private readonly p: Process, private readonly base: number) {}

  /** Touches n pages from page `first` of the region (clipped to its `pages`); the fault code or "ok". */
  touch(first: number, n: number, write: boolean, tag: bigint, pages: number): unknown {
    const b = this.p.batch();
    b.touch(this.base + first * PAGE_SIZE, Math.min(n, pages - first), write, tag);
    return this.p.run(b).fault?.code ?? "ok";
  }

  /** Runs one op; returns what it reports (the pinned pfn, "none", "busy" or "ok"). */
  run(op: HolderOp): unknown {
    switch (op.kind) {
      case "pin": {
        const pte = this.p.pte(this.base + op.vpn * PAGE_SIZE);
        const pfn = Number((pte >> 12n) & 0xffffffffffn);
        if ((pte & 1n) === 0n || pfn === 0) return "none"; // not present, or the zero page
        this.m.page.get(pfn);
        this.pins.push(pfn);
        return pfn;
      }
      case "unpin":
        for (const pfn of this.pins) this.m.page.put(pfn);
        this.pins = [];
        return "ok";
      case "fork":
        if (this.child) return "busy";
        this.child = this.p.fork();
        return "ok";
      case "childExit":
        this.child?.exit();
        this.child = null;
        return "ok";
    }
  }
}
