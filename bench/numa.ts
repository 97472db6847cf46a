// migrate_pages(2) and move_pages(2) between two NUMA nodes in bytes mode, 1 Ki to 64 Ki written
// pages per call, against memory.copy of the same bytes inside the machine's own Wasm memory, in
// the same run. Each call moves a process's whole region from node 0 to node 1; moving it back
// runs in a tinybench hook, outside the timing.
import { measure, type Timing, type TimingOptions, type Variant } from "./harness.js";
import { timeRows, type Group } from "./report.js";
import { Machine, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, type Process } from "../src/index.js";
import { L } from "../src/layout.js";

/** Pages per call. */
export const SIZES = [1024, 16384, 65536];
const P = SIZES[SIZES.length - 1]!;
/** Pages per node: the region, plus room above the watermarks. */
const NODE_PAGES = P + 8192;
const ADDR = 2 ** 28 * PAGE_SIZE;

const label = (n: number): string => `${n / 1024} Ki pages`;

function timingOptions(n: number): TimingOptions {
  return n >= 16384 ? { time: 100, iterations: 3, warmup: 1 } : { time: 100 };
}

/** memory.copy of n frames from node 0's frames to node 1's (free while it runs). */
function memcpyLimit(m: Machine, n: number): Variant {
  const mem = new Uint8Array(m.core.memory.buffer);
  const frames = m.layout.slots[L.FRAMES]!;
  const src = frames + PAGE_SIZE;
  const dst = frames + NODE_PAGES * PAGE_SIZE;
  const len = n * PAGE_SIZE;
  return {
    variant: `limit: memory.copy of the same ${len / 2 ** 20} MiB (copyWithin)`, units: n, unit: "pages/s",
    run: (): Timing => measure(`numa memcpy ${n}`, () => mem.copyWithin(dst, src, src + len), {}, { time: 100 }),
  };
}

/** After a round: every page back on node 0, contents and invariants intact. */
function settled(m: Machine, proc: Process, n: number, t: Timing): Timing {
  const r = m.movePages(proc, [ADDR, ADDR + (n - 1) * PAGE_SIZE], null);
  if (r.status[0] !== 0 || r.status[1] !== 0) throw new Error("bench: pages left on node 1 after a round");
  if (proc.readTag(ADDR + (n - 1) * PAGE_SIZE) !== BigInt(n)) throw new Error("bench: a migrated page lost its contents");
  m.check();
  return t;
}

export function numa(nRounds: number): Group[] {
  const m = Machine.create({ build: "release", content: "bytes", nodes: [{ normal: NODE_PAGES }, { normal: NODE_PAGES }] });
  const groups: Group[] = [];
  for (const n of SIZES) {
    const proc = m.spawn({ node: 0 });
    proc.mmap(ADDR, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    proc.touch(ADDR, n, true, 1n);
    const addrs = Array.from({ length: n }, (_, i) => ADDR + i * PAGE_SIZE);
    const toNode1 = new Array<number>(n).fill(1);
    const back = (): void => {
      if (m.migratePages(proc, [1], [0]) !== 0) throw new Error("bench: migrate_pages left pages behind");
    };
    const opts = timingOptions(n);
    const variants: Variant[] = [
      {
        variant: "Wasm release: migratePages(proc, [0], [1])", units: n, unit: "pages/s",
        run: () => settled(m, proc, n, measure(`migrate_pages ${n}`, () => {
          if (m.migratePages(proc, [0], [1]) !== 0) throw new Error("bench: migrate_pages left pages behind");
        }, { afterEach: back }, opts)),
      },
      {
        variant: "Wasm release: movePages(proc, addrs, all node 1)", units: n, unit: "pages/s",
        run: () => settled(m, proc, n, measure(`move_pages ${n}`, () => {
          if (m.movePages(proc, addrs, toNode1).notMigrated !== 0) throw new Error("bench: move_pages left pages behind");
        }, { afterEach: back }, opts)),
      },
      memcpyLimit(m, n),
    ];
    const rows = timeRows(variants, nRounds, -1, 2);
    const what = n === SIZES[0]
      ? `Pages/s of migrating a process's ${label(n)} of written private memory (4 KiB each, bytes mode) from node 0 to node 1: ` +
        "`migratePages` (migrate_pages(2): queue the pages of the node, collect, allocate on the target node, copy, finalize) and " +
        "`movePages` with every address's node given (move_pages(2), status per page), each against `copyWithin` of the same " +
        "bytes between node 0's and node 1's frames of the same Wasm memory; moving back runs in a tinybench hook."
      : `As \`NUMA migration, ${label(SIZES[0]!)}\`, with ${label(n)} per call.`;
    const notes = n === SIZES[0]
      ? [`The machine: two nodes of ${NODE_PAGES} pages, 4 KiB frames, ${(m.memoryBytes / 2 ** 20).toFixed(0)} MiB of Wasm memory in all.`]
      : [];
    groups.push({ title: `NUMA migration, ${label(n)}`, what, rows, notes });
    proc.exit();
  }
  return groups;
}
