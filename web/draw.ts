// The live picture of a run's memory: a grid of frame buckets coloured by page state (system
// RAM first, then each device's memory, with a dark edge where one begins), and the map over
// the run: x is the share of the run's ops done, y the bucket, as in the HTML report's plot.
import { STATE_COLORS, type Census } from "./mmemu.js";

export { STATE_COLORS };


export interface MapLayout {
  buckets: number;
  framesPerBucket: number;
  /** Frame numbers where a memory range starts (each device's memory after system RAM). */
  rangeStarts: number[];
}

const COLUMNS = 32;
const GAP = 1;

export class MemoryPicture {
  private readonly rgb: [number, number, number][];
  /** Strip columns drawn so far. */
  private column = 0;
  draws = 0;

  constructor(
    private readonly grid: HTMLCanvasElement,
    private readonly strip: HTMLCanvasElement,
    private readonly states: readonly string[],
    private readonly layout: MapLayout,
  ) {
    this.rgb = states.map((s) => hexToRgb(STATE_COLORS[s] ?? "#000000"));
    const rows = Math.ceil(layout.buckets / COLUMNS);
    const cell = Math.floor(grid.width / COLUMNS);
    grid.height = rows * cell;
    grid.getContext("2d")!.clearRect(0, 0, grid.width, grid.height);
    const s = strip.getContext("2d")!;
    s.fillStyle = STATE_COLORS.free!;
    s.fillRect(0, 0, strip.width, strip.height);
  }

  /** Draws the census taken when `done` (0..1) of the run's ops had run. */
  draw(census: Census, done: number): void {
    this.drawGrid(census.map);
    this.drawStrip(census.map, Math.ceil(Math.min(1, Math.max(0, done)) * this.strip.width));
    this.draws++;
  }

  private drawGrid(map: string): void {
    const ctx = this.grid.getContext("2d")!;
    const cell = Math.floor(this.grid.width / COLUMNS);
    const { framesPerBucket, rangeStarts } = this.layout;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.grid.width, this.grid.height);
    for (let b = 0; b < map.length; b++) {
      const x = (b % COLUMNS) * cell;
      const y = Math.floor(b / COLUMNS) * cell;
      ctx.fillStyle = STATE_COLORS[this.states[map.charCodeAt(b) - 48]!] ?? "#000";
      ctx.fillRect(x + GAP, y + GAP, cell - GAP, cell - GAP);
    }
    // A dark left edge on the bucket where each range (device memory) begins.
    ctx.fillStyle = "#111";
    for (const start of rangeStarts) {
      const b = Math.floor(start / framesPerBucket);
      ctx.fillRect((b % COLUMNS) * cell, Math.floor(b / COLUMNS) * cell, 3, cell + GAP);
    }
  }

  /** Fills the strip's columns up to `upTo` with this census (the ops since the last draw). */
  private drawStrip(map: string, upTo: number): void {
    if (upTo <= this.column) return;
    const ctx = this.strip.getContext("2d")!;
    const height = this.strip.height;
    const img = ctx.createImageData(upTo - this.column, height);
    for (let y = 0; y < height; y++) {
      const b = Math.min(map.length - 1, Math.floor((y * map.length) / height));
      const [r, g, bl] = this.rgb[map.charCodeAt(b) - 48] ?? [0, 0, 0];
      for (let x = 0; x < img.width; x++) img.data.set([r, g, bl, 255], (y * img.width + x) * 4);
    }
    ctx.putImageData(img, this.column, 0);
    this.column = upTo;
  }
}

function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
