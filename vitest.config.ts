import { defineConfig } from "vitest/config";

// The suite runs twice: against the debug Wasm (all checks on) and the release Wasm.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "bench/reference/*.test.ts"],
    testTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "debug", env: { MMEMU_BUILD: "debug" } } },
      { extends: true, test: { name: "release", env: { MMEMU_BUILD: "release" } } },
    ],
  },
});
