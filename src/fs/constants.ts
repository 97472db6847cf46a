// open(2) flags and whence values with Linux's numbers.
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_ACCMODE = 0o3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_KNOWN = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND;

/** MAX_LFS_FILESIZE here: the page cache indexes 2^27 pages per file. */
export const MAX_FILE_PAGES = 2 ** 27;

/** msync(2) flags. */
export const MS_ASYNC = 1;
export const MS_INVALIDATE = 2;
export const MS_SYNC = 4;
