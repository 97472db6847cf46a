// struct dev_pagemap: a ZONE_DEVICE range registered with memremap_pages, its type,
// owner and the ops a driver written in TypeScript supplies.
import type { Process } from "../process.js";

export const MEMORY_DEVICE_PRIVATE = 1;
export const MEMORY_DEVICE_COHERENT = 2;
export const MEMORY_DEVICE_FS_DAX = 3;
export const MEMORY_DEVICE_GENERIC = 4;
export type MemoryType = typeof MEMORY_DEVICE_PRIVATE | typeof MEMORY_DEVICE_COHERENT | typeof MEMORY_DEVICE_GENERIC;

// vm_fault_t results a migrate_to_ram may return.
export const VM_FAULT_OOM = 0x1;
export const VM_FAULT_SIGBUS = 0x2;
export const VM_FAULT_HWPOISON = 0x10;

/** struct vm_fault, for migrate_to_ram. */
export interface VmFault {
  proc: Process;
  /** Faulting address, page-aligned. */
  address: number;
  /** The device-private page behind the entry: locked, with a reference, until the callback returns. */
  page: number;
  write: boolean;
  pgmap: DevPagemap;
}

export interface DevPagemapOps {
  /** folio_free / page_free: the page's last reference went; it is back on the range's free list. */
  pageFree?(pgmap: DevPagemap, pfn: number): void;
  /** A CPU touched a device-private page: bring it back to RAM. Returns 0 or VM_FAULT_*. */
  migrateToRam?(vmf: VmFault): number;
  /** memory_failure: -EOPNOTSUPP (or absent) falls back to the generic handling. */
  memoryFailure?(pgmap: DevPagemap, pfn: number, nrPages: number, flags: number): number;
}

export interface DevPagemapConfig {
  type: MemoryType;
  /** Pages of device memory. */
  nrPages: number;
  /** Compared with migrate_vma's pgmap_owner and hmm_range_fault's dev_private_owner. */
  owner: unknown;
  ops?: DevPagemapOps;
  /** NUMA node the memory sits near (default 0). */
  node?: number;
  /** The device's name, for machine.inject's `device` (default "pgmap<first pfn>"); ranges of one device share it. */
  name?: string;
}

export class DevPagemap {
  /** @internal */ live = true;

  /** @internal */
  constructor(
    readonly type: MemoryType,
    readonly owner: unknown,
    readonly ops: DevPagemapOps,
    /** First pfn of the range. */
    readonly start: number,
    /** One past the last pfn. */
    readonly end: number,
    readonly node: number,
    /** @internal */ readonly zone: number,
    /** @internal */ readonly ownerId: number,
    /** The device's name (machine.inject matches it). */
    readonly name: string = `pgmap${start}`,
  ) {}

  get nrPages(): number {
    return this.end - this.start;
  }

  contains(pfn: number): boolean {
    return pfn >= this.start && pfn < this.end;
  }
}
