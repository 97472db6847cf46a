// Loading the Wasm core: one compiled module per build, one instance per machine.
import { instantiateSync } from "@assemblyscript/loader";
import type { WasmBuild } from "./config.js";

/** The Wasm surface (assembly/index.ts). Page numbers cross as f64, never i64. */
export interface CoreExports {
  memory: WebAssembly.Memory;
  layoutPtr(): number;
  heapBase(): number;
  init(): void;
  mmCreate(node: number): number;
  mmDestroy(mm: number): void;
  mmVmaTable(mm: number): number;
  mmSetNvmas(mm: number, n: number): void;
  rssAnon(mm: number): number;
  rssShmem(mm: number): number;
  access(mm: number, from: number, n: number): number;
  populate(mm: number, vpn: number, n: number, write: number): number;
  zap(mm: number, vpn: number, n: number): void;
  changeProt(mm: number, vpn: number, n: number, vmFlags: number): void;
  madvFree(mm: number, vpn: number, n: number): void;
  move(mm: number, vpn: number, n: number, newVpn: number): number;
  copyRange(dst: number, src: number, vpn: number, n: number): number;
  countTablesIn(mm: number, vpn: number, n: number): number;
  freeTables(): number;
  walk(mm: number, vpn: number, n: number): number;
  readPte(mm: number, vpn: number): number;
  shmemOpen(id: number, sizePages: number): void;
  shmemClose(id: number): void;
  fileOpen(id: number, sizePages: number): void;
  fileSetSize(id: number, sizePages: number): void;
  fileClose(id: number): void;
  filemapGrabFolio(id: number, index: number, nid: number): number;
  filemapGrabbedNew(): number;
  filemapLookup(id: number, index: number): number;
  filemapReadDone(pfn: number, ok: number): void;
  folioMarkDirty(pfn: number): void;
  filemapWritebackBegin(id: number, from: number, to: number): number;
  filemapWritebackEnd(from: number, n: number, ok: number): void;
  wbBase(): number;
  wbNextIndex(): number;
  truncateInodePages(id: number, from: number): number;
  truncateInodePagesBusy(id: number, from: number): number;
  shrinkFileLru(want: number): number;
  reclaimDirtySeen(): number;
  lruListCount(nid: number, active: number): number;
  filemapDevicePages(id: number, from: number, to: number, dirtyOnly: number): number;
  bounceAlloc(nid: number): number;
  bounceFree(pfn: number): void;
  wbBounce(n: number): number;
  wbBounceDone(n: number): void;
  wbIoBase(): number;
  filemapInvalidateFolio(id: number, index: number): number;
  check(): number;
  foldStats(): void;
  drainAllPages(): void;
  deviceZoneInit(z: number): void;
  deviceZoneRelease(z: number): number;
  deviceAllocPage(z: number): number;
  injectAllocSet(slot: number, maskLo: number, maskHi: number, mode: number, skip: number, left: number, p: number, seed: number): void;
  injectAllocMask(slot: number, maskLo: number, maskHi: number): void;
  injectAllocHits(slot: number): number;
  injectAllocLive(slot: number): number;
  injectAllocCheck(z: number): number;
  devicePageInit(pfn: number): void;
  deviceTakeFreed(): number;
  pageRefcount(pfn: number): number;
  pageMapcount(pfn: number): number;
  pageFlags(pfn: number): number;
  pageZoneId(pfn: number): number;
  pageMappingValue(pfn: number): number;
  pageIndexValue(pfn: number): number;
  pfnHasStructPage(pfn: number): number;
  pmemIoBuf(): number;
  pmemIo(n: number, write: number): void;
  pfnRangeSet(id: number, start: number, pages: number): void;
  pmemOnline(z: number): void;
  pmemRemoveZone(z: number): void;
  pmemStorageInit(start: number, end: number): void;
  insertPfns(mm: number, vpn: number, n: number, write: number): number;
  pageGet(pfn: number): void;
  pagePut(pfn: number): void;
  pageTrylock(pfn: number): number;
  pageUnlock(pfn: number): void;
  pageCopy(dst: number, src: number): void;
  pageClear(pfn: number): void;
  pageReadData(pfn: number, offset: number): void;
  pageWriteData(pfn: number, offset: number): void;
  pageReadTag(pfn: number): void;
  pageWriteTag(pfn: number, lo: number, hi: number): void;
  fault(mm: number, vpn: number, write: number): number;
  notified(mm: number, vpn: number): void;
  mmSetNotifiers(mm: number, on: number): void;
  makeExclusive(mm: number, vpn: number): number;
  restoreExclusive(mm: number, vpn: number): number;
  migrateVmaSetup(slot: number, mm: number, vpn: number, npages: number, flags: number, owner: number, faultPage: number, readOnly: number): number;
  migrateForgetOwnPtes(slot: number, dropMm: number): void;
  migrateDeviceRangeSetup(slot: number, startPfn: number, npages: number): number;
  migratePfnListSetup(slot: number, npages: number, pinpage: number): number;
  pinpageHold(n: number): number;
  pinpageRelease(n: number): number;
  pinpageBadWhy(): number;
  pagePinpageHolds(pfn: number): number;
  migrateTouchedOthers(slot: number): number;
  memoryFailurePoison(pfn: number): number;
  pageSetHwpoison(pfn: number): void;
  migrateRunPages(slot: number, npages: number): void;
  migrateCheckDst(slot: number, npages: number, drop: number): number;
  migrateDstFillsHoles(): number;
  migrateClearAll(slot: number, npages: number): void;
  migrateRunFinalize(slot: number, npages: number): void;
  migrateRunPagesFinalize(slot: number, npages: number): void;
  /** Whether migrate_vma's collect and finalize take four entries at once (1, the default) or one (0). */
  migrateSetLanes(on: number): void;
  /** Groups of four entries the collect and finalize loops took, since the machine started. */
  migrateLaneGroups(): number;
  migrateAllocCopy(slot: number, npages: number, z: number, node: number, movable: number, failFirst: number, fillHoles: number): number;
  hmmRangeWalk(mm: number, vpn: number, npages: number, from: number, defaultHi: number, maskHi: number, owner: number): number;
  pageCensus(framesPerBucket: number): number;
  hmmLastFaultWrite(): number;
  reclaim(n: number): number;
  gupPagesPtr(): number;
  gupInPtr(): number;
  gupRange(mm: number, vpn: number, n: number, from: number, flags: number): number;
  gupStopReason(): number;
  gupStopIsWrite(): number;
  gupFault(mm: number, vpn: number, write: number, unshare: number, force: number): number;
  gupReleaseList(inPlace: number, n: number, pin: number, dirty: number): number;
  gupTakeList(n: number, pin: number): number;
  gupUntakeList(n: number, pin: number): void;
  gupDropList(n: number, pin: number, dirty: number): void;
  gupBadEntryReason(): number;
  gupUnpinnable(n: number): number;
  pageNodeId(pfn: number): number;
  pageGupRefCount(pfn: number): number;
  pagePincount(pfn: number): number;
  zoneExtBase(): number;
  compactBegin(z: number, order: number): number;
  compactIsolate(slot: number): number;
  compactBatch(): number;
  compactFill(slot: number): void;
  compactFinish(slot: number): number;
  compactEnd(): void;
  compactStatsBase(): number;
  compactPinnedBase(): number;
  compactOrderFree(z: number, order: number): number;
  compactCountDirect(success: number): void;
  problemsBase(): number;
  pageExtraRefs(pfn: number): number;
  isolateRange(start: number, end: number): void;
  undoIsolateRange(start: number, end: number): void;
  allocIsolatedRange(start: number, end: number, outerStart: number, outerEnd: number): number;
  offlineIsolatedRange(start: number, end: number): void;
  onlineRange(start: number, end: number): void;
  rangeOfflineState(start: number, end: number): number;
  releaseRange(start: number, n: number): void;
  rangeCollect(slot: number, start: number, end: number, mode: number, offline: number): number;
  rangeProblems(): number;
  rangeMovable(): number;
  rangeFirstNotIsolated(start: number, end: number): number;
  cmaCount(success: number): void;
  mmSetPolicy(mm: number, mode: number, nodes: number): void;
  mlockRange(mm: number, vpn: number, n: number, lock: number): void;
  doPagesStat(mm: number, n: number): void;
  addPagesForMigration(mm: number, n: number, node: number, moveAll: number): number;
  storeMoveStatus(q: number, node: number): number;
  numaStatusPtr(): number;
  queuePagesRange(mm: number, lo: number, hi: number, wantMask: number, moveAll: number, at: number, cap: number): number;
  putbackMovablePages(n: number): void;
  migrateQueuedSetup(slot: number, n: number): number;
  migrateAllocCopyPolicy(slot: number, n: number, mode: number, nodes: number, local: number): number;
  migrateQueuedOutcome(slot: number, n: number): void;
  numaVpnsPtr(): number;
  numaOutPtr(): number;
  numaResultPtr(): number;
}

const modules = new Map<WasmBuild, WebAssembly.Module>();
const sources = new Map<WasmBuild, Uint8Array<ArrayBuffer>>();

/** Supplies the Wasm bytes for a build (the browser bundle embeds them this way). */
export function setWasmBinary(build: WasmBuild, bytes: Uint8Array<ArrayBuffer>): void {
  sources.set(build, bytes);
  modules.delete(build);
}

/**
 * Compiles a build's Wasm ahead of use, off the main thread's critical path: browsers may
 * refuse to compile a large module synchronously, and instantiateCore then reuses this one.
 */
export async function loadWasm(build: WasmBuild, bytes?: Uint8Array<ArrayBuffer>): Promise<void> {
  if (bytes) setWasmBinary(build, bytes);
  if (!modules.has(build)) modules.set(build, await WebAssembly.compile(readBinary(build)));
}

function readBinary(build: WasmBuild): Uint8Array<ArrayBuffer> {
  const given = sources.get(build);
  if (given) return given;
  const g = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } };
  const fs = g.process?.getBuiltinModule?.("node:fs") as typeof import("node:fs") | undefined;
  if (!fs) throw new Error(`mmemu: no Wasm binary for the ${build} build; call setWasmBinary() first`);
  const url = new URL(`../build/${build}.wasm`, import.meta.url);
  try {
    return new Uint8Array(fs.readFileSync(url));
  } catch {
    throw new Error(`mmemu: ${url.pathname} is missing; run "npm run build:wasm"`);
  }
}

export function instantiateCore(build: WasmBuild): CoreExports {
  let mod = modules.get(build);
  if (!mod) {
    mod = new WebAssembly.Module(readBinary(build) as Uint8Array<ArrayBuffer>);
    modules.set(build, mod);
  }
  const { exports } = instantiateSync<Record<string, unknown>>(mod, {});
  return exports as unknown as CoreExports;
}
