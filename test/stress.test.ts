// The stress runner as a library: every scenario runs clean and deterministically,
// stepping does not change a run, records replay to the same report, and the checks
// do catch lost data and broken invariants.
import { describe, expect, it } from "vitest";
import {
  PRESETS, SCENARIOS, StressRun, runScenario, replay, buildReport, mergeReports, InputError, World,
  OP_CPU_READ, OP_CPU_WRITE, OP_MMAP, OP_SPAWN, type RunOptions,
} from "../src/index.js";
import { encodeRecord, decodeRecord } from "../src/stress/record.js";
import { checkReport } from "../src/stress/report-check.js";
import { checkMachineSpec } from "../src/stress/machine-spec.js";
import { L } from "../src/layout.js";
import type { WasmBuild } from "../src/config.js";

const build = (process.env.MMEMU_BUILD ?? "release") as WasmBuild;
const small = PRESETS.small!;
const opts = (scenario: string, seed = 1, ops = 20000): RunOptions => ({ scenario, seed, ops, machine: small, build, checkEvery: 4096 });

describe("scenarios", () => {
  for (const s of SCENARIOS) {
    it(`${s.name} runs clean, verifies every page and is deterministic`, () => {
      const a = runScenario(opts(s.name));
      expect(a.report.failure).toBeNull();
      expect(a.report.ops).toBe(20000);
      expect(a.report.verifiedPages).toBeGreaterThan(0);
      expect(a.report.checks).toBeGreaterThan(20000 / 4096);
      if (s.name !== "mixed") expect(a.report.counters.pgmigrate_success).toBeGreaterThan(0);
      const b = runScenario(opts(s.name));
      expect(JSON.stringify(b.report)).toBe(JSON.stringify(a.report));
    });
  }

  it("mixed does everything: every kind of operation runs", () => {
    const r = runScenario({ ...opts("mixed", 2, 400_000), checkEvery: 65536 }).report;
    expect(r.failure).toBeNull();
    for (const [kind, n] of Object.entries(r.opCounts)) expect([kind, n > 0]).toEqual([kind, true]);
    expect(r.counters.cow_fault).toBeGreaterThan(0);
  });

  it("a run too short for a scenario's set-up ends cleanly", () => {
    for (const s of SCENARIOS) {
      const r = runScenario(opts(s.name, 1, 1)).report;
      expect(r.failure).toBeNull();
      expect(r.ops).toBeLessThanOrEqual(1);
    }
  });

  it("different seeds give different runs", () => {
    expect(JSON.stringify(runScenario(opts("mixed", 1)).report.counters)).not.toBe(JSON.stringify(runScenario(opts("mixed", 2)).report.counters));
  });

  it("stepping a run in small steps gives the same report as running it at once", () => {
    const whole = runScenario(opts("mixed", 5));
    const run = StressRun.fromScenario(opts("mixed", 5));
    let steps = 0;
    while (run.step(997)) steps++;
    expect(steps).toBeGreaterThan(10);
    expect(JSON.stringify(run.finish().report)).toBe(JSON.stringify(whole.report));
  });
});

describe("record and replay", () => {
  it("a record replays to the same report, through its file encoding", () => {
    const rec = StressRun.fromScenario({ ...opts("mixed", 3), record: true }).finish();
    const file = encodeRecord(rec.record!.header, rec.record!.words);
    const { header, words } = decodeRecord(file);
    expect(header.ops).toBe(rec.report.ops);
    const again = replay(header, words, { build });
    expect(JSON.stringify(again.report)).toBe(JSON.stringify(rec.report));
  });

  const good = (): Uint8Array => {
    const rec = StressRun.fromScenario({ ...opts("gpu-offload", 1, 2000), record: true }).finish();
    return encodeRecord(rec.record!.header, rec.record!.words);
  };
  const withHeader = (mutate: (h: Record<string, unknown>) => void): Uint8Array => {
    const bytes = good();
    const nl = bytes.indexOf(10);
    const h = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl)));
    mutate(h);
    const head = new TextEncoder().encode(JSON.stringify(h) + "\n");
    const out = new Uint8Array(head.length + bytes.length - nl - 1);
    out.set(head);
    out.set(bytes.subarray(nl + 1), head.length);
    return out;
  };

  it.each([
    ["empty", () => new Uint8Array(0), /empty/],
    ["truncated", () => good().subarray(0, good().length - 5), /truncated/],
    ["trailing bytes", () => new Uint8Array([...good(), 1, 2, 3, 4]), /trailing/],
    ["not JSON", () => new TextEncoder().encode("hello\n"), /not valid JSON/],
    ["wrong version", () => withHeader((h) => (h.version = 2)), /version 2/],
    ["unknown field", () => withHeader((h) => (h.evil = 1)), /unknown field "evil"/],
    ["unknown scenario", () => withHeader((h) => (h.scenario = "nope")), /unknown scenario/],
    ["huge machine", () => withHeader((h) => ((h.machine as { nodes: { normal: number }[] }).nodes[0]!.normal = 2 ** 40)), /normal must be an integer/],
    ["string ops", () => withHeader((h) => (h.ops = "12")), /ops must be an integer/],
  ])("a bad record file is refused: %s", (_name, bytes, message) => {
    expect(() => decodeRecord(bytes())).toThrow(InputError);
    expect(() => decodeRecord(bytes())).toThrow(message);
  });

  it("ops that name what does not exist are bad input, not a crash", () => {
    const header = decodeRecord(good()).header;
    const bad = (words: number[]): void => {
      replay({ ...header, ops: words.length / 4 }, new Uint32Array(words), { build });
    };
    expect(() => bad([99, 0, 0, 0])).toThrow(/unknown operation kind 99/);
    expect(() => bad([OP_CPU_READ, 5, 0, 0])).toThrow(/region slot 5 is not a mapped region/);
    expect(() => bad([OP_SPAWN, 0, 0, 0, OP_MMAP, 0, 4, 0, OP_CPU_WRITE, 0, 4, 0])).toThrow(/pages 4\+1 are outside region 0/);
    expect(() => bad([OP_SPAWN, 0, 0, 0, OP_MMAP, 0, 0, 0])).toThrow(/pages 0 is outside/);
  });
});

describe("the checks catch what they must", () => {
  const world = (): World => {
    const w = new World({ spec: small, build, checkEvery: 1 << 30 });
    w.exec(OP_SPAWN, 0, 0, 0);
    w.exec(OP_MMAP, 0, 16, 0);
    w.exec(OP_CPU_WRITE, 0, 3, 0);
    w.flush();
    return w;
  };

  it("a page whose contents changed behind the shadow's back is lost data", () => {
    const w = world();
    const r = w.regions[0]!;
    const pfn = Number(w.procs[0]!.pte(r.addr + 3 * 4096) >> 12n) & 0xffffff;
    const tags = new Uint32Array(w.machine.core.memory.buffer, w.machine.layout.slots[L.TAGS]!, 2 * (pfn + 1));
    tags[2 * pfn] ^= 1;
    w.exec(OP_CPU_READ, 0, 3, 0);
    expect(() => w.flush()).toThrow(/read tag .* from page 3, expected/);
  });

  it("a broken invariant stops the run with the operation index", () => {
    const w = world();
    const pfn = Number(w.procs[0]!.pte(w.regions[0]!.addr + 3 * 4096) >> 12n) & 0xffffff;
    w.machine.page.trylock(pfn); // a page left locked, as a buggy driver would
    w.exec(OP_CPU_READ, 0, 3, 0);
    expect(() => w.check()).toThrow(expect.objectContaining({ kind: "invariant", opIndex: 3, message: expect.stringMatching(/left locked/) }));
  });

  it("the report of a failed run names the kind, the op and the message", () => {
    const run = StressRun.fromScenario(opts("gpu-offload", 1, 5000));
    run.step(1000);
    const r0 = run.world.regions[0]!;
    let page = 0;
    while ((run.world.procs[0]!.pte(r0.addr + page * 4096) & 1n) === 0n) page++;
    expect(run.world.machine.page.trylock(Number(run.world.procs[0]!.pte(r0.addr + page * 4096) >> 12n) & 0xffffff)).toBe(true);
    const { report } = run.finish();
    expect(report.failure).not.toBeNull();
    expect(report.failure!.kind).toBe("invariant");
    expect(report.failure!.opIndex).toBeGreaterThan(999);
  });
});

describe("reports", () => {
  it("shards merge to the report of the whole sweep; the totals are recomputed", () => {
    const runs = [1, 2, 3].map((seed) => runScenario(opts("coherent-share", seed, 5000)).report);
    const whole = buildReport("coherent-share", runs);
    const merged = mergeReports([buildReport("coherent-share", [runs[2]!, runs[0]!]), buildReport("coherent-share", [runs[1]!])]);
    expect(JSON.stringify(merged)).toBe(JSON.stringify(whole));
    expect(whole.total.ops).toBe(15000);
    const parsed = checkReport(JSON.parse(JSON.stringify({ ...whole, total: { ops: -5 } })), "r.json");
    expect(parsed.total.ops).toBe(15000);
  });

  it.each([
    ["not a report", {}, /not an mmemu report/],
    ["a run of another scenario", (r: Record<string, unknown>) => ((r.runs as Record<string, unknown>[])[0]!.scenario = "mixed"), /not the report's/],
    ["a counter that is a string", (r: Record<string, unknown>) => (((r.runs as Record<string, unknown>[])[0]!.counters as Record<string, unknown>).pgfault = "7"), /pgfault must be a non-negative number/],
    ["a page map with markup", (r: Record<string, unknown>) => ((((r.runs as Record<string, unknown>[])[0]!.timeline as Record<string, unknown>).samples as Record<string, unknown>[])[0]!.map = "<b>"), /must be digits/],
  ])("a hostile report is refused: %s", (_name, mutate, message) => {
    const rep = JSON.parse(JSON.stringify(buildReport("gpu-offload", [runScenario(opts("gpu-offload", 1, 3000)).report])));
    const input = typeof mutate === "function" ? (mutate(rep), rep) : mutate;
    expect(() => checkReport(input, "r.json")).toThrow(message);
  });

  it("machine files are checked field by field", () => {
    expect(() => checkMachineSpec({ nodes: [] })).toThrow(/1 to 8 nodes/);
    expect(() => checkMachineSpec({ nodes: [{ normal: 4096 }], devices: [{ kind: "magic", pages: 64 }] })).toThrow(/"private" or "coherent"/);
    expect(() => checkMachineSpec({ nodes: [{ normal: 4096, cpus: 4 }] })).toThrow(/unknown field "cpus"/);
    expect(() => checkMachineSpec({ nodes: Array(8).fill({ normal: 1 << 22 }) })).toThrow(/the limit is/);
    expect(() => runScenario({ ...opts("gpu-offload"), machine: { nodes: [{ normal: 4096, movable: 0 }], devices: [] } })).toThrow(/needs a device-private device/);
  });
});
