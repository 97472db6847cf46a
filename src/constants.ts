// Userspace ABI constants with the kernel's values (x86-64).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Top of the user address space: 47 bits, less one guard page, as x86-64's TASK_SIZE. */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
export const MMAP_MIN_ADDR = 65536;

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_MASK = PROT_READ | PROT_WRITE | PROT_EXEC;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
/** x86's value: the mapping is mlocked (VM_LOCKED) and populated. */
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_KNOWN = MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_FIXED_NOREPLACE;

export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;

export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_DONTEXPAND = 0x40000;
export const VM_MIXEDMAP = 0x10000000;
/** VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP: VMAs of raw pfns, never merged, locked or expanded. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;
