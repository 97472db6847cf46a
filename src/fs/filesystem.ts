// A small journaling file system on one block device: flat names, delayed block
// allocation at writeback, and a journal whose commit (at fsync) makes an inode's size and
// block map durable. Sectors a truncate frees stay reserved until the commit that drops
// them, so a power failure never finds a committed block reused by another file.
import type { Machine } from "../machine.js";
import { fail } from "../errors.js";
import type { BlockDevice } from "../block/types.js";
import { Inode } from "./inode.js";
import { OpenFile } from "./file.js";
import { O_ACCMODE, O_CREAT, O_EXCL, O_KNOWN, O_TRUNC } from "./constants.js";
import { DEVICE_PAGE_WRITEBACK, newDevicePageStats, type DevicePageWriteback } from "./devpage.js";

export class FileSystem {
  readonly inodes = new Map<string, Inode>();
  /** Journal commits so far. */
  commits = 0;
  private used: Uint8Array;
  private readonly pendingFree = new Map<Inode, number[]>();
  private hint = 0;
  private devPolicy: DevicePageWriteback = "migrate-back";
  /** What I/O to device-resident file pages did since mount. */
  readonly deviceStats = newDevicePageStats();

  /** @internal Made by machine.mount. */
  constructor(
    readonly machine: Machine,
    readonly dev: BlockDevice,
    /** Files bypass the page cache: reads, writes and mappings reach the pmem frames (fsdax). */
    readonly dax = false,
  ) {
    this.used = new Uint8Array(dev.nrSectors);
  }

  /**
   * How writeback, read(2) and write(2) reach file pages in device-private memory (pages a
   * driver moved there with MIGRATE_VMA_SELECT_FILE): "migrate-back" (the default) moves
   * them to RAM first; "bounce" copies them through a temporary system page and leaves them
   * on the device (clean, after writeback).
   */
  get devicePageWriteback(): DevicePageWriteback {
    return this.devPolicy;
  }
  set devicePageWriteback(p: DevicePageWriteback) {
    if (!DEVICE_PAGE_WRITEBACK.includes(p)) fail("EINVAL", "devicePageWriteback", `policy must be "migrate-back" or "bounce", got ${String(p)}`, p);
    this.devPolicy = p;
  }

  /** open(2): O_RDONLY / O_WRONLY / O_RDWR, with O_CREAT, O_EXCL, O_TRUNC, O_APPEND. */
  open(name: string, flags: number): OpenFile {
    const fn = "open";
    if (typeof name !== "string" || name.length === 0 || name.length > 255 || name.includes("/"))
      fail("EINVAL", fn, `file name must be 1..255 characters without '/'`, name);
    if (!Number.isInteger(flags) || (flags & ~O_KNOWN) !== 0 || (flags & O_ACCMODE) === O_ACCMODE)
      fail("EINVAL", fn, `flags ${String(flags)} are not a valid combination of O_* flags`, flags);
    let inode = this.inodes.get(name);
    if (inode && (flags & O_CREAT) && (flags & O_EXCL)) fail("EEXIST", fn, `${name} exists and O_EXCL was given`, name);
    if (!inode) {
      if (!(flags & O_CREAT)) fail("ENOENT", fn, `${name} does not exist on ${this.dev.name}`, name);
      inode = new Inode(this, name, this.machine.allocMappingId(fn));
      this.machine.core.fileOpen(inode.id, 0);
      this.machine.registerInode(inode);
      // Creation is journaled at once: the empty file survives a power failure.
      this.inodes.set(name, inode);
      this.commits++;
    }
    const file = new OpenFile(this.machine, inode, flags & ~O_CREAT & ~O_EXCL);
    if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0) file.ftruncate(0);
    return file;
  }

  /** A free sector, or -1 (ENOSPC). */
  allocSector(): number {
    const n = this.used.length;
    for (let k = 0; k < n; k++) {
      const s = (this.hint + k) % n;
      if (this.used[s] === 0) {
        this.used[s] = 1;
        this.hint = s + 1;
        return s;
      }
    }
    return -1;
  }

  /** @internal A sector `inode` no longer uses for `index`: free at once, or at the next commit if the journal still maps it. */
  freeSector(inode: Inode, index: number, sector: number): void {
    inode.blocks.delete(index);
    if (inode.durable.blocks.get(index) === sector) {
      let list = this.pendingFree.get(inode);
      if (!list) this.pendingFree.set(inode, (list = []));
      list.push(sector);
    } else {
      this.used[sector] = 0;
    }
  }

  /** @internal The journal commit for `inode` (its data is on the device and flushed by now). */
  commit(inode: Inode): void {
    inode.durable = { size: inode.size, blocks: new Map(inode.blocks) };
    for (const s of this.pendingFree.get(inode) ?? []) this.used[s] = 0;
    this.pendingFree.delete(inode);
    this.commits++;
  }

  /** Free sectors. */
  get freeSectors(): number {
    let n = 0;
    for (const u of this.used) if (u === 0) n++;
    return n;
  }

  /**
   * @internal The file system after a power failure and remount: every inode as its last
   * commit left it, its cached pages gone (unmapped from every process first).
   */
  recoverAfterPowerFailure(): void {
    const m = this.machine;
    this.used = new Uint8Array(this.dev.nrSectors);
    this.pendingFree.clear();
    for (const inode of this.inodes.values()) {
      m.dropInodePages(inode, 0);
      inode.size = inode.durable.size;
      inode.blocks.clear();
      for (const [i, s] of inode.durable.blocks) {
        inode.blocks.set(i, s);
        this.used[s] = 1;
      }
      inode.wbError = null;
      m.core.fileSetSize(inode.id, inode.sizePages);
    }
  }
}
