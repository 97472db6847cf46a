import { describe, it, expect } from "vitest";
import {
  Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, PAGE_SIZE, MEMORY_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
} from "../src/index.js";
import { migrateToDevice, privateDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("device-private memory", () => {
  it("migrates anon pages to the device and back on CPU faults, contents intact", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }], deviceMemory: 1024 });
    const { pg, owner, freed } = privateDevice(m, 256);
    const p = m.spawn();
    const a = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 16; i++) p.writeU32(a + i * PAGE_SIZE, 1000 + i);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 16 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: owner });
    expect(mig.cpages).toBe(16);
    expect(mig.allocAndCopy(pg)).toBe(16);
    mig.finalize();
    m.check();
    expect(m.counters().pgmigrate_success).toBe(16);
    // The PTEs are device-private swap entries now: not present.
    expect(p.pte(a) & 1n).toBe(0n);
    expect(p.rss().anon).toBe(16);
    // A CPU read faults the page back through migrate_to_ram.
    expect(p.readU32(a + 3 * PAGE_SIZE)).toBe(1003);
    expect(p.pte(a + 3 * PAGE_SIZE) & 1n).toBe(1n);
    expect(freed()).toBe(1);
    m.check();
    p.writeU32(a + 5 * PAGE_SIZE, 7);
    expect(p.readU32(a + 5 * PAGE_SIZE)).toBe(7);
    m.check();
    // Unregistering evicts the rest.
    m.memunmapPages(pg);
    for (let i = 0; i < 16; i++) if (i !== 5) expect(p.readU32(a + i * PAGE_SIZE)).toBe(1000 + i);
    expect(freed()).toBe(16);
    m.check();
    p.exit();
    m.check();
  });

  it("munmap of device-private pages frees them through page_free", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }], deviceMemory: 512, content: "tags" });
    const { pg, owner, freed } = privateDevice(m, 64);
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    p.touch(a, 8, true, 50n);
    migrateToDevice(m, p, a, 8, pg);
    m.check();
    const c = p.fork();
    m.check();
    expect(c.readTag(a + PAGE_SIZE)).toBe(51n);
    m.check();
    p.munmap(a, 8 * PAGE_SIZE);
    m.check();
    c.exit();
    m.check();
    expect(freed()).toBe(8);
  });
});

describe("memory_failure", () => {
  it("poisons a mapped page: every mapping faults SIGBUS (BUS_MCEERR_AR), the page never returns", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }], content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.touch(a, 4, true, 10n);
    const c = p.fork();
    const pfn = Number((p.pte(a + PAGE_SIZE) >> 12n) & 0xffffffffn);
    const free = m.counters().nr_free_pages;
    expect(m.memoryFailure(pfn)).toBe(0);
    m.check();
    for (const q of [p, c]) {
      const r = q.run((() => { const b = q.batch(); b.readTag(a + PAGE_SIZE); return b; })());
      expect(r.fault?.code).toBe("SIGBUS");
      expect(r.fault?.fault?.si_code).toBe("BUS_MCEERR_AR");
      expect(q.readTag(a)).toBe(10n);
    }
    expect(m.memoryFailure(pfn)).toBe(-133); // already poisoned
    p.exit();
    c.exit();
    m.check();
    // Three pages come back, the poisoned one stays out of circulation.
    expect(m.counters().nr_free_pages).toBe(free + 3);
  });

  it("asks the device owner first and falls back to the generic path on -EOPNOTSUPP", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }], deviceMemory: 512, content: "tags" });
    const seen: number[] = [];
    let answer = 0;
    const owner = {};
    const pg = m.memremapPages({
      type: MEMORY_DEVICE_PRIVATE, nrPages: 64, owner,
      ops: { migrateToRam: () => 0, memoryFailure: (_pg, pfn) => { seen.push(pfn); return answer; } },
    });
    const p = m.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.touch(a, 2, true, 5n);
    migrateToDevice(m, p, a, 2, pg);
    expect(m.memoryFailure(pg.start)).toBe(0);
    expect(seen).toEqual([pg.start]);
    answer = -95;
    expect(m.memoryFailure(pg.start + 1)).toBe(0);
    m.check();
    const r = p.run((() => { const b = p.batch(); b.readTag(a + PAGE_SIZE); return b; })());
    expect(r.fault?.fault?.si_code).toBe("BUS_MCEERR_AR");
    expect(m.memoryFailure(pg.start + 10)).toBe(-16); // a free device page
    m.check();
  });
});
