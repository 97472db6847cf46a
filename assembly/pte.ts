// PTE encoding: x86-64 bits for present entries, typed software entries
// (swp_entry_t) for the non-present ones, as in the kernel's swapops/leafops.
import { VM_WRITE, VM_ACCESS_FLAGS } from "./mm";

export const _PAGE_PRESENT: u64 = 1 << 0;
export const _PAGE_RW: u64 = 1 << 1;
export const _PAGE_USER: u64 = 1 << 2;
export const _PAGE_ACCESSED: u64 = 1 << 5;
export const _PAGE_DIRTY: u64 = 1 << 6;
// x86 reuses the global bit for PROT_NONE entries: not present to the MMU, still a mapping.
export const _PAGE_PROTNONE: u64 = 1 << 8;
export const _PAGE_SPECIAL: u64 = 1 << 9;
// Software bits (x86 _PAGE_BIT_SOFTW2/3) of a read-only migration (seed 004, an option beside
// the kernel's migration entries): the PTE stays present for readers but is write-protected
// while its page is copied; the second bit remembers that it was writable before.
export const _PAGE_RO_MIGRATION: u64 = 1 << 10;
export const _PAGE_RO_MIGRATION_WRITE: u64 = 1 << 11;
export const PTE_PFN_SHIFT: u64 = 12;
export const PTE_PFN_MASK: u64 = 0x000ffffffffff000;
// An upper-level entry pointing at a table from the pool (_PAGE_TABLE).
export const _PAGE_TABLE: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;

// Non-present software entries: a marker bit (so that type 0, offset 0 is not pte_none),
// the type in bits 57..61 and the offset (a pfn for pfn entries) where the pfn sits.
export const SWP_MARK: u64 = 1 << 1;
export const SWP_TYPE_SHIFT: u64 = 57;
export const SWP_TYPE_MASK: u64 = 0x1f;

// Swap types with DEVICE_PRIVATE, MIGRATION and MEMORY_FAILURE configured (MAX_SWAPFILES = 24).
export const MAX_SWAPFILES: u32 = 24;
export const SWP_HWPOISON: u32 = 24;
export const SWP_MIGRATION_READ: u32 = 25;
export const SWP_MIGRATION_READ_EXCLUSIVE: u32 = 26;
export const SWP_MIGRATION_WRITE: u32 = 27;
export const SWP_DEVICE_WRITE: u32 = 28;
export const SWP_DEVICE_READ: u32 = 29;
export const SWP_DEVICE_EXCLUSIVE: u32 = 30;
export const SWP_PTE_MARKER: u32 = 31;

@inline export function pteNone(pte: u64): bool {
  return pte == 0;
}
// pte_present() is true for PROT_NONE entries too, as in the kernel.
@inline export function ptepresent(pte: u64): bool {
  return (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0;
}
@inline export function pteProtnone(pte: u64): bool {
  return (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE;
}
@inline export function pteWrite(pte: u64): bool {
  return (pte & _PAGE_RW) != 0;
}
@inline export function pteRoMigration(pte: u64): bool {
  return (pte & _PAGE_RO_MIGRATION) != 0 && (pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0;
}
@inline export function pteSpecial(pte: u64): bool {
  return (pte & _PAGE_SPECIAL) != 0;
}
@inline export function ptePfn(pte: u64): u32 {
  return <u32>((pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT);
}
@inline export function pfnPte(pfn: u32, bits: u64): u64 {
  return (<u64>pfn << PTE_PFN_SHIFT) | bits;
}
// A user PTE for `pfn` with the VMA's protection: no write bit without VM_WRITE, and a
// PROT_NONE entry without any access (only FOLL_FORCE faults map pages there).
@inline export function userPte(pfn: u32, bits: u64, vmFlags: u32): u64 {
  if ((vmFlags & VM_WRITE) == 0) bits &= ~_PAGE_RW;
  if ((vmFlags & VM_ACCESS_FLAGS) == 0) return pfnPte(pfn, (bits & ~_PAGE_PRESENT) | _PAGE_PROTNONE);
  return pfnPte(pfn, bits);
}
@inline export function isSwapPte(pte: u64): bool {
  return pte != 0 && !ptepresent(pte);
}
@inline export function swpEntry(type: u32, offset: u32, bits: u64): u64 {
  return SWP_MARK | (<u64>type << SWP_TYPE_SHIFT) | (<u64>offset << PTE_PFN_SHIFT) | bits;
}
@inline export function swpType(pte: u64): u32 {
  return <u32>((pte >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK);
}
@inline export function swpOffset(pte: u64): u32 {
  return <u32>((pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT);
}
