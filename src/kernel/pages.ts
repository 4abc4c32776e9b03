// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct iopt_pages (drivers/iommu/iommufd/pages.c): the storage of the PFNs behind one user VA range, and
 * the public entry points of the PFN layer. Each iopt_pages is a logical array of npages full PFNs, index
 * 0 at the page-aligned uptr. PFNs live in three tiers: the pinned_pfns xarray (only for in-kernel
 * accesses), the IOMMU domains of filled areas (read back with iova_to_phys), and the source VA itself
 * (pinned on demand). An index is pinned exactly once while access_itree or domains_itree covers it.
 *
 * This file holds the lifetime (spec section 11) and gathers the API; the machinery is split by tier:
 * pfn-reader.ts (batch, accounting, pfn_reader), pages-domain.ts (12), pages-access.ts (13a-d),
 * pages-rw.ts (13e). Vocabulary: `last` inclusive, `end` exclusive, `index` in pages, `iova` in bytes.
 *
 * Deviations: the iopt_pages struct is one heap allocation whose id is the pages id; the source task and
 * user references are the pid and uid recorded in the pages (no separate refcounts).
 */
import { EINVAL, ENOMEM, EOVERFLOW } from '../machine/errno.js';
import { kfree, kmalloc } from '../machine/heap.js';
import { fput, getFile } from '../machine/memfd.js';
import { mmdrop, mmgrab } from '../machine/mm.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import { U64_MASK } from './area-geometry.js';
import { pagesOf } from './pages-state.js';

export {
  ioptAreaFillDomain,
  ioptAreaFillDomains,
  ioptAreaUnfillDomain,
  ioptAreaUnfillDomains,
  ioptAreaUnfillPartialDomain,
  ioptAreaUnmapDomain,
  ioptAreaUnmapDomainRange,
} from './pages-domain.js';
export {
  ioptAreaAddAccess,
  ioptAreaRemoveAccess,
  ioptPagesFillFromXarray,
  ioptPagesFillXarray,
  ioptPagesUnfillXarray,
} from './pages-access.js';
export { ioptPagesRwAccess, type RwFlags } from './pages-rw.js';

/** sizeof(struct iopt_pages) on x86-64 (kref, mutex, counters, pointers, xarray, two rb roots). */
const IOPT_PAGES_BYTES = 232;

/**
 * iopt_alloc_pages (spec 11): a new iopt_pages for [uptr, uptr + length) of the calling process. Returns the
 * pages id (> 0) or -errno: -EINVAL for length 0 or above SIZE_MAX - PAGE_SIZE, [up:uptr-overflow-check]
 * -EOVERFLOW when uptr + length wraps, -ENOMEM. Nothing is pinned; the caller's mm is grabbed.
 */
export function ioptAllocPages(sim: Sim, uptr: bigint, length: bigint, writable: boolean): number {
  const fn = 'iopt_alloc_pages';
  const page = BigInt(sim.pageSize);
  if (length === 0n || length > U64_MASK - page) return -EINVAL;
  if (sim.has('uptr-overflow-check') && uptr + length > U64_MASK) return -EOVERFLOW;
  const { pid, mm } = sim.current;
  if (pid === null || mm === null)
    throw new InternalError('iopt_alloc_pages called from a kernel thread: IOAS_MAP is an ioctl of a process');
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`iopt_alloc_pages: unknown process ${pid}`);
  const ptr = kmalloc(sim, IOPT_PAGES_BYTES, { tag: 'iopt_pages', fn });
  if (ptr === null || ptr.space !== 'heap') return -ENOMEM;
  const aligned = uptr - (uptr % page);
  // DIV_ROUND_UP of an unsigned long: length + offset may wrap when uptr-overflow-check is off.
  const bytes = (length + (uptr - aligned)) & U64_MASK;
  const npages = Number((bytes + page - 1n) / page);
  sim.emit({
    type: 'PagesAllocated',
    v: 1,
    pages: ptr.alloc,
    uptr: aligned,
    npages,
    writable,
    accountMode: proc.capIpcLock ? 'none' : 'user',
    sourcePid: pid,
    sourceMm: mm,
    sourceUid: proc.uid,
    fn,
  });
  mmgrab(sim, mm, fn);
  return ptr.alloc;
}

/**
 * iopt_alloc_file_pages ([up:ioas-map-file]): an iopt_pages whose PFNs come from `file` at byte `start`
 * for `length` bytes: iopt_alloc_pages (the caller's mm is still grabbed and charged, as for user memory)
 * with the page offset of `start`, then a reference on the file (get_file) and the page-aligned start.
 * Returns the pages id or -errno (-EINVAL, -ENOMEM; the caller checked length and overflow).
 */
export function ioptAllocFilePages(sim: Sim, file: string, start: bigint, length: bigint, writable: boolean): number {
  const page = BigInt(sim.pageSize);
  const startByte = start % page;
  // iopt_alloc_pages of the start byte: the pages' uptr stands for the in-page offset only.
  const pages = ioptAllocPages(sim, startByte, length, writable);
  if (pages < 0) return pages;
  getFile(sim, file, 'iopt_alloc_file_pages');
  sim.emit({ type: 'PagesFileSet', v: 1, pages, file, start: start - startByte });
  return pages;
}

/** kref_get on an iopt_pages. */
export function ioptPagesGet(sim: Sim, pages: number, fn: string): void {
  if (sim.state.pages[pages] === undefined) {
    sim.violation('use_after_free', fn, `kref_get of released iopt_pages ${pages}`, { pages });
    return;
  }
  sim.emit({ type: 'PagesRefChanged', v: 1, pages, delta: 1, fn });
}

/** kref_put on an iopt_pages: the last reference releases it (iopt_release_pages). */
export function ioptPagesPut(sim: Sim, pages: number, fn: string): void {
  const p = sim.state.pages[pages];
  if (p === undefined) {
    sim.violation('use_after_free', fn, `kref_put of released iopt_pages ${pages}`, { pages });
    return;
  }
  const refs = p.refs;
  sim.emit({ type: 'PagesRefChanged', v: 1, pages, delta: -1, fn });
  if (refs - 1 === 0) ioptReleasePages(sim, pages);
}

/** iopt_release_pages: WARN unless the pages holds nothing any more; mmdrop; free. */
function ioptReleasePages(sim: Sim, pages: number): void {
  const fn = 'iopt_release_pages';
  const p = pagesOf(sim, pages);
  if (p.accessTree.count !== 0) sim.warn(fn, '!RB_EMPTY_ROOT(&pages->access_itree.rb_root)', { pages });
  if (p.domainsTree.count !== 0) sim.warn(fn, '!RB_EMPTY_ROOT(&pages->domains_itree.rb_root)', { pages });
  if (p.npinned !== 0) sim.warn(fn, 'pages->npinned', { pages, npinned: p.npinned });
  if (p.xa.count !== 0) sim.warn(fn, '!xa_empty(&pages->pinned_pfns)', { pages, entries: p.xa.count });
  const mm = p.sourceMm;
  mmdrop(sim, mm, fn);
  if (p.file !== undefined) fput(sim, p.file, fn);
  sim.emit({ type: 'PagesReleased', v: 1, pages, fn });
  kfree(sim, { space: 'heap', alloc: pages, offset: 0 }, fn);
}
