// Machine creation at 16 GiB emulated: laying out and initialising 4 Mi frames (struct pages,
// buddy free lists, the page-table pool) in tags mode.
import { measure } from "./harness.js";
import { relate, type Group, type Row } from "./report.js";
import { Machine } from "../src/index.js";
import { RefMachine } from "./reference/kernel.js";

const FRAMES = 4 * 1024 * 1024;
const TAG_BYTES = 8;
/** Few iterations: each machine holds ~330 MiB until the GC takes it back. */
const OPTS = { time: 0, iterations: 7, warmup: 2 };

let keep: unknown;

function wasm(): { row: Row; machine: Machine } {
  const timing = measure("create release", () => {
    keep = Machine.create({ build: "release", content: "tags", nodes: [{ normal: FRAMES }] });
  }, {}, OPTS);
  keep = undefined;
  const machine = Machine.create({ build: "release", content: "tags", nodes: [{ normal: FRAMES }] });
  const row: Row = { variant: "Wasm release", timing, units: 1, unit: "ops/s", bar: "< 1 s", met: timing.ms < 1000 };
  return { row, machine };
}

function reference(): Row {
  const timing = measure("create reference", () => {
    keep = new RefMachine({ pages: FRAMES });
  }, {}, OPTS);
  keep = undefined;
  return { variant: "reference (TS): new RefMachine", timing, units: 1, unit: "ops/s" };
}

/** The raw floor: a Wasm memory of the machine's size with one byte per frame written (as page->zone must be). */
function limit(wasmPages: number): Row {
  const timing = measure("create limit", () => {
    const mem = new WebAssembly.Memory({ initial: wasmPages });
    new Uint8Array(mem.buffer, 0, FRAMES).fill(1);
    keep = mem;
  }, {}, OPTS);
  keep = undefined;
  return { variant: "limit: new Memory of that size + 1 byte written per frame", timing, units: 1, unit: "ops/s" };
}

export function create(): Group {
  const { row, machine } = wasm();
  const perPage = machine.layout.metadataPerPage + TAG_BYTES;
  const total = machine.memoryBytes;
  const ref = reference();
  const lim = limit(machine.layout.wasmPages);
  relate([row, ref, lim], ref, lim);
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return {
    title: "Machine creation, 4 Mi pages (16 GiB)",
    what: `\`Machine.create({ content: "tags", nodes: [{ normal: ${FRAMES} }] })\` from call to return (module already compiled), ` +
      `against \`new RefMachine({ pages: ${FRAMES} })\` and against allocating a Wasm memory of the same size and writing one byte per frame.`,
    rows: [row, ref, lim],
    notes: [
      `Per-frame bytes: ${machine.layout.metadataPerPage} of metadata (\`layout.metadataPerPage\`: struct page + check scratch) ` +
        `+ ${TAG_BYTES} of tag = ${perPage} B/page (${mib(perPage * FRAMES)} for ${FRAMES} frames).`,
      `Total Wasm memory (\`machine.memoryBytes\`): ${mib(total)} = ${(total / FRAMES).toFixed(1)} B per emulated page ` +
        `(${(total / (FRAMES * 4096) * 100).toFixed(2)}% of the 16 GiB emulated), including the page-table pool of ` +
        `${machine.config.tablePages} tables (${mib(machine.config.tablePages * 4096)}).`,
    ],
  };
}
