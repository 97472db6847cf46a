// Draws a fuzz program from a seed. The generator keeps a rough model of what is live
// (processes, their regions, pin holds, CMA slots) so most ops name live things; the
// executor skips the rest, so the model need not be exact.
import { Rng } from "../random.js";
import {
  MAX_CMA_SLOT, MAX_CPU_ACCESSES, MAX_DEV, MAX_FID, MAX_FILE_PAGES, MAX_HOLD, MAX_NODE, MAX_PID, MAX_REGION_PAGES, MAX_RID,
  type Op, type OpName, type Program,
} from "./ops.js";
import { MAX_FAULT_ARG, MAX_FAULT_SITE, MAX_FAULT_TIMES } from "./faults.js";

export interface GenerateOptions {
  /** Ops in the program (default 160). */
  ops?: number;
  /** Content mode (default: tags, one program in four bytes). */
  content?: "bytes" | "tags";
}

/** Relative frequency of each op. CPU batches dominate: they are most of the operations. */
const WEIGHTS: [OpName, number][] = [
  ["cpu", 30], ["dev", 12], ["mmap", 6], ["munmap", 2], ["fork", 3], ["exit", 2], ["spawn", 2], ["mprotect", 3], ["madvise", 3],
  ["mremap", 2], ["mlock", 2], ["mbind", 2], ["movepages", 3], ["migratepages", 1], ["compact", 1], ["cmaalloc", 1], ["cmarelease", 1],
  ["gup", 4], ["unpin", 4], ["fwrite", 4], ["fread", 3], ["ftruncate", 2], ["fsync", 2], ["msync", 2], ["powerfail", 1],
  ["threads", 3], ["fault", 4], ["devrelease", 1], ["oomreap", 1],
];
const TOTAL = WEIGHTS.reduce((s, [, w]) => s + w, 0);
/** Mapped pages the generator keeps the live regions under (forks count their copies). */
const PAGE_BUDGET = 1200;

export function generateProgram(seed: number, opts: GenerateOptions = {}): Program {
  const rng = new Rng(seed);
  const nOps = opts.ops ?? 160;
  const content = opts.content ?? (rng.int(4) === 0 ? "bytes" : "tags");
  const procs = new Map<number, Map<number, number>>();
  const holds = new Set<number>();
  const cma = new Set<number>();
  const ops: Op[] = [];
  let mapped = 0;
  const int = (max: number) => rng.int(max + 1);
  const livePid = (): number => (procs.size > 0 ? rng.pick([...procs.keys()]) : int(MAX_PID));
  const freePid = (): number => {
    const free = [...Array(MAX_PID + 1).keys()].filter((p) => !procs.has(p));
    return free.length > 0 ? rng.pick(free) : int(MAX_PID);
  };
  const liveRegion = (): [number, number] => {
    const withRegions = [...procs].filter(([, r]) => r.size > 0);
    if (withRegions.length === 0) return [livePid(), int(MAX_RID)];
    const [pid, regions] = rng.pick(withRegions);
    return [pid, rng.pick([...regions.keys()])];
  };
  const spawn = (pid: number) => {
    ops.push(["spawn", pid]);
    procs.set(pid, new Map());
  };
  const mmap = (pid: number) => {
    const regions = procs.get(pid);
    if (!regions) return;
    const rid = [...Array(MAX_RID + 1).keys()].find((r) => !regions.has(r));
    if (rid === undefined) return;
    const pages = 1 + rng.int(MAX_REGION_PAGES);
    if (mapped + pages > PAGE_BUDGET) return;
    ops.push(["mmap", pid, rid, pages, rng.int(4), int(MAX_FID)]);
    regions.set(rid, pages);
    mapped += pages;
  };

  spawn(0);
  mmap(0);
  mmap(0);
  while (ops.length < nOps) {
    let pick = rng.int(TOTAL);
    let name: OpName = "cpu";
    for (const [n, w] of WEIGHTS) {
      if (pick < w) {
        name = n;
        break;
      }
      pick -= w;
    }
    switch (name) {
      case "spawn": {
        if (procs.size > MAX_PID) break;
        spawn(freePid());
        break;
      }
      case "fork": {
        if (procs.size === 0 || procs.size > MAX_PID) break;
        const parent = livePid();
        const regions = procs.get(parent)!;
        const pages = [...regions.values()].reduce((s, p) => s + p, 0);
        if (mapped + pages > PAGE_BUDGET) break;
        const child = freePid();
        ops.push(["fork", child, parent]);
        procs.set(child, new Map(regions));
        mapped += pages;
        break;
      }
      case "exit":
      case "oomreap": {
        // The OOM reaper's victim exits too.
        if (procs.size <= 1) break;
        const pid = livePid();
        ops.push([name, pid]);
        mapped -= [...procs.get(pid)!.values()].reduce((s, p) => s + p, 0);
        procs.delete(pid);
        break;
      }
      case "mmap":
        mmap(livePid());
        break;
      case "munmap": {
        const [pid, rid] = liveRegion();
        ops.push(["munmap", pid, rid]);
        const regions = procs.get(pid);
        mapped -= regions?.get(rid) ?? 0;
        regions?.delete(rid);
        break;
      }
      case "mremap": {
        const [pid, rid] = liveRegion();
        const pages = 1 + rng.int(MAX_REGION_PAGES);
        const old = procs.get(pid)?.get(rid);
        if (old === undefined || mapped + pages - old > PAGE_BUDGET) break;
        ops.push(["mremap", pid, rid, pages]);
        break;
      }
      case "mprotect":
      case "mlock":
        ops.push([name, ...liveRegion(), rng.int(4) === 0 ? 0 : 1]);
        break;
      case "madvise":
        ops.push(["madvise", ...liveRegion(), rng.int(MAX_REGION_PAGES), 1 + rng.int(4)]);
        break;
      case "mbind":
        ops.push(["mbind", ...liveRegion(), int(MAX_NODE), int(1)]);
        break;
      case "cpu":
        ops.push(["cpu", ...liveRegion(), rng.int(0x10000), 1 + rng.int(MAX_CPU_ACCESSES)]);
        break;
      case "dev":
        ops.push(["dev", ...liveRegion(), int(MAX_DEV), rng.int(6), rng.int(MAX_REGION_PAGES), 1 + rng.int(MAX_REGION_PAGES)]);
        break;
      case "devrelease":
        ops.push(["devrelease", int(MAX_DEV), int(1)]);
        break;
      case "movepages":
        ops.push(["movepages", ...liveRegion(), rng.int(MAX_REGION_PAGES), 1 + rng.int(8), int(MAX_NODE)]);
        break;
      case "migratepages":
        ops.push(["migratepages", livePid(), int(MAX_NODE), int(MAX_NODE)]);
        break;
      case "compact":
      case "powerfail":
        ops.push([name]);
        break;
      case "cmaalloc": {
        const slot = int(MAX_CMA_SLOT);
        ops.push(["cmaalloc", slot, rng.int(64)]);
        cma.add(slot);
        break;
      }
      case "cmarelease": {
        const slot = cma.size > 0 ? rng.pick([...cma]) : int(MAX_CMA_SLOT);
        ops.push(["cmarelease", slot]);
        cma.delete(slot);
        break;
      }
      case "gup": {
        const hold = int(MAX_HOLD);
        ops.push(["gup", hold, ...liveRegion(), rng.int(MAX_REGION_PAGES), 1 + rng.int(4), rng.int(5)]);
        holds.add(hold);
        break;
      }
      case "unpin": {
        const hold = holds.size > 0 ? rng.pick([...holds]) : int(MAX_HOLD);
        ops.push(["unpin", hold]);
        holds.delete(hold);
        break;
      }
      case "fwrite":
      case "fread":
        ops.push([name, int(MAX_FID), rng.int(MAX_FILE_PAGES)]);
        break;
      case "ftruncate":
        ops.push(["ftruncate", int(MAX_FID), int(MAX_FILE_PAGES)]);
        break;
      case "fsync":
        ops.push(["fsync", int(MAX_FID)]);
        break;
      case "msync":
        ops.push(["msync", ...liveRegion()]);
        break;
      case "threads":
        ops.push(["threads", ...liveRegion(), rng.int(4), 1 + rng.int(16), rng.int(0x10000), int(MAX_NODE)]);
        break;
      case "fault": {
        // Sites 0-6 take a small argument (their meaning from before machine.inject), 7 and up a full one.
        const site = rng.int(MAX_FAULT_SITE + 1);
        ops.push(["fault", site, rng.int(site < 7 ? 16 : MAX_FAULT_ARG + 1), rng.int(MAX_FAULT_TIMES + 1)]);
        break;
      }
    }
  }
  return { seed, machine: { content }, ops };
}
