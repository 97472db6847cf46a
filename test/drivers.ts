// A minimal device-private driver for tests: its migrate_to_ram moves the one faulting
// page back to system memory, as the simplest real driver would.
import {
  MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, PAGE_SIZE, type DevPagemap, type Machine, type VmFault,
} from "../src/index.js";

export function privateDevice(m: Machine, nrPages: number, name = "gpu0") {
  const owner = { name };
  let freed = 0;
  const pg: DevPagemap = m.memremapPages({
    type: MEMORY_DEVICE_PRIVATE, nrPages, owner,
    ops: {
      pageFree: () => {
        freed++;
      },
      migrateToRam(vmf: VmFault) {
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
