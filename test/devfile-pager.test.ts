// Demand paging of a file mapping larger than device memory (src/testing/pager.ts): random
// device loads and stores over the whole file, with evictions by both writeback policies,
// CPU reads in between, fsync and power failure, against a shadow of the file.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Machine, O_RDWR, O_CREAT, MAP_SHARED, PROT_READ, PROT_WRITE, PAGE_SIZE, type DevicePageWriteback } from "../src/index.js";
import { FileDevicePager } from "../src/testing/index.js";

const FILE_PAGES = 64;
const DEV_PAGES = 8;

type Op = { k: "load" | "store" | "cpuRead"; at: number } | { k: "fsync" } | { k: "powerFail" };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constantFrom("load" as const, "store" as const), at: fc.nat(FILE_PAGES - 1) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("cpuRead" as const), at: fc.nat(FILE_PAGES - 1) }) },
  { weight: 1, arbitrary: fc.constant({ k: "fsync" as const }) },
  { weight: 1, arbitrary: fc.constant({ k: "powerFail" as const }) },
);

function run(policy: DevicePageWriteback, ops: Op[]) {
  // Little RAM on purpose: the file does not fit in device memory, and barely in RAM.
  const m = Machine.create({ content: "tags", nodes: [{ normal: 512 }], deviceMemory: 64 });
  const fs = m.mount(m.addBlockDevice("vda", { sectors: 256 }));
  fs.devicePageWriteback = policy;
  const f = fs.open("big", O_RDWR | O_CREAT);
  let content = Array.from({ length: FILE_PAGES }, (_, i) => BigInt(i) + 1000n);
  f.writeTags(0, content);
  f.fsync();
  let durable = content.slice();
  const p = m.spawn();
  const addr = p.mmap(0, FILE_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  const pager = new FileDevicePager(m, p, f, addr, DEV_PAGES);
  let tag = 1n << 40n;
  for (const op of ops) {
    switch (op.k) {
      case "load":
        expect(pager.read(op.at)).toBe(content[op.at]);
        break;
      case "store":
        tag++;
        pager.write(op.at, tag);
        content[op.at] = tag;
        break;
      case "cpuRead":
        expect(f.readTags(op.at, 1)[0]).toBe(content[op.at]);
        break;
      case "fsync":
        f.fsync();
        durable = content.slice();
        break;
      case "powerFail":
        m.powerFail();
        content = durable.slice();
        expect(f.readTags(0, FILE_PAGES)).toEqual(content);
        break;
    }
    expect(pager.inUse).toBeLessThanOrEqual(DEV_PAGES);
    m.check();
  }
  f.fsync();
  m.powerFail();
  expect(f.readTags(0, FILE_PAGES)).toEqual(content);
  m.check();
  pager.close();
  m.check();
  return pager.stats;
}

describe.each(["migrate-back", "bounce"] as const)("a file mapping eight times the device's memory (%s)", (policy) => {
  it("a sweep over the whole file faults every page in and evicts as it goes", () => {
    const ops: Op[] = [];
    for (let i = 0; i < FILE_PAGES; i++) ops.push({ k: "store", at: i });
    for (let i = 0; i < FILE_PAGES; i++) ops.push({ k: "load", at: i });
    const s = run(policy, ops);
    expect(s.faultsIn).toBeGreaterThanOrEqual(2 * FILE_PAGES - DEV_PAGES);
    expect(s.evictions).toBeGreaterThanOrEqual(2 * FILE_PAGES - 2 * DEV_PAGES);
    expect(s.peakResident).toBe(DEV_PAGES);
    if (policy === "bounce") expect(s.evictedWritten).toBeGreaterThan(0);
    else expect(s.evictedMigrated).toBe(s.evictions);
  });

  it("random device loads and stores, CPU reads, fsync and power failure lose nothing fsync confirmed", () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
      run(policy, ops);
    }), { numRuns: 15, seed: policy === "bounce" ? 61 : 62 });
  });
});
