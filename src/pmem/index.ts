export { PmemDevice, KERNEL_STRUCT_PAGE_BYTES, type PmemMode, type StructPageOverhead } from "./device.js";
export { registerPmem, type PmemConfig } from "./register.js";
export { vmfInsertPfns, DAX_VM_FLAGS, type DaxMmapOptions } from "./dax.js";
export { PMEM_REQUEST_NS, PMEM_BYTES_PER_NS } from "./io.js";
