// The README's code examples run as written (with "mmemu" pointing at src/).
import { describe, it, expect } from "vitest";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { pathToFileURL } from "node:url";

const readme = readFileSync(resolve(__dirname, "../README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const src = pathToFileURL(resolve(__dirname, "../src")).href;

describe("README examples", () => {
  it("has examples", () => expect(blocks.length).toBeGreaterThanOrEqual(3));
  blocks.forEach((code, i) => {
    it(`example ${i + 1} runs`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "mmemu-readme-"));
      const file = join(dir, `example${i}.ts`);
      const body = code
        .replaceAll('from "mmemu/testing"', `from "${src}/testing/index.ts"`)
        .replaceAll('from "mmemu"', `from "${src}/index.ts"`);
      writeFileSync(file, body + "\nexport {};\n");
      await import(/* @vite-ignore */ file);
    });
  });
});
