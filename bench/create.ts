// Machine creation at 16 GiB emulated: laying out and initialising 4 Mi frames (struct pages,
// buddy free lists, the page-table pool) in tags mode.
import { measure, type Variant } from "./harness.js";
import { timeRows, type Group } from "./report.js";
import { Machine, type MachineConfig } from "../src/index.js";
import { RefMachine } from "./reference/kernel.js";

const FRAMES = 4 * 1024 * 1024;
const TAG_BYTES = 8;
/** Few iterations: each machine holds ~330 MiB until the GC takes it back. */
const OPTS = { time: 0, iterations: 3, warmup: 1 };
const CONFIG: MachineConfig = { build: "release", content: "tags", nodes: [{ normal: FRAMES }] };

let keep: unknown;

function wasm(): Variant {
  const run = () => {
    const t = measure("create release", () => {
      keep = Machine.create(CONFIG);
    }, {}, OPTS);
    keep = undefined;
    return t;
  };
  return { variant: "Wasm release", units: 1, unit: "ops/s", run };
}

function reference(): Variant {
  const run = () => {
    const t = measure("create reference", () => {
      keep = new RefMachine({ pages: FRAMES });
    }, {}, OPTS);
    keep = undefined;
    return t;
  };
  return { variant: "reference (TS): new RefMachine", units: 1, unit: "ops/s", run };
}

/** The raw floor: a Wasm memory of the machine's size with one byte per frame written (as page->zone must be). */
function limit(wasmPages: number): Variant {
  const run = () => {
    const t = measure("create limit", () => {
      const mem = new WebAssembly.Memory({ initial: wasmPages });
      new Uint8Array(mem.buffer, 0, FRAMES).fill(1);
      keep = mem;
    }, {}, OPTS);
    keep = undefined;
    return t;
  };
  return { variant: "limit: new Memory of that size + 1 byte written per frame", units: 1, unit: "ops/s", run };
}

export function create(nRounds: number): Group {
  const machine = Machine.create(CONFIG);
  const perPage = machine.layout.metadataPerPage + TAG_BYTES;
  const total = machine.memoryBytes;
  const rows = timeRows([wasm(), reference(), limit(machine.layout.wasmPages)], nRounds, 1, 2);
  rows[0]!.bar = "< 1 s";
  rows[0]!.met = rows[0]!.timing.ms < 1000;
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return {
    title: "Machine creation, 4 Mi pages (16 GiB)",
    what: `\`Machine.create({ content: "tags", nodes: [{ normal: ${FRAMES} }] })\` from call to return (module already compiled), ` +
      `against \`new RefMachine({ pages: ${FRAMES} })\` and against allocating a Wasm memory of the same size and writing one byte per frame.`,
    rows,
    notes: [
      `Per-frame bytes: ${machine.layout.metadataPerPage} of metadata (\`layout.metadataPerPage\`: struct page + check scratch) ` +
        `+ ${TAG_BYTES} of tag = ${perPage} B/page (${mib(perPage * FRAMES)} for ${FRAMES} frames).`,
      `Total Wasm memory (\`machine.memoryBytes\`): ${mib(total)} = ${(total / FRAMES).toFixed(1)} B per emulated page ` +
        `(${((total / (FRAMES * 4096)) * 100).toFixed(2)}% of the 16 GiB emulated), including the page-table pool of ` +
        `${machine.config.tablePages} tables (${mib(machine.config.tablePages * 4096)}).`,
    ],
  };
}
