// One error type for every failure the emulator reports: an errno name (or a signal
// name for faults), the function that refused, and the offending value.

export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14,
  ENOTBLK: 15, EBUSY: 16, EEXIST: 17, ENODEV: 19, EINVAL: 22, ENFILE: 23, EFBIG: 27, ENOSPC: 28,
  EOPNOTSUPP: 95, EOVERFLOW: 75, EHWPOISON: 133,
} as const;
export type ErrnoName = keyof typeof ERRNO;
export type SignalName = "SIGSEGV" | "SIGBUS";

export interface FaultInfo {
  /** Faulting virtual address. */
  addr: number;
  access: "read" | "write";
  si_code: "SEGV_MAPERR" | "SEGV_ACCERR" | "BUS_ADRERR" | "BUS_MCEERR_AR";
}

export class MmError extends Error {
  /** Errno or signal name, e.g. "EINVAL" or "SIGSEGV". */
  readonly code: ErrnoName | SignalName;
  /** The kernel's negative errno; 0 for signals. */
  readonly errno: number;
  readonly fn: string;
  readonly value: unknown;
  readonly fault?: FaultInfo;

  constructor(code: ErrnoName | SignalName, fn: string, sentence: string, value?: unknown, fault?: FaultInfo) {
    super(`${fn}: ${code}: ${sentence}`);
    this.name = "MmError";
    this.code = code;
    this.errno = code in ERRNO ? -ERRNO[code as ErrnoName] : 0;
    this.fn = fn;
    this.value = value;
    this.fault = fault;
  }
}

export function fail(code: ErrnoName, fn: string, sentence: string, value?: unknown): never {
  throw new MmError(code, fn, sentence, value);
}

export function hex(n: number): string {
  return "0x" + n.toString(16);
}
