// Compaction throughput: `compactZone` over a fragmented zone (seven eighths of it written,
// then every other page dropped), in pages migrated per second and pages scanned per second,
// against memory.copy of the migrated pages' bytes in the same Wasm memory (bytes mode) or
// a copy of their tags (tags mode). Each call gets a freshly fragmented zone (untimed hooks).
import { measure, type Timing, type Variant } from "./harness.js";
import { timeRows, type Group, type Row } from "./report.js";
import { Machine, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, type ContentMode } from "../src/index.js";
import { L } from "../src/layout.js";

const ADDR = 2 ** 28 * PAGE_SIZE;

interface Rig {
  machine: Machine;
  /** Pages in the zone. */
  zone: number;
  /** Maps and writes 7/8 of the zone, then drops every other page: order-0 holes all over. */
  fragment(): void;
  /** Unmaps everything again. */
  clear(): void;
}

function rig(content: ContentMode, zone: number): Rig {
  const machine = Machine.create({ build: "release", content, nodes: [{ normal: zone }] });
  const proc = machine.spawn();
  const n = (zone / 8) * 7;
  return {
    machine,
    zone,
    fragment() {
      proc.mmap(ADDR, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      proc.touch(ADDR, n, true, 1n);
      for (let i = 0; i < n; i += 2) proc.madvise(ADDR + i * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
    },
    clear() {
      proc.munmap(ADDR, n * PAGE_SIZE);
    },
  };
}

/** What the timed calls did, to turn their median time into throughputs. */
interface Work {
  calls: number;
  migrated: number;
  scanned: number;
  minMigrated: number;
  maxMigrated: number;
}

function compaction(r: Rig, work: Work): Variant {
  const run = (): Timing => {
    const t = measure(`compactZone ${r.machine.config.content}`, () => {
      const res = r.machine.compactZone(0);
      work.calls++;
      work.migrated += res.migrated;
      work.scanned += res.migrateScanned + res.freeScanned;
      work.minMigrated = Math.min(work.minMigrated, res.migrated);
      work.maxMigrated = Math.max(work.maxMigrated, res.migrated);
    }, { beforeEach: () => r.fragment(), afterEach: () => r.clear() }, { time: 300, iterations: 5, warmup: 2 });
    r.machine.check();
    return t;
  };
  return {
    variant: "Wasm release: compactZone, pages migrated",
    unit: "pages/s",
    // Read after the rounds: the calls' mean.
    get units() {
      return work.migrated / Math.max(1, work.calls);
    },
    run,
  };
}

/** The bytes (or tags) the migration of `pages` pages copies, by copyWithin in the machine's own memory. */
function copyLimit(r: Rig, pages: number): Variant {
  const m = r.machine;
  const mem = new Uint8Array(m.core.memory.buffer);
  const bytesMode = m.config.content === "bytes";
  const per = bytesMode ? PAGE_SIZE : 8;
  const base = m.layout.slots[bytesMode ? L.FRAMES : L.TAGS]!;
  // From the zone's first half to its second: free frames between calls.
  const src = base;
  const dst = base + (r.zone / 2) * per;
  const len = pages * per;
  const run = (): Timing => measure(`copy ${pages}`, () => mem.copyWithin(dst, src, src + len), {}, { time: 100 });
  const what = bytesMode ? `memory.copy of their ${(len / 2 ** 20).toFixed(1)} MiB` : `copy of their ${pages} u64 tags`;
  return { variant: `limit: ${what} (copyWithin)`, units: pages, unit: "pages/s", run };
}

function group(content: ContentMode, zone: number, nRounds: number): Group {
  const r = rig(content, zone);
  // A probe call: how many pages one compaction of the fragmented zone moves.
  r.fragment();
  const probe = r.machine.compactZone(0);
  r.clear();
  const work: Work = { calls: 0, migrated: 0, scanned: 0, minMigrated: Infinity, maxMigrated: 0 };
  const rows = timeRows([compaction(r, work), copyLimit(r, probe.migrated)], nRounds, -1, 1);
  const scanned: Row = {
    variant: "Wasm release: compactZone, pages scanned (both scanners)",
    timing: rows[0]!.timing,
    units: work.scanned / Math.max(1, work.calls),
    unit: "pages/s",
  };
  rows.splice(1, 0, scanned);
  const kib = (zone * (content === "bytes" ? PAGE_SIZE : 0)) / 2 ** 20;
  return {
    title: `compaction, ${content} mode, ${zone / 1024} Ki-page zone`,
    what: `\`machine.compactZone(0)\` (the whole zone, as /proc/sys/vm/compact_memory) of a zone of ${zone} pages whose ` +
      `first ${(zone / 8) * 7} were written and every other one dropped again (untimed hooks; the region is unmapped after each ` +
      `call): the migrate scanner walks up from the zone start, the free scanner down from its end, and the pages below ` +
      `where they meet move up through migratePfnList. Pages migrated/s and pages scanned/s (pfns both scanners looked at) ` +
      `come from the same timed calls; the limit copies the ${content === "bytes" ? "bytes" : "tags"} of as many pages as ` +
      `one call migrates, within the same Wasm memory.`,
    rows,
    notes: [
      `Per call: ${work.minMigrated === work.maxMigrated ? work.minMigrated : `${work.minMigrated}–${work.maxMigrated}`} pages migrated ` +
        `(${(work.migrated / Math.max(1, work.calls)).toFixed(0)} on average), ${(work.scanned / Math.max(1, work.calls)).toFixed(0)} pages scanned` +
        (content === "bytes" ? `; the zone's frames are ${kib} MiB.` : "."),
    ],
  };
}

export function compactBytes(nRounds: number): Group {
  return group("bytes", 32768, nRounds);
}

export function compactTags(nRounds: number): Group {
  return group("tags", 131072, nRounds);
}
