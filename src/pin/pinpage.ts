// The pin control subsystem of seed 003, an option beside plain pins: subsystems register
// with callbacks, hold pages (PG_pin, a plain reference each, several subsystems may hold one
// page), in batches kept as intervals, and page migration (migrate_pages, compaction, CMA,
// offline: everything over migrateDevicePfns) asks every holder to move to the new page
// instead of failing on the references, as the RFC's unmap_and_move_pinpage does.
import type { Machine } from "../machine.js";
import type { MigrateVma } from "../migrate.js";
import { MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_SHIFT } from "../migrate.js";
import { MmError, fail } from "../errors.js";
import { IntervalSet } from "./intervals.js";
import { FOLL_WRITE } from "./flags.js";
import type { Process } from "../process.js";

export interface PinpageOps<T = unknown> {
  /**
   * The page `pfn` is moving to `newPfn` (locked, its contents copied): point your data at the
   * new page. Return 0, or a negative errno to refuse (the page stays; every holder that had
   * moved is asked to move back). Also called with the two swapped for that move back.
   */
  migrate(sys: PinpageSystem<T>, pfn: number, newPfn: number, priv: T | undefined): number;
  /** Own bookkeeping instead of the general interval sets (the RFC's add_page/del_page/find_page). */
  addPage?(sys: PinpageSystem<T>, pfn: number, priv: T | undefined): number;
  delPage?(sys: PinpageSystem<T>, pfn: number): number;
  findPage?(sys: PinpageSystem<T>, pfn: number): boolean;
}

const BAD_WHY = ["", "is not a frame of this machine", "is free", "is reserved or poisoned", "is device memory", "has 255 holders already", "is not held"];

export class PinpageSystem<T = unknown> {
  /** @internal The general bookkeeping (unused when the ops bring their own). */
  readonly held = new IntervalSet<T | undefined>();
  private live = true;
  /** Pages held, whichever books keep them. */
  private holds = 0;

  /** @internal */
  constructor(
    private readonly machine: Machine,
    readonly name: string,
    readonly ops: PinpageOps<T>,
  ) {}

  /** Pages this subsystem holds. */
  get size(): number {
    return this.holds;
  }

  /** find_page: whether this subsystem holds pfn. */
  findPage(pfn: number): boolean {
    if (this.ops.findPage) return this.ops.findPage(this, pfn) === true;
    return this.held.find(pfn) !== undefined;
  }

  /** The private value a held page was pinned with. */
  privOf(pfn: number): T | undefined {
    return this.held.find(pfn)?.priv;
  }

  /** set_pinpage for one page. */
  setPinpage(pfn: number, priv?: T): void {
    this.setPinpages([pfn], priv);
  }

  /**
   * set_pinpage in one batch: a hold on each page (in use, system RAM, not held by this
   * subsystem yet). All or none: a bad entry throws EINVAL (EEXIST when held already, EBUSY
   * past 255 holders) and nothing is held.
   */
  setPinpages(pfns: ArrayLike<number>, priv?: T): void {
    const fn = "set_pinpage";
    const list = this.list(fn, pfns);
    for (let i = 0; i < list.length; i++) {
      if (this.findPage(list[i]!)) fail("EEXIST", fn, `pfns[${i}] = ${list[i]} is held by ${this.name} already`, list[i]);
    }
    const core = this.machine.core;
    this.machine.gupInView(list.length).set(list);
    const bad = core.pinpageHold(list.length);
    if (bad >= 0) {
      const why = core.pinpageBadWhy();
      fail(why === 5 ? "EBUSY" : "EINVAL", fn, `pfns[${bad}] = ${list[bad]} ${BAD_WHY[why]}; nothing was held`, list[bad]);
    }
    let added = 0;
    try {
      if (this.ops.addPage) {
        for (; added < list.length; added++) {
          const r = this.ops.addPage(this, list[added]!, priv);
          if (r !== 0) throw new MmError("ENOMEM", fn, `${this.name}'s addPage refused pfn ${list[added]} (${String(r)}); nothing was held`, list[added]);
        }
      } else {
        for (const [start, end] of runsOf(list)) this.held.add(start, end, priv);
      }
      this.holds += list.length;
    } catch (err) {
      for (let i = 0; i < added; i++) this.ops.delPage?.(this, list[i]!);
      this.machine.gupInView(list.length).set(list);
      core.pinpageRelease(list.length);
      this.machine.settle();
      throw err;
    }
  }

  /** Faults in [addr, addr + npages pages) of proc writable and holds its pages. Returns the pfns. */
  pinUserRange(proc: Process, addr: number, npages: number, priv?: T): Uint32Array {
    const pfns = this.machine.getUserPages(proc, addr, npages, FOLL_WRITE).slice();
    try {
      this.setPinpages(pfns, priv);
    } finally {
      this.machine.releasePages(pfns);
    }
    return pfns;
  }

  /** clear_pinpage for one page. */
  clearPinpage(pfn: number): void {
    this.clearPinpages([pfn]);
  }

  /** clear_pinpage in one batch; every page must be held by this subsystem (EINVAL, nothing dropped). */
  clearPinpages(pfns: ArrayLike<number>): void {
    const fn = "clear_pinpage";
    const list = this.list(fn, pfns);
    for (let i = 0; i < list.length; i++) {
      if (!this.findPage(list[i]!)) fail("EINVAL", fn, `pfns[${i}] = ${list[i]} is not held by ${this.name}; nothing was dropped`, list[i]);
    }
    if (this.ops.delPage) for (const pfn of list) this.ops.delPage(this, pfn);
    else for (const [start, end] of runsOf(list)) this.held.remove(start, end);
    this.holds -= list.length;
    this.machine.gupInView(list.length).set(list);
    const bad = this.machine.core.pinpageRelease(list.length);
    if (bad >= 0) throw new MmError("EFAULT", fn, `pfn ${list[bad]} lost its hold behind ${this.name}'s back`, list[bad]);
    this.machine.settle();
  }

  /** Every held pfn, ascending (general bookkeeping). */
  pages(): number[] {
    const out: number[] = [];
    for (const iv of this.held.intervals) for (let p = iv.start; p < iv.end; p++) out.push(p);
    return out;
  }

  /** Unregisters; EBUSY while the subsystem holds pages. */
  unregister(): void {
    if (!this.live) return;
    if (this.holds > 0) fail("EBUSY", "unregister_pinpage", `${this.name} still holds ${this.holds} pages`, this.holds);
    this.live = false;
    this.machine.pinpageSystems.splice(this.machine.pinpageSystems.indexOf(this as PinpageSystem), 1);
  }

  /** @internal Moves the bookkeeping of pfn to newPfn. */
  /** @internal A held page moved (askHolders): its interval entry follows it. */
  rehome(pfn: number, newPfn: number): void {
    if (this.ops.delPage) return;
    const priv = this.held.find(pfn)?.priv;
    this.held.remove(pfn, pfn + 1);
    this.held.add(newPfn, newPfn + 1, priv);
  }

  private list(fn: string, pfns: ArrayLike<number>): number[] {
    if (!this.live) fail("EINVAL", fn, `${this.name} is unregistered`, this.name);
    const n = pfns?.length;
    if (!Number.isInteger(n) || n <= 0 || n > 65536) fail("EINVAL", fn, `between 1 and 65536 pfns are needed, got ${String(n)}`, pfns);
    const list = Array.from(pfns);
    const seen = new Set<number>();
    const limit = this.machine.config.frames + this.machine.config.deviceFrames;
    for (let i = 0; i < list.length; i++) {
      const pfn = list[i]!;
      if (!Number.isInteger(pfn) || pfn < 0 || pfn >= limit) fail("EINVAL", fn, `pfns[${i}] = ${String(pfn)} is not a frame of this machine`, pfn);
      if (seen.has(pfn)) fail("EINVAL", fn, `pfns[${i}] = ${pfn} repeats`, pfn);
      seen.add(pfn);
    }
    return list;
  }
}

/** register_pinpage. */
export function registerPinpage<T>(m: Machine, name: string, ops: PinpageOps<T>): PinpageSystem<T> {
  const fn = "register_pinpage";
  if (typeof name !== "string" || name.length === 0) fail("EINVAL", fn, "a subsystem needs a name", name);
  if (typeof ops?.migrate !== "function") fail("EINVAL", fn, `${name}: ops.migrate must be a function`, ops);
  const own = [ops.addPage, ops.delPage, ops.findPage].filter((f) => typeof f === "function").length;
  if (own !== 0 && own !== 3) fail("EINVAL", fn, `${name}: give addPage, delPage and findPage together, or none`, ops);
  if (m.pinpageSystems.some((s) => s.name === name)) fail("EEXIST", fn, `a subsystem named ${name} is registered already`, name);
  const sys = new PinpageSystem<T>(m, name, ops);
  m.pinpageSystems.push(sys as PinpageSystem);
  return sys;
}

const pfnOf = (e: bigint): number => (e & MIGRATE_PFN_VALID ? Number(e >> MIGRATE_PFN_SHIFT) : -1);

/** What askHolders did, for settleHolders. */
export interface HolderMoves {
  entries: { i: number; pfn: number; newPfn: number; holders: PinpageSystem[] }[];
}

/**
 * Before a pfn-list migration's pages step: every holder of each collected PG_pin page moves
 * to its new page; a refusal moves the others back and takes the entry out of the migration.
 */
export function askHolders(m: Machine, mig: MigrateVma, src: BigUint64Array, dst: BigUint64Array): HolderMoves {
  const moves: HolderMoves = { entries: [] };
  if (m.pinpageSystems.length === 0) return moves;
  for (let i = 0; i < mig.npages; i++) {
    const e = src[i]!;
    if (!(e & MIGRATE_PFN_MIGRATE)) continue;
    const pfn = pfnOf(e);
    const newPfn = pfnOf(dst[i]!);
    if (pfn < 0 || newPfn < 0 || m.core.pagePinpageHolds(pfn) === 0) continue;
    // A find_page that throws, like a refusal, keeps the page where it is.
    let holders: PinpageSystem[] = [];
    let refused = m.pagemapOf(newPfn) !== undefined;
    try {
      if (!refused) holders = m.pinpageSystems.filter((s) => s.findPage(pfn));
    } catch {
      refused = true;
    }
    const moved: PinpageSystem[] = [];
    for (const sys of refused ? [] : holders) {
      const priv = sys.privOf(pfn);
      if (!callMigrate(sys, pfn, newPfn, priv)) {
        refused = true;
        break;
      }
      moved.push(sys);
    }
    if (refused) {
      for (const sys of moved) callMigrate(sys, newPfn, pfn, sys.privOf(pfn));
      src[i] = e & ~MIGRATE_PFN_MIGRATE;
      continue;
    }
    for (const sys of holders) sys.rehome(pfn, newPfn);
    moves.entries.push({ i, pfn, newPfn, holders });
  }
  return moves;
}

/**
 * After the pages step (or the end): holders of pages that did not move after all go back
 * to the old page, and leave `moves`.
 */
export function settleHolders(moves: HolderMoves, migrated: (i: number) => boolean): void {
  moves.entries = moves.entries.filter(({ i, pfn, newPfn, holders }) => {
    if (migrated(i)) return true;
    for (const sys of holders) {
      callMigrate(sys, newPfn, pfn, sys.privOf(newPfn));
      sys.rehome(newPfn, pfn);
    }
    return false;
  });
}

function callMigrate(sys: PinpageSystem, from: number, to: number, priv: unknown): boolean {
  try {
    return sys.ops.migrate(sys, from, to, priv) === 0;
  } catch {
    return false;
  }
}

function* runsOf(list: number[]): Generator<[number, number]> {
  const sorted = [...list].sort((a, b) => a - b);
  let i = 0;
  while (i < sorted.length) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[j - 1]! + 1) j++;
    yield [sorted[i]!, sorted[j - 1]! + 1];
    i = j;
  }
}
