// struct page access for drivers written in TypeScript: references, the page lock,
// flags and contents. Every pfn is checked before it reaches the core.
import type { Machine } from "./machine.js";
import { fail } from "./errors.js";
import { L } from "./layout.js";
import { GUP_PIN_COUNTING_BIAS } from "./pin/flags.js";

/** enum pageflags bits a driver may look at. */
export const PG_locked = 0;
export const PG_writeback = 1;
export const PG_referenced = 2;
export const PG_uptodate = 3;
export const PG_dirty = 4;
export const PG_lru = 5;
export const PG_anon_exclusive = 11;
export const PG_reserved = 13;
export const PG_swapbacked = 17;
export const PG_unevictable = 18;
export const PG_mlocked = 20;
export const PG_hwpoison = 21;

/** The shared zero page: reserved, readable, never written. */
export const ZERO_PFN = 0;

export class PageAccess {
  /** @internal */
  constructor(private readonly machine: Machine) {}

  /** Throws EINVAL unless `pfn` is a frame with a struct page that is in use (refcount > 0). */
  private inUse(fn: string, pfn: number, zeroPageOk = false): number {
    if (zeroPageOk && pfn === ZERO_PFN) return pfn;
    const m = this.machine;
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= m.config.frames + m.config.deviceFrames)
      fail("EINVAL", fn, `pfn ${String(pfn)} is not a frame of this machine`, pfn);
    if (!m.core.pfnHasStructPage(pfn)) {
      const pmem = m.pmems.find((p) => pfn >= p.start && pfn < p.end);
      fail("EINVAL", fn, `pfn ${pfn} has no struct page (${pmem ? `sector ${pfn - pmem.start} of pmem "${pmem.name}" in storage mode` : "a hole in the device address space"})`, pfn);
    }
    if (m.core.pageFlags(pfn) & (1 << PG_reserved)) fail("EINVAL", fn, `pfn ${pfn} is reserved (no usable struct page)`, pfn);
    if (m.core.pageRefcount(pfn) <= 0) fail("EINVAL", fn, `pfn ${pfn} is free (refcount 0)`, pfn);
    return pfn;
  }

  refcount(pfn: number): number {
    return this.machine.core.pageRefcount(this.inUse("page_ref_count", pfn));
  }

  mapcount(pfn: number): number {
    return this.machine.core.pageMapcount(this.inUse("page_mapcount", pfn));
  }

  flags(pfn: number): number {
    return this.machine.core.pageFlags(this.inUse("page_flags", pfn));
  }

  testFlag(pfn: number, bit: number): boolean {
    if (typeof bit !== "number" || !Number.isInteger(bit) || bit < 0 || bit > 31) fail("EINVAL", "test_bit", `bit ${String(bit)} is not a page flag bit (0..31)`, bit);
    return (this.flags(pfn) & (1 << bit)) !== 0;
  }

  get(pfn: number): void {
    this.machine.core.pageGet(this.inUse("get_page", pfn));
  }

  /**
   * put_page: the last reference frees the page (a device page goes back to its range).
   * References GUP handed out go back through releasePages / unpinUserPages (a pin control
   * subsystem's through clearPinpages), which keep the ledger: a put that would drop the refcount below what GUP and the mappings hold is refused.
   */
  put(pfn: number): void {
    const core = this.machine.core;
    this.inUse("put_page", pfn);
    const gup = core.pageGupRefCount(pfn) + core.pagePinpageHolds(pfn) + core.pagePincount(pfn) * GUP_PIN_COUNTING_BIAS;
    if (gup > 0 && core.pageRefcount(pfn) - 1 < gup + core.pageMapcount(pfn))
      fail("EINVAL", "put_page", `pfn ${pfn}'s references are GUP's or a pin control subsystem's: give them back with releasePages, unpinUserPages or clearPinpages`, pfn);
    core.pagePut(pfn);
    this.machine.settle();
  }

  /**
   * folio_maybe_dma_pinned: the kernel's test for an order-0 page, refcount >= GUP_PIN_COUNTING_BIAS.
   * True for every pinned page, and also for a page with 1024 plain references (a false positive).
   */
  folioMaybeDmaPinned(pfn: number): boolean {
    return this.machine.core.pageRefcount(this.inUse("folio_maybe_dma_pinned", pfn, true)) >>> 0 >= GUP_PIN_COUNTING_BIAS;
  }

  /** Pins held on the page (pin_user_pages' exact count; the kernel keeps it only for large folios). */
  pincount(pfn: number): number {
    return this.machine.core.pagePincount(this.inUse("folio_pincount", pfn));
  }

  trylock(pfn: number): boolean {
    return this.machine.core.pageTrylock(this.inUse("trylock_page", pfn)) !== 0;
  }

  unlock(pfn: number): void {
    if (!this.testFlag(pfn, PG_locked)) fail("EINVAL", "unlock_page", `pfn ${pfn} is not locked`, pfn);
    this.machine.core.pageUnlock(pfn);
  }

  /** copy_highpage. */
  copy(dst: number, src: number): void {
    this.machine.core.pageCopy(this.inUse("copy_highpage", dst), this.inUse("copy_highpage", src, true));
  }

  clear(pfn: number): void {
    this.machine.core.pageClear(this.inUse("clear_page", pfn));
  }

  /** The page's 4096 bytes (bytes mode). */
  readBytes(pfn: number): Uint8Array {
    this.needBytes("page.readBytes");
    const m = this.machine;
    m.core.pageReadData(this.inUse("page.readBytes", pfn, true), 0);
    return new Uint8Array(m.core.memory.buffer, m.layout.slots[L.DATA]!, 4096).slice();
  }

  writeBytes(pfn: number, data: Uint8Array): void {
    this.needBytes("page.writeBytes");
    if (!(data instanceof Uint8Array) || data.length !== 4096) fail("EINVAL", "page.writeBytes", `data must be 4096 bytes`, data);
    const m = this.machine;
    this.inUse("page.writeBytes", pfn);
    new Uint8Array(m.core.memory.buffer, m.layout.slots[L.DATA]!, 4096).set(data);
    m.core.pageWriteData(pfn, 0);
  }

  /** The page's content tag (tags mode), or its first 8 bytes (bytes mode). */
  readTag(pfn: number): bigint {
    const m = this.machine;
    m.core.pageReadTag(this.inUse("page.readTag", pfn, true));
    return (BigInt(m.result.getUint32(92, true)) << 32n) | BigInt(m.result.getUint32(88, true));
  }

  writeTag(pfn: number, tag: bigint): void {
    if (typeof tag !== "bigint" || tag < 0n || tag >= 1n << 64n) fail("EINVAL", "page.writeTag", `tag must be a u64 bigint`, tag);
    this.machine.core.pageWriteTag(this.inUse("page.writeTag", pfn), Number(tag & 0xffffffffn), Number(tag >> 32n));
  }

  private needBytes(fn: string): void {
    if (this.machine.config.content !== "bytes") fail("EOPNOTSUPP", fn, `page bytes exist only in content mode "bytes"`);
  }
}
