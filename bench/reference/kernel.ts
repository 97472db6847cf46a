/**
 * Plain-TypeScript reference implementation of a tiny slice of the Linux mm:
 * one zone with a buddy allocator, 4-level x86-64 page tables, anonymous
 * faults with copy-on-write, fork and exit, and migrate_vma between system
 * RAM and one range of device-private memory.
 *
 * It is the baseline "a JS user would write" over typed arrays (for the
 * benchmarks) and the oracle for differential tests, so it favours clarity
 * over speed while avoiding per-page object allocation. Page contents are
 * modelled as one 64-bit tag per frame.
 *
 * 64-bit values (page-table entries and tags) are kept as pairs of u32 words
 * in Uint32Arrays, low word first, and handled with plain number arithmetic;
 * BigInt only appears at the API edges (touch's tagBase, pteAt, readTag).
 * A PTE's low word holds the flag bits 0..11 and pfn bits 0..19, its high
 * word pfn bits 20..39. Software (swap) entries are encoded as in
 * assembly/pte.ts: marker bit 1, the pfn where a present entry keeps it, the
 * type in entry bits 57..61, which are high-word bits 25..29.
 */

/** Highest buddy order (the kernel's MAX_PAGE_ORDER). */
export const MAX_ORDER = 10;
/** End-of-list marker for the free-list links. */
export const NONE = 0xffffffff;

// struct page flag bits (numbers as in include/linux/page-flags.h).
export const PG_locked = 1 << 0;
export const PG_dirty = 1 << 4;
/** PG_owner_2 alias: the anon page is mapped exclusively by one mm. */
export const PG_anon_exclusive = 1 << 11;
export const PG_reserved = 1 << 13;
export const PG_swapbacked = 1 << 17;
/** Private marker for free block heads (the kernel uses the PageBuddy page type). */
export const PG_buddy = 0x80000000;
/** A pin's share of an order-0 page's refcount (FOLL_PIN). */
export const GUP_PIN_COUNTING_BIAS = 1024;

// x86-64 PTE bits, as used internally on the low word of an entry.
const PAGE_PRESENT = 1 << 0;
const PAGE_RW = 1 << 1;
const PAGE_USER = 1 << 2;
const PAGE_ACCESSED = 1 << 5;
const PAGE_DIRTY = 1 << 6;
const PAGE_SPECIAL = 1 << 9;
/** Flags of a non-leaf entry pointing at a table: present|rw|user. */
const PAGE_TABLE = 0x7;
/** A freshly allocated, written anonymous page. */
const PROT_ANON_WRITTEN = PAGE_PRESENT | PAGE_RW | PAGE_USER | PAGE_ACCESSED | PAGE_DIRTY;
/** The shared zero page mapped by a read fault. */
const PROT_ZERO_PAGE = PAGE_PRESENT | PAGE_USER | PAGE_ACCESSED | PAGE_SPECIAL;

// Software entries (swp_entry_t): a marker bit so that type 0 is not pte_none, the
// type in high-word bits 25..29, the offset (a pfn) in the pfn field.
const SWP_MARK = 1 << 1;
const SWP_TYPE_SHIFT_HI = 25;
const SWP_TYPE_MASK = 0x1f;
/** Swap types with DEVICE_PRIVATE and MIGRATION configured, as assembly/pte.ts. */
export const SWP_MIGRATION_READ = 25;
export const SWP_MIGRATION_READ_EXCLUSIVE = 26;
export const SWP_MIGRATION_WRITE = 27;
export const SWP_DEVICE_WRITE = 28;
export const SWP_DEVICE_READ = 29;

// MIGRATE_PFN_* bits (include/linux/migrate.h); a migration keeps them beside the pfn.
export const MIGRATE_PFN_VALID = 1 << 0;
export const MIGRATE_PFN_MIGRATE = 1 << 1;
export const MIGRATE_PFN_WRITE = 1 << 3;
// migrate_vma's selection, by source kind.
const SELECT_SYSTEM = 1 << 0;
const SELECT_DEVICE_PRIVATE = 1 << 1;
/** Flags a migrated page takes from the old one (folio_migrate_flags), of those modelled here. */
const MIGRATED_FLAGS = PG_dirty | PG_swapbacked;

// The same bits as bigints, for callers looking at whole 64-bit entries (pteAt).
export const _PAGE_PRESENT = BigInt(PAGE_PRESENT);
export const _PAGE_RW = BigInt(PAGE_RW);
export const _PAGE_USER = BigInt(PAGE_USER);
export const _PAGE_ACCESSED = BigInt(PAGE_ACCESSED);
export const _PAGE_DIRTY = BigInt(PAGE_DIRTY);
export const _PAGE_SPECIAL = BigInt(PAGE_SPECIAL);
/** Mask of the pfn field (bits 12..51) after shifting the entry right by 12. */
export const PTE_PFN_MASK = (1n << 40n) - 1n;
export const _PAGE_TABLE = BigInt(PAGE_TABLE);
/** The type of a whole 64-bit software entry. */
export const pteSwpType = (pte: bigint): number => Number((pte >> 57n) & 0x1fn);

export const PTRS_PER_TABLE = 512;
/** A table in the pool: 512 entries of two u32 words. */
const WORDS_PER_TABLE = 2 * PTRS_PER_TABLE;
const PMD_SPAN = 512; // vpns covered by one PTE table
const PUD_SPAN = 512 * 512; // ... by one PMD table
const PGD_SPAN = 512 * 512 * 512; // ... by one PUD table
/** vpns are 36 bits wide with 4 levels of 9 bits. */
export const VPN_LIMIT = 2 ** 36;

const pgdIndex = (vpn: number): number => Math.floor(vpn / PGD_SPAN) & 511;
// >>> reduces modulo 2^32 first, which keeps bits 9..26 intact for vpn < 2^36.
const pudIndex = (vpn: number): number => (vpn >>> 18) & 511;
const pmdIndex = (vpn: number): number => (vpn >>> 9) & 511;
const pteIndex = (vpn: number): number => vpn & 511;
/** First vpn of the next `span`-aligned region after vpn. */
const nextBoundary = (vpn: number, span: number): number => vpn - (vpn % span) + span;

/** pfn of a whole 64-bit entry. */
export const ptePfn = (pte: bigint): number => Number((pte >> 12n) & PTE_PFN_MASK);

// Entries in the pool: `w` is the word offset of the entry's low word.

/** pfn (or table index) an entry points to: low-word bits 12..31, then high-word bits 0..19. */
const entryPfn = (pool: Uint32Array, w: number): number =>
  (pool[w] >>> 12) + (pool[w + 1] & 0xfffff) * 0x100000;

/** Writes an entry pointing at pfn (< 2^32) with the given low flag bits. */
const setEntry = (pool: Uint32Array, w: number, pfn: number, flags: number): void => {
  pool[w] = ((pfn & 0xfffff) << 12) | flags;
  pool[w + 1] = pfn >>> 20;
};

/** Pool offset (in words) of the table an upper-level entry points to. */
const tableBase = (pool: Uint32Array, w: number): number => entryPfn(pool, w) * WORDS_PER_TABLE;

const isPresent = (pool: Uint32Array, w: number): boolean => (pool[w] & PAGE_PRESENT) !== 0;

/** Type of the software entry at w (meaningless for present or none entries). */
const swpType = (pool: Uint32Array, w: number): number => (pool[w + 1] >>> SWP_TYPE_SHIFT_HI) & SWP_TYPE_MASK;

/** Writes a software entry of `type` for pfn (< 2^32), with low flag bits (accessed, dirty). */
const setSwpEntry = (pool: Uint32Array, w: number, type: number, pfn: number, bits: number): void => {
  pool[w] = ((pfn & 0xfffff) << 12) | SWP_MARK | bits;
  pool[w + 1] = (pfn >>> 20) | (type << SWP_TYPE_SHIFT_HI);
};

/** A device-private entry (not present, type DEVICE_WRITE or DEVICE_READ)? */
const isDeviceEntry = (pool: Uint32Array, w: number): boolean => {
  if (pool[w] === 0 || (pool[w] & PAGE_PRESENT) !== 0) return false;
  const t = swpType(pool, w);
  return t === SWP_DEVICE_WRITE || t === SWP_DEVICE_READ;
};

/** A migration entry for pfn? */
const isMigrationEntryFor = (pool: Uint32Array, w: number, pfn: number): boolean => {
  if (pool[w] === 0 || (pool[w] & PAGE_PRESENT) !== 0) return false;
  const t = swpType(pool, w);
  return (t === SWP_MIGRATION_READ || t === SWP_MIGRATION_READ_EXCLUSIVE || t === SWP_MIGRATION_WRITE) && entryPfn(pool, w) === pfn;
};

/** Two u32 words, low first, as one unsigned 64-bit bigint. */
const u64 = (lo: number, hi: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);

export interface RefMachineOptions {
  /** Number of page frames of system RAM; pfn 0 is the shared zero page. */
  pages: number;
  /** Pages of device-private memory, pfns pages .. pages+devicePages-1 (default 0). */
  devicePages?: number;
  /** Size of the page-table pool in tables (default max(64, ceil(pages/128))). */
  tablePages?: number;
}

export interface RefCounters {
  pgfault: number;
  pgalloc_normal: number;
  pgfree: number;
  cow_fault: number;
  nr_free_pages: number;
  nr_anon_pages: number;
  nr_page_table_pages: number;
  pgmigrate_success: number;
  pgmigrate_fail: number;
  nr_foll_pin_acquired: number;
  nr_foll_pin_released: number;
}

export interface RefWalk {
  present: number;
  writable: number;
  pfnSum: number;
}

/** A VMA: [start, end) in vpns. Only private anonymous writable ones exist. */
export interface RefVma {
  start: number;
  end: number;
}

/** What one migrate call did: entries in the range, pages collected, pages moved. */
export interface RefMigrateResult {
  npages: number;
  cpages: number;
  migrated: number;
}

export class RefMachine {
  /** Frames of system RAM. */
  readonly pages: number;
  /** Frames of device-private memory, after system RAM. */
  readonly devicePages: number;

  // struct page, as a structure of arrays indexed by pfn (system RAM, then device memory).
  readonly flags: Uint32Array;
  readonly refcount: Int32Array;
  readonly mapcount: Int32Array;
  /** Pins held per page (pin_user_pages), beside the GUP_PIN_COUNTING_BIAS in refcount. */
  readonly pincount: Int32Array;
  readonly order: Uint8Array;
  readonly lruNext: Uint32Array;
  readonly lruPrev: Uint32Array;
  /** Content tag of frame pfn: low word at 2*pfn, high word at 2*pfn+1 (see tagOf). */
  readonly tags: Uint32Array;

  // zone->free_area[order]: list head and nr_free.
  readonly freeHead: Uint32Array;
  readonly nrFree: Uint32Array;
  readonly minFreeKbytes: number;
  /** WMARK_MIN in pages. */
  readonly wmarkMin: number;

  // Page-table pool: table t occupies pool[t*1024 .. t*1024+1023], entry i at words
  // t*1024 + 2*i (low) and t*1024 + 2*i + 1 (high).
  readonly tablePages: number;
  readonly pool: Uint32Array;
  private readonly tableStack: Uint32Array;
  private tableTop: number;

  // The device range's free pages: a stack of pfns (the driver's free list).
  private readonly deviceStack: Uint32Array;
  private deviceTop: number;

  // The migration in flight (migrate_vma's src/dst arrays), grown on demand:
  /** Source page per entry, NONE for a hole or the zero page. */
  migSrc = new Uint32Array(0);
  /** MIGRATE_PFN_* bits of the source entry. */
  migSrcFlags = new Uint8Array(0);
  /** Destination page per entry, NONE when the driver gave none. */
  migDst = new Uint32Array(0);
  /** Pool word offset of the entry's PTE, -1 when no PTE table covered it. */
  migPte = new Int32Array(0);
  /** The device page whose CPU fault runs the migration (migrate_to_ram), or -1. */
  migFaultPage = -1;

  // vmstat counters (kernel names).
  pgfault = 0;
  pgalloc_normal = 0;
  pgfree = 0;
  cow_fault = 0;
  nr_free_pages = 0;
  nr_anon_pages = 0;
  nr_page_table_pages = 0;
  pgmigrate_success = 0;
  pgmigrate_fail = 0;
  nr_foll_pin_acquired = 0;
  nr_foll_pin_released = 0;

  constructor(opts: RefMachineOptions) {
    const pages = opts.pages;
    if (!Number.isInteger(pages) || pages < 2 || pages > 0x7fffffff) {
      throw new RangeError(`pages must be an integer in [2, 2^31): ${pages}`);
    }
    const devicePages = opts.devicePages ?? 0;
    if (!Number.isInteger(devicePages) || devicePages < 0 || pages + devicePages > 0x7fffffff) {
      throw new RangeError(`devicePages must be an integer in [0, 2^31 - pages): ${devicePages}`);
    }
    const frames = pages + devicePages;
    const tablePages = opts.tablePages ?? Math.max(64, Math.ceil(pages / 128));
    if (!Number.isInteger(tablePages) || tablePages < 1) {
      throw new RangeError(`tablePages must be a positive integer: ${tablePages}`);
    }
    this.pages = pages;
    this.devicePages = devicePages;
    this.flags = new Uint32Array(frames);
    this.refcount = new Int32Array(frames);
    this.mapcount = new Int32Array(frames);
    this.pincount = new Int32Array(frames);
    this.order = new Uint8Array(frames);
    this.lruNext = new Uint32Array(frames).fill(NONE);
    this.lruPrev = new Uint32Array(frames).fill(NONE);
    this.tags = new Uint32Array(2 * frames);
    this.freeHead = new Uint32Array(MAX_ORDER + 1).fill(NONE);
    this.nrFree = new Uint32Array(MAX_ORDER + 1);

    // init_per_zone_wmark_min(): min_free_kbytes = int_sqrt(lowmem_kbytes * 16),
    // with 4 KiB pages, clamped; never reserve more than a quarter of the zone.
    const kb = Math.floor(Math.sqrt(pages * 4 * 16));
    this.minFreeKbytes = Math.min(262144, Math.max(128, kb));
    this.wmarkMin = Math.min(Math.floor(this.minFreeKbytes / 4), Math.floor(pages / 4));

    // The zero page is reserved and pinned forever.
    this.flags[0] = PG_reserved;
    this.refcount[0] = 1;

    // memblock_free_all(): hand out the largest aligned blocks that fit.
    for (let pfn = 1; pfn < pages; ) {
      let o = 0;
      while (o < MAX_ORDER && pfn % (2 << o) === 0 && pfn + (2 << o) <= pages) o++;
      this.freeListAdd(pfn, o);
      this.nr_free_pages += 1 << o;
      pfn += 1 << o;
    }

    this.tablePages = tablePages;
    this.pool = new Uint32Array(tablePages * WORDS_PER_TABLE);
    // Stack of free table indices; pushed in reverse so table 0 is handed out first.
    this.tableStack = new Uint32Array(tablePages);
    for (let i = 0; i < tablePages; i++) this.tableStack[i] = tablePages - 1 - i;
    this.tableTop = tablePages;

    // Pushed in reverse so the lowest device pfn is handed out first.
    this.deviceStack = new Uint32Array(devicePages);
    for (let i = 0; i < devicePages; i++) this.deviceStack[i] = pages + devicePages - 1 - i;
    this.deviceTop = devicePages;
  }

  /** A new process with an empty address space. */
  spawn(): RefMm {
    return new RefMm(this);
  }

  counters(): RefCounters {
    return {
      pgfault: this.pgfault,
      pgalloc_normal: this.pgalloc_normal,
      pgfree: this.pgfree,
      cow_fault: this.cow_fault,
      nr_free_pages: this.nr_free_pages,
      nr_anon_pages: this.nr_anon_pages,
      nr_page_table_pages: this.nr_page_table_pages,
      pgmigrate_success: this.pgmigrate_success,
      pgmigrate_fail: this.pgmigrate_fail,
      nr_foll_pin_acquired: this.nr_foll_pin_acquired,
      nr_foll_pin_released: this.nr_foll_pin_released,
    };
  }

  /** Free pages of the device range. */
  get nrFreeDevicePages(): number {
    return this.deviceTop;
  }

  /** Is pfn a device-private page? */
  isDevicePage(pfn: number): boolean {
    return pfn >= this.pages;
  }

  /** The 64-bit content tag of frame pfn. */
  tagOf(pfn: number): bigint {
    return u64(this.tags[2 * pfn], this.tags[2 * pfn + 1]);
  }

  // ---- buddy allocator ----

  private freeListAdd(pfn: number, order: number): void {
    const head = this.freeHead[order];
    this.lruNext[pfn] = head;
    this.lruPrev[pfn] = NONE;
    if (head !== NONE) this.lruPrev[head] = pfn;
    this.freeHead[order] = pfn;
    this.flags[pfn] = PG_buddy;
    this.order[pfn] = order;
    this.nrFree[order]++;
  }

  private freeListDel(pfn: number, order: number): void {
    const next = this.lruNext[pfn];
    const prev = this.lruPrev[pfn];
    if (prev === NONE) this.freeHead[order] = next;
    else this.lruNext[prev] = next;
    if (next !== NONE) this.lruPrev[next] = prev;
    this.lruNext[pfn] = NONE;
    this.lruPrev[pfn] = NONE;
    this.flags[pfn] = 0;
    this.nrFree[order]--;
  }

  /**
   * __alloc_pages() for one zone: returns the head pfn with refcount 1, or -1
   * when the allocation would dip below WMARK_MIN or no block is free.
   */
  allocPages(order: number): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_ORDER) {
      throw new RangeError(`bad order ${order}`);
    }
    // __zone_watermark_ok(): free - (2^order - 1) must stay above min.
    if (this.nr_free_pages - (1 << order) < this.wmarkMin) return -1;
    for (let o = order; o <= MAX_ORDER; o++) {
      const pfn = this.freeHead[o];
      if (pfn === NONE) continue;
      this.freeListDel(pfn, o);
      // expand(): give the upper halves back to the lower orders.
      while (o > order) {
        o--;
        this.freeListAdd(pfn + (1 << o), o);
      }
      this.refcount[pfn] = 1;
      this.order[pfn] = order;
      this.nr_free_pages -= 1 << order;
      this.pgalloc_normal += 1 << order;
      return pfn;
    }
    return -1;
  }

  /** __free_pages_ok(): return a block to the zone, merging with free buddies. */
  freePages(pfn: number, order: number): void {
    const size = 1 << order;
    if (
      !Number.isInteger(pfn) || pfn < 1 || pfn + size > this.pages ||
      !Number.isInteger(order) || order < 0 || order > MAX_ORDER ||
      (pfn & (size - 1)) !== 0 || (this.flags[pfn] & PG_buddy) !== 0
    ) {
      throw new Error(`bad page: freePages(${pfn}, ${order})`);
    }
    this.flags[pfn] = 0;
    this.refcount[pfn] = 0;
    this.mapcount[pfn] = 0;
    this.nr_free_pages += size;
    this.pgfree += size;
    while (order < MAX_ORDER) {
      const buddy = pfn ^ (1 << order);
      if (buddy >= this.pages || (this.flags[buddy] & PG_buddy) === 0 || this.order[buddy] !== order) break;
      this.freeListDel(buddy, order);
      pfn &= buddy;
      order++;
    }
    this.freeListAdd(pfn, order);
  }

  /** A fresh exclusive anonymous page with mapcount 1, or throws ENOMEM. */
  allocAnonPage(): number {
    const pfn = this.allocPages(0);
    if (pfn < 0) throw new Error('ENOMEM');
    this.tags[2 * pfn] = 0;
    this.tags[2 * pfn + 1] = 0;
    this.mapcount[pfn] = 1;
    this.flags[pfn] = PG_anon_exclusive | PG_swapbacked;
    this.nr_anon_pages++;
    return pfn;
  }

  /** Drop one mapping of an anon page: folio_remove_rmap_pte() + folio_put(). */
  unmapAnonPage(pfn: number): void {
    if (--this.mapcount[pfn] === 0) this.nr_anon_pages--;
    this.putPage(pfn);
  }

  /** One more mapping of an anon page: folio_dup_anon_rmap + folio_get (the page counts as anon again from its first). */
  dupAnonPage(pfn: number): void {
    if (this.mapcount[pfn]++ === 0) this.nr_anon_pages++;
    this.refcount[pfn]++;
  }

  /** folio_put(): the last reference frees the page, to the buddy lists or the device range. */
  putPage(pfn: number): void {
    if (--this.refcount[pfn] !== 0) return;
    if (pfn >= this.pages) this.freeDevicePage(pfn);
    else this.freePages(pfn, 0);
  }

  /**
   * unpin_user_pages of pages[0, n): every entry must hold a pin, counting repeats (the zero
   * page is skipped), or it throws EINVAL with nothing released; then each pin's bias goes.
   */
  unpinUserPages(pages: Uint32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const pfn = pages[i];
      if (pfn === 0) continue;
      if (pfn >= this.pincount.length || this.pincount[pfn] <= 0) {
        for (let k = 0; k < i; k++) if (pages[k] !== 0) this.pincount[pages[k]]++;
        throw new Error('EINVAL');
      }
      this.pincount[pfn]--;
    }
    let released = 0;
    for (let i = 0; i < n; i++) {
      const pfn = pages[i];
      if (pfn === 0) continue;
      released++;
      this.refcount[pfn] -= GUP_PIN_COUNTING_BIAS - 1;
      this.putPage(pfn);
    }
    this.nr_foll_pin_released += released;
  }

  // ---- device memory (the driver's side) ----

  /** A free device page initialised as zone_device_page_init() does (one reference, locked), or -1. */
  allocDevicePage(): number {
    if (this.deviceTop === 0) return -1;
    const pfn = this.deviceStack[--this.deviceTop];
    this.refcount[pfn] = 1;
    this.flags[pfn] = PG_locked;
    return pfn;
  }

  /** free_zone_device_folio(): the page goes back to the range's free list. */
  private freeDevicePage(pfn: number): void {
    this.flags[pfn] = 0;
    this.mapcount[pfn] = 0;
    this.deviceStack[this.deviceTop++] = pfn;
  }

  // ---- migrate_vma: the driver's step and the struct page steps ----

  /** Makes the src/dst arrays hold n entries. */
  migrateArrays(n: number): void {
    if (this.migSrc.length >= n) return;
    const size = 2 ** Math.ceil(Math.log2(n));
    this.migSrc = new Uint32Array(size);
    this.migSrcFlags = new Uint8Array(size);
    this.migDst = new Uint32Array(size);
    this.migPte = new Int32Array(size);
  }

  /**
   * The driver's alloc-and-copy: for every entry marked MIGRATE, a locked page from the
   * device range (toDevice) or from system RAM, filled with the source's tag (zero for
   * holes and the zero page). Entries without a page are left for finalize to restore.
   */
  migrateAllocCopy(npages: number, toDevice: boolean): number {
    const { migSrc: src, migSrcFlags: srcFlags, migDst: dst, tags } = this;
    let n = 0;
    for (let i = 0; i < npages; i++) {
      if ((srcFlags[i] & MIGRATE_PFN_MIGRATE) === 0) continue;
      let d: number;
      if (toDevice) {
        d = this.allocDevicePage();
      } else {
        d = this.allocPages(0);
        if (d >= 0) this.flags[d] |= PG_locked;
      }
      if (d < 0) continue;
      const s = src[i];
      if (s === NONE) {
        tags[2 * d] = 0;
        tags[2 * d + 1] = 0;
      } else {
        tags[2 * d] = tags[2 * s];
        tags[2 * d + 1] = tags[2 * s + 1];
      }
      dst[i] = d;
      n++;
    }
    return n;
  }

  /**
   * migrate_vma_check_page(): references beyond the mappings, ours, the fault path's and
   * a ZONE_DEVICE page's own mean someone else (a pin) holds the page.
   */
  private migrateCheckPage(pfn: number): boolean {
    let extra = 1;
    if (pfn === this.migFaultPage) extra++;
    if (pfn >= this.pages) extra++;
    return this.refcount[pfn] - extra <= this.mapcount[pfn];
  }

  /**
   * folio_migrate_mapping() + folio_migrate_flags() for an anon page: refused (false)
   * when the old page has references beyond its mappings and the migration's.
   */
  migrateMapping(s: number, d: number): boolean {
    const expected = this.mapcount[s] + (s === this.migFaultPage ? 1 : 0) + 1;
    if (this.refcount[s] !== expected) return false;
    this.flags[d] |= this.flags[s] & MIGRATED_FLAGS;
    return true;
  }

  /**
   * migrate_device_unmap()'s check of each collected page: one still mapped elsewhere
   * (after a fork: this model has no rmap walk to unmap it there) or held by an extra
   * reference is restored and dropped from the migration. Returns cpages.
   */
  migrateUnmap(mm: RefMm, npages: number): number {
    const { migSrc: src, migSrcFlags: srcFlags } = this;
    let cpages = 0;
    for (let i = 0; i < npages; i++) {
      if ((srcFlags[i] & MIGRATE_PFN_MIGRATE) === 0) continue;
      const pfn = src[i];
      if (pfn === NONE) {
        cpages++;
        continue;
      }
      if (this.mapcount[pfn] > 0 || !this.migrateCheckPage(pfn)) {
        mm.removeMigrationPte(i, pfn, pfn);
        src[i] = NONE;
        srcFlags[i] = 0;
        if (pfn !== this.migFaultPage) this.flags[pfn] &= ~PG_locked;
        this.putPage(pfn);
        continue;
      }
      cpages++;
    }
    return cpages;
  }

  // ---- page-table pool ----

  /** Returns the index of a zeroed table. */
  allocTable(): number {
    if (this.tableTop === 0) throw new Error('ENOMEM');
    const t = this.tableStack[--this.tableTop];
    this.pool.fill(0, t * WORDS_PER_TABLE, (t + 1) * WORDS_PER_TABLE);
    this.nr_page_table_pages++;
    return t;
  }

  freeTable(t: number): void {
    this.tableStack[this.tableTop++] = t;
    this.nr_page_table_pages--;
  }
}

export class RefMm {
  readonly machine: RefMachine;
  /** Pool offset (in words) of the pgd, or -1 once the mm has exited. */
  private pgd: number;
  private vmas: RefVma[] = [];

  constructor(machine: RefMachine) {
    this.machine = machine;
    this.pgd = machine.allocTable() * WORDS_PER_TABLE;
  }

  private live(): number {
    if (this.pgd < 0) throw new Error('mm has exited');
    return this.pgd;
  }

  /** Record a private anonymous writable mapping of [startVpn, startVpn+npages). */
  mmapAnon(startVpn: number, npages: number): void {
    this.live();
    if (!Number.isInteger(startVpn) || !Number.isInteger(npages) || startVpn < 0 || npages < 1 ||
        startVpn + npages > VPN_LIMIT) {
      throw new Error('EINVAL');
    }
    this.vmas.push({ start: startVpn, end: startVpn + npages });
  }

  private findVma(vpn: number): RefVma | undefined {
    for (const vma of this.vmas) if (vpn >= vma.start && vpn < vma.end) return vma;
    return undefined;
  }

  /** Pool offset of the PTE table covering vpn, or -1 if a level is missing. */
  private pteTable(vpn: number): number {
    const pool = this.machine.pool;
    const w0 = this.pgd + 2 * pgdIndex(vpn);
    if (!isPresent(pool, w0)) return -1;
    const w1 = tableBase(pool, w0) + 2 * pudIndex(vpn);
    if (!isPresent(pool, w1)) return -1;
    const w2 = tableBase(pool, w1) + 2 * pmdIndex(vpn);
    if (!isPresent(pool, w2)) return -1;
    return tableBase(pool, w2);
  }

  /** Entry at word offset w -> table it points to, allocating the table if missing (__p*d_alloc). */
  private descendAlloc(w: number): number {
    const m = this.machine;
    if (isPresent(m.pool, w)) return tableBase(m.pool, w);
    const t = m.allocTable();
    setEntry(m.pool, w, t, PAGE_TABLE);
    return t * WORDS_PER_TABLE;
  }

  /** Pool offset of the PTE table covering vpn, allocating missing levels. */
  private pteTableAlloc(vpn: number): number {
    const pud = this.descendAlloc(this.pgd + 2 * pgdIndex(vpn));
    const pmd = this.descendAlloc(pud + 2 * pudIndex(vpn));
    return this.descendAlloc(pmd + 2 * pmdIndex(vpn));
  }

  /**
   * CPU access to each page of [startVpn, startVpn+npages) in order, faulting
   * as needed. A write stores tagBase+i (mod 2^64) into the i-th page.
   */
  touch(startVpn: number, npages: number, write: boolean, tagBase: bigint): void {
    this.live();
    // The running tag, as two u32 halves.
    let tagLo = Number(BigInt.asUintN(32, tagBase));
    let tagHi = Number(BigInt.asUintN(32, tagBase >> 32n));
    const end = startVpn + npages;
    let vpn = startVpn;
    while (vpn < end) {
      const vma = this.findVma(vpn);
      if (vma === undefined) throw new Error('SIGSEGV');
      const vmaStop = Math.min(end, vma.end);
      while (vpn < vmaStop) {
        // One page-table walk per PTE table, then straight down its entries.
        const table = this.pteTableAlloc(vpn);
        const stop = Math.min(vmaStop, nextBoundary(vpn, PMD_SPAN));
        for (; vpn < stop; vpn++) {
          this.access(vpn, table + 2 * pteIndex(vpn), write, tagLo, tagHi);
          if (++tagLo === 0x100000000) {
            tagLo = 0;
            tagHi = (tagHi + 1) >>> 0;
          }
        }
      }
    }
  }

  /** handle_mm_fault() if needed, then the access itself, on the PTE of vpn at word offset w. */
  private access(vpn: number, w: number, write: boolean, tagLo: number, tagHi: number): void {
    const m = this.machine;
    const pool = m.pool;
    this.handleMmFault(vpn, w, write);
    if (write) {
      const pfn = entryPfn(pool, w);
      m.tags[2 * pfn] = tagLo;
      m.tags[2 * pfn + 1] = tagHi;
      pool[w] |= PAGE_ACCESSED | PAGE_DIRTY;
    } else {
      pool[w] |= PAGE_ACCESSED;
    }
  }

  /** handle_mm_fault() for the PTE of vpn at word offset w, when the access needs one. */
  private handleMmFault(vpn: number, w: number, write: boolean): void {
    const m = this.machine;
    const pool = m.pool;
    let pte = pool[w];
    if (pte !== 0 && (pte & PAGE_PRESENT) === 0) {
      m.pgfault++;
      this.deviceFault(vpn, w);
      pte = pool[w];
      if ((pte & PAGE_PRESENT) === 0) throw new Error('SIGBUS');
    }
    if ((pte & PAGE_PRESENT) === 0) {
      m.pgfault++;
      // do_anonymous_page(): reads map the shared zero page, writes get a fresh page.
      if (write) setEntry(pool, w, m.allocAnonPage(), PROT_ANON_WRITTEN);
      else setEntry(pool, w, 0, PROT_ZERO_PAGE);
    } else if (write && (pte & PAGE_RW) === 0) {
      m.pgfault++;
      this.doWpPage(w);
    }
  }

  /**
   * pin_user_pages of [startVpn, startVpn+npages) into pages (FOLL_PIN, and FOLL_WRITE if
   * `write`): faults in what is missing or write-protected, unshares a shared anon page for a
   * read pin (a private copy, still read-only), then adds a pin to each page; the zero page is
   * returned unpinned. Every page must lie in a VMA (no all-or-nothing rollback here).
   */
  pinUserPages(startVpn: number, npages: number, write: boolean, pages: Uint32Array): void {
    const m = this.machine;
    const pool = m.pool;
    const end = startVpn + npages;
    let pinned = 0;
    let vpn = startVpn;
    while (vpn < end) {
      const vma = this.findVma(vpn);
      if (vma === undefined) throw new Error('EFAULT');
      const stop = Math.min(end, vma.end, nextBoundary(vpn, PMD_SPAN));
      const table = this.pteTableAlloc(vpn);
      for (; vpn < stop; vpn++) {
        const w = table + 2 * pteIndex(vpn);
        let pte = pool[w];
        if ((pte & PAGE_PRESENT) === 0 || (write && (pte & PAGE_RW) === 0)) {
          this.handleMmFault(vpn, w, write);
          pte = pool[w];
        }
        let pfn = entryPfn(pool, w);
        if (!write && (pte & PAGE_RW) === 0 && pfn !== 0 && (m.flags[pfn] & PG_anon_exclusive) === 0) {
          pfn = this.unshare(w, pfn);
        }
        pages[vpn - startVpn] = pfn;
        if (pfn === 0) continue;
        m.refcount[pfn] += GUP_PIN_COUNTING_BIAS;
        m.pincount[pfn]++;
        pinned++;
      }
    }
    m.nr_foll_pin_acquired += pinned;
  }

  /** FAULT_FLAG_UNSHARE: a read-only shared anon page becomes this mm's own, still read-only. */
  private unshare(w: number, pfn: number): number {
    const m = this.machine;
    m.pgfault++;
    if (m.refcount[pfn] === 1) {
      m.flags[pfn] |= PG_anon_exclusive;
      return pfn;
    }
    const copy = m.allocAnonPage();
    m.tags[2 * copy] = m.tags[2 * pfn];
    m.tags[2 * copy + 1] = m.tags[2 * pfn + 1];
    m.unmapAnonPage(pfn);
    m.cow_fault++;
    setEntry(m.pool, w, copy, PAGE_PRESENT | PAGE_USER | PAGE_ACCESSED);
    return copy;
  }

  /**
   * do_swap_page() on a device-private entry: with the page locked and referenced, the
   * owner's migrate_to_ram() moves this one page back to system RAM.
   */
  private deviceFault(vpn: number, w: number): void {
    const m = this.machine;
    if (!isDeviceEntry(m.pool, w)) throw new Error('SIGBUS');
    const pfn = entryPfn(m.pool, w);
    if ((m.flags[pfn] & PG_locked) !== 0) throw new Error('EBUSY');
    m.flags[pfn] |= PG_locked;
    m.refcount[pfn]++;
    m.migFaultPage = pfn;
    try {
      this.migrateRange(vpn, 1, false);
    } finally {
      m.migFaultPage = -1;
      m.flags[pfn] &= ~PG_locked;
      m.putPage(pfn);
    }
  }

  /** do_wp_page(): makes the PTE at word offset w writable. */
  private doWpPage(w: number): void {
    const m = this.machine;
    const pool = m.pool;
    const pfn = entryPfn(pool, w);
    if (pfn === 0) {
      setEntry(pool, w, m.allocAnonPage(), PROT_ANON_WRITTEN);
      return;
    }
    // wp_can_reuse_anon_folio(): nobody else can see the page, write in place.
    if ((m.flags[pfn] & PG_anon_exclusive) !== 0 || m.refcount[pfn] === 1) {
      m.flags[pfn] |= PG_anon_exclusive;
      pool[w] |= PAGE_RW | PAGE_DIRTY | PAGE_ACCESSED;
      return;
    }
    // wp_page_copy(): private copy for this mm, drop our share of the old page.
    const copy = m.allocAnonPage();
    m.tags[2 * copy] = m.tags[2 * pfn];
    m.tags[2 * copy + 1] = m.tags[2 * pfn + 1];
    m.unmapAnonPage(pfn);
    m.cow_fault++;
    setEntry(pool, w, copy, PROT_ANON_WRITTEN);
  }

  /** dup_mm(): a child sharing every page copy-on-write. */
  fork(): RefMm {
    const pgd = this.live();
    const m = this.machine;
    const pool = m.pool;
    const { flags, mapcount, refcount } = m;
    const child = new RefMm(m);
    child.vmas = this.vmas.map((v) => ({ start: v.start, end: v.end }));
    try {
      for (let i0 = 0; i0 < PTRS_PER_TABLE; i0++) {
        const w0 = pgd + 2 * i0;
        if (!isPresent(pool, w0)) continue;
        const pud = tableBase(pool, w0);
        for (let i1 = 0; i1 < PTRS_PER_TABLE; i1++) {
          const w1 = pud + 2 * i1;
          if (!isPresent(pool, w1)) continue;
          const pmd = tableBase(pool, w1);
          for (let i2 = 0; i2 < PTRS_PER_TABLE; i2++) {
            const w2 = pmd + 2 * i2;
            if (!isPresent(pool, w2)) continue;
            const pt = tableBase(pool, w2);
            let childPt = -1; // child tables are made on the first present PTE
            for (let i = 0; i < WORDS_PER_TABLE; i += 2) {
              let pte = pool[pt + i];
              if ((pte & PAGE_PRESENT) === 0) {
                if (!isDeviceEntry(pool, pt + i)) continue;
                if (childPt < 0) childPt = child.pteTableAlloc(i0 * PGD_SPAN + i1 * PUD_SPAN + i2 * PMD_SPAN);
                // copy_nonpresent_pte(): one more mapping of the device page, readable in both.
                const pfn = entryPfn(pool, pt + i);
                setSwpEntry(pool, pt + i, SWP_DEVICE_READ, pfn, 0);
                flags[pfn] &= ~PG_anon_exclusive;
                mapcount[pfn]++;
                refcount[pfn]++;
                pool[childPt + i] = pool[pt + i];
                pool[childPt + i + 1] = pool[pt + i + 1];
                continue;
              }
              if (childPt < 0) childPt = child.pteTableAlloc(i0 * PGD_SPAN + i1 * PUD_SPAN + i2 * PMD_SPAN);
              const pfn = entryPfn(pool, pt + i);
              if (pfn !== 0) {
                // copy_present_pte(): write-protect both sides, page no longer exclusive.
                if ((pte & PAGE_RW) !== 0) {
                  pte &= ~PAGE_RW;
                  pool[pt + i] = pte;
                }
                flags[pfn] &= ~PG_anon_exclusive;
                mapcount[pfn]++;
                refcount[pfn]++;
              }
              pool[childPt + i] = pte & ~PAGE_ACCESSED; // the child's copy starts old (pte_mkold)
              pool[childPt + i + 1] = pool[pt + i + 1];
            }
          }
        }
      }
    } catch (err) {
      // Out of tables: undo the child like the kernel's failed dup_mmap().
      child.exit();
      throw err;
    }
    return child;
  }

  /** Count present and writable PTEs in the range and sum their pfns. */
  walk(startVpn: number, npages: number): RefWalk {
    const pgd = this.live();
    const pool = this.machine.pool;
    const end = startVpn + npages;
    let present = 0;
    let writable = 0;
    let pfnSum = 0;
    let vpn = startVpn;
    while (vpn < end) {
      const w0 = pgd + 2 * pgdIndex(vpn);
      if (!isPresent(pool, w0)) {
        vpn = nextBoundary(vpn, PGD_SPAN);
        continue;
      }
      const w1 = tableBase(pool, w0) + 2 * pudIndex(vpn);
      if (!isPresent(pool, w1)) {
        vpn = nextBoundary(vpn, PUD_SPAN);
        continue;
      }
      const w2 = tableBase(pool, w1) + 2 * pmdIndex(vpn);
      const stop = Math.min(end, nextBoundary(vpn, PMD_SPAN));
      if (isPresent(pool, w2)) {
        const pt = tableBase(pool, w2);
        for (; vpn < stop; vpn++) {
          const w = pt + 2 * pteIndex(vpn);
          const pte = pool[w];
          if ((pte & PAGE_PRESENT) === 0) continue;
          present++;
          if ((pte & PAGE_RW) !== 0) writable++;
          pfnSum += entryPfn(pool, w);
        }
      }
      vpn = stop;
    }
    return { present, writable, pfnSum };
  }

  // ---- migrate_vma (mm/migrate_device.c) ----

  /**
   * A driver's whole migration of [startVpn, startVpn+npages), inside one VMA: system RAM
   * to device memory (toDevice: MIGRATE_VMA_SELECT_SYSTEM) or back (SELECT_DEVICE_PRIVATE).
   * Setup collects and unmaps, the driver allocates and copies, then pages and finalize.
   */
  migrate(startVpn: number, npages: number, toDevice: boolean): RefMigrateResult {
    this.live();
    const vma = Number.isInteger(startVpn) && Number.isInteger(npages) && npages >= 1 ? this.findVma(startVpn) : undefined;
    if (vma === undefined || startVpn + npages > vma.end) throw new Error('EINVAL');
    return this.migrateRange(startVpn, npages, toDevice);
  }

  private migrateRange(startVpn: number, npages: number, toDevice: boolean): RefMigrateResult {
    const m = this.machine;
    m.migrateArrays(npages);
    this.migrateCollect(startVpn, npages, toDevice ? SELECT_SYSTEM : SELECT_DEVICE_PRIVATE);
    const cpages = m.migrateUnmap(this, npages);
    m.migrateAllocCopy(npages, toDevice);
    this.migratePages(startVpn, npages);
    const migrated = this.migrateFinalize(npages);
    return { npages, cpages, migrated };
  }

  /**
   * migrate_vma_collect(): holes and the zero page are marked MIGRATE; selected pages get
   * a reference and the page lock (a locked one is skipped) and their PTE becomes a
   * migration entry.
   */
  private migrateCollect(startVpn: number, npages: number, select: number): void {
    const m = this.machine;
    const { pool, flags, refcount } = m;
    const { migSrc: src, migSrcFlags: srcFlags, migDst: dst, migPte: ptes } = m;
    const end = startVpn + npages;
    let vpn = startVpn;
    let i = 0;
    while (vpn < end) {
      const pt = this.pteTable(vpn);
      const stop = Math.min(end, nextBoundary(vpn, PMD_SPAN));
      for (; vpn < stop; vpn++, i++) {
        const w = pt < 0 ? -1 : pt + 2 * pteIndex(vpn);
        ptes[i] = w;
        src[i] = NONE;
        srcFlags[i] = 0;
        dst[i] = NONE;
        const lo = w < 0 ? 0 : pool[w];
        if (lo === 0) {
          srcFlags[i] = MIGRATE_PFN_MIGRATE; // a hole of an anonymous VMA
          continue;
        }
        const pfn = entryPfn(pool, w);
        let writable: boolean;
        if ((lo & PAGE_PRESENT) !== 0) {
          if ((lo & PAGE_SPECIAL) !== 0) {
            if (pfn === 0 && (select & SELECT_SYSTEM) !== 0) srcFlags[i] = MIGRATE_PFN_MIGRATE;
            continue;
          }
          if ((select & SELECT_SYSTEM) === 0) continue;
          writable = (lo & PAGE_RW) !== 0;
        } else {
          const t = swpType(pool, w);
          if ((t !== SWP_DEVICE_WRITE && t !== SWP_DEVICE_READ) || (select & SELECT_DEVICE_PRIVATE) === 0) continue;
          writable = t === SWP_DEVICE_WRITE;
        }
        refcount[pfn]++;
        if (pfn !== m.migFaultPage) {
          if ((flags[pfn] & PG_locked) !== 0) {
            m.putPage(pfn);
            continue;
          }
          flags[pfn] |= PG_locked;
        }
        this.migrateUnmapOne(w, lo, pfn, writable);
        src[i] = pfn;
        srcFlags[i] = MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | (writable ? MIGRATE_PFN_WRITE : 0);
      }
    }
  }

  /**
   * try_to_migrate_one() for our own mapping: the entry at w (low word lo) becomes a
   * migration entry of type write, read-exclusive or read, carrying the young and dirty
   * bits; the mapping's reference and mapcount go.
   */
  private migrateUnmapOne(w: number, lo: number, pfn: number, writable: boolean): void {
    const m = this.machine;
    const flags = m.flags;
    if ((lo & (PAGE_PRESENT | PAGE_DIRTY)) === (PAGE_PRESENT | PAGE_DIRTY)) flags[pfn] |= PG_dirty;
    const type = writable ? SWP_MIGRATION_WRITE
      : (flags[pfn] & PG_anon_exclusive) !== 0 ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
    setSwpEntry(m.pool, w, type, pfn, lo & (PAGE_ACCESSED | PAGE_DIRTY));
    // The page is shared while it moves; the entry type remembers exclusivity.
    flags[pfn] &= ~PG_anon_exclusive;
    m.unmapAnonPage(pfn);
  }

  /** remove_migration_pte() for entry i: map newPfn where the migration entry for pfn is. */
  removeMigrationPte(i: number, pfn: number, newPfn: number): void {
    const m = this.machine;
    const pool = m.pool;
    const w = m.migPte[i];
    if (w < 0 || !isMigrationEntryFor(pool, w, pfn)) return;
    const t = swpType(pool, w);
    const writable = t === SWP_MIGRATION_WRITE; // every VMA here is VM_WRITE
    if (m.isDevicePage(newPfn)) setSwpEntry(pool, w, writable ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, newPfn, 0);
    else setEntry(pool, w, newPfn, PAGE_PRESENT | PAGE_USER | (pool[w] & (PAGE_ACCESSED | PAGE_DIRTY)) | (writable ? PAGE_RW : 0));
    if (t !== SWP_MIGRATION_READ) m.flags[newPfn] |= PG_anon_exclusive;
    m.dupAnonPage(newPfn);
  }

  /** migrate_vma_insert_page(): a new anon page where entry i had none (or the zero page). */
  private migrateInsertPage(i: number, vpn: number, d: number): boolean {
    const m = this.machine;
    const pool = m.pool;
    let w = m.migPte[i];
    if (w < 0) {
      try {
        w = this.pteTableAlloc(vpn) + 2 * pteIndex(vpn);
      } catch {
        return false; // out of page tables
      }
      m.migPte[i] = w;
    }
    const lo = pool[w];
    if (lo !== 0 && !((lo & (PAGE_PRESENT | PAGE_SPECIAL)) === (PAGE_PRESENT | PAGE_SPECIAL) && entryPfn(pool, w) === 0)) return false;
    m.flags[d] |= PG_anon_exclusive | PG_swapbacked;
    m.dupAnonPage(d);
    if (m.isDevicePage(d)) setSwpEntry(pool, w, SWP_DEVICE_WRITE, d, 0);
    else setEntry(pool, w, d, PROT_ANON_WRITTEN);
    return true;
  }

  /** migrate_vma_pages(): insert pages into holes, move struct page state to the new pages. */
  private migratePages(startVpn: number, npages: number): void {
    const m = this.machine;
    const { migSrc: src, migSrcFlags: srcFlags, migDst: dst } = m;
    for (let i = 0; i < npages; i++) {
      if ((srcFlags[i] & MIGRATE_PFN_MIGRATE) === 0) continue;
      const d = dst[i];
      const s = src[i];
      const ok = d !== NONE && (s === NONE ? this.migrateInsertPage(i, startVpn + i, d) : m.migrateMapping(s, d));
      if (!ok) srcFlags[i] &= ~MIGRATE_PFN_MIGRATE;
    }
  }

  /** migrate_vma_finalize(): remap to the new pages, or restore the old ones; returns pages moved. */
  private migrateFinalize(npages: number): number {
    const m = this.machine;
    const { migSrc: src, migSrcFlags: srcFlags, migDst: dst, flags } = m;
    let moved = 0;
    for (let i = 0; i < npages; i++) {
      const s = src[i];
      const d = dst[i];
      const migrate = (srcFlags[i] & MIGRATE_PFN_MIGRATE) !== 0;
      if (s === NONE) {
        if (d !== NONE) {
          if (migrate) {
            m.pgmigrate_success++;
            moved++;
          } else {
            m.pgmigrate_fail++;
          }
          flags[d] &= ~PG_locked;
          m.putPage(d);
        }
        continue;
      }
      let newPfn = s;
      if (migrate && d !== NONE) {
        newPfn = d;
        m.pgmigrate_success++;
        moved++;
      } else {
        m.pgmigrate_fail++;
        if (d !== NONE) {
          flags[d] &= ~PG_locked;
          m.putPage(d);
        }
      }
      this.removeMigrationPte(i, s, newPfn);
      if (s !== m.migFaultPage) flags[s] &= ~PG_locked;
      m.putPage(s);
      if (newPfn !== s) {
        flags[newPfn] &= ~PG_locked;
        m.putPage(newPfn);
      }
    }
    return moved;
  }

  /** The leaf PTE for vpn, 0n if no PTE table covers it. */
  pteAt(vpn: number): bigint {
    this.live();
    const pt = this.pteTable(vpn);
    if (pt < 0) return 0n;
    const w = pt + 2 * pteIndex(vpn);
    return u64(this.machine.pool[w], this.machine.pool[w + 1]);
  }

  /** Content tag of the page mapped at vpn, also through a device-private entry (0n for unmapped or the zero page). */
  readTag(vpn: number): bigint {
    const pte = this.pteAt(vpn);
    const device = pte !== 0n && (pte & _PAGE_PRESENT) === 0n && (pteSwpType(pte) === SWP_DEVICE_WRITE || pteSwpType(pte) === SWP_DEVICE_READ);
    if ((pte & _PAGE_PRESENT) === 0n && !device) return 0n;
    const pfn = ptePfn(pte);
    return pfn === 0 ? 0n : this.machine.tagOf(pfn);
  }

  /** exit_mmap(): zap every PTE and free all page tables. Idempotent. */
  exit(): void {
    const pgd = this.pgd;
    if (pgd < 0) return;
    const m = this.machine;
    const pool = m.pool;
    for (let i0 = 0; i0 < PTRS_PER_TABLE; i0++) {
      const w0 = pgd + 2 * i0;
      if (!isPresent(pool, w0)) continue;
      const pud = tableBase(pool, w0);
      for (let i1 = 0; i1 < PTRS_PER_TABLE; i1++) {
        const w1 = pud + 2 * i1;
        if (!isPresent(pool, w1)) continue;
        const pmd = tableBase(pool, w1);
        for (let i2 = 0; i2 < PTRS_PER_TABLE; i2++) {
          const w2 = pmd + 2 * i2;
          if (!isPresent(pool, w2)) continue;
          const pt = tableBase(pool, w2);
          for (let i = 0; i < WORDS_PER_TABLE; i += 2) {
            // A device-private entry maps its page like a PTE does.
            if (!isPresent(pool, pt + i) && !isDeviceEntry(pool, pt + i)) continue;
            const pfn = entryPfn(pool, pt + i);
            if (pfn !== 0) m.unmapAnonPage(pfn);
          }
          m.freeTable(pt / WORDS_PER_TABLE);
        }
        m.freeTable(pmd / WORDS_PER_TABLE);
      }
      m.freeTable(pud / WORDS_PER_TABLE);
    }
    m.freeTable(pgd / WORDS_PER_TABLE);
    this.pgd = -1;
    this.vmas = [];
  }
}
