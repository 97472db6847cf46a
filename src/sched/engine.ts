// A device's copy engine (its DMA): copies run one at a time in the order they were
// submitted, each for its bytes at the engine's bandwidth.
export interface CopyJob {
  /** Runs when the engine starts the copy (the data moves then); returns the bytes copied. */
  start(): number;
  /** Runs when the copy is done. */
  done(): void;
}

export class CopyEngine {
  /** Copies run, bytes moved and the time spent copying. */
  copies = 0;
  bytes = 0;
  busyNs = 0;
  private readonly queue: CopyJob[] = [];
  private busy = false;

  /** @internal Built by Scheduler.engine(). */
  constructor(
    readonly name: string,
    readonly bytesPerNs: number,
    private readonly post: (delayNs: number, run: () => void) => void,
    /** Extra ns the next copy takes (machine.inject's "engine" site). */
    private readonly lateNs: () => number = () => 0,
  ) {}

  /** Copies waiting for the engine. */
  get queued(): number {
    return this.queue.length;
  }

  /** @internal Queues a copy; it starts now if the engine is idle. */
  submit(job: CopyJob): void {
    this.queue.push(job);
    if (!this.busy) this.next();
  }

  private next(): void {
    const job = this.queue.shift();
    if (!job) {
      this.busy = false;
      return;
    }
    this.busy = true;
    const bytes = job.start();
    const ns = bytes / this.bytesPerNs + this.lateNs();
    this.copies++;
    this.bytes += bytes;
    this.busyNs += ns;
    this.post(ns, () => {
      job.done();
      this.next();
    });
  }
}
