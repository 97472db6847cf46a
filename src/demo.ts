// The default demo run: a few processes map, touch, fork, copy-on-write, remap and
// unmap memory chosen by a seeded generator; invariants are checked along the way.
import { Machine } from "./machine.js";
import type { Process } from "./process.js";
import type { Counters } from "./stats.js";
import { MmError } from "./errors.js";
import { Rng } from "./random.js";
import {
  PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MADV_DONTNEED, MADV_FREE, MREMAP_MAYMOVE,
} from "./constants.js";

export interface DemoOptions {
  seed?: number;
  ops?: number;
  /** Frames in node 0's ZONE_NORMAL (default 64 Ki = 256 MiB emulated). */
  pages?: number;
  /** Run machine.check() every this many operations (default 256). */
  checkEvery?: number;
}

export interface DemoReport {
  seed: number;
  ops: number;
  pagesTouched: number;
  faults: { SIGSEGV: number; SIGBUS: number; ENOMEM: number };
  checks: number;
  elapsedMs: number;
  counters: Counters;
}

interface Region {
  proc: Process;
  addr: number;
  pages: number;
}

export function runDemo(opts: DemoOptions = {}): DemoReport {
  const seed = opts.seed ?? 1;
  const ops = opts.ops ?? 20000;
  const checkEvery = opts.checkEvery ?? 256;
  const rng = new Rng(seed);
  const machine = Machine.create({ content: "tags", nodes: [{ normal: opts.pages ?? 65536, movable: (opts.pages ?? 65536) / 2 }] });
  const procs: Process[] = [machine.spawn()];
  const regions: Region[] = [];
  const faults = { SIGSEGV: 0, SIGBUS: 0, ENOMEM: 0 };
  let pagesTouched = 0;
  const t0 = performance.now();

  for (let i = 0; i < ops; i++) {
    const proc = rng.pick(procs);
    const mine = regions.filter((r) => r.proc === proc);
    const roll = rng.int(100);
    try {
      if (roll < 12 || mine.length === 0) {
        const pages = 1 + rng.int(256);
        const shared = rng.int(4) === 0;
        const addr = proc.mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS);
        regions.push({ proc, addr, pages });
      } else if (roll < 60) {
        const r = rng.pick(mine);
        const first = rng.int(r.pages);
        const n = 1 + rng.int(r.pages - first);
        proc.touch(r.addr + first * PAGE_SIZE, n, rng.int(3) !== 0, BigInt(i) << 20n);
        pagesTouched += n;
      } else if (roll < 68 && procs.length < 8) {
        const child = proc.fork();
        procs.push(child);
        for (const r of mine) regions.push({ ...r, proc: child });
      } else if (roll < 74 && procs.length > 1) {
        proc.exit();
        procs.splice(procs.indexOf(proc), 1);
        for (let k = regions.length - 1; k >= 0; k--) if (regions[k]!.proc === proc) regions.splice(k, 1);
      } else if (roll < 82) {
        const r = rng.pick(mine);
        proc.munmap(r.addr, r.pages * PAGE_SIZE);
        regions.splice(regions.indexOf(r), 1);
      } else if (roll < 88) {
        const r = rng.pick(mine);
        const pages = 1 + rng.int(512);
        r.addr = proc.mremap(r.addr, r.pages * PAGE_SIZE, pages * PAGE_SIZE, MREMAP_MAYMOVE);
        r.pages = pages;
      } else if (roll < 94) {
        const r = rng.pick(mine);
        proc.madvise(r.addr, r.pages * PAGE_SIZE, rng.int(2) ? MADV_DONTNEED : MADV_FREE);
      } else {
        const r = rng.pick(mine);
        proc.mprotect(r.addr, r.pages * PAGE_SIZE, rng.int(2) ? PROT_READ : PROT_READ | PROT_WRITE);
      }
    } catch (e) {
      if (!(e instanceof MmError)) throw e;
      // Expected outcomes: writes to read-only memory, shared memory grown past its object, exhaustion.
      if (e.code === "SIGSEGV" || e.code === "SIGBUS" || e.code === "ENOMEM") faults[e.code]++;
      else if (e.code !== "EINVAL") throw e; // MADV_FREE on a shared mapping
    }
    if ((i + 1) % checkEvery === 0) machine.check();
  }
  machine.check();
  for (const p of procs) p.exit();
  machine.check();
  return {
    seed, ops, pagesTouched, faults, checks: machine.checksRun,
    elapsedMs: performance.now() - t0, counters: machine.counters(),
  };
}
