// An open file description: read/write at offsets, ftruncate, fsync, and what mmap needs.
import type { Machine } from "../machine.js";
import { MmError, fail } from "../errors.js";
import { PAGE_SIZE } from "../constants.js";
import type { Inode } from "./inode.js";
import { O_ACCMODE, O_APPEND, O_RDONLY, O_WRONLY, MAX_FILE_PAGES } from "./constants.js";
import { accessPage, balanceDirty } from "./pagecache.js";
import { vfsFsyncRange } from "./sync.js";
import { frameBytes, frameTag, setFrameTag } from "./frames.js";

const MAX_FILE_BYTES = MAX_FILE_PAGES * PAGE_SIZE;

export class OpenFile {
  private closed = false;

  /** @internal Made by FileSystem.open. */
  constructor(
    private readonly machine: Machine,
    readonly inode: Inode,
    readonly flags: number,
  ) {}

  get readable(): boolean {
    return (this.flags & O_ACCMODE) !== O_WRONLY;
  }
  get writable(): boolean {
    return (this.flags & O_ACCMODE) !== O_RDONLY;
  }
  /** i_size in bytes. */
  get size(): number {
    return this.inode.size;
  }

  /** pread(2): up to `length` bytes from `offset`; fewer (or none) at the end of the file. */
  pread(length: number, offset: number): Uint8Array {
    const fn = "pread";
    this.need(fn, "read");
    this.bytesMode(fn);
    this.range(fn, length, offset);
    const m = this.machine;
    const end = Math.min(offset + length, this.inode.size);
    const out = new Uint8Array(Math.max(0, end - offset));
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / PAGE_SIZE);
      const at = pos - index * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - at, end - pos);
      accessPage(m, this.inode, index, fn, false, (pfn) => out.set(frameBytes(m, pfn).subarray(at, at + n), pos - offset));
      pos += n;
    }
    m.settle();
    return out;
  }

  /**
   * pwrite(2) (with O_APPEND the data goes to the end, as Linux does). Returns the bytes
   * written: all, or those before a page that could not be had (a short write).
   */
  pwrite(data: Uint8Array, offset: number): number {
    const fn = "pwrite";
    this.need(fn, "write");
    this.bytesMode(fn);
    if (!(data instanceof Uint8Array)) fail("EINVAL", fn, "data must be a Uint8Array", data);
    if (this.flags & O_APPEND) offset = this.inode.size;
    this.range(fn, data.length, offset);
    if (offset + data.length > MAX_FILE_BYTES)
      fail("EFBIG", fn, `writing ${data.length} bytes at ${offset} passes the largest file size ${MAX_FILE_BYTES}`, offset);
    const m = this.machine;
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const index = Math.floor(pos / PAGE_SIZE);
      const at = pos - index * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - at, data.length - done);
      try {
        accessPage(m, this.inode, index, fn, true, (pfn) => frameBytes(m, pfn).set(data.subarray(done, done + n), at));
      } catch (e) {
        if (done > 0 && e instanceof MmError) break;
        throw e;
      }
      done += n;
      this.extendTo(offset + done);
    }
    m.settle();
    balanceDirty(m, false);
    return done;
  }

  /** Tags mode: the content tags of `n` pages from page `index` (pages past the end are left out). */
  readTags(index: number, n: number): bigint[] {
    const fn = "readTags";
    this.need(fn, "read");
    this.tagsMode(fn);
    this.pages(fn, index, n);
    const m = this.machine;
    const out: bigint[] = [];
    for (let i = index; i < Math.min(index + n, this.inode.sizePages); i++) accessPage(m, this.inode, i, fn, false, (pfn) => out.push(frameTag(m, pfn)));
    m.settle();
    return out;
  }

  /** Tags mode: whole pages from page `index` get these content tags (the file grows to cover them). */
  writeTags(index: number, tags: readonly bigint[]): void {
    const fn = "writeTags";
    this.need(fn, "write");
    this.tagsMode(fn);
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== "bigint" || t < 0n || t >= 1n << 64n))
      fail("EINVAL", fn, "tags must be an array of u64 bigints", tags);
    this.pages(fn, index, tags.length);
    if (index + tags.length > MAX_FILE_PAGES) fail("EFBIG", fn, `page ${index + tags.length - 1} is past the largest file size`, index);
    const m = this.machine;
    tags.forEach((tag, k) => {
      accessPage(m, this.inode, index + k, fn, true, (pfn) => setFrameTag(m, pfn, tag));
      this.extendTo((index + k + 1) * PAGE_SIZE);
    });
    m.settle();
    balanceDirty(m, false);
  }

  /**
   * ftruncate(2). Shrinking unmaps and drops the pages past the end (private COW copies too),
   * zeroes the tail of a partial last page, and frees their sectors; EBUSY, with nothing
   * changed, while such a page is locked by a migration or under I/O.
   */
  ftruncate(length: number): void {
    const fn = "ftruncate";
    this.live(fn);
    if (!this.writable) fail("EINVAL", fn, `${this.inode.name} is not open for writing`, length);
    if (!Number.isInteger(length) || length < 0) fail("EINVAL", fn, `length ${String(length)} is not a non-negative integer`, length);
    if (length > MAX_FILE_BYTES) fail("EFBIG", fn, `length ${length} passes the largest file size ${MAX_FILE_BYTES}`, length);
    const m = this.machine;
    const inode = this.inode;
    if (length < inode.size) {
      const keep = Math.ceil(length / PAGE_SIZE);
      const busy = m.core.truncateInodePagesBusy(inode.id, keep);
      if (busy > 0) fail("EBUSY", fn, `${busy} page(s) of ${inode.name} past ${length} are locked by a migration or under I/O; truncate would wait for them`, length);
      const tail = length % PAGE_SIZE;
      if (tail !== 0 && (m.config.content === "bytes")) {
        // truncate_inode_partial_folio: the bytes past i_size read as zeros from now on, on disk too.
        accessPage(m, inode, keep - 1, fn, true, (pfn) => frameBytes(m, pfn).fill(0, tail));
      }
      m.dropInodePages(inode, keep);
      for (const [index, sector] of [...inode.blocks]) if (index >= keep) inode.fs.freeSector(inode, index, sector);
    }
    inode.size = length;
    m.core.fileSetSize(inode.id, inode.sizePages);
    m.settle();
  }

  /**
   * fsync(2): writes the dirty pages back, flushes the device's cache and commits the inode.
   * EIO (or ENOSPC) when writeback failed since the last fsync; the pages stay dirty.
   */
  fsync(): void {
    const fn = "fsync";
    this.live(fn);
    vfsFsyncRange(this.machine, this.inode, fn);
  }

  close(): void {
    this.live("close");
    this.closed = true;
  }

  private extendTo(end: number): void {
    if (end <= this.inode.size) return;
    this.inode.size = end;
    this.machine.core.fileSetSize(this.inode.id, this.inode.sizePages);
  }

  /** @internal */
  live(fn: string): void {
    if (this.closed) fail("EBADF", fn, `${this.inode.name} was closed`, this.inode.name);
  }

  private need(fn: string, what: "read" | "write"): void {
    this.live(fn);
    if (what === "read" ? !this.readable : !this.writable) fail("EBADF", fn, `${this.inode.name} is not open for ${what === "read" ? "reading" : "writing"}`);
  }

  private range(fn: string, length: number, offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) fail("EINVAL", fn, `offset ${String(offset)} is not a non-negative safe integer`, offset);
    if (!Number.isSafeInteger(length) || length < 0) fail("EINVAL", fn, `length ${String(length)} is not a non-negative safe integer`, length);
  }

  /** A page index and count (before they are turned into byte offsets). */
  private pages(fn: string, index: number, n: number): void {
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) fail("EINVAL", fn, `page index ${String(index)} is not a non-negative integer`, index);
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) fail("EINVAL", fn, `page count ${String(n)} is not a non-negative integer`, n);
  }

  private bytesMode(fn: string): void {
    if (this.machine.config.content !== "bytes") fail("EOPNOTSUPP", fn, `byte I/O needs content mode "bytes"; use readTags/writeTags in "tags" mode`);
  }

  private tagsMode(fn: string): void {
    if (this.machine.config.content !== "tags") fail("EOPNOTSUPP", fn, `tag I/O needs content mode "tags"; use pread/pwrite in "bytes" mode`);
  }
}
