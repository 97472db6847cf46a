// The kernel's hmm selftest (tools/testing/selftests/mm/hmm-tests.c) in TypeScript: its
// constants, struct hmm_buffer, the ioctl wrapper and the int-buffer helpers its cases share.
import { expect } from "vitest";
import { PAGE_SIZE, PAGE_SHIFT, PROT_READ, PROT_WRITE } from "../src/index.js";
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, type HmmDmirror } from "../src/testing/index.js";

export const HMM_PRIVATE_DEVICE_ONE = 0;
export const HMM_PRIVATE_DEVICE_TWO = 1;
export const HMM_COHERENCE_DEVICE_ONE = 2;
export const HMM_COHERENCE_DEVICE_TWO = 3;
export const HMM_BUFFER_SIZE = 1024 << 12;
export const page_size = PAGE_SIZE;
export const page_shift = PAGE_SHIFT;
export const RW = PROT_READ | PROT_WRITE;

/** struct hmm_buffer: `mirror` is the user buffer the ioctl's cmd.ptr points at. */
export interface HmmBuffer {
  ptr: number;
  mirror: Uint8Array;
  size: number;
  cpages: number;
  faults: number;
}

export function newBuffer(size: number, mirrorBytes = size): HmmBuffer {
  return { ptr: 0, mirror: new Uint8Array(mirrorBytes), size, cpages: -1, faults: -1 };
}

/** hmm_dmirror_cmd: 0 or -errno; cpages and faults are copied out only on success. */
export function hmm_dmirror_cmd(fd: HmmDmirror, request: number, buffer: HmmBuffer, npages: number): number {
  const r = fd.cmd(request, { addr: buffer.ptr, npages, buffer: buffer.mirror });
  if (r.ret !== 0) return r.ret;
  buffer.cpages = r.cpages;
  buffer.faults = r.faults;
  return 0;
}

export function hmm_migrate_sys_to_dev(fd: HmmDmirror, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

export function hmm_migrate_dev_to_sys(fd: HmmDmirror, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/** The int32 view of a byte buffer (the selftest's `int *ptr`). */
export function ints(bytes: Uint8Array): Int32Array {
  return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
}

/** nInts ints with values f(i), as bytes. */
export function intBytes(nInts: number, f: (i: number) => number): Uint8Array {
  const a = new Int32Array(nInts);
  for (let i = 0; i < nInts; i++) a[i] = f(i);
  return new Uint8Array(a.buffer);
}

/** Fills the mirror (device-side user buffer) with ints f(i). */
export function fillInts(bytes: Uint8Array, nInts: number, f: (i: number) => number): void {
  const v = ints(bytes);
  for (let i = 0; i < nInts; i++) v[i] = f(i);
}

/** ASSERT_EQ(ptr[i], f(i)) for i in [from, to): one failure message naming the first bad index. */
export function assertInts(bytes: Uint8Array, from: number, to: number, f: (i: number) => number, what: string): void {
  const v = ints(bytes);
  for (let i = from; i < to; i++) {
    if (v[i] !== (f(i) | 0)) expect(v[i], `${what}[${i}]`).toBe(f(i) | 0);
  }
}
