// SPDX-License-Identifier: GPL-2.0-only
/**
 * The access tier of drivers/iommu/iommufd/pages.c (spec section 13a-13d): in-kernel users (VFIO mdevs)
 * that need page handles. An access holds an interval of access_itree; every index it covers is pinned
 * once and its PFN stored in the pages' xarray (pinned_pfns), so later users find it without pinning again.
 *
 * Invariants at rest: xarray keys == access_itree coverage; each index in access_itree or domains_itree
 * holds exactly one pin; area.num_accesses == the users taken through that area.
 *
 * Pre: the pages mutex. [merged] iopt_area_add_access / remove_access take it themselves; [v3] the caller
 * (device layer) takes it around iopt_pages_add_access and counts num_accesses (area-add-access-locking):
 * the state effects are the same, only their order and the function names in the events differ.
 *
 * The caller's out_pages array is borrowed: `out` holds the handles (slot 0 = index `first`), `outPtr` is
 * the C pointer to slot 0, so a kfree of a borrowed position is seen by the heap as a BAD_FREE.
 */
import { EINVAL, ENOMEM, EPERM } from '../machine/errno.js';
import type { PageSlots } from '../machine/gup.js';
import type { Ptr } from '../machine/heap.js';
import { kfree, kmalloc, ptrAdd } from '../machine/heap.js';
import { RunList } from '../machine/sim.js';
import type { Sim } from '../machine/sim.js';
import type { PagesAccess } from '../state/state.js';
import { itreeIterFirst, itreeIterNext } from '../structures/interval-tree.js';
import { batchClear } from './pfn-batch.js';
import { ioptPagesErrUnpin, pfnReaderUserUpdatePinned, updateUnpinned } from './pages-accounting.js';
import {
  BATCH_BACKUP,
  type BatchBuf,
  batchDestroy,
  batchFromXarrayClear,
  batchInitBackup,
  batchUnpin,
  clearXarray,
  rawPagesFromDomain,
} from './pages-batch.js';
import { PAGE_PTR_BYTES, accessDomainSpans, areaOf, mergedTest, pagesOf } from './pages-state.js';
import {
  type PfnReaderUser,
  findDomainArea,
  pfnReaderUserDestroy,
  pfnReaderUserInit,
  pfnReaderUserPin,
} from './pfn-reader.js';
import { xaFirstPresent, xaForEachRun, xaPresent, xaRunAt } from '../structures/xarray.js';

/** sizeof(struct iopt_pages_access): an interval_tree_node and the users counter. */
const PAGES_ACCESS_BYTES = 56;

/** iopt_pages_fill_from_xarray (13c): copy handles of [start, last] out of the xarray (WARN on a missing one). */
export function ioptPagesFillFromXarray(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
  out: PageSlots,
  at: number,
): void {
  const fn = 'iopt_pages_fill_from_xarray';
  // Entry by entry as the kernel reads them, a stored run at a time.
  let index = start;
  while (index <= last) {
    const run = xaRunAt(pagesOf(sim, pages).xa, index);
    if (run !== undefined) {
      const end = Math.min(run.index + run.count - 1, last);
      for (let pfn = run.pfn + (index - run.index); index <= end; index++, pfn++) out.slots[at + index - start] = pfn;
      continue;
    }
    sim.warn(fn, '!xa_is_value(entry)', { pages, index });
    sim.violation('xarray_missing_entry', fn, `no PFN stored at index ${index}: hands out PFN 0`, { pages, index });
    out.slots[at + index - start] = 0;
    index++;
  }
}

/** iopt_pages_fill_from_domain: read handles back from the storage domain of each covering area, area by area. */
function ioptPagesFillFromDomain(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
  out: PageSlots,
  at: number,
): number {
  let index = start;
  let slot = at;
  while (index !== last + 1) {
    const area = findDomainArea(sim, pages, index);
    if (area === null || area.storageDomain === null) {
      sim.warn('iopt_pages_fill_from_domain', '!area', { pages, index });
      return -EINVAL;
    }
    const domainLast = Math.min(area.lastIndex, last);
    slot = rawPagesFromDomain(sim, area.storageDomain, area, index, domainLast, out, slot);
    index = domainLast + 1;
  }
  return 0;
}

/**
 * pages_to_xarray: store the handles of [start, last] (WARN for an entry already there). [merged, test] a
 * fault point halfway through: the stored prefix is erased and -EINVAL returned. Stores are emitted as
 * PFN-contiguous runs; the model's xarray needs no memory, so it does not fail by itself.
 */
function pagesToXarray(sim: Sim, pages: number, start: number, last: number, list: PageSlots, at: number): number {
  const n = last - start + 1;
  const half = Math.floor(n / 2);
  // Version 5 gathers a call's runs into XaStoredRuns lists; a WARN reports the runs before it first.
  const perEvent = sim.runsPerEvent;
  const lists =
    sim.xaRunLists && perEvent !== null
      ? new RunList<[number, number, number]>(
          sim,
          perEvent,
          (runs) => sim.emit({ type: 'XaStoredRuns', v: 1, pages, runs }),
          { waits: true },
        )
      : null;
  const store = (from: number, to: number): void => {
    let i = from;
    // The next index of the range that already holds an entry: the runs before it need no look.
    let nextOld = xaFirstPresent(pagesOf(sim, pages).xa, start + from, start + to - 1);
    while (i < to) {
      const pfn = list.slots[at + i] ?? 0;
      let len = 1;
      while (i + len < to && (list.slots[at + i + len] ?? 0) === pfn + len) len++;
      if (nextOld !== undefined && nextOld <= start + i + len - 1) {
        const old: number[] = [];
        xaForEachRun(pagesOf(sim, pages).xa, start + i, start + i + len - 1, (index, _pfn, count) => {
          for (let k = 0; k < count; k++) old.push(index + k);
        });
        for (const index of old) sim.warn('pages_to_xarray', 'old', { pages, index });
        nextOld = xaFirstPresent(pagesOf(sim, pages).xa, start + i + len, start + to - 1);
      }
      if (lists === null) sim.emit({ type: 'XaStored', v: 1, pages, index: start + i, pfn, count: len });
      else lists.add([start + i, pfn, len]);
      i += len;
    }
    lists?.flush();
  };
  if (!mergedTest(sim)) {
    store(0, n);
    return 0;
  }
  store(0, half);
  if (sim.faultPoint('pages_to_xarray', 'pages_to_xarray')) {
    if (half > 0) clearXarray(sim, pages, start, start + half - 1);
    return -EINVAL;
  }
  store(half, n);
  return 0;
}

/**
 * iopt_pages_fill_from_mm: pin the hole [start, last] straight into the caller's array, pointing
 * user.upages at the slot of the current index for each pin. On failure unpin what this hole pinned.
 */
function ioptPagesFillFromMm(
  sim: Sim,
  pages: number,
  user: PfnReaderUser,
  start: number,
  last: number,
  out: PageSlots,
  outPtr: Ptr,
  at: number,
): number {
  let cur = start;
  while (cur !== last + 1) {
    const slot = at + (cur - start);
    user.upages = { ptr: ptrAdd(outPtr, slot * PAGE_PTR_BYTES), slots: out, base: slot };
    const rc = pfnReaderUserPin(sim, user, pages, cur, last);
    if (rc) {
      if (start !== cur) ioptPagesErrUnpin(sim, pages, start, cur - 1, out, at);
      return rc;
    }
    cur = user.upagesEnd;
  }
  return 0;
}

/**
 * iopt_pages_fill_xarray (13a): make every index of [start, last] present in the xarray and write its
 * handle to out (slot 0 = start). On failure the xarray is left as it was.
 */
export function ioptPagesFillXarray(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
  out: PageSlots,
  outPtr: Ptr,
): number {
  let xaEnd = start;
  const user = pfnReaderUserInit(sim, pages);
  // [v3] the capacity is set in entries, not bytes: each pin asks for at most entries / 8 pages.
  user.upagesLen = sim.has('fill-xarray-upages-bytes') ? (last - start + 1) * PAGE_PTR_BYTES : last - start + 1;
  let rc = 0;
  for (const span of accessDomainSpans(sim, pages, start, last)) {
    const at = span.start - start;
    if (span.isUsed === 1) {
      ioptPagesFillFromXarray(sim, pages, span.start, span.last, out, at);
      continue;
    }
    if (span.isUsed === 2) {
      ioptPagesFillFromDomain(sim, pages, span.start, span.last, out, at);
      rc = pagesToXarray(sim, pages, span.start, span.last, out, at);
      if (rc) break;
      xaEnd = span.last + 1;
      continue;
    }
    rc = ioptPagesFillFromMm(sim, pages, user, span.start, span.last, out, outPtr, at);
    if (rc) break;
    rc = pagesToXarray(sim, pages, span.start, span.last, out, at);
    if (rc) {
      ioptPagesErrUnpin(sim, pages, span.start, span.last, out, at);
      break;
    }
    xaEnd = span.last + 1;
  }
  if (!rc) rc = pfnReaderUserUpdatePinned(sim, user, pages);
  if (rc && start !== xaEnd) ioptPagesUnfillXarray(sim, pages, start, xaEnd - 1);
  // The handle array is borrowed: never freed here.
  user.upages = null;
  pfnReaderUserDestroy(sim, user, pages);
  return rc;
}

/**
 * The unpin of one xarray hole: [merged, unfill-xarray-loop] clear + unpin until the hole is done; [v3] a
 * single pass, which leaves whatever did not fit in the batch in the xarray, still pinned.
 */
function ioptPagesUnpinXarray(sim: Sim, batch: BatchBuf, pages: number, start: number, last: number): void {
  if (!sim.has('unfill-xarray-loop')) {
    batchFromXarrayClear(sim, batch, pages, start, last);
    batchUnpin(sim, batch, pages, 0, batch.b.totalPfns);
    batchClear(batch.b);
    return;
  }
  let index = start;
  while (index <= last) {
    batchFromXarrayClear(sim, batch, pages, index, last);
    const total = batch.b.totalPfns;
    batchUnpin(sim, batch, pages, 0, total);
    batchClear(batch.b);
    if (total === 0) {
      sim.violation('invariant', 'iopt_pages_unpin_xarray', `no progress at index ${index}: the batch takes nothing`, {
        pages,
        index,
      });
      return;
    }
    index += total;
  }
}

/**
 * iopt_pages_unfill_xarray (13b): after an access left access_itree, drop [start, last] from the xarray:
 * holes are erased and unpinned, domain spans only erased (the domain keeps the pin), access spans kept.
 */
export function ioptPagesUnfillXarray(sim: Sim, pages: number, start: number, last: number): void {
  let batch: BatchBuf | null = null;
  for (const span of accessDomainSpans(sim, pages, start, last)) {
    if (span.isUsed === 0) {
      if (batch === null) batch = batchInitBackup(sim, last - start + 1, 'iopt_pages_unfill_xarray');
      ioptPagesUnpinXarray(sim, batch, pages, span.start, span.last);
      const left = xaPresent(pagesOf(sim, pages).xa, span.start, span.last);
      if (left > 0) {
        sim.violation(
          'pin_leak',
          'iopt_pages_unfill_xarray',
          `${left} pinned entries of the released range [${span.start}, ${span.last}] stay in the xarray`,
          {
            pages,
            start: span.start,
            last: span.last,
            left,
          },
        );
      }
    } else if (span.isUsed === 2) {
      clearXarray(sim, pages, span.start, span.last);
    }
  }
  if (batch !== null) batchDestroy(sim, batch, BATCH_BACKUP);
  updateUnpinned(sim, pages);
}

/** iopt_pages_get_exact_access: an access with exactly [first, last] (overlapping ones are not reused). */
function getExactAccess(sim: Sim, pages: number, first: number, last: number): PagesAccess | null {
  const tree = pagesOf(sim, pages).accessTree;
  for (let node = itreeIterFirst(tree, first, last); node !== null; node = itreeIterNext(tree, node, first, last)) {
    if (node.start === first && node.last === last) {
      const access = sim.state.pagesAccesses[node.id];
      if (access !== undefined) return access;
    }
  }
  return null;
}

/**
 * iopt_area_add_access (13d; [v3] iopt_pages_add_access plus the caller's part): record an in-kernel
 * access of [first, last], pin what is not pinned yet, and write the handles to out (slot 0 = first).
 * -EPERM for a write on read-only pages; -ENOMEM; or the fill's error (the xarray is then unchanged).
 * `lockArea` ([up:area-num-locks], an internal access): the area's num_locks counts this user too, so the
 * area cannot be unmapped until the matching remove with `unlockArea`.
 * Read from the merged v6.17 code (iommufd_access_pin_pages passes lock_area), not the early postings' iopt_pin_pages.
 */
export function ioptAreaAddAccess(
  sim: Sim,
  area: number,
  first: number,
  last: number,
  out: PageSlots,
  outPtr: Ptr,
  write: boolean,
  lockArea = false,
): number {
  const merged = sim.has('area-add-access-locking');
  const fn = merged ? 'iopt_area_add_access' : 'iopt_pages_add_access';
  const pages = areaOf(sim, area).pages;
  if (pages === null) {
    sim.violation('invariant', fn, `area ${area} has no pages`, { area });
    return -EINVAL;
  }
  if (write && !pagesOf(sim, pages).writable) return -EPERM;
  const existing = getExactAccess(sim, pages, first, last);
  const lock = (): void => {
    if (lockArea) sim.emit({ type: 'AreaLocksChanged', v: 1, area, delta: 1, fn });
  };
  if (existing !== null) {
    if (merged) sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn });
    lock();
    sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: existing.id, delta: 1 });
    ioptPagesFillFromXarray(sim, pages, first, last, out, 0);
    if (!merged) sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'iommufd_access_pin_pages' });
    return 0;
  }
  const node = kmalloc(sim, PAGES_ACCESS_BYTES, { tag: 'iopt_pages_access', fn });
  if (node === null || node.space !== 'heap') return -ENOMEM;
  const rc = ioptPagesFillXarray(sim, pages, first, last, out, outPtr);
  if (rc) {
    kfree(sim, node, fn);
    return rc;
  }
  const id = node.alloc;
  sim.emit({ type: 'PagesAccessAllocated', v: 1, node: id, pages, index: first, last });
  sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: id, delta: 1 });
  if (merged) sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn });
  lock();
  sim.emit({ type: 'ItreeInserted', v: 1, tree: { kind: 'access', pages }, node: id, start: first, last, owner: null });
  if (!merged) sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: 1, fn: 'iommufd_access_pin_pages' });
  return 0;
}

/**
 * iopt_area_remove_access (13d; [v3] iopt_pages_remove_access): drop one user of the exact access; the
 * last user takes it out of access_itree, unfills the xarray (unpins what nobody holds) and frees it.
 */
export function ioptAreaRemoveAccess(sim: Sim, area: number, first: number, last: number, unlockArea = false): void {
  const fn = sim.has('area-add-access-locking') ? 'iopt_area_remove_access' : 'iopt_pages_remove_access';
  const a = areaOf(sim, area);
  const pages = a.pages;
  if (pages === null) {
    sim.violation('invariant', fn, `area ${area} has no pages`, { area });
    return;
  }
  const access = getExactAccess(sim, pages, first, last);
  if (access === null) {
    sim.warn(fn, '!access', { area, first, last });
    return;
  }
  // Records are live state: copy what is needed before the events change them.
  const { id, index, users } = access;
  if (a.numAccesses === 0 || users === 0) {
    sim.warn(fn, 'area->num_accesses == 0 || access->users == 0', { area, numAccesses: a.numAccesses, users });
  }
  if (unlockArea) {
    // The decrement happens after the WARN too: -1 stands for the unsigned counter wrapped to UINT_MAX.
    if ((a.numLocks ?? 0) === 0) sim.warn(fn, 'area->num_locks == 0', { area });
    sim.emit({ type: 'AreaLocksChanged', v: 1, area, delta: -1, fn });
  }
  sim.emit({ type: 'AreaAccessesChanged', v: 1, area, delta: -1, fn });
  sim.emit({ type: 'PagesAccessUsersChanged', v: 1, node: id, delta: -1 });
  if (users - 1 !== 0) return;
  sim.emit({ type: 'ItreeRemoved', v: 1, tree: { kind: 'access', pages }, node: id, start: index, last: access.last });
  ioptPagesUnfillXarray(sim, pages, first, last);
  sim.emit({ type: 'PagesAccessFreed', v: 1, node: id });
  kfree(sim, { space: 'heap', alloc: id, offset: 0 }, fn);
}
