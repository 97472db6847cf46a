// Property test of migrations under concurrency: random CPU threads read and write a private
// and a shared region of a process (and of the children an admin thread forks) while random
// driver threads migrate random ranges between two nodes and device-coherent memory, with
// blocking and read-only entries mixed, some allocations failing and some copies aborted;
// the admin thread also write-protects, re-protects and replaces (MAP_FIXED) parts of the
// private region meanwhile. Every access is checked against a shadow at the instant it
// runs; machine.check() runs between slices of simulated time (with allowInFlight while
// migrations are in flight, strictly when none is), and every page is read back at the end.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MmError, Scheduler, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MEMORY_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_SYSTEM, PAGE_SIZE, PROT_READ, PROT_WRITE,
  type MigrateRequest, type Process,
} from "../src/index.js";
import { Rng } from "../src/random.js";

const RW = PROT_READ | PROT_WRITE;
const PRIV = 48;
const SHARED = 16;

interface ProcModel {
  proc: Process;
  priv: Uint32Array;
  /** Per private page: writable now (mprotect). */
  writable: Uint8Array;
}

function simulate(seed: number): { now: number; readStalls: number; writeStalls: number; moved: number } {
  const rng = new Rng(seed);
  const m = Machine.create({ nodes: [{ normal: 2048 }, { normal: 2048 }], deviceMemory: 256, content: "tags" });
  const owner = {};
  const coherent = m.memremapPages({ type: MEMORY_DEVICE_COHERENT, nrPages: 256, owner, ops: {} });
  const p = m.spawn();
  const priv = p.mmap(0, PRIV * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const shm = p.mmap(0, SHARED * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
  const shared = new Uint32Array(SHARED);
  const procs: ProcModel[] = [{ proc: p, priv: new Uint32Array(PRIV), writable: new Uint8Array(PRIV).fill(1) }];
  const model = (q: Process): ProcModel => procs.find((x) => x.proc === q)!;
  let nextTag = 1;

  /** The shadow slot of an address: [array, index]. */
  const slot = (q: Process, addr: number): [Uint32Array, number] =>
    addr >= shm && addr < shm + SHARED * PAGE_SIZE ? [shared, (addr - shm) / PAGE_SIZE] : [model(q).priv, (addr - priv) / PAGE_SIZE];

  const s = new Scheduler(m, {
    trace: {
      access(t, q, addr, write, tag) {
        const [arr, i] = slot(q, addr);
        if (write) arr[i] = Number(tag);
        else if (Number(tag) !== arr[i]) throw new Error(`seed ${seed}: ${t.name} read ${tag} at page ${i} of pid ${q.pid} at ${s.now}, expected ${arr[i]}`);
      },
    },
  });
  const engines = [s.engine("pcie", 8), s.engine("cxl", 16)];

  for (let k = 0; k < 3; k++) {
    const r = new Rng(rng.int(2 ** 30));
    s.spawn(`cpu${k}`, function* (t) {
      for (let i = 0; i < 120; i++) {
        const pm = procs[r.int(procs.length)]!;
        const inShared = r.int(4) === 0;
        const page = r.int(inShared ? SHARED : PRIV);
        const addr = (inShared ? shm : priv) + page * PAGE_SIZE;
        const write = r.int(3) === 0;
        try {
          if (write) yield* t.write(pm.proc, addr, BigInt(nextTag++));
          else yield* t.read(pm.proc, addr);
        } catch (e) {
          // Only a write to a page the admin write-protected may fail (it may have slept through the mprotect).
          if (!(e instanceof MmError) || e.code !== "SIGSEGV" || !write || inShared || pm.writable[page]) throw e;
        }
        yield* t.compute(r.int(400));
      }
    });
  }

  for (let k = 0; k < 2; k++) {
    const r = new Rng(rng.int(2 ** 30));
    s.spawn(`driver${k}`, function* (t) {
      for (let i = 0; i < 10; i++) {
        const pm = procs[r.int(procs.length)]!;
        const inShared = r.int(4) === 0;
        const size = inShared ? SHARED : PRIV;
        const n = 1 + r.int(12);
        const first = r.int(size - n + 1);
        const base = (inShared ? shm : priv) + first * PAGE_SIZE;
        const where = r.int(3);
        const req: MigrateRequest = {
          proc: pm.proc, start: base, end: base + n * PAGE_SIZE, engine: engines[k]!,
          // System pages go to node 1 or to the device; device pages come back to node 0.
          flags: where === 2 ? MIGRATE_VMA_SELECT_DEVICE_COHERENT : MIGRATE_VMA_SELECT_SYSTEM,
          target: where === 0 ? { node: 1 } : where === 1 ? coherent : { node: 0 },
          pgmapOwner: owner,
          readOnlyEntries: r.int(2) === 0,
          fail: r.int(10) === 0 ? "alloc" : r.int(10) === 0 ? "abort" : undefined,
        };
        try {
          yield* t.migrate(req);
        } catch (e) {
          // The admin split the VMA under the range: the driver gets EINVAL.
          if (!(e instanceof MmError) || e.code !== "EINVAL") throw e;
        }
        yield* t.compute(r.int(20_000));
      }
    });
  }

  const r = new Rng(rng.int(2 ** 30));
  s.spawn("admin", function* (t) {
    for (let i = 0; i < 6; i++) {
      yield* t.compute(5_000 + r.int(40_000));
      const roll = r.int(3);
      if (roll === 0 && procs.length < 3) {
        yield* t.call(() => {
          const c = p.fork();
          procs.push({ proc: c, priv: model(p).priv.slice(), writable: model(p).writable.slice() });
        });
      } else if (roll === 1) {
        const pm = procs[r.int(procs.length)]!;
        const first = r.int(PRIV - 4);
        const w = r.int(2) === 0;
        yield* t.call(() => {
          pm.proc.mprotect(priv + first * PAGE_SIZE, 4 * PAGE_SIZE, w ? RW : PROT_READ);
          pm.writable.fill(w ? 1 : 0, first, first + 4);
        });
      } else {
        const pm = procs[r.int(procs.length)]!;
        const first = r.int(PRIV - 2);
        yield* t.call(() => {
          pm.proc.mmap(priv + first * PAGE_SIZE, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
          pm.priv.fill(0, first, first + 2);
          pm.writable.fill(1, first, first + 2);
        });
      }
    }
  });

  while (s.pending > 0) {
    s.run(s.now + 7_000);
    if (s.inFlight > 0) m.check({ allowInFlight: true });
    else m.check();
  }
  expect(s.threads.every((th) => th.state === "done")).toBe(true);
  m.check();
  for (const pm of procs) {
    for (let i = 0; i < PRIV; i++) expect(Number(pm.proc.readTag(priv + i * PAGE_SIZE)), `pid ${pm.proc.pid} page ${i}`).toBe(pm.priv[i]);
    for (let i = 0; i < SHARED; i++) expect(Number(pm.proc.readTag(shm + i * PAGE_SIZE))).toBe(shared[i]);
  }
  m.check();
  return { now: s.now, readStalls: s.stalls.read.summary().stalled, writeStalls: s.stalls.write.summary().stalled, moved: s.pagesMoved };
}

describe("migrations under concurrency (property)", () => {
  it("random threads and migrations in both modes keep every value, and the invariants hold", () => {
    let stalled = 0;
    let moved = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const res = simulate(seed);
        stalled += res.readStalls + res.writeStalls;
        moved += res.moved;
      }),
      { numRuns: 20 },
    );
    // The runs did hit migrations in flight and moved pages.
    expect(stalled).toBeGreaterThan(0);
    expect(moved).toBeGreaterThan(0);
  });

  it("is deterministic", () => {
    expect(simulate(12345)).toEqual(simulate(12345));
  });
});
