// Fault codes of the core's fault path (assembly/fault.ts).
export const FAULT_OK = 0;
export const FAULT_SIGSEGV_MAPERR = 1;
export const FAULT_SIGSEGV_ACCERR = 2;
export const FAULT_OOM = 3;
export const FAULT_SIGBUS = 4;
export const FAULT_DEVICE_PRIVATE = 5;
export const FAULT_DEVICE_EXCLUSIVE = 6;
export const FAULT_MIGRATION = 7;
export const FAULT_NOTIFY = 8;
export const FAULT_HWPOISON = 9;
export const FAULT_READPAGE = 10;
export const FAULT_DAX = 11;
