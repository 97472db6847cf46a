// Anonymous write fault-in in tags mode: one touch() call writes every page of a fresh mapping,
// so each page takes a demand-zero fault (do_anonymous_page) and a tag store.
import { measure, type Variant } from "./harness.js";
import { rate, timeRows, type Group } from "./report.js";
import { ADDR, LEN, P, VPN, mapRegion, refMachine, settled, wasmMachine } from "./setup.js";
import type { RefMm } from "./reference/kernel.js";
import type { WasmBuild } from "../src/index.js";

function wasm(build: WasmBuild): Variant {
  const { machine, proc } = wasmMachine(build);
  const run = () => settled(machine, measure(`fault-in ${build}`, () => proc.touch(ADDR, P, true, 0n), {
    beforeEach: () => mapRegion(proc),
    afterEach: () => proc.munmap(ADDR, LEN),
  }, { time: build === "release" ? 300 : 100 }));
  return { variant: `Wasm ${build}`, units: P, unit: "pages/s", run };
}

function reference(): Variant {
  const m = refMachine();
  let mm: RefMm | undefined;
  const run = () => measure("fault-in reference", () => mm!.touch(VPN, P, true, 0n), {
    beforeEach: () => {
      mm = m.spawn();
      mm.mmapAnon(VPN, P);
    },
    afterEach: () => mm!.exit(),
  });
  return { variant: "reference (TS)", units: P, unit: "pages/s", run };
}

/**
 * The ceiling: store P distinct 64-bit tags into a BigUint64Array and nothing else. The stores go
 * through a Uint32Array view (low, high word), the fastest way JS has; `tags[i] = BigInt(i)` is ~5× slower.
 */
function limit(): Variant {
  const tags = new BigUint64Array(P);
  const words = new Uint32Array(tags.buffer);
  const run = () => measure("fault-in limit", () => {
    for (let i = 0; i < P; i++) {
      words[2 * i] = i;
      words[2 * i + 1] = 0;
    }
  }, {}, { time: 100 });
  return { variant: "limit: P u64 tag stores into a BigUint64Array", units: P, unit: "pages/s", run };
}

export function faultIn(debug: boolean, nRounds: number): Group {
  const variants = [wasm("release"), reference(), limit()];
  if (debug) variants.splice(1, 0, wasm("debug"));
  const rows = timeRows(variants, nRounds, variants.length - 2, variants.length - 1);
  const release = rows[0]!;
  release.bar = "≥ 20 M pages/s and ≥ 1.5× ref";
  release.met = rate(release) >= 20e6 && release.vsRef! >= 1.5;
  return {
    title: `Anon fault-in, ${P / 1024} Ki pages`,
    what: `\`proc.touch(addr, ${P}, true, 0n)\` on a fresh private anonymous RW mapping in tags mode (one batch op; ` +
      `every page takes a demand-zero write fault and a tag store); mmap and munmap run in tinybench's beforeEach/afterEach, ` +
      `outside the timing, so both sides allocate the page tables inside the timed call. The reference is \`RefMm.touch\` on a fresh \`RefMm\` (spawn + mmapAnon before, exit after, untimed).`,
    rows,
  };
}
