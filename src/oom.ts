// The OOM reaper (mm/oom_kill.c, __oom_reap_task_mm and oom_reap_task): the one caller in the
// kernel that invalidates without blocking. A notifier that cannot take its lock refuses
// (mmu_notifier_invalidate_range_start_nonblock gives -EAGAIN), the VMA is skipped, and the
// reaper retries the whole mm a bounded number of times before it gives up and says so.
import type { Machine } from "./machine.js";
import { Process } from "./process.js";
import { fail } from "./errors.js";
import { PAGE_SIZE, VM_LOCKED, VM_PFNMAP, VM_SHARED } from "./constants.js";
import { MMU_NOTIFY_UNMAP } from "./hmm/notifier.js";

/** The kernel's bound on reaping attempts. */
export const MAX_OOM_REAP_RETRIES = 10;

export interface OomReapResult {
  /** Whether one attempt reaped every private VMA ("oom_reaper: reaped process"). */
  reaped: boolean;
  /** Attempts made (MAX_OOM_REAP_RETRIES when the reaper gave up: "unable to reap"). */
  attempts: number;
  /** Private VMAs the last attempt had to skip because a notifier refused. */
  skippedVmas: number;
  /** Resident anonymous pages the reaper freed before the victim's exit. */
  freedAnon: number;
}

/**
 * Kills `proc` as the OOM killer's victim: the reaper unmaps its private memory ahead of the
 * exit, with non-blocking invalidations, then the task exits (exit_mmap, which blocks and so
 * always completes). VM_PFNMAP and mlocked VMAs are left to the exit.
 */
export function oomReap(m: Machine, proc: Process): OomReapResult {
  const fn = "oom_reap_task";
  if (!(proc instanceof Process) || proc.machineOf() !== m) fail("EINVAL", fn, "not a process of this machine", proc);
  if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
  const before = m.core.rssAnon(proc.mm);
  let attempts = 0;
  let skipped = 0;
  let reaped = false;
  while (attempts < MAX_OOM_REAP_RETRIES && !reaped) {
    attempts++;
    skipped = reapOnce(m, proc);
    reaped = skipped === 0;
  }
  const freedAnon = before - m.core.rssAnon(proc.mm);
  m.settle();
  proc.exit();
  return { reaped, attempts, skippedVmas: skipped, freedAnon };
}

/** One __oom_reap_task_mm pass; returns the VMAs it skipped. */
function reapOnce(m: Machine, proc: Process): number {
  let skipped = 0;
  for (const v of proc.vmaList()) {
    if (v.flags & (VM_PFNMAP | VM_LOCKED) || v.flags & VM_SHARED) continue;
    const range = { mm: proc, start: v.start * PAGE_SIZE, end: v.end * PAGE_SIZE, flags: 0, event: MMU_NOTIFY_UNMAP, owner: null };
    if (proc.subscriptions && !proc.subscriptions.invalidate(range)) {
      skipped++;
      continue;
    }
    m.core.zap(proc.mm, v.start, v.end - v.start);
  }
  return skipped;
}
