// mmemu/testing: test devices for driver-level tests, like the kernel's lib/test_hmm.c.
export * from "./dmirror.js";
export * from "./pager.js";
