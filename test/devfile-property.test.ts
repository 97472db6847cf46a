// Property test of device-resident file pages: random sequences of migrations to device
// memory, device writes (reported with fileDeviceDirty), CPU writes through write(2) and a
// shared mapping, CPU reads that bring pages home, fsync, truncate and power failure, with
// both writeback policies, against a shadow of the file's content (what reads must return)
// and of what the last fsync made durable. machine.check() after every step.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, O_RDWR, O_CREAT, MAP_SHARED, PROT_READ, PROT_WRITE, PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_FILE,
  type DevicePageWriteback,
} from "../src/index.js";
import { privateDevice } from "./drivers.js";

const PAGES = 8;
const RW = PROT_READ | PROT_WRITE;

type Op =
  | { k: "toDevice"; at: number; n: number }
  | { k: "devWrite"; at: number; seed: number }
  | { k: "pwrite"; off: number; len: number; seed: number }
  | { k: "store"; at: number; off: number; seed: number }
  | { k: "load"; at: number }
  | { k: "pread" }
  | { k: "fsync" }
  | { k: "truncate"; size: number }
  | { k: "powerFail" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant("toDevice" as const), at: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: PAGES }) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant("devWrite" as const), at: fc.nat(PAGES - 1), seed: fc.nat(255) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("pwrite" as const), off: fc.nat(PAGES * PAGE_SIZE - 1), len: fc.integer({ min: 1, max: 2 * PAGE_SIZE }), seed: fc.nat(255) }).map((o) => ({ ...o, len: Math.min(o.len, PAGES * PAGE_SIZE - o.off) })) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("store" as const), at: fc.nat(PAGES - 1), off: fc.nat(PAGE_SIZE - 16), seed: fc.nat(255) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("load" as const), at: fc.nat(PAGES - 1) }) },
  { weight: 1, arbitrary: fc.constant({ k: "pread" as const }) },
  { weight: 3, arbitrary: fc.constant({ k: "fsync" as const }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("truncate" as const), size: fc.nat(PAGES * PAGE_SIZE) }) },
  { weight: 2, arbitrary: fc.constant({ k: "powerFail" as const }) },
);

const fill = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 13 + seed * 7 + 1) & 0xff);

/** Byte arrays equal (vitest's deep equality is slow on 32 KiB arrays). */
function same(got: Uint8Array, want: Uint8Array, what: string): void {
  if (got.length === want.length && Buffer.compare(got, want) === 0) return;
  let i = 0;
  while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++;
  expect.fail(`${what}: ${got.length} bytes read, ${want.length} expected, first difference at byte ${i}`);
}

function resized(a: Uint8Array, size: number): Uint8Array {
  const b = new Uint8Array(size);
  b.set(a.subarray(0, Math.min(size, a.length)));
  return b;
}

function run(policy: DevicePageWriteback, ops: Op[]): void {
  const m = Machine.create({ nodes: [{ normal: 1024 }], deviceMemory: 64 });
  const fs = m.mount(m.addBlockDevice("vda", { sectors: 1024 }));
  fs.devicePageWriteback = policy;
  const p = m.spawn();
  const gpu = privateDevice(m, 32);
  const f = fs.open("f", O_RDWR | O_CREAT);
  const a = p.mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED, f, 0);
  // The shadow: what reads return, and what the last fsync made durable.
  let content: Uint8Array = new Uint8Array(0);
  let durable: Uint8Array = new Uint8Array(0);
  const full = (i: number): boolean => (i + 1) * PAGE_SIZE <= content.length;
  for (const op of ops) {
    switch (op.k) {
      case "toDevice": {
        const n = Math.min(op.n, Math.floor(content.length / PAGE_SIZE) - op.at);
        if (n <= 0) break;
        p.read(a + op.at * PAGE_SIZE, n * PAGE_SIZE);
        const mig = m.migrateVmaSetup({ proc: p, start: a + op.at * PAGE_SIZE, end: a + (op.at + n) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_FILE, pgmapOwner: gpu.owner });
        mig.allocAndCopy(gpu.pg);
        mig.finalize();
        break;
      }
      case "devWrite": {
        if (!full(op.at)) break;
        const pfn = m.core.filemapLookup(f.inode.id, op.at);
        if (pfn < 0 || !gpu.pg.contains(pfn)) break;
        const data = fill(PAGE_SIZE, op.seed);
        m.page.writeBytes(pfn, data);
        m.fileDeviceDirty([pfn]);
        content.set(data, op.at * PAGE_SIZE);
        break;
      }
      case "pwrite": {
        const data = fill(op.len, op.seed);
        expect(f.pwrite(data, op.off)).toBe(op.len);
        if (op.off + op.len > content.length) content = resized(content, op.off + op.len);
        content.set(data, op.off);
        break;
      }
      case "store": {
        if (!full(op.at)) break;
        const data = fill(16, op.seed);
        p.write(a + op.at * PAGE_SIZE + op.off, data);
        content.set(data, op.at * PAGE_SIZE + op.off);
        break;
      }
      case "load": {
        if (!full(op.at)) break;
        same(p.read(a + op.at * PAGE_SIZE, PAGE_SIZE), content.subarray(op.at * PAGE_SIZE, (op.at + 1) * PAGE_SIZE), "load");
        break;
      }
      case "pread":
        same(f.pread(PAGES * PAGE_SIZE + 1, 0), content, "pread");
        break;
      case "fsync":
        f.fsync();
        durable = content.slice();
        break;
      case "truncate":
        f.ftruncate(op.size);
        content = resized(content, op.size);
        break;
      case "powerFail":
        m.powerFail();
        content = durable.slice();
        expect(f.size).toBe(durable.length);
        same(f.pread(PAGES * PAGE_SIZE + 1, 0), durable, "after power failure");
        break;
    }
    m.check();
  }
  // fsync'd data survives, whatever came before.
  f.fsync();
  m.powerFail();
  same(f.pread(PAGES * PAGE_SIZE + 1, 0), content, "fsync, then power failure");
  m.check();
}

describe.each(["migrate-back", "bounce"] as const)("device-resident file pages against a shadow (%s)", (policy) => {
  it("random device writes, CPU writes, fsync, truncate and power failures lose nothing fsync confirmed", () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => run(policy, ops)), {
      numRuns: 40, seed: policy === "bounce" ? 0xb0 : 0x3b,
    });
  });
});
