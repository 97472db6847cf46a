// mmu interval notifiers (include/linux/mmu_notifier.h): a driver subscribes to a
// range of an mm; every path that changes PTEs there calls its invalidate first.
import type { Process } from "../process.js";
import { fail } from "../errors.js";

export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EXCLUSIVE = 7;
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

export const MMU_NOTIFY_EVENT_NAMES = ["UNMAP", "CLEAR", "PROTECTION_VMA", "PROTECTION_PAGE", "SOFT_DIRTY", "RELEASE", "MIGRATE", "EXCLUSIVE"] as const;

export interface MmuNotifierRange {
  mm: Process;
  /** Byte addresses, end exclusive. */
  start: number;
  end: number;
  flags: number;
  event: number;
  /** Who caused it (migrate_vma's pgmap_owner, make_device_exclusive's owner); drivers skip their own. */
  owner: unknown;
}

export interface MmuIntervalNotifierOps {
  /** Must call `sub.setSeq(curSeq)` under the driver's lock; may return false only when the range is not blockable. */
  invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean;
}

export class MmuIntervalNotifier {
  /** @internal */ invalidateSeq = 0;
  /** @internal */ subscriptions: MmuSubscriptions | null = null;

  constructor(
    readonly mm: Process,
    /** First byte covered. */
    readonly start: number,
    /** One past the last byte covered. */
    readonly end: number,
    readonly ops: MmuIntervalNotifierOps,
  ) {}

  /** mmu_interval_set_seq: called by invalidate, under the driver lock. */
  setSeq(curSeq: number): void {
    if (typeof curSeq !== "number" || !Number.isSafeInteger(curSeq)) fail("EINVAL", "mmu_interval_set_seq", `sequence ${String(curSeq)} is not an integer`, curSeq);
    this.invalidateSeq = curSeq;
  }

  /** mmu_interval_read_begin. */
  readBegin(): number {
    return this.invalidateSeq;
  }

  /** mmu_interval_read_retry: true when an invalidation ran since readBegin returned `seq`. */
  readRetry(seq: number): boolean {
    return this.invalidateSeq !== seq;
  }

  /** mmu_interval_check_retry, the lockless form. */
  checkRetry(seq: number): boolean {
    return this.invalidateSeq !== seq;
  }
}

/** struct mmu_notifier_subscriptions: the interval notifiers of one mm. */
export class MmuSubscriptions {
  private subs: MmuIntervalNotifier[] = [];
  /** Odd while an invalidation runs. */
  private invalidateSeq = 2;
  private active = 0;
  private deferred: { sub: MmuIntervalNotifier; insert: boolean }[] = [];

  get size(): number {
    return this.subs.length;
  }

  insert(sub: MmuIntervalNotifier): void {
    sub.subscriptions = this;
    if (this.active > 0) {
      // An invalidation is running and may cover the new range: start out invalidated.
      sub.invalidateSeq = this.invalidateSeq;
      this.deferred.push({ sub, insert: true });
      return;
    }
    sub.invalidateSeq = this.invalidateSeq - 1;
    this.subs.push(sub);
  }

  remove(sub: MmuIntervalNotifier): void {
    if (this.active > 0) this.deferred.push({ sub, insert: false });
    else this.subs = this.subs.filter((s) => s !== sub);
    sub.subscriptions = null;
  }

  /** Runs every overlapping subscription's invalidate; false if one refused (not blockable). */
  invalidate(range: MmuNotifierRange): boolean {
    const hit = this.subs.filter((s) => s.start < range.end && range.start < s.end);
    if (hit.length === 0) return true;
    this.active++;
    this.invalidateSeq |= 1;
    const cur = this.invalidateSeq;
    let ok = true;
    try {
      const blockable = (range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
      for (const s of hit) {
        // An injected fault: the driver's trylock fails, so its invalidate returns false untouched.
        if (!blockable && range.mm.machineOf().inject.notifierRefuses(s)) {
          ok = false;
          continue;
        }
        if (!s.ops.invalidate(s, range, cur)) ok = false;
      }
    } finally {
      this.active--;
      if (this.active === 0) {
        this.invalidateSeq++;
        for (const d of this.deferred) {
          if (d.insert) this.subs.push(d.sub);
          else this.subs = this.subs.filter((s) => s !== d.sub);
        }
        this.deferred = [];
      }
    }
    return ok;
  }
}
