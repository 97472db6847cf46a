import { describe, it, expect } from "vitest";
import { cutRange, insertVmas, canMerge, rangeMapped, rangeFree, findVma, type Vma } from "../src/vma.js";
import { VM_READ, VM_WRITE, VM_SHARED } from "../src/constants.js";

const v = (start: number, end: number, flags = VM_READ | VM_WRITE, anonVma = 1, pgoff = start): Vma =>
  ({ start, end, pgoff, flags, anonVma, shmem: null });

describe("VMA list", () => {
  it("cuts a range out of the middle, keeping pgoff consistent", () => {
    const removed: Vma[] = [];
    const out = cutRange([v(10, 20)], 12, 15, removed);
    expect(out.map((x) => [x.start, x.end, x.pgoff])).toEqual([[10, 12, 10], [15, 20, 15]]);
    expect(removed.map((x) => [x.start, x.end, x.pgoff])).toEqual([[12, 15, 12]]);
  });

  it("cuts across several VMAs and holes", () => {
    const removed: Vma[] = [];
    const out = cutRange([v(0, 5), v(8, 12), v(20, 30)], 3, 25, removed);
    expect(out.map((x) => [x.start, x.end])).toEqual([[0, 3], [25, 30]]);
    expect(removed.map((x) => [x.start, x.end])).toEqual([[3, 5], [8, 12], [20, 25]]);
  });

  it("merges only neighbours with equal flags, backing and contiguous offsets", () => {
    expect(canMerge(v(0, 5), v(5, 9))).toBe(true);
    expect(canMerge(v(0, 5), v(5, 9, VM_READ))).toBe(false);
    expect(canMerge(v(0, 5), v(5, 9, VM_READ | VM_WRITE, 2))).toBe(false);
    expect(canMerge(v(0, 5), v(5, 9, VM_READ | VM_WRITE, 1, 100))).toBe(false);
    expect(canMerge(v(0, 5), v(6, 9))).toBe(false);
    const obj = { id: 1, refs: 2, pages: 8 };
    const s1 = { ...v(0, 4, VM_READ | VM_SHARED), pgoff: 0, shmem: obj };
    const s2 = { ...v(4, 8, VM_READ | VM_SHARED), pgoff: 4, shmem: obj };
    expect(canMerge(s1, s2)).toBe(true);
    expect(canMerge(s1, { ...s2, shmem: { id: 2, refs: 1, pages: 8 } })).toBe(false);
    const { list, dropped } = insertVmas([v(0, 5), v(9, 12)], [v(5, 9)]);
    expect(list.map((x) => [x.start, x.end])).toEqual([[0, 12]]);
    expect(dropped.length).toBe(2);
  });

  it("answers mapped/free/find queries", () => {
    const list = [v(0, 5), v(5, 8), v(10, 12)];
    expect(rangeMapped(list, 1, 8)).toBe(true);
    expect(rangeMapped(list, 1, 9)).toBe(false);
    expect(rangeFree(list, 8, 10)).toBe(true);
    expect(rangeFree(list, 8, 11)).toBe(false);
    expect(findVma(list, 9)).toBeUndefined();
    expect(findVma(list, 11)?.start).toBe(10);
  });
});
