// machine.inject: each site against the operations that meet it. Every case checks the errno
// the kernel would give, machine.check(), the contents (against what was written), and that
// the same operation succeeds once the fault is cleared.
import { describe, it, expect } from "vitest";
import {
  Machine, MmError, Scheduler, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, O_RDWR, O_CREAT,
  MAX_OOM_REAP_RETRIES, MIGRATE_VMA_SELECT_SYSTEM, FOLL_WRITE, type Process, type InjectionSpec,
} from "../src/index.js";
import {
  createHmmDevices, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, type HmmDmirror,
} from "../src/testing/index.js";
import { errorOf, privateDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const ENOMEM = -12;
const EIO = -5;

/** A tags-mode machine with a process whose `n` private pages at `a` hold tags 100 + i. */
function written(n = 8, config = {}) {
  const m = Machine.create({ nodes: [{ normal: 2048 }], deviceMemory: 2048, content: "tags", ...config });
  const p = m.spawn();
  const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
  p.touch(a, n, true, 100n);
  return { m, p, a };
}

/** Every page holds its tag 100 + i (the shadow of `written`), read through the CPU. */
function intact(p: Process, a: number, n: number, base = 100n): void {
  for (let i = 0; i < n; i++) expect(p.readTag(a + i * PAGE_SIZE), `page ${i}`).toBe(base + BigInt(i));
}

/** A dmirror on device 0 of `m` for `p`. */
function mirror(m: Machine, p: Process): HmmDmirror {
  return createHmmDevices(m, { chunkPages: 64 })[0]!.open(p);
}

/** Pages of [a, a + n pages) whose PTE is a device-private entry (not present). */
function onDevice(p: Process, a: number, n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if ((p.pte(a + i * PAGE_SIZE) & 1n) === 0n && p.pte(a + i * PAGE_SIZE) !== 0n) k++;
  return k;
}

describe("inject.add validates the spec", () => {
  const m = Machine.create({ nodes: [{ normal: 512 }], content: "tags" });
  m.addBlockDevice("vda", { sectors: 16 });
  const bad: [string, unknown, RegExp][] = [
    ["not an object", 3, /spec must be an object/],
    ["unknown site", { site: "dma", nth: 1 }, /site must be one of/],
    ["nth 0", { site: "alloc", nth: 0 }, /nth must be a positive integer/],
    ["nth and probability", { site: "alloc", nth: 1, probability: 0.5, seed: 1 }, /either nth or probability/],
    ["neither", { site: "alloc" }, /either nth or probability/],
    ["p above 1", { site: "alloc", probability: 1.5, seed: 1 }, /probability must be a number in \[0, 1\]/],
    ["p below 0", { site: "copy", probability: -0.1, seed: 1 }, /probability/],
    ["p without seed", { site: "copy", probability: 0.5 }, /seed must be an integer/],
    ["times 0", { site: "alloc", nth: 1, times: 0 }, /times must be/],
    ["unknown zone", { site: "alloc", nth: 1, zone: 5 }, /zone 5 is not a zone/],
    ["unknown node", { site: "alloc", nth: 1, node: 1 }, /node 1 does not exist/],
    ["unknown device", { site: "alloc", nth: 1, device: "gpu9" }, /device gpu9 is not a device/],
    ["unknown field", { site: "copy", nth: 1, zone: 0 }, /unknown field zone/],
    ["unknown callback", { site: "callback", nth: 1, callback: "open" }, /callback must be one of/],
    ["blockio without device", { site: "blockio", nth: 1 }, /device must be a device's name/],
    ["blockio on an unknown disk", { site: "blockio", nth: 1, device: "vdb" }, /not a block device/],
    ["blockio bad op", { site: "blockio", nth: 1, device: "vda", op: "trim" }, /op must be/],
    ["engine unknown", { site: "engine", nth: 1, device: "dma", delayNs: 5 }, /not a copy engine/],
  ];
  for (const [what, spec, msg] of bad) {
    it(`${what}: EINVAL naming the field, nothing armed`, () => {
      const e = errorOf(() => m.inject.add(spec as InjectionSpec));
      expect(e.code).toBe("EINVAL");
      expect(e.message).toMatch(msg);
      expect(m.inject.list()).toHaveLength(0);
    });
  }
  it("a good spec is listed, counts its hits, and goes with remove()", () => {
    const inj = m.inject.add({ site: "copy", nth: 2 });
    expect(m.inject.list()).toEqual([inj]);
    expect(inj.hits).toBe(0);
    inj.remove();
    expect(m.inject.list()).toHaveLength(0);
    expect(errorOf(() => m.inject.remove(inj)).code).toBe("EINVAL");
  });
});

describe("alloc: page allocations fail", () => {
  it("fault-in: the nth demand-zero fault gets ENOMEM (VM_FAULT_OOM), pgalloc_fail counts it, then it succeeds", () => {
    const { m, p, a } = written(4);
    const b = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const fails = m.counter("pgalloc_fail");
    const inj = m.inject.add({ site: "alloc", nth: 3 });
    p.writeTag(b, 1n);
    p.writeTag(b + PAGE_SIZE, 2n);
    const e = errorOf(() => p.writeTag(b + 2 * PAGE_SIZE, 3n));
    expect(e.code).toBe("ENOMEM");
    expect(inj.hits).toBe(1);
    expect(m.counter("pgalloc_fail")).toBe(fails + 1);
    m.check();
    intact(p, a, 4);
    expect(p.readTag(b + PAGE_SIZE)).toBe(2n);
    p.writeTag(b + 2 * PAGE_SIZE, 3n);
    expect(p.readTag(b + 2 * PAGE_SIZE)).toBe(3n);
    m.inject.clear();
    m.check();
  });

  it("fork + COW: the copy's allocation fails with ENOMEM; parent and child keep the shared data", () => {
    const { m, p, a } = written(4);
    const c = p.fork();
    m.inject.add({ site: "alloc", nth: 1 });
    expect(errorOf(() => c.writeTag(a, 7n)).code).toBe("ENOMEM");
    m.check();
    intact(p, a, 4);
    intact(c, a, 4);
    m.inject.clear();
    c.writeTag(a, 7n);
    expect(c.readTag(a)).toBe(7n);
    intact(p, a, 4);
    m.check();
  });

  it("random mode: p = 1 fails every request up to times, p = 0 none", () => {
    const { m, p } = written(1);
    const b = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const inj = m.inject.add({ site: "alloc", probability: 1, seed: 7, times: 2 });
    expect(errorOf(() => p.writeTag(b, 1n)).code).toBe("ENOMEM");
    expect(errorOf(() => p.writeTag(b, 1n)).code).toBe("ENOMEM");
    p.writeTag(b, 1n);
    expect(inj.hits).toBe(2);
    m.inject.add({ site: "alloc", probability: 0, seed: 7 });
    p.touch(b, 4, true, 50n);
    m.check();
  });

  it("a node filter fails only the requests of that node's processes", () => {
    const m = Machine.create({ nodes: [{ normal: 512 }, { normal: 512 }], content: "tags" });
    const p0 = m.spawn({ node: 0 });
    const p1 = m.spawn({ node: 1 });
    const a0 = p0.mmap(0, PAGE_SIZE, RW, ANON);
    const a1 = p1.mmap(0, PAGE_SIZE, RW, ANON);
    m.inject.add({ site: "alloc", node: 1, nth: 1 });
    p0.writeTag(a0, 1n);
    expect(errorOf(() => p1.writeTag(a1, 2n)).code).toBe("ENOMEM");
    p1.writeTag(a1, 2n);
    expect(p0.readTag(a0)).toBe(1n);
    expect(p1.readTag(a1)).toBe(2n);
    m.check();
  });

  it("migrate_vma to a device: a failed device allocation leaves that page in RAM; the rest moves", () => {
    const { m, p, a } = written(8);
    const d = mirror(m, p);
    const inj = m.inject.add({ site: "alloc", device: "hmm_dmirror0", nth: 2 });
    const r = d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 });
    expect(inj.hits).toBe(1);
    // The device read-back stops at the page that did not move (as the kernel's dmirror).
    expect(r.ret).toBe(-2);
    expect(onDevice(p, a, 8)).toBe(7);
    m.check();
    intact(p, a, 8);
    m.inject.clear();
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 }).ret).toBe(0);
    expect(onDevice(p, a, 8)).toBe(8);
    intact(p, a, 8);
    m.check();
  });

  it("migrate_vma back to RAM: ENOMEM, the pages stay on the device with their data", () => {
    const { m, p, a } = written(8);
    const d = mirror(m, p);
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 }).ret).toBe(0);
    m.inject.add({ site: "alloc", node: 0, nth: 1, times: Infinity });
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: 8 }).ret).toBe(ENOMEM);
    expect(onDevice(p, a, 8)).toBe(8);
    m.check();
    // migrate_to_ram on a CPU fault: VM_FAULT_OOM, seen as ENOMEM.
    expect(errorOf(() => p.readTag(a)).code).toBe("ENOMEM");
    m.check();
    m.inject.clear();
    intact(p, a, 8);
    expect(onDevice(p, a, 8)).toBe(0);
    m.check();
  });

  it("device eviction: pages whose allocation fails stay on the device; a second eviction moves them", () => {
    const { m, p, a } = written(8);
    const { pg } = privateDevice(m, 16);
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + 8 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: pg.owner });
    mig.allocAndCopy(pg);
    mig.finalize();
    m.inject.add({ site: "alloc", nth: 2, times: 3 });
    expect(m.evictDevicePages(pg)).toBe(3);
    m.check();
    m.inject.clear();
    expect(m.evictDevicePages(pg)).toBe(0);
    intact(p, a, 8);
    m.check();
  });

  it("hmm_range_fault and GUP: a fault that cannot allocate gives -ENOMEM", () => {
    const { m, p } = written(1);
    const b = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const d = mirror(m, p);
    // A device write faults the pages in writable (a read would map the zero page).
    const buffer = new BigUint64Array([1n, 2n, 3n, 4n]);
    m.inject.add({ site: "alloc", nth: 1 });
    expect(d.cmd(HMM_DMIRROR_WRITE, { addr: b, npages: 4, buffer }).ret).toBe(ENOMEM);
    m.check();
    m.inject.add({ site: "alloc", nth: 1 });
    expect(errorOf(() => m.pinUserPages(p, b + 2 * PAGE_SIZE, 2, FOLL_WRITE)).code).toBe("ENOMEM");
    m.check();
    m.inject.clear();
    m.unpinUserPages(m.pinUserPages(p, b + 2 * PAGE_SIZE, 2, FOLL_WRITE));
    expect(d.cmd(HMM_DMIRROR_WRITE, { addr: b, npages: 4, buffer }).ret).toBe(0);
    intact(p, b, 4, 1n);
    m.check();
  });

  it("page cache: a read that cannot allocate its page gets ENOMEM; the file is intact after", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }], content: "bytes" });
    const fs = m.mount(m.addBlockDevice("vda", { sectors: 64 }));
    const f = fs.open("a", O_RDWR | O_CREAT);
    const data = new Uint8Array(2 * PAGE_SIZE).map((_, i) => i * 13);
    f.pwrite(data, 0);
    f.fsync();
    m.powerFail();
    // grabPage retries once after writeback, so both requests must fail.
    m.inject.add({ site: "alloc", nth: 1, times: 2 });
    expect(errorOf(() => f.pread(PAGE_SIZE, 0)).code).toBe("ENOMEM");
    m.check();
    m.inject.clear();
    expect(f.pread(2 * PAGE_SIZE, 0)).toEqual(data);
    m.check();
  });
});

describe("copy: a driver's migrate copy fails", () => {
  it("to the device: the failed page stays in RAM with its data", () => {
    const { m, p, a } = written(8);
    const d = mirror(m, p);
    const inj = m.inject.add({ site: "copy", device: "hmm_dmirror0", nth: 3 });
    d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 });
    expect(inj.hits).toBe(1);
    expect(onDevice(p, a, 8)).toBe(7);
    m.check();
    intact(p, a, 8);
    m.inject.clear();
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 }).ret).toBe(0);
    m.check();
  });

  it("back to RAM: -EIO, the page stays on the device; migrate_to_ram's failed copy is SIGBUS", () => {
    const { m, p, a } = written(8);
    const d = mirror(m, p);
    d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 8 });
    m.inject.add({ site: "copy", nth: 1 });
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: 8 }).ret).toBe(EIO);
    expect(onDevice(p, a, 8)).toBe(1);
    m.check();
    const left = [...Array(8).keys()].find((i) => (p.pte(a + i * PAGE_SIZE) & 1n) === 0n)!;
    m.inject.add({ site: "copy", nth: 1 });
    expect(errorOf(() => p.readTag(a + left * PAGE_SIZE)).code).toBe("SIGBUS");
    m.check();
    m.inject.clear();
    intact(p, a, 8);
    m.check();
  });
});

describe("callback: a driver callback throws", () => {
  it("migrate_to_ram: SIGBUS, the page stays on the device", () => {
    const { m, p, a } = written(2);
    const d = mirror(m, p);
    d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 2 });
    m.inject.add({ site: "callback", callback: "migrate_to_ram", nth: 1 });
    expect(errorOf(() => p.readTag(a)).code).toBe("SIGBUS");
    expect(onDevice(p, a, 2)).toBe(2);
    m.check();
    m.inject.clear();
    intact(p, a, 2);
  });

  it("alloc_and_copy: the migration is rolled back and the ioctl returns -EIO", () => {
    const { m, p, a } = written(4);
    const d = mirror(m, p);
    m.inject.add({ site: "callback", callback: "alloc_and_copy", device: "hmm_dmirror0", nth: 1 });
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 4 }).ret).toBe(EIO);
    expect(onDevice(p, a, 4)).toBe(0);
    m.check();
    // MigrateVma.allocAndCopy (a driver's helper) rolls back too: dmirror's M2S.
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 4 }).ret).toBe(0);
    m.inject.add({ site: "callback", callback: "alloc_and_copy", nth: 1 });
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: 4 }).ret).toBe(EIO);
    expect(onDevice(p, a, 4)).toBe(4);
    m.check();
    m.inject.clear();
    intact(p, a, 4);
    m.check();
  });

  it("finalize_and_map: the pages moved but the device did not map them; it faults them in on its next read", () => {
    const { m, p, a } = written(4);
    const d = mirror(m, p);
    m.inject.add({ site: "callback", callback: "finalize_and_map", nth: 1 });
    expect(d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 4 }).ret).toBe(EIO);
    expect(onDevice(p, a, 4)).toBe(4);
    expect(d.mappedPages).toBe(0);
    m.check();
    m.inject.clear();
    const r = d.cmd(HMM_DMIRROR_READ, { addr: a, npages: 4 });
    expect(r.ret).toBe(0);
    expect([...(r.buffer as BigUint64Array)]).toEqual([100n, 101n, 102n, 103n]);
    intact(p, a, 4);
    m.check();
  });

  it("page_free: the page is free either way, the call completes, and machine.driverErrors keeps the error", () => {
    const { m, p, a } = written(2);
    const d = mirror(m, p);
    d.cmd(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, npages: 2 });
    m.inject.add({ site: "callback", callback: "page_free", nth: 1 });
    p.munmap(a, PAGE_SIZE);
    expect(m.driverErrorCount).toBe(1);
    expect(m.driverErrors[0]).toMatchObject({ callback: "page_free", device: "hmm_dmirror0" });
    expect(p.pte(a)).toBe(0n);
    m.check();
    m.inject.clear();
    p.munmap(a + PAGE_SIZE, PAGE_SIZE);
    m.check();
  });

  it("memory_failure: the owner's handler throws; memory_failure returns -EBUSY with the page poisoned", () => {
    const m = Machine.create({ nodes: [{ normal: 512 }], deviceMemory: 512, content: "tags" });
    const p = m.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeTag(a, 5n);
    let told = 0;
    const pg = m.memremapPages({
      type: 2, nrPages: 16, owner: "cxl", name: "cxl0",
      ops: { memoryFailure: () => { told++; return 0; } },
    });
    const mig = m.migrateVmaSetup({ proc: p, start: a, end: a + PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: "cxl" });
    mig.allocAndCopy(pg);
    mig.finalize();
    const pfn = Number((p.pte(a) >> 12n) & 0xffffffffffn);
    expect(pg.contains(pfn)).toBe(true);
    m.inject.add({ site: "callback", callback: "memory_failure", device: "cxl0", nth: 1 });
    expect(m.memoryFailure(pfn)).toBe(-16);
    expect(told).toBe(0);
    m.check();
  });
});

describe("notifier: a non-blockable invalidation is refused", () => {
  function victim() {
    const { m, p, a } = written(8);
    const d = mirror(m, p);
    expect(d.cmd(HMM_DMIRROR_READ, { addr: a, npages: 8 }).ret).toBe(0);
    return { m, p, a, d };
  }

  it("the OOM reaper skips the VMA, retries, and gives up after MAX_OOM_REAP_RETRIES", () => {
    const { m, p } = victim();
    const free = m.counter("nr_free_pages");
    m.inject.add({ site: "notifier", nth: 1, times: Infinity });
    const r = m.oomReap(p);
    expect(r).toMatchObject({ reaped: false, attempts: MAX_OOM_REAP_RETRIES, skippedVmas: 1, freedAnon: 0 });
    // The exit (blockable) frees everything anyway.
    expect(p.exited).toBe(true);
    expect(m.counter("nr_free_pages")).toBeGreaterThan(free);
    m.check();
  });

  it("a notifier that refuses three times is reaped on the fourth attempt", () => {
    const { m, p } = victim();
    const inj = m.inject.add({ site: "notifier", nth: 1, times: 3 });
    expect(m.oomReap(p)).toMatchObject({ reaped: true, attempts: 4, skippedVmas: 0, freedAnon: 8 });
    expect(inj.hits).toBe(3);
    m.check();
  });

  it("without injection the reaper reaps at once; blockable paths never consult the rule", () => {
    const { m, p, a } = victim();
    m.inject.add({ site: "notifier", nth: 1, times: Infinity });
    p.writeTag(a, 9n);
    p.munmap(a + 4 * PAGE_SIZE, PAGE_SIZE);
    m.check();
    m.inject.clear();
    expect(m.oomReap(p).reaped).toBe(true);
    m.check();
  });

  it("a driver that refuses a blockable invalidation is a bug: the call goes on, as after the kernel's WARN, and the machine keeps the report", () => {
    const { m, p, a } = written(2);
    m.mlock(p, a, 2 * PAGE_SIZE);
    m.mmuIntervalNotifierInsert(p, a, 2 * PAGE_SIZE, { invalidate: () => false });
    p.munmap(a, PAGE_SIZE);
    expect(p.vmaAt(a)).toBeUndefined();
    expect(m.driverErrorCount).toBe(1);
    const e = m.driverErrors[0]!;
    expect(e.callback).toBe("invalidate_range_start");
    expect((e.error as MmError).code).toBe("EFAULT");
    m.check();
    expect(p.readTag(a + PAGE_SIZE)).toBe(101n);
  });
});

describe("blockio: block-device I/O fails with -EIO", () => {
  it("writeback fails (fsync EIO, the page stays dirty), then reads fail; after clear both succeed", () => {
    const m = Machine.create({ nodes: [{ normal: 512 }], content: "bytes" });
    const dev = m.addBlockDevice("vda", { sectors: 64 });
    const fs = m.mount(dev);
    const f = fs.open("a", O_RDWR | O_CREAT);
    const data = new Uint8Array(PAGE_SIZE).map((_, i) => i * 3);
    f.pwrite(data, 0);
    const inj = m.inject.add({ site: "blockio", device: "vda", op: "write", nth: 1 });
    expect(errorOf(() => f.fsync()).code).toBe("EIO");
    expect(inj.hits).toBe(1);
    expect(m.counter("nr_dirty")).toBe(1);
    m.check();
    f.fsync();
    m.powerFail();
    m.inject.add({ site: "blockio", device: "vda", op: "read", nth: 1 });
    expect(errorOf(() => f.pread(PAGE_SIZE, 0)).code).toBe("EIO");
    m.check();
    m.inject.clear();
    expect(f.pread(PAGE_SIZE, 0)).toEqual(data);
    // injectError's own rules and machine.inject's live side by side.
    dev.injectError({ op: "read" });
    dev.clearErrors();
    expect(dev.stats.errors).toBe(2);
  });
});

describe("engine: a device copy engine runs late", () => {
  it("each copy takes delayNs longer in simulated time, while the rule lasts", () => {
    const m = Machine.create({ nodes: [{ normal: 512 }], content: "tags" });
    const s = new Scheduler(m);
    const eng = s.engine("dma", 4);
    const took: number[] = [];
    const job = { start: () => 4096, done: () => took.push(s.now) };
    m.inject.add({ site: "engine", device: "dma", nth: 2, delayNs: 5000 });
    for (let i = 0; i < 3; i++) eng.submit(job);
    s.run();
    expect(took).toEqual([1024, 1024 + 1024 + 5000, 1024 + 1024 + 5000 + 1024]);
  });
});

describe("clear() disarms everything", () => {
  it("no rule fires after clear, and the Wasm slots are reused", () => {
    const { m, p } = written(1);
    for (let i = 0; i < 8; i++) m.inject.add({ site: "alloc", nth: 1000 + i });
    expect(errorOf(() => m.inject.add({ site: "alloc", nth: 1 })).code).toBe("EBUSY");
    m.inject.clear();
    const b = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 8; i++) m.inject.add({ site: "alloc", nth: 1 });
    expect(errorOf(() => p.writeTag(b, 1n)).code).toBe("ENOMEM");
    // Used-up rules give their slots back.
    expect(m.inject.add({ site: "alloc", nth: 2 }).hits).toBe(0);
    m.inject.clear();
    p.touch(b, 16, true, 1n);
    expect(m.inject.list()).toHaveLength(0);
    expect(MmError).toBeDefined();
    m.check();
  });
});
