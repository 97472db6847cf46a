// An inode of our small file system: its size, where its pages live on the device, and the
// copy of both that the journal last committed (what a power failure leaves).
import { PAGE_SIZE } from "../constants.js";
import type { FileSystem } from "./filesystem.js";

export interface DurableInode {
  size: number;
  blocks: Map<number, number>;
}

export class Inode {
  /** i_size in bytes. */
  size = 0;
  /** Page index → sector, for pages that have been written back once (delayed allocation). */
  readonly blocks = new Map<number, number>();
  /** What the journal committed last. */
  durable: DurableInode = { size: 0, blocks: new Map() };
  /** An error writeback met since the last fsync (errseq): the next fsync reports it. */
  wbError: "EIO" | "ENOSPC" | "ENOMEM" | null = null;

  /** @internal Made by FileSystem.open. */
  constructor(
    readonly fs: FileSystem,
    readonly name: string,
    /** The address_space id in the core (shared with shmem objects' pool). */
    readonly id: number,
  ) {}

  /** i_size in pages, rounded up: faults at or past it get SIGBUS. */
  get sizePages(): number {
    return Math.ceil(this.size / PAGE_SIZE);
  }
}
