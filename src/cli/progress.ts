// Progress on stderr: a live bar on a terminal (ops/s, elapsed, ETA), plain lines
// otherwise (about every 10% or 5 seconds), so logs stay readable.
export class Progress {
  private readonly t0 = performance.now();
  private lastDraw = 0;
  private lastPct = -10;
  private readonly tty: boolean;

  constructor(private readonly total: number | null, private readonly label: string, private readonly quiet = false, private readonly durationMs?: number) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update(done: number): void {
    if (this.quiet) return;
    const now = performance.now();
    const elapsed = (now - this.t0) / 1000;
    const frac = this.total ? done / this.total : this.durationMs ? Math.min(1, (elapsed * 1000) / this.durationMs) : 0;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = frac > 0 ? elapsed / frac - elapsed : NaN;
    if (this.tty) {
      if (now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const width = 30;
      const fill = Math.round(frac * width);
      const bar = "#".repeat(fill) + ".".repeat(width - fill);
      process.stderr.write(`\r${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  ${fmtRate(rate)} ops/s  elapsed ${elapsed.toFixed(1)} s  ETA ${Number.isFinite(eta) ? eta.toFixed(1) + " s" : "?"}   `);
      return;
    }
    const pct = Math.floor(frac * 100);
    if (pct >= this.lastPct + 10 || now - this.lastDraw > 5000) {
      this.lastPct = pct;
      this.lastDraw = now;
      process.stderr.write(`${this.label}: ${done.toLocaleString("en-US")} ops (${pct}%), ${fmtRate(rate)} ops/s, elapsed ${elapsed.toFixed(1)} s\n`);
    }
  }

  end(): void {
    if (!this.quiet && this.tty) process.stderr.write("\r\x1b[K");
  }
}

function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)} M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)} k` : r.toFixed(0);
}
