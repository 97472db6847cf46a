// Frame contents seen from TypeScript, for block I/O into and out of the page cache.
import type { Machine } from "../machine.js";
import { L } from "../layout.js";
import { PAGE_SIZE } from "../constants.js";

/** The live 4096 bytes of frame `pfn` (bytes mode). */
export function frameBytes(m: Machine, pfn: number): Uint8Array {
  return new Uint8Array(m.core.memory.buffer, m.layout.slots[L.FRAMES]! + pfn * PAGE_SIZE, PAGE_SIZE);
}

/** The content tag of frame `pfn` (tags mode). */
export function frameTag(m: Machine, pfn: number): bigint {
  const at = m.layout.slots[L.TAGS]! + pfn * 8;
  const v = new DataView(m.core.memory.buffer);
  return (BigInt(v.getUint32(at + 4, true)) << 32n) | BigInt(v.getUint32(at, true));
}

export function setFrameTag(m: Machine, pfn: number, tag: bigint): void {
  m.core.pageWriteTag(pfn, Number(tag & 0xffffffffn), Number(tag >> 32n));
}
