// FOLL_* flags of get_user_pages / pin_user_pages, with the kernel's values, and the
// kernel's checks of a caller's combination (is_valid_gup_args).
import { fail, hex } from "../errors.js";

export const FOLL_WRITE = 0x1;
export const FOLL_GET = 0x2;
export const FOLL_DUMP = 0x4;
export const FOLL_FORCE = 0x8;
export const FOLL_NOWAIT = 0x10;
export const FOLL_NOFAULT = 0x20;
export const FOLL_HWPOISON = 0x40;
export const FOLL_ANON = 0x80;
export const FOLL_LONGTERM = 0x100;
export const FOLL_SPLIT_PMD = 0x200;
export const FOLL_PCI_P2PDMA = 0x400;
export const FOLL_INTERRUPTIBLE = 0x800;
export const FOLL_HONOR_NUMA_FAULT = 0x1000;

// Internal flags: GUP sets them itself; a caller passing one is refused.
export const FOLL_TOUCH = 1 << 16;
export const FOLL_TRIED = 1 << 17;
export const FOLL_REMOTE = 1 << 18;
export const FOLL_PIN = 1 << 19;
export const FOLL_FAST_ONLY = 1 << 20;
export const FOLL_UNLOCKABLE = 1 << 21;
export const FOLL_MADV_POPULATE = 1 << 22;

/** A pin adds this to an order-0 page's refcount; folio_maybe_dma_pinned tests for it. */
export const GUP_PIN_COUNTING_BIAS = 1024;

const PUBLIC_FLAGS = 0x1fff;
const INTERNAL_FLAGS = FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;

const NAMES: [number, string][] = [
  [FOLL_TOUCH, "FOLL_TOUCH"], [FOLL_TRIED, "FOLL_TRIED"], [FOLL_REMOTE, "FOLL_REMOTE"], [FOLL_PIN, "FOLL_PIN"],
  [FOLL_FAST_ONLY, "FOLL_FAST_ONLY"], [FOLL_UNLOCKABLE, "FOLL_UNLOCKABLE"], [FOLL_MADV_POPULATE, "FOLL_MADV_POPULATE"],
];

/**
 * The caller's gup_flags with the call's own flag (`toSet`: FOLL_GET or FOLL_PIN) added,
 * or EINVAL for unknown or internal bits and the combinations the kernel refuses.
 */
export function validGupFlags(fn: string, gupFlags: number, toSet: number): number {
  if (typeof gupFlags !== "number" || !Number.isInteger(gupFlags) || gupFlags < 0 || gupFlags > 0x7fffffff)
    fail("EINVAL", fn, `gup_flags ${String(gupFlags)} is not a non-negative 31-bit integer`, gupFlags);
  const unknown = gupFlags & ~(PUBLIC_FLAGS | INTERNAL_FLAGS);
  if (unknown) fail("EINVAL", fn, `unknown FOLL_* bits ${hex(unknown)}`, gupFlags);
  const internal = gupFlags & INTERNAL_FLAGS;
  if (internal) {
    const names = NAMES.filter(([bit]) => internal & bit).map(([, name]) => name).join("|");
    fail("EINVAL", fn, `${names} is internal to GUP and set by the call itself, not by its caller`, gupFlags);
  }
  const flags = gupFlags | toSet;
  if ((flags & (FOLL_GET | FOLL_PIN)) === (FOLL_GET | FOLL_PIN))
    fail("EINVAL", fn, "FOLL_GET and FOLL_PIN exclude each other: pin_user_pages takes pins, not references", gupFlags);
  if ((flags & FOLL_LONGTERM) && !(flags & FOLL_PIN))
    fail("EINVAL", fn, "FOLL_LONGTERM is only for pins: use pin_user_pages", gupFlags);
  if ((flags & FOLL_LONGTERM) && (flags & FOLL_PCI_P2PDMA))
    fail("EINVAL", fn, "FOLL_LONGTERM cannot be combined with FOLL_PCI_P2PDMA (the pgmap must stay unpluggable)", gupFlags);
  return flags;
}
