// A log-linear latency histogram (as HdrHistogram, coarser): 8 buckets per power of two
// from 1 ns, so any percentile is within 12.5% and merging two runs is adding counts.
const SUB = 8;
const POWERS = 48;

export interface HistogramData {
  /** Bucket index → count, only non-empty buckets. */
  buckets: Record<string, number>;
  count: number;
  sumNs: number;
  maxNs: number;
}

export class Histogram {
  readonly counts = new Float64Array(SUB * POWERS);
  count = 0;
  sumNs = 0;
  maxNs = 0;

  static bucketOf(ns: number): number {
    if (ns < 1) return 0;
    const p = Math.min(POWERS - 1, Math.floor(Math.log2(ns)));
    const base = 2 ** p;
    return p * SUB + Math.min(SUB - 1, Math.floor(((ns - base) / base) * SUB));
  }

  /** The lower edge of a bucket, in ns. */
  static bucketLow(b: number): number {
    const p = Math.floor(b / SUB);
    return 2 ** p * (1 + (b % SUB) / SUB);
  }

  record(ns: number, times = 1): void {
    if (times <= 0) return;
    this.counts[Histogram.bucketOf(ns)]! += times;
    this.count += times;
    this.sumNs += ns * times;
    if (ns > this.maxNs) this.maxNs = ns;
  }

  /** The p-th percentile (0..100): the upper edge of the bucket that holds it, capped at the max. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b]!;
      if (seen >= rank && this.counts[b]! > 0) return Math.min(this.maxNs, Histogram.bucketLow(b + 1));
    }
    return this.maxNs;
  }

  toJSON(): HistogramData {
    const buckets: Record<string, number> = {};
    this.counts.forEach((c, b) => {
      if (c > 0) buckets[b] = c;
    });
    return { buckets, count: this.count, sumNs: this.sumNs, maxNs: this.maxNs };
  }

  static from(d: HistogramData): Histogram {
    const h = new Histogram();
    h.add(d);
    return h;
  }

  add(d: HistogramData): void {
    for (const [b, c] of Object.entries(d.buckets)) this.counts[Number(b)]! += c;
    this.count += d.count;
    this.sumNs += d.sumNs;
    this.maxNs = Math.max(this.maxNs, d.maxNs);
  }
}
