// Types of the bundle (dist/browser/mmemu.js) for the demo's sources: it is src/browser.ts, built.
export * from "../src/browser.js";
