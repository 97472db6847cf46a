// Sizes and the common set-up of the mm benchmarks: one machine per build and one reference
// machine, each mapping the same P pages at the same 1 GiB-aligned address so both sides build
// page tables of the same shape.
import { Machine, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, type Process, type WasmBuild } from "../src/index.js";
import { RefMachine } from "./reference/kernel.js";

/** Pages per region under test: 64 Ki pages = 256 MiB emulated. */
export const P = 64 * 1024;
/** Frames per machine: room for the region, a full COW copy of it, and the watermark. */
export const N = 4 * P;
/** Region start: 1 TiB, aligned to every page-table level below the pgd. */
export const VPN = 2 ** 28;
export const ADDR = VPN * 4096;
export const LEN = P * 4096;

export function wasmMachine(build: WasmBuild): { machine: Machine; proc: Process } {
  const machine = Machine.create({ build, content: "tags", nodes: [{ normal: N }] });
  return { machine, proc: machine.spawn() };
}

export function mapRegion(proc: Process): void {
  proc.mmap(ADDR, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
}

/** After a round: the machine must be back to one process with its invariants intact. */
export function settled<T>(machine: Machine, result: T): T {
  if (machine.procs.length !== 1) throw new Error(`bench: ${machine.procs.length} processes left after a round`);
  machine.check();
  return result;
}

export function refMachine(): RefMachine {
  return new RefMachine({ pages: N });
}
