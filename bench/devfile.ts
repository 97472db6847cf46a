// Writeback of device-dirtied file pages (ours, issue 6): N pages of a file live in
// device-private memory (MIGRATE_VMA_SELECT_FILE), the device has written them all
// (fileDeviceDirty), and fsync writes them back, with the file system's policy
// "migrate-back" (each page migrates to RAM, then is written) or "bounce" (each page is
// copied into a temporary system page that is written, the page stays on the device).
// Putting the pages back on the device and dirtying them runs in tinybench hooks.
import { measure, type Timing, type Variant } from "./harness.js";
import { timeRows, type Group } from "./report.js";
import {
  Machine, MEMORY_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_FILE, MIGRATE_VMA_SELECT_SYSTEM, MAP_SHARED, O_CREAT, O_RDWR, PAGE_SIZE,
  PROT_READ, PROT_WRITE, VM_FAULT_SIGBUS, type DevicePageWriteback,
} from "../src/index.js";
import { L } from "../src/layout.js";

/** Pages written back per call. */
const N = 1024;

interface Rig {
  machine: Machine;
  variant: Variant;
}

function rig(policy: DevicePageWriteback): Rig {
  const machine = Machine.create({ build: "release", content: "bytes", nodes: [{ normal: 2 * N + 4096 }], deviceMemory: N });
  const owner = { name: "bench gpu" };
  const pg = machine.memremapPages({ type: MEMORY_DEVICE_PRIVATE, nrPages: N, owner, ops: { migrateToRam: () => VM_FAULT_SIGBUS } });
  const fs = machine.mount(machine.addBlockDevice("vda", { sectors: N + 64 }));
  fs.devicePageWriteback = policy;
  const f = fs.open("data", O_RDWR | O_CREAT);
  f.pwrite(new Uint8Array(N * PAGE_SIZE).fill(7), 0);
  f.fsync();
  const proc = machine.spawn();
  const addr = proc.mmap(0, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  proc.read(addr, N * PAGE_SIZE);
  const pfns = new Array<number>(N);
  const ready = (): void => {
    // Whatever is not on the device (all of it, after a migrate-back round) goes there.
    const mig = machine.migrateVmaSetup({ proc, start: addr, end: addr + N * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_FILE, pgmapOwner: owner });
    if (mig.cpages > 0) mig.allocAndCopy(pg);
    mig.finalize();
    for (let i = 0; i < N; i++) pfns[i] = machine.core.filemapLookup(f.inode.id, i);
    if (pfns.some((p) => !pg.contains(p))) throw new Error("bench: a file page did not move to the device");
    machine.fileDeviceDirty(pfns);
  };
  const run = (): Timing => measure(`writeback ${policy}`, () => f.fsync(), { beforeEach: ready }, { time: 300 });
  return { machine, variant: { variant: `fsync, ${policy}`, units: N, unit: "pages/s", run } };
}

/** The bytes the writeback must move at least: memory.copy of N pages inside one Wasm memory. */
function memcpyLimit(m: Machine): Variant {
  const mem = new Uint8Array(m.core.memory.buffer);
  const frames = m.layout.slots[L.FRAMES]!;
  const len = N * PAGE_SIZE;
  const run = (): Timing => measure("memcpy", () => mem.copyWithin(frames + len, frames, frames + len), {}, { time: 100 });
  return { variant: `limit: memory.copy of ${len / 2 ** 20} MiB (copyWithin)`, units: N, unit: "pages/s", run };
}

export function devfileWriteback(nRounds: number): Group {
  const back = rig("migrate-back");
  const bounce = rig("bounce");
  const rows = timeRows([back.variant, bounce.variant, memcpyLimit(back.machine)], nRounds, 0, 2);
  rows[1]!.bar = "bounce faster than migrate-back";
  rows[1]!.met = (rows[1]!.vsRef ?? 0) > 1;
  for (const r of [back, bounce]) r.machine.check();
  const b = bounce.machine.counters();
  return {
    title: `Writeback of device-dirtied file pages, ${N} pages`,
    what: `fsync of a file whose ${N} pages live in device-private memory and were all dirtied by the device: "migrate-back" ` +
      `migrates them to RAM (migrate_device_pfns) and writes them, "bounce" copies each into a temporary system page that is written ` +
      `and freed, leaving the page on the device; "vs reference" of the bounce row is its speed-up over migrate-back; the limit copies the same bytes once.`,
    rows,
    notes: [`bounce run: nr_bounce ${b.nr_bounce}, nr_written ${b.nr_written} over all rounds; migrate-back run: pgmigrate_success ${back.machine.counters().pgmigrate_success}.`],
  };
}
