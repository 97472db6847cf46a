// NUMA memory policy (mm/mempolicy.c): set_mempolicy for a process, mbind for a range of it,
// get_mempolicy. The core's fault path follows the policy: bind allocates only on its nodes,
// preferred starts at its node, interleave picks the node from the page's offset in its object.
import type { Machine } from "../machine.js";
import type { Process } from "../process.js";
import { fail, hex, MmError } from "../errors.js";
import { PAGE_SIZE, TASK_SIZE, VM_SHARED } from "../constants.js";
import { changeRange, type Vma, type VmaPolicy } from "../vma.js";
import {
  MPOL_DEFAULT, MPOL_PREFERRED, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING,
  MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, MAX_NUMNODES, MODE_NAMES,
  memoryNodes, maskToNodes, nodesToMask, liveProc,
} from "./mpol.js";
import { migrateRange, countMisplaced, type RetryOptions } from "./migrate-pages.js";
import { isU32 } from "../validate.js";

const MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL;
const MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;

export interface Mempolicy {
  /** MPOL_* mode (with MPOL_F_NODE: a node number). */
  mode: number;
  /** The policy's nodes, ascending. */
  nodes: number[];
}

interface NewPolicy {
  /** What the VMA or the task records (mode MPOL_DEFAULT: no policy of its own). */
  policy: VmaPolicy;
  /** The nodemask as the caller gave it: mbind moves the pages outside it. */
  userMask: number;
}

/** mpol_new + mpol_set_nodemask: the kernel's checks; nodes without memory are dropped. */
function newPolicy(m: Machine, fn: string, mode: number, nodes: readonly number[]): NewPolicy {
  if (!Number.isInteger(mode) || mode < 0) fail("EINVAL", fn, `mode ${String(mode)} is not a policy mode`, mode);
  if (mode & MODE_FLAGS) fail("EINVAL", fn, "the mode flags MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES and MPOL_F_NUMA_BALANCING are not modelled", mode);
  if (mode < MPOL_DEFAULT || mode > MPOL_LOCAL) fail("EINVAL", fn, `mode ${mode} is not one of ${MODE_NAMES.join(", ")}`, mode);
  const userMask = nodesToMask(fn, nodes);
  if ((mode === MPOL_DEFAULT || mode === MPOL_LOCAL) && userMask !== 0)
    fail("EINVAL", fn, `${MODE_NAMES[mode]} takes no nodes, got [${nodes.join(", ")}]`, nodes);
  if (mode === MPOL_DEFAULT) return { policy: { mode, nodes: 0 }, userMask };
  // MPOL_PREFERRED with no nodes means local allocation.
  if (mode === MPOL_LOCAL || (mode === MPOL_PREFERRED && userMask === 0)) return { policy: { mode: MPOL_LOCAL, nodes: 0 }, userMask };
  if (userMask === 0) fail("EINVAL", fn, `${MODE_NAMES[mode]} needs at least one node`, nodes);
  const allowed = userMask & memoryNodes(m);
  if (allowed === 0) fail("EINVAL", fn, `none of the nodes [${nodes.join(", ")}] has memory (the machine has ${m.config.nodes.length})`, nodes);
  // A preferred policy keeps its first node.
  return { policy: { mode, nodes: mode === MPOL_PREFERRED ? allowed & -allowed : allowed }, userMask };
}

/** set_mempolicy(2): the process's policy, for every VMA without one of its own. */
export function setMempolicy(m: Machine, proc: Process, mode: number, nodes: readonly number[] = []): void {
  const fn = "set_mempolicy";
  liveProc(m, fn, proc);
  proc.setTaskPolicy(newPolicy(m, fn, mode, nodes).policy);
}

/**
 * get_mempolicy(2). No flags: the process's policy. MPOL_F_ADDR: the policy of the VMA at
 * `addr` (MPOL_DEFAULT when it has none of its own; EFAULT without a VMA). MPOL_F_NODE with
 * MPOL_F_ADDR: in `mode`, the node of the page at `addr`, faulted in for read as the kernel's
 * GUP does. MPOL_F_NODE alone, under an interleave task policy: the node the next interleaved
 * allocation would use. MPOL_F_MEMS_ALLOWED: the nodes with memory.
 */
export function getMempolicy(m: Machine, proc: Process, addr = 0, flags = 0): Mempolicy {
  const fn = "get_mempolicy";
  liveProc(m, fn, proc);
  if (!isU32(flags) || flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED)) fail("EINVAL", fn, `unknown flag bits in ${String(flags)}`, flags);
  if (!Number.isInteger(addr) || addr < 0) fail("EINVAL", fn, `address ${String(addr)} is not a non-negative integer`, addr);
  if (flags & MPOL_F_MEMS_ALLOWED) {
    if (flags & (MPOL_F_NODE | MPOL_F_ADDR)) fail("EINVAL", fn, "MPOL_F_MEMS_ALLOWED goes with no other flag", flags);
    return { mode: MPOL_DEFAULT, nodes: maskToNodes(memoryNodes(m)) };
  }
  let pol = proc.taskPolicy;
  if (flags & MPOL_F_ADDR) {
    const vpn = Math.floor(addr / PAGE_SIZE);
    const vma = addr < TASK_SIZE ? proc.vmaList().find((v) => v.start <= vpn && vpn < v.end) : undefined;
    if (!vma) fail("EFAULT", fn, `no mapping at ${hex(addr)}`, addr);
    pol = vma.mpol ?? { mode: MPOL_DEFAULT, nodes: 0 };
  } else if (addr !== 0) {
    fail("EINVAL", fn, `an address (${hex(addr)}) is taken only with MPOL_F_ADDR`, addr);
  }
  const nodes = maskToNodes(pol.nodes);
  if (flags & MPOL_F_NODE) {
    if (flags & MPOL_F_ADDR) return { mode: nodeOfPage(m, proc, addr), nodes };
    // il_prev never advances: every allocation here belongs to a VMA and interleaves by index.
    if (pol.mode === MPOL_INTERLEAVE) return { mode: nodes[0]!, nodes };
    fail("EINVAL", fn, "MPOL_F_NODE without MPOL_F_ADDR needs an interleave task policy", flags);
  }
  return { mode: pol.mode, nodes };
}

/** lookup_node: GUP the page (a read fault if need be), and its node. */
function nodeOfPage(m: Machine, proc: Process, addr: number): number {
  const err = proc.faultPage(addr - (addr % PAGE_SIZE), false);
  if (err) fail("EFAULT", "get_mempolicy", `no page can be brought in at ${hex(addr)}: ${err.message}`, addr);
  return m.pfnToNid(Number((proc.pte(addr) >> 12n) & 0xffffffffffn));
}

/**
 * mbind(2): the policy of [addr, addr+len), split off into VMAs of its own as mprotect does;
 * for shared memory the policy is the object's (shmem_set_policy), so the VMAs of every process
 * that maps that part of it take it too. MPOL_MF_STRICT alone fails with EIO, changing nothing,
 * when a page there sits on a node outside `nodes`. MPOL_MF_MOVE moves such pages that only this
 * process maps (MPOL_MF_MOVE_ALL: all of them) to where the new policy places them; with
 * MPOL_MF_STRICT, pages that could not be moved make it fail with EIO after the policy is set
 * and the other pages moved, as in the kernel.
 */
export function mbind(m: Machine, proc: Process, addr: number, len: number, mode: number, nodes: readonly number[] = [], flags = 0, opts: RetryOptions = {}): void {
  const fn = "mbind";
  liveProc(m, fn, proc);
  if (!isU32(flags) || flags & ~MPOL_MF_VALID) fail("EINVAL", fn, `unknown flag bits in ${String(flags)}`, flags);
  if (!Number.isInteger(addr) || addr < 0) fail("EINVAL", fn, `address ${String(addr)} is not a non-negative integer`, addr);
  if (addr % PAGE_SIZE) fail("EINVAL", fn, `address ${hex(addr)} is not page-aligned`, addr);
  if (!Number.isInteger(len) || len < 0) fail("EINVAL", fn, `length ${String(len)} is not a non-negative integer`, len);
  if (addr + len > 2 ** 64) fail("EINVAL", fn, `range ${hex(addr)}+${hex(len)} wraps around`, len);
  const { policy, userMask } = newPolicy(m, fn, mode, nodes);
  const start = addr / PAGE_SIZE;
  const end = start + Math.ceil(len / PAGE_SIZE);
  if (end === start) return;
  // MPOL_DEFAULT takes ranges with holes; any other policy wants the whole range mapped.
  const vmas = proc.vmaList().filter((v) => v.end > start && v.start < end);
  if (vmas.length === 0) fail("EFAULT", fn, `nothing is mapped in ${hex(addr)}+${hex(len)}`, addr);
  if (policy.mode !== MPOL_DEFAULT && !covers(vmas, start, end)) fail("EFAULT", fn, `${hex(addr)}+${hex(len)} has an unmapped hole`, addr);
  const strict = (flags & MPOL_MF_STRICT) !== 0 && policy.mode !== MPOL_DEFAULT;
  const move = (flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) !== 0;
  // queue_pages_range inverts the caller's nodemask: pages on any other node are misplaced.
  const misplaced = ~userMask & ((1 << MAX_NUMNODES) - 1);
  if (strict && !move) {
    const n = countMisplaced(m, proc, start, end, misplaced);
    if (n > 0) fail("EIO", fn, `${n} page(s) in ${hex(addr)}+${hex(len)} sit on nodes outside [${nodes.join(", ")}] (MPOL_MF_STRICT); nothing was changed`, n);
  }
  applyPolicy(m, proc, fn, start, end, policy);
  if (!move) return;
  const target = policy.mode === MPOL_DEFAULT ? proc.taskPolicy : policy;
  const failed = migrateRange(m, proc, start, end, misplaced, (flags & MPOL_MF_MOVE_ALL) !== 0, target, opts);
  if (failed > 0 && strict)
    throw new MmError("EIO", fn, `${failed} misplaced page(s) could not be moved (MPOL_MF_STRICT); the policy is set and the other pages moved`, failed);
}

function covers(vmas: readonly Vma[], start: number, end: number): boolean {
  let at = start;
  for (const v of vmas) {
    if (v.start > at) return false;
    at = v.end;
  }
  return at >= end;
}

/**
 * mbind_range: `policy` on [start, end) of `proc`, and on the VMAs (in any process) that map
 * the same pages of a shared object. Every new VMA list is planned and checked against
 * max_map_count before any is installed.
 */
function applyPolicy(m: Machine, proc: Process, fn: string, start: number, end: number, policy: VmaPolicy): void {
  const mpol = policy.mode === MPOL_DEFAULT ? undefined : policy;
  const set = (v: Vma): Vma => ({ ...v, mpol });
  const own = changeRange(proc.vmaList(), start, end, set);
  const lists = new Map<Process, Vma[]>([[proc, own.list]]);
  for (const { before } of own.pieces) {
    if (!(before.flags & VM_SHARED) || !before.shmem) continue;
    const lo = before.pgoff;
    const hi = before.pgoff + (before.end - before.start);
    for (const other of m.procs) {
      for (const v of other.vmaList()) {
        if (v.shmem !== before.shmem || (other === proc && v.end > start && v.start < end)) continue;
        const a = Math.max(lo, v.pgoff);
        const b = Math.min(hi, v.pgoff + (v.end - v.start));
        if (a >= b) continue;
        const list = lists.get(other) ?? other.vmaList();
        lists.set(other, changeRange(list, v.start + (a - v.pgoff), v.start + (b - v.pgoff), set).list);
      }
    }
  }
  for (const [p, list] of lists) p.checkMapCount(fn, list);
  for (const [p, list] of lists) p.installVmas(list);
}
