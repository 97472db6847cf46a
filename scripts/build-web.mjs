// Builds the browser site into dist/browser/: mmemu.js (the library as one minified ESM file,
// release Wasm embedded), app.js (the demo, importing ./mmemu.js like any page would) and
// index.html. Needs build/release.wasm (npm run build:wasm).
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WEB_DIR = join(root, "dist", "browser");

export async function buildWeb(outDir = WEB_DIR) {
  if (!existsSync(join(root, "build", "release.wasm"))) throw new Error('build/release.wasm is missing; run "npm run build:wasm"');
  mkdirSync(outDir, { recursive: true });
  const common = { bundle: true, format: "esm", platform: "browser", target: "es2022", minify: true, sourcemap: true, logLevel: "warning" };
  await build({ ...common, entryPoints: [join(root, "src", "browser.ts")], outfile: join(outDir, "mmemu.js"), loader: { ".wasm": "binary" } });
  // The demo stays a separate module that imports the bundle, as a user's page would.
  await build({ ...common, entryPoints: [join(root, "web", "app.ts")], outfile: join(outDir, "app.js"), external: ["./mmemu.js"] });
  copyFileSync(join(root, "web", "index.html"), join(outDir, "index.html"));
  return outDir;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWeb();
  console.log(`built ${out}/{mmemu.js,app.js,index.html}`);
}
