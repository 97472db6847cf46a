import { describe, it, expect } from "vitest";
import { runDemo } from "../src/demo.js";

describe("the default demo run (npm start)", () => {
  it("completes with every invariant check passing and frees everything at the end", () => {
    const r = runDemo({ seed: 3, ops: 3000, pages: 8192, checkEvery: 64 });
    expect(r.checks).toBeGreaterThan(40);
    expect(r.pagesTouched).toBeGreaterThan(0);
    expect(r.counters.pgfault).toBeGreaterThan(0);
    expect(r.counters.cow_fault).toBeGreaterThan(0);
    expect(r.counters.nr_anon_pages).toBe(0);
    expect(r.counters.nr_shmem).toBe(0);
    expect(r.counters.pgalloc_normal + r.counters.pgalloc_movable).toBe(r.counters.pgfree);
  });

  it("is deterministic: the same seed gives the same counters", () => {
    const a = runDemo({ seed: 11, ops: 1500, pages: 4096 });
    const b = runDemo({ seed: 11, ops: 1500, pages: 4096 });
    expect(a.counters).toEqual(b.counters);
    expect(a.faults).toEqual(b.faults);
  });
});
