// What the differential tests compare between the Wasm core and the plain-TS reference kernel.
import { expect } from "vitest";
import { PAGE_SIZE, type Machine, type Process, type StatName } from "../src/index.js";
import type { RefMachine, RefMm, RefCounters } from "../bench/reference/kernel.js";

/** The named vmstat counters agree. */
export function expectSameCounters(m: Machine, ref: RefMachine, names: readonly (StatName & keyof RefCounters)[]): void {
  const c = m.counters();
  const rc = ref.counters();
  for (const k of names) expect([k, c[k]]).toEqual([k, rc[k]]);
}

/**
 * The PTEs of [baseVpn, baseVpn + pages) carry the same state bits (present, rw, accessed,
 * dirty, special; pfns may differ) and present pages the same tag; `more` sees each present pair.
 */
export function expectSamePtes(p: Process, rp: RefMm, baseVpn: number, pages: number, more?: (vpn: number, pte: bigint, rpte: bigint) => void): void {
  for (let i = 0; i < pages; i++) {
    const vpn = baseVpn + i;
    const pte = p.pte(vpn * PAGE_SIZE);
    const rpte = rp.pteAt(vpn);
    expect([vpn, pte & 0xfffn]).toEqual([vpn, rpte & 0xfffn]);
    if ((pte & 1n) === 0n) continue;
    expect([vpn, p.readTag(vpn * PAGE_SIZE)]).toEqual([vpn, rp.readTag(vpn)]);
    more?.(vpn, pte, rpte);
  }
}

/** Both sides of a process pair exit, and it leaves the list. */
export function exitPair(pairs: [Process, RefMm][], pair: [Process, RefMm]): void {
  pair[0].exit();
  pair[1].exit();
  pairs.splice(pairs.indexOf(pair), 1);
}
