// The fuzzer's shadow: what every mapped page and every file page must hold. Contents
// are 32-bit tags (0: never written); in "bytes" mode a page holds its tag as the
// little-endian u64 at offset 0 and zeros elsewhere, so every byte is checked at the end.
import type { Process } from "../process.js";
import type { OpenFile } from "../fs/file.js";
import { MAX_FILE_PAGES } from "./ops.js";

/** A shared anonymous object's pages (MAP_SHARED|MAP_ANONYMOUS: fork shares it). */
export interface ShmCells {
  tags: Uint32Array;
}

export type RegionKind = "anon" | "shm" | "fshared" | "fpriv";
export const REGION_KINDS: readonly RegionKind[] = ["anon", "shm", "fshared", "fpriv"];

export interface Region {
  addr: number;
  pages: number;
  kind: RegionKind;
  writable: boolean;
  /** anon: the private pages; shm: the shared object's. */
  cells: ShmCells | null;
  /** fshared/fpriv: the file. */
  file: FileShadow | null;
  /** fpriv: the pages this mapping copied on write. */
  cow: Map<number, number> | null;
}

export interface ProcShadow {
  p: Process;
  regions: Map<number, Region>;
}

/**
 * One file. `cur[i]` is the page's content, or -1 when only `vers[i]` is known (after a
 * power failure, until a read shows which). `vers[i]` holds every content the page had
 * since it was last made durable: what the device may return after a power failure.
 */
export class FileShadow {
  size = 0;
  confSize = 0;
  readonly cur = new Array<number>(MAX_FILE_PAGES).fill(0);
  vers: Set<number>[] = Array.from({ length: MAX_FILE_PAGES }, () => new Set([0]));

  constructor(readonly f: OpenFile) {}

  /** The contents a read of page i may return (page < size). */
  allowed(i: number): number[] {
    const c = this.cur[i]!;
    return c >= 0 ? [c] : [...this.vers[i]!];
  }

  /** A read saw `tag` in page i: an unknown page is known from now on. */
  seen(i: number, tag: number): void {
    if (this.cur[i]! < 0) {
      this.cur[i] = tag;
      this.vers[i] = new Set([tag]);
    }
  }

  store(i: number, tag: number): void {
    this.cur[i] = tag;
    this.vers[i]!.add(tag);
  }

  truncate(pages: number): void {
    for (let i = pages; i < this.size; i++) this.store(i, 0);
    this.size = pages;
  }

  /** A journal commit after writeback of pages [from, to) (fsync: all). */
  commit(from: number, to: number): void {
    this.confSize = this.size;
    for (let i = 0; i < MAX_FILE_PAGES; i++) {
      const c = this.cur[i]!;
      if (i >= this.size) this.vers[i] = new Set([0]);
      else if (i >= from && i < to && c >= 0) this.vers[i] = new Set([c]);
    }
  }

  /** After a power failure: the committed size, each page one of its versions. */
  powerFailed(): void {
    this.size = this.confSize;
    for (let i = 0; i < MAX_FILE_PAGES; i++) {
      if (i >= this.size) {
        this.cur[i] = 0;
        this.vers[i] = new Set([0]);
      } else {
        this.cur[i] = this.vers[i]!.size === 1 ? [...this.vers[i]!][0]! : -1;
      }
    }
  }
}

/** What a CPU access to page `page` of `r` must see: the allowed contents, or "sigbus" past a file's end. */
export function expected(r: Region, page: number): number[] | "sigbus" {
  if (r.kind === "anon" || r.kind === "shm") return [r.cells!.tags[page]!];
  const f = r.file!;
  if (page >= f.size) return "sigbus";
  const c = r.cow?.get(page);
  return c !== undefined ? [c] : f.allowed(page);
}

/** A read of page `page` of `r` returned `tag`: unknown file pages become known. */
export function observed(r: Region, page: number, tag: number): void {
  if ((r.kind === "fshared" || r.kind === "fpriv") && !r.cow?.has(page)) r.file!.seen(page, tag);
}

export function store(r: Region, page: number, tag: number): void {
  if (r.kind === "anon" || r.kind === "shm") r.cells!.tags[page] = tag;
  else if (r.kind === "fpriv") r.cow!.set(page, tag);
  else r.file!.store(page, tag);
}

/** The region a fork gives the child. */
export function forkRegion(r: Region): Region {
  return {
    ...r,
    cells: r.kind === "anon" ? { tags: r.cells!.tags.slice() } : r.cells,
    cow: r.cow ? new Map(r.cow) : null,
  };
}
