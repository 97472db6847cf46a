import { describe, it, expect } from "vitest";
import { Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from "../src/index.js";

describe("smoke", () => {
  it("maps, writes, reads, forks", () => {
    const m = Machine.create({ nodes: [{ normal: 4096 }] });
    m.check();
    const p = m.spawn();
    const a = p.mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(p.readU32(a)).toBe(0);
    p.writeU32(a + 8, 1234);
    expect(p.readU32(a + 8)).toBe(1234);
    m.check();
    const c = p.fork();
    m.check();
    c.writeU32(a + 8, 99);
    expect(p.readU32(a + 8)).toBe(1234);
    expect(c.readU32(a + 8)).toBe(99);
    m.check();
    c.exit();
    p.exit();
    m.check();
    console.log(m.counters());
  });
});
