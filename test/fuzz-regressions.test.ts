// Emulator bugs the fuzzer found, as direct tests (their shrunk programs are in test/fuzz-replays/).
import { describe, it, expect } from "vitest";
import {
  Machine, O_RDWR, O_CREAT, MAP_SHARED, MAP_PRIVATE, MAP_POPULATE, PROT_READ, PROT_WRITE, PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, MmError,
  MAP_ANONYMOUS, FOLL_LONGTERM, FOLL_WRITE,
} from "../src/index.js";

function fileMachine() {
  const m = Machine.create({ content: "tags", nodes: [{ normal: 1024 }] });
  const fs = m.mount(m.addBlockDevice("vda", { sectors: 64 }));
  const f = fs.open("f", O_RDWR | O_CREAT);
  return { m, f, p: m.spawn() };
}

describe("fuzzer findings", () => {
  it("MAP_POPULATE of a file page not in the cache reads it in and leaves no page locked", () => {
    const { m, f, p } = fileMachine();
    f.writeTags(0, [7n, 8n]);
    f.fsync();
    m.powerFail();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, f, 0);
    m.check();
    expect(p.readTag(a + PAGE_SIZE)).toBe(8n);
    expect(p.walk(a, 2 * PAGE_SIZE).present).toBe(2);
  });

  it("a shmem page a GUP reference outlives its object belongs to no object: compaction leaves it out of the next one", () => {
    // test/fuzz-replays/shmem-orphan-page-migrated.json. The object's id is reused by the next
    // shared mapping; a stale page->mapping let compaction migrate the page into its cache.
    // The fuzzer's machine: there compaction reaches the orphan page.
    const m = Machine.create({ content: "tags", nodes: [{ normal: 3072, movable: 1024 }, { normal: 1024 }], cma: [{ node: 0, pages: 512 }] });
    const p = m.spawn();
    const a = p.mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    const pins = m.pinUserPages(p, a, 2, FOLL_LONGTERM | FOLL_WRITE);
    const held = m.getUserPages(p, a, 3, 0);
    p.munmap(a, 3 * PAGE_SIZE);
    m.unpinUserPages(pins);
    const b = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    p.writeTag(b, 5n);
    m.compactMemory();
    m.check();
    expect(p.readTag(b)).toBe(5n);
    expect(p.rss().shmem).toBe(1);
    m.releasePages(held);
    p.munmap(b, PAGE_SIZE);
    m.check();
    expect(m.zones().reduce((s, z) => s + z.managed - z.free, 0)).toBe(0);
  });

  it("migrate_vma collects no hole of a private file mapping: past EOF stays SIGBUS", () => {
    const { m, f, p } = fileMachine();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM });
    expect(mig.cpages).toBe(0);
    mig.allocAndCopy({ node: 0 });
    mig.finalize();
    m.check();
    expect(() => p.readTag(a)).toThrow(MmError);
    expect(() => p.readTag(a)).toThrow(/SIGBUS|VM_FAULT_SIGBUS/);
  });

  it("mlock of a cached file page leaves the file LRU lists intact (mlock-file-lru.json)", () => {
    const { m, f, p } = fileMachine();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    f.writeTags(0, [5n, 6n]);
    m.mlock(p, a, 2 * PAGE_SIZE);
    m.check();
    const c = m.counters();
    expect([c.nr_mlock, c.nr_inactive_file + c.nr_active_file]).toEqual([2, 0]);
    expect([p.readTag(a), p.readTag(a + PAGE_SIZE)]).toEqual([5n, 6n]);
    f.writeTags(0, [9n]);
    expect(p.readTag(a)).toBe(9n);
    m.munlock(p, a, 2 * PAGE_SIZE);
    expect(m.counters().nr_inactive_file).toBe(2);
    m.check();
  });

  it("mlock of a writable private file mapping breaks COW: later file writes are not seen there (mlock-fpriv-cow.json)", () => {
    const { m, f, p } = fileMachine();
    f.writeTags(0, [1n]);
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
    m.mlock(p, a, PAGE_SIZE);
    f.writeTags(0, [2n]);
    expect(p.readTag(a)).toBe(1n);
    m.check();
  });
});
