// oversubscribe: the working set is larger than the GPU's memory. Each kernel launch
// migrates its range in; when device memory runs out the driver evicts its least
// recently migrated pages back to system memory (migrate_device_range), as GPU drivers do.
import type { Rng } from "../../random.js";
import type { World } from "../world.js";
import { OP_EVICT } from "../ops.js";
import { cpuBurst, deviceKernel, deviceOf, ramPages, workingSet, type Emitter, type Generator, type Scenario } from "./common.js";

export const oversubscribe: Scenario = {
  name: "oversubscribe",
  summary: "a working set 2.5x the GPU's memory: kernel launches force eviction of device pages",
  needs: ["private"],
  create(w: World, rng: Rng): Generator {
    const dev = deviceOf(w, "private");
    const gpuPages = w.gpus[dev]!.pages;
    const pages = Math.min(Math.floor(gpuPages * 2.5), Math.floor(ramPages(w) / 3), 65536);
    return workingSet(pages, (e: Emitter, r) => {
      const roll = rng.int(100);
      if (roll < 55) cpuBurst(e, rng, r, 256, 0.4);
      else if (roll < 97) deviceKernel(e, rng, dev, r, Math.max(64, Math.floor(gpuPages / 8)));
      else e.op(OP_EVICT, dev, 1 + rng.int(256));
    });
  },
};
