// The fuzzer's faults through machine.inject (src/fuzz/faults.ts): every fault op decodes to a
// spec machine.inject takes, every site the fuzzer arms fires, the oomreap op, and the open
// page_free bug's replay.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Machine } from "../src/index.js";
import { createHmmDevices } from "../src/testing/dmirror.js";
import { Scheduler } from "../src/sched/scheduler.js";
import { runCampaign } from "../src/fuzz/campaign.js";
import { fuzzMachineConfig, runProgram } from "../src/fuzz/exec.js";
import { FAULT_SITES, MAX_FAULT_ARG, MAX_FAULT_TIMES, faultRule } from "../src/fuzz/faults.js";
import { OP_SPECS, type Op, type Program } from "../src/fuzz/ops.js";
import { decodeReplay } from "../src/fuzz/replay.js";

const build = process.env.MMEMU_BUILD === "debug" ? "debug" : "release";
const prog = (ops: Op[]): Program => ({ seed: 0, machine: { content: "tags" }, ops });

describe(`fuzzer faults through machine.inject (${build})`, () => {
  it("every fault op decodes to a spec machine.inject accepts (site 6 clears)", () => {
    const m = Machine.create(fuzzMachineConfig("tags", build));
    const dev = m.addBlockDevice("vda", { sectors: 256 });
    const devices = createHmmDevices(m, { chunkPages: 64, maxChunks: 2 });
    new Scheduler(m).engine("copy", 16);
    const p = m.spawn();
    const w = { zones: m.zones().length, nodes: 2, devices: devices.map((d) => d.name), blockDevice: dev.name, engine: "copy", process: () => p };
    expect(OP_SPECS.fault).toEqual([["site", FAULT_SITES.length - 1], ["arg", MAX_FAULT_ARG], ["times", MAX_FAULT_TIMES]]);
    const sites = new Set<string>();
    for (let site = 0; site < FAULT_SITES.length; site++) {
      for (let arg = 0; arg <= MAX_FAULT_ARG; arg++) {
        for (let times = 0; times <= MAX_FAULT_TIMES; times++) {
          const r = faultRule(site, arg, times, w);
          if (site === 6) {
            expect(r).toBe("clear");
            continue;
          }
          if (r === "clear") throw new Error(`site ${site} decoded to clear`);
          sites.add(r.spec.site);
          m.inject.add(r.spec);
          m.inject.clear();
        }
      }
    }
    expect([...sites].sort()).toEqual(["alloc", "blockio", "callback", "copy", "engine", "notifier"]);
  });

  it("a campaign injects faults at every site the fuzzer arms", () => {
    const r = runCampaign({ seed: 7, maxOperations: build === "release" ? 200_000 : 60_000, seconds: 600, build, shrink: false });
    expect(r.failures.map((f) => f.message)).toEqual([]);
    const sites = ["alloc", "blockio", "engine", "notifier"];
    if (build === "release") sites.push("alloc:zone", "alloc:node", "alloc:device", "copy");
    for (const s of sites) expect(r.faultsBySite[s]?.hits ?? 0, s).toBeGreaterThan(0);

  }, 120_000);

  it.each([
    ["copy", 8, 0],
    ["callback:migrate_to_ram", 9, 0],
    ["callback:alloc_and_copy", 9, 1],
    ["callback:finalize_and_map", 9, 2],
  ] as const)("%s on hmm_dmirror0 fires on a migration to the device and back, and the data survives", (label, site, arg) => {
    const r = runProgram(prog([
      ["spawn", 0], ["mmap", 0, 1, 8, 0, 0], ["cpu", 0, 1, 3, 64], ["fault", site, arg, 0],
      ["dev", 0, 1, 0, 2, 0, 8], ["cpu", 0, 1, 4, 64], ["dev", 0, 1, 0, 2, 0, 8], ["dev", 0, 1, 0, 3, 0, 8], ["cpu", 0, 1, 5, 64],
    ]), { build });
    expect(r.failure).toBeNull();
    expect(r.faultsBySite[label]).toEqual({ armed: 1, hits: 1 });
    expect(r.expectedErrors).toBeGreaterThan(0);
  });

  it("oomreap: the victim is reaped and exits; a notifier that always refuses makes the reaper give up", () => {
    const base: Op[] = [
      ["spawn", 0], ["spawn", 1], ["mmap", 0, 1, 8, 0, 0], ["cpu", 0, 1, 5, 64], ["fork", 2, 0], ["cpu", 2, 1, 6, 64],
      ["dev", 0, 1, 0, 0, 0, 8], // opens a mirror: the victim has an interval notifier
    ];
    const reaped = runProgram(prog([...base, ["oomreap", 0], ["cpu", 2, 1, 7, 64]]), { build });
    expect(reaped.failure).toBeNull();
    expect(reaped.oomGaveUp).toBe(0);
    // fault site 10 (notifier), arg 0: nth 1; times 3: Infinity. Every attempt is refused.
    const refused = runProgram(prog([...base, ["fault", 10, 0, 3], ["oomreap", 0], ["cpu", 2, 1, 7, 64]]), { build });
    expect(refused.failure).toBeNull();
    expect(refused.oomGaveUp).toBe(1);
    expect(refused.faultsBySite.notifier!.hits).toBeGreaterThanOrEqual(10);
  });

  it("an injected page_free error no longer stops a migration half done (page-free-midway replay)", () => {
    const p = decodeReplay(readFileSync("test/fuzz-replays/page-free-midway.json", "utf8")).program;
    const r = runProgram(p, { build });
    expect(r.failure).toBeNull();
    expect(r.faultsBySite["callback:page_free"]?.hits ?? 0).toBeGreaterThan(0);
  });
});
