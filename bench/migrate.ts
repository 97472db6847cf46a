// migrate_vma between system RAM and device-private memory, both ways, for 1 to 64 Ki pages:
// in bytes mode against a raw memory.copy of the same bytes, in tags mode against the reference
// kernel's migrate. Each call is a driver's whole batch migration: migrateVmaSetup, allocAndCopy
// and finalize; moving the pages back (or there first) runs in tinybench hooks, outside the timing.
import { measure, type Timing, type TimingOptions, type Unit, type Variant } from "./harness.js";
import { notRunRow, rate, timeRows, type Group, type Row } from "./report.js";
import {
  Machine, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MEMORY_DEVICE_PRIVATE, MIGRATE_PFN_VALID, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, migratePfnToPage,
  MIGRATE_VMA_SELECT_SYSTEM, PAGE_SIZE, PROT_READ, PROT_WRITE, VM_FAULT_SIGBUS, type ContentMode, type DevPagemap,
  type Process,
} from "../src/index.js";
import { L } from "../src/layout.js";
import { RefMachine, type RefMm } from "./reference/kernel.js";

/** Pages per migration, smallest first (a slow size stops the larger ones: see predictSeconds). */
export const SIZES = [1, 16, 512, 4096, 65536];
/** Pages mapped and populated: the largest size. */
const P = SIZES[SIZES.length - 1]!;
/** System RAM: the region, plus room above the min watermark for the pages coming back. */
const RAM = P + 8192;
const VPN = 2 ** 28;
const ADDR = VPN * PAGE_SIZE;
/** Bars apply from this size on; below it the fixed cost of a call dominates. */
const BAR_FROM = 4096;
/** A call slower than this is reported from its probe (one call) instead of timed by tinybench. */
const SLOW_MS = 100;
/** A size whose calls are predicted to take longer than this is not run. */
const SKIP_S = 10;

const label = (n: number): string => (n >= 1024 ? `${n / 1024} Ki pages` : n === 1 ? "1 page" : `${n} pages`);
const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3));

/** A machine whose process has P written pages, and one device-private range of P pages. */
interface Rig {
  machine: Machine;
  proc: Process;
  pgmap: DevPagemap;
  /** Migrates the first n pages of the region, timing setup, allocAndCopy and finalize. */
  move(n: number, toDevice: boolean, split?: number[], copies?: CopyRun[]): void;
}

/** A run of consecutive source frames copied to consecutive destination frames. */
interface CopyRun {
  src: number;
  dst: number;
  pages: number;
}

/** The copies of a migration's dst against its src: runs of consecutive frames on both sides. */
function copyRuns(src: BigUint64Array, dst: BigUint64Array): CopyRun[] {
  const runs: CopyRun[] = [];
  for (let i = 0; i < src.length; i++) {
    if (dst[i] === 0n || (src[i]! & MIGRATE_PFN_VALID) === 0n) continue;
    const s = migratePfnToPage(src[i]!);
    const d = migratePfnToPage(dst[i]!);
    const last = runs[runs.length - 1];
    if (last && s === last.src + last.pages && d === last.dst + last.pages) last.pages++;
    else runs.push({ src: s, dst: d, pages: 1 });
  }
  return runs;
}

function rig(content: ContentMode): Rig {
  const machine = Machine.create({ build: "release", content, nodes: [{ normal: RAM }], deviceMemory: P });
  const owner = { name: "bench device" };
  // Nothing touches the pages from the CPU while they are on the device.
  const pgmap = machine.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: P, owner, ops: { migrateToRam: () => VM_FAULT_SIGBUS } });
  const proc = machine.spawn();
  proc.mmap(ADDR, P * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  proc.touch(ADDR, P, true, 1n);
  const move = (n: number, toDevice: boolean, split?: number[], copies?: CopyRun[]): void => {
    const t0 = split ? performance.now() : 0;
    const mig = machine.migrateVmaSetup({
      proc, start: ADDR, end: ADDR + n * PAGE_SIZE, pgmapOwner: owner,
      flags: toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    });
    const t1 = split ? performance.now() : 0;
    mig.allocAndCopy(toDevice ? pgmap : { node: 0 });
    const t2 = split ? performance.now() : 0;
    if (copies) copies.push(...copyRuns(mig.src, mig.dst));
    mig.finalize();
    if (split) split.push(t1 - t0, t2 - t1, performance.now() - t2);
    if (mig.cpages !== n) throw new Error(`bench: migrate_vma collected ${mig.cpages} of ${n} pages`);
  };
  return { machine, proc, pgmap, move };
}

/** After a round: every page back in system RAM, invariants intact. */
function settled<T>(r: Rig, result: T): T {
  if (r.proc.walk(ADDR, P * PAGE_SIZE).present !== P) throw new Error("bench: pages left in device memory after a round");
  r.machine.check();
  return result;
}

/** A call each way timed stage by stage, outside tinybench: [setup, allocAndCopy, finalize] ms. */
interface Probe {
  toDevice: number[];
  toSystem: number[];
}

/**
 * Probes two or three times (two once 200 ms went by) and keeps the last: the first call of a size
 * also pays for the JIT and for the first touch of the Wasm memory's device frames.
 */
function probe(r: Rig, n: number): Probe {
  const t0 = performance.now();
  let p: Probe;
  let tries = 0;
  do {
    p = { toDevice: [], toSystem: [] };
    r.move(n, true, p.toDevice);
    r.move(n, false, p.toSystem);
  } while (++tries < 2 || (tries < 3 && performance.now() - t0 < 200));
  return settled(r, p);
}

const total = (split: number[]): number => split.reduce((a, b) => a + b, 0);
const one = (x: number): Timing => ({ ms: x, lo: x, hi: x, samples: 1 });

/**
 * Seconds one call of size `next` is predicted to take from the probes so far (size -> ms), with the
 * growth exponent the last two sizes showed (clamped to [1, 2]).
 */
function predictSeconds(history: [number, number][], next: number): number {
  if (history.length === 0) return 0;
  const [n2, t2] = history[history.length - 1]!;
  const [n1, t1] = history.length > 1 ? history[history.length - 2]! : [n2, t2];
  const k = n1 === n2 || t1 <= 0 ? 1 : Math.min(2, Math.max(1, Math.log(t2 / t1) / Math.log(n2 / n1)));
  return (t2 * (next / n2) ** k) / 1000;
}

function timingOptions(n: number): TimingOptions {
  return n >= BAR_FROM ? { time: 100, iterations: 3, warmup: 1 } : { time: 100 };
}

/** The Wasm variants: system→device, device→system, and (bytes) the round trip. */
function wasmVariants(r: Rig, n: number, unit: Unit, per: number, pr: Probe, roundTrip: boolean): Variant[] {
  const opts = timingOptions(n);
  const slow = Math.max(total(pr.toDevice), total(pr.toSystem)) > SLOW_MS;
  const variant = (name: string, units: number, fn: () => void, hooks: { beforeEach?: () => void; afterEach?: () => void }, probed: number): Variant => ({
    variant: `Wasm release: ${name}`, units, unit,
    run: slow ? () => one(probed) : () => settled(r, measure(`migrate ${name} ${n}`, fn, hooks, opts)),
  });
  const toDevice = (): void => r.move(n, true);
  const toSystem = (): void => r.move(n, false);
  const vs = [
    variant("system→device", n * per, toDevice, { afterEach: toSystem }, total(pr.toDevice)),
    variant("device→system", n * per, toSystem, { beforeEach: toDevice }, total(pr.toSystem)),
  ];
  if (roundTrip) {
    vs.push(variant("round trip", 2 * n * per, () => {
      toDevice();
      toSystem();
    }, {}, total(pr.toDevice) + total(pr.toSystem)));
  }
  return vs;
}

function probeNote(n: number, pr: Probe): string {
  const fmt = (s: number[]): string => `setup ${ms(s[0]!)} + allocAndCopy ${ms(s[1]!)} + finalize ${ms(s[2]!)} ms`;
  const slow = Math.max(total(pr.toDevice), total(pr.toSystem)) > SLOW_MS;
  return `One call of ${label(n)} stage by stage: system→device ${fmt(pr.toDevice)}; device→system ${fmt(pr.toSystem)}.` +
    (slow ? ` Calls this slow (> ${SLOW_MS} ms) are reported from this call (after one warm-up call), not timed by tinybench.` : "");
}

function skipReason(n: number, seconds: number): string {
  return `not run: one call of ${label(n)} is predicted to take ${seconds.toFixed(0)} s (from the smaller sizes' growth), over the ${SKIP_S} s limit.`;
}

/** Marks the bar on the rows of a large enough size. */
function bar(n: number, row: Row, text: string, met: (r: Row) => boolean): void {
  if (n < BAR_FROM) return;
  row.bar = text;
  row.met = row.notRun === undefined && met(row);
}

/** The byte copy the migration implies, by memory.copy inside the machine's own Wasm memory. */
function memcpyLimit(r: Rig, n: number): Variant {
  const mem = new Uint8Array(r.machine.core.memory.buffer);
  const frames = r.machine.layout.slots[L.FRAMES]!;
  // From the first n system frames to the device range's frames, free between rounds.
  const src = frames;
  const dst = frames + r.machine.config.frames * PAGE_SIZE;
  const len = n * PAGE_SIZE;
  const run = (): Timing => measure(`memcpy ${n}`, () => mem.copyWithin(dst, src, src + len), {}, { time: 100 });
  const size = len >= 2 ** 20 ? `${len / 2 ** 20} MiB` : `${len / 1024} KiB`;
  return { variant: `memory.copy of ${size} between two fixed regions in one call (copyWithin)`, units: len, unit: "B/s", run };
}

/**
 * A raw memory.copy of the same pages: the copies of one round trip captured from the
 * migration itself (its src→dst frames, run by run: A→D, then D→B with the B pages the
 * allocator handed out), replayed by copyWithin with the Wasm rows' timing options. The
 * data the process maps (B) is put back after the timing, so the machine's contents are
 * as the round trip left them.
 */
function samePagesLimit(r: Rig, n: number): Variant {
  const copies: CopyRun[] = [];
  r.move(n, true, undefined, copies);
  r.move(n, false, undefined, copies);
  settled(r, null);
  const frames = r.machine.layout.slots[L.FRAMES]!;
  const at = (pfn: number): number => frames + pfn * PAGE_SIZE;
  const replay = (): void => {
    const mem = new Uint8Array(r.machine.core.memory.buffer);
    for (const c of copies) mem.copyWithin(at(c.dst), at(c.src), at(c.src) + c.pages * PAGE_SIZE);
  };
  const run = (): Timing => {
    const mem = new Uint8Array(r.machine.core.memory.buffer);
    const back = copies.filter((c) => c.dst < r.machine.config.frames).map((c) => ({ c, bytes: mem.slice(at(c.dst), at(c.dst) + c.pages * PAGE_SIZE) }));
    const t = measure(`memcpy same pages ${n}`, replay, {}, timingOptions(n));
    for (const { c, bytes } of back) mem.set(bytes, at(c.dst));
    return t;
  };
  return { variant: `limit: memory.copy of the same pages (the round trip's own ${copies.length} runs A→D, D→B)`, units: 2 * n * PAGE_SIZE, unit: "B/s", run };
}

export function migrateBytes(nRounds: number): Group[] {
  const r = rig("bytes");
  const groups: Group[] = [];
  const history: [number, number][] = [];
  for (const n of SIZES) {
    const title = `migrate_vma bytes, ${label(n)}`;
    const what = n === SIZES[0]
      ? `GB/s of a driver's whole migration of ${n === 1 ? "one page" : `the first ${label(n)}`} of a written region in bytes mode (4 KiB per page): ` +
        `\`migrateVmaSetup\` + \`allocAndCopy\` + \`finalize\` system→device and device→system (pages moved back, or there ` +
        `first, in tinybench hooks), the round trip counting the bytes of both copies. The limit is a raw memory.copy of the same pages: the ` +
        `round trip's own copies (src→dst frames, run by run) captured from one migration each way and replayed by \`copyWithin\`; ` +
        `the last row copies as many bytes between two fixed regions of frames in one call. Bars apply from ${label(BAR_FROM)}, where a call's fixed cost no longer dominates.`
      : `As \`migrate_vma bytes, ${label(SIZES[0]!)}\`, with ${label(n)} per call.`;
    const predicted = predictSeconds(history, n);
    if (predicted > SKIP_S) {
      const reason = skipReason(n, predicted);
      const rows = [
        notRunRow("Wasm release: system→device", "B/s", reason),
        notRunRow("Wasm release: device→system", "B/s", reason),
        notRunRow("Wasm release: round trip", "B/s", reason),
        ...timeRows([memcpyLimit(r, n)], nRounds, -1, 0),
      ];
      bar(n, rows[2]!, "round trip ≥ 0.8× limit", () => false);
      groups.push({ title, what, rows, notes: [`The Wasm rows were ${reason}`] });
      continue;
    }
    const pr = probe(r, n);
    history.push([n, Math.max(total(pr.toDevice), total(pr.toSystem))]);
    const variants = [...wasmVariants(r, n, "B/s", PAGE_SIZE, pr, true), samePagesLimit(r, n), memcpyLimit(r, n)];
    const rows = timeRows(variants, nRounds, -1, 3);
    bar(n, rows[2]!, "round trip ≥ 0.8× limit", (row) => row.vsLimit! >= 0.8);
    const notes = [probeNote(n, pr),
      `Against one memory.copy of as many bytes between two fixed regions (the last row) the round trip runs at ` +
      `${(rate(rows[2]!) / rate(rows[4]!)).toFixed(2)}×: that copy reuses two regions that stay in the cache, and a copy of ` +
      `over about 24 MiB in one call takes glibc's non-temporal stores, which pages copied run by run do not.`];
    if (n === SIZES[0]) {
      notes.unshift(`The machine: ${RAM} pages of RAM and ${P} of device memory, 4 KiB frames, ` +
        `${(r.machine.memoryBytes / 2 ** 20).toFixed(0)} MiB of Wasm memory in all.`);
    }
    groups.push({ title, what, rows, notes });
  }
  return groups;
}

function refVariants(mm: RefMm, n: number): Variant[] {
  const check = (moved: number): void => {
    if (moved !== n) throw new Error(`bench: the reference migrated ${moved} of ${n} pages`);
  };
  const toDevice = (): void => check(mm.migrate(VPN, n, true).migrated);
  const toSystem = (): void => check(mm.migrate(VPN, n, false).migrated);
  const opts = timingOptions(n);
  return [
    { variant: "reference (TS): system→device", units: n, unit: "pages/s", run: () => measure(`ref migrate s2d ${n}`, toDevice, { afterEach: toSystem }, opts) },
    { variant: "reference (TS): device→system", units: n, unit: "pages/s", run: () => measure(`ref migrate d2s ${n}`, toSystem, { beforeEach: toDevice }, opts) },
  ];
}

/** The tag copy the migration implies: n u64 tags (as u32 pairs), by copyWithin. */
function tagCopyLimit(n: number): Variant {
  const tags = new Uint32Array(4 * P).fill(7);
  const run = (): Timing => measure(`tag copy ${n}`, () => tags.copyWithin(2 * P, 0, 2 * n), {}, { time: 100 });
  return { variant: `limit: copy of ${n === 1 ? "one u64 tag" : `${n} u64 tags`} (copyWithin)`, units: n, unit: "pages/s", run };
}

export function migrateTags(nRounds: number): Group[] {
  const r = rig("tags");
  const ref = new RefMachine({ pages: RAM, devicePages: P });
  const mm = ref.spawn();
  mm.mmapAnon(VPN, P);
  mm.touch(VPN, P, true, 1n);
  const groups: Group[] = [];
  const history: [number, number][] = [];
  for (const n of SIZES) {
    const title = `migrate_vma tags, ${label(n)}`;
    const what = n === SIZES[0]
      ? `Pages/s of a driver's whole migration of ${n === 1 ? "one page" : `the first ${label(n)}`} of a written region in tags mode, each direction on ` +
        `its own (\`migrateVmaSetup\` + \`allocAndCopy\` + \`finalize\`; moving back, or there first, in tinybench hooks), ` +
        `each against \`RefMm.migrate\` of the same direction in the reference kernel; the limit copies the tags alone; bars ` +
        `apply from ${label(BAR_FROM)}.`
      : `As \`migrate_vma tags, ${label(SIZES[0]!)}\`, with ${label(n)} per call.`;
    const predicted = predictSeconds(history, n);
    const barText = "≥ 20 M pages/s and ≥ 1.5× ref";
    const meets = (row: Row): boolean => row.units / (row.timing.ms / 1000) >= 20e6 && row.vsRef! >= 1.5;
    if (predicted > SKIP_S) {
      const reason = skipReason(n, predicted);
      const rows = [
        notRunRow("Wasm release: system→device", "pages/s", reason),
        notRunRow("Wasm release: device→system", "pages/s", reason),
        ...timeRows([...refVariants(mm, n), tagCopyLimit(n)], nRounds, -1, 2),
      ];
      bar(n, rows[0]!, barText, () => false);
      bar(n, rows[1]!, barText, () => false);
      groups.push({ title, what, rows, notes: [`The Wasm rows were ${reason}`] });
      continue;
    }
    const pr = probe(r, n);
    history.push([n, Math.max(total(pr.toDevice), total(pr.toSystem))]);
    const variants = [...wasmVariants(r, n, "pages/s", 1, pr, false), ...refVariants(mm, n), tagCopyLimit(n)];
    const rows = timeRows(variants, nRounds, [2, 3, -1, -1, -1], 4);
    bar(n, rows[0]!, barText, meets);
    bar(n, rows[1]!, barText, meets);
    groups.push({ title, what, rows, notes: [probeNote(n, pr)] });
  }
  return groups;
}
