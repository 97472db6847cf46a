// The block device interface files will live on (src/block/ defines the shared one; this
// structural copy lets pmem implement it until the two are merged).

/** Counters of one block device. */
export interface IoStats {
  reads: number;
  writes: number;
  flushes: number;
  sectorsRead: number;
  sectorsWritten: number;
  /** Simulated time the device spent on requests. */
  busyNs: number;
  /** Requests that failed (injected errors). */
  errors: number;
}

/** An injected I/O error: the next `times` requests of `op` that touch [sector, sector + count) fail with EIO. */
export interface IoErrorSpec {
  op: "read" | "write" | "flush";
  sector?: number;
  count?: number;
  times?: number;
}

/** A block device of 4096-byte sectors: block I/O moves whole sectors to and from frames. */
export interface BlockDevice {
  readonly name: string;
  readonly nrSectors: number;
  readonly stats: IoStats;
  /** Simulated time: the sum of every request's cost. */
  readonly clockNs: number;
  /** Sector i into frame pfns[i]; returns the request's cost in ns. */
  read(sectors: ArrayLike<number>, pfns: ArrayLike<number>): number;
  /** Frame pfns[i] into sector i; returns the request's cost in ns. */
  write(sectors: ArrayLike<number>, pfns: ArrayLike<number>, opts?: { fua?: boolean }): number;
  flush(): number;
  powerFail(): void;
  peek(sector: number): Uint8Array | bigint;
  peekDurable(sector: number): Uint8Array | bigint;
  writeCount(sector: number): number;
  wear(): { max: number; mean: number; sectorsWritten: number };
  injectError(e: IoErrorSpec): void;
  clearErrors(): void;
}
