// pin_user_pages + unpin_user_pages of a populated range: a driver pins 64 Ki written private
// pages for DMA (FOLL_WRITE) and unpins them, in calls of 64 Ki pages (the most one call takes).
import { measure, type Variant } from "./harness.js";
import { rate, timeRows, type Group } from "./report.js";
import { ADDR, P, VPN, mapRegion, refMachine, settled, wasmMachine } from "./setup.js";
import { FOLL_WRITE, type WasmBuild } from "../src/index.js";
import { GUP_MAX } from "../src/layout.js";

/** Pages per pinUserPages call: the most the machine's GUP buffer holds. */
const CHUNK = Math.min(P, GUP_MAX);

let sink = 0;

/** The fast path: pfns land in (and are unpinned from) the machine's own buffer, no copies. */
function wasm(build: WasmBuild, copied: boolean): Variant {
  const { machine, proc } = wasmMachine(build);
  mapRegion(proc);
  proc.touch(ADDR, P, true, 0n);
  const own = copied ? null : machine.gupPagesBuffer(CHUNK);
  const pinUnpin = (): void => {
    for (let off = 0; off < P; off += CHUNK) {
      const pfns = machine.pinUserPages(proc, ADDR + off * 4096, CHUNK, FOLL_WRITE, own ?? undefined);
      sink += pfns[CHUNK - 1]!;
      machine.unpinUserPages(pfns);
    }
  };
  pinUnpin();
  const c = machine.counters();
  if (c.nr_foll_pin_acquired !== P || c.nr_foll_pin_released !== P) throw new Error(`bench: gup counters ${JSON.stringify(c)}`);
  const faults = c.pgfault;
  const run = () => {
    const t = measure(`gup ${build}${copied ? " copied" : ""}`, pinUnpin, {}, { time: build === "release" ? 200 : 100 });
    if (machine.counters().pgfault !== faults) throw new Error("bench: pin_user_pages faulted on a populated range");
    return settled(machine, t);
  };
  const how = copied ? "pfns copied out to a new Uint32Array and back in" : "in the machine's GUP buffer";
  return { variant: `Wasm ${build}, ${how}`, units: P, unit: "pages/s", run };
}

function reference(): Variant {
  const m = refMachine();
  const mm = m.spawn();
  mm.mmapAnon(VPN, P);
  mm.touch(VPN, P, true, 0n);
  const pages = new Uint32Array(CHUNK);
  const run = () => measure("gup reference", () => {
    for (let off = 0; off < P; off += CHUNK) {
      mm.pinUserPages(VPN + off, CHUNK, true, pages);
      sink += pages[CHUNK - 1]!;
      m.unpinUserPages(pages, CHUNK);
    }
  }, {}, { time: 200 });
  return { variant: "reference (TS)", units: P, unit: "pages/s", run };
}

/** An empty loop over the same P pfns: once to "pin", once to "unpin". */
function limit(): Variant {
  const pfns = new Uint32Array(P);
  for (let i = 0; i < P; i++) pfns[i] = P + i;
  const run = () => measure("gup limit", () => {
    // int32 arithmetic, so the loops stay in V8's integer fast path.
    let s = 0;
    for (let i = 0; i < P; i++) s = (s + pfns[i]!) | 0;
    for (let i = 0; i < P; i++) s = (s - pfns[i]!) | 0;
    sink += s;
  }, {}, { time: 100 });
  return { variant: "limit: empty JS loops over the P pfns", units: P, unit: "pages/s", run };
}

export function gup(debug: boolean, nRounds: number): Group {
  const variants = [wasm("release", false), wasm("release", true), reference(), limit()];
  if (debug) variants.splice(2, 0, wasm("debug", false));
  const rows = timeRows(variants, nRounds, variants.length - 2, variants.length - 1);
  const release = rows[0]!;
  release.bar = "≥ 100 M pages/s";
  release.met = rate(release) >= 100e6;
  return {
    title: `pin_user_pages + unpin_user_pages, ${P / 1024} Ki populated pages`,
    what: `\`machine.pinUserPages(proc, addr, ${CHUNK}, FOLL_WRITE, pages)\` then \`machine.unpinUserPages(pages)\` over ` +
      `${P} written private anonymous pages (a page/s is one page pinned and unpinned; nothing faults, checked), with ` +
      `\`pages\` the machine's GUP buffer (\`machine.gupPagesBuffer\`), and with a fresh array per call; against ` +
      `\`RefMm.pinUserPages\` + \`RefMachine.unpinUserPages\` on the same range. The limit is two empty JS loops over the ` +
      `same pfns. The kernel's gup_test pins 8 GiB in 4–130 ms (16–515 M pages/s) for context.`,
    rows,
  };
}

/** Keeps the results observable so they cannot be optimised away. */
export const gupSink = (): number => sink;
