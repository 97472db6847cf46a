// The fuzzer (src/fuzz): CI's fixed-seed budget (issue 7's bar: ≥ 1 M operations, no
// invariant failure, no lost byte, in the release build; a smaller budget in debug), the
// shrinker on a planted bug, and the replay files' schema.
import { describe, it, expect } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { runCampaign, summaryLine } from "../src/fuzz/campaign.js";
import { runProgram } from "../src/fuzz/exec.js";
import { generateProgram } from "../src/fuzz/generate.js";
import { shrinkProgram } from "../src/fuzz/shrink.js";
import { decodeReplay, encodeReplay, ReplayError, MAX_REPLAY_OPS } from "../src/fuzz/replay.js";

const build = process.env.MMEMU_BUILD === "debug" ? "debug" : "release";
const BUDGET = build === "release" ? 1_000_000 : 60_000;

describe(`fuzzer (${build})`, () => {
  it(`runs ${BUDGET} operations from seed 1 with no failure`, () => {
    const r = runCampaign({ seed: 1, maxOperations: BUDGET, seconds: 3600, build, shrink: false });
    console.log(summaryLine(r));
    expect(r.failures.map((f) => f.message)).toEqual([]);
    expect(r.operations).toBeGreaterThanOrEqual(BUDGET);
    expect(r.faultsInjected).toBeGreaterThan(0);
    expect(r.expectedErrors).toBeGreaterThan(0);
    expect(r.verifiedPages).toBeGreaterThan(0);
  }, 600_000);

  it("is deterministic: the same seed gives the same program and the same run", () => {
    const a = generateProgram(42);
    expect(generateProgram(42)).toEqual(a);
    const x = runProgram(a, { build });
    const y = runProgram(a, { build });
    expect({ ...x, failure: null }).toEqual({ ...y, failure: null });
  });

  it("shrinks a planted bug to the few ops that matter, and the replay reproduces it", () => {
    // The planted bug: a CPU access by a child of a process that ran madvise "breaks an invariant".
    let seed = 1;
    let found = null;
    for (; seed < 200 && !found; seed++) {
      const prog = generateProgram(seed);
      const r = runProgram(prog, { build, plantedBug: true });
      if (r.failure) found = { prog, failure: r.failure };
    }
    expect(found).not.toBeNull();
    const { prog, failure } = found!;
    expect(prog.ops.length).toBeGreaterThan(20);
    const s = shrinkProgram(prog, failure, { build, plantedBug: true });
    const names = s.program.ops.map((o) => o[0]);
    // spawn, mmap, madvise, fork, cpu: the region may come from the parent or be mapped in the child.
    expect(names.length).toBeLessThanOrEqual(6);
    expect(names).toEqual(expect.arrayContaining(["spawn", "mmap", "madvise", "fork", "cpu"]));
    expect(s.failure.signature).toBe(failure.signature);
    const back = decodeReplay(encodeReplay(s.program, s.failure.message)).program;
    expect(back).toEqual(s.program);
    expect(runProgram(back, { build, plantedBug: true }).failure?.signature).toBe("invariant:cpu");
    // Without the planted bug the same program passes.
    expect(runProgram(back, { build }).failure).toBeNull();
  });

  it("replays of fixed bugs pass", () => {
    const files = readdirSync("test/fuzz-replays");
    expect(files).toContain("mlock-file-lru.json");
    for (const f of files) {
      const prog = decodeReplay(readFileSync(`test/fuzz-replays/${f}`, "utf8")).program;
      expect(runProgram(prog, { build }).failure?.message, f).toBeUndefined();
    }
  });

  it("the mlock-of-file-pages replay runs its mlock (the fuzzer mlocks file pages again)", () => {
    const prog = decodeReplay(readFileSync("test/fuzz-replays/mlock-file-lru.json", "utf8")).program;
    const r = runProgram(prog, { build });
    expect(r.failure).toBeNull();
    expect(r.skipped).toBe(0);
  });
});

describe("replay files", () => {
  const good = { version: 1, program: { seed: 3, machine: { content: "tags" }, ops: [["spawn", 0], ["mmap", 0, 1, 4, 0, 0], ["cpu", 0, 1, 7, 10]] } };
  const bad = (v: unknown) => () => decodeReplay(typeof v === "string" ? v : JSON.stringify(v));

  it("round-trips", () => {
    expect(decodeReplay(JSON.stringify(good)).program).toEqual(good.program);
    const p = generateProgram(5);
    expect(decodeReplay(encodeReplay(p, "why")).program).toEqual(p);
    expect(decodeReplay(encodeReplay(p, "why")).failure).toBe("why");
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["an unknown top-level field", { ...good, extra: 1 }, /unknown field "extra"/],
    ["an unknown program field", { ...good, program: { ...good.program, code: "x" } }, /unknown field "code"/],
    ["a missing field", { version: 1 }, /lacks the field "program"/],
    ["a wrong version", { ...good, version: 2 }, /version must be 1/],
    ["a wrong content mode", { ...good, program: { ...good.program, machine: { content: "pages" } } }, /content must be/],
    ["ops that are not an array", { ...good, program: { ...good.program, ops: {} } }, /ops must be an array/],
    ["an unknown op", { ...good, program: { ...good.program, ops: [["eval", 1]] } }, /names no operation/],
    ["a wrong argument count", { ...good, program: { ...good.program, ops: [["spawn", 0, 1]] } }, /takes 1 arguments, got 2/],
    ["a string argument", { ...good, program: { ...good.program, ops: [["spawn", "0"]] } }, /pid must be an integer/],
    ["an argument out of range", { ...good, program: { ...good.program, ops: [["mmap", 0, 1, 17, 0, 0]] } }, /pages must be an integer in \[0, 16\]/],
    ["a negative seed", { ...good, program: { ...good.program, seed: -1 } }, /seed must be an integer/],
    ["too many ops", { ...good, program: { ...good.program, ops: Array(MAX_REPLAY_OPS + 1).fill(["compact"]) } }, /more than the limit/],
    ["a file over the size limit", " ".repeat(8 * 1024 * 1024 + 1), /more than the limit/],
  ])("refuses %s with one clear error", (_what, v, msg) => {
    expect(bad(v)).toThrow(ReplayError);
    expect(bad(v)).toThrow(msg);
  });
});
