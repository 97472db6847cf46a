// IntervalSet against a plain Set of pfns.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { IntervalSet } from "../src/pin/intervals.js";

describe("IntervalSet", () => {
  it("property: adds and removes of ranges agree with a set of pfns", () => {
    const op = fc.record({ add: fc.boolean(), start: fc.nat(60), len: fc.integer({ min: 1, max: 12 }), priv: fc.nat(3) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const set = new IntervalSet<number>();
        const shadow = new Map<number, number>();
        for (const o of ops) {
          const end = o.start + o.len;
          const pfns = Array.from({ length: o.len }, (_, i) => o.start + i);
          expect(set.overlaps(o.start, end)).toBe(pfns.some((p) => shadow.has(p)));
          expect(set.covers(o.start, end)).toBe(pfns.every((p) => shadow.has(p)));
          if (o.add && !set.overlaps(o.start, end)) {
            set.add(o.start, end, o.priv);
            for (const p of pfns) shadow.set(p, o.priv);
          } else if (!o.add && set.covers(o.start, end)) {
            set.remove(o.start, end);
            for (const p of pfns) shadow.delete(p);
          }
          expect(set.size).toBe(shadow.size);
          for (let p = 0; p < 80; p++) expect(set.find(p)?.priv).toBe(shadow.get(p));
          const ivs = set.intervals;
          for (let i = 1; i < ivs.length; i++) expect(ivs[i - 1]!.end).toBeLessThanOrEqual(ivs[i]!.start);
          for (const iv of ivs) expect(iv.end).toBeGreaterThan(iv.start);
        }
      }),
      { numRuns: 200 },
    );
  });
});
