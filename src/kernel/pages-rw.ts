// SPDX-License-Identifier: GPL-2.0-only
/**
 * iopt_pages_rw_access and its helpers (drivers/iommu/iommufd/pages.c, spec section 13e): a CPU copy to
 * or from a linear slice of an iopt_pages for an in-kernel access, without leaving pins behind.
 *
 * Three paths: the fast one copies through the source VA with the user-copy routines (a kernel thread first
 * borrows the source mm); rw_page pins one page remotely, copies and unpins; rw_slow reads the PFNs with a
 * pfn_reader (xarray, domains, or fresh pins) and unpins what it pinned batch by batch.
 *
 * Post: npinned and the accounting are unchanged (pins taken here are dropped here). For reads `data` is
 * filled in place. Fault points ([merged, test]): rw_page before the pin.
 */
import { EFAULT, EINVAL, EPERM } from '../machine/errno.js';
import { pinUserPagesRemote, unpinUserPages } from '../machine/gup.js';
import { mmgetNotZero, mmput } from '../machine/mm.js';
import { mmapReadLock, mmapReadUnlock } from '../machine/mmap-lock.js';
import type { Sim } from '../machine/sim.js';
import { userCopy } from '../machine/user-copy.js';
import { u64 } from './area-geometry.js';
import { batchRw, copyDataPage } from './pages-batch.js';
import { mergedTest, pagesOf } from './pages-state.js';
import { pfnReaderDestroy, pfnReaderDone, pfnReaderFirst, pfnReaderNext, pfnReaderUnpin } from './pfn-reader.js';

export interface RwFlags {
  write: boolean;
  /** IOMMUFD_ACCESS_RW_KTHREAD: the caller is a kernel thread that may borrow the source mm. */
  kthread: boolean;
  /** [test] __IOMMUFD_ACCESS_RW_SLOW_PATH: force the change_mm paths (selftest only). */
  slowPath?: boolean;
}

/** iopt_pages_rw_slow: copy through a pfn_reader over [start, last], unpinning each batch's own pins. */
function ioptPagesRwSlow(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
  offset: number,
  data: Uint8Array,
  write: boolean,
): number {
  const { rc: firstRc, reader } = pfnReaderFirst(sim, pages, start, last);
  if (firstRc || reader === null) return firstRc;
  let at = 0;
  let off = offset;
  let rc = 0;
  while (!pfnReaderDone(reader)) {
    const done = batchRw(sim, reader.batch, data, at, off, data.length - at, write);
    at += done;
    off = 0;
    pfnReaderUnpin(sim, reader);
    rc = pfnReaderNext(sim, reader);
    if (rc) break;
  }
  if (!rc && at !== data.length) {
    sim.warn('iopt_pages_rw_slow', 'length != 0', { pages, left: data.length - at });
    rc = -EINVAL;
  }
  pfnReaderDestroy(sim, reader);
  return rc;
}

/** iopt_pages_rw_page: pin the one page remotely, copy, unpin; falls back to rw_slow when the mm is gone. */
function ioptPagesRwPage(
  sim: Sim,
  pages: number,
  index: number,
  offset: number,
  data: Uint8Array,
  write: boolean,
): number {
  const fn = 'iopt_pages_rw_page';
  const p = pagesOf(sim, pages);
  if (!mmgetNotZero(sim, p.sourceMm, fn)) return ioptPagesRwSlow(sim, pages, index, index, offset, data, write);
  let rc: number;
  if (mergedTest(sim) && sim.faultPoint('rw_page', fn)) {
    rc = -EINVAL;
  } else {
    const out = { slots: [] as number[] };
    const uptr = u64(p.uptr + BigInt(index) * BigInt(sim.pageSize));
    mmapReadLock(sim, p.sourceMm, fn);
    rc = pinUserPagesRemote(sim, p.sourceMm, uptr, 1, { write, longterm: false, force: false }, out, 0);
    mmapReadUnlock(sim, p.sourceMm);
    if (rc !== 1) {
      if (rc >= 0) {
        sim.warn(fn, 'rc >= 0', { pages, index, rc });
        rc = -EINVAL;
      }
    } else {
      const pfn = out.slots[0] ?? 0;
      copyDataPage(sim, pfn, data, 0, offset, data.length, write);
      unpinUserPages(sim, [pfn], fn);
      rc = 0;
    }
  }
  mmput(sim, p.sourceMm, fn);
  return rc;
}

/**
 * iopt_pages_rw_access (13e): copy data.length bytes at start_byte of the pages to (write) or from (read)
 * `data`. -EPERM for a write to read-only pages; -EFAULT when the user copy faults.
 */
export function ioptPagesRwAccess(
  sim: Sim,
  pages: number,
  startByte: number,
  data: Uint8Array,
  flags: RwFlags,
): number {
  const length = data.length;
  // The access layer refuses length 0 before getting here.
  if (length === 0) return -EINVAL;
  const page = sim.pageSize;
  const startIndex = Math.floor(startByte / page);
  const lastIndex = Math.floor((startByte + length - 1) / page);
  const p = pagesOf(sim, pages);
  let changeMm = sim.current.mm !== p.sourceMm;
  if (sim.testBuild && flags.slowPath === true) changeMm = true;
  if (flags.write && !p.writable) return -EPERM;
  // [up:ioas-map-file] file pages have no user VA to copy through: always the pinning slow path.
  if (p.file !== undefined)
    return ioptPagesRwSlow(sim, pages, startIndex, lastIndex, startByte % page, data, flags.write);
  if (!flags.kthread && changeMm) {
    if (startIndex === lastIndex) return ioptPagesRwPage(sim, pages, startIndex, startByte % page, data, flags.write);
    return ioptPagesRwSlow(sim, pages, startIndex, lastIndex, startByte % page, data, flags.write);
  }
  // Fast path: the user-copy routines, ignoring pinning consistency (unlike a real DMA).
  const fn = 'iopt_pages_rw_access';
  if (changeMm) {
    if (!mmgetNotZero(sim, p.sourceMm, fn)) {
      return ioptPagesRwSlow(sim, pages, startIndex, lastIndex, startByte % page, data, flags.write);
    }
    if (sim.current.pid !== null) sim.warn('kthread_use_mm', '!(tsk->flags & PF_KTHREAD)', { pid: sim.current.pid });
  }
  const mm = changeMm ? p.sourceMm : sim.current.mm;
  let rc = 0;
  if (mm === null || userCopy(sim, mm, u64(p.uptr + BigInt(startByte)), data, flags.write) !== 0) rc = -EFAULT;
  if (changeMm) mmput(sim, p.sourceMm, fn);
  return rc;
}
