// The operation stream of a stress run: what a scenario's generator emits, what --record
// writes and what replay feeds back. One op is four u32 words: kind, then three arguments.
// Ops name processes, regions and devices by slot numbers the executor hands out in order,
// so a recorded stream replays without its generator.

/** CPU load of one page: region, page. */
export const OP_CPU_READ = 1;
/** CPU store of a fresh tag to one page: region, page. */
export const OP_CPU_WRITE = 2;
/** Device load through hmm_range_fault: device, region, page | npages << 16. */
export const OP_DEV_READ = 3;
/** Device store: device, region, page | npages << 16. */
export const OP_DEV_WRITE = 4;
/** Driver-initiated migrate_vma to the device: device, region, page | npages << 16. */
export const OP_MIGRATE_TO_DEV = 5;
/** Driver-initiated migrate_vma back to system memory: device, region, page | npages << 16. */
export const OP_MIGRATE_TO_SYS = 6;
/** Evict the device's least recently migrated pages: device, npages. */
export const OP_EVICT = 7;
/** mmap an anonymous region: process, npages, shared (0/1). */
export const OP_MMAP = 8;
/** munmap a whole region: region. */
export const OP_MUNMAP = 9;
/** fork: process. */
export const OP_FORK = 10;
/** exit: process. */
export const OP_EXIT = 11;
/** mprotect a whole region: region, writable (0/1). */
export const OP_MPROTECT = 12;
/** make_device_exclusive of one page for a device's atomics: device, region, page. */
export const OP_EXCLUSIVE = 13;
/** spawn a process. */
export const OP_SPAWN = 14;
/** madvise(MADV_DONTNEED) of part of a region: region, page | npages << 16. */
export const OP_MADV_DONTNEED = 15;

export const OP_NAMES: Record<number, string> = {
  [OP_CPU_READ]: "cpu_read", [OP_CPU_WRITE]: "cpu_write", [OP_DEV_READ]: "dev_read", [OP_DEV_WRITE]: "dev_write",
  [OP_MIGRATE_TO_DEV]: "migrate_to_dev", [OP_MIGRATE_TO_SYS]: "migrate_to_sys", [OP_EVICT]: "evict",
  [OP_MMAP]: "mmap", [OP_MUNMAP]: "munmap", [OP_FORK]: "fork", [OP_EXIT]: "exit", [OP_MPROTECT]: "mprotect",
  [OP_EXCLUSIVE]: "make_device_exclusive", [OP_SPAWN]: "spawn", [OP_MADV_DONTNEED]: "madvise_dontneed",
};
export const OP_KINDS = Object.keys(OP_NAMES).map(Number);

/** Device ops carry a page and a count in one word. */
export const packRange = (page: number, npages: number): number => (page | (npages << 16)) >>> 0;
export const rangePage = (w: number): number => w & 0xffff;
export const rangeCount = (w: number): number => w >>> 16;
/** Device ops cover at most this many pages; regions at most MAX_REGION_PAGES. */
export const MAX_RANGE_PAGES = 0xffff;
export const MAX_REGION_PAGES = 0x10000;

export const OP_WORDS = 4;

/** A growable op log (for --record); `words` holds `length * OP_WORDS` used words. */
export class OpLog {
  words = new Uint32Array(1 << 16);
  length = 0;

  push(kind: number, a: number, b: number, c: number): void {
    const at = this.length * OP_WORDS;
    if (at + OP_WORDS > this.words.length) {
      const next = new Uint32Array(this.words.length * 2);
      next.set(this.words);
      this.words = next;
    }
    this.words[at] = kind;
    this.words[at + 1] = a;
    this.words[at + 2] = b;
    this.words[at + 3] = c;
    this.length++;
  }

  view(): Uint32Array {
    return this.words.subarray(0, this.length * OP_WORDS);
  }
}
