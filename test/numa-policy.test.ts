// Memory policy: set_mempolicy, mbind, get_mempolicy, and where the fault path puts pages
// under each mode; mbind's MPOL_MF_STRICT and MPOL_MF_MOVE; bad input changes nothing.
import { describe, it, expect } from "vitest";
import {
  Machine, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE, PROT_READ, PROT_WRITE,
  MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_F_STATIC_NODES, MPOL_MF_STRICT, MPOL_MF_MOVE,
  MPOL_MF_MOVE_ALL, MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, type Process,
} from "../src/index.js";
import { errorOf } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const pfnOf = (p: Process, addr: number): number => Number((p.pte(addr) >> 12n) & 0xffffffffffn);
const nodeOf = (m: Machine, p: Process, addr: number): number => m.pfnToNid(pfnOf(p, addr));
const nodesOf = (m: Machine, p: Process, addr: number, n: number): number[] =>
  Array.from({ length: n }, (_, i) => nodeOf(m, p, addr + i * PAGE_SIZE));

function machine(nodes = 3, pages = 1024) {
  return Machine.create({ nodes: Array.from({ length: nodes }, () => ({ normal: pages })) });
}

/** A written private mapping of n pages. */
function written(p: Process, n: number, at = 0): number {
  const a = p.mmap(at, n * PAGE_SIZE, RW, ANON | (at ? MAP_FIXED : 0));
  for (let i = 0; i < n; i++) p.writeU32(a + i * PAGE_SIZE, 0x5000 + i);
  return a;
}

describe("memory policy in the fault path", () => {
  it("MPOL_DEFAULT allocates on the process's node, MPOL_LOCAL too", () => {
    const m = machine();
    const p = m.spawn({ node: 2 });
    expect(nodesOf(m, p, written(p, 4), 4)).toEqual([2, 2, 2, 2]);
    m.setMempolicy(p, MPOL_LOCAL);
    expect(m.getMempolicy(p)).toEqual({ mode: MPOL_LOCAL, nodes: [] });
    expect(nodesOf(m, p, written(p, 2), 2)).toEqual([2, 2]);
    expect(m.counters().numa_hit).toBe(6);
    m.check();
  });

  it("MPOL_BIND allocates only on its nodes, from the local node's zonelist, and faults with OOM when they are full", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 256 }, { normal: 256 }] });
    const p = m.spawn({ node: 0 });
    m.setMempolicy(p, MPOL_BIND, [2, 1]);
    expect(m.getMempolicy(p)).toEqual({ mode: MPOL_BIND, nodes: [1, 2] });
    const a = p.mmap(0, 600 * PAGE_SIZE, RW, ANON);
    // The zonelist of node 0 is 0, 1, 2: node 1 fills first, then node 2.
    let i = 0;
    let err;
    for (; i < 600; i++) {
      err = p.run((() => { const b = p.batch(); b.writeU32(a + i * PAGE_SIZE, i); return b; })()).fault;
      if (err) break;
    }
    expect(err?.code).toBe("ENOMEM");
    expect(i).toBeGreaterThan(400);
    const nodes = nodesOf(m, p, a, i);
    expect(nodes.every((n) => n === 1 || n === 2)).toBe(true);
    expect(nodes.indexOf(2)).toBe(nodes.lastIndexOf(1) + 1);
    // Node 0 still has room: only the policy kept the pages off it.
    expect(m.zones()[0]!.free).toBeGreaterThan(900);
    m.check();
  });

  it("MPOL_PREFERRED starts at its first node and falls back when it is full (numa_miss)", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 128 }] });
    const p = m.spawn();
    m.setMempolicy(p, MPOL_PREFERRED, [1, 0]);
    expect(m.getMempolicy(p)).toEqual({ mode: MPOL_PREFERRED, nodes: [0] });
    m.setMempolicy(p, MPOL_PREFERRED, [1]);
    const a = written(p, 200);
    const nodes = nodesOf(m, p, a, 200);
    expect(nodes[0]).toBe(1);
    expect(nodes[199]).toBe(0);
    const c = m.counters();
    expect(c.numa_miss).toBe(nodes.filter((n) => n === 0).length);
    expect(c.numa_foreign).toBe(c.numa_miss);
    m.check();
  });

  it("MPOL_PREFERRED with no nodes is local allocation", () => {
    const m = machine(2);
    const p = m.spawn({ node: 1 });
    m.setMempolicy(p, MPOL_PREFERRED, []);
    expect(m.getMempolicy(p)).toEqual({ mode: MPOL_LOCAL, nodes: [] });
    expect(nodeOf(m, p, written(p, 1))).toBe(1);
  });

  it("MPOL_INTERLEAVE picks the node from the page's linear index, read and write faults alike", () => {
    const m = machine(3);
    const p = m.spawn();
    m.setMempolicy(p, MPOL_INTERLEAVE, [0, 2]);
    const a = written(p, 8);
    const vpn = a / PAGE_SIZE;
    expect(nodesOf(m, p, a, 8)).toEqual(Array.from({ length: 8 }, (_, i) => ((vpn + i) % 2 === 0 ? 0 : 2)));
    expect(m.counters().numa_interleave).toBe(8);
    const s = p.mmap(0, 6 * PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 6; i++) p.readU32(s + i * PAGE_SIZE);
    // Shared memory interleaves by its offset in the object.
    expect(nodesOf(m, p, s, 6)).toEqual([0, 2, 0, 2, 0, 2]);
    m.check();
  });

  it("a VMA's policy wins over the task's; mbind(MPOL_DEFAULT) gives it back to the task", () => {
    const m = machine(3);
    const p = m.spawn();
    m.setMempolicy(p, MPOL_BIND, [1]);
    const a = p.mmap(0, 6 * PAGE_SIZE, RW, ANON);
    m.mbind(p, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MPOL_BIND, [2]);
    expect(p.maps().length).toBe(3);
    expect(m.getMempolicy(p, a + 2 * PAGE_SIZE, MPOL_F_ADDR)).toEqual({ mode: MPOL_BIND, nodes: [2] });
    expect(m.getMempolicy(p, a, MPOL_F_ADDR)).toEqual({ mode: MPOL_DEFAULT, nodes: [] });
    for (let i = 0; i < 6; i++) p.writeU32(a + i * PAGE_SIZE, i);
    expect(nodesOf(m, p, a, 6)).toEqual([1, 1, 2, 2, 1, 1]);
    m.mbind(p, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MPOL_DEFAULT, []);
    // Equal policies again: the three VMAs merge back into one.
    expect(p.maps().length).toBe(1);
    m.check();
  });

  it("nodes without memory are dropped from a nodemask; none left is EINVAL", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 0 }, { normal: 512 }] });
    const p = m.spawn();
    m.setMempolicy(p, MPOL_INTERLEAVE, [0, 1, 2, 9]);
    expect(m.getMempolicy(p).nodes).toEqual([0, 2]);
    expect(m.getMempolicy(p, 0, MPOL_F_MEMS_ALLOWED).nodes).toEqual([0, 2]);
    expect(errorOf(() => m.setMempolicy(p, MPOL_BIND, [1, 5])).code).toBe("EINVAL");
    expect(m.getMempolicy(p).nodes).toEqual([0, 2]);
  });

  it("get_mempolicy: MPOL_F_NODE|MPOL_F_ADDR faults the page in and names its node; MPOL_F_NODE alone needs interleave", () => {
    const m = machine(2);
    const p = m.spawn({ node: 1 });
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    // An untouched anonymous page reads as the zero page, on node 0.
    expect(m.getMempolicy(p, a, MPOL_F_NODE | MPOL_F_ADDR).mode).toBe(0);
    p.writeU32(a + PAGE_SIZE, 1);
    expect(m.getMempolicy(p, a + PAGE_SIZE + 12, MPOL_F_NODE | MPOL_F_ADDR).mode).toBe(1);
    expect(errorOf(() => m.getMempolicy(p, 0, MPOL_F_NODE)).code).toBe("EINVAL");
    m.setMempolicy(p, MPOL_INTERLEAVE, [1]);
    expect(m.getMempolicy(p, 0, MPOL_F_NODE).mode).toBe(1);
    expect(errorOf(() => m.getMempolicy(p, a + 9 * PAGE_SIZE, MPOL_F_ADDR)).code).toBe("EFAULT");
    expect(errorOf(() => m.getMempolicy(p, a, 0)).code).toBe("EINVAL");
    expect(errorOf(() => m.getMempolicy(p, 0, 8)).code).toBe("EINVAL");
    expect(errorOf(() => m.getMempolicy(p, 0, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE)).code).toBe("EINVAL");
    m.check();
  });
});

describe("policies survive fork, mremap, split and merge", () => {
  it("fork: the child keeps the task policy and the VMA policies", () => {
    const m = machine(3);
    const p = m.spawn();
    m.setMempolicy(p, MPOL_BIND, [2]);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    m.mbind(p, a, 2 * PAGE_SIZE, MPOL_BIND, [1]);
    const c = p.fork();
    expect(m.getMempolicy(c)).toEqual({ mode: MPOL_BIND, nodes: [2] });
    for (let i = 0; i < 4; i++) c.writeU32(a + i * PAGE_SIZE, i);
    expect(nodesOf(m, c, a, 4)).toEqual([1, 1, 2, 2]);
    m.check();
  });

  it("mremap: the moved VMA keeps its policy, and interleave keeps counting from its pgoff", () => {
    const m = machine(3);
    const p = m.spawn();
    const a = p.mmap(0, 6 * PAGE_SIZE, RW, ANON);
    p.mmap(a + 6 * PAGE_SIZE, PAGE_SIZE, PROT_READ, ANON | MAP_FIXED);
    m.mbind(p, a, 6 * PAGE_SIZE, MPOL_INTERLEAVE, [0, 1, 2]);
    p.writeU32(a, 7);
    const b = p.mremap(a, 6 * PAGE_SIZE, 9 * PAGE_SIZE, MREMAP_MAYMOVE);
    expect(b).not.toBe(a);
    expect(m.getMempolicy(p, b + 8 * PAGE_SIZE, MPOL_F_ADDR)).toEqual({ mode: MPOL_INTERLEAVE, nodes: [0, 1, 2] });
    for (let i = 1; i < 9; i++) p.writeU32(b + i * PAGE_SIZE, i);
    const vpn = a / PAGE_SIZE;
    expect(nodesOf(m, p, b, 9)).toEqual(Array.from({ length: 9 }, (_, i) => (vpn + i) % 3));
    expect(p.readU32(b)).toBe(7);
    m.check();
  });

  it("munmap and mprotect split a VMA with a policy into pieces that keep it", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = p.mmap(0, 6 * PAGE_SIZE, RW, ANON);
    m.mbind(p, a, 6 * PAGE_SIZE, MPOL_BIND, [1]);
    p.munmap(a + PAGE_SIZE, PAGE_SIZE);
    p.mprotect(a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ);
    expect(p.maps().length).toBe(4);
    for (const v of p.maps()) expect(m.getMempolicy(p, v.start, MPOL_F_ADDR)).toEqual({ mode: MPOL_BIND, nodes: [1] });
    p.writeU32(a + 5 * PAGE_SIZE, 1);
    expect(nodeOf(m, p, a + 5 * PAGE_SIZE)).toBe(1);
    m.check();
  });

  it("a shared mapping's policy is its object's: the other processes that map it follow it", () => {
    const m = machine(3);
    const p = m.spawn();
    const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    const c = p.fork();
    m.mbind(c, s + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MPOL_BIND, [2]);
    expect(m.getMempolicy(p, s + 3 * PAGE_SIZE, MPOL_F_ADDR)).toEqual({ mode: MPOL_BIND, nodes: [2] });
    expect(p.maps().length).toBe(2);
    for (let i = 0; i < 4; i++) p.writeU32(s + i * PAGE_SIZE, i);
    expect(nodesOf(m, p, s, 4)).toEqual([0, 0, 2, 2]);
    expect(c.readU32(s + 3 * PAGE_SIZE)).toBe(3);
    m.check();
  });
});

describe("mbind with MPOL_MF_STRICT and MPOL_MF_MOVE", () => {
  it("MPOL_MF_STRICT alone: EIO for a misplaced page, and nothing changes", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = written(p, 4);
    const maps = p.maps();
    const e = errorOf(() => m.mbind(p, a, 4 * PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_STRICT));
    expect(e.code).toBe("EIO");
    expect(p.maps()).toEqual(maps);
    expect(m.getMempolicy(p, a, MPOL_F_ADDR).mode).toBe(MPOL_DEFAULT);
    // Pages already inside the nodemask pass.
    m.mbind(p, a, 4 * PAGE_SIZE, MPOL_BIND, [0, 1], MPOL_MF_STRICT);
    expect(m.getMempolicy(p, a, MPOL_F_ADDR)).toEqual({ mode: MPOL_BIND, nodes: [0, 1] });
    m.check();
  });

  it("MPOL_MF_MOVE moves the pages outside the nodemask where the policy puts them, contents intact", () => {
    const m = machine(3);
    const p = m.spawn();
    const a = written(p, 6);
    m.mbind(p, a, 6 * PAGE_SIZE, MPOL_INTERLEAVE, [1, 2], MPOL_MF_MOVE);
    const vpn = a / PAGE_SIZE;
    expect(nodesOf(m, p, a, 6)).toEqual(Array.from({ length: 6 }, (_, i) => ((vpn + i) % 2 === 0 ? 1 : 2)));
    for (let i = 0; i < 6; i++) expect(p.readU32(a + i * PAGE_SIZE)).toBe(0x5000 + i);
    expect(m.counters().pgmigrate_success).toBe(6);
    // Pages inside the new nodemask stay, even off their interleave node.
    m.mbind(p, a, 6 * PAGE_SIZE, MPOL_INTERLEAVE, [0, 1, 2], MPOL_MF_MOVE);
    expect(m.counters().pgmigrate_success).toBe(6);
    m.check();
  });

  it("MPOL_MF_MOVE leaves pages another process maps (no failure, even STRICT); MPOL_MF_MOVE_ALL moves them for both", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = written(p, 2);
    const c = p.fork();
    m.mbind(p, a, 2 * PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_MOVE | MPOL_MF_STRICT);
    expect(nodesOf(m, p, a, 2)).toEqual([0, 0]);
    m.mbind(p, a, 2 * PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_MOVE_ALL);
    expect(nodesOf(m, p, a, 2)).toEqual([1, 1]);
    expect(pfnOf(c, a)).toBe(pfnOf(p, a));
    expect(c.readU32(a + PAGE_SIZE)).toBe(0x5001);
    m.check();
  });

  it("MPOL_MF_STRICT|MPOL_MF_MOVE: a pinned page makes it EIO after the policy is set and the rest moved", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = written(p, 3);
    const pinned = pfnOf(p, a + PAGE_SIZE);
    m.page.get(pinned);
    const e = errorOf(() => m.mbind(p, a, 3 * PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_MOVE | MPOL_MF_STRICT));
    expect(e.code).toBe("EIO");
    expect(e.value).toBe(1);
    expect(nodesOf(m, p, a, 3)).toEqual([1, 0, 1]);
    expect(m.getMempolicy(p, a, MPOL_F_ADDR)).toEqual({ mode: MPOL_BIND, nodes: [1] });
    m.page.put(pinned);
    m.check();
  });

  it("MPOL_DEFAULT with MPOL_MF_MOVE moves every page to where the task policy puts it; holes are fine", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = written(p, 2, 0x10000000);
    written(p, 2, 0x10000000 + 3 * PAGE_SIZE);
    m.setMempolicy(p, MPOL_BIND, [1]);
    m.mbind(p, a, 5 * PAGE_SIZE, MPOL_DEFAULT, [], MPOL_MF_MOVE | MPOL_MF_STRICT);
    expect([...nodesOf(m, p, a, 2), ...nodesOf(m, p, a + 3 * PAGE_SIZE, 2)]).toEqual([1, 1, 1, 1]);
    expect(errorOf(() => m.mbind(p, a, 5 * PAGE_SIZE, MPOL_BIND, [0])).code).toBe("EFAULT");
    expect(errorOf(() => m.mbind(p, a + 2 * PAGE_SIZE, PAGE_SIZE, MPOL_DEFAULT)).code).toBe("EFAULT");
    m.check();
  });
});

describe("mbind and set_mempolicy refuse bad input and change nothing", () => {
  it("the kernel's errno and a sentence for each", () => {
    const m = machine(2);
    const p = m.spawn();
    const a = written(p, 4);
    const before = { maps: p.maps(), pol: m.getMempolicy(p), nodes: nodesOf(m, p, a, 4), counters: m.counters() };
    const cases: [() => void, string, RegExp][] = [
      [() => m.mbind(p, a + 1, PAGE_SIZE, MPOL_BIND, [1]), "EINVAL", /not page-aligned/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_BIND, [1], 8), "EINVAL", /flag/],
      [() => m.mbind(p, a, PAGE_SIZE, 7, [1]), "EINVAL", /mode 7/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_BIND | MPOL_F_STATIC_NODES, [1]), "EINVAL", /not modelled/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_DEFAULT, [1]), "EINVAL", /takes no nodes/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_LOCAL, [0]), "EINVAL", /takes no nodes/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_BIND, []), "EINVAL", /at least one node/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_INTERLEAVE, [16]), "EINVAL", /MAX_NUMNODES/],
      [() => m.mbind(p, a, PAGE_SIZE, MPOL_BIND, [0.5]), "EINVAL", /node number/],
      [() => m.mbind(p, a, -1, MPOL_BIND, [1]), "EINVAL", /length/],
      [() => m.mbind(p, a + 8 * PAGE_SIZE, PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_MOVE), "EFAULT", /nothing is mapped/],
      [() => m.mbind(p, a, 4 * PAGE_SIZE, MPOL_BIND, [1], MPOL_MF_STRICT), "EIO", /nothing was changed/],
      [() => m.setMempolicy(p, MPOL_BIND, [3]), "EINVAL", /has memory/],
      [() => m.setMempolicy(p, -1, []), "EINVAL", /mode -1/],
    ];
    for (const [call, code, text] of cases) {
      const e = errorOf(call);
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(text)]);
    }
    expect({ maps: p.maps(), pol: m.getMempolicy(p), nodes: nodesOf(m, p, a, 4), counters: m.counters() }).toEqual(before);
    // A zero length is no work at all.
    m.mbind(p, a, 0, MPOL_BIND, [1], MPOL_MF_MOVE);
    expect(p.maps()).toEqual(before.maps);
    const q = m.spawn();
    q.exit();
    expect(errorOf(() => m.mbind(q, a, PAGE_SIZE, MPOL_BIND, [1])).code).toBe("ESRCH");
    m.check();
  });

  it("mbind that would pass max_map_count is ENOMEM, in every process it would touch", () => {
    const m = Machine.create({ nodes: [{ normal: 1024 }, { normal: 1024 }], maxVmas: 4 });
    const p = m.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    m.mbind(p, a + PAGE_SIZE, PAGE_SIZE, MPOL_BIND, [1]);
    const maps = p.maps();
    expect(maps.length).toBe(3);
    expect(errorOf(() => m.mbind(p, a + 4 * PAGE_SIZE, PAGE_SIZE, MPOL_BIND, [0])).code).toBe("ENOMEM");
    expect(p.maps()).toEqual(maps);
    const q = m.spawn();
    const s = q.mmap(0, 8 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    const c = q.fork();
    c.mmap(0, PAGE_SIZE, RW, ANON);
    c.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    c.mmap(0, PAGE_SIZE, RW, ANON);
    const [qmaps, cmaps] = [q.maps(), c.maps()];
    expect(cmaps.length).toBe(4);
    // Splitting the object's range fits in q; in the child, which maps it too, it does not.
    expect(errorOf(() => m.mbind(q, s + 2 * PAGE_SIZE, PAGE_SIZE, MPOL_BIND, [1])).code).toBe("ENOMEM");
    expect([q.maps(), c.maps()]).toEqual([qmaps, cmaps]);
    m.check();
  });
});
