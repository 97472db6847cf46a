// The browser build in real headless Chromium (Debian's `chromium`, driven by playwright-core):
// the demo page runs a scenario and shows the same counters as a Node run of the same seed,
// and the bundle works imported from a plain <script type="module">. Runs once, in the
// release project (the bundle embeds the release Wasm). Chromium missing is a failure, not a skip.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Server } from "node:http";
import { chromium, type Browser, type Page } from "playwright-core";
import { buildWeb } from "../scripts/build-web.mjs";
import { serveWeb } from "../scripts/serve-web.mjs";
import { PRESETS, runScenario } from "../src/index.js";

/** CHROMIUM_PATH, or `chromium` on PATH (Debian's package puts it in /usr/bin). */
function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  return (process.env.PATH ?? "/usr/bin").split(":").map((d) => join(d, "chromium")).find((f) => existsSync(f));
}
const CHROMIUM = findChromium();
const SCREENSHOT = resolve(__dirname, "../build/browser-screenshot.png");
const DEMO_RUN = { scenario: "mixed", seed: 7, ops: 200_000, machine: "small" };
const PLAIN_RUN = { scenario: "gpu-offload", seed: 3, ops: 20_000 };

/** A page with nothing but a module script that imports the bundle, as a user's page would. */
const PLAIN_PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>plain import</title>
<script type="module">
import { ready, runScenario, PRESETS } from "./mmemu.js";
await ready;
const { report } = runScenario({ ...${JSON.stringify(PLAIN_RUN)}, machine: PRESETS.small });
window.mmemuReport = JSON.stringify(report);
</script>`;

describe.runIf(process.env.MMEMU_BUILD === "release")("browser build in headless Chromium", () => {
  let dir: string;
  let server: Server;
  let url: string;
  let browser: Browser;

  beforeAll(async () => {
    if (!CHROMIUM || !existsSync(CHROMIUM)) return; // each test fails, saying so
    dir = mkdtempSync(join(tmpdir(), "mmemu-web-"));
    await buildWeb(dir);
    writeFileSync(join(dir, "plain.html"), PLAIN_PAGE);
    ({ server, url } = await serveWeb(dir, 0));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A new page that records script errors, console errors and every URL it requests. */
  async function open(path: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
    // Counted as failed tests (not a failed hook), so CI's tally shows it.
    if (!browser) throw new Error(`Chromium not found (${CHROMIUM ?? "no chromium on PATH"}): install it (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH`);
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url + path);
    return { page, errors, requests };
  }

  it("the demo runs a scenario live and shows the counters of a Node run of the same seed", async () => {
    const { page, errors, requests } = await open("");
    await page.waitForSelector("#status[data-state=idle]");
    await page.selectOption("#scenario", DEMO_RUN.scenario);
    await page.fill("#seed", String(DEMO_RUN.seed));
    await page.fill("#ops", String(DEMO_RUN.ops));
    await page.selectOption("#machine", DEMO_RUN.machine);
    await page.click("#run");
    await page.waitForSelector("#status:is([data-state=done], [data-state=failed], [data-state=error])", { timeout: 50_000 });
    const status = await page.textContent("#status");
    mkdirSync(resolve(SCREENSHOT, ".."), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(status).toMatch(/^done/);
    expect(errors).toEqual([]);
    // The Wasm came inside the bundle: nothing else was fetched.
    expect(requests.filter((u) => !/\/(|index\.html|app\.js|mmemu\.js)$/.test(new URL(u).pathname))).toEqual([]);

    // The picture was drawn while the run went (more than once), and it is not blank.
    expect(Number(await page.getAttribute("#map", "data-draws"))).toBeGreaterThan(1);
    const colours = await page.$eval("#map", (c: HTMLCanvasElement) => {
      const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4) seen.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
      return seen.size;
    });
    expect(colours).toBeGreaterThanOrEqual(4);

    const shown = JSON.parse((await page.textContent("#counters"))!) as { counters: Record<string, number>; opCounts: Record<string, number> };
    const table = await page.$$eval("#counters-table tr", (rows) =>
      rows.map((r) => [(r as HTMLElement).dataset.group, (r as HTMLElement).dataset.name, Number((r as HTMLElement).dataset.value)] as const),
    );
    const { report } = runScenario({ scenario: DEMO_RUN.scenario, seed: DEMO_RUN.seed, ops: DEMO_RUN.ops, machine: PRESETS[DEMO_RUN.machine]! });
    expect(report.failure).toBeNull();
    expect(shown.counters).toEqual(report.counters);
    expect(shown.opCounts).toEqual(report.opCounts);
    expect(table).toEqual([
      ...Object.entries(report.counters).map(([k, v]) => ["vmstat", k, v]),
      ...Object.entries(report.opCounts).map(([k, v]) => ["ops", k, v]),
    ]);
    expect(await page.textContent("#summary")).toContain(`mmemu mixed: 1 run (seed 7), ${(200_000).toLocaleString("en-US")} operations`);
    await page.close();
  });

  it("the bundle imports from a plain module script and gives Node's report, byte for byte", async () => {
    const { page, errors } = await open("plain.html");
    const handle = await page.waitForFunction(() => (window as unknown as { mmemuReport?: string }).mmemuReport, undefined, { timeout: 50_000 });
    const inBrowser = (await handle.jsonValue()) as string;
    expect(errors).toEqual([]);
    const { report } = runScenario({ ...PLAIN_RUN, machine: PRESETS.small! });
    expect(inBrowser).toBe(JSON.stringify(report));
    await page.close();
  });
});
