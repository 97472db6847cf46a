// migrate_vma's four-lane collect and finalize against one entry at a time, over what the
// lanes must fall back on: two nodes with normal and movable zones, device-private and
// device-coherent memory, a range across a page-table boundary, PROT_NONE and read-only
// VMAs (also made between allocAndCopy and finalize, splitting the VMA), mlock, forks during
// a migration, pins, read-only migrations and migrate_to_ram over windows holding the fault
// page. Two machines, lanes on and off, must keep the same memory byte for byte.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_SYSTEM, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, PROT_NONE,
  type DevPagemap, type MigrateVma, type Process, type VmFault,
} from "../src/index.js";
import { Holders, holderOpArbs, type HolderOp } from "./migrate-side.js";

const PAGES = 160;
const BASE = (0x20000 - 50) * PAGE_SIZE;
/** Pages migrate_to_ram moves back around a fault. */
const WIN = 8;

type Op =
  | { kind: "touch"; first: number; n: number; write: boolean }
  | { kind: "migrate"; first: number; n: number; target: number; ro: boolean; failFirst: boolean; holes: boolean; mid: number; midFirst: number; midN: number }
  | { kind: "mprotect"; first: number; n: number; prot: number }
  | { kind: "mlock"; first: number; n: number; lock: boolean }
  | HolderOp;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("touch" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 64 }), write: fc.boolean() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("migrate" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: PAGES }),
      target: fc.nat(3), ro: fc.boolean(), failFirst: fc.boolean(), holes: fc.boolean(), mid: fc.nat(4),
      midFirst: fc.nat(PAGES - 1), midN: fc.integer({ min: 1, max: 16 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("mprotect" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 40 }), prot: fc.constantFrom(PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("mlock" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 40 }), lock: fc.boolean() }) },
  ...holderOpArbs(PAGES),
);

/** One machine of the pair. */
class Side {
  readonly m: Machine;
  readonly p: Process;
  readonly priv: DevPagemap;
  readonly coh: DevPagemap;
  readonly owner = { name: "x" };
  readonly holders: Holders;

  constructor(lanes: boolean) {
    this.m = Machine.create({ nodes: [{ normal: 700, movable: 300 }, { normal: 400 }], content: "tags", deviceMemory: 200 });
    this.m.core.migrateSetLanes(lanes ? 1 : 0);
    this.priv = this.m.memremapPages({
      type: MEMORY_DEVICE_PRIVATE, nrPages: 100, owner: this.owner,
      ops: {
        migrateToRam: (vmf: VmFault) => {
          // A window of WIN pages around the fault, clipped to the VMA.
          const v = vmf.proc.vmaAt(vmf.address)!;
          let s = vmf.address - ((vmf.address / PAGE_SIZE) % WIN) * PAGE_SIZE;
          let e = s + WIN * PAGE_SIZE;
          if (s < v.start) s = v.start;
          if (e > v.end) e = v.end;
          const mig = this.m.migrateVmaSetup({
            proc: vmf.proc, start: s, end: e,
            flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this.owner, faultPage: vmf.page,
          });
          mig.allocAndCopy({ node: 0 });
          mig.finalize();
          return 0;
        },
      },
    });
    this.coh = this.m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 96, owner: this.owner, ops: {} });
    this.p = this.m.spawn();
    this.holders = new Holders(this.m, this.p, BASE);
    this.p.mmap(BASE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  }

  clip(first: number, n: number): [number, number] | null {
    const start = BASE + first * PAGE_SIZE;
    const v = this.p.vmaAt(start);
    if (!v) return null;
    const end = Math.min(start + n * PAGE_SIZE, v.end, BASE + PAGES * PAGE_SIZE);
    return [start, end];
  }

  run(op: Op, tag: bigint): unknown {
    try {
      return this.run1(op, tag);
    } catch (e) {
      return `error ${(e as Error).message}`;
    }
  }

  run1(op: Op, tag: bigint): unknown {
    switch (op.kind) {
      case "touch":
        return this.holders.touch(op.first, op.n, op.write, tag, PAGES);
      case "migrate": {
        const r = this.clip(op.first, op.n);
        if (!r) return "novma";
        const [start, end] = r;
        const flags = op.target === 0 ? MIGRATE_VMA_SELECT_SYSTEM
          : op.target === 1 ? MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_DEVICE_PRIVATE
          : MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT;
        const mig: MigrateVma = this.m.migrateVmaSetup({ proc: this.p, start, end, pgmapOwner: this.owner, flags, readOnlyEntries: op.ro });
        const tgt = op.target === 0 ? this.priv : op.target === 1 ? this.coh : { node: op.target - 2 };
        const got = mig.allocAndCopy(tgt, { failFirst: op.failFirst, holes: op.holes });
        // Something between the copy and finalize.
        try {
          if (op.mid === 1) {
            const rr = this.clip(op.midFirst, op.midN);
            if (rr) this.p.mprotect(rr[0], rr[1] - rr[0], PROT_READ);
          } else if (op.mid === 2) {
            this.holders.run({ kind: "fork" });
          } else if (op.mid === 3) {
            const rr = this.clip(op.midFirst, op.midN);
            if (rr) this.p.mprotect(rr[0], rr[1] - rr[0], PROT_NONE);
          }
        } catch (e) {
          void e;
        }
        mig.finalize();
        return [mig.cpages, got, [...mig.src]];
      }
      case "mprotect": {
        const r = this.clip(op.first, op.n);
        if (!r) return "novma";
        this.p.mprotect(r[0], r[1] - r[0], op.prot);
        return "ok";
      }
      case "mlock": {
        const r = this.clip(op.first, op.n);
        if (!r) return "novma";
        if (op.lock) this.m.mlock(this.p, r[0], r[1] - r[0]);
        else this.m.munlock(this.p, r[0], r[1] - r[0]);
        return "ok";
      }
      default:
        return this.holders.run(op);
    }
  }
}

/** Where two machines' Wasm memories first differ, or -1. */
function firstDifference(a: Machine, b: Machine): number {
  const x = Buffer.from(a.core.memory.buffer);
  const y = Buffer.from(b.core.memory.buffer);
  if (x.length !== y.length) return 0;
  if (x.equals(y)) return -1;
  return x.findIndex((v, i) => v !== y[i]);
}

describe("migrate_vma lanes: the fallback cases", () => {
  it("the same memory, byte for byte, lanes on and off", () => {
    let groups = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const a = new Side(true);
        const b = new Side(false);
        let tag = 1n;
        for (const op of ops) {
          expect(a.run(op, tag)).toEqual(b.run(op, tag));
          tag += 256n;
          expect(firstDifference(a.m, b.m)).toBe(-1);
        }
        a.run({ kind: "unpin" }, 0n);
        b.run({ kind: "unpin" }, 0n);
        a.m.check();
        b.m.check();
        expect(firstDifference(a.m, b.m)).toBe(-1);
        groups += a.m.core.migrateLaneGroups();
      }),
      { numRuns: 100 },
    );
    expect(groups).toBeGreaterThan(100);
  });

  it("a written range moves both ways four entries at a time", () => {
    const side = new Side(true);
    side.run({ kind: "touch", first: 0, n: 64, write: true }, 9n);
    const move = (target: number): [number, number] => {
      const [cpages, got] = side.run({ kind: "migrate", first: 0, n: 64, target, ro: false, failFirst: false, holes: true, mid: 0, midFirst: 0, midN: 1 }, 0n) as [number, number];
      return [cpages, got];
    };
    expect(move(0)).toEqual([64, 64]);
    const afterDevice = side.m.core.migrateLaneGroups();
    expect(move(2)).toEqual([64, 64]);
    // Collect and finalize each way, in groups of four (the range crosses a page table).
    expect(afterDevice).toBeGreaterThanOrEqual(2 * 14);
    expect(side.m.core.migrateLaneGroups() - afterDevice).toBeGreaterThanOrEqual(2 * 14);
    side.m.check();
  });
});
