// hmm_range_fault over a populated range: a driver snapshots 64 Ki present, writable PTEs into
// hmm_pfns (HMM_PFN_REQ_FAULT, nothing to fault), with its interval notifier inserted once.
import { measure, type Variant } from "./harness.js";
import { rate, timeRows, type Group } from "./report.js";
import { ADDR, LEN, P, mapRegion, wasmMachine } from "./setup.js";
import { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, HMM_PFN_WRITE, PAGE_SIZE, type WasmBuild } from "../src/index.js";
import { MAX_MIGRATE } from "../src/layout.js";

/** Pages per hmmRangeFault call: the most the API accepts. */
const CHUNK = Math.min(P, MAX_MIGRATE);

let sink = 0;

function wasm(build: WasmBuild): Variant {
  const { machine, proc } = wasmMachine(build);
  mapRegion(proc);
  proc.touch(ADDR, P, true, 0n);
  const notifier = machine.mmuIntervalNotifierInsert(proc, ADDR, LEN, {
    invalidate(sub, _range, seq) {
      sub.setSeq(seq);
      return true;
    },
  });
  // The machine's own pfn buffer: hmm_range_fault fills it in place, no copies in or out.
  const hmmPfns = machine.hmmPfnsBuffer(P);
  const owner = { name: "bench device" };
  const fault = (): void => {
    for (let off = 0; off < P; off += CHUNK) {
      const start = ADDR + off * PAGE_SIZE;
      const r = machine.hmmRangeFault({
        notifier, notifierSeq: notifier.readBegin(), start, end: start + CHUNK * PAGE_SIZE,
        hmmPfns: hmmPfns.subarray(off, off + CHUNK), defaultFlags: HMM_PFN_REQ_FAULT, pfnFlagsMask: 0n, devPrivateOwner: owner,
      });
      if (r !== 0) throw new Error(`bench: hmm_range_fault returned ${r}`);
    }
    sink += Number(hmmPfns[P - 1]! & 0xffn);
  };
  fault();
  const faults = machine.counters().pgfault;
  for (const e of [hmmPfns[0]!, hmmPfns[P - 1]!]) {
    if ((e & (HMM_PFN_VALID | HMM_PFN_WRITE)) !== (HMM_PFN_VALID | HMM_PFN_WRITE)) throw new Error(`bench: hmm_pfns entry ${e.toString(16)}`);
  }
  const run = () => {
    const t = measure(`hmm_range_fault ${build}`, fault, {}, { time: build === "release" ? 200 : 100 });
    if (machine.counters().pgfault !== faults) throw new Error("bench: hmm_range_fault faulted on a populated range");
    return t;
  };
  return { variant: `Wasm ${build}`, units: P, unit: "pages/s", run };
}

/**
 * A flat scan of P 64-bit PTEs (no upper levels, read as u32 halves) writing P hmm_pfns entries
 * (pfn | HMM_PFN_VALID | HMM_PFN_WRITE for present writable PTEs), as u32 halves too.
 */
function limit(): Variant {
  const ptes = new Uint32Array(2 * P);
  for (let i = 0; i < P; i++) ptes[2 * i] = ((i + 1) << 12) | 0x67;
  const out = new Uint32Array(2 * P);
  const run = () => measure("hmm limit", () => {
    for (let i = 0; i < P; i++) {
      const lo = ptes[2 * i]!;
      const hi = ptes[2 * i + 1]!;
      if ((lo & 1) === 0) {
        out[2 * i] = 0;
        out[2 * i + 1] = 0;
        continue;
      }
      // pfn bits 0..31 and 32..39; VALID is bit 63, WRITE bit 62.
      out[2 * i] = (lo >>> 12) | ((hi & 0xfff) << 20);
      out[2 * i + 1] = ((hi >>> 12) & 0xff) | 0x80000000 | ((lo & 2) << 29);
    }
    sink += out[2 * P - 1]!;
  }, {}, { time: 100 });
  return { variant: "limit: flat scan of P PTEs into P hmm_pfns, u32 halves", units: P, unit: "pages/s", run };
}

export function hmm(debug: boolean, nRounds: number): Group {
  const variants = [wasm("release"), limit()];
  if (debug) variants.splice(1, 0, wasm("debug"));
  const rows = timeRows(variants, nRounds, -1, variants.length - 1);
  const release = rows[0]!;
  release.bar = "≥ 100 M pages/s";
  release.met = rate(release) >= 100e6;
  return {
    title: `hmm_range_fault, ${P / 1024} Ki populated pages`,
    what: `\`machine.hmmRangeFault({ notifier, notifierSeq: notifier.readBegin(), ... defaultFlags: HMM_PFN_REQ_FAULT, ` +
      `pfnFlagsMask: 0n })\` over ${P} written private anonymous pages in calls of ${CHUNK} pages (the most one call takes), ` +
      `the interval notifier inserted once beforehand: a snapshot of present writable PTEs into \`hmmPfns\` with nothing to ` +
      `fault (checked); there is no reference-kernel counterpart, and the limit is a flat JS loop over a PTE array.`,
    rows,
  };
}

/** Keeps the results observable so they cannot be optimised away. */
export const hmmSink = (): number => sink;
