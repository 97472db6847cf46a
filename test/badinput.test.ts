import { describe, it, expect } from "vitest";
import {
  Machine, MmError, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE,
  MADV_DONTNEED, MADV_FREE, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP, PAGE_SIZE, TASK_SIZE, type Process,
} from "../src/index.js";
import { refused, writtenProcess } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

const setup = () => writtenProcess({ maxVmas: 8 });

describe("bad input is refused with the kernel's errno and changes nothing", () => {
  it("unaligned addresses", () => {
    const { m, p, a } = setup();
    refused(m, [p], "EINVAL", () => p.munmap(a + 1, PAGE_SIZE));
    refused(m, [p], "EINVAL", () => p.mprotect(a + 12, PAGE_SIZE, PROT_READ));
    refused(m, [p], "EINVAL", () => p.madvise(a + 100, PAGE_SIZE, MADV_DONTNEED));
    refused(m, [p], "EINVAL", () => p.mremap(a + 8, PAGE_SIZE, PAGE_SIZE));
    refused(m, [p], "EINVAL", () => p.mmap(a + 3, PAGE_SIZE, RW, ANON | MAP_FIXED));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, 0x10000001));
    refused(m, [p], "EINVAL", () => p.touch(a + 1, 1, true));
  });

  it("non-integer, negative and out-of-range addresses", () => {
    const { m, p, a } = setup();
    refused(m, [p], "EINVAL", () => p.munmap(-4096, PAGE_SIZE));
    refused(m, [p], "EINVAL", () => p.munmap(1.5, PAGE_SIZE));
    refused(m, [p], "EINVAL", () => p.munmap(TASK_SIZE + 2 * PAGE_SIZE, PAGE_SIZE));
    refused(m, [p], "EFAULT", () => p.readTag(-1));
    refused(m, [p], "EFAULT", () => p.writeTag(2 ** 60, 1n));
    refused(m, [p], "EFAULT", () => p.pte(NaN));
    refused(m, [p], "EPERM", () => p.mmap(4096, PAGE_SIZE, RW, ANON | MAP_FIXED));
    refused(m, [p], "EFAULT", () => p.mremap(a + 20 * PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE));
  });

  it("zero and overflowing lengths", () => {
    const { m, p, a } = setup();
    refused(m, [p], "EINVAL", () => p.mmap(0, 0, RW, ANON));
    refused(m, [p], "EINVAL", () => p.munmap(a, 0));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, 0));
    refused(m, [p], "EINVAL", () => p.mmap(0, -1, RW, ANON));
    refused(m, [p], "ENOMEM", () => p.mmap(0, 2 ** 52, RW, ANON));
    refused(m, [p], "ENOMEM", () => p.mmap(TASK_SIZE - PAGE_SIZE, 4 * PAGE_SIZE, RW, ANON | MAP_FIXED));
    refused(m, [p], "EINVAL", () => p.munmap(TASK_SIZE - PAGE_SIZE, 4 * PAGE_SIZE));
    refused(m, [p], "ENOMEM", () => p.mprotect(TASK_SIZE - PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ));
    refused(m, [p], "EINVAL", () => p.touch(a, 0, true));
    refused(m, [p], "EINVAL", () => p.touch(a, 2 ** 40, true));
    // mprotect and madvise of zero length succeed and do nothing, as the kernel's.
    p.mprotect(a, 0, PROT_READ);
    p.madvise(a, 0, MADV_DONTNEED);
    expect(p.readTag(a)).toBe(100n);
  });

  it("unknown prot, flags and advice bits", () => {
    const { m, p, a, s } = setup();
    refused(m, [p], "EINVAL", () => p.mmap(0, PAGE_SIZE, 0x10, ANON));
    refused(m, [p], "EINVAL", () => p.mmap(0, PAGE_SIZE, RW, ANON | 0x40000000));
    refused(m, [p], "EINVAL", () => p.mmap(0, PAGE_SIZE, RW, MAP_ANONYMOUS));
    refused(m, [p], "EBADF", () => p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE));
    refused(m, [p], "EINVAL", () => p.mprotect(a, PAGE_SIZE, 0x20));
    refused(m, [p], "EINVAL", () => p.madvise(a, PAGE_SIZE, 99));
    refused(m, [p], "EINVAL", () => p.madvise(s, PAGE_SIZE, MADV_FREE));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, PAGE_SIZE, 0x80));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, 0x10000000));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, PAGE_SIZE, MREMAP_DONTUNMAP));
    refused(m, [p], "EINVAL", () => p.mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP));
    refused(m, [p], "EINVAL", () => p.writeTag(a, -1n));
    refused(m, [p], "EOPNOTSUPP", () => p.writeU32(a, 1));
  });

  it("a shared anonymous object larger than its page-cache tree", () => {
    const { m, p } = setup();
    refused(m, [p], "ENOMEM", () => p.mmap(0, (2 ** 27 + 1) * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS));
  });

  it("MAP_FIXED_NOREPLACE wins over MAP_FIXED", () => {
    const { m, p, a } = setup();
    refused(m, [p], "EEXIST", () => p.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED | MAP_FIXED_NOREPLACE));
  });

  it("a stale access batch and malformed read/write arguments", () => {
    const { m, p, a } = setup();
    const b = p.batch();
    b.writeTag(a, 7n);
    p.readTag(a); // a helper starts a newer batch over the same ops region
    refused(m, [p], "EINVAL", () => p.run(b));
    refused(m, [p], "EINVAL", () => p.read(a, -1));
    refused(m, [p], "EINVAL", () => p.write(a, [1, 2] as unknown as Uint8Array));
    const q = m.spawn();
    q.exit();
    refused(m, [p], "ESRCH", () => q.read(a, 0));
  });

  it("ranges over holes and overlapping placements", () => {
    const { m, p, a } = setup();
    p.munmap(a + 4 * PAGE_SIZE, PAGE_SIZE);
    refused(m, [p], "ENOMEM", () => p.mprotect(a, 8 * PAGE_SIZE, PROT_READ));
    refused(m, [p], "ENOMEM", () => p.madvise(a, 8 * PAGE_SIZE, MADV_DONTNEED));
    refused(m, [p], "EFAULT", () => p.mremap(a, 8 * PAGE_SIZE, 16 * PAGE_SIZE, MREMAP_MAYMOVE));
    refused(m, [p], "EEXIST", () => p.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE));
    refused(m, [p], "EINVAL", () => p.mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, a + PAGE_SIZE));
  });

  it("too many VMAs", () => {
    const { m, p, a } = setup();
    // 3 VMAs now; alternate protections to split the 16-page VMA.
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ);
    p.mprotect(a + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ);
    expect(p.maps().length).toBe(6);
    p.mprotect(a + 5 * PAGE_SIZE, PAGE_SIZE, PROT_READ);
    expect(p.maps().length).toBe(8);
    refused(m, [p], "ENOMEM", () => p.mprotect(a + 7 * PAGE_SIZE, PAGE_SIZE, PROT_READ));
    refused(m, [p], "ENOMEM", () => p.munmap(a + 9 * PAGE_SIZE, PAGE_SIZE));
    refused(m, [p], "ENOMEM", () => p.mmap(0, PAGE_SIZE, PROT_READ, ANON));
  });

  it("operations on an exited process", () => {
    const { m, p, a } = setup();
    const q = m.spawn();
    q.exit();
    refused(m, [p], "ESRCH", () => q.mmap(0, PAGE_SIZE, RW, ANON));
    refused(m, [p], "ESRCH", () => q.munmap(a, PAGE_SIZE));
    refused(m, [p], "ESRCH", () => q.readTag(a));
    refused(m, [p], "ESRCH", () => q.fork());
    refused(m, [p], "ESRCH", () => q.exit());
    refused(m, [p], "ESRCH", () => q.rss());
  });

  it("machine configurations that cannot be built", () => {
    const err = (cfg: object) => {
      try {
        Machine.create(cfg);
      } catch (e) {
        return e as MmError;
      }
      throw new Error("expected a refusal");
    };
    expect(err({ nodes: [{ normal: 1 << 20 }], content: "bytes" }).code).toBe("ENOMEM"); // 4 GiB of frames
    expect(err({ nodes: [{ normal: 1 << 20 }], content: "bytes" }).message).toMatch(/32-bit Wasm memory/);
    expect(err({ nodes: [] }).code).toBe("EINVAL");
    expect(err({ nodes: [{ normal: -5 }] }).code).toBe("EINVAL");
    expect(err({ nodes: [{ normal: "many" }] }).code).toBe("EINVAL");
    expect(err({ content: "words" }).code).toBe("EINVAL");
    expect(err({ colour: "blue" }).code).toBe("EINVAL");
    expect(err({ maxProcesses: 0 }).code).toBe("EINVAL");
    expect(err({ nodes: [{ normal: 2 ** 31 }, { normal: 2 ** 31 }] }).code).toBe("ENOMEM");
  });

  it("spawn on a missing node", () => {
    const { m, p } = setup();
    refused(m, [p], "EINVAL", () => m.spawn({ node: 3 }));
  });
});
