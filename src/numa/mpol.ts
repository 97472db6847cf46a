// Memory-policy modes and flags with the kernel's values, and nodemasks: a node list as the
// caller gives it becomes a bit mask (bit n = node n), as get_nodes reads a user nodemask.
import type { Machine } from "../machine.js";
import { Process } from "../process.js";
import { fail } from "../errors.js";

export const MPOL_DEFAULT = 0;
export const MPOL_PREFERRED = 1;
export const MPOL_BIND = 2;
export const MPOL_INTERLEAVE = 3;
export const MPOL_LOCAL = 4;
/** Mode flags the kernel takes with a mode; not modelled (there are no cpusets to rebind to). */
export const MPOL_F_STATIC_NODES = 1 << 15;
export const MPOL_F_RELATIVE_NODES = 1 << 14;
export const MPOL_F_NUMA_BALANCING = 1 << 13;

/** mbind, move_pages and migrate_pages flags. */
export const MPOL_MF_STRICT = 1 << 0;
export const MPOL_MF_MOVE = 1 << 1;
export const MPOL_MF_MOVE_ALL = 1 << 2;

/** get_mempolicy flags. */
export const MPOL_F_NODE = 1 << 0;
export const MPOL_F_ADDR = 1 << 1;
export const MPOL_F_MEMS_ALLOWED = 1 << 2;

/** Bits of a nodemask: a machine has at most 16 nodes. */
export const MAX_NUMNODES = 16;

export const MODE_NAMES = ["MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_LOCAL"] as const;

/** Nodes with memory (node_states[N_MEMORY]) as a mask. */
export function memoryNodes(m: Machine): number {
  let mask = 0;
  m.config.nodes.forEach((n, i) => {
    if (n.normal + n.movable > 0) mask |= 1 << i;
  });
  return mask;
}

export function maskToNodes(mask: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < MAX_NUMNODES; n++) if (mask & (1 << n)) out.push(n);
  return out;
}

export function popcount(mask: number): number {
  let n = 0;
  for (let m = mask; m; m &= m - 1) n++;
  return n;
}

/** get_nodes: a node list as a mask; a node at or past MAX_NUMNODES is refused (EINVAL). */
export function nodesToMask(fn: string, nodes: readonly number[], what = "nodes"): number {
  if (!Array.isArray(nodes)) fail("EINVAL", fn, `${what} must be an array of node numbers`, nodes);
  let mask = 0;
  for (const n of nodes) {
    if (!Number.isInteger(n) || n < 0 || n >= MAX_NUMNODES)
      fail("EINVAL", fn, `${what} holds ${String(n)}, which is not a node number below MAX_NUMNODES (${MAX_NUMNODES})`, n);
    mask |= 1 << n;
  }
  return mask;
}

/** The process a NUMA call names must be a live one of this machine. */
export function liveProc(m: Machine, fn: string, proc: Process): void {
  if (!(proc instanceof Process) || proc.machineOf() !== m) fail("EINVAL", fn, "not a process of this machine", proc);
  if (proc.exited) fail("ESRCH", fn, `process ${proc.pid} has exited`, proc.pid);
}
