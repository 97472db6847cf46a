// A set of disjoint pfn intervals, each with a private value: the general bookkeeping of
// the pin control subsystem, where a batch pin of a run of pages is one interval (seed 003's
// answer to "many pinned pages are done in groups").

export interface Interval<T> {
  start: number;
  /** One past the last pfn. */
  end: number;
  priv: T;
}

export class IntervalSet<T> {
  /** Sorted by start, disjoint. */
  private readonly list: Interval<T>[] = [];
  private pages = 0;

  /** Pages covered. */
  get size(): number {
    return this.pages;
  }

  get intervals(): readonly Readonly<Interval<T>>[] {
    return this.list;
  }

  /** Whether any pfn of [start, end) is already in the set. */
  overlaps(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    return i < this.list.length && this.list[i]!.start < end;
  }

  /** Whether every pfn of [start, end) is in the set. */
  covers(start: number, end: number): boolean {
    let at = start;
    for (let i = this.firstEndingAfter(start); i < this.list.length && at < end; i++) {
      const iv = this.list[i]!;
      if (iv.start > at) return false;
      at = iv.end;
    }
    return at >= end;
  }

  /** The interval holding pfn, if any. */
  find(pfn: number): Readonly<Interval<T>> | undefined {
    const i = this.firstEndingAfter(pfn);
    const iv = this.list[i];
    return iv && iv.start <= pfn ? iv : undefined;
  }

  /** Adds [start, end); the caller made sure it overlaps nothing. */
  add(start: number, end: number, priv: T): void {
    const i = this.firstEndingAfter(start);
    this.list.splice(i, 0, { start, end, priv });
    this.pages += end - start;
  }

  /** Removes [start, end); the caller made sure the set covers it. */
  remove(start: number, end: number): void {
    let i = this.firstEndingAfter(start);
    while (i < this.list.length && this.list[i]!.start < end) {
      const iv = this.list[i]!;
      const pieces: Interval<T>[] = [];
      if (iv.start < start) pieces.push({ start: iv.start, end: start, priv: iv.priv });
      if (iv.end > end) pieces.push({ start: end, end: iv.end, priv: iv.priv });
      this.pages -= Math.min(iv.end, end) - Math.max(iv.start, start);
      this.list.splice(i, 1, ...pieces);
      if (iv.end >= end) break;
      i += pieces.length;
    }
  }

  /** Index of the first interval whose end is above pfn. */
  private firstEndingAfter(pfn: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid]!.end <= pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
