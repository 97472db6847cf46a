// The emulated block device: round trips in both content modes, the volatile write cache
// against flush/FUA/power failure, media write counts, injected I/O errors, bad input, and
// random write/flush/power-fail sequences against a shadow {durable, cached} model.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_POPULATE, PAGE_SIZE, PROT_READ, PROT_WRITE, MmError,
  type BlockDevice, type ContentMode,
} from "../src/index.js";
import { errorOf } from "./drivers.js";

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

/** A machine with `n` in-use anonymous pages to do I/O from and to. */
function setup(content: ContentMode, n = 8) {
  const m = Machine.create({ nodes: [{ normal: 1024 }], content });
  const p = m.spawn();
  const base = p.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
  const pfns = Array.from({ length: n }, (_, i) => pfnOf(p.pte(base + i * PAGE_SIZE)));
  expect(new Set(pfns).size).toBe(n);
  return { m, pfns };
}

/** Fills a frame with content derived from v: all 4096 bytes (bytes mode) or the tag. */
function fill(m: Machine, pfn: number, v: number): void {
  if (m.config.content === "tags") m.page.writeTag(pfn, tagOf(v));
  else m.page.writeBytes(pfn, bytesOf(v));
}
const tagOf = (v: number): bigint => (BigInt(v) << 32n) | BigInt((v * 2654435761) >>> 0);
function bytesOf(v: number): Uint8Array {
  const b = new Uint8Array(4096);
  if (v === 0) return b;
  for (let i = 0; i < 4096; i++) b[i] = (v * 31 + i * 7 + (i >> 8)) & 0xff;
  return b;
}
/** Content compared as a bigint or a base64 string (deep equality on 4096-byte arrays is slow). */
const norm = (x: Uint8Array | bigint): string | bigint => (typeof x === "bigint" ? x : Buffer.from(x).toString("base64"));
/** The content v stands for (0 = a never written sector). */
const expected = (m: Machine, v: number): string | bigint => norm(m.config.content === "tags" ? (v === 0 ? 0n : tagOf(v)) : bytesOf(v));
const frame = (m: Machine, pfn: number): string | bigint => norm(m.config.content === "tags" ? m.page.readTag(pfn) : m.page.readBytes(pfn));
const peek = (d: BlockDevice, s: number): string | bigint => norm(d.peek(s));
const peekDurable = (d: BlockDevice, s: number): string | bigint => norm(d.peekDurable(s));

function snapshot(m: Machine, d: BlockDevice, pfns: number[]) {
  const sectors = Array.from({ length: d.nrSectors }, (_, s) => [peek(d, s), peekDurable(d, s), d.writeCount(s)]);
  return { sectors, frames: pfns.map((p) => frame(m, p)), stats: d.stats, wear: d.wear(), counters: m.counters() };
}

for (const content of ["bytes", "tags"] as const) {
  describe(`block device (${content})`, () => {
    it("round-trips sectors through frames; a fresh sector reads zeros", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("nvme0n1", { sectors: 1000 });
      const sectors = [7, 3, 999, 0];
      sectors.forEach((_, i) => fill(m, pfns[i]!, 100 + i));
      d.write(sectors, pfns.slice(0, 4));
      sectors.forEach((s, i) => expect(peek(d, s)).toEqual(expected(m, 100 + i)));
      // Read back in another order into other frames (one of them holding data that must go).
      fill(m, pfns[4]!, 55);
      d.read([999, 0, 7, 3, 500], pfns.slice(4, 8).concat(pfns[0]!));
      expect(frame(m, pfns[4]!)).toEqual(expected(m, 102));
      expect(frame(m, pfns[5]!)).toEqual(expected(m, 103));
      expect(frame(m, pfns[6]!)).toEqual(expected(m, 100));
      expect(frame(m, pfns[7]!)).toEqual(expected(m, 101));
      expect(frame(m, pfns[0]!)).toEqual(expected(m, 0));
      expect(peek(d, 500)).toEqual(expected(m, 0));
      m.check();
      expect(m.blockDevices).toEqual([d]);
      const raw = d.peek(7);
      if (content === "bytes") expect(raw instanceof Uint8Array && raw.length === 4096).toBe(true);
      else expect(typeof raw).toBe("bigint");
    });

    it("powerFail loses exactly the writes no flush or FUA made durable", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("sda", { sectors: 16 });
      fill(m, pfns[0]!, 1);
      d.write([1], [pfns[0]!]);
      expect(d.flush()).toBe(20_000);
      fill(m, pfns[0]!, 2);
      fill(m, pfns[1]!, 3);
      d.write([1, 2], [pfns[0]!, pfns[1]!]);
      expect(peek(d, 1)).toEqual(expected(m, 2));
      expect(peekDurable(d, 1)).toEqual(expected(m, 1));
      expect(peekDurable(d, 2)).toEqual(expected(m, 0));
      // A read sees the cache.
      d.read([1], [pfns[2]!]);
      expect(frame(m, pfns[2]!)).toEqual(expected(m, 2));
      d.powerFail();
      expect(peek(d, 1)).toEqual(expected(m, 1));
      expect(peek(d, 2)).toEqual(expected(m, 0));
      d.read([1, 2], [pfns[2]!, pfns[3]!]);
      expect(frame(m, pfns[2]!)).toEqual(expected(m, 1));
      expect(frame(m, pfns[3]!)).toEqual(expected(m, 0));
      expect(d.writeCount(1)).toBe(1);
      expect(d.writeCount(2)).toBe(0);
    });

    it("FUA writes are durable on return and supersede an older cached copy; other cached writes stay volatile", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("sda", { sectors: 16 });
      fill(m, pfns[0]!, 1);
      fill(m, pfns[1]!, 2);
      d.write([4, 5], [pfns[0]!, pfns[1]!]);
      fill(m, pfns[2]!, 3);
      d.write([4], [pfns[2]!], { fua: true });
      expect(peek(d, 4)).toEqual(expected(m, 3));
      expect(peekDurable(d, 4)).toEqual(expected(m, 3));
      expect(d.writeCount(4)).toBe(1);
      d.powerFail();
      expect(peek(d, 4)).toEqual(expected(m, 3));
      expect(peek(d, 5)).toEqual(expected(m, 0));
    });

    it("flush writes each cached sector to the media once; counters and wear follow", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("sda", { sectors: 10, readLatencyNs: 1000, writeLatencyNs: 3000, bytesPerNs: 4 });
      for (let i = 0; i < 3; i++) d.write([2, 3], [pfns[i]!, pfns[i + 1]!]);
      expect(d.writeCount(2)).toBe(0);
      d.flush();
      expect([d.writeCount(2), d.writeCount(3)]).toEqual([1, 1]);
      d.write([2], [pfns[0]!], { fua: true });
      d.write([2], [pfns[0]!], { fua: true });
      d.read([2, 3, 9], pfns.slice(4, 7));
      expect(d.wear()).toEqual({ max: 3, mean: 4 / 10, sectorsWritten: 4, sectorsTouched: 2 });
      const io = 4096 / 4;
      expect(d.stats).toEqual({
        reads: 1, writes: 5, flushes: 1, sectorsRead: 3, sectorsWritten: 8, errors: 0,
        busyNs: 3 * (3000 + 2 * io) + 3000 + 2 * (3000 + io) + (1000 + 3 * io),
      });
      expect(d.clockNs).toBe(d.stats.busyNs);
      // An empty request is no request.
      expect(d.write([], [])).toBe(0);
      expect(d.stats.writes).toBe(5);
    });

    it("without a volatile cache every write is durable and a flush costs nothing", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("pmem0", { sectors: 8, volatileCache: false });
      fill(m, pfns[0]!, 9);
      d.write([0], [pfns[0]!]);
      expect(d.writeCount(0)).toBe(1);
      d.powerFail();
      expect(peek(d, 0)).toEqual(expected(m, 9));
      expect(d.flush()).toBe(0);
      expect(d.stats.flushes).toBe(1);
    });

    it("injected errors fail with EIO, change nothing, and honour times", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("sdb", { sectors: 16 });
      fill(m, pfns[0]!, 1);
      fill(m, pfns[1]!, 2);
      d.write([4, 6], [pfns[0]!, pfns[1]!], { fua: true });
      d.injectError({ op: "write", sector: 5, count: 2, times: 2 });
      fill(m, pfns[2]!, 3);
      for (let k = 0; k < 2; k++) {
        const before = snapshot(m, d, pfns);
        const e = errorOf(() => d.write([3, 6], [pfns[2]!, pfns[2]!]));
        expect(e).toBeInstanceOf(MmError);
        expect([e.code, e.errno, e.fn]).toEqual(["EIO", -5, "submit_bio"]);
        expect(e.message).toMatch(/REQ_OP_WRITE on sdb failed: I\/O error/);
        const after = snapshot(m, d, pfns);
        expect(after.stats.errors).toBe(before.stats.errors + 1);
        expect({ ...after, stats: { ...after.stats, errors: 0 } }).toEqual({ ...before, stats: { ...before.stats, errors: 0 } });
      }
      // Requests outside the range pass; the third touching one too (times used up).
      d.write([4], [pfns[2]!]);
      d.write([6], [pfns[2]!]);
      expect(peek(d, 6)).toEqual(expected(m, 3));

      // Reads: no frame changes.
      d.injectError({ op: "read" });
      fill(m, pfns[3]!, 7);
      expect(errorOf(() => d.read([4], [pfns[3]!])).code).toBe("EIO");
      expect(frame(m, pfns[3]!)).toEqual(expected(m, 7));
      expect(errorOf(() => d.read([15], [pfns[3]!])).code).toBe("EIO"); // times defaults to Infinity
      d.clearErrors();
      d.read([4], [pfns[3]!]);
      expect(frame(m, pfns[3]!)).toEqual(expected(m, 3));

      // Flush: the cache stays volatile, and a power failure then loses it.
      d.injectError({ op: "flush", times: 1 });
      expect(errorOf(() => d.flush()).code).toBe("EIO");
      expect(d.writeCount(6)).toBe(1);
      d.powerFail();
      expect(peek(d, 6)).toEqual(expected(m, 2));
      expect(peek(d, 4)).toEqual(expected(m, 1));
      // A ranged flush error fires only while a cached sector lies in its range.
      d.injectError({ op: "flush", sector: 10, times: 1 });
      d.write([9], [pfns[2]!]);
      d.flush();
      d.write([10], [pfns[2]!]);
      expect(errorOf(() => d.flush()).code).toBe("EIO");
      d.flush();
      expect(peekDurable(d, 10)).toEqual(expected(m, 3));
      expect(d.stats.errors).toBe(6);
      m.check();
    });

    it("refuses bad input with EINVAL and changes nothing", () => {
      const { m, pfns } = setup(content);
      const d = m.addBlockDevice("vda", { sectors: 16 });
      fill(m, pfns[0]!, 1);
      d.write([1], [pfns[0]!]);
      const nframes = m.config.frames + m.config.deviceFrames;
      const cases: [string, () => unknown, RegExp][] = [
        ["length mismatch", () => d.write([1, 2], [pfns[0]!]), /2 sectors but 1 pfns/],
        ["sector past the end", () => d.write([2, 16], [pfns[0]!, pfns[1]!]), /sector 16 is beyond the end of device vda \(16 sectors\)/],
        ["read past the end", () => d.read([99], [pfns[1]!]), /sector 99 is beyond the end of device vda/],
        ["negative sector", () => d.read([-1], [pfns[1]!]), /sector -1 .*not a non-negative integer/],
        ["fractional sector", () => d.write([1.5], [pfns[0]!]), /sector 1.5/],
        ["pfn past the machine", () => d.read([1], [nframes]), new RegExp(`pfn ${nframes} .*not a frame`)],
        ["fractional pfn", () => d.write([1], [pfns[0]! + 0.5]), /not a frame/],
        ["read into the zero page", () => d.read([1], [0]), /zero page/],
        ["not arrays", () => d.write(5 as never, [1]), /sectors must be an array/],
        ["bad fua", () => d.write([1], [pfns[0]!], { fua: 1 as never }), /fua must be a boolean/],
        ["peek past the end", () => d.peek(16), /beyond the end/],
        ["writeCount of a bad sector", () => d.writeCount(NaN), /not a non-negative integer/],
        ["injectError bad op", () => d.injectError({ op: "trim" as never }), /op must be/],
        ["injectError range past the end", () => d.injectError({ op: "read", sector: 15, count: 2 }), /beyond the end/],
        ["injectError times 0", () => d.injectError({ op: "read", times: 0 }), /times must be/],
        ["injectError count without sector", () => d.injectError({ op: "read", count: 2 }), /needs a sector/],
        ["bad name", () => m.addBlockDevice("Bad Name", { sectors: 1 }), /device name/],
        ["zero sectors", () => m.addBlockDevice("x", { sectors: 0 }), /sectors of x must be an integer/],
        ["huge device", () => m.addBlockDevice("x", { sectors: 2 ** 40 }), /sectors of x/],
        ["negative latency", () => m.addBlockDevice("x", { sectors: 1, readLatencyNs: -1 }), /readLatencyNs/],
        ["zero bandwidth", () => m.addBlockDevice("x", { sectors: 1, bytesPerNs: 0 }), /bytesPerNs/],
        ["unknown option", () => m.addBlockDevice("x", { sectors: 1, size: 3 } as never), /unknown option size/],
      ];
      const before = snapshot(m, d, pfns);
      for (const [what, call, sentence] of cases) {
        const e = errorOf(call);
        expect(e.code, what).toBe("EINVAL");
        expect(e.message, what).toMatch(sentence);
      }
      expect(errorOf(() => m.addBlockDevice("vda", { sectors: 4 })).code).toBe("EEXIST");
      expect(snapshot(m, d, pfns)).toEqual(before);
      expect(m.blockDevices.map((x) => x.name)).toEqual(["vda"]);
      // The injected-error cases above that failed validation left no rule behind.
      d.read([1], [pfns[1]!]);
      m.check();
    });

    it("random write/flush/powerFail/error sequences match a shadow {durable, cached} model", () => {
      const N = 12;
      const { m, pfns } = setup(content, 6);
      const op = fc.oneof(
        fc.record({ k: fc.constant("write" as const), sectors: fc.array(fc.nat(N - 1), { minLength: 1, maxLength: 6 }), v: fc.integer({ min: 1, max: 1 << 20 }), fua: fc.boolean() }),
        fc.record({ k: fc.constant("read" as const), sectors: fc.array(fc.nat(N - 1), { minLength: 1, maxLength: 6 }) }),
        fc.constant({ k: "flush" as const }),
        fc.constant({ k: "powerFail" as const }),
        fc.record({ k: fc.constant("inject" as const), op: fc.constantFrom("read" as const, "write" as const, "flush" as const), sector: fc.nat(N - 1), times: fc.integer({ min: 1, max: 2 }) }),
      );
      let run = 0;
      fc.assert(
        fc.property(fc.boolean(), fc.array(op, { maxLength: 40 }), (volatileCache, ops) => {
          const d = m.addBlockDevice(`d${run++}`, { sectors: N, volatileCache });
          const durable = new Map<number, number>();
          const cached = new Map<number, number>();
          const writes = new Array<number>(N).fill(0);
          const rules: { op: string; sector: number; left: number }[] = [];
          const now = (s: number) => cached.get(s) ?? durable.get(s) ?? 0;
          const fails = (kind: string, touched: number[]): boolean => {
            const hit = rules.filter((r) => r.op === kind && touched.includes(r.sector));
            hit.forEach((r) => r.left--);
            rules.splice(0, rules.length, ...rules.filter((r) => r.left > 0));
            return hit.length > 0;
          };
          const toMedia = (s: number, v: number) => {
            durable.set(s, v);
            writes[s]!++;
          };
          for (const o of ops) {
            if (o.k === "write") {
              // Each sector of the request gets its own value, from its own frame.
              const n = Math.min(o.sectors.length, pfns.length);
              const sectors = o.sectors.slice(0, n);
              sectors.forEach((_, i) => fill(m, pfns[i]!, o.v + i));
              const bad = fails("write", sectors);
              if (bad) expect(errorOf(() => d.write(sectors, pfns.slice(0, n), { fua: o.fua })).code).toBe("EIO");
              else {
                d.write(sectors, pfns.slice(0, n), { fua: o.fua });
                sectors.forEach((s, i) => {
                  if (o.fua || !volatileCache) {
                    toMedia(s, o.v + i);
                    cached.delete(s);
                  } else cached.set(s, o.v + i);
                });
              }
            } else if (o.k === "read") {
              const n = Math.min(o.sectors.length, pfns.length);
              const sectors = o.sectors.slice(0, n);
              pfns.forEach((p) => fill(m, p, 0xdead));
              const bad = fails("read", sectors);
              if (bad) {
                expect(errorOf(() => d.read(sectors, pfns.slice(0, n))).code).toBe("EIO");
                pfns.forEach((p) => expect(frame(m, p)).toEqual(expected(m, 0xdead)));
              } else {
                d.read(sectors, pfns.slice(0, n));
                // A sector read twice into different frames: each frame holds that sector's content.
                sectors.forEach((s, i) => expect(frame(m, pfns[i]!)).toEqual(expected(m, now(s))));
              }
            } else if (o.k === "flush") {
              if (fails("flush", [...cached.keys()])) expect(errorOf(() => d.flush()).code).toBe("EIO");
              else {
                d.flush();
                for (const [s, v] of cached) toMedia(s, v);
                cached.clear();
              }
            } else if (o.k === "powerFail") {
              d.powerFail();
              cached.clear();
            } else {
              d.injectError({ op: o.op, sector: o.sector, times: o.times });
              rules.push({ op: o.op, sector: o.sector, left: o.times });
            }
            for (let s = 0; s < N; s++) {
              expect(peek(d, s)).toEqual(expected(m, now(s)));
              expect(peekDurable(d, s)).toEqual(expected(m, durable.get(s) ?? 0));
              expect(d.writeCount(s)).toBe(writes[s]);
            }
          }
          const total = writes.reduce((a, b) => a + b, 0);
          expect(d.wear()).toEqual({ max: Math.max(...writes), mean: total / N, sectorsWritten: total, sectorsTouched: writes.filter((w) => w > 0).length });
          m.check();
        }),
        { numRuns: content === "bytes" ? 40 : 100, seed: 6 },
      );
    });
  });
}
