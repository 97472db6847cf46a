// NUMA memory policy (mm/mempolicy.c): where a user page is allocated. A VMA's policy
// (mbind) wins over the task's (set_mempolicy); MPOL_DEFAULT in a VMA means "the task's".
import { NONE } from "./layout";
import { zonelist, allocFromZone, allocPages, zoneNode, zoneStatistics } from "./alloc";
import { zoneOf } from "./memmap";
import { vmaPolicyMode, vmaPolicyNodes, mmPolicyMode, mmPolicyNodes, mmNode, linearIndex } from "./mm";
import { statAdd, PGALLOC_FAIL, NUMA_INTERLEAVE_HIT } from "./stat";

// Modes, with the kernel's values.
export const MPOL_DEFAULT: u32 = 0;
export const MPOL_PREFERRED: u32 = 1;
export const MPOL_BIND: u32 = 2;
export const MPOL_INTERLEAVE: u32 = 3;
export const MPOL_LOCAL: u32 = 4;

// interleave_nid: the (ilx mod weight)-th node of the mask.
export function interleaveNid(nodes: u32, ilx: u64): u32 {
  let skip = <u32>(ilx % <u64>popcnt<u32>(nodes));
  let m = nodes;
  for (; skip > 0; skip--) m &= m - 1;
  return ctz<u32>(m);
}

// __alloc_pages with a nodemask: `node`'s zonelist without the zones of nodes outside `mask`
// (MPOL_BIND, and __GFP_THISNODE with a mask of one node). The preferred zone for the NUMA
// counters is the first one allowed.
export function allocPagesNodemask(node: u32, order: u32, movable: bool, mask: u32): u32 {
  let preferred = NONE;
  for (let p = zonelist(node, movable); load<u32>(p) != NONE; p += 4) {
    const z = load<u32>(p);
    if ((mask & (1 << zoneNode(z))) == 0) continue;
    if (preferred == NONE) preferred = z;
    const pfn = allocFromZone(z, order);
    if (pfn != NONE) {
      zoneStatistics(preferred, z, <i64>1 << order);
      return pfn;
    }
  }
  statAdd(PGALLOC_FAIL, 1);
  return NONE;
}

// alloc_pages_mpol for one movable page under a resolved policy (never MPOL_DEFAULT): bind
// allocates only on its nodes, from the local node's zonelist; preferred starts at its node
// and interleave at the node the interleave index picks, both falling back to every node.
@inline export function allocPagesPolicy(mode: u32, nodes: u32, local: u32, ilx: u64): u32 {
  if (mode == MPOL_BIND) return allocPagesNodemask(local, 0, true, nodes);
  if (mode == MPOL_PREFERRED) return allocPages(ctz<u32>(nodes), 0, true);
  if (mode == MPOL_INTERLEAVE) {
    const nid = interleaveNid(nodes, ilx);
    const pfn = allocPages(nid, 0, true);
    if (pfn != NONE && zoneNode(zoneOf(pfn)) == nid) statAdd(NUMA_INTERLEAVE_HIT, 1);
    return pfn;
  }
  return allocPages(local, 0, true);
}

// vma_alloc_folio for the page at `vpn` of VMA `v` in `mm`: get_vma_policy, the task's policy
// when the VMA has none; interleave indexes by the page's offset in its object (linear index).
@inline export function allocUserPagePolicy(mm: u32, v: usize, vpn: u64): u32 {
  let mode = vmaPolicyMode(v);
  let nodes = vmaPolicyNodes(v);
  if (mode == MPOL_DEFAULT) {
    mode = mmPolicyMode(mm);
    nodes = mmPolicyNodes(mm);
  }
  return allocPagesPolicy(mode, nodes, mmNode(mm), mode == MPOL_INTERLEAVE ? linearIndex(v, vpn) : 0);
}

// The node a user page's allocation starts from under its policy (its preferred zone's node):
// what an injected allocation failure matches.
export function userPageNode(mm: u32, v: usize, vpn: u64): u32 {
  let mode = vmaPolicyMode(v);
  let nodes = vmaPolicyNodes(v);
  if (mode == MPOL_DEFAULT) {
    mode = mmPolicyMode(mm);
    nodes = mmPolicyNodes(mm);
  }
  const local = mmNode(mm);
  if (mode == MPOL_PREFERRED) return ctz<u32>(nodes);
  if (mode == MPOL_INTERLEAVE) return interleaveNid(nodes, linearIndex(v, vpn));
  if (mode == MPOL_BIND && (nodes & (1 << local)) == 0) return ctz<u32>(nodes);
  return local;
}

// A policy record the core can follow: a known mode whose nodemask fits it and the machine.
export function policyValid(mode: u32, nodes: u32, nnodes: u32): bool {
  if ((nodes >> nnodes) != 0 && nnodes < 32) return false;
  if (mode == MPOL_DEFAULT || mode == MPOL_LOCAL) return nodes == 0;
  if (mode == MPOL_PREFERRED) return popcnt<u32>(nodes) == 1;
  if (mode == MPOL_BIND || mode == MPOL_INTERLEAVE) return nodes != 0;
  return false;
}
