// Bad input to GUP is refused with the kernel's errno and a sentence, and changes nothing:
// unmapped and PROT_NONE ranges, VMAs GUP may not touch, invalid FOLL_* combinations,
// malformed arguments, and releasing what was never taken (an error, not an underflow).
import { describe, it, expect } from "vitest";
import {
  Machine, MmError, PAGE_SIZE, TASK_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS,
  VM_IO, VM_PFNMAP, FOLL_WRITE, FOLL_GET, FOLL_FORCE, FOLL_ANON, FOLL_LONGTERM, FOLL_PCI_P2PDMA, FOLL_PIN, FOLL_TOUCH,
  FOLL_REMOTE, type Process,
} from "../src/index.js";
import { refused as refusedExactly, writtenProcess } from "./drivers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

// A release stages the caller's list in GUP_IN to check it: that region may change.
function refused(m: Machine, procs: Process[], code: string, call: () => unknown): MmError {
  const staged = m.core.gupInPtr();
  return refusedExactly(m, procs, code, call, [staged, staged + 65536 * 4]);
}

const setup = () => writtenProcess();

const pfnOf = (pte: bigint): number => Number((pte >> 12n) & 0xffffffffffn);

/** Sets vm_flags bits on the VMA at `addr` (no mmap makes VM_IO / VM_PFNMAP mappings yet). */
function setVmFlags(p: Process, addr: number, bits: number): void {
  const inner = p as unknown as { vmas: { start: number; end: number; flags: number }[]; publish(): void };
  const v = inner.vmas.find((x) => x.start * PAGE_SIZE <= addr && addr < x.end * PAGE_SIZE)!;
  v.flags |= bits;
  inner.publish();
}

describe("GUP refuses ranges it cannot take, before taking anything", () => {
  it("unmapped ranges, and ranges with a hole after pages it could take", () => {
    const { m, p, a } = setup();
    p.munmap(a + 8 * PAGE_SIZE, PAGE_SIZE);
    expect(refused(m, [p], "EFAULT", () => m.pinUserPages(p, a, 16)).message).toMatch(/no mapping at 0x[0-9a-f]+: the range has a hole/);
    refused(m, [p], "EFAULT", () => m.getUserPages(p, a + 8 * PAGE_SIZE, 1));
    refused(m, [p], "EFAULT", () => m.pinUserPages(p, 0x10000, 1, FOLL_WRITE));
    refused(m, [p], "EFAULT", () => m.pinUserPages(p, TASK_SIZE - PAGE_SIZE, 4));
  });

  it("PROT_NONE, write-only and exec-only mappings for reads; read-only mappings for FOLL_WRITE", () => {
    const { m, p, a, s } = setup();
    p.mprotect(a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_NONE);
    expect(refused(m, [p], "EFAULT", () => m.pinUserPages(p, a, 8)).message).toMatch(/not readable/);
    p.mprotect(a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_WRITE);
    refused(m, [p], "EFAULT", () => m.getUserPages(p, a + 4 * PAGE_SIZE, 1));
    p.mprotect(a, 4 * PAGE_SIZE, PROT_READ);
    expect(refused(m, [p], "EFAULT", () => m.pinUserPages(p, a, 2, FOLL_WRITE)).message).toMatch(/FOLL_WRITE: .* not writable/);
    p.mprotect(s, 4 * PAGE_SIZE, PROT_READ);
    // FOLL_FORCE breaks COW in private mappings only.
    expect(refused(m, [p], "EFAULT", () => m.pinUserPages(p, s, 1, FOLL_WRITE | FOLL_FORCE)).message).toMatch(/FOLL_FORCE cannot write/);
  });

  it("VM_IO / VM_PFNMAP mappings, and shared memory under FOLL_ANON", () => {
    const { m, p, a, s } = setup();
    refused(m, [p], "EFAULT", () => m.getUserPages(p, s, 1, FOLL_ANON));
    setVmFlags(p, a, VM_IO);
    expect(refused(m, [p], "EFAULT", () => m.pinUserPages(p, a, 1)).message).toMatch(/VM_IO\/VM_PFNMAP/);
    setVmFlags(p, s, VM_PFNMAP);
    refused(m, [p], "EFAULT", () => m.getUserPages(p, s, 2));
  });
});

describe("invalid FOLL_* combinations are EINVAL", () => {
  it("GET with PIN, LONGTERM without PIN or with PCI_P2PDMA, unknown and internal bits", () => {
    const { m, p, a } = setup();
    expect(refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 1, FOLL_GET)).message).toMatch(/FOLL_GET and FOLL_PIN/);
    expect(refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, FOLL_LONGTERM)).message).toMatch(/FOLL_LONGTERM is only for pins/);
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 1, FOLL_LONGTERM | FOLL_PCI_P2PDMA));
    expect(refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, 0x2000)).message).toMatch(/unknown FOLL_\* bits 0x2000/);
    refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, 1 << 30));
    expect(refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 1, FOLL_PIN)).message).toMatch(/FOLL_PIN is internal/);
    refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, FOLL_TOUCH | FOLL_REMOTE));
    refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, -1));
    refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, 1.5));
    refused(m, [p], "EINVAL", () => m.getUserPages(p, a, 1, "1" as unknown as number));
  });
});

describe("malformed arguments", () => {
  it("addresses, counts, output arrays and processes", () => {
    const { m, p, a } = setup();
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a + 1, 1));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, -PAGE_SIZE, 1));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, NaN, 1));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, -1));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 2.5));
    refused(m, [p], "EFAULT", () => m.pinUserPages(p, a, 2 ** 40));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 4, 0, new Uint32Array(3)));
    refused(m, [p], "EINVAL", () => m.pinUserPages(p, a, 4, 0, [0, 0, 0, 0] as unknown as Uint32Array));
    refused(m, [p], "EINVAL", () => m.pinUserPages({} as Process, a, 1));
    const other = Machine.create({ nodes: [{ normal: 512 }], content: "tags" });
    refused(m, [p], "EINVAL", () => m.pinUserPages(other.spawn(), a, 1));
    const q = m.spawn();
    q.exit();
    refused(m, [p], "ESRCH", () => m.getUserPages(q, a, 1));
    refused(m, [p], "EINVAL", () => m.gupPagesBuffer(0));
    refused(m, [p], "EINVAL", () => m.gupPagesBuffer(65537));
    // Zero pages is not an error, as in the kernel: nothing is taken.
    expect(m.pinUserPages(p, a, 0).length).toBe(0);
  });
});

describe("releasing what was never taken is EINVAL, not an underflow", () => {
  it("unpinning pages without pins, more times than pinned, or pfns that are no frames", () => {
    const { m, p, a } = setup();
    const pfns = m.pinUserPages(p, a, 4);
    const mapped = pfnOf(p.pte(a + 8 * PAGE_SIZE));
    expect(refused(m, [p], "EINVAL", () => m.unpinUserPage(mapped)).message).toMatch(/holds no pin/);
    expect(refused(m, [p], "EINVAL", () => m.unpinUserPages([pfns[0]!, pfns[1]!, pfns[0]!])).message).toMatch(/pages\[2\]/);
    refused(m, [p], "EINVAL", () => m.unpinUserPages([pfns[0]!, 2047]));
    expect(refused(m, [p], "EINVAL", () => m.unpinUserPages([pfns[0]!, 99999])).message).toMatch(/not a frame/);
    refused(m, [p], "EINVAL", () => m.unpinUserPages([pfns[0]!, -1]));
    refused(m, [p], "EINVAL", () => m.unpinUserPages([pfns[0]!, 1.5]));
    refused(m, [p], "EINVAL", () => m.unpinUserPages(null as unknown as number[]));
    refused(m, [p], "EINVAL", () => m.unpinUserPage("7" as unknown as number));
    m.unpinUserPages(pfns);
    refused(m, [p], "EINVAL", () => m.unpinUserPage(pfns[3]!));
    m.check();
  });

  it("pins and references do not release each other", () => {
    const { m, p, a } = setup();
    const pinned = m.pinUserPages(p, a, 2);
    const got = m.getUserPages(p, a + 2 * PAGE_SIZE, 2);
    expect(refused(m, [p], "EINVAL", () => m.releasePages(pinned)).message).toMatch(/holds no reference from get_user_pages/);
    refused(m, [p], "EINVAL", () => m.unpinUserPages(got));
    refused(m, [p], "EINVAL", () => m.unpinUserPagesDirtyLock(got, true));
    refused(m, [p], "EINVAL", () => m.releasePages([got[0]!, got[0]!]));
    m.unpinUserPages(pinned);
    m.releasePages(got);
    m.check();
  });

  it("the zero page in a list is skipped, as unpin_user_page skips it", () => {
    const { m, p } = setup();
    const b = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const pfns = m.pinUserPages(p, b, 2);
    expect(Array.from(pfns)).toEqual([0, 0]);
    m.unpinUserPages(pfns);
    m.unpinUserPages(pfns);
    expect(m.counters().nr_foll_pin_released).toBe(0);
    m.check();
  });
});
