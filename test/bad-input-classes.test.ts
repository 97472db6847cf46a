// The bad-input classes of docs/bad-input.md that no other file tests one by one, files from
// outside (machine files, replay headers: size, depth, prototype keys, unsafe integers), the
// browser bundle (no code evaluated from data), and the cross-check that every row of the
// table names a test that exists.
import { describe, it, expect } from "vitest";
import { readFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ERRNO, PAGE_SIZE, PROT_READ, PROT_WRITE, MAP_SHARED, O_RDWR, O_CREAT, MAX_FILE_PAGES, resolveMachine, InputError,
} from "../src/index.js";
import { decodeRecord } from "../src/stress/record.js";
import { parseJsonInput, MAX_JSON_DEPTH } from "../src/stress/json-input.js";
import { buildWeb } from "../scripts/build-web.mjs";
import { refused, writtenProcess, privateDevice, errorOf } from "./drivers.js";

const root = fileURLToPath(new URL("..", import.meta.url));

function fileSetup() {
  const w = writtenProcess({ content: "bytes" });
  const fs = w.m.mount(w.m.addBlockDevice("vda", { sectors: 64 }));
  const f = fs.open("data", O_RDWR | O_CREAT);
  f.pwrite(new Uint8Array(PAGE_SIZE).fill(1), 0);
  return { ...w, fs, f };
}

describe("bad-input classes", () => {
  it("a closed file", () => {
    const { m, p, f } = fileSetup();
    f.close();
    refused(m, [p], "EBADF", () => f.pread(8, 0));
    refused(m, [p], "EBADF", () => f.pwrite(new Uint8Array(8), 0));
    refused(m, [p], "EBADF", () => p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0));
    refused(m, [p], "EBADF", () => f.close());
  });

  it("a fault-injection spec that is malformed or names nothing", () => {
    const { m, p } = writtenProcess({});
    for (const spec of [null, { site: "dma", nth: 1 }, { site: "alloc", nth: 0 }, { site: "alloc", probability: 2, seed: 1 }, { site: "copy", device: "gpu9", nth: 1 }]) {
      refused(m, [p], "EINVAL", () => m.inject.add(spec as never));
    }
    expect(m.inject.list()).toHaveLength(0);
    refused(m, [p], "EINVAL", () => m.inject.remove({} as never));
  });

  it("a file over the size limit", () => {
    const { m, p, f } = fileSetup();
    refused(m, [p], "EFBIG", () => f.ftruncate((MAX_FILE_PAGES + 1) * PAGE_SIZE));
    refused(m, [p], "EFBIG", () => f.pwrite(new Uint8Array(8), MAX_FILE_PAGES * PAGE_SIZE));
  });

  it("a device that is gone", () => {
    const { m, p } = writtenProcess({ deviceMemory: 64 });
    const { pg } = privateDevice(m, 64);
    m.memunmapPages(pg);
    refused(m, [p], "EINVAL", () => m.evictDevicePages(pg));
    refused(m, [p], "EINVAL", () => m.allocDevicePage(pg));
  });

  it("pfns outside the machine, reserved and free", () => {
    const { m, p } = writtenProcess();
    const outside = m.config.frames + m.config.deviceFrames;
    refused(m, [p], "EINVAL", () => m.page.refcount(outside));
    refused(m, [p], "EINVAL", () => m.pfnToNid(outside));
    refused(m, [p], "EINVAL", () => m.migrateDevicePfns([outside]));
    // pfn 0 is the reserved zero page; the last frame is free.
    refused(m, [p], "EINVAL", () => m.page.get(0));
    refused(m, [p], "EINVAL", () => m.page.get(m.config.frames - 1));
  });

  it("arrays with holes, non-integers and bad lengths", () => {
    const { m, p } = writtenProcess();
    const staged = m.core.gupInPtr();
    const st: [number, number] = [staged, staged + 65536 * 4];
    // eslint-disable-next-line no-sparse-arrays
    refused(m, [p], "EINVAL", () => m.unpinUserPages([1, , 2] as number[]), st);
    refused(m, [p], "EINVAL", () => m.unpinUserPages([1.5]), st);
    refused(m, [p], "EINVAL", () => m.releasePages({ length: -1 } as ArrayLike<number>), st);
    refused(m, [p], "EINVAL", () => m.migrateDevicePfns({ length: 2 ** 40 } as ArrayLike<number>));
  });

  it("flag words of 2^32 and more, and bigints", () => {
    const { m, p, a } = writtenProcess();
    refused(m, [p], "EINVAL", () => p.mprotect(a, PAGE_SIZE, 2 ** 32 + PROT_READ));
    refused(m, [p], "EINVAL", () => m.mlockall(p, 2 ** 32 + 1));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, PAGE_SIZE, 1n as unknown as number));
  });
});

describe("files from outside", () => {
  const machine = { nodes: [{ normal: 4096 }], devices: [] };

  it("JSON over its size limit is refused before parsing", () => {
    expect(() => resolveMachine(" ".repeat(70 * 1024) + "{}", true)).toThrow(/more than the limit of 65536/);
    // Multi-byte characters count as their UTF-8 bytes.
    expect(() => parseJsonInput(`"${"é".repeat(40000)}"`, "f", 65536)).toThrow(/bytes is more than the limit/);
  });

  it("JSON nested too deep, with prototype keys, or with integers past 2^53", () => {
    const deep = "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1);
    expect(() => parseJsonInput(deep, "f", 65536)).toThrow(/nests deeper than 32 levels/);
    expect(() => resolveMachine(`{"nodes":[{"normal":4096}],"__proto__":{"x":1}}`, true)).toThrow(/key named "__proto__"/);
    expect(() => resolveMachine(`{"nodes":[{"normal":4096,"constructor":1}]}`, true)).toThrow(/key named "constructor"/);
    expect(() => resolveMachine(`{"nodes":[{"normal":9007199254740993}]}`, true)).toThrow(/past 2\^53/);
  });

  it("JSON that is not an object, has an unknown field or a wrong type", () => {
    expect(() => resolveMachine("[1]", true)).toThrow(/must be an object/);
    expect(() => resolveMachine(`{"nodes":[{"normal":4096}],"colour":1}`, true)).toThrow(/unknown field "colour"/);
    expect(() => resolveMachine(`{"nodes":[{"normal":"lots"}]}`, true)).toThrow(/must be an integer/);
    expect(resolveMachine(JSON.stringify(machine), true).nodes[0]!.normal).toBe(4096);
  });

  it("a replay header with a prototype key, bad UTF-8 or too deep", () => {
    const rec = (header: string) => new Uint8Array([...new TextEncoder().encode(header + "\n")]);
    const header = (extra: string) => `{"format":"mmemu-record","version":1,"scenario":"mixed","seed":1,"machine":${JSON.stringify(machine)},"checkEvery":1,"sampleEvery":0,"ops":0${extra}}`;
    expect(decodeRecord(rec(header(""))).header.ops).toBe(0);
    expect(() => decodeRecord(rec(header(`,"__proto__":{}`)))).toThrow(InputError);
    expect(() => decodeRecord(rec(header(`,"__proto__":{}`)))).toThrow(/key named "__proto__"/);
    expect(() => decodeRecord(new Uint8Array([0xff, 0xfe, 10]))).toThrow(/not valid UTF-8/);
    expect(() => decodeRecord(rec(header(`,"x":${"[".repeat(40)}${"]".repeat(40)}`)))).toThrow(/nests deeper/);
  });
});

describe.runIf(process.env.MMEMU_BUILD === "release")("the browser bundle", () => {
  it("evaluates no code: no eval, new Function or dynamic import in mmemu.js and app.js", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mmemu-bundle-"));
    try {
      await buildWeb(dir);
      for (const f of ["mmemu.js", "app.js"]) {
        const text = readFileSync(join(dir, f), "utf8");
        expect(text.length).toBeGreaterThan(1000);
        expect(text).not.toMatch(/\beval\s*\(/);
        expect(text).not.toMatch(/\bnew\s+Function\b|\bFunction\s*\(/);
        expect(text).not.toMatch(/\bimport\s*\(/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("docs/bad-input.md", () => {
  it("every row has an errno and names a test that exists", () => {
    const doc = readFileSync(join(root, "docs/bad-input.md"), "utf8");
    const rows = doc.split("\n").filter((l) => /^\| [^-|]/.test(l) && !l.startsWith("| class"));
    expect(rows.length).toBeGreaterThan(20);
    for (const row of rows) {
      const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
      const [, cls, errno, , test] = cells;
      const codes = errno!.split(/[ ,/]+/).filter((c) => /^E[A-Z]+$/.test(c));
      // Files from outside are refused with InputError (the CLI's exit status 2), not an errno.
      expect(codes.length > 0 || errno!.startsWith("InputError"), `${cls}: an errno or InputError`).toBe(true);
      for (const c of codes) expect(Object.keys(ERRNO), cls).toContain(c);
      const m = /^`(test\/[\w.-]+\.test\.ts)` › (.+)$/.exec(test!);
      expect(m, `${cls}: the test column reads \`file\` › title`).not.toBeNull();
      const file = join(root, m![1]!);
      expect(existsSync(file), m![1]).toBe(true);
      expect(readFileSync(file, "utf8"), `${m![1]} has a test titled "${m![2]}"`).toContain(`it("${m![2]}"`);
    }
  });

  it("the README links the table", () => {
    expect(readFileSync(join(root, "README.md"), "utf8")).toContain("docs/bad-input.md");
  });
});

