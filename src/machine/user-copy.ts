// SPDX-License-Identifier: GPL-2.0-only
/**
 * copy_to_user / copy_from_user (arch uaccess) on an mm: the current task's, or one a kernel thread borrowed
 * with kthread_use_mm. This is the fast path of iopt_pages_rw_access (spec 13e).
 *
 * A copy goes page by page and stops at the first page it cannot access: the bytes before that page are
 * copied, and the result is -EFAULT (the kernel returns the bytes not copied; every iommufd caller turns a
 * non-zero remainder into -EFAULT). Storing into user memory needs a writable VMA and breaks copy-on-write
 * of a page that is not exclusive, as a CPU store does.
 *
 * Deviations: no access_ok / TASK_SIZE check beyond "the range does not wrap 2^64".
 */
import { copyFromMm, copyToMm } from './memory.js';
import type { Sim } from './sim.js';

/**
 * write: store `data` at `uaddr` (copy_to_user). Otherwise load `data.length` bytes from `uaddr` into
 * `data` (copy_from_user). Returns 0 or -EFAULT.
 */
export function userCopy(sim: Sim, mm: number, uaddr: bigint, data: Uint8Array, write: boolean): number {
  if (write) return copyToMm(sim, mm, uaddr, data, 'copy_to_user');
  return copyFromMm(sim.state, mm, uaddr, data);
}
