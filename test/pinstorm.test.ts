// The pin-storm scenario: the same holds as plain references, long-term pins and pin control
// holds against compaction, CMA and memory offline; its report (JSON, terminal, HTML, merge,
// schema check), that its checks catch a stale holder table and lost data, and the CLI.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  PRESETS, StressRun, runScenario, buildReport, mergeReports, formatSummary, renderHtml, InputError, checkRunOptions, checkMachineSpec,
  type RunOptions, type PinpageOps, type PinpageSystem,
} from "../src/index.js";
import { checkReport } from "../src/stress/report-check.js";
import type { WasmBuild } from "../src/config.js";

const build = (process.env.MMEMU_BUILD ?? "release") as WasmBuild;
const opts = (seed = 1, ops = ROUND): RunOptions => ({ scenario: "pin-storm", seed, ops, machine: PRESETS.small!, build, checkEvery: 16384 });
/** The ops of the set-up and one full round of the three modes on the small preset (about 130,000): runs of this many do exactly that. */
const ROUND = ((): number => {
  const run = StressRun.fromScenario(opts(1, 10_000_000));
  run.step(1);
  return run.world.ops;
})();

describe("pin-storm", () => {
  it("runs clean, and the same seed gives the same report", () => {
    const a = runScenario(opts());
    const b = runScenario(opts());
    expect(a.report.failure).toBeNull();
    expect(a.report.pinStorm!.rounds).toBe(1);
    expect(JSON.stringify(a.report)).toBe(JSON.stringify(b.report));
    expect(a.report.checks).toBeGreaterThan(6);
  });

  it("plain references make CMA and offline fail; pin control holders move along and see their data", () => {
    const p = runScenario(opts(3)).report.pinStorm!;
    const [get, longterm, pinpage] = p.modes;
    expect([get!.mode, longterm!.mode, pinpage!.mode]).toEqual(["get", "longterm", "pinpage"]);
    // The same program in each mode: the same holds, every table entry verified as often.
    for (const m of p.modes) {
      expect(m.heldPages).toBe(p.holders * p.heldPerHolder);
      expect(m.holderPagesVerified).toBe(3 * m.heldPages);
      expect(m.pagesVerified).toBe(p.regionPages);
      for (const op of [m.compactMovable, m.compactNormal, m.cma, m.offlineMovable, m.offlineNormal]) expect(op.attempts).toBe(1);
    }
    // FOLL_GET references held long: nothing that must move them succeeds.
    expect(get!.cma.successes).toBe(0);
    expect(get!.offlineMovable.successes).toBe(0);
    expect(get!.offlineNormal.successes).toBe(0);
    expect(get!.compactMovable.successes).toBe(0);
    expect(get!.stuck.pinned).toBeGreaterThan(0);
    // FOLL_LONGTERM: the pages left ZONE_MOVABLE and CMA first; ZONE_NORMAL pays.
    expect(longterm!.longtermMigrated).toBeGreaterThan(0);
    expect(longterm!.cma.successes).toBe(1);
    expect(longterm!.offlineMovable.successes).toBe(1);
    expect(longterm!.offlineNormal.successes).toBe(0);
    expect(longterm!.compactNormal.successes).toBe(0);
    // The pin control subsystem: everything succeeds, and the holders followed their pages.
    for (const op of [pinpage!.compactMovable, pinpage!.compactNormal, pinpage!.cma, pinpage!.offlineMovable, pinpage!.offlineNormal]) expect(op.successes).toBe(1);
    expect(pinpage!.stuck.pinned ?? 0).toBe(0);
    expect(pinpage!.holderMoves).toBeGreaterThan(0);
    expect(get!.holderMoves + longterm!.holderMoves).toBe(0);
    expect(p.lostBytes).toBe(0);
  });

  it("prints and draws the table; merges runs; a report from outside is checked", () => {
    const a = runScenario(opts(4)).report;
    const b = runScenario(opts(5)).report;
    const report = buildReport("pin-storm", [a]);
    const text = formatSummary(report);
    expect(text).toMatch(/holds vs the kernel's movers/);
    expect(text).toMatch(/\n  get +0\/1 /);
    expect(text).toMatch(/\n  pinpage +1\/1 +1\/1 +1\/1 +1\/1 +1\/1 /);
    expect(text).toMatch(/lost bytes: 0/);
    expect(renderHtml(report)).toMatch(/Holds vs compaction, CMA and memory offline/);
    const merged = mergeReports([report, buildReport("pin-storm", [b])]);
    const t = merged.total.pinStorm!;
    expect(t.rounds).toBe(2);
    expect(t.modes[2]!.holderMoves).toBe(a.pinStorm!.modes[2]!.holderMoves + b.pinStorm!.modes[2]!.holderMoves);
    expect(t.modes[0]!.stuck.pinned).toBe(a.pinStorm!.modes[0]!.stuck.pinned! + b.pinStorm!.modes[0]!.stuck.pinned!);
    const json = JSON.parse(JSON.stringify(merged));
    expect(checkReport(json, "r.json").total.pinStorm).toEqual(t);
    json.runs[0].pinStorm.modes[2].mode = "magic";
    expect(() => checkReport(json, "r.json")).toThrow(/pinStorm\.modes\[2\]\.mode must be "pinpage"/);
    json.runs[0].pinStorm.modes[2].mode = "pinpage";
    json.runs[0].pinStorm.modes[0].cma.successes = 5;
    expect(() => checkReport(json, "r.json")).toThrow(/cma\.successes must be at most attempts/);
  });

  it("a holder whose table missed a move is caught", () => {
    const run = StressRun.fromScenario(opts(6));
    const m = run.world.machine;
    const register = m.registerPinpage.bind(m);
    let dropped = 0;
    // The first migrate callback of the run claims success but leaves the table as it was.
    m.registerPinpage = (<T>(name: string, ops: PinpageOps<T>): PinpageSystem<T> =>
      register(name, { ...ops, migrate: (sys, pfn, newPfn, priv) => (dropped++ === 0 ? 0 : ops.migrate(sys, pfn, newPfn, priv)) })) as typeof m.registerPinpage;
    const r = run.finish().report;
    expect(dropped).toBeGreaterThan(0);
    expect(r.failure?.kind).toBe("data");
    expect(r.failure?.message).toMatch(/pinpage holders, after compaction, CMA and offline: \w+ keeps page \d+ of region \d+ at pfn \d+ .*but the process maps pfn \d+/);
    expect(r.pinStorm!.lostBytes).toBe(4096);
  });

  it("data changed behind everyone's back is caught", () => {
    const run = StressRun.fromScenario(opts(7));
    const m = run.world.machine;
    const cmaAlloc = m.cmaAlloc.bind(m);
    let calls = 0;
    // Before the second mode's CMA allocation, one page of every region the process maps changes.
    m.cmaAlloc = (area: number, count: number, align?: number): number => {
      if (calls++ === 1) {
        for (const r of run.world.live) {
          const pfn = Number((run.world.procs[r.proc]!.pte(r.addr) >> 12n) & 0xffffffffffn);
          m.page.writeTag(pfn, m.page.readTag(pfn) ^ 1n);
        }
      }
      return cmaAlloc(area, count, align);
    };
    const r = run.finish().report;
    expect(calls).toBeGreaterThan(1);
    expect(r.failure?.kind).toBe("data");
    expect(r.failure?.message).toMatch(/longterm holders|read tag \d+ from page 0, expected/);
  });

  it("needs a CMA area; the machine's cma field is checked", () => {
    const machine = { ...structuredClone(PRESETS.small!), cma: undefined };
    expect(() => checkRunOptions({ ...opts(), machine })).toThrow(InputError);
    expect(() => checkRunOptions({ ...opts(), machine })).toThrow(/pin-storm" needs a CMA area/);
    expect(() => checkRunOptions({ ...opts(), record: true })).toThrow(/no op stream to record/);
    const spec = (cma: unknown) => ({ nodes: [{ normal: 4096, movable: 0 }], devices: [], cma });
    expect(checkMachineSpec(spec([{ node: 0, pages: 1024 }])).cma).toEqual([{ node: 0, pages: 1024 }]);
    expect(() => checkMachineSpec(spec([{ node: 0, pages: 1000 }]))).toThrow(/cma\[0\]\.pages must be a multiple of the pageblock/);
    expect(() => checkMachineSpec(spec([{ node: 1, pages: 512 }]))).toThrow(/cma\[0\]\.node must be an integer in \[0, 0\]/);
    expect(() => checkMachineSpec(spec([{ node: 0, pages: 2048 }, { node: 0, pages: 512 }]))).toThrow(/more than half its normal zone/);
    expect(() => checkMachineSpec(spec([{ node: 0, pages: 512, zone: "movable" }]))).toThrow(/unknown field "zone"/);
  });

  // The CLI runs the release build (built by npm test's pretest).
  it.runIf(build === "release")("runs from the command line", () => {
    const cli = resolve("dist/cli/main.js");
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build:ts" (npm test does)`);
    const dir = mkdtempSync(join(tmpdir(), "mmemu-pinstorm-"));
    const run = (...args: string[]) => spawnSync(process.execPath, ["--no-wasm-dynamic-tiering", cli, ...args], { encoding: "utf8", timeout: 120_000 });
    const list = run("list");
    expect(list.stdout).toContain("pin-storm");
    const r = run("run", "pin-storm", "--machine", "small", "--ops", String(ROUND), "--json", join(dir, "r.json"), "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(join(dir, "r.json"), "utf8"));
    expect(json.total.pinStorm.rounds).toBe(1);
    expect(json.total.pinStorm.lostBytes).toBe(0);
  });
});
