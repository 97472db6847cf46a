// The pmem stress scenario: the same workload on a pmem device as storage (DAX + block
// writes) and as RAM (ZONE_MOVABLE, offlined each round); its report (JSON, terminal, HTML,
// merge, schema check), the machine's pmem field, and that lost data is caught.
import { describe, expect, it } from "vitest";
import {
  PRESETS, StressRun, runScenario, buildReport, mergeReports, formatSummary, renderHtml, InputError, checkRunOptions, checkMachineSpec, withPmem,
  KERNEL_STRUCT_PAGE_BYTES, type RunOptions,
} from "../src/index.js";
import { checkReport } from "../src/stress/report-check.js";
import type { WasmBuild } from "../src/config.js";

const build = (process.env.MMEMU_BUILD ?? "release") as WasmBuild;
/** Two rounds on the small preset (a 2,048-page device, a 1,024-page working set). */
const OPS = 30_000;
const opts = (seed = 1, ops = OPS): RunOptions => ({ scenario: "pmem", seed, ops, machine: PRESETS.small!, build, checkEvery: 8192 });

describe("pmem scenario", () => {
  it("runs clean in both modes, and the same seed gives the same report", () => {
    const a = runScenario(opts());
    const b = runScenario(opts());
    expect(a.report.failure).toBeNull();
    expect(JSON.stringify(a.report)).toBe(JSON.stringify(b.report));
    expect(a.report.machine.pmem).toEqual([{ pages: 2048, node: 0 }]);
    const p = a.report.pmem!;
    expect(p.rounds).toBe(2);
    expect(p.pmemPages).toBe(2048);
    expect(p.workingSetPages).toBe(1024);
    expect(p.lostBytes).toBe(0);
    const [storage, ram] = p.modes;
    expect([storage!.mode, ram!.mode]).toEqual(["storage", "ram"]);
    // Storage: every working-set page is the device's, no struct pages, stores and block writes wear the media.
    expect(storage!.pagesOnPmem).toBe(2 * 1024);
    expect(storage!.structPageBytes).toBe(0);
    expect(storage!.kernelStructPageBytes).toBe(0);
    expect(storage!.blockWrites).toBe(2 * 1024);
    expect(storage!.sectorWrites).toBeGreaterThanOrEqual(storage!.blockWrites + 2 * 1024);
    expect(storage!.maxSectorWrites).toBeGreaterThan(2); // the hot set
    expect(storage!.offlineAttempts).toBe(0);
    // RAM: most of the working set lived on the device; struct pages for all of it; offline moved it all off.
    expect(ram!.pagesOnPmem).toBeGreaterThan(1024);
    expect(ram!.kernelStructPageBytes).toBe(2048 * KERNEL_STRUCT_PAGE_BYTES);
    expect(ram!.structPageBytes).toBeGreaterThan(0);
    expect(ram!.offlineAttempts).toBe(2);
    expect(ram!.offlineSuccesses).toBe(2);
    expect(ram!.offlineMigrated).toBe(ram!.pagesOnPmem);
    expect(ram!.sectorWrites).toBeGreaterThan(0);
    expect(ram!.pagesVerified).toBe(2 * 1024);
    expect(storage!.ops + ram!.ops).toBeLessThanOrEqual(a.report.ops);
    expect(a.report.checks).toBeGreaterThan(4);
  });

  it("prints and draws the table; merges runs; a report from outside is checked", () => {
    const a = runScenario(opts(2)).report;
    const b = runScenario(opts(3)).report;
    const report = buildReport("pmem", [a]);
    const text = formatSummary(report);
    expect(text).toMatch(/pmem as storage \(DAX \+ block writes\) vs as RAM/);
    expect(text).toMatch(/\n  storage +[\d,]+ +2,048\/2,048 /);
    expect(text).toMatch(/\n  ram .* 2\/2 /);
    expect(text).toMatch(/lost bytes: 0/);
    expect(renderHtml(report)).toMatch(/pmem as storage vs as RAM/);
    const merged = mergeReports([report, buildReport("pmem", [b])]);
    const t = merged.total.pmem!;
    expect(t.rounds).toBe(4);
    expect(t.modes[0]!.sectorWrites).toBe(a.pmem!.modes[0]!.sectorWrites + b.pmem!.modes[0]!.sectorWrites);
    expect(t.modes[1]!.maxSectorWrites).toBe(Math.max(a.pmem!.modes[1]!.maxSectorWrites, b.pmem!.modes[1]!.maxSectorWrites));
    const json = JSON.parse(JSON.stringify(merged));
    expect(checkReport(json, "r.json").total.pmem).toEqual(t);
    json.runs[0].pmem.modes[1].mode = "swap";
    expect(() => checkReport(json, "r.json")).toThrow(/pmem\.modes\[1\]\.mode must be "ram"/);
    json.runs[0].pmem.modes[1].mode = "ram";
    json.runs[0].pmem.modes[1].offlineSuccesses = 9;
    expect(() => checkReport(json, "r.json")).toThrow(/offlineSuccesses must be at most offlineAttempts/);
  });

  it("a block write that never reached the media is caught", () => {
    const run = StressRun.fromScenario(opts(4));
    const dev = run.world.machine.pmems[0]!;
    let dropped = 0;
    dev.write = () => (dropped++, 0);
    const r = run.finish().report;
    expect(dropped).toBeGreaterThan(0);
    expect(r.failure?.kind).toBe("data");
    expect(r.failure?.message).toMatch(/block read of sector \d+ gives tag/);
  });

  it("a DAX store that never reached the media is caught", () => {
    const run = StressRun.fromScenario(opts(5));
    const dev = run.world.machine.pmems[0]!;
    const peek = dev.peek.bind(dev);
    dev.peek = (s: number) => (s === 7 ? 0n : peek(s));
    const r = run.finish().report;
    expect(r.failure?.kind).toBe("data");
    expect(r.failure?.message).toMatch(/sector 7 holds 0 on the media/);
  });

  it("the machine's pmem field: presets get one, bad ones are refused, the run is not recordable", () => {
    expect(withPmem(PRESETS.default!).pmem).toEqual([{ pages: 8192, node: 0 }]);
    expect(PRESETS.default!.pmem).toBeUndefined();
    const mine = { ...PRESETS.small!, pmem: [{ pages: 1024, node: 0 }] };
    expect(withPmem(mine)).toBe(mine);
    expect(checkMachineSpec(JSON.parse(JSON.stringify(mine))).pmem).toEqual([{ pages: 1024, node: 0 }]);
    expect(() => checkMachineSpec({ ...mine, pmem: [{ pages: 1000 }] })).toThrow(/pmem\[0\]\.pages must be a multiple of the pageblock/);
    expect(() => checkMachineSpec({ ...mine, pmem: [{ pages: 1024, node: 3 }] })).toThrow(InputError);
    expect(() => checkMachineSpec({ ...mine, pmem: [{ pages: 1024, size: 1 }] })).toThrow(/unknown field "size"/);
    expect(() => checkRunOptions({ ...opts(), record: true })).toThrow(/no op stream to record/);
    const r = runScenario({ ...opts(6, 20_000), machine: mine }).report;
    expect(r.failure).toBeNull();
    expect(r.pmem!.pmemPages).toBe(1024);
    expect(r.pmem!.rounds).toBeGreaterThan(0);
  });
});
