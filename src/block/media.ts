// A device's durable storage: sectors in lazily allocated chunks of u32 words (1024 per sector
// in bytes mode, 2 per sector — the tag's halves — in tags mode), and a media write count per
// sector. A chunk never written reads as zeros and costs nothing.

const CHUNK_SHIFT = 8;
const CHUNK = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK - 1;

interface Chunk {
  data: Uint32Array;
  writes: Uint32Array;
}

export class Media {
  private readonly chunks = new Map<number, Chunk>();
  private total = 0;
  private touched = 0;
  private max = 0;

  constructor(readonly words: number) {}

  private chunk(sector: number): Chunk {
    const id = sector >>> CHUNK_SHIFT;
    let c = this.chunks.get(id);
    if (!c) {
      c = { data: new Uint32Array(CHUNK * this.words), writes: new Uint32Array(CHUNK) };
      this.chunks.set(id, c);
    }
    return c;
  }

  /** Copies the sector's words into dst at dstAt (zeros for a sector never written). */
  load(sector: number, dst: Uint32Array, dstAt: number): void {
    const w = this.words;
    const c = this.chunks.get(sector >>> CHUNK_SHIFT);
    if (!c) {
      dst.fill(0, dstAt, dstAt + w);
      return;
    }
    const at = (sector & CHUNK_MASK) * w;
    if (w === 2) {
      dst[dstAt] = c.data[at]!;
      dst[dstAt + 1] = c.data[at + 1]!;
    } else dst.set(c.data.subarray(at, at + w), dstAt);
  }

  /** Writes the sector from src at srcAt; one media write. */
  store(sector: number, src: Uint32Array, srcAt: number): void {
    const w = this.words;
    const c = this.chunk(sector);
    const i = sector & CHUNK_MASK;
    const at = i * w;
    if (w === 2) {
      c.data[at] = src[srcAt]!;
      c.data[at + 1] = src[srcAt + 1]!;
    } else c.data.set(src.subarray(srcAt, srcAt + w), at);
    const n = ++c.writes[i]!;
    if (n === 1) this.touched++;
    if (n > this.max) this.max = n;
    this.total++;
  }

  writeCount(sector: number): number {
    const c = this.chunks.get(sector >>> CHUNK_SHIFT);
    return c ? c.writes[sector & CHUNK_MASK]! : 0;
  }

  wear(nrSectors: number): { max: number; mean: number; sectorsWritten: number; sectorsTouched: number } {
    return { max: this.max, mean: this.total / nrSectors, sectorsWritten: this.total, sectorsTouched: this.touched };
  }
}
