// migrate_vma in the Wasm core against the plain-TypeScript reference kernel
// (bench/reference/): the same random programs of CPU touches and migrations to
// device-private memory and back must leave the same entries and contents.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, PAGE_SIZE,
  MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, type DevPagemap, type Process,
} from "../src/index.js";
import { privateDevice } from "./drivers.js";
import { RefMachine, type RefMm } from "../bench/reference/kernel.js";

const BASE_VPN = 0x10000;
const PAGES = 96;
const FRAMES = 1024;
/** Fewer device pages than the region has, so some migrations run out of device memory. */
const DEVICE_PAGES = 40;

type Op =
  | { kind: "touch"; first: number; n: number; write: boolean }
  | { kind: "migrate"; first: number; n: number; toDevice: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("touch" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 40 }), write: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("migrate" as const), first: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 64 }), toDevice: fc.boolean() }) },
);

const COMPARED = ["pgfault", "cow_fault", "nr_anon_pages", "nr_free_pages", "pgalloc_normal", "pgfree", "pgmigrate_success", "pgmigrate_fail"] as const;
/** Every bit of an entry but its pfn field (bits 12..51): flags, swap marker, swap type. */
const NOT_PFN = 0xfffn | (0xfffn << 52n);
const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

/** A Wasm machine with one device-private range whose driver migrates a faulting page back. */
function wasmMachine(): { m: Machine; p: Process; pg: DevPagemap; owner: object } {
  const m = Machine.create({ nodes: [{ normal: FRAMES }], content: "tags", deviceMemory: DEVICE_PAGES });
  const { pg, owner } = privateDevice(m, DEVICE_PAGES, "differential");
  const p = m.spawn();
  p.mmap(BASE_VPN * PAGE_SIZE, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  return { m, p, pg, owner };
}

describe("differential: migrate_vma in the Wasm core vs the plain-TS reference kernel", () => {
  it("same entries, tags and counters after random touch/migrate programs", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const { m, p, pg, owner } = wasmMachine();
        const ref = new RefMachine({ pages: FRAMES, devicePages: DEVICE_PAGES });
        const rp: RefMm = ref.spawn();
        rp.mmapAnon(BASE_VPN, PAGES);
        let tag = 1n;
        for (const op of ops) {
          const n = Math.min(op.n, PAGES - op.first);
          const addr = (BASE_VPN + op.first) * PAGE_SIZE;
          if (op.kind === "touch") {
            const b = p.batch();
            b.touch(addr, n, op.write, tag);
            const r = p.run(b);
            expect(r.fault?.code ?? "ok").toBe("ok");
            rp.touch(BASE_VPN + op.first, n, op.write, tag);
            tag += BigInt(n);
          } else {
            const mig = m.migrateVmaSetup({
              proc: p, start: addr, end: addr + n * PAGE_SIZE, pgmapOwner: owner,
              flags: op.toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
            });
            mig.allocAndCopy(op.toDevice ? pg : { node: 0 });
            mig.finalize();
            const r = rp.migrate(BASE_VPN + op.first, n, op.toDevice);
            expect([op, mig.cpages]).toEqual([op, r.cpages]);
          }
          const c = m.counters();
          const rc = ref.counters();
          for (const k of COMPARED) expect([k, c[k]]).toEqual([k, rc[k]]);
          expect(pg.nrPages - deviceInUse(m, pg)).toBe(ref.nrFreeDevicePages);
        }
        m.check();
        for (let i = 0; i < PAGES; i++) {
          const vpn = BASE_VPN + i;
          const pte = p.pte(vpn * PAGE_SIZE);
          const rpte = rp.pteAt(vpn);
          // Same flag bits and entry types; pfns may differ. Contents read by pfn, not by CPU access.
          expect([vpn, pte & NOT_PFN]).toEqual([vpn, rpte & NOT_PFN]);
          if (pte === 0n) continue;
          expect([vpn, m.page.readTag(pfnOf(pte))]).toEqual([vpn, ref.tagOf(pfnOf(rpte))]);
          expect([vpn, pg.contains(pfnOf(pte))]).toEqual([vpn, ref.isDevicePage(pfnOf(rpte))]);
        }
      }),
      { numRuns: 60 },
    );
  });
});

/** Device pages in use: those with a reference. */
function deviceInUse(m: Machine, pg: DevPagemap): number {
  let n = 0;
  for (let pfn = pg.start; pfn < pg.end; pfn++) {
    try {
      if (m.page.refcount(pfn) > 0) n++;
    } catch {
      // a free page: refcount() refuses it
    }
  }
  return n;
}
