// The PTE walk: count present and writable PTEs over a fully populated range and sum their pfns.
import { measure } from "./harness.js";
import { relate, type Group, type Row } from "./report.js";
import { ADDR, LEN, P, VPN, mapRegion, refMachine, wasmMachine } from "./setup.js";
import type { WasmBuild } from "../src/index.js";

let sink = 0;

function wasm(build: WasmBuild, time: number): Row {
  const { proc } = wasmMachine(build);
  mapRegion(proc);
  proc.touch(ADDR, P, true, 0n);
  const w = proc.walk(ADDR, LEN);
  if (w.present !== P || w.writable !== P) throw new Error(`walk ${build}: ${JSON.stringify(w)}`);
  const timing = measure(`walk ${build}`, () => {
    sink += proc.walk(ADDR, LEN).present;
  }, {}, { time });
  return { variant: `Wasm ${build}`, timing, units: P, unit: "pages/s" };
}

function reference(): Row {
  const mm = refMachine().spawn();
  mm.mmapAnon(VPN, P);
  mm.touch(VPN, P, true, 0n);
  const timing = measure("walk reference", () => {
    sink += mm.walk(VPN, P).present;
  });
  return { variant: "reference (TS)", timing, units: P, unit: "pages/s" };
}

/** A flat scan of P 64-bit PTEs (no upper levels) doing the same counting, read as u32 halves. */
function limit(): Row {
  const ptes = new Uint32Array(2 * P);
  for (let i = 0; i < P; i++) ptes[2 * i] = ((i + 1) << 12) | 0x67;
  const timing = measure("walk limit", () => {
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
  });
  return { variant: "limit: flat scan of P PTEs in a Uint32Array", timing, units: P, unit: "pages/s" };
}

export function walk(debug: boolean): Group {
  const release = wasm("release", 400);
  const ref = reference();
  const lim = limit();
  const rows = [release, ref, lim];
  if (debug) rows.splice(1, 0, wasm("debug", 200));
  relate(rows, ref, lim);
  release.bar = "≥ 1.5× ref";
  release.met = release.vsRef! >= 1.5;
  return {
    title: `PTE walk, ${P / 1024} Ki pages`,
    what: `\`proc.walk(addr, ${P} * 4096)\` over a fully written range (present and writable counts and the pfn sum, ` +
      `returned to JS) against \`RefMm.walk\` on the same range.`,
    rows,
  };
}

export const walkSink = (): number => sink;
