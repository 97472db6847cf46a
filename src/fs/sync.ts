// vfs_fsync_range: what fsync(2), fdatasync(2) and msync(MS_SYNC) share. The dirty pages of
// the range go to the device, the device's volatile cache is flushed and the journal commits
// the inode, so a power failure afterwards finds the range's data and the file's size.
import type { Machine } from "../machine.js";
import { MmError, fail } from "../errors.js";
import type { Inode } from "./inode.js";
import { writebackRange } from "./pagecache.js";

/**
 * Writes back the dirty pages of `inode` in [from, to), flushes and commits. The error any
 * writeback met since the last sync (errseq) is reported once, as `fn`'s EIO or ENOSPC; the
 * pages stay dirty and nothing is committed then.
 */
export function vfsFsyncRange(m: Machine, inode: Inode, fn: string, from = 0, to = inode.sizePages): void {
  // DAX data is on the media already: only the inode needs its commit.
  const r = inode.fs.dax ? { written: 0, error: null } : writebackRange(m, inode, from, to);
  const err = inode.wbError;
  inode.wbError = null;
  if (err) fail(err, fn, `writeback of ${inode.name} failed${r.error ? `: ${r.error.message}` : " since the last sync"}; its dirty pages are kept`);
  try {
    inode.fs.dev.flush();
  } catch (e) {
    if (e instanceof MmError) fail("EIO", fn, `flushing ${inode.fs.dev.name} failed: ${e.message}`);
    throw e;
  }
  inode.fs.commit(inode);
  m.settle();
}
