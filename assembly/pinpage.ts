// Holds of the pin control subsystem (seed 003): a subsystem that registered with
// callbacks holds pages with a plain reference, counted per page in the ledger's top byte,
// and PG_pin set while any subsystem holds the page. Migration asks the holders and moves
// their holds to the new page (assembly/migrate.ts) instead of failing on the references.
import { nframes } from "./layout";
import {
  refOf, setRef, flagsOf, setFlagsOf, pinpageHoldsOf, setPinpageHolds, PINPAGE_HOLDS_MAX,
  PG_pin, PG_reserved, PG_hwpoison, PGTY_buddy,
} from "./memmap";
import { putPage, zoneIsDevice } from "./alloc";
import { zoneOf } from "./memmap";

// Why a list was refused.
export const PINPAGE_BAD_PFN: u32 = 1;
export const PINPAGE_NOT_IN_USE: u32 = 2;
export const PINPAGE_RESERVED: u32 = 3;
export const PINPAGE_DEVICE: u32 = 4;
export const PINPAGE_TOO_MANY: u32 = 5;
export const PINPAGE_NOT_HELD: u32 = 6;
export let pinpageBadReason: u32 = 0;

function refuse(i: u32, why: u32): i32 {
  pinpageBadReason = why;
  return <i32>i;
}

// Takes a hold on each of the n pfns at `list` (u32), all or none: -1, or the index of the
// first entry that cannot be held (pinpageBadReason says why). The caller made sure no pfn
// repeats and that its subsystem does not hold one already.
export function pinpageHoldList(list: usize, n: u32): i32 {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn >= nframes) return refuse(i, PINPAGE_BAD_PFN);
    const f = flagsOf(pfn);
    if ((f & ((1 << PG_reserved) | (1 << PG_hwpoison))) != 0) return refuse(i, PINPAGE_RESERVED);
    if (refOf(pfn) <= 0 || (f & (1 << PGTY_buddy)) != 0) return refuse(i, PINPAGE_NOT_IN_USE);
    if (zoneIsDevice(zoneOf(pfn))) return refuse(i, PINPAGE_DEVICE);
    if (pinpageHoldsOf(pfn) >= PINPAGE_HOLDS_MAX) return refuse(i, PINPAGE_TOO_MANY);
  }
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    setRef(pfn, refOf(pfn) + 1);
    setPinpageHolds(pfn, pinpageHoldsOf(pfn) + 1);
    setFlagsOf(pfn, flagsOf(pfn) | (1 << PG_pin));
  }
  return -1;
}

// Drops one hold on each of the n pfns at `list`, all or none: -1, or the index of an entry
// that holds none. The last hold clears PG_pin; the last reference frees the page.
export function pinpageReleaseList(list: usize, n: u32): i32 {
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn >= nframes) return refuse(i, PINPAGE_BAD_PFN);
    if (pinpageHoldsOf(pfn) == 0) return refuse(i, PINPAGE_NOT_HELD);
  }
  for (let i: u32 = 0; i < n; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    const left = pinpageHoldsOf(pfn) - 1;
    setPinpageHolds(pfn, left);
    if (left == 0) setFlagsOf(pfn, flagsOf(pfn) & ~(1 << PG_pin));
    putPage(pfn);
  }
  return -1;
}
