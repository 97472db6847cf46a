// The mmemu command as a user runs it (the built dist/cli/main.js): reports, determinism,
// workers and shards, record and replay, traces, and one-line errors with exit status 2
// that write nothing.
import { describe, expect, it, beforeAll } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";

const CLI = resolve("dist/cli/main.js");
const release = (process.env.MMEMU_BUILD ?? "release") === "release";
let dir: string;

function mmemu(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--no-wasm-dynamic-tiering", CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const at = (name: string): string => join(dir, name);
const small = ["--machine", "small", "--ops", "20000", "--quiet"];

// The CLI runs the release build unless told; one project is enough for it.
describe.runIf(release)("mmemu CLI", () => {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build:ts" (npm test does)`);
    dir = mkdtempSync(join(tmpdir(), "mmemu-cli-"));
  });

  it("lists scenarios and presets, and has --help on every command", () => {
    const list = mmemu("list");
    expect(list.status).toBe(0);
    for (const s of ["mixed", "gpu-offload", "coherent-share", "oversubscribe", "small", "default"]) expect(list.stdout).toContain(s);
    for (const cmd of [[], ["run"], ["list"], ["replay"], ["merge"]]) {
      const h = mmemu(...cmd, "--help");
      expect(h.status).toBe(0);
      expect(h.stdout).toMatch(/^usage: mmemu/);
    }
  });

  it("runs a scenario, prints the summary, and the same seed writes the same JSON bytes", () => {
    const a = mmemu("run", "gpu-offload", ...small, "--seed", "4", "--json", at("a.json"), "--html", at("a.html"));
    expect(a.status).toBe(0);
    expect(a.stdout).toContain("mmemu gpu-offload: 1 run (seed 4), 20,000 operations");
    expect(a.stdout).toMatch(/latency \(simulated\)/);
    expect(a.stdout).toContain("pgmigrate_success");
    expect(mmemu("run", "gpu-offload", ...small, "--seed", "4", "--json", at("b.json")).status).toBe(0);
    expect(readFileSync(at("a.json"), "utf8")).toBe(readFileSync(at("b.json"), "utf8"));
    const report = JSON.parse(readFileSync(at("a.json"), "utf8"));
    expect(report.runs[0].seed).toBe(4);
    expect(report.runs[0].failure).toBeNull();
    expect(readFileSync(at("a.html"), "utf8")).toMatch(/^<!DOCTYPE html>/i);
  });

  it("two workers give the report of the same sweep run in one thread; shards merge to it", () => {
    expect(mmemu("run", "mixed", ...small, "--workers", "2", "--json", at("w2.json")).status).toBe(0);
    expect(mmemu("run", "mixed", ...small, "--runs", "2", "--json", at("w1.json")).status).toBe(0);
    const w2 = readFileSync(at("w2.json"), "utf8");
    expect(w2).toBe(readFileSync(at("w1.json"), "utf8"));
    expect(JSON.parse(w2).runs.map((r: { seed: number }) => r.seed)).toEqual([1, 2]);
    expect(mmemu("run", "mixed", ...small, "--runs", "2", "--shard", "1/2", "--json", at("s1.json")).status).toBe(0);
    expect(mmemu("run", "mixed", ...small, "--runs", "2", "--shard", "2/2", "--json", at("s2.json")).status).toBe(0);
    const merged = mmemu("merge", at("s2.json"), at("s1.json"), "--json", at("merged.json"));
    expect(merged.status).toBe(0);
    expect(readFileSync(at("merged.json"), "utf8")).toBe(w2);
  });

  it("a recorded run replays to the same report; the trace is Chrome trace-event JSON", () => {
    expect(mmemu("run", "oversubscribe", ...small, "--record", at("run.rec"), "--json", at("rec.json"), "--trace", at("trace.json")).status).toBe(0);
    const replayed = mmemu("replay", at("run.rec"), "--json", at("replay.json"), "--quiet");
    expect(replayed.status).toBe(0);
    expect(readFileSync(at("replay.json"), "utf8")).toBe(readFileSync(at("rec.json"), "utf8"));
    const trace = JSON.parse(readFileSync(at("trace.json"), "utf8"));
    expect(trace.traceEvents.length).toBeGreaterThan(100);
    const names = new Set(trace.traceEvents.map((e: { name: string }) => e.name));
    for (const n of ["thread_name", "migrate_vma to device", "evict (migrate_device_range)", "migrate_to_ram"]) expect(names).toContain(n);
    for (const e of trace.traceEvents) if (e.ph === "X") expect(e.dur).toBeGreaterThanOrEqual(0);
  });

  it("prints plain progress lines when stderr is not a terminal", () => {
    const r = mmemu("run", "mixed", "--machine", "small", "--ops", "200000");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/mmemu mixed: [\d,]+ ops \(\d+%\), [\d.]+ [kM]? ?ops\/s/);
    expect(r.stderr).not.toContain("\r");
  });

  const machineFile = (name: string, text: string): string => {
    writeFileSync(at(name), text);
    return at(name);
  };

  it.each([
    ["an unknown scenario", ["run", "nope"], /unknown scenario "nope"/],
    ["an unknown flag", ["run", "--fast"], /unknown flag --fast/],
    ["a malformed number", ["run", "--ops", "12x"], /--ops needs an integer/],
    ["--ops with --duration", ["run", "--ops", "5", "--duration", "1"], /exclude each other/],
    ["a bad shard", ["run", "--shard", "3/2"], /--shard needs i\/N/],
    ["an unknown command", ["frobnicate"], /unknown command "frobnicate"/],
    ["a missing machine file", ["run", "--machine", "/nonexistent/m.json"], /neither a preset .* nor an existing file/],
    ["a machine file that is not JSON", ["run", "--machine", "@bad1"], /not valid JSON/],
    ["a machine file with wrong types", ["run", "--machine", "@bad2"], /nodes\[0\]\.normal must be an integer/],
    ["a machine file with huge sizes", ["run", "--machine", "@bad3"], /the limit is/],
    ["a replay file that is truncated", ["replay", "@trunc"], /truncated/],
    ["a replay file that is garbage gzip", ["replay", "@gz"], /not a readable gzip stream/],
    ["--trace over several runs", ["run", "--runs", "2", "--trace", "@out"], /one run/],
    ["an output in a missing directory", ["run", "--json", "/nonexistent/dir/r.json"], /does not exist/],
  ])("%s: one line on stderr, exit status 2, nothing written", (_name, args, message) => {
    const files: Record<string, () => string> = {
      "@bad1": () => machineFile("bad1.json", "{nodes:"),
      "@bad2": () => machineFile("bad2.json", JSON.stringify({ nodes: [{ normal: "lots" }] })),
      "@bad3": () => machineFile("bad3.json", JSON.stringify({ nodes: Array(8).fill({ normal: 4194304, movable: 4194304 }) })),
      "@trunc": () => {
        const rec = gunzipSync(readFileSync(at("run.rec")));
        writeFileSync(at("trunc.rec"), rec.subarray(0, rec.length - 7));
        return at("trunc.rec");
      },
      "@gz": () => {
        writeFileSync(at("bad.gz"), new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]));
        return at("bad.gz");
      },
      "@out": () => at("never.json"),
    };
    const before = readdirSync(dir).length;
    const argv = args.map((a) => (files[a] ? files[a]!() : a));
    // Where an output flag is allowed, ask for one: it must not appear.
    if ((argv[0] === "run" || argv[0] === "replay") && !argv.includes("--json")) argv.push("--json", at("never-written.json"));
    const made = readdirSync(dir).length - before;
    const r = mmemu(...argv, "--quiet");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe("");
    expect(readdirSync(dir).length - before).toBe(made);
  });
});
