// Helpers shared by the tests: a minimal device-private driver, and catching MmErrors.
import {
  MmError, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, PAGE_SIZE,
  type DevPagemap, type Machine, type Process, type VmFault,
} from "../src/index.js";

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
