import { statNameAt } from "./stats.js";

// Sentences for the invariant codes of assembly/check.ts.
const MESSAGES: Record<number, (a: number, b: number, c: number) => string> = {
  1: (a, b, c) => `free list of zone ${c} order ${b} is corrupt at pfn ${a}`,
  2: (a, b, c) => `free pfn ${a} has refcount ${b} / mapcount ${c}`,
  3: (a, b, c) => `zone ${a} counts ${b} free pages but records ${c}`,
  4: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps pfn ${c}, which does not exist`,
  5: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps pfn ${c}, which is free`,
  6: (a, b) => `mm ${a} has a PTE at vpn 0x${b.toString(16)} outside every VMA`,
  7: (a, b) => `mm ${a} has a writable PTE at vpn 0x${b.toString(16)} in a VMA without VM_WRITE`,
  8: (a, b, c) => `pfn ${a} is mapped by ${b} PTEs but its mapcount is ${c}`,
  9: (a, b, c) => `pfn ${a} has refcount ${b}, less than the ${c} its holders need`,
  10: (a) => `pfn ${a} is left locked`,
  11: (a, b) => `pfn ${a} is allocated (refcount ${b}) but nothing maps or caches it`,
  12: (a, b, c) => `shmem object ${a}: page cache entry ${b} is inconsistent (${c})`,
  13: (a, b, c) => `counter ${statNameAt(a) ?? a} should be ${b} but is ${c}`,
  14: (a, b, c) => `page-table pool: ${a} tables reachable, ${b} page tables and ${c} radix nodes accounted`,
  15: (a, b, c) => `mm ${a} RSS counts ${b} pages but records ${c}`,
  16: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} has a special PTE to pfn ${c} that is not the read-only zero page`,
  17: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} holds a swap entry of type ${c} with no operation in flight that explains it`,
  18: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps device-private pfn ${c} with a present PTE`,
  19: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} holds a device entry (type ${c}) whose pfn is not the right kind of page`,
  20: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps pfn ${c} writable although the anon page is not exclusive (COW broken)`,
  36: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} holds a read-only migration PTE for pfn ${c}, which no read-only migration in flight collected`,
  37: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} holds a read-only migration PTE for pfn ${c} that is writable, or would get a write permission its VMA or page forbids`,
  21: (a, b, c) => `${a} pins are held but nr_foll_pin_acquired ${b} - nr_foll_pin_released ${c} = ${b - c}`,
  22: (a, b, c) => `device-private pfn ${a} is held by GUP (${b} references, ${c} pins); GUP never returns such pages`,
  23: (a, b, c) => `free pfn ${a} still has ${b} GUP references and ${c} pins`,
  25: (a, b) => `pfn ${a} has ${b} pin control subsystem holds but PG_pin says otherwise`,
  24: (a, b, c) => `pfn ${a} is held only by GUP, worth refcount ${c}, but has refcount ${b}`,
  40: (a, b, c) => `pageblock at pfn ${a} has flags 0x${b.toString(16)}, which disagree with its CMA area (${c < 0 ? "none" : c}) or its offline state`,
  41: (a, b, c) => `free block at pfn ${a} (order ${b}) is on the free lists of class ${c}, not those of its pageblock`,
  42: (a) => `pageblock at pfn ${a} is isolated with no isolation in flight and not offline`,
  43: (a, b, c) => `offline pfn ${a} is in use (refcount ${b}, mapcount ${c}), flagged, or on a free list`,
  44: (a, b, c) => `pfn ${a} is allocated from CMA area ${c} but free (refcount ${b})`,
  45: (a, b, c) => `zone ${a} has ${b} CMA or isolated pageblocks but records ${c}`,
  46: (a, b, c) => `zone ${a} has ${b} offline pages but records ${c}`,
  50: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps pfn ${c} in a VM_LOCKED VMA, but the page is not PG_mlocked and PG_unevictable`,
  51: (a, b, c) =>
    c === -2 ? `pfn ${a} is mlocked (unevictable) but PG_active`
      : c < 0 ? `pfn ${a} has ${b} VM_LOCKED mappings but is not both PG_mlocked and PG_unevictable` : `pfn ${a} has ${b} VM_LOCKED mappings but its mlock_count is ${c}`,
  60: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} has a special PTE to pfn ${c} outside every VM_PFNMAP/VM_MIXEDMAP VMA`,
  61: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} has a special PTE to pfn ${c}, which has a struct page (its references would go uncounted)`,
  62: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps pfn ${c}, which has no struct page, with a normal (not special) PTE`,
  63: (a, b, c) => `pfn ${a} has no struct page but its struct page slot is in use (flags 0x${b.toString(16)}, refcount ${c})`,
  64: (a, b, c) => `hot-plugged zone ${a}: pfn ${b} carries zone id ${c}`,
  52: (a, b, c) => (b < 0 ? `mm ${a} has an invalid task memory policy (mode ${c})` : `mm ${a} has an invalid memory policy (mode ${c}) on its VMA at vpn 0x${b.toString(16)}`),
  53: (a, b, c) => (a === 0xffffffff ? `the file LRU lists hold ${b} pages but the file caches have ${c} evictable pages in RAM` : `the file LRU lists are corrupt at pfn ${a}`),
  54: (a, b, c) => `mm ${a} vpn 0x${b.toString(16)} maps file page ${c} writable but the page is not dirty (write notification lost)`,
  55: (a, b) => `file ${a} has a page at index ${b} that is neither uptodate nor locked for reading`,
  56: (a) => `${a} file pages are under writeback with no I/O in flight`,
  57: (a) => `file page at device pfn ${a} is marked PG_lru; device memory has no LRU lists`,
  58: (a, b, c) => `device pfn ${a} (refcount ${b}, ${c} mappings) names a file but is not in its page cache: stale file data in device memory`,
};

export function describeCheckFailure(code: number, a: number, b: number, c: number): string {
  return (MESSAGES[code] ?? (() => `check code ${code}`))(a, b, c);
}
