// The migrate-contention scenario: the same workload with blocking and read-only migration
// entries, its report (JSON, terminal, HTML, merge), and that its checks catch lost data.
import { describe, expect, it } from "vitest";
import {
  PRESETS, StressRun, runScenario, buildReport, mergeReports, formatSummary, renderHtml, InputError, checkRunOptions, type RunOptions,
} from "../src/index.js";
import { checkReport } from "../src/stress/report-check.js";
import { L } from "../src/layout.js";
import type { WasmBuild } from "../src/config.js";

const build = (process.env.MMEMU_BUILD ?? "release") as WasmBuild;
const opts = (seed = 1, ops = 30_000): RunOptions => ({ scenario: "migrate-contention", seed, ops, machine: PRESETS.small!, build, checkEvery: 4096 });

describe("migrate-contention", () => {
  it("runs the same workload in both modes; with read-only entries no reader ever stalls", () => {
    const r = runScenario(opts()).report;
    expect(r.failure).toBeNull();
    expect(r.ops).toBe(30_000);
    const c = r.contention!;
    const [blocking, ro] = c.modes;
    expect(blocking!.mode).toBe("blocking");
    expect(ro!.mode).toBe("read-only");
    // The same programs: the same accesses and migrations in each mode.
    expect(ro!.reads.accesses).toBe(blocking!.reads.accesses);
    expect(ro!.writes.accesses).toBe(blocking!.writes.accesses);
    expect(ro!.migrations).toBe(blocking!.migrations);
    expect(blocking!.pagesMigrated).toBeGreaterThan(0);
    // Blocking entries put readers to sleep; read-only ones never (the pages stay readable).
    expect(blocking!.reads.stalled).toBeGreaterThan(0);
    expect(ro!.reads).toMatchObject({ stalled: 0, totalNs: 0 });
    expect(c.readerStallReduction).toBe(1);
    // Writers wait for the migration's end either way.
    expect(ro!.writes.stalled).toBeGreaterThan(0);
    expect(c.readsChecked).toBe(blocking!.reads.accesses + ro!.reads.accesses);
    expect(r.counters.pgmigrate_ro_pages).toBeGreaterThan(0);
    expect(r.verifiedPages).toBe(2 * c.regionPages);
  });

  it("prints the stall table and the reduction; the HTML report has it too", () => {
    const report = buildReport("migrate-contention", [runScenario(opts(2, 20_000)).report]);
    const text = formatSummary(report);
    expect(text).toMatch(/stall time, blocking vs read-only migration entries/);
    expect(text).toMatch(/read-only +reads +[\d,]+ +0 +0 ns/);
    expect(text).toMatch(/reader stall time cut by 100\.0%/);
    expect(text).toMatch(/lost writes: 0/);
    expect(renderHtml(report)).toMatch(/Stall time: blocking vs read-only migration entries/);
  });

  it("merges the figures of several runs; a report from outside is checked", () => {
    const a = runScenario(opts(3, 12_000)).report;
    const b = runScenario(opts(4, 12_000)).report;
    const merged = mergeReports([buildReport("migrate-contention", [a]), buildReport("migrate-contention", [b])]);
    const c = merged.total.contention!;
    expect(c.rounds).toBe(a.contention!.rounds + b.contention!.rounds);
    expect(c.modes[0]!.reads.accesses).toBe(a.contention!.modes[0]!.reads.accesses + b.contention!.modes[0]!.reads.accesses);
    const json = JSON.parse(JSON.stringify(merged));
    expect(checkReport(json, "r.json").total.contention).toEqual(c);
    json.runs[0].contention.modes[1].mode = "fast";
    expect(() => checkReport(json, "r.json")).toThrow(/modes\[1\]\.mode must be "read-only"/);
  });

  it("a value changed behind the shadow's back is found by the next round's readers", () => {
    const run = StressRun.fromScenario(opts(5, 140_000));
    run.step(1); // the set-up and the first round
    const w = run.world;
    const region = w.regions[1]!;
    const tags = new Uint32Array(w.machine.core.memory.buffer, w.machine.layout.slots[L.TAGS]!);
    for (let p = 0; p < region.pages; p++) {
      const pfn = Number((w.procs[region.proc]!.pte(region.addr + p * 4096) >> 12n) & 0xffffffn);
      tags[2 * pfn] ^= 1;
    }
    const r = run.finish().report;
    expect(r.failure?.kind).toBe("data");
    expect(r.failure?.message).toMatch(/read-only entries: read-only reader \d read tag \d+ from page \d+ of region 1, expected \d+/);
  });

  it("has no op stream to record", () => {
    expect(() => checkRunOptions({ ...opts(), record: true })).toThrow(InputError);
    expect(() => checkRunOptions({ ...opts(), record: true })).toThrow(/no op stream to record/);
  });
});
