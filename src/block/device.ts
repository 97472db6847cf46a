// An emulated block device: submit_bio reads and writes between sectors and machine frames,
// a volatile write cache that REQ_PREFLUSH / REQ_FUA make durable, a power failure that loses
// it, per-sector media write counts, injected I/O errors, and each request's simulated cost.
import type { Machine } from "../machine.js";
import { L } from "../layout.js";
import { fail, MmError } from "../errors.js";
import { ZERO_PFN } from "../page.js";
import { Media } from "./media.js";
import { ErrorRules, type BlockOp } from "./faults.js";
import type { BlockDevice, IoStats, InjectedError, Wear } from "./types.js";

/** Bytes per sector (one page). */
export const BLOCK_SECTOR_BYTES = 4096;

export interface ResolvedBlockOptions {
  sectors: number;
  volatileCache: boolean;
  readLatencyNs: number;
  writeLatencyNs: number;
  bytesPerNs: number;
}

const OP_NAME = { read: "REQ_OP_READ", write: "REQ_OP_WRITE", flush: "REQ_PREFLUSH" } as const;

export class EmulatedBlockDevice implements BlockDevice {
  readonly nrSectors: number;
  readonly volatileCache: boolean;
  private readonly media: Media;
  /** Sectors written but not yet durable, with their content. */
  private readonly cache = new Map<number, Uint32Array>();
  /** @internal Also holds machine.inject's blockio rules. */
  readonly rules = new ErrorRules();
  private readonly st: IoStats = { reads: 0, writes: 0, flushes: 0, sectorsRead: 0, sectorsWritten: 0, busyNs: 0, errors: 0 };
  /** u32 words per sector in the machine's content mode, and where frame 0's words start. */
  private readonly words: number;
  private readonly base: number;
  private view: Uint32Array | null = null;

  /** @internal Use machine.addBlockDevice. */
  constructor(
    private readonly machine: Machine,
    readonly name: string,
    private readonly opts: ResolvedBlockOptions,
  ) {
    this.nrSectors = opts.sectors;
    this.volatileCache = opts.volatileCache;
    const tags = machine.config.content === "tags";
    this.words = tags ? 2 : BLOCK_SECTOR_BYTES / 4;
    this.base = machine.layout.slots[tags ? L.TAGS : L.FRAMES]! / 4;
    this.media = new Media(this.words);
  }

  get stats(): IoStats {
    return { ...this.st };
  }

  get clockNs(): number {
    return this.st.busyNs;
  }

  /** The machine's memory as u32 words (the buffer never grows after init; re-viewed if it did). */
  private mem(): Uint32Array {
    const buf = this.machine.core.memory.buffer;
    if (this.view === null || this.view.buffer !== buf) this.view = new Uint32Array(buf);
    return this.view;
  }

  read(sectors: ArrayLike<number>, pfns: ArrayLike<number>): number {
    const n = this.validate("read", sectors, pfns);
    if (n === 0) return 0;
    this.injected("read", (a, b) => touches(sectors, n, a, b));
    const mem = this.mem();
    const w = this.words;
    for (let i = 0; i < n; i++) {
      const s = sectors[i]!;
      const at = this.base + pfns[i]! * w;
      const c = this.cache.get(s);
      if (c) mem.set(c, at);
      else this.media.load(s, mem, at);
    }
    const ns = this.cost(this.opts.readLatencyNs, n);
    this.st.reads++;
    this.st.sectorsRead += n;
    return ns;
  }

  write(sectors: ArrayLike<number>, pfns: ArrayLike<number>, opts: { fua?: boolean } = {}): number {
    const n = this.validate("write", sectors, pfns);
    if (opts === null || typeof opts !== "object" || Array.isArray(opts)) fail("EINVAL", "submit_bio", `write options must be an object like { fua: true }`, opts);
    const fua = opts.fua ?? false;
    if (typeof fua !== "boolean") fail("EINVAL", "submit_bio", `fua must be a boolean, got ${String(fua)}`, fua);
    if (n === 0) return 0;
    this.injected("write", (a, b) => touches(sectors, n, a, b));
    const mem = this.mem();
    const w = this.words;
    const durable = fua || !this.volatileCache;
    for (let i = 0; i < n; i++) {
      const s = sectors[i]!;
      const at = this.base + pfns[i]! * w;
      if (durable) {
        // REQ_FUA: this data goes to the media; an older cached copy of the sector is now stale.
        this.media.store(s, mem, at);
        this.cache.delete(s);
      } else {
        let c = this.cache.get(s);
        if (!c) this.cache.set(s, (c = new Uint32Array(w)));
        c.set(mem.subarray(at, at + w));
      }
    }
    const ns = this.cost(this.opts.writeLatencyNs, n);
    this.st.writes++;
    this.st.sectorsWritten += n;
    return ns;
  }

  flush(): number {
    this.injected("flush", (a, b) => {
      for (const s of this.cache.keys()) if (s >= a && s < b) return true;
      return false;
    });
    this.st.flushes++;
    // Without a volatile cache the block layer completes a flush at once (nothing to make durable).
    if (!this.volatileCache) return 0;
    for (const [s, c] of this.cache) this.media.store(s, c, 0);
    this.cache.clear();
    const ns = this.opts.writeLatencyNs;
    this.st.busyNs += ns;
    return ns;
  }

  powerFail(): void {
    this.cache.clear();
  }

  peek(sector: number): Uint8Array | bigint {
    this.checkSector("peek", sector);
    const c = this.cache.get(sector);
    if (c) return this.content(c, 0);
    return this.peekDurable(sector);
  }

  peekDurable(sector: number): Uint8Array | bigint {
    this.checkSector("peekDurable", sector);
    const tmp = new Uint32Array(this.words);
    this.media.load(sector, tmp, 0);
    return this.content(tmp, 0);
  }

  writeCount(sector: number): number {
    this.checkSector("writeCount", sector);
    return this.media.writeCount(sector);
  }

  wear(): Wear {
    return this.media.wear(this.nrSectors);
  }

  /** Sectors whose latest write is still only in the volatile cache. */
  get cachedSectors(): number {
    return this.cache.size;
  }

  injectError(e: InjectedError): void {
    this.rules.inject("injectError", this.name, this.nrSectors, e);
  }

  clearErrors(): void {
    this.rules.clear();
  }

  private cost(latency: number, n: number): number {
    const ns = latency + (n * BLOCK_SECTOR_BYTES) / this.opts.bytesPerNs;
    this.st.busyNs += ns;
    return ns;
  }

  private injected(op: BlockOp, touch: (start: number, end: number) => boolean): void {
    if (!this.rules.take(op, touch)) return;
    this.st.errors++;
    throw new MmError("EIO", "submit_bio", `${OP_NAME[op]} on ${this.name} failed: I/O error (injected); nothing was transferred`, op);
  }

  private content(words: Uint32Array, at: number): Uint8Array | bigint {
    if (this.words === 2) return (BigInt(words[at + 1]!) << 32n) | BigInt(words[at]!);
    return new Uint8Array(words.buffer.slice(words.byteOffset + at * 4, words.byteOffset + (at + this.words) * 4));
  }

  private checkSector(fn: string, sector: number): void {
    if (!Number.isInteger(sector) || sector < 0) fail("EINVAL", fn, `sector ${String(sector)} is not a non-negative integer`, sector);
    if (sector >= this.nrSectors) fail("EINVAL", fn, `sector ${sector} is beyond the end of device ${this.name} (${this.nrSectors} sectors)`, sector);
  }

  /** Checks a request before anything moves; returns its length. */
  private validate(op: BlockOp, sectors: ArrayLike<number>, pfns: ArrayLike<number>): number {
    const fn = "submit_bio";
    if (!isArrayLike(sectors)) fail("EINVAL", fn, `sectors must be an array of sector numbers`, sectors);
    if (!isArrayLike(pfns)) fail("EINVAL", fn, `pfns must be an array of page frame numbers`, pfns);
    const n = sectors.length;
    if (pfns.length !== n) fail("EINVAL", fn, `${OP_NAME[op]} has ${n} sectors but ${pfns.length} pfns; they go in pairs`, pfns.length);
    const nframes = this.machine.config.frames + this.machine.config.deviceFrames;
    for (let i = 0; i < n; i++) {
      const s = sectors[i];
      if (typeof s !== "number" || !Number.isInteger(s) || s < 0)
        fail("EINVAL", fn, `sector ${String(s)} (entry ${i}) is not a non-negative integer`, s);
      if (s >= this.nrSectors) fail("EINVAL", fn, `sector ${s} is beyond the end of device ${this.name} (${this.nrSectors} sectors)`, s);
      const p = pfns[i];
      if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p >= nframes)
        fail("EINVAL", fn, `pfn ${String(p)} (entry ${i}) is not a frame of this machine (0..${nframes - 1})`, p);
      if (op === "read" && p === ZERO_PFN) fail("EINVAL", fn, `pfn ${ZERO_PFN} is the shared zero page; a read may not overwrite it`, p);
    }
    return n;
  }
}

function isArrayLike(x: unknown): x is ArrayLike<number> {
  return x !== null && typeof x === "object" && typeof (x as ArrayLike<number>).length === "number";
}

function touches(sectors: ArrayLike<number>, n: number, start: number, end: number): boolean {
  for (let i = 0; i < n; i++) {
    const s = sectors[i]!;
    if (s >= start && s < end) return true;
  }
  return false;
}
