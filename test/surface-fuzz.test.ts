// The public surface under hostile arguments: every method of every public class is called
// with a bad value of every class in each argument position (the others good). The call
// must be refused with an MmError (errno, function, offending value) and leave the machine
// exactly as it was: every byte of its memory but the staging regions, the counters, every
// process's VMAs, the JS-side state of devices, files and subsystems, and check().
import { describe, it, expect } from "vitest";
import {
  Machine, MmError, ERRNO, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MADV_DONTNEED,
  O_RDWR, O_CREAT, MIGRATE_VMA_SELECT_SYSTEM, MPOL_BIND, MCL_CURRENT, AccessBatch, DevPagemap, MigrateVma, Process,
  FileSystem, OpenFile, EmulatedBlockDevice, PmemDevice, PinpageSystem, MigrationHints, MmuIntervalNotifier, PageAccess,
  HMM_PFN_REQ_FAULT, type Inode, type BlockDevice,
} from "../src/index.js";
import { createHmmDevices, HmmDmirror, HmmDmirrorDevice, HMM_DMIRROR_READ, FileDevicePager } from "../src/testing/index.js";
import { L } from "../src/layout.js";
import ts from "typescript";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { privateDevice } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** The machine and objects every call is made against. */
interface World {
  m: Machine;
  p: Process;
  /** 16 written private pages and 4 written shared ones. */
  a: number;
  s: number;
  /** A page mapped at a. */
  pfn: number;
  exited: Process;
  foreign: Process;
  pg: DevPagemap;
  dev: EmulatedBlockDevice;
  fs: FileSystem;
  f: OpenFile;
  closed: OpenFile;
  pmem: PmemDevice;
  pin: PinpageSystem;
  notifier: MmuIntervalNotifier;
  hints: MigrationHints;
  batch: AccessBatch;
  mirror: HmmDmirror;
  mirrorDev: HmmDmirrorDevice;
  pager: FileDevicePager;
  /** A block device not mounted. */
  spare: BlockDevice;
  /** A migration of one page collected at a, for the MigrateVma methods (only those entries make it). */
  get mig(): MigrateVma;
}

let other: Machine | null = null;

function world(content: "bytes" | "tags" = "bytes"): World {
  const m = Machine.create({ nodes: [{ normal: 512 }], content, deviceMemory: 1536, maxVmas: 64, maxProcesses: 8 });
  const p = m.spawn();
  const a = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
  p.touch(a, 16, true, 100n);
  const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
  p.touch(s, 4, true, 200n);
  const pfn = Number((p.pte(a) >> 12n) & 0xffffffffffn);
  const exited = m.spawn();
  exited.exit();
  other ??= Machine.create({ nodes: [{ normal: 64 }], content: "tags" });
  const foreign = other.procs[0] ?? other.spawn();
  const { pg } = privateDevice(m, 64);
  const dev = m.addBlockDevice("vda", { sectors: 256 }) as EmulatedBlockDevice;
  const fs = m.mount(dev);
  const f = fs.open("data", O_RDWR | O_CREAT);
  if (content === "bytes") f.pwrite(new Uint8Array(2 * PAGE_SIZE).fill(7), 0);
  else f.writeTags(0, [7n, 8n]);
  const spare = m.addBlockDevice("vdb", { sectors: 8 });
  const closed = fs.open("gone", O_RDWR | O_CREAT);
  closed.close();
  const pmem = m.registerPmem("pmem0", { pages: 512 });
  const pin = m.registerPinpage("sub", { migrate: () => 0 });
  pin.setPinpage(pfn + 2);
  const notifier = m.mmuIntervalNotifierInsert(p, a, 16 * PAGE_SIZE, { invalidate: () => true });
  const hints = new MigrationHints(m, { pgmap: pg });
  const [mirrorDev] = createHmmDevices(m, { chunkPages: 64, maxChunks: 1 });
  const mirror = mirrorDev!.open(p);
  const fileAt = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, f, 0);
  const pager = new FileDevicePager(m, p, f, fileAt, 4);
  const batch = p.batch();
  let mig: MigrateVma | null = null;
  return { spare, get mig() { return (mig ??= m.migrateVmaSetup({ proc: p, start: a + PAGE_SIZE, end: a + 2 * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM })); }, m, p, a, s, pfn, exited, foreign, pg, dev, fs, f, closed, pmem, pin, notifier, hints, batch, mirror, mirrorDev: mirrorDev!, pager };
}

// ---- hostile values, by the kind of argument --------------------------------------------

type Bad = [label: string, value: unknown];

const notNumbers: Bad[] = [
  ["NaN", NaN], ["Infinity", Infinity], ["-Infinity", -Infinity], ["1.5", 1.5], ["string", "1"], ["null", null],
  ["object", {}], ["bigint", 1n], ["array", [1]], ["boolean", true], ["undefined", undefined],
];
const tooBig: Bad[] = [["2^32", 2 ** 32], ["2^53", 2 ** 53], ["2^64", 2 ** 64]];
const negative: Bad[] = [["-1", -1], ["-4096", -4096]];
const badArrays = (w: World): Bad[] => [
  ["holes", [w.pfn, , w.pfn]], ["NaN element", [NaN]], ["1.5 element", [1.5]], ["-1 element", [-1]], ["2^32 element", [2 ** 32]],
  ["2^53 element", [2 ** 53]], ["string", "abc"], ["undefined", undefined], ["null", null], ["number", 3], ["object", {}],
  ["huge length", { length: 2 ** 40 }], ["negative length", { length: -1 }], ["fractional length", { length: 1.5 }],
  ["undefined element", [undefined]], ["string element", ["1"]], ["pfn outside", [w.m.config.frames + w.m.config.deviceFrames]],
];

/** What an argument is, and so which hostile values it gets. */
type Kind = "vaddr" | "addrs" | "self" | "int" | "count" | "pfn" | "addr" | "len" | "flags" | "bool" | "tag" | "proc" | "pfns" | "bytes" | "str" | "obj" | "ops" | "pgmap" | "file";

function hostile(kind: Kind, w: World): Bad[] {
  const nonObjects: Bad[] = [["undefined", undefined], ["null", null], ["number", 1], ["string", "x"], ["object", {}]];
  switch (kind) {
    case "int":
      return [...notNumbers, ...tooBig];
    case "vaddr":
      return [...notNumbers, ...negative, ["2^53", 2 ** 53], ["2^64", 2 ** 64]];
    case "addrs":
      return badArrays(w).filter(([l]) => !["2^32 element", "pfn outside"].includes(l));
    case "self":
      return [["closed", w.closed]];
    case "count":
    case "flags":
      return [...notNumbers, ...negative, ...tooBig];
    case "pfn":
      return [...notNumbers, ...negative, ...tooBig, ["pfn outside", w.m.config.frames + w.m.config.deviceFrames]];
    case "addr":
      return [...notNumbers, ...negative, ["unaligned", w.a + 1], ["2^53", 2 ** 53], ["2^64", 2 ** 64]];
    case "len":
      return [...notNumbers, ...negative, ["2^53", 2 ** 53], ["2^64", 2 ** 64]];
    case "bool":
      return [["string", "yes"], ["number", 1], ["null", null], ["object", {}]];
    case "tag":
      return [["number", 1], ["-1n", -1n], ["2^64", 1n << 64n], ["string", "1"], ["undefined", undefined], ["null", null]];
    case "proc":
      return [["exited", w.exited], ["other machine", w.foreign], ...nonObjects];
    case "pfns":
      return badArrays(w);
    case "bytes":
      return [["array", [1, 2]], ["Uint16Array", new Uint16Array(2)], ...nonObjects];
    case "str":
      return [["empty", ""], ["number", 1], ["undefined", undefined], ["null", null], ["object", {}]];
    case "obj":
      return [["null", null], ["number", 1], ["string", "x"], ["array", [1]]];
    case "ops":
      return [...nonObjects, ["array", []]];
    case "pgmap":
      return [["object", {}], ["null", null], ["undefined", undefined], ["number", 1]];
    case "file":
      return [["closed", w.closed], ["object", {}], ["null", null], ["number", 1]];
  }
}

// ---- the table: method -> argument kinds and good values --------------------------------

interface Arg {
  kind: Kind;
  good: (w: World) => unknown;
  /** Hostile labels that are valid here (an optional argument's undefined, an order of -1). */
  allow?: string[];
}
interface Entry {
  /** Class.method, as the coverage check below enumerates them. */
  name: string;
  call: (w: World, args: unknown[]) => unknown;
  args: Arg[];
  /** For a call that answers instead of throwing (a query, an ioctl's -errno): whether its answer refuses. */
  refusedBy?: (result: unknown) => boolean;
  /** The machine's content mode (default bytes). */
  content?: "tags";
  /** Runs on a fresh world before its snapshot. */
  prepare?: (w: World) => void;
}

const arg = (kind: Kind, good: (w: World) => unknown, allow: string[] = []): Arg => ({ kind, good, allow });
const OPT = ["undefined"];

const table: Entry[] = [
  // Machine
  { name: "Machine.create", call: (w, [c]) => Machine.create(c as never), args: [arg("obj", () => ({ nodes: [{ normal: 64 }], content: "tags" }), OPT)] },
  { name: "Machine.spawn", call: (w, [o]) => w.m.spawn(o as never), args: [arg("obj", () => ({}), OPT)] },
  { name: "Machine.mount", call: (w, [d, o]) => w.m.mount(d as never, o as never), args: [arg("obj", (w) => w.spare), arg("obj", () => ({}), OPT)] },
  { name: "Machine.fileDeviceDirty", call: (w, [p]) => w.m.fileDeviceDirty(p as never), args: [arg("pfns", () => [])] },
  { name: "Machine.memremapPages", call: (w, [c]) => w.m.memremapPages(c as never), args: [arg("obj", (w) => ({ type: 1, nrPages: 512, owner: {}, ops: {} }))] },
  { name: "Machine.memunmapPages", call: (w, [g]) => w.m.memunmapPages(g as never), args: [arg("pgmap", (w) => w.pg)] },
  { name: "Machine.registerPmem", call: (w, [n, c]) => w.m.registerPmem(n as never, c as never), args: [arg("str", () => "pmem1"), arg("obj", () => ({ pages: 512 }))] },
  { name: "Machine.vmfInsertPfns", call: (w, [p, a, f, wr]) => w.m.vmfInsertPfns(p as never, a as never, f as never, wr as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("pfns", (w) => [w.pmem.pfn(0)]), arg("bool", () => false, OPT)] },
  { name: "Machine.pagemapOf", call: (w, [p]) => w.m.pagemapOf(p as never), refusedBy: (r) => r === undefined, args: [arg("pfn", (w) => w.pg.start)] },
  { name: "Machine.migrateVmaSetup", call: (w, [p, s, e, f]) => w.m.migrateVmaSetup({ proc: p, start: s, end: e, flags: f } as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("addr", (w) => w.a + PAGE_SIZE), arg("flags", () => MIGRATE_VMA_SELECT_SYSTEM)] },
  { name: "Machine.migrateDeviceRange", call: (w, [s, n]) => w.m.migrateDeviceRange(s as never, n as never), args: [arg("pfn", (w) => w.pg.start), arg("count", () => 1)] },
  { name: "Machine.migrateDevicePfns", call: (w, [p]) => w.m.migrateDevicePfns(p as never), args: [arg("pfns", (w) => [w.pfn])] },
  { name: "Machine.registerPinpage", call: (w, [n, o]) => w.m.registerPinpage(n as never, o as never), args: [arg("str", () => "sub2"), arg("ops", () => ({ migrate: () => 0 }))] },
  { name: "Machine.evictDevicePages", call: (w, [g]) => w.m.evictDevicePages(g as never), args: [arg("pgmap", (w) => w.pg)] },
  { name: "Machine.hmmRangeFault", call: (w, [n, s, e, pf]) => w.m.hmmRangeFault({ notifier: n, notifierSeq: (w.notifier.readBegin()), start: s, end: e, hmmPfns: pf, defaultFlags: HMM_PFN_REQ_FAULT, pfnFlagsMask: 0n, devPrivateOwner: null } as never), args: [arg("obj", (w) => w.notifier), arg("addr", (w) => w.a), arg("addr", (w) => w.a + PAGE_SIZE), arg("obj", () => new BigUint64Array(1))] },
  { name: "Machine.mmuIntervalNotifierInsert", call: (w, [p, s, l, o]) => w.m.mmuIntervalNotifierInsert(p as never, s as never, l as never, o as never), args: [arg("proc", (w) => w.p), arg("vaddr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("ops", () => ({ invalidate: () => true }))] },
  { name: "Machine.mmuIntervalNotifierRemove", call: (w, [n]) => w.m.mmuIntervalNotifierRemove(n as never), args: [arg("obj", (w) => w.notifier)] },
  { name: "Machine.makeDeviceExclusive", call: (w, [p, a]) => w.m.makeDeviceExclusive(p as never, a as never, null), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a)] },
  { name: "Machine.memoryFailure", call: (w, [p, f]) => w.m.memoryFailure(p as never, f as never), args: [arg("pfn", (w) => w.pfn), arg("flags", () => 0, OPT)] },
  { name: "Machine.allocDevicePage", call: (w, [g]) => w.m.allocDevicePage(g as never), args: [arg("pgmap", (w) => w.pg)] },
  { name: "Machine.hmmPfnsBuffer", call: (w, [n]) => w.m.hmmPfnsBuffer(n as never), args: [arg("count", () => 1)] },
  { name: "Machine.counter", call: (w, [n]) => w.m.counter(n as never), args: [arg("str", () => "nr_free_pages")] },
  { name: "Machine.getUserPages", call: (w, [p, a, n, f]) => w.m.getUserPages(p as never, a as never, n as never, f as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("count", () => 1), arg("flags", () => 0, OPT)] },
  { name: "Machine.pinUserPages", call: (w, [p, a, n, f]) => w.m.pinUserPages(p as never, a as never, n as never, f as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("count", () => 1), arg("flags", () => 0, OPT)] },
  { name: "Machine.unpinUserPage", call: (w, [p]) => w.m.unpinUserPage(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "Machine.unpinUserPages", call: (w, [p]) => w.m.unpinUserPages(p as never), args: [arg("pfns", (w) => [w.pfn])] },
  { name: "Machine.unpinUserPagesDirtyLock", call: (w, [p, d]) => w.m.unpinUserPagesDirtyLock(p as never, d as never), args: [arg("pfns", (w) => [w.pfn]), arg("bool", () => true)] },
  { name: "Machine.releasePages", call: (w, [p]) => w.m.releasePages(p as never), args: [arg("pfns", (w) => [w.pfn])] },
  { name: "Machine.gupPagesBuffer", call: (w, [n]) => w.m.gupPagesBuffer(n as never), args: [arg("count", () => 1)] },
  { name: "Machine.pfnToNid", call: (w, [p]) => w.m.pfnToNid(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "Machine.setMempolicy", call: (w, [p, mo, n]) => w.m.setMempolicy(p as never, mo as never, n as never), args: [arg("proc", (w) => w.p), arg("flags", () => MPOL_BIND), arg("pfns", () => [0])] },
  { name: "Machine.getMempolicy", call: (w, [p, a, f]) => w.m.getMempolicy(p as never, a as never, f as never), args: [arg("proc", (w) => w.p), arg("int", () => 0, OPT), arg("flags", () => 0, OPT)] },
  { name: "Machine.mbind", call: (w, [p, a, l, mo, n, f]) => w.m.mbind(p as never, a as never, l as never, mo as never, n as never, f as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("flags", () => MPOL_BIND), arg("pfns", () => [0]), arg("flags", () => 0, OPT)] },
  // move_pages reports an address past the user address space per entry (-EFAULT), as the kernel.
  { name: "Machine.movePages", call: (w, [p, a, n, f]) => w.m.movePages(p as never, a as never, n as never, f as never), args: [arg("proc", (w) => w.p), arg("addrs", (w) => [w.a], ["2^53 element"]), arg("pfns", () => [0], ["null"]), arg("flags", () => 0, OPT)] },
  { name: "Machine.migratePages", call: (w, [p, f, t, fl]) => w.m.migratePages(p as never, f as never, t as never, fl as never), args: [arg("proc", (w) => w.p), arg("pfns", () => [0]), arg("pfns", () => [0]), arg("flags", () => 0, OPT)] },
  // mlock(2) rounds an unaligned start down, as the kernel's.
  { name: "Machine.mlock", call: (w, [p, a, l]) => w.m.mlock(p as never, a as never, l as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a, ["unaligned"]), arg("len", () => PAGE_SIZE)] },
  { name: "Machine.munlock", call: (w, [p, a, l]) => w.m.munlock(p as never, a as never, l as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a, ["unaligned"]), arg("len", () => PAGE_SIZE)] },
  { name: "Machine.mlockall", call: (w, [p, f]) => w.m.mlockall(p as never, f as never), args: [arg("proc", (w) => w.p), arg("flags", () => MCL_CURRENT)] },
  { name: "Machine.munlockall", call: (w, [p]) => w.m.munlockall(p as never), args: [arg("proc", (w) => w.p)] },
  { name: "Machine.compactZone", call: (w, [z, o]) => w.m.compactZone(z as never, o as never), args: [arg("count", () => 0), arg("int", () => -1, OPT)] },
  { name: "Machine.compactNode", call: (w, [n, o]) => w.m.compactNode(n as never, o as never), args: [arg("count", () => 0), arg("int", () => -1, OPT)] },
  { name: "Machine.cmaAlloc", call: (w, [a, c, al]) => w.m.cmaAlloc(a as never, c as never, al as never), args: [arg("count", () => 0), arg("count", () => 1), arg("count", () => 0, OPT)] },
  { name: "Machine.cmaRelease", call: (w, [a, p, c]) => w.m.cmaRelease(a as never, p as never, c as never), args: [arg("count", () => 0), arg("pfn", (w) => w.pfn), arg("count", () => 1)] },
  { name: "Machine.pageIsCma", call: (w, [p]) => w.m.pageIsCma(p as never), refusedBy: (r) => r === false, args: [arg("pfn", (w) => w.pfn)] },
  { name: "Machine.pageblockMigratetype", call: (w, [p]) => w.m.pageblockMigratetype(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "Machine.offlinePages", call: (w, [s, n]) => w.m.offlinePages(s as never, n as never), args: [arg("pfn", () => 512), arg("count", () => 512)] },
  { name: "Machine.onlinePages", call: (w, [s, n]) => w.m.onlinePages(s as never, n as never), args: [arg("pfn", () => 512), arg("count", () => 512)] },
  { name: "Machine.addBlockDevice", call: (w, [n, o]) => w.m.addBlockDevice(n as never, o as never), args: [arg("str", () => "vdc"), arg("obj", () => ({ sectors: 8 }))] },
  { name: "Machine.check", call: (w, [o]) => w.m.check(o as never), args: [arg("obj", () => ({}), OPT)] },
  { name: "Machine.oomReap", call: (w, [p]) => w.m.oomReap(p as never), args: [arg("proc", (w) => w.p)] },
  { name: "Injector.add", call: (w, [s]) => w.m.inject.add(s as never), args: [arg("obj", () => ({ site: "alloc", nth: 1 }))] },
  { name: "Injector.remove", call: (w, [i]) => w.m.inject.remove(i as never), args: [arg("obj", () => ({}))] },
  // Process
  { name: "Process.vmaAt", call: (w, [a]) => w.p.vmaAt(a as never), refusedBy: (r) => r === undefined, args: [arg("int", (w) => w.a)] },
  { name: "Process.mmap", call: (w, [a, l, pr, f, fi, o]) => w.p.mmap(a as never, l as never, pr as never, f as never, fi as never, o as never), args: [arg("int", () => 0, ["2^32"]), arg("len", () => PAGE_SIZE), arg("flags", () => RW), arg("flags", () => MAP_SHARED), arg("file", (w) => w.f), arg("int", () => 0, ["undefined", "2^32"])] },
  { name: "Process.msync", call: (w, [a, l, f]) => w.p.msync(a as never, l as never, f as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("flags", () => 0)] },
  { name: "Process.munmap", call: (w, [a, l]) => w.p.munmap(a as never, l as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE)] },
  { name: "Process.mprotect", call: (w, [a, l, pr]) => w.p.mprotect(a as never, l as never, pr as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("flags", () => PROT_READ)] },
  { name: "Process.madvise", call: (w, [a, l, ad]) => w.p.madvise(a as never, l as never, ad as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("flags", () => MADV_DONTNEED)] },
  { name: "Process.mremap", call: (w, [a, o, n, f, na]) => w.p.mremap(a as never, o as never, n as never, f as never, na as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE), arg("len", () => PAGE_SIZE), arg("flags", () => 0, OPT), arg("int", () => 0, ["undefined", "2^32"])] },
  { name: "Process.run", call: (w, [b]) => w.p.run(b as never), args: [arg("obj", (w) => w.batch)] },
  { name: "Process.read", call: (w, [a, l]) => w.p.read(a as never, l as never), args: [arg("vaddr", (w) => w.a), arg("len", () => 8)] },
  { name: "Process.write", call: (w, [a, d]) => w.p.write(a as never, d as never), args: [arg("vaddr", (w) => w.a), arg("bytes", () => new Uint8Array(8))] },
  { name: "Process.readU32", call: (w, [a]) => w.p.readU32(a as never), args: [arg("vaddr", (w) => w.a)] },
  { name: "Process.writeU32", call: (w, [a, v]) => w.p.writeU32(a as never, v as never), args: [arg("vaddr", (w) => w.a), arg("count", () => 1)] },
  { name: "Process.readTag", call: (w, [a]) => w.p.readTag(a as never), args: [arg("vaddr", (w) => w.a)] },
  { name: "Process.writeTag", call: (w, [a, t]) => w.p.writeTag(a as never, t as never), args: [arg("vaddr", (w) => w.a), arg("tag", () => 1n)] },
  { name: "Process.touch", call: (w, [a, n, wr, t]) => w.p.touch(a as never, n as never, wr as never, t as never), args: [arg("addr", (w) => w.a), arg("count", () => 1), arg("bool", () => true), arg("tag", () => 0n, OPT)] },
  { name: "Process.pte", call: (w, [a]) => w.p.pte(a as never), args: [arg("vaddr", (w) => w.a)] },
  { name: "Process.walk", call: (w, [a, l]) => w.p.walk(a as never, l as never), args: [arg("addr", (w) => w.a), arg("len", () => PAGE_SIZE)] },
  // AccessBatch (a stale or bad op is refused when queued, before any Wasm call)
  { name: "AccessBatch.readU32", call: (w, [a]) => w.batch.readU32(a as never), args: [arg("vaddr", (w) => w.a)] },
  { name: "AccessBatch.writeU32", call: (w, [a, v]) => w.batch.writeU32(a as never, v as never), args: [arg("vaddr", (w) => w.a), arg("count", () => 1)] },
  { name: "AccessBatch.read", call: (w, [a, l]) => w.batch.read(a as never, l as never), args: [arg("vaddr", (w) => w.a), arg("len", () => 8)] },
  { name: "AccessBatch.write", call: (w, [a, d]) => w.batch.write(a as never, d as never), args: [arg("vaddr", (w) => w.a), arg("bytes", () => new Uint8Array(8))] },
  { name: "AccessBatch.readTag", call: (w, [a]) => w.batch.readTag(a as never), args: [arg("vaddr", (w) => w.a)] },
  { name: "AccessBatch.writeTag", call: (w, [a, t]) => w.batch.writeTag(a as never, t as never), args: [arg("vaddr", (w) => w.a), arg("tag", () => 1n)] },
  { name: "AccessBatch.writeTagU32", call: (w, [a, t]) => w.batch.writeTagU32(a as never, t as never), args: [arg("vaddr", (w) => w.a), arg("count", () => 1)] },
  { name: "AccessBatch.touch", call: (w, [a, n, wr, t]) => w.batch.touch(a as never, n as never, wr as never, t as never), args: [arg("addr", (w) => w.a), arg("count", () => 1), arg("bool", () => true), arg("tag", () => 0n, OPT)] },
  { name: "AccessBatch.tagLow", call: (w, [i]) => w.batch.tagLow(i as never), args: [arg("count", () => 0)] },
  { name: "AccessBatch.tagHigh", call: (w, [i]) => w.batch.tagHigh(i as never), args: [arg("count", () => 0)] },
  { name: "AccessBatch.value", call: (w, [i]) => w.batch.value(i as never), args: [arg("count", () => 0)] },
  // PageAccess
  ...(["refcount", "mapcount", "flags", "get", "folioMaybeDmaPinned", "pincount", "trylock", "clear", "readBytes", "readTag"] as const).map(
    (k): Entry => ({ name: `PageAccess.${k}`, call: (w, [p]) => (w.m.page[k] as (pfn: unknown) => unknown)(p), args: [arg("pfn", (w) => w.pfn)] })),
  { name: "PageAccess.testFlag", call: (w, [p, b]) => w.m.page.testFlag(p as never, b as never), args: [arg("pfn", (w) => w.pfn), arg("count", () => 0)] },
  { name: "PageAccess.put", call: (w, [p]) => w.m.page.put(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "PageAccess.unlock", call: (w, [p]) => w.m.page.unlock(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "PageAccess.copy", call: (w, [d, s]) => w.m.page.copy(d as never, s as never), args: [arg("pfn", (w) => w.pfn), arg("pfn", (w) => w.pfn + 1)] },
  { name: "PageAccess.writeBytes", call: (w, [p, d]) => w.m.page.writeBytes(p as never, d as never), args: [arg("pfn", (w) => w.pfn), arg("bytes", () => new Uint8Array(4096))] },
  { name: "PageAccess.writeTag", call: (w, [p, t]) => w.m.page.writeTag(p as never, t as never), args: [arg("pfn", (w) => w.pfn), arg("tag", () => 1n)] },
  // MigrateVma
  { name: "MigrateVma.allocAndCopy", prepare: (w) => w.mig, call: (w, [t, o]) => w.mig.allocAndCopy(t as never, o as never), args: [arg("pgmap", (w) => w.pg), arg("obj", () => ({}), OPT)] },
  // Files and block devices
  { name: "FileSystem.open", call: (w, [n, f]) => w.fs.open(n as never, f as never), args: [arg("str", () => "new"), arg("flags", () => O_RDWR | O_CREAT)] },
  { name: "OpenFile.pread", call: (w, [f, l, o]) => (f as OpenFile).pread(l as never, o as never), args: [arg("self", (w) => w.f), arg("len", () => 8), arg("len", () => 0)] },
  { name: "OpenFile.pwrite", call: (w, [f, d, o]) => (f as OpenFile).pwrite(d as never, o as never), args: [arg("self", (w) => w.f), arg("bytes", () => new Uint8Array(8)), arg("len", () => 0)] },
  // Tags mode's file I/O: the bytes-mode world refuses it (EOPNOTSUPP) before looking at the arguments; test/files covers tags mode.
  { name: "OpenFile.readTags", content: "tags", call: (w, [f, i, n]) => (f as OpenFile).readTags(i as never, n as never), args: [arg("self", (w) => w.f), arg("count", () => 0, ["2^32"]), arg("count", () => 1, ["2^32"])] },
  { name: "OpenFile.writeTags", content: "tags", call: (w, [f, i, t]) => (f as OpenFile).writeTags(i as never, t as never), args: [arg("self", (w) => w.f), arg("count", () => 0), arg("obj", () => [1n])] },
  { name: "OpenFile.ftruncate", call: (w, [f, l]) => (f as OpenFile).ftruncate(l as never), args: [arg("self", (w) => w.f), arg("len", () => 0)] },
  { name: "OpenFile.fsync", call: (w, [f]) => (f as OpenFile).fsync(), args: [arg("self", (w) => w.f)] },
  { name: "OpenFile.close", call: (w, [f]) => (f as OpenFile).close(), args: [arg("self", (w) => w.f)] },
  { name: "EmulatedBlockDevice.read", call: (w, [s, p]) => w.dev.read(s as never, p as never), args: [arg("pfns", () => [200]), arg("pfns", (w) => [w.pfn])] },
  { name: "EmulatedBlockDevice.write", call: (w, [s, p, o]) => w.dev.write(s as never, p as never, o as never), args: [arg("pfns", () => [200]), arg("pfns", (w) => [w.pfn]), arg("obj", () => ({}), OPT)] },
  ...(["peek", "peekDurable", "writeCount"] as const).map((k): Entry => ({ name: `EmulatedBlockDevice.${k}`, call: (w, [s]) => w.dev[k](s as never), args: [arg("pfn", () => 0)] })),
  { name: "EmulatedBlockDevice.injectError", call: (w, [e]) => w.dev.injectError(e as never), args: [arg("obj", () => ({ op: "write", sector: 0, count: 1 }))] },
  { name: "PmemDevice.pfn", call: (w, [s]) => w.pmem.pfn(s as never), args: [arg("pfn", () => 0)] },
  { name: "PmemDevice.read", call: (w, [s, p]) => w.pmem.read(s as never, p as never), args: [arg("pfns", () => [0]), arg("pfns", (w) => [w.pfn])] },
  { name: "PmemDevice.write", call: (w, [s, p, o]) => w.pmem.write(s as never, p as never, o as never), args: [arg("pfns", () => [0]), arg("pfns", (w) => [w.pfn]), arg("obj", () => ({}), OPT)] },
  ...(["peek", "peekDurable", "writeCount"] as const).map((k): Entry => ({ name: `PmemDevice.${k}`, call: (w, [s]) => w.pmem[k](s as never), args: [arg("pfn", () => 0)] })),
  { name: "PmemDevice.injectError", call: (w, [e]) => w.pmem.injectError(e as never), args: [arg("obj", () => ({ op: "write", sector: 0, count: 1 }))] },
  { name: "PmemDevice.daxMmap", call: (w, [p, o]) => w.pmem.daxMmap(p as never, o as never), args: [arg("proc", (w) => w.p), arg("obj", () => ({ length: PAGE_SIZE }))] },
  { name: "PmemDevice.onlineAsRam", call: (w, [o]) => w.pmem.onlineAsRam(o as never), args: [arg("obj", () => ({}), OPT)] },
  // Pin control, notifiers, hints
  { name: "PinpageSystem.setPinpage", call: (w, [p]) => w.pin.setPinpage(p as never), args: [arg("pfn", (w) => w.pfn)] },
  { name: "PinpageSystem.setPinpages", call: (w, [p]) => w.pin.setPinpages(p as never), args: [arg("pfns", (w) => [w.pfn])] },
  { name: "PinpageSystem.pinUserRange", call: (w, [p, a, n]) => w.pin.pinUserRange(p as never, a as never, n as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("count", () => 1)] },
  { name: "PinpageSystem.clearPinpage", call: (w, [p]) => w.pin.clearPinpage(p as never), args: [arg("pfn", (w) => w.pfn + 2)] },
  { name: "PinpageSystem.clearPinpages", call: (w, [p]) => w.pin.clearPinpages(p as never), args: [arg("pfns", (w) => [w.pfn + 2])] },
  { name: "PinpageSystem.privOf", call: (w, [p]) => w.pin.privOf(p as never), refusedBy: (r) => r === undefined, args: [arg("pfn", (w) => w.pfn)] },
  { name: "PinpageSystem.findPage", call: (w, [p]) => w.pin.findPage(p as never), refusedBy: (r) => r === false, args: [arg("pfn", (w) => w.pfn + 2)] },
  { name: "MmuIntervalNotifier.setSeq", call: (w, [s]) => w.notifier.setSeq(s as never), args: [arg("count", () => 1, ["-1", "-4096", "2^32"])] },
  // A sequence that is not the notifier's reads as "retry".
  { name: "MmuIntervalNotifier.readRetry", call: (w, [s]) => w.notifier.readRetry(s as never), refusedBy: (r) => r === true, args: [arg("count", () => 0)] },
  { name: "MmuIntervalNotifier.checkRetry", call: (w, [s]) => w.notifier.checkRetry(s as never), refusedBy: (r) => r === true, args: [arg("count", () => 0)] },
  { name: "MigrationHints.disable", call: (w, [p, a, l]) => w.hints.disable(p as never, a as never, l as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a, OPT), arg("len", () => PAGE_SIZE)] },
  { name: "MigrationHints.enable", call: (w, [p]) => w.hints.enable(p as never), args: [arg("proc", (w) => w.p)] },
  { name: "MigrationHints.enabled", call: (w, [p, a]) => w.hints.enabled(p as never, a as never), args: [arg("proc", (w) => w.p), arg("vaddr", (w) => w.a)] },
  { name: "MigrationHints.recordDeviceAccess", call: (w, [p, a, n]) => w.hints.recordDeviceAccess(p as never, a as never, n as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("count", () => 1, OPT)] },
  { name: "MigrationHints.recordCpuAccess", call: (w, [p, a, n]) => w.hints.recordCpuAccess(p as never, a as never, n as never), args: [arg("proc", (w) => w.p), arg("addr", (w) => w.a), arg("count", () => 1, OPT)] },
  { name: "MigrationHints.countersOf", call: (w, [p, a]) => w.hints.countersOf(p as never, a as never), args: [arg("proc", (w) => w.p), arg("vaddr", (w) => w.a)] },
  { name: "MigrationHints.forget", call: (w, [p]) => w.hints.forget(p as never), args: [arg("proc", (w) => w.p, ["exited"])] },
  // mmemu/testing
  { name: "HmmDmirrorDevice.open", call: (w, [p]) => w.mirrorDev.open(p as never), args: [arg("proc", (w) => w.p)] },
  // An ioctl: bad arguments come back as ret -EINVAL.
  { name: "HmmDmirror.cmd", call: (w, [c, a, n]) => w.mirror.cmd(c as never, { addr: a, npages: n, ptr: new Uint8Array(PAGE_SIZE) } as never), refusedBy: (r) => (r as { ret: number }).ret < 0, args: [arg("count", () => HMM_DMIRROR_READ), arg("addr", (w) => w.a), arg("count", () => 1)] },
  { name: "FileDevicePager.read", call: (w, [i]) => w.pager.read(i as never), args: [arg("count", () => 0)] },
  { name: "FileDevicePager.write", call: (w, [i, d]) => w.pager.write(i as never, d as never), args: [arg("count", () => 0), arg("bytes", () => new Uint8Array(PAGE_SIZE))] },
];

// ---- the machine's state, to compare before and after a refused call ----------------------

interface Snapshot {
  mem: Uint8Array;
  js: string;
}

/** Regions a call may stage its input in before refusing it. */
function stagingRegions(m: Machine): [number, number][] {
  const s = m.layout.slots;
  return [
    [s[L.OPS]!, s[L.OPS]! + s[L.MAX_OPS]! * 32],
    [s[L.DATA]!, s[L.DATA]! + s[L.DATA_SIZE]!],
    [s[L.RESULT]!, s[L.RESULT]! + 256],
    [m.core.gupInPtr(), m.core.gupInPtr() + 65536 * 4],
  ];
}

function jsState(w: World): string {
  const tj = performance.now();
  try { return jsState2(w); } finally { (globalThis as any).TJ = ((globalThis as any).TJ ?? 0) + performance.now() - tj; }
}
function jsState2(w: World): string {
  const m = w.m;
  return JSON.stringify({
    counters: m.counters(),
    procs: m.procs.map((p) => [p.pid, p.maps()]),
    pagemaps: m.pagemaps.map((g) => [g.start, g.nrPages]),
    inFlight: m.migrations.filter(Boolean).length,
    blockDevices: m.blockDevices.map((d) => [d.name, d.stats]),
    filesystems: m.filesystems.map((f) => f.freeSectors),
    files: [w.f.size, w.closed.size],
    pmems: m.pmems.map((d) => [d.name, d.mode]),
    pin: [w.pin.size, m.pinpageSystems.length],
    hints: [w.hints.stats, w.hints.enabled(w.p, w.a)],
    seq: w.notifier.readBegin(),
    mirror: w.mirror.mappedPages,
    pager: w.pager.inUse,
    pinned: w.pin.pages(),
  });
}

function snapshot(w: World): Snapshot {
  const js = jsState(w);
  return { mem: new Uint8Array(w.m.core.memory.buffer).slice(), js };
}

/** What changed since `before` (null: nothing); `deep` also compares memory and runs check(). */
function sameState(w: World, before: Snapshot, deep: boolean): string | null {
  const js = jsState(w);
  if (js !== before.js) return "JS-side state changed";
  if (!deep) return null;
  const now = new Uint8Array(w.m.core.memory.buffer);
  if (now.length !== before.mem.length) return "memory grew";
  let at = 0;
  for (const [from, to] of [...stagingRegions(w.m)].sort((x, y) => x[0] - y[0])) {
    if (Buffer.compare(before.mem.subarray(at, from), now.subarray(at, from)) !== 0) return `memory changed below ${from}`;
    at = Math.max(at, to);
  }
  if (Buffer.compare(before.mem.subarray(at), now.subarray(at)) !== 0) return `memory changed above ${at}`;
  try {
    w.m.check({ allowInFlight: true });
  } catch (e) {
    return `check: ${(e as Error).message}`;
  }
  return null;
}

/** The offending value an MmError names, for a hostile value given (an element, a length or the value). */
function names(err: MmError, bad: unknown): boolean {
  if (!("value" in err)) return false;
  if (bad === undefined || bad === null) return true;
  if (Object.is(err.value, bad)) return true;
  if (typeof err.value === "object" && err.value !== null) return true;
  if (typeof bad === "object") return true;
  return err.value !== undefined;
}

/** A world and its snapshot, shared by the entries that need no world of their own. */
interface Scene {
  w: World;
  before: Snapshot;
}

function scene(e: Entry): Scene {
  const w = world(e.content);
  e.prepare?.(w);
  return { w, before: snapshot(w) };
}

/**
 * Every hostile call of one entry, against `sc` (a refused call leaves it as it was, so the
 * next entry can use it too; a call that changed it gets a fresh one). The cheap state (JS
 * side, counters) is compared after each call, memory and check() after the last; when
 * those differ, the entry runs again on a fresh world comparing everything after each call,
 * to name the call that changed the machine.
 */
function runEntry(e: Entry, sc: Scene, deep = false): string[] {
  const gaps: string[] = [];
  e.args.forEach((a, i) => {
    for (const [label, value] of hostile(a.kind, sc.w)) {
      if (a.allow?.includes(label)) continue;
      const { w, before } = sc;
      const args = e.args.map((x, j) => (j === i ? value : x.good(w)));
      const what = `${e.name} arg ${i} (${a.kind}) = ${label}`;
      let thrown: unknown = null;
      let ok = false;
      let answer: unknown;
      try {
        answer = e.call(w, args);
        ok = true;
      } catch (err) {
        thrown = err;
      }
      const answered = ok && e.refusedBy?.(answer) === true;
      let dirty = ok && !answered;
      if (answered) {
        const changed = sameState(w, before, deep);
        if (changed) {
          gaps.push(`${what}: answered ${String(answer)} but ${changed}`);
          dirty = true;
        }
      } else if (ok) gaps.push(`${what}: accepted`);
      else if (!(thrown instanceof MmError)) {
        gaps.push(`${what}: threw ${(thrown as Error)?.constructor?.name}: ${(thrown as Error)?.message}`);
        dirty = true;
      } else {
        const err = thrown;
        if (!(err.code in ERRNO)) gaps.push(`${what}: code ${err.code} is not an errno`);
        if (!err.fn) gaps.push(`${what}: no function name`);
        if (!names(err, value)) gaps.push(`${what}: the error does not name the offending value (${err.message})`);
        const changed = sameState(w, before, deep);
        if (changed) {
          gaps.push(`${what}: refused (${err.code}) but ${changed}`);
          dirty = true;
        }
      }
      if (dirty) Object.assign(sc, scene(e));
    }
  });
  if (!deep) {
    const changed = sameState(sc.w, sc.before, true);
    if (changed) {
      Object.assign(sc, scene(e));
      const named = runEntry(e, scene(e), true);
      return named.length ? named : [...gaps, `${e.name}: ${changed} after its hostile calls`];
    }
  }
  return gaps;
}

describe("the public surface refuses hostile arguments with an MmError and changes nothing", () => {
  it("every table entry", () => {
    let shared: Scene | null = null;
    const gaps = table.flatMap((e) => {
      if (e.content || e.prepare) return runEntry(e, scene(e));
      shared ??= scene(e);
      return runEntry(e, shared);
    });
    expect(gaps).toEqual([]);
  });

  it("the table covers every public method that takes arguments", () => {
    const classes: [string, string][] = [
      ["Machine", "machine.ts"], ["Process", "process.ts"], ["AccessBatch", "batch.ts"], ["PageAccess", "page.ts"], ["MigrateVma", "migrate.ts"],
      ["FileSystem", "fs/filesystem.ts"], ["OpenFile", "fs/file.ts"], ["EmulatedBlockDevice", "block/device.ts"], ["PmemDevice", "pmem/device.ts"],
      ["PinpageSystem", "pin/pinpage.ts"], ["MmuIntervalNotifier", "hmm/notifier.ts"], ["MigrationHints", "policy/hints.ts"],
      ["HmmDmirrorDevice", "testing/dmirror.ts"], ["HmmDmirror", "testing/dmirror.ts"], ["FileDevicePager", "testing/pager.ts"],
      ["Injector", "inject/injector.ts"],
    ];
    const covered = new Set(table.map((e) => e.name));
    const missing: string[] = [];
    for (const [cls, file] of classes) {
      const methods = publicMethods(cls, file);
      expect(methods.length, cls).toBeGreaterThan(0);
      for (const k of methods) if (!covered.has(`${cls}.${k}`)) missing.push(`${cls}.${k}`);
    }
    expect(missing).toEqual([]);
  });
});

/** The methods with parameters a class declares public (not private, not @internal), read from its source. */
function publicMethods(cls: string, file: string): string[] {
  const path = fileURLToPath(new URL(`../src/${file}`, import.meta.url));
  const src = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node) && node.name?.text === cls) {
      for (const m of node.members) {
        if (!ts.isMethodDeclaration(m) || m.parameters.length === 0 || !m.body) continue;
        if (m.modifiers?.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword || x.kind === ts.SyntaxKind.ProtectedKeyword)) continue;
        if (ts.getJSDocTags(m).some((t) => t.tagName.text === "internal") || /@internal/.test(m.getFullText().slice(0, m.getLeadingTriviaWidth()))) continue;
        out.push((m.name as ts.Identifier).text);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

export type { Inode };
