// Frame contents: 4096 real bytes per frame (bytes mode) or a 64-bit tag per frame
// (tags mode). Every path goes through these; only the copy primitive differs.
import { contentMode, CONTENT_TAGS, tagsBase, framesBase, PAGE_SIZE } from "./layout";

@inline export function frameAddr(pfn: u32): usize {
  return framesBase + (<usize>pfn << 12);
}

@inline export function clearFrame(pfn: u32): void {
  if (contentMode == CONTENT_TAGS) store<u64>(tagsBase + (<usize>pfn << 3), 0);
  else memory.fill(frameAddr(pfn), 0, PAGE_SIZE);
}

@inline export function copyFrame(dst: u32, src: u32): void {
  if (contentMode == CONTENT_TAGS) store<u64>(tagsBase + (<usize>dst << 3), load<u64>(tagsBase + (<usize>src << 3)));
  else memory.copy(frameAddr(dst), frameAddr(src), PAGE_SIZE);
}

// The tag of a frame: the tag itself, or the first 8 bytes in bytes mode.
@inline export function readTag(pfn: u32): u64 {
  if (contentMode == CONTENT_TAGS) return load<u64>(tagsBase + (<usize>pfn << 3));
  return load<u64>(frameAddr(pfn));
}

@inline export function writeTag(pfn: u32, tag: u64): void {
  if (contentMode == CONTENT_TAGS) store<u64>(tagsBase + (<usize>pfn << 3), tag);
  else store<u64>(frameAddr(pfn), tag);
}

// n consecutive frames at once (one memory.copy for bytes, one for tags).
export function copyFrames(dst: u32, src: u32, n: u32): void {
  if (contentMode == CONTENT_TAGS) memory.copy(tagsBase + (<usize>dst << 3), tagsBase + (<usize>src << 3), <usize>n << 3);
  else memory.copy(frameAddr(dst), frameAddr(src), <usize>n << 12);
}

// Many frame copies in as few memory.copy calls as consecutive sources and destinations
// allow: runCopyAdd each pair, then runCopyFlush.
let runSrc: u32 = 0;
let runDst: u32 = 0;
let runLen: u32 = 0;

@inline export function runCopyAdd(dst: u32, src: u32): void {
  if (runLen > 0 && src == runSrc + runLen && dst == runDst + runLen) {
    runLen++;
    return;
  }
  runCopyFlush();
  runSrc = src;
  runDst = dst;
  runLen = 1;
}

export function runCopyFlush(): void {
  if (runLen > 0) copyFrames(runDst, runSrc, runLen);
  runLen = 0;
}
