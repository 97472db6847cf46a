// The page-state map: every frame of the machine (system RAM, then device memory)
// classified into one state (in Wasm: assembly/census.ts), counted per state, and per
// bucket of adjacent frames the most common state other than free.
import type { Machine } from "../machine.js";
import { L } from "../layout.js";

export const PAGE_STATES = ["free", "anon", "shmem", "kernel", "device-private", "device-coherent", "pinned", "migrating"] as const;
export type PageState = (typeof PAGE_STATES)[number];
const HEADER = PAGE_STATES.length * 4;

export interface Census {
  /** Frames per state, in PAGE_STATES order. */
  counts: number[];
  /** One digit per bucket: the index of its most common state other than free (free if all are). */
  map: string;
}

export class PageCensus {
  readonly frames: number;
  readonly buckets: number;
  readonly framesPerBucket: number;

  constructor(private readonly machine: Machine, maxBuckets = 512) {
    this.frames = machine.config.frames + machine.config.deviceFrames;
    this.framesPerBucket = Math.ceil(this.frames / maxBuckets);
    this.buckets = Math.ceil(this.frames / this.framesPerBucket);
  }

  /** Takes the census; uses the batch data area, so no batch may be pending. */
  take(): Census {
    const n = this.machine.core.pageCensus(this.framesPerBucket);
    if (n !== this.buckets) throw new Error(`page census wrote ${n} buckets, expected ${this.buckets}`);
    const base = this.machine.layout.slots[L.DATA]!;
    const buf = this.machine.core.memory.buffer;
    const counts = Array.from(new Uint32Array(buf, base, PAGE_STATES.length));
    const bytes = new Uint8Array(buf, base + HEADER, n);
    let map = "";
    for (let b = 0; b < n; b++) map += String.fromCharCode(48 + bytes[b]!);
    return { counts, map };
  }
}
