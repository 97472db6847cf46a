// Simulated time of a run: one clock, latency histograms, and (when asked) Chrome
// trace events — complete events ("ph": "X") with times in microseconds of simulated time.
import { Histogram } from "./histogram.js";

export const LATENCY_KINDS = ["cpu_fault", "device_fault", "device_access"] as const;
export type LatencyKind = (typeof LATENCY_KINDS)[number];

export interface TraceEvent {
  name: string;
  ph: "X" | "M" | "C";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

export class Timeline {
  /** Simulated nanoseconds since the run started. */
  now = 0;
  readonly latencies = Object.fromEntries(LATENCY_KINDS.map((k) => [k, new Histogram()])) as Record<LatencyKind, Histogram>;
  readonly events: TraceEvent[] = [];
  dropped = 0;
  private readonly tracks = new Map<number, string>();

  constructor(readonly tracing: boolean, readonly maxEvents = 200_000) {}

  advance(ns: number): void {
    this.now += ns;
  }

  latency(kind: LatencyKind, ns: number, times = 1): void {
    this.latencies[kind].record(ns, times);
  }

  nameTrack(tid: number, name: string): void {
    if (this.tracing) this.tracks.set(tid, name);
  }

  /** A slice on a track from `startNs` lasting `ns`. */
  span(tid: number, name: string, startNs: number, ns: number, args?: Record<string, unknown>): void {
    if (!this.tracing) return;
    if (this.events.length >= this.maxEvents) {
      this.dropped++;
      return;
    }
    const e: TraceEvent = { name, ph: "X", ts: startNs / 1000, dur: ns / 1000, pid: 1, tid };
    if (args) e.args = args;
    this.events.push(e);
  }

  /** A counter track sample (Perfetto draws these as a graph). */
  counter(name: string, values: Record<string, number>): void {
    if (!this.tracing || this.events.length >= this.maxEvents) return;
    this.events.push({ name, ph: "C", ts: this.now / 1000, pid: 1, tid: 0, args: values });
  }

  /** The trace-event JSON object (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU). */
  traceJSON(title: string): { traceEvents: TraceEvent[]; displayTimeUnit: "ns"; otherData: Record<string, unknown> } {
    const meta: TraceEvent[] = [{ name: "process_name", ph: "M", ts: 0, pid: 1, tid: 0, args: { name: title } }];
    for (const [tid, name] of [...this.tracks].sort((a, b) => a[0] - b[0])) {
      meta.push({ name: "thread_name", ph: "M", ts: 0, pid: 1, tid, args: { name } });
      meta.push({ name: "thread_sort_index", ph: "M", ts: 0, pid: 1, tid, args: { sort_index: tid } });
    }
    return { traceEvents: [...meta, ...this.events], displayTimeUnit: "ns", otherData: { clock: "simulated", droppedEvents: this.dropped } };
  }
}
