// SPDX-License-Identifier: GPL-2.0-only
/**
 * The readers of drivers/iommu/iommufd/pages.c (spec sections 9 and 10): `pfn_reader_user` (pin from the
 * source VA) and `pfn_reader` (read PFNs from whichever tier holds them: the xarray, a filled area's storage
 * domain, or fresh pins), with the v3 and merged forms of their destroy. Batches are pages-batch.ts,
 * accounting pages-accounting.ts, State access pages-state.ts.
 *
 * Every object here that the kernel keeps on its stack (pfn_reader, pfn_reader_user, their batch and
 * double-span iterator) is a plain local object, never State. State is read through `sim.state` and changed
 * only by `sim.emit`. The handle array (upages) is either a temp_kmalloc buffer owned by the reader or a
 * borrowed position in a caller's array (the access path), so a kfree of it is checked by the heap.
 *
 * Vocabulary: `index` counts pages inside one iopt_pages, `last` is inclusive, `end` exclusive. `pages` is
 * the id of an iopt_pages record, `area` an Area record (re-read after every emit that may change it).
 *
 * Variant behaviour: each fix flag of spec section 17 is read with `sim.has`; the unflagged [merged] text
 * (fault points, [merged, test] assertions) applies when `sim.merged`; [test] WARNs use `sim.testWarn`.
 *
 * Deviations: page handles (struct page *) are PFNs in PageSlots; a handle array slot that was never
 * written reads as undefined. A size_t that would wrap is modelled where the kernel's behaviour depends on
 * it (the v3 pfn_reader_destroy tail, batch_clear_carry's keep); npinned may go negative in the State where
 * the kernel's size_t would wrap (the [test] WARN fires either way).
 */
import { EFAULT, EINVAL, ENOMEM } from '../machine/errno.js';
import type { GupFlags } from '../machine/gup.js';
import { pinUserPagesFast, pinUserPagesRemote, unpinUserPages } from '../machine/gup.js';
import { kfree, tempKmalloc } from '../machine/heap.js';
import type { FolioHandle } from '../machine/memfd.js';
import { folioAddPins, memfdPinFolios, unpinFolios } from '../machine/memfd.js';
import { InternalError } from '../lib/errors.js';
import { mmgetNotZero, mmput } from '../machine/mm.js';
import { mmapReadLock, mmapReadUnlock } from '../machine/mmap-lock.js';
import type { Sim } from '../machine/sim.js';
import type { Area } from '../state/state.js';
import { u64 } from './area-geometry.js';
import { itreeIterFirst } from '../structures/interval-tree.js';
import { batchClear } from './pfn-batch.js';
import { handles, ioptPagesAddNpinned, ioptPagesSubNpinned, pfnReaderUserUpdatePinned } from './pages-accounting.js';
import {
  type BatchBuf,
  batchDestroy,
  batchFromDomain,
  batchFromFolios,
  batchFromPages,
  batchFromXarray,
  batchInit,
  batchUnpin,
} from './pages-batch.js';
import { PAGE_PTR_BYTES, accessDomainSpans, isRemote, mergedTest, pagesOf } from './pages-state.js';
import type { PfnReaderUser, Upages } from './pages-state.js';
import type { DoubleSpanIter } from '../structures/span.js';
import { doubleSpanIterDone, doubleSpanIterFirst, doubleSpanIterNext } from '../structures/span.js';

/** Re-exported for io_pagetable.c, which calls the unmap helper of pages.c. */
export { iommuUnmapNofail, unmapDomainRange } from './pages-batch.js';
export type { PfnReaderUser, Upages } from './pages-state.js';
// ---- pfn_reader_user (spec 9) ----------------------------------------------------------------------------

/** pfn_reader_user_init: no handles, locked = -1, LONGTERM (+ WRITE; [v3..merged] FORCE + WRITE when read-only). */
export function pfnReaderUserInit(sim: Sim, pages: number): PfnReaderUser {
  const writable = pagesOf(sim, pages).writable;
  const gupFlags: GupFlags = sim.has('gup-unshare-flags')
    ? { write: writable, longterm: true, force: false }
    : { write: true, longterm: true, force: !writable };
  return {
    upages: null,
    upagesLen: 0,
    upagesStart: 0,
    upagesEnd: 0,
    gupFlags,
    locked: -1,
    file: pagesOf(sim, pages).file ?? null,
    ufolios: null,
    ufoliosLen: 0,
    ufoliosOffset: 0,
    ufoliosNext: 0,
  };
}

/**
 * pfn_reader_user_destroy: drop the read lock and the remote mm reference if locked != -1 (a file reader
 * took no mm reference), then locked := -1 ([merged, reader-destroy-locked-reset]; [v3] 0); kfree(upages)
 * and kfree(ufolios).
 */
export function pfnReaderUserDestroy(sim: Sim, user: PfnReaderUser, pages: number): void {
  const p = pagesOf(sim, pages);
  if (user.locked !== -1) {
    if (user.locked === 1) mmapReadUnlock(sim, p.sourceMm);
    if (user.file === null && isRemote(sim, p)) mmput(sim, p.sourceMm, 'pfn_reader_user_destroy');
    user.locked = sim.has('reader-destroy-locked-reset') ? -1 : 0;
  }
  if (user.upages !== null) {
    kfree(sim, user.upages.ptr, 'pfn_reader_user_destroy');
    user.upages = null;
  }
  if (user.ufolios !== null) {
    kfree(sim, user.ufolios.ptr, 'pfn_reader_user_destroy');
    user.ufolios = null;
  }
}

/**
 * pin_memfd_pages: pin the folios behind `npages` pages of the file from byte `start` into ufolios (as many
 * as its capacity holds) and return the pages they cover. With a handle array (the access path) each page
 * is written to it, and a folio that gives npin > 1 pages gets its npin - 1 extra pins (folio_add_pins);
 * the reader path moves folios with batch_from_folios instead.
 */
function pinMemfdPages(sim: Sim, user: PfnReaderUser, start: bigint, npages: number): number {
  const file = user.file;
  const uf = user.ufolios;
  if (file === null || uf === null) throw new InternalError('pin_memfd_pages without a file and its folio array');
  const end = start + BigInt(npages) * BigInt(sim.pageSize) - 1n;
  const r = memfdPinFolios(sim, file, start, end, uf.slots, Math.floor(user.ufoliosLen / PAGE_PTR_BYTES));
  if (r.rc <= 0) return r.rc;
  let offset = Math.floor(r.offset / sim.pageSize);
  user.ufoliosNext = 0;
  user.ufoliosOffset = offset;
  const up = user.upages;
  let left = npages;
  let out = 0;
  for (let i = 0; i < r.rc; i++) {
    const folio = uf.slots[i] as FolioHandle;
    const npin = Math.min(folio.npfns - offset, left);
    left -= npin;
    out += npin;
    if (up !== null) {
      const first = folio.pfn + offset;
      if (npin > 1) {
        const rc = folioAddPins(sim, folio, first + 1, npin - 1);
        if (rc) return rc;
      }
      const at = up.base + (out - npin);
      for (let k = 0; k < npin; k++) up.slots.slots[at + k] = first + k;
    }
    offset = 0;
  }
  return out;
}

/** pfn_reader_user_pin (spec 9a): pin up to the handle capacity of [start, last] from the source VA. */
export function pfnReaderUserPin(sim: Sim, user: PfnReaderUser, pages: number, start: number, last: number): number {
  const fn = 'pfn_reader_user_pin';
  const p = pagesOf(sim, pages);
  const remote = isRemote(sim, p);
  if (mergedTest(sim) && last < start) {
    sim.warn(fn, 'last_index < start_index', { pages, start, last });
    return -EINVAL;
  }
  if (user.file !== null) return pfnReaderUserPinFile(sim, user, pages, start, last);
  if (user.upages === null) {
    const t = tempKmalloc(sim, (last - start + 1) * PAGE_PTR_BYTES, null, 0, fn, 'upages');
    user.upagesLen = t.size;
    if (t.ptr === null) return -ENOMEM;
    user.upages = { ptr: t.ptr, slots: { slots: [] }, base: 0 };
  }
  if (user.locked === -1) {
    if (sim.has('mmget-fail-no-kfree')) {
      if (remote && !mmgetNotZero(sim, p.sourceMm, fn)) return -EFAULT;
      user.locked = 0;
    } else {
      // [v3] locked is set before the mmget, and a failed mmget frees upages even when it is borrowed.
      user.locked = 0;
      if (remote && !mmgetNotZero(sim, p.sourceMm, fn)) {
        kfree(sim, user.upages.ptr, fn);
        user.upages = null;
        return -EFAULT;
      }
    }
  }
  const npages = Math.max(0, Math.min(last - start + 1, Math.floor(user.upagesLen / PAGE_PTR_BYTES)));
  if (mergedTest(sim) && sim.faultPoint('gup', fn)) return -EFAULT;
  const uptr = u64(p.uptr + BigInt(start) * BigInt(sim.pageSize));
  let rc: number;
  if (!remote) {
    rc = pinUserPagesFast(sim, uptr, npages, user.gupFlags, user.upages.slots, user.upages.base);
  } else {
    if (user.locked === 0) {
      mmapReadLock(sim, p.sourceMm, fn);
      user.locked = 1;
    }
    rc = pinUserPagesRemote(sim, p.sourceMm, uptr, npages, user.gupFlags, user.upages.slots, user.upages.base);
  }
  return userPinDone(sim, user, pages, start, npages, rc);
}

/**
 * The common end of both branches of pfn_reader_user_pin: a pin of nothing WARNs (-EFAULT), an error is
 * passed on, and what was pinned is counted in npinned and becomes the reader's window [start, start + rc).
 */
function userPinDone(sim: Sim, user: PfnReaderUser, pages: number, start: number, npages: number, rc: number): number {
  const fn = 'pfn_reader_user_pin';
  if (rc <= 0) {
    if (rc === 0) {
      sim.warn(fn, '!rc', { pages, start, npages });
      return -EFAULT;
    }
    return rc;
  }
  ioptPagesAddNpinned(sim, pages, rc, fn);
  user.upagesStart = start;
  user.upagesEnd = start + rc;
  return 0;
}

/**
 * The file branch of pfn_reader_user_pin (IOPT_ADDRESS_FILE, [up:ioas-map-file]): a folio array from
 * temp_kmalloc on first use, locked := 0 without any mm reference (no mm is read), the pin limited by the
 * array's capacity in folios, the gup fault point, then pin_memfd_pages at the file offset of `start`.
 */
function pfnReaderUserPinFile(sim: Sim, user: PfnReaderUser, pages: number, start: number, last: number): number {
  const fn = 'pfn_reader_user_pin';
  const p = pagesOf(sim, pages);
  if (user.ufolios === null) {
    const t = tempKmalloc(sim, (last - start + 1) * PAGE_PTR_BYTES, null, 0, fn, 'ufolios');
    user.ufoliosLen = t.size;
    if (t.ptr === null) return -ENOMEM;
    user.ufolios = { ptr: t.ptr, slots: [] };
  }
  if (user.locked === -1) user.locked = 0;
  const npages = Math.max(0, Math.min(last - start + 1, Math.floor(user.ufoliosLen / PAGE_PTR_BYTES)));
  if (mergedTest(sim) && sim.faultPoint('gup', fn)) return -EFAULT;
  const rc = pinMemfdPages(sim, user, (p.fileStart ?? 0n) + BigInt(start) * BigInt(sim.pageSize), npages);
  return userPinDone(sim, user, pages, start, npages, rc);
}

// ---- pfn_reader (spec 10) --------------------------------------------------------------------------------

export interface PfnReader {
  pages: number;
  span: DoubleSpanIter<number>;
  batch: BatchBuf;
  batchStartIndex: number;
  batchEndIndex: number;
  lastIndex: number;
  user: PfnReaderUser;
}

/** iopt_pages_find_domain_area: the first area in domains_itree that covers `index`. */
export function findDomainArea(sim: Sim, pages: number, index: number): Area | null {
  const node = itreeIterFirst(pagesOf(sim, pages).domainsTree, index, index);
  if (node === null) return null;
  const area = sim.state.areas[node.id];
  if (area === undefined) {
    sim.violation(
      'use_after_free',
      'iopt_pages_find_domain_area',
      `domains_itree holds node ${node.id} of a freed area`,
      { pages, area: node.id },
    );
    return null;
  }
  return area;
}

function spanNext(sim: Sim, r: PfnReader): void {
  const p = pagesOf(sim, r.pages);
  doubleSpanIterNext(r.span, p.accessTree, p.domainsTree);
}

/** pfn_reader_init: batch of (last - start + 1) pages (may fail) and the span iterator over [start, last]. */
function pfnReaderInit(sim: Sim, pages: number, start: number, last: number): { rc: number; reader: PfnReader | null } {
  const user = pfnReaderUserInit(sim, pages);
  const { rc, batch } = batchInit(sim, last - start + 1, 'pfn_reader_init');
  if (rc || batch === null) return { rc, reader: null };
  const p = pagesOf(sim, pages);
  const span = doubleSpanIterFirst(p.accessTree, p.domainsTree, start, last);
  return { rc: 0, reader: { pages, span, batch, batchStartIndex: start, batchEndIndex: start, lastIndex: last, user } };
}

/** pfn_reader_fill_span: add the current span from its tier (xarray, a domain, or freshly pinned). */
function pfnReaderFillSpan(sim: Sim, r: PfnReader): number {
  const span = r.span;
  const start = r.batchEndIndex;
  if (mergedTest(sim) && span.last < start) {
    sim.warn('pfn_reader_fill_span', 'span->last_used < start_index', { pages: r.pages, start, last: span.last });
    return -EINVAL;
  }
  if (span.isUsed === 1) {
    batchFromXarray(sim, r.batch, r.pages, start, span.last);
    return 0;
  }
  if (span.isUsed === 2) {
    const area = findDomainArea(sim, r.pages, start);
    if (area === null) {
      sim.warn('pfn_reader_fill_span', '!area', { pages: r.pages, index: start });
      return -EINVAL;
    }
    if (area.storageDomain === null) {
      sim.violation(
        'invariant',
        'pfn_reader_fill_span',
        `area ${area.id} is in domains_itree without a storage domain`,
        { area: area.id },
      );
      return -EINVAL;
    }
    batchFromDomain(sim, r.batch, area.storageDomain, area, start, Math.min(area.lastIndex, span.last));
    return 0;
  }
  if (start >= r.user.upagesEnd) {
    const rc = pfnReaderUserPin(sim, r.user, r.pages, start, span.last);
    if (rc) return rc;
  }
  const user = r.user;
  if (user.file !== null && user.ufolios !== null) {
    const moved = batchFromFolios(
      sim,
      r.batch,
      user.ufolios.slots,
      user.ufoliosNext,
      user.ufoliosOffset,
      user.upagesEnd - start,
    );
    user.ufoliosNext = moved.next;
    user.ufoliosOffset = moved.offset;
    return moved.rc;
  }
  const up = user.upages;
  if (up !== null) batchFromPages(sim, r.batch, up.slots, up.base + (start - user.upagesStart), user.upagesEnd - start);
  return 0;
}

export function pfnReaderDone(r: PfnReader): boolean {
  return r.batchStartIndex === r.lastIndex + 1;
}

/** pfn_reader_next: refill the batch from batch_end until it is full or reaches last. */
export function pfnReaderNext(sim: Sim, r: PfnReader): number {
  batchClear(r.batch.b);
  r.batchStartIndex = r.batchEndIndex;
  while (r.batchEndIndex !== r.lastIndex + 1) {
    const npfns = r.batch.b.totalPfns;
    if (mergedTest(sim) && doubleSpanIterDone(r.span)) {
      sim.warn('pfn_reader_next', 'interval_tree_double_span_iter_done(&pfns->span)', { pages: r.pages });
      return -EINVAL;
    }
    const rc = pfnReaderFillSpan(sim, r);
    if (rc) return rc;
    if (r.batch.b.totalPfns === 0) {
      sim.warn('pfn_reader_next', '!pfns->batch.total_pfns', { pages: r.pages });
      return -EINVAL;
    }
    r.batchEndIndex = r.batchStartIndex + r.batch.b.totalPfns;
    if (r.batchEndIndex === r.span.last + 1) spanNext(sim, r);
    if (npfns === r.batch.b.totalPfns) return 0;
  }
  return 0;
}

/** pfn_reader_unpin: unpin the batch's PFNs at indexes that no access and no filled area holds. */
export function pfnReaderUnpin(sim: Sim, r: PfnReader): void {
  const start = r.batchStartIndex;
  const last = r.batchEndIndex - 1;
  if (last < start) return;
  for (const span of accessDomainSpans(sim, r.pages, start, last)) {
    if (span.isUsed) continue;
    batchUnpin(sim, r.batch, r.pages, span.start - start, span.last - span.start + 1);
  }
}

export function pfnReaderUpdatePinned(sim: Sim, r: PfnReader): number {
  return pfnReaderUserUpdatePinned(sim, r.user, r.pages);
}

/**
 * [merged, reader-release-pins] pfn_reader_release_pins: unpin the handles not yet moved into the batch
 * (taking them off npinned) and the current batch's holes.
 */
export function pfnReaderReleasePins(sim: Sim, r: PfnReader): void {
  const user = r.user;
  if (user.upagesEnd > r.batchEndIndex) {
    const n = user.upagesEnd - r.batchEndIndex;
    const up = user.upages;
    const uf = user.ufolios;
    if (user.file !== null) {
      // Every slot from the next unmoved folio to the end of the array's capacity, written or not.
      const capacity = Math.floor(user.ufoliosLen / PAGE_PTR_BYTES);
      if (uf !== null) unpinFolios(sim, uf.slots, user.ufoliosNext, capacity - user.ufoliosNext);
    } else if (up !== null)
      unpinUserPages(
        sim,
        handles(up.slots, up.base + (r.batchEndIndex - user.upagesStart), n),
        'pfn_reader_release_pins',
      );
    ioptPagesSubNpinned(sim, r.pages, n, 'pfn_reader_release_pins');
    user.upagesEnd = r.batchEndIndex;
  }
  if (r.batchStartIndex !== r.batchEndIndex) {
    pfnReaderUnpin(sim, r);
    r.batchStartIndex = r.batchEndIndex;
  }
}

/** unpin_user_pages refuses a count that looks like an errno (IS_ERR_VALUE: within 4095 of 2^64). */
const MAX_ERRNO = 4095;

/**
 * The [v3] tail unpin of pfn_reader_destroy: (upages_end - batch_end) handles from batch_end, without
 * taking them off npinned and without a sign check. When batch_end passed upages_end the size_t count wraps:
 * unpin_user_pages WARNs and returns for a wrap within MAX_ERRNO; beyond that it walks past the pinned
 * handles (unpinning stale ones) and off the end of the array.
 */
function pfnReaderDestroyTailV3(sim: Sim, r: PfnReader, up: Upages): void {
  const user = r.user;
  const from = r.batchEndIndex - user.upagesStart;
  const diff = user.upagesEnd - r.batchEndIndex;
  if (diff >= 0) {
    unpinUserPages(sim, handles(up.slots, up.base + from, diff), 'pfn_reader_destroy');
    return;
  }
  const wrapped = (1n << 64n) + BigInt(diff);
  if (-diff <= MAX_ERRNO) {
    sim.warn('unpin_user_pages', 'IS_ERR_VALUE(npages)', { pages: r.pages, npages: wrapped });
    return;
  }
  const capacity = Math.floor(user.upagesLen / PAGE_PTR_BYTES);
  const stale: number[] = [];
  for (let slot = from; slot < capacity; slot++) {
    const pfn = up.slots.slots[up.base + slot];
    if (pfn !== undefined) stale.push(pfn);
  }
  if (stale.length > 0) unpinUserPages(sim, stale, 'pfn_reader_destroy');
  sim.violation(
    'batch_out_of_bounds',
    'pfn_reader_destroy',
    `unpin of upages_end - batch_end = ${diff} (size_t ${wrapped}) handles from slot ${from} walks off a ${capacity}-slot array`,
    { pages: r.pages, upagesEnd: user.upagesEnd, batchEnd: r.batchEndIndex, slot: from, capacity },
  );
}

/** pfn_reader_destroy: release what the reader still holds ([merged] or [v3] form), free, check npinned. */
export function pfnReaderDestroy(sim: Sim, r: PfnReader): void {
  if (sim.has('reader-release-pins')) {
    pfnReaderReleasePins(sim, r);
    pfnReaderUserDestroy(sim, r.user, r.pages);
  } else {
    const up = r.user.upages;
    if (up !== null) pfnReaderDestroyTailV3(sim, r, up);
    pfnReaderUserDestroy(sim, r.user, r.pages);
    if (r.batchStartIndex !== r.batchEndIndex) pfnReaderUnpin(sim, r);
  }
  batchDestroy(sim, r.batch, null);
  const p = pagesOf(sim, r.pages);
  if (p.lastNpinned !== p.npinned) {
    sim.warn('pfn_reader_destroy', 'pages->last_npinned != pages->npinned', {
      pages: r.pages,
      npinned: p.npinned,
      lastNpinned: p.lastNpinned,
    });
  }
}

/** pfn_reader_first: init and read the first batch; on failure everything is undone. */
export function pfnReaderFirst(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
): { rc: number; reader: PfnReader | null } {
  if (mergedTest(sim) && last < start) {
    sim.warn('pfn_reader_first', 'last_index < start_index', { pages, start, last });
    return { rc: -EINVAL, reader: null };
  }
  const { rc, reader } = pfnReaderInit(sim, pages, start, last);
  if (rc || reader === null) return { rc, reader: null };
  const rc2 = pfnReaderNext(sim, reader);
  if (rc2) {
    pfnReaderDestroy(sim, reader);
    return { rc: rc2, reader: null };
  }
  return { rc: 0, reader };
}
