// Kernel errno values, returned negated.
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOMEM = 12;
export const EAGAIN = 11;
export const EOPNOTSUPP = 95;
