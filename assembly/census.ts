// The page-state census behind the stress runner's page map: every frame classified
// into one state, totals per state, and per bucket of adjacent frames the most common
// state other than free. Output goes to the batch data area (callers run it between batches).
import { nframes, dataBase, dataSize, pageFlags, pageRef, pagePincount, pageMapping, pageZone } from "./layout";
import { PG_reserved, PG_locked } from "./memmap";
import { zoneIsDevice, zonePgmapType } from "./alloc";

const FREE: u32 = 0, ANON: u32 = 1, SHMEM: u32 = 2, KERNEL: u32 = 3, DEV_PRIVATE: u32 = 4, DEV_COHERENT: u32 = 5, PINNED: u32 = 6, MIGRATING: u32 = 7;
export const CENSUS_STATES: u32 = 8;
/** Bytes before the bucket map: one u32 total per state. */
export const CENSUS_HEADER: u32 = CENSUS_STATES * 4;

@inline function classify(pfn: u32): u32 {
  const f = load<u32>(pageFlags + (<usize>pfn << 2));
  if (f & (1 << PG_reserved)) return KERNEL;
  if (load<i32>(pageRef + (<usize>pfn << 2)) <= 0) return FREE;
  if (f & (1 << PG_locked)) return MIGRATING;
  if (load<i32>(pagePincount + (<usize>pfn << 2)) > 0) return PINNED;
  const z = <u32>load<u8>(pageZone + <usize>pfn);
  if (zoneIsDevice(z)) {
    const t = zonePgmapType(z);
    return t == 1 ? DEV_PRIVATE : t == 2 ? DEV_COHERENT : KERNEL;
  }
  const m = load<u32>(pageMapping + (<usize>pfn << 2));
  return m & 1 ? ANON : m != 0 ? SHMEM : KERNEL;
}

/** Returns the number of buckets written, or 0 when they would not fit the data area. */
export function pageCensus(framesPerBucket: u32): u32 {
  if (framesPerBucket == 0) return 0;
  const buckets = (nframes + framesPerBucket - 1) / framesPerBucket;
  if (CENSUS_HEADER + buckets > dataSize) return 0;
  const totals = dataBase;
  memory.fill(totals, 0, CENSUS_HEADER);
  const inBucket = memory.data(CENSUS_STATES * 4, 4);
  for (let b: u32 = 0; b < buckets; b++) {
    memory.fill(inBucket, 0, CENSUS_STATES * 4);
    const first = b * framesPerBucket;
    const end = min(nframes, first + framesPerBucket);
    for (let pfn = first; pfn < end; pfn++) {
      const at = inBucket + (<usize>classify(pfn) << 2);
      store<u32>(at, load<u32>(at) + 1);
    }
    let best = FREE;
    let bestN: u32 = 0;
    for (let s: u32 = 0; s < CENSUS_STATES; s++) {
      const n = load<u32>(inBucket + (<usize>s << 2));
      store<u32>(totals + (<usize>s << 2), load<u32>(totals + (<usize>s << 2)) + n);
      if (s != FREE && n > bestN) {
        best = s;
        bestN = n;
      }
    }
    store<u8>(dataBase + CENSUS_HEADER + b, <u8>best);
  }
  return buckets;
}
