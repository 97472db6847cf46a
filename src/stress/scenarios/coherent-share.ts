// coherent-share: CPU and a device-coherent accelerator (CXL-style) share data. Pages the
// driver migrates to coherent device memory stay mapped with ordinary PTEs, so the CPU
// reads and writes them without faults while the device works on them locally; a forked
// process shares a MAP_SHARED buffer with its parent.
import type { Rng } from "../../random.js";
import type { World } from "../world.js";
import { OP_FORK, OP_MMAP } from "../ops.js";
import { cpuBurst, deviceKernel, deviceOf, liveRegions, migrateBack, ramPages, workingSet, type Emitter, type Generator, type Scenario } from "./common.js";

export const coherentShare: Scenario = {
  name: "coherent-share",
  summary: "CPU and a device-coherent accelerator touch the same memory; coherent pages need no CPU faults",
  needs: ["coherent"],
  create(w: World, rng: Rng): Generator {
    const dev = deviceOf(w, "coherent");
    const pages = Math.min(w.gpus[dev]!.pages, Math.floor(ramPages(w) / 8), 65536);
    return workingSet(pages, (e: Emitter) => {
      const r = rng.pick(liveRegions(w));
      const roll = rng.int(100);
      if (roll < 75) cpuBurst(e, rng, r, 256, 0.5);
      else if (roll < 95) deviceKernel(e, rng, dev, r, 256, !r.shared);
      else migrateBack(e, rng, dev, r, 512);
    }, (e: Emitter) => {
      e.op(OP_MMAP, 0, Math.min(1024, pages), 1); // the buffer both processes share
      e.op(OP_FORK, 0);
    });
  },
};
