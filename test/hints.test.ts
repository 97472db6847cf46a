// Migration hints: access counters and a placement policy with hysteresis move pages
// between system memory and device memory; switchable off per process or range.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MigrationHints, HysteresisPolicy, MEMORY_DEVICE_COHERENT, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE,
  type Process,
} from "../src/index.js";
import { errorOf, privateDevice } from "./drivers.js";

const PAGES = 16;

function coherentSetup(policy?: HysteresisPolicy) {
  const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 256 });
  const pg = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 256, owner: { name: "cxl" } });
  const p = m.spawn();
  const base = p.mmap(0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < PAGES; i++) p.writeU32(base + i * PAGE_SIZE, 100 + i);
  const hints = new MigrationHints(m, { pgmap: pg, policy });
  return { m, pg, p, base, hints };
}

const onDevice = (m: Machine, p: Process, addr: number): boolean => m.pagemapOf(Number((p.pte(addr) >> 12n) & 0xffffffffffn)) !== undefined;

describe("migration hints", () => {
  it("moves pages the device keeps touching, in one migration per run, contents intact", () => {
    const { m, p, base, hints } = coherentSetup(new HysteresisPolicy({ toDevice: 4 }));
    let moved = 0;
    for (let k = 0; k < 4; k++) moved += hints.recordDeviceAccess(p, base, 6);
    expect(moved).toBe(6);
    for (let i = 0; i < PAGES; i++) {
      expect(onDevice(m, p, base + i * PAGE_SIZE)).toBe(i < 6);
      expect(p.readU32(base + i * PAGE_SIZE)).toBe(100 + i);
    }
    expect(hints.stats).toMatchObject({ deviceAccesses: 24, toDevice: 6, toSystem: 0, failed: 0 });
    expect(hints.countersOf(p, base)).toEqual({ cpu: 0, device: 0, moves: 1 });
    m.check();
  });

  it("brings a coherent page back when the CPU dominates, after its dwell", () => {
    const { m, p, base, hints } = coherentSetup(new HysteresisPolicy({ toDevice: 2, toSystem: 4, minDwell: 10 }));
    hints.recordDeviceAccess(p, base);
    hints.recordDeviceAccess(p, base);
    expect(onDevice(m, p, base)).toBe(true);
    for (let k = 0; k < 9; k++) {
      expect(p.readU32(base)).toBe(100);
      hints.recordCpuAccess(p, base);
    }
    expect(onDevice(m, p, base)).toBe(true);
    hints.recordCpuAccess(p, base);
    expect(onDevice(m, p, base)).toBe(false);
    expect(p.readU32(base)).toBe(100);
    m.check();
  });

  it("hysteresis stops the ping-pong the naive policy does", () => {
    const naive = coherentSetup(new HysteresisPolicy({ toDevice: 1, toSystem: 1, dominance: 0, minDwell: 0 }));
    const damped = coherentSetup();
    for (const s of [naive, damped]) {
      for (let k = 0; k < 50; k++) {
        s.hints.recordDeviceAccess(s.p, s.base);
        s.p.writeU32(s.base, k);
        s.hints.recordCpuAccess(s.p, s.base);
      }
      expect(s.p.readU32(s.base)).toBe(49);
      s.m.check();
    }
    expect(naive.hints.stats.toDevice + naive.hints.stats.toSystem).toBe(100);
    expect(damped.hints.stats.toDevice + damped.hints.stats.toSystem).toBe(0);
  });

  it("leaves a process, or one range of it, alone when automation is off", () => {
    const { m, p, base, hints } = coherentSetup(new HysteresisPolicy({ toDevice: 1 }));
    hints.disable(p, base, 4 * PAGE_SIZE);
    hints.recordDeviceAccess(p, base, 8);
    for (let i = 0; i < 8; i++) expect(onDevice(m, p, base + i * PAGE_SIZE)).toBe(i >= 4);
    hints.disable(p);
    hints.recordDeviceAccess(p, base + 8 * PAGE_SIZE, 8);
    expect(hints.stats.ignored).toBe(12);
    hints.enable(p);
    hints.recordDeviceAccess(p, base, 4);
    expect(onDevice(m, p, base)).toBe(true);
    m.check();
  });

  it("works with device-private memory: CPU faults bring pages back, the dwell keeps them there", () => {
    const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 256 });
    const { pg } = privateDevice(m, 256);
    const p = m.spawn();
    const base = p.mmap(0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    for (let i = 0; i < PAGES; i++) p.writeU32(base + i * PAGE_SIZE, 7 * i);
    const hints = new MigrationHints(m, { pgmap: pg, policy: new HysteresisPolicy({ toDevice: 2, minDwell: 4 }) });
    hints.recordDeviceAccess(p, base, PAGES);
    hints.recordDeviceAccess(p, base, PAGES);
    expect(onDevice(m, p, base)).toBe(true);
    expect(p.readU32(base + PAGE_SIZE)).toBe(7);
    expect(onDevice(m, p, base + PAGE_SIZE)).toBe(false);
    hints.recordCpuAccess(p, base + PAGE_SIZE);
    hints.recordDeviceAccess(p, base + PAGE_SIZE);
    hints.recordDeviceAccess(p, base + PAGE_SIZE);
    expect(onDevice(m, p, base + PAGE_SIZE)).toBe(false);
    hints.recordDeviceAccess(p, base + PAGE_SIZE);
    expect(onDevice(m, p, base + PAGE_SIZE)).toBe(true);
    m.check();
  });

  it("refuses bad input with a sentence", () => {
    const { m, p, base, hints } = coherentSetup();
    expect(errorOf(() => new MigrationHints(m, { pgmap: {} as never })).message).toMatch(/dev_pagemap/);
    expect(errorOf(() => hints.recordDeviceAccess(p, base + 1)).code).toBe("EINVAL");
    expect(errorOf(() => hints.recordCpuAccess(p, base, 0)).message).toMatch(/npages/);
    expect(errorOf(() => new HysteresisPolicy({ toDevice: 0 })).message).toMatch(/toDevice/);
    const q = m.spawn();
    q.exit();
    expect(errorOf(() => hints.disable(q)).message).toMatch(/live process/);
    expect(hints.stats.deviceAccesses).toBe(0);
  });

  it("property: random CPU and device traffic never loses data and keeps the invariants", () => {
    const op = fc.record({ who: fc.constantFrom("cpu", "device", "write", "off", "on"), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 4 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.integer({ min: 1, max: 4 }), (ops, th) => {
        const { m, p, base, hints } = coherentSetup(new HysteresisPolicy({ toDevice: th, toSystem: th, minDwell: th }));
        const shadow = Array.from({ length: PAGES }, (_, i) => 100 + i);
        let v = 1000;
        for (const o of ops) {
          const n = Math.min(o.n, PAGES - o.page);
          const addr = base + o.page * PAGE_SIZE;
          if (o.who === "device") hints.recordDeviceAccess(p, addr, n);
          else if (o.who === "cpu") {
            for (let i = 0; i < n; i++) expect(p.readU32(addr + i * PAGE_SIZE)).toBe(shadow[o.page + i]);
            hints.recordCpuAccess(p, addr, n);
          } else if (o.who === "write") {
            p.writeU32(addr, ++v);
            shadow[o.page] = v;
            hints.recordCpuAccess(p, addr);
          } else if (o.who === "off") hints.disable(p, addr, n * PAGE_SIZE);
          else hints.enable(p);
          m.check();
        }
        for (let i = 0; i < PAGES; i++) expect(p.readU32(base + i * PAGE_SIZE)).toBe(shadow[i]);
      }),
      { numRuns: 25 },
    );
  });
});
