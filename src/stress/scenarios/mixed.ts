// mixed (the default): everything at once. Several processes map and unmap private and
// shared regions, fork and exit, change protections; a device-private GPU and a
// device-coherent accelerator migrate ranges in and out, load and store through
// hmm_range_fault, take pages for atomics (make_device_exclusive) and evict; madvise drops pages; the CPU
// keeps touching everything, faulting device-private pages back.
import type { Rng } from "../../random.js";
import { MAX_PROCS, type World } from "../world.js";
import { OP_EVICT, OP_EXCLUSIVE, OP_EXIT, OP_FORK, OP_MADV_DONTNEED, OP_MMAP, OP_MPROTECT, OP_MUNMAP, packRange } from "../ops.js";
import {
  cpuBurst, deviceKernel, liveProcs, liveRegions, migrateBack, ramPages, spawnWithRegion, subRange, type Emitter, type Generator, type Scenario,
} from "./common.js";

export const mixed: Scenario = {
  name: "mixed",
  summary: "processes, forks, shared and private regions, both device kinds, exclusive access and eviction at once",
  needs: [],
  create(w: World, rng: Rng): Generator {
    // Mapped pages stay under this share of RAM, counting each fork's copies (no swap here).
    const budget = Math.floor(ramPages(w) * 0.4);
    const maxRegion = Math.min(4096, Math.floor(budget / 16));
    const devs = w.gpus.map((_, i) => i);
    return {
      step(e: Emitter) {
        if (w.live.length === 0 && !spawnWithRegion(e, 1 + rng.int(maxRegion))) return e.skip();
        const r = rng.pick(w.live);
        const roll = rng.int(1000);
        if (roll < 700) {
          cpuBurst(e, rng, r, 256 + rng.int(512), 0.4);
        } else if (roll < 860 && devs.length > 0) {
          deviceKernel(e, rng, rng.pick(devs), r, 128, !r.shared || rng.int(4) === 0);
        } else if (roll < 900 && devs.length > 0) {
          migrateBack(e, rng, rng.pick(devs), r, 256);
        } else if (roll < 920 && devs.length > 0) {
          e.op(OP_EVICT, rng.pick(devs), 1 + rng.int(128));
        } else if (roll < 935 && devs.length > 0 && r.writable && !r.shared) {
          e.op(OP_EXCLUSIVE, rng.pick(devs), r.slot, rng.int(r.pages));
        } else if (roll < 955) {
          const pages = 1 + rng.int(maxRegion);
          // Half the budget at most, so there is always room for a fork's copies.
          if (w.mappedPages + pages <= budget / 2) e.op(OP_MMAP, r.proc, pages, rng.int(4) === 0 ? 1 : 0);
        } else if (roll < 970) {
          if (liveRegions(w, r.proc).length > 1) e.op(OP_MUNMAP, r.slot);
        } else if (roll < 975) {
          e.op(OP_MPROTECT, r.slot, r.writable ? 0 : 1);
        } else if (roll < 980) {
          const { page, n } = subRange(rng, r, 512);
          e.op(OP_MADV_DONTNEED, r.slot, packRange(page, n));
        } else if (roll < 990) {
          const mine = liveRegions(w, r.proc).reduce((s, x) => s + x.pages, 0);
          if (w.liveProcs < Math.min(8, MAX_PROCS) && w.mappedPages + mine <= budget) e.op(OP_FORK, r.proc);
        } else {
          const procs = liveProcs(w);
          if (procs.length > 1) e.op(OP_EXIT, rng.pick(procs));
        }
      },
    };
  },
};
