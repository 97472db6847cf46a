// The public shape of an emulated block device (the page cache and files sit on top of it).

export interface BlockDeviceOptions {
  /** Capacity in 4096-byte logical blocks ("sectors": one page each). */
  sectors: number;
  /** Default true: completed writes sit in a volatile write cache until a flush or a FUA write. */
  volatileCache?: boolean;
  /** Default 20_000 (NVMe-ish). */
  readLatencyNs?: number;
  /** Default 20_000. */
  writeLatencyNs?: number;
  /** Transfer rate, default 2 (2 GB/s). */
  bytesPerNs?: number;
}

/** Per-device counters, as /sys/block/<dev>/stat would keep them (completed requests only). */
export interface IoStats {
  reads: number;
  writes: number;
  flushes: number;
  sectorsRead: number;
  sectorsWritten: number;
  busyNs: number;
  /** Requests failed with EIO by an injected error. */
  errors: number;
}

/** An injected I/O error: the next `times` requests of kind `op` touching [sector, sector+count) fail. */
export interface InjectedError {
  op: "read" | "write" | "flush";
  sector?: number;
  count?: number;
  times?: number;
}

export interface Wear {
  /** Most media writes any one sector has taken. */
  max: number;
  /** Media writes per sector, averaged over the whole device. */
  mean: number;
  /** Sector writes that reached the media in all (the sum of writeCount). */
  sectorsWritten: number;
  /** Sectors written to the media at least once. */
  sectorsTouched: number;
}

export interface BlockDevice {
  readonly name: string;
  readonly nrSectors: number;
  /** A snapshot of the counters. */
  readonly stats: IoStats;
  /** Simulated time this device's requests took so far (same as stats.busyNs). */
  readonly clockNs: number;
  /** Whether completed writes may sit in a volatile cache (REQ_PREFLUSH/REQ_FUA matter). */
  readonly volatileCache: boolean;
  /**
   * submit_bio(REQ_OP_READ): copies sectors[i] into frame pfns[i] (the machine's content mode: 4096
   * bytes, or the 64-bit tag). All or nothing: on an injected error throws MmError EIO and no frame
   * changed. Returns the request's ns.
   */
  read(sectors: ArrayLike<number>, pfns: ArrayLike<number>): number;
  /**
   * REQ_OP_WRITE from frames pfns[i] to sectors[i]; with fua the data is durable on return, else it may
   * sit in the volatile cache. All or nothing on error (EIO, nothing written). Returns ns.
   */
  write(sectors: ArrayLike<number>, pfns: ArrayLike<number>, opts?: { fua?: boolean }): number;
  /** REQ_PREFLUSH: everything completed so far becomes durable. Returns ns. */
  flush(): number;
  /** Power failure: the volatile cache is lost (each cached sector keeps its last durable content). */
  powerFail(): void;
  /** Content of a sector as a read would return it now: bytes mode a Uint8Array(4096) copy, tags mode a bigint. */
  peek(sector: number): Uint8Array | bigint;
  /** Content of a sector on the media: what survives a power failure. */
  peekDurable(sector: number): Uint8Array | bigint;
  /** Writes of this sector that reached the media (endurance). */
  writeCount(sector: number): number;
  wear(): Wear;
  /** Error injection; `times` defaults to Infinity, no sector means the whole device. */
  injectError(e: InjectedError): void;
  clearErrors(): void;
}
