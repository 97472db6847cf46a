// Injected page-allocation failures (our fail_page_alloc): TypeScript arms up to
// INJECT_SLOTS rules through injectAllocArm; each allocation request checks them only
// while one is armed, so the disarmed path costs one global load.
//
// A rule matches requests whose zone (the preferred zone of a system allocation, the
// range of a device allocation) is in its zone mask. It lets `skip` matching requests
// through, then fails the next `left` (nth mode), or fails each with probability p drawn
// from its own seeded xorshift32 (random mode) until `left` runs out.

import { zonelist } from "./alloc";
import { statAdd, PGALLOC_FAIL } from "./stat";

export const INJECT_SLOTS: u32 = 8;
const MODE_OFF: u32 = 0;
const MODE_NTH: u32 = 1;
const MODE_RANDOM: u32 = 2;

// One record per slot: mask lo, mask hi, mode, skip, left, xorshift state, hits, pad; p as f64.
const RECORD: usize = 40;
const slots: usize = memory.data(<i32>(INJECT_SLOTS * <u32>RECORD), 16);

/** Whether any rule is armed: the only thing an allocation looks at otherwise. */
export let allocInjectArmed: bool = false;

@inline function rec(slot: u32): usize {
  return slots + <usize>slot * RECORD;
}

// Arms (mode 1 nth, 2 random) or disarms (mode 0) a slot; `left` 0xffffffff is unlimited.
export function injectAllocSet(slot: u32, maskLo: u32, maskHi: u32, mode: u32, skip: u32, left: u32, p: f64, seed: u32): void {
  if (slot >= INJECT_SLOTS) return;
  const r = rec(slot);
  store<u32>(r, maskLo);
  store<u32>(r + 4, maskHi);
  store<u32>(r + 8, mode);
  store<u32>(r + 12, skip);
  store<u32>(r + 16, left);
  // xorshift32 never leaves 0: mix the seed and keep it non-zero.
  const s = seed ^ 0x9e3779b9;
  store<u32>(r + 20, s != 0 ? s : 1);
  store<u32>(r + 24, 0);
  store<f64>(r + 32, p);
  rearm();
}

// Updates the zone mask of an armed slot (a device range came or went).
export function injectAllocMask(slot: u32, maskLo: u32, maskHi: u32): void {
  if (slot >= INJECT_SLOTS) return;
  store<u32>(rec(slot), maskLo);
  store<u32>(rec(slot) + 4, maskHi);
}

// Failures a slot has injected since it was armed.
export function injectAllocHits(slot: u32): u32 {
  return slot < INJECT_SLOTS ? load<u32>(rec(slot) + 24) : 0;
}

// Whether a slot is still armed (an nth rule disarms itself once its times are used).
export function injectAllocLive(slot: u32): bool {
  return slot < INJECT_SLOTS && load<u32>(rec(slot) + 8) != MODE_OFF;
}

function rearm(): void {
  let any = false;
  for (let i: u32 = 0; i < INJECT_SLOTS; i++) if (load<u32>(rec(i) + 8) != MODE_OFF) any = true;
  allocInjectArmed = any;
}

// One allocation request in zone `z`: whether it fails. Every matching rule counts it.
export function allocInjectFail(z: u32): bool {
  let fail = false;
  for (let i: u32 = 0; i < INJECT_SLOTS; i++) {
    const r = rec(i);
    const mode = load<u32>(r + 8);
    if (mode == MODE_OFF) continue;
    const mask = z < 32 ? load<u32>(r) : load<u32>(r + 4);
    if ((mask & (1 << (z & 31))) == 0) continue;
    if (mode == MODE_NTH) {
      const skip = load<u32>(r + 12);
      if (skip > 0) {
        store<u32>(r + 12, skip - 1);
        continue;
      }
    } else {
      let s = load<u32>(r + 20);
      s ^= s << 13;
      s ^= s >> 17;
      s ^= s << 5;
      store<u32>(r + 20, s);
      if (<f64>s >= load<f64>(r + 32) * 4294967296.0) continue;
    }
    fail = true;
    store<u32>(r + 24, load<u32>(r + 24) + 1);
    const left = load<u32>(r + 16);
    if (left != 0xffffffff) {
      store<u32>(r + 16, left - 1);
      if (left <= 1) store<u32>(r + 8, MODE_OFF);
    }
  }
  if (fail) rearm();
  return fail;
}

// A request for a page from `node`'s zonelist: whether an injected failure takes it (counted
// in pgalloc_fail, as a failed allocation is).
@inline export function allocInjected(node: u32, movable: bool): bool {
  return allocInjectArmed && allocInjectedZone(load<u32>(zonelist(node, movable)));
}

export function allocInjectedZone(z: u32): bool {
  if (!allocInjectFail(z)) return false;
  statAdd(PGALLOC_FAIL, 1);
  return true;
}
