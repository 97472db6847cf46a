// The browser entry (bundled by scripts/build-web.mjs into dist/browser/mmemu.js): the whole
// library, with the release Wasm embedded as bytes so the page needs no second fetch. The
// module compiles it at load (top-level await), so `import { runScenario } from "./mmemu.js"`
// is ready to use; `ready` is the same promise, for code that wants to await it explicitly.
// The debug build is not embedded (15× larger); a page that wants it calls loadWasm("debug", bytes).
import releaseWasm from "../build/release.wasm";
import { loadWasm } from "./wasm.js";

export * from "./index.js";
export { loadWasm } from "./wasm.js";

export const ready: Promise<void> = loadWasm("release", releaseWasm);
await ready;
