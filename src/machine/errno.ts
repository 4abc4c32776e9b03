// SPDX-License-Identifier: GPL-2.0-only
/**
 * Linux errno values. Model functions return 0 or a negative errno, as the kernel does, so the code reads
 * like the code it models (`if (rc) return rc;`). Names are used at the boundary (events, traces).
 */
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EIO = 5;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const ENOTTY = 25;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENOSYS = 38;
export const ENODATA = 61;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENOTSUPP = 524;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EIO]: 'EIO',
  [E2BIG]: 'E2BIG',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [ENOTTY]: 'ENOTTY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL',
  [ENOSPC]: 'ENOSPC',
  [ERANGE]: 'ERANGE',
  [EDEADLK]: 'EDEADLK',
  [ENOSYS]: 'ENOSYS',
  [ENODATA]: 'ENODATA',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EADDRINUSE]: 'EADDRINUSE',
  [EADDRNOTAVAIL]: 'EADDRNOTAVAIL',
  [ENOTSUPP]: 'ENOTSUPP',
};

/** "EFAULT" for -14 (or 14); null for 0. EDEADLOCK is the kernel's alias of EDEADLK. */
export function errnoName(rc: number): string | null {
  if (rc === 0) return null;
  return NAMES[Math.abs(rc)] ?? `E#${Math.abs(rc)}`;
}

export function errnoFromName(name: string): number {
  if (name === 'EDEADLOCK') return -EDEADLK;
  for (const [num, n] of Object.entries(NAMES)) if (n === name) return -Number(num);
  throw new RangeError(`unknown errno ${name}`);
}
