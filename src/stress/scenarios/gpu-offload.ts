// gpu-offload: one process's working set moves to a device-private GPU on demand (the
// driver migrates what a kernel launch touches); the CPU keeps touching the same data,
// and each CPU access to a page on the GPU faults it back through migrate_to_ram.
import type { Rng } from "../../random.js";
import type { World } from "../world.js";
import { cpuBurst, deviceKernel, deviceOf, migrateBack, ramPages, workingSet, type Emitter, type Generator, type Scenario } from "./common.js";

export const gpuOffload: Scenario = {
  name: "gpu-offload",
  summary: "a working set migrates to a device-private GPU on demand; CPU faults bring pages back",
  needs: ["private"],
  create(w: World, rng: Rng): Generator {
    const dev = deviceOf(w, "private");
    // The working set fits the GPU: nothing needs evicting.
    const pages = Math.min(w.gpus[dev]!.pages, Math.floor(ramPages(w) / 4), 65536);
    return workingSet(pages, (e: Emitter, r) => {
      const roll = rng.int(100);
      if (roll < 70) cpuBurst(e, rng, r, 256, 0.4);
      else if (roll < 90) deviceKernel(e, rng, dev, r, 256);
      else migrateBack(e, rng, dev, r, 256);
    });
  },
};
