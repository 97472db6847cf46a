// The PTE walk: count present and writable PTEs over a fully populated range and sum their pfns.
import { measure, type Variant } from "./harness.js";
import { timeRows, type Group } from "./report.js";
import { ADDR, LEN, P, VPN, mapRegion, refMachine, wasmMachine } from "./setup.js";
import type { WasmBuild } from "../src/index.js";

let sink = 0;

function wasm(build: WasmBuild): Variant {
  const { proc } = wasmMachine(build);
  mapRegion(proc);
  proc.touch(ADDR, P, true, 0n);
  const w = proc.walk(ADDR, LEN);
  if (w.present !== P || w.writable !== P) throw new Error(`walk ${build}: ${JSON.stringify(w)}`);
  const run = () => measure(`walk ${build}`, () => {
    sink += proc.walk(ADDR, LEN).present;
  }, {}, { time: build === "release" ? 200 : 100 });
  return { variant: `Wasm ${build}`, units: P, unit: "pages/s", run };
}

function reference(): Variant {
  const mm = refMachine().spawn();
  mm.mmapAnon(VPN, P);
  mm.touch(VPN, P, true, 0n);
  const run = () => measure("walk reference", () => {
    sink += mm.walk(VPN, P).present;
  }, {}, { time: 200 });
  return { variant: "reference (TS)", units: P, unit: "pages/s", run };
}

/** A flat scan of P 64-bit PTEs (no upper levels) doing the same counting, read as u32 halves. */
function limit(): Variant {
  const ptes = new Uint32Array(2 * P);
  for (let i = 0; i < P; i++) ptes[2 * i] = ((i + 1) << 12) | 0x67;
  const run = () => measure("walk limit", () => {
    let present = 0;
    let writable = 0;
    let pfnSum = 0;
    for (let i = 0; i < P; i++) {
      const lo = ptes[2 * i]!;
      if ((lo & 1) === 0) continue;
      present++;
      writable += (lo >>> 1) & 1;
      pfnSum += (lo >>> 12) + (ptes[2 * i + 1]! & 0xfffff) * 2 ** 20;
    }
    sink += present + writable + pfnSum;
  }, {}, { time: 100 });
  return { variant: "limit: flat scan of P PTEs in a Uint32Array", units: P, unit: "pages/s", run };
}

export function walk(debug: boolean, nRounds: number): Group {
  const variants = [wasm("release"), reference(), limit()];
  if (debug) variants.splice(1, 0, wasm("debug"));
  const rows = timeRows(variants, nRounds, variants.length - 2, variants.length - 1);
  const release = rows[0]!;
  release.bar = "≥ 1.5× ref";
  release.met = release.vsRef! >= 1.5;
  return {
    title: `PTE walk, ${P / 1024} Ki pages`,
    what: `\`proc.walk(addr, ${P} * 4096)\` over a fully written range (present and writable counts and the pfn sum, ` +
      `returned to JS) against \`RefMm.walk\` on the same range; the limit is a flat JS loop over a PTE array, ` +
      `which compiled Wasm walking real tables can beat (vs limit above 1).`,
    rows,
  };
}

/** Keeps the walks' results observable so they cannot be optimised away. */
export const walkSink = (): number => sink;
