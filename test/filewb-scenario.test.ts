// The file-writeback scenario: a device dirties file pages in its memory, writeback by
// migrating them back vs through bounce pages, power failures; its report (JSON, terminal,
// HTML, merge, schema check) and the CLI.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PRESETS, StressRun, runScenario, buildReport, mergeReports, formatSummary, renderHtml, type RunOptions } from "../src/index.js";
import { checkReport } from "../src/stress/report-check.js";
import type { WasmBuild } from "../src/config.js";

const build = (process.env.MMEMU_BUILD ?? "release") as WasmBuild;
const opts = (seed = 1, ops = ROUND): RunOptions => ({ scenario: "file-writeback", seed, ops, machine: PRESETS.small!, build, checkEvery: 4096 });
/** The ops of one round of both policies on the small preset: runs of this many do exactly one. */
const ROUND = ((): number => {
  const run = StressRun.fromScenario(opts(1, 10_000_000));
  run.step(1);
  return run.world.ops;
})();

describe("file-writeback", () => {
  it("runs clean with both policies on the same workload, loses nothing fsync confirmed, and is deterministic", () => {
    const a = runScenario(opts());
    const b = runScenario(opts());
    expect(a.report.failure).toBeNull();
    expect(JSON.stringify(a.report)).toBe(JSON.stringify(b.report));
    const f = a.report.fileWriteback!;
    expect(f.rounds).toBe(1);
    const [back, bounce] = f.policies;
    expect([back!.policy, bounce!.policy]).toEqual(["migrate-back", "bounce"]);
    // The same workload: the same device writes, read-back of every page.
    expect(back!.deviceWrites).toBe(bounce!.deviceWrites);
    expect(back!.deviceWrites).toBeGreaterThan(0);
    for (const p of f.policies) {
      expect(p.pagesVerified).toBe(f.filePages);
      expect(p.bytesLost).toBe(0);
      expect(p.pagesWritten).toBeGreaterThan(0);
    }
    // migrate-back moves pages home and bounces nothing; bounce leaves them on the device.
    expect(back!.bounces).toBe(0);
    expect(back!.migratedBack).toBeGreaterThan(0);
    expect(bounce!.bounces).toBeGreaterThan(0);
    expect(bounce!.migratedBack).toBe(0);
    expect(a.report.counters.nr_bounce).toBe(bounce!.bounces);
  });

  it("prints and draws the table; merges runs; a report from outside is checked", () => {
    const a = runScenario(opts(2)).report;
    const b = runScenario(opts(3)).report;
    const report = buildReport("file-writeback", [a]);
    const text = formatSummary(report);
    expect(text).toMatch(/writeback of device-dirtied file pages/);
    expect(text).toMatch(/\n  migrate-back +\d/);
    expect(text).toMatch(/bytes lost: 0/);
    expect(renderHtml(report)).toMatch(/Writeback of device-dirtied file pages/);
    const merged = mergeReports([report, buildReport("file-writeback", [b])]);
    const t = merged.total.fileWriteback!;
    expect(t.rounds).toBe(2);
    expect(t.policies[1]!.bounces).toBe(a.fileWriteback!.policies[1]!.bounces + b.fileWriteback!.policies[1]!.bounces);
    expect(() => checkReport(JSON.parse(JSON.stringify(report)), "r.json")).not.toThrow();
    const bad = JSON.parse(JSON.stringify(report));
    bad.runs[0].fileWriteback.policies[1].policy = "later";
    expect(() => checkReport(bad, "r.json")).toThrow(/policy/);
  });

  it.runIf(build === "release")("runs from the command line", () => {
    const cli = resolve("dist/cli/main.js");
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build:ts" (npm test does)`);
    const dir = mkdtempSync(join(tmpdir(), "mmemu-filewb-"));
    const run = (...args: string[]) => spawnSync(process.execPath, ["--no-wasm-dynamic-tiering", cli, ...args], { encoding: "utf8", timeout: 120_000 });
    const r = run("run", "file-writeback", "--machine", "small", "--ops", String(ROUND), "--json", join(dir, "r.json"), "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(join(dir, "r.json"), "utf8"));
    expect(json.total.fileWriteback.rounds).toBe(1);
    expect(json.total.fileWriteback.policies[0].bytesLost + json.total.fileWriteback.policies[1].bytesLost).toBe(0);
  });
});
