// fork() of a populated private region: the page-table copy with write-protection of both sides
// (copy_present_pte), then the same followed by a write to every page in the child (wp_page_copy).
import { measure, type Variant } from "./harness.js";
import { timeRows, type Group } from "./report.js";
import { ADDR, P, VPN, mapRegion, refMachine, settled, wasmMachine } from "./setup.js";
import type { Process, WasmBuild } from "../src/index.js";
import type { RefMm } from "./reference/kernel.js";

function wasm(build: WasmBuild, cow: boolean): Variant {
  const { machine, proc } = wasmMachine(build);
  mapRegion(proc);
  let child: Process | undefined;
  const run = () => settled(machine, measure(`fork${cow ? "+cow" : ""} ${build}`, () => {
    child = proc.fork();
    if (cow) child.touch(ADDR, P, true, 1n);
  }, {
    // The parent writes every page again first, so each fork starts from writable, exclusive PTEs.
    beforeEach: () => proc.touch(ADDR, P, true, 0n),
    afterEach: () => child!.exit(),
  }, { time: build === "release" ? 300 : 100 }));
  return { variant: `Wasm ${build}`, units: P, unit: "pages/s", run };
}

function reference(cow: boolean): Variant {
  const m = refMachine();
  const parent = m.spawn();
  parent.mmapAnon(VPN, P);
  let child: RefMm | undefined;
  const run = () => measure(`fork${cow ? "+cow" : ""} reference`, () => {
    child = parent.fork();
    if (cow) child.touch(VPN, P, true, 1n);
  }, {
    beforeEach: () => parent.touch(VPN, P, true, 0n),
    afterEach: () => child!.exit(),
  });
  return { variant: "reference (TS)", units: P, unit: "pages/s", run };
}

/** The copy the work implies, done by memcpy: P PTEs (8 bytes each), plus P tags when every page is copied. */
function limit(cow: boolean): Variant {
  const bytes = 8 * P;
  const src = new Uint8Array(2 * bytes).fill(7);
  const dst = new Uint8Array(2 * bytes);
  const run = () => measure(`fork${cow ? "+cow" : ""} limit`, () => {
    dst.set(src.subarray(0, bytes));
    if (cow) dst.set(src.subarray(bytes), bytes);
  }, {}, { time: 100 });
  const what = cow ? "memcpy of P PTEs + P tags" : "memcpy of P PTEs";
  return { variant: `limit: ${what} (${((cow ? 2 : 1) * bytes) / 1024} KiB)`, units: P, unit: "pages/s", run };
}

export function fork(debug: boolean, cow: boolean, nRounds: number): Group {
  const variants = [wasm("release", cow), reference(cow), limit(cow)];
  if (debug) variants.splice(1, 0, wasm("debug", cow));
  const rows = timeRows(variants, nRounds, variants.length - 2, variants.length - 1);
  return cow
    ? {
      title: `Fork + COW break, ${P / 1024} Ki pages`,
      what: `\`child = proc.fork()\` then \`child.touch(addr, ${P}, true, 1n)\`, timed together: the page-table copy, then a ` +
        `copy-on-write fault (new page, tag copy, the old page's share dropped) on every page; the parent re-writes its pages ` +
        `before and the child exits after each call, untimed. Throughput counts the ${P} pages of the region.`,
      rows,
    }
    : {
      title: `Fork, ${P / 1024} Ki populated pages`,
      what: `\`proc.fork()\` of a process whose only mapping is ${P} written private anonymous pages (all PTEs writable and ` +
        `exclusive: the parent re-writes them before each call); the child's \`exit()\` runs after the call, untimed. ` +
        `Throughput counts the ${P} pages whose PTEs are copied.`,
      rows,
    };
}
