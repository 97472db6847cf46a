// Anonymous write fault-in in tags mode: one touch() call writes every page of a fresh mapping,
// so each page takes a demand-zero fault (do_anonymous_page) and a tag store.
import { measure } from "./harness.js";
import { relate, rate, type Group, type Row } from "./report.js";
import { ADDR, LEN, P, VPN, mapRegion, refMachine, wasmMachine } from "./setup.js";
import type { RefMm } from "./reference/kernel.js";
import type { WasmBuild } from "../src/index.js";

function wasm(build: WasmBuild, time: number): Row {
  const { proc } = wasmMachine(build);
  const timing = measure(`fault-in ${build}`, () => proc.touch(ADDR, P, true, 0n), {
    beforeEach: () => mapRegion(proc),
    afterEach: () => proc.munmap(ADDR, LEN),
  }, { time });
  return { variant: `Wasm ${build}`, timing, units: P, unit: "pages/s" };
}

function reference(): Row {
  const m = refMachine();
  let mm: RefMm | undefined;
  const timing = measure("fault-in reference", () => mm!.touch(VPN, P, true, 0n), {
    beforeEach: () => {
      mm = m.spawn();
      mm.mmapAnon(VPN, P);
    },
    afterEach: () => mm!.exit(),
  });
  return { variant: "reference (TS)", timing, units: P, unit: "pages/s" };
}

/**
 * The ceiling: store P distinct 64-bit tags into a BigUint64Array and nothing else. The stores go
 * through a Uint32Array view (low, high word), the fastest way JS has; `tags[i] = BigInt(i)` is ~5× slower.
 */
function limit(): Row {
  const tags = new BigUint64Array(P);
  const words = new Uint32Array(tags.buffer);
  const timing = measure("fault-in limit", () => {
    for (let i = 0; i < P; i++) {
      words[2 * i] = i;
      words[2 * i + 1] = 0;
    }
  });
  return { variant: "limit: P u64 tag stores into a BigUint64Array", timing, units: P, unit: "pages/s" };
}

export function faultIn(debug: boolean): Group {
  const release = wasm("release", 600);
  const ref = reference();
  const lim = limit();
  const rows = [release, ref, lim];
  if (debug) rows.splice(1, 0, wasm("debug", 200));
  relate(rows, ref, lim);
  release.bar = "≥ 20 M pages/s and ≥ 1.5× ref";
  release.met = rate(release) >= 20e6 && release.vsRef! >= 1.5;
  return {
    title: `Anon fault-in, ${P / 1024} Ki pages`,
    what: `\`proc.touch(addr, ${P}, true, 0n)\` on a fresh private anonymous RW mapping in tags mode (one batch op; ` +
      `every page takes a demand-zero write fault and a tag store); mmap/munmap run in tinybench's beforeEach/afterEach, outside the timing. ` +
      `The reference is \`RefMm.touch\` on a fresh \`RefMm\` (spawn + mmapAnon before, exit after, untimed).`,
    rows,
  };
}
