// A batch of CPU accesses, written straight into the core's OPS region and run
// by one Wasm call (Process.run). Reads leave their values in the batch.
import { fail, hex } from "./errors.js";
import { MAX_OPS, OP_RECORD, DATA_SIZE } from "./layout.js";
import { TASK_SIZE } from "./constants.js";

export const OP_READ_U32 = 1;
export const OP_WRITE_U32 = 2;
export const OP_READ_TAG = 3;
export const OP_WRITE_TAG = 4;
export const OP_READ_BYTES = 5;
export const OP_WRITE_BYTES = 6;
export const OP_TOUCH_READ = 7;
export const OP_TOUCH_WRITE = 8;

const WORDS = OP_RECORD / 4;
const TWO32 = 2 ** 32;

export class AccessBatch {
  /** Number of ops queued. */
  length = 0;
  private dataUsed = 0;

  /** @internal */
  constructor(
    private readonly ops: Uint32Array,
    private readonly data: Uint8Array,
    readonly byteOps: boolean,
  ) {}

  clear(): this {
    this.length = 0;
    this.dataUsed = 0;
    return this;
  }

  private push(fn: string, kind: number, addr: number, len: number, lo = 0, hi = 0, dataOff = 0): number {
    if (this.length >= MAX_OPS) fail("EINVAL", fn, `a batch holds at most ${MAX_OPS} ops`, this.length);
    if (!Number.isInteger(addr) || addr < 0 || addr >= TASK_SIZE)
      fail("EFAULT", fn, `address ${String(addr)} is outside the user address space [0, ${hex(TASK_SIZE)})`, addr);
    const i = this.length++;
    const w = i * WORDS;
    this.ops[w] = kind;
    this.ops[w + 1] = addr % TWO32;
    this.ops[w + 2] = Math.floor(addr / TWO32);
    this.ops[w + 3] = len;
    this.ops[w + 4] = lo;
    this.ops[w + 5] = hi;
    this.ops[w + 6] = dataOff;
    this.ops[w + 7] = 0;
    return i;
  }

  /** @internal A fault ended the run at op `i`: a touch starts from its first page again next time. */
  restartOp(i: number): void {
    this.ops[i * WORDS + 7] = 0;
  }

  private op(fn: string, i: number): void {
    // Cheap for hot loops: a u32 below the length (NaN, fractions and negatives fail `>>> 0`).
    if (typeof i !== "number" || i >>> 0 !== i || i >= this.length) fail("EINVAL", fn, `op ${String(i)} is not one of the batch's ${this.length}`, i);
  }

  private needBytes(fn: string): void {
    if (!this.byteOps) fail("EOPNOTSUPP", fn, `byte-level access needs content mode "bytes"; this machine keeps tags`);
  }

  private dataSpan(fn: string, len: number): number {
    if (!Number.isInteger(len) || len <= 0) fail("EINVAL", fn, `length must be a positive integer, got ${String(len)}`, len);
    if (this.dataUsed + len > DATA_SIZE) fail("EINVAL", fn, `a batch carries at most ${DATA_SIZE} bytes of data`, len);
    const off = this.dataUsed;
    this.dataUsed += len;
    return off;
  }

  readU32(addr: number): number {
    this.needBytes("readU32");
    return this.push("readU32", OP_READ_U32, addr, 4);
  }

  writeU32(addr: number, value: number): number {
    this.needBytes("writeU32");
    if (!Number.isInteger(value) || value < 0 || value >= TWO32) fail("EINVAL", "writeU32", `value ${value} is not a u32`, value);
    return this.push("writeU32", OP_WRITE_U32, addr, 4, value);
  }

  read(addr: number, len: number): number {
    this.needBytes("read");
    const off = this.dataSpan("read", len);
    return this.push("read", OP_READ_BYTES, addr, len, 0, 0, off);
  }

  write(addr: number, bytes: Uint8Array): number {
    this.needBytes("write");
    if (!(bytes instanceof Uint8Array)) fail("EINVAL", "write", "data must be a Uint8Array", bytes);
    const off = this.dataSpan("write", bytes.length);
    this.data.set(bytes, off);
    return this.push("write", OP_WRITE_BYTES, addr, bytes.length, 0, 0, off);
  }

  readTag(addr: number): number {
    return this.push("readTag", OP_READ_TAG, addr, 8);
  }

  writeTag(addr: number, tag: bigint): number {
    if (typeof tag !== "bigint" || tag < 0n || tag >= 1n << 64n) fail("EINVAL", "writeTag", `tag must be a u64 bigint`, tag);
    return this.push("writeTag", OP_WRITE_TAG, addr, 8, Number(tag & 0xffffffffn), Number(tag >> 32n));
  }

  /** writeTag of a tag below 2^32 given as a number: no bigint made (for hot loops). */
  writeTagU32(addr: number, tag: number): number {
    if (!Number.isInteger(tag) || tag < 0 || tag >= TWO32) fail("EINVAL", "writeTagU32", `tag ${tag} is not a u32`, tag);
    return this.push("writeTagU32", OP_WRITE_TAG, addr, 8, tag, 0);
  }

  /** Touches `npages` pages from `addr` (page-aligned); writes store tag `tagBase + i` in page i. */
  touch(addr: number, npages: number, write: boolean, tagBase = 0n): number {
    if (typeof addr !== "number" || !Number.isInteger(addr) || addr < 0 || addr >= TASK_SIZE)
      fail("EFAULT", "touch", `address ${String(addr)} is outside the user address space [0, ${hex(TASK_SIZE)})`, addr);
    if (addr % 4096 !== 0) fail("EINVAL", "touch", `address ${hex(addr)} is not page-aligned`, addr);
    if (typeof write !== "boolean") fail("EINVAL", "touch", `write must be a boolean, got ${String(write)}`, write);
    if (!Number.isInteger(npages) || npages <= 0 || npages >= TWO32 || addr + npages * 4096 > TASK_SIZE)
      fail("EINVAL", "touch", `page count ${String(npages)} is not a positive count inside the address space`, npages);
    if (typeof tagBase !== "bigint" || tagBase < 0n || tagBase + BigInt(npages) > 1n << 64n)
      fail("EINVAL", "touch", `tag base must be a u64 bigint`, tagBase);
    return this.push("touch", write ? OP_TOUCH_WRITE : OP_TOUCH_READ, addr, npages,
      Number(tagBase & 0xffffffffn), Number(tagBase >> 32n));
  }

  /** A completed readTag's value, low and high 32 bits (no bigint made: for hot loops). */
  tagLow(i: number): number {
    this.op("tagLow", i);
    return this.ops[i * WORDS + 4]!;
  }

  tagHigh(i: number): number {
    this.op("tagHigh", i);
    return this.ops[i * WORDS + 5]!;
  }

  /** The value a completed read op left: a number (readU32), a bigint (readTag) or bytes (read). */
  value(i: number): number | bigint | Uint8Array {
    this.op("value", i);
    const w = i * WORDS;
    switch (this.ops[w]) {
      case OP_READ_U32:
        return this.ops[w + 4]!;
      case OP_READ_TAG:
        return (BigInt(this.ops[w + 5]!) << 32n) | BigInt(this.ops[w + 4]!);
      case OP_READ_BYTES:
        return this.data.slice(this.ops[w + 6]!, this.ops[w + 6]! + this.ops[w + 3]!);
      default:
        return fail("EINVAL", "value", `op ${i} is not a read`, i);
    }
  }
}
