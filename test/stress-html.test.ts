import { describe, it, expect } from "vitest";
import { runScenario, buildReport, PRESETS, PAGE_STATES, type Report } from "../src/index.js";
import { renderHtml } from "../src/stress/html.js";

const build = process.env.MMEMU_BUILD === "debug" ? "debug" : "release";
const run = (seed: number) => runScenario({ scenario: "mixed", seed, ops: 20000, machine: PRESETS.small!, build }).report;

// Two runs, so the page has a run selector and one heatmap per run.
const report = buildReport("mixed", [run(5), run(6)]);

describe("the --html report", () => {
  const html = renderHtml(report);

  it("is one self-contained page", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/\b(src|href)\s*=/i);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/@import|url\(/i);
    // The only scripts are the inline data block and the inline drawing script.
    expect(html.match(/<script\b[^>]*>/gi)).toEqual(['<script type="application/json" id="mmemu-data">', "<script>"]);
  });

  it("shows the scenario, the seeds, a heatmap per run, a run selector and the state legend", () => {
    expect(html).toContain("mmemu stress report: mixed");
    expect(html).toMatch(/seeds \(2 runs\)<\/dt><dd>5, 6</);
    expect(html).toContain('<canvas class="heatmap" id="heatmap-0"');
    expect(html).toContain('<canvas class="heatmap" id="heatmap-1"');
    expect(html).toContain('<option value="1">seed 6</option>');
    for (const s of PAGE_STATES) expect(html).toContain(`</i>${s}</span>`);
    for (const id of ["areas", "throughput", "latency-cpu_fault", "latency-device_fault", "latency-device_access"]) {
      expect(html).toContain(`<canvas id="${id}"`);
    }
  });

  it("embeds the timeline as JSON the page can parse", () => {
    const json = /<script type="application\/json" id="mmemu-data">(.*?)<\/script>/s.exec(html)![1]!;
    const data = JSON.parse(json);
    expect(data.runs).toHaveLength(2);
    const r0 = report.runs[0]!;
    expect(data.runs[0].map).toEqual(r0.timeline.samples.map((s) => s.map));
    expect(data.runs[0].systemFrames).toBe(16384 + 8192);
    expect(data.runs[0].framesPerBucket).toBe(r0.timeline.framesPerBucket);
  });

  it("escapes hostile strings from the report", () => {
    const hostile = "</script><img src=x onerror=alert(1)>";
    const bad: Report = structuredClone(report);
    bad.scenario = `mixed${hostile}`;
    bad.runs[0]!.failure = { kind: "data", opIndex: 1234, message: `page lost ${hostile}` };
    bad.total.failures = 1;
    const page = renderHtml(bad);
    expect(page).not.toContain("<img");
    expect(page).not.toContain("onerror=alert(1)>");
    expect(page.match(/<\/script>/g)).toHaveLength(2);
    expect(page).toContain("page lost &#60;/script&#62;&#60;img src=x onerror=alert(1)&#62;");
    expect(page).toContain("seed 5 at operation 1,234");
    expect(page).toContain("1 failed");
  });

  it("escapes `<` in the embedded JSON", () => {
    const bad: Report = structuredClone(report);
    bad.runs[0]!.devices[0]!.name = "</script><script>alert(1)</script>";
    const page = renderHtml(bad);
    expect(page.match(/<\/script>/g)).toHaveLength(2);
    expect(page).toContain("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e");
  });

  it("is byte-identical for two runs of the same seed", () => {
    const again = renderHtml(buildReport("mixed", [run(5), run(6)]));
    expect(again).toBe(html);
  });

  it("stays small", () => {
    expect(html.length).toBeLessThan(200_000);
  });
});
