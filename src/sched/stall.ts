// Stall time of CPU accesses: how long each access waited for a migration (asleep in
// migration_entry_wait, and the faults that put it there), readers and writers apart.
// Accesses that did not wait count as stalls of 0 in the means and percentiles; the
// histogram holds the ones that waited.
import { Histogram, type HistogramData } from "../stress/histogram.js";

export interface StallSummary {
  accesses: number;
  /** Accesses that waited at all. */
  stalled: number;
  totalNs: number;
  /** Per access, over all accesses. */
  meanNs: number;
  p50Ns: number;
  p99Ns: number;
  maxNs: number;
  /** The stalls of the accesses that waited. */
  histogram: HistogramData;
}

export class StallRecord {
  accesses = 0;
  readonly stalls = new Histogram();

  record(ns: number): void {
    this.accesses++;
    if (ns > 0) this.stalls.record(ns);
  }

  /** Adds another record's accesses and stalls (runs of several seeds). */
  add(s: StallSummary): void {
    this.accesses += s.accesses;
    this.stalls.add(s.histogram);
  }

  /** The p-th percentile (0..100) over all accesses: 0 while the rank falls among those that did not wait. */
  percentile(p: number): number {
    const h = this.stalls;
    const rank = Math.ceil((p / 100) * this.accesses);
    const zeros = this.accesses - h.count;
    if (rank <= zeros) return 0;
    let seen = zeros;
    for (let b = 0; b < h.counts.length; b++) {
      seen += h.counts[b]!;
      if (seen >= rank && h.counts[b]! > 0) return Math.min(h.maxNs, Histogram.bucketLow(b + 1));
    }
    return h.maxNs;
  }

  summary(): StallSummary {
    const h = this.stalls;
    return {
      accesses: this.accesses, stalled: h.count, totalNs: h.sumNs, meanNs: this.accesses ? h.sumNs / this.accesses : 0,
      p50Ns: this.percentile(50), p99Ns: this.percentile(99), maxNs: h.maxNs, histogram: h.toJSON(),
    };
  }
}

/** Stalls of reads and of writes. */
export class StallStats {
  readonly read = new StallRecord();
  readonly write = new StallRecord();

  record(write: boolean, ns: number): void {
    (write ? this.write : this.read).record(ns);
  }
}
