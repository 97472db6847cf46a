// Helpers shared by the tests: a minimal device-private driver, and catching MmErrors.
import { expect } from "vitest";
import {
  Machine, MmError, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, PAGE_SIZE,
  PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
  type DevPagemap, type MachineConfig, type Process, type VmFault,
} from "../src/index.js";

/**
 * The bad-input tests' starting point: a tags-mode machine whose process has 16 written
 * private pages at `a` and 4 written shared ones at `s`.
 */
export function writtenProcess(config: MachineConfig = {}) {
  const m = Machine.create({ nodes: [{ normal: 2048 }], content: "tags", ...config });
  const p = m.spawn();
  const a = p.mmap(0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.touch(a, 16, true, 100n);
  const s = p.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  p.touch(s, 4, true, 200n);
  return { m, p, a, s };
}

/** A driver's whole migration of `npages` system pages from `addr` to its device range `pg`. */
export function migrateToDevice(m: Machine, proc: Process, addr: number, npages: number, pg: DevPagemap): void {
  const mig = m.migrateVmaSetup({ proc, start: addr, end: addr + npages * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: pg.owner });
  mig.allocAndCopy(pg);
  mig.finalize();
}

/** The MmError `fn` throws (fails the test when it throws nothing). */
export function errorOf(fn: () => unknown): MmError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MmError) return err;
    throw err;
  }
  throw new Error("expected an MmError");
}

/**
 * A device-private range whose migrate_to_ram moves the one faulting page back to system
 * memory, as the simplest real driver would; with `fail` it throws instead.
 */
export function privateDevice(m: Machine, nrPages: number, name = "gpu0", fail = false) {
  const owner = { name };
  let freed = 0;
  const pg: DevPagemap = m.memremapPages({
    type: MEMORY_DEVICE_PRIVATE, nrPages, owner,
    ops: {
      pageFree: () => {
        freed++;
      },
      migrateToRam(vmf: VmFault) {
        if (fail) throw new Error("injected");
        const mig = m.migrateVmaSetup({
          proc: vmf.proc, start: vmf.address, end: vmf.address + PAGE_SIZE,
          flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: owner, faultPage: vmf.page,
        });
        mig.allocAndCopy({ node: 0 });
        mig.finalize();
        return 0;
      },
    },
  });
  return { pg, owner, freed: () => freed };
}

/**
 * A refused call leaves the machine exactly as it was: every byte of the emulator's memory
 * (but `staging`, a region the call may stage its input in), every process's VMA list and the
 * counters. Returns the MmError, whose code must be `code`.
 */
export function refused(m: Machine, procs: Process[], code: string, call: () => unknown, staging?: [number, number]): MmError {
  const countersBefore = m.counters();
  const memBefore = new Uint8Array(m.core.memory.buffer).slice();
  const mapsBefore = procs.map((p) => JSON.stringify(p.maps()));
  let err: unknown;
  try {
    call();
  } catch (e) {
    err = e;
  }
  expect(err, "the call should have been refused").toBeInstanceOf(MmError);
  expect((err as MmError).code).toBe(code);
  expect((err as MmError).message).toMatch(new RegExp(`: ${code}: \\S`));
  expect(procs.map((p) => JSON.stringify(p.maps()))).toEqual(mapsBefore);
  const memAfter = new Uint8Array(m.core.memory.buffer);
  expect(memAfter.length).toBe(memBefore.length);
  const [from, to] = staging ?? [memAfter.length, memAfter.length];
  const same = (a: number, b: number): boolean => Buffer.compare(memBefore.subarray(a, b), memAfter.subarray(a, b)) === 0;
  expect(same(0, from) && same(to, memAfter.length), "machine memory changed").toBe(true);
  expect(m.counters()).toEqual(countersBefore);
  m.check();
  return err as MmError;
}
