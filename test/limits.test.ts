// Resource limits: each ends with a clear MmError naming the limit, the machine unchanged,
// never a hang or a host out-of-memory: max_map_count over every call that splits VMAs,
// process slots, shared objects and files, migrations in flight, a machine too large for
// 32-bit Wasm memory, and the retry loops of CPU faults and hmm_range_fault.
import { describe, it, expect } from "vitest";
import {
  Machine, MmError, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, MREMAP_MAYMOVE,
  MREMAP_FIXED, MADV_DONTNEED, MPOL_BIND, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, HMM_PFN_REQ_FAULT, O_RDWR, O_CREAT, type Process,
} from "../src/index.js";
import { refused, writtenProcess, migrateToDevice, errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A process at max_map_count: 8 VMAs of alternating protection over its 16 private pages. */
function atMapCount() {
  const w = writtenProcess({ maxVmas: 8, nodes: [{ normal: 2048 }, { normal: 1024 }] });
  const { p, a } = w;
  for (const k of [1, 3, 5]) p.mprotect(a + k * PAGE_SIZE, PAGE_SIZE, PROT_READ);
  expect(p.maps().length).toBe(8);
  return w;
}

describe("max_map_count: every call that would split past it is ENOMEM, nothing changed", () => {
  it("mmap, mprotect, munmap, mremap, mlock and mbind splits", () => {
    const { m, p, a } = atMapCount();
    const hole = a + 9 * PAGE_SIZE;
    const errs = [
      refused(m, [p], "ENOMEM", () => p.mmap(0, PAGE_SIZE, PROT_READ, ANON)),
      refused(m, [p], "ENOMEM", () => p.mprotect(hole, PAGE_SIZE, PROT_READ)),
      refused(m, [p], "ENOMEM", () => p.munmap(hole, PAGE_SIZE)),
      refused(m, [p], "ENOMEM", () => p.mremap(hole, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, 0x40000000)),
      refused(m, [p], "ENOMEM", () => m.mlock(p, hole, PAGE_SIZE)),
      refused(m, [p], "ENOMEM", () => m.mbind(p, hole, PAGE_SIZE, MPOL_BIND, [1])),
    ];
    for (const e of errs) expect(e.message).toMatch(/max_map_count 8/);
  });
});

describe("counted resources", () => {
  it("process slots: spawn and fork are ENOMEM at maxProcesses", () => {
    const { m, p } = writtenProcess({ maxProcesses: 3 });
    m.spawn();
    m.spawn();
    expect(refused(m, [p], "ENOMEM", () => m.spawn()).message).toMatch(/maxProcesses 3/);
    refused(m, [p], "ENOMEM", () => p.fork());
  });

  it("shared anonymous objects and files share maxShmem: ENOMEM for a mapping, ENFILE for a new file", () => {
    const { m, p } = writtenProcess({ maxShmem: 2, content: "bytes" }); // its shared mapping holds one
    const dev = m.addBlockDevice("vda", { sectors: 64 });
    const fs = m.mount(dev);
    fs.open("a", O_RDWR | O_CREAT);
    expect(refused(m, [p], "ENOMEM", () => p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)).message).toMatch(/maxShmem/);
    expect(errorOf(() => fs.open("b", O_RDWR | O_CREAT)).code).toBe("ENFILE");
  });

  it("migrations in flight: the fifth setup is EBUSY", () => {
    const { m, p, a } = writtenProcess();
    const migs = [0, 1, 2, 3].map((k) => m.migrateVmaSetup({ proc: p, start: a + k * PAGE_SIZE, end: a + (k + 1) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM }));
    expect(errorOf(() => m.migrateVmaSetup({ proc: p, start: a + 8 * PAGE_SIZE, end: a + 9 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM })).code).toBe("EBUSY");
    for (const mig of migs) mig.abort();
    m.check();
  });

  it("a machine over 32-bit Wasm memory is ENOMEM naming its size, before any memory is taken", () => {
    const err = errorOf(() => Machine.create({ nodes: [{ normal: 1 << 20 }], content: "bytes" }));
    expect(err.code).toBe("ENOMEM");
    expect(err.message).toMatch(/needs 4\.\d+ GiB of Wasm memory; 32-bit Wasm memory holds at most 4 GiB/);
    expect(err.value).toBeGreaterThan(2 ** 32);
  });
});

describe("retry loops are bounded", () => {
  /** A device-private range whose migrate_to_ram says it worked but leaves the page where it is. */
  function liarDevice(m: Machine) {
    const owner = { name: "liar" };
    return m.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: 64, owner, ops: { migrateToRam: () => 0 } });
  }

  it("a CPU fault that keeps coming back ends in EBUSY after 16 attempts", () => {
    const { m, p, a } = writtenProcess({ deviceMemory: 64 });
    const pg = liarDevice(m);
    migrateToDevice(m, p, a, 1, pg);
    const b = p.batch();
    b.readTag(a);
    const res = p.run(b);
    expect(res.fault?.code).toBe("EBUSY");
    expect(res.fault?.message).toMatch(/kept coming back after 16 attempts/);
  });

  it("hmm_range_fault over a page whose fault never makes it walkable returns -EBUSY", () => {
    const { m, p, a } = writtenProcess();
    p.munmap(a, PAGE_SIZE);
    p.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED);
    const sub = m.mmuIntervalNotifierInsert(p, a, PAGE_SIZE, { invalidate: () => true });
    // The fault handler claims success without mapping anything.
    (p as unknown as { faultPage: Process["faultPage"] }).faultPage = () => null;
    const hmmPfns = new BigUint64Array([HMM_PFN_REQ_FAULT]);
    const r = m.hmmRangeFault({ notifier: sub, notifierSeq: sub.readBegin(), start: a, end: a + PAGE_SIZE, hmmPfns, defaultFlags: HMM_PFN_REQ_FAULT, pfnFlagsMask: 0n, devPrivateOwner: null });
    expect(r).toBe(-16);
  });

  it("a touch of a file mapping twice the size of memory ends: a retried touch resumes at the page that faulted", () => {
    const m = Machine.create({ nodes: [{ normal: 512 }], content: "tags" });
    const f = m.mount(m.addBlockDevice("vda", { sectors: 4096 })).open("big", O_RDWR | O_CREAT);
    f.ftruncate(1024 * PAGE_SIZE);
    f.writeTags(1000, [7n]);
    f.fsync();
    const p = m.spawn();
    const b = p.mmap(0, 1024 * PAGE_SIZE, PROT_READ, MAP_SHARED, f, 0);
    p.touch(b, 1024, false); // restarting the range at page 0 after every read-in never finished
    expect(p.readTag(b + 1000 * PAGE_SIZE)).toBe(7n);
    m.check();
  });

  it("a touch the fault ends starts from its first page when the batch runs again", () => {
    const { m, p, a } = writtenProcess({});
    p.mprotect(a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ);
    const batch = p.batch();
    batch.touch(a, 8, true, 100n);
    expect(p.run(batch).fault?.code).toBe("SIGSEGV");
    p.mprotect(a, 8 * PAGE_SIZE, RW);
    p.madvise(a, 4 * PAGE_SIZE, MADV_DONTNEED); // pages 0-3 read zero unless the touch runs them again
    expect(p.run(batch).fault).toBeUndefined();
    for (let k = 0; k < 8; k++) expect(p.readTag(a + k * PAGE_SIZE)).toBe(100n + BigInt(k));
    m.check();
  });

  it("read's length is capped at MAX_RW_COUNT before any buffer is allocated", () => {
    const { m, p, a } = writtenProcess({ content: "bytes" });
    const err = refused(m, [p], "EINVAL", () => p.read(a, 2 ** 40));
    expect(err.message).toMatch(/MAX_RW_COUNT/);
    expect(err).toBeInstanceOf(MmError);
  });
});
