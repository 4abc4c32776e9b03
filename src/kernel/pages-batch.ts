// SPDX-License-Identifier: GPL-2.0-only
/**
 * The pfn_batch functions of drivers/iommu/iommufd/pages.c that touch the machine (spec section 5): buffer
 * allocation through temp_kmalloc, filling a batch from page handles, the xarray or an IOMMU domain, mapping
 * a batch into a domain, unpinning and copying through it. The pure run-length part is pfn-batch.ts.
 *
 * A batch is a local object of the kernel function that owns it (never State). Its buffer comes from the
 * heap, or is the 256-byte stack backup `BATCH_BACKUP` (freeing that is a BAD_FREE). Variants: npfns-u32,
 * carry-store-order, carry-end-one (through BatchBehaviour), xarray-clear-after-add; [merged, test] checks.
 */
import type { ViolationKind } from '../events/events.js';
import { EINVAL, ENOMEM } from '../machine/errno.js';
import type { PageSlots } from '../machine/gup.js';
import { UnpinRuns, unpinUserPageRangeDirtyLock } from '../machine/gup.js';
import type { Ptr } from '../machine/heap.js';
import { kfree, samePtr, tempKmalloc } from '../machine/heap.js';
import {
  MappedExtents,
  domainPgsizeMin,
  iommuIovaToPhys,
  iommuMap,
  iommuUnmap,
  isXarrayMock,
} from '../machine/iommu-domain.js';
import type { IommuProt } from '../machine/iommu-domain.js';
import { readPhys, writePhys } from '../machine/memory.js';
import type { Sim } from '../machine/sim.js';
import type { Area } from '../state/state.js';
import { ioptAreaIndexToIova, ioptAreaIndexToIovaLast, u64 } from './area-geometry.js';
import { mappingAt } from '../structures/mapping-table.js';
import type { BatchBehaviour, BatchDiag, PfnBatch } from './pfn-batch.js';
import {
  U16_MAX,
  U32_MAX,
  batchAddPfnNum,
  batchCreate,
  batchPieces,
  batchRemovePfnNum,
  entrySize,
} from './pfn-batch.js';
import type { FolioHandle } from '../machine/memfd.js';
import { folioAddPins } from '../machine/memfd.js';
import { InternalError } from '../lib/errors.js';
import { NpinnedSubs, ioptPagesSubNpinned } from './pages-accounting.js';
import { mergedTest, pagesOf } from './pages-state.js';
import { xaForEachRun, xaLoad } from '../structures/xarray.js';
import type { Xarray, XaRun } from '../structures/xarray.js';

/** BATCH_BACKUP_SIZE is 32 u64 on the stack; TEMP_MEMORY_LIMIT is State.config.tempMemoryLimit. */
export const BATCH_BACKUP_BYTES = 32 * 8;
/** The stack backup buffer of batch_init_backup: freeing it is a BAD_FREE. */
export const BATCH_BACKUP: Ptr = { space: 'stack', name: 'backup' };

/** A pfn_batch and the buffer it lives in. */
export interface BatchBuf {
  b: PfnBatch;
  /** The temp_kmalloc result: a heap allocation, or the stack backup. */
  ptr: Ptr | null;
}

/** What this variant does in pfn_batch (element type, carry fixes, [merged, test] checks). */
export function batchBehaviour(sim: Sim): BatchBehaviour {
  return {
    runMax: sim.has('npfns-u32') ? U32_MAX : U16_MAX,
    carryStoreOrder: sim.has('carry-store-order'),
    carryEndOne: sim.has('carry-end-one'),
    mergedChecks: mergedTest(sim),
  };
}

export function batchDiag(sim: Sim): BatchDiag {
  return {
    warn: (fn, condition) => void sim.warn(fn, condition),
    violation: (kind, fn, detail) => sim.violation(kind as ViolationKind, fn, detail),
    pfnText: (pfn) => sim.pfnText(pfn),
  };
}

/**
 * __batch_init: a buffer of max_pages entries from temp_kmalloc (possibly smaller); capacity from the final
 * size. Returns -ENOMEM without memory; [merged, test] WARN/-EINVAL when not even one entry fits (the
 * buffer is then not freed by anyone: the kernel leaks it).
 */
function batchInitCommon(
  sim: Sim,
  maxPages: number,
  backup: Ptr | null,
  backupLen: number,
  fn: string,
): { rc: number; batch: BatchBuf | null } {
  const elmsz = entrySize(batchBehaviour(sim));
  const t = tempKmalloc(sim, maxPages * elmsz, backup, backupLen, fn, 'pfn_batch');
  if (t.ptr === null) return { rc: -ENOMEM, batch: null };
  if (mergedTest(sim) && t.size < elmsz) {
    sim.warn('__batch_init', 'size < elmsz', { size: t.size, elmsz });
    return { rc: -EINVAL, batch: { b: batchCreate(0), ptr: t.ptr } };
  }
  return { rc: 0, batch: { b: batchCreate(Math.floor(t.size / elmsz)), ptr: t.ptr } };
}

/** batch_init: may fail with -ENOMEM (or the [merged, test] -EINVAL). */
export function batchInit(sim: Sim, maxPages: number, fn: string): { rc: number; batch: BatchBuf | null } {
  return batchInitCommon(sim, maxPages, null, 0, fn);
}

/** batch_init_backup: never fails (the stack backup is the last resort); the return code is ignored. */
export function batchInitBackup(sim: Sim, maxPages: number, fn: string): BatchBuf {
  const { batch } = batchInitCommon(sim, maxPages, BATCH_BACKUP, BATCH_BACKUP_BYTES, fn);
  return batch ?? { b: batchCreate(0), ptr: BATCH_BACKUP };
}

/** batch_destroy: kfree unless the buffer is the backup. */
export function batchDestroy(sim: Sim, batch: BatchBuf, backup: Ptr | null): void {
  if (!samePtr(batch.ptr, backup)) kfree(sim, batch.ptr, 'batch_destroy');
}

/**
 * `count` successive batch_add_pfn calls for pfn, pfn + 1, ..., stopping at the first that fails. Returns
 * how many were added. Same result as the kernel's one-at-a-time loop, in O(runs).
 */
export function batchAddPfns(b: PfnBatch, pfn: number, count: number, runMax: number): number {
  let added = 0;
  while (added < count) {
    const end = b.end;
    const next = pfn + added;
    if (end > 0) {
      const lastPfn = b.pfns[end - 1] ?? 0;
      const lastLen = b.npfns[end - 1] ?? 0;
      if (next === lastPfn + lastLen && lastLen < runMax) {
        const grow = Math.min(count - added, runMax - lastLen);
        b.npfns[end - 1] = lastLen + grow;
        b.totalPfns = (b.totalPfns + grow) >>> 0;
        added += grow;
        continue;
      }
    }
    if (end >= b.arraySize) break;
    b.pfns[end] = next;
    b.npfns[end] = 1;
    b.end = end + 1;
    b.totalPfns = (b.totalPfns + 1) >>> 0;
    added += 1;
  }
  return added;
}

/** batch_from_pages: add the handles of `n` slots from `at` until one does not fit. */
export function batchFromPages(sim: Sim, batch: BatchBuf, list: PageSlots, at: number, n: number): void {
  const runMax = batchBehaviour(sim).runMax;
  let i = 0;
  while (i < n) {
    const first = list.slots[at + i] ?? 0;
    let len = 1;
    while (i + len < n && (list.slots[at + i + len] ?? 0) === first + len) len++;
    if (batchAddPfns(batch.b, first, len, runMax) < len) return;
    i += len;
  }
}

/**
 * batch_from_folios: move `npages` pages of the pinned folios from slot `next` (page `offset` into it) into
 * the batch, one batch_add_pfn_num per folio. A folio that does not fit ends the call (it stays at `next`
 * for the next batch). For nr > 1 pages of one folio the nr - 1 pins beyond the folio's one come from
 * folio_add_pins; if that fails the folio's PFNs are taken back out of the batch (batch_remove_pfn_num)
 * and the error returned, `next` still at that folio. Returns rc and where the walk stopped.
 */
export function batchFromFolios(
  sim: Sim,
  batch: BatchBuf,
  folios: readonly (FolioHandle | undefined)[],
  next: number,
  offset: number,
  npages: number,
): { rc: number; next: number; offset: number } {
  const behaviour = batchBehaviour(sim);
  let left = npages;
  while (left > 0) {
    const folio = folios[next];
    if (folio === undefined) throw new InternalError(`batch_from_folios: folio slot ${next} was never pinned`);
    const nr = Math.min(folio.npfns - offset, left);
    const pfn = folio.pfn + offset;
    left -= nr;
    if (batchAddPfnNum(batch.b, pfn, nr, behaviour) < nr) break;
    if (nr > 1) {
      const rc = folioAddPins(sim, folio, pfn + 1, nr - 1);
      if (rc) {
        batchRemovePfnNum(batch.b, nr, behaviour);
        return { rc, next, offset };
      }
    }
    next += 1;
    offset = 0;
  }
  return { rc: 0, next, offset };
}

/** The present runs of [first, last], clipped: a snapshot taken before the caller emits events. */
function runsOf(xa: Xarray, first: number, last: number): XaRun[] {
  const runs: XaRun[] = [];
  xaForEachRun(xa, first, last, (index, pfn, count) => {
    runs.push({ index, pfn, count });
  });
  return runs;
}

/** One missing xarray entry where the code expects a value: WARN, then PFN 0 (xa_to_value(NULL)). */
function xarrayMissing(sim: Sim, fn: string, pages: number, index: number): void {
  sim.warn(fn, '!xa_is_value(entry)', { pages, index });
  sim.violation('xarray_missing_entry', fn, `no PFN stored at index ${index}: reads PFN 0`, { pages, index });
}

/**
 * Walk [start, last] of the xarray adding each entry to the batch (missing ones as PFN 0 after a WARN);
 * returns how many indexes were consumed and whether the walk stopped because the batch was full.
 */
function xarrayIntoBatch(
  sim: Sim,
  batch: BatchBuf,
  pages: number,
  start: number,
  last: number,
  fn: string,
): { consumed: number; full: boolean } {
  const runMax = batchBehaviour(sim).runMax;
  const runs = runsOf(pagesOf(sim, pages).xa, start, last);
  let index = start;
  const addOne = (pfn: number, count: number): boolean => {
    const added = batchAddPfns(batch.b, pfn, count, runMax);
    index += added;
    return added === count;
  };
  for (const run of runs) {
    while (index < run.index) {
      xarrayMissing(sim, fn, pages, index);
      if (!addOne(0, 1)) return { consumed: index - start, full: true };
    }
    if (!addOne(run.pfn, run.count)) return { consumed: index - start, full: true };
  }
  while (index <= last) {
    xarrayMissing(sim, fn, pages, index);
    if (!addOne(0, 1)) return { consumed: index - start, full: true };
  }
  return { consumed: index - start, full: false };
}

/** batch_from_xarray: add entries start.. until the batch is full or `last` was added. */
export function batchFromXarray(sim: Sim, batch: BatchBuf, pages: number, start: number, last: number): void {
  xarrayIntoBatch(sim, batch, pages, start, last, 'batch_from_xarray');
}

/**
 * Erase the present entries of [first, last] (clear_xarray): one XaErased per present run, or (version 5)
 * XaErasedRuns lists of them.
 */
export function clearXarray(sim: Sim, pages: number, first: number, last: number): void {
  if (last < first) return;
  const runs = runsOf(pagesOf(sim, pages).xa, first, last);
  const perEvent = sim.runsPerEvent;
  if (!sim.xaRunLists || perEvent === null) {
    for (const run of runs) sim.emit({ type: 'XaErased', v: 1, pages, index: run.index, count: run.count });
    return;
  }
  for (let at = 0; at < runs.length; at += perEvent) {
    const list: [number, number][] = [];
    for (const run of runs.slice(at, at + perEvent)) list.push([run.index, run.count]);
    sim.emit({ type: 'XaErasedRuns', v: 1, pages, runs: list });
  }
}

/**
 * batch_from_xarray_clear: as batch_from_xarray, erasing what it takes. [merged, xarray-clear-after-add]
 * erases an entry after it was added; [v3] before, so the entry that did not fit is erased too and its pin
 * is lost (reported as a pin leak). Returns the number of indexes consumed.
 */
export function batchFromXarrayClear(sim: Sim, batch: BatchBuf, pages: number, start: number, last: number): number {
  const { consumed, full } = xarrayIntoBatch(sim, batch, pages, start, last, 'batch_from_xarray_clear');
  if (consumed > 0) clearXarray(sim, pages, start, start + consumed - 1);
  if (full && !sim.has('xarray-clear-after-add')) {
    const lost = start + consumed;
    const pfn = xaLoad(pagesOf(sim, pages).xa, lost);
    if (pfn !== undefined) {
      clearXarray(sim, pages, lost, lost);
      sim.violation(
        'pin_leak',
        'batch_from_xarray_clear',
        `entry ${lost} (PFN ${sim.pfnText(pfn)}) erased but not taken into the full batch: its pin is never released`,
        {
          pages,
          index: lost,
          pfn,
        },
      );
    }
  }
  return consumed;
}

/** PFN of a physical address (PHYS_PFN), reduced like the kernel's 64-bit phys_addr_t. */
function physPfn(sim: Sim, phys: bigint): number {
  return Number(u64(phys) / BigInt(sim.pageSize));
}

/**
 * How many of the (at most `max`) pages that follow the page-aligned `iova`, one PAGE_SIZE apart, the same
 * mapping piece of `domain` translates. iommu_iova_to_phys gives each of them the PFN after the previous
 * one and WARNs for none (mapped, and for the mock aligned to its IO page because `iova` is), so the
 * domain walks below take them as one run: the result of calling it page by page, without the per-page
 * tree lookup (a 16 GiB unmap reads 4 million pages back).
 */
function pagesAfterInPiece(sim: Sim, domain: string, iova: bigint, max: number): number {
  const d = sim.state.domains[domain];
  if (d === undefined || max <= 0) return 0;
  if (isXarrayMock(d) && iova % domainPgsizeMin(sim.state, domain) !== 0n) return 0;
  const m = mappingAt(d.mappings, iova);
  if (m === undefined) return 0;
  const page = BigInt(sim.pageSize);
  const end = m.iova + m.size;
  const next = iova + page;
  if (iova < m.iova || next >= end) return 0;
  const n = (end - 1n - next) / page + 1n;
  return n < BigInt(max) ? Number(n) : max;
}

/**
 * batch_from_domain: read the PFNs of [start, last] back from `domain` with iova_to_phys, stopping when
 * the batch is full. The first index of the area carries page_offset. The caller learns progress from total.
 */
export function batchFromDomain(
  sim: Sim,
  batch: BatchBuf,
  domain: string,
  area: Area,
  start: number,
  last: number,
): void {
  const runMax = batchBehaviour(sim).runMax;
  let iova = ioptAreaIndexToIova(sim, area, start);
  let pageOffset = start === area.firstIndex ? area.pageOffset : 0;
  for (let index = start; index <= last;) {
    const phys = iommuIovaToPhys(sim, domain, iova) - BigInt(pageOffset);
    const take = 1 + (pageOffset === 0 ? pagesAfterInPiece(sim, domain, iova, last - index) : 0);
    if (batchAddPfns(batch.b, physPfn(sim, phys), take, runMax) < take) return;
    iova = u64(iova + BigInt(sim.pageSize - pageOffset) + BigInt((take - 1) * sim.pageSize));
    pageOffset = 0;
    index += take;
  }
}

/** raw_pages_from_domain: the same walk, writing handles into out.slots from `at` (no capacity limit). */
export function rawPagesFromDomain(
  sim: Sim,
  domain: string,
  area: Area,
  start: number,
  last: number,
  out: PageSlots,
  at: number,
): number {
  let iova = ioptAreaIndexToIova(sim, area, start);
  let pageOffset = start === area.firstIndex ? area.pageOffset : 0;
  let slot = at;
  for (let index = start; index <= last;) {
    const phys = iommuIovaToPhys(sim, domain, iova) - BigInt(pageOffset);
    const take = 1 + (pageOffset === 0 ? pagesAfterInPiece(sim, domain, iova, last - index) : 0);
    const pfn = physPfn(sim, phys);
    for (let k = 0; k < take; k++) out.slots[slot++] = pfn + k;
    iova = u64(iova + BigInt(sim.pageSize - pageOffset) + BigInt((take - 1) * sim.pageSize));
    pageOffset = 0;
    index += take;
  }
  return slot;
}

/** batch_from_domain_continue: only the last run may grow, so reading stops at a PFN discontinuity. */
export function batchFromDomainContinue(
  sim: Sim,
  batch: BatchBuf,
  domain: string,
  area: Area,
  start: number,
  last: number,
): void {
  const arraySize = batch.b.arraySize;
  batch.b.arraySize = batch.b.end;
  batchFromDomain(sim, batch, domain, area, start, last);
  batch.b.arraySize = arraySize;
}

/** iommu_unmap_nofail: unmap and WARN unless exactly `size` bytes were unmapped. */
export function iommuUnmapNofail(sim: Sim, domain: string, iova: bigint, size: bigint, fn: string): void {
  const ret = iommuUnmap(sim, domain, iova, size, fn);
  if (ret !== size) sim.warn('iommu_unmap_nofail', 'ret != size', { domain, iova, size, unmapped: ret });
}

/** iopt_area_unmap_domain_range: unmap index_to_iova(first) .. index_to_iova_last(last) from domain. */
export function unmapDomainRange(sim: Sim, area: Area, domain: string, first: number, last: number): void {
  const startIova = ioptAreaIndexToIova(sim, area, first);
  const lastIova = ioptAreaIndexToIovaLast(sim, area, last);
  iommuUnmapNofail(sim, domain, startIova, u64(lastIova - startIova + 1n), 'iopt_area_unmap_domain_range');
}

/** batch_iommu_map_small: one PAGE_SIZE map per page (VFIO type1 compat); unmaps what it mapped on failure. */
function batchIommuMapSmall(
  sim: Sim,
  domain: string,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  prot: IommuProt,
): number {
  const page = BigInt(sim.pageSize);
  if (paddr % page !== 0n || iova % page !== 0n || size % page !== 0n) {
    sim.testWarn('batch_iommu_map_small', 'paddr % PAGE_SIZE || iova % PAGE_SIZE || size % PAGE_SIZE', {
      domain,
      iova,
      paddr,
      size,
    });
  }
  const startIova = iova;
  let cur = iova;
  let pa = paddr;
  let left = size;
  while (left > 0n) {
    const rc = iommuMap(sim, domain, cur, pa, page, prot, 'batch_iommu_map_small');
    if (rc) {
      if (startIova !== cur) iommuUnmapNofail(sim, domain, startIova, u64(cur - startIova), 'batch_iommu_map_small');
      return rc;
    }
    cur = u64(cur + page);
    pa += page;
    // size_t: a size that is not a page multiple wraps past zero in the kernel; stop rather than loop.
    left = left >= page ? left - page : 0n;
  }
  return 0;
}

/**
 * batch_to_domain: map the batch into `domain` at the IOVA of start_index, one iommu_map per run (or per
 * page with disable_large_pages). On failure everything mapped by this call is unmapped and rc returned.
 */
export function batchToDomain(sim: Sim, batch: BatchBuf, domain: string, area: Area, startIndex: number): number {
  const disableLargePages = sim.state.ioases[area.ioas]?.disableLargePages ?? false;
  const page = BigInt(sim.pageSize);
  const prot = { read: area.read, write: area.write };
  let pageOffset = startIndex === area.firstIndex ? area.pageOffset : 0;
  const startIova = ioptAreaIndexToIova(sim, area, startIndex);
  let iova = startIova;
  let nextIova = startIova;
  const endIova = u64(area.lastIova + 1n);
  // Version 4 reports the call's extents in IommuMappedRuns lists; the iommu_map calls stay one per run.
  const list = disableLargePages ? null : MappedExtents.forCall(sim, domain, prot, 'batch_to_domain');
  for (let cur = 0; cur < batch.b.end; cur++) {
    const want = u64(nextIova + BigInt(batch.b.npfns[cur] ?? 0) * page - BigInt(pageOffset));
    nextIova = endIova < want ? endIova : want;
    const paddr = BigInt(batch.b.pfns[cur] ?? 0) * page + BigInt(pageOffset);
    const size = u64(nextIova - iova);
    const rc = disableLargePages
      ? batchIommuMapSmall(sim, domain, iova, paddr, size, prot)
      : iommuMap(sim, domain, iova, paddr, size, prot, 'batch_to_domain', list);
    if (rc) {
      list?.flush();
      if (startIova !== iova) iommuUnmapNofail(sim, domain, startIova, u64(iova - startIova), 'batch_to_domain');
      return rc;
    }
    iova = nextIova;
    pageOffset = 0;
  }
  list?.flush();
  return 0;
}

/**
 * batch_unpin: skip `firstOff` PFNs through the runs, then unpin n PFNs run by run, taking each piece off
 * npinned. It trusts the run lengths (reads beyond the live runs are reported by batchPieces). Entry 0 is
 * live while it holds a carry, even when end is 0 (the v3 carry layout).
 */
export function batchUnpin(sim: Sim, batch: BatchBuf, pages: number, firstOff: number, n: number): void {
  if (n <= 0) return;
  const b = batch.b;
  const view: PfnBatch = { ...b, end: Math.max(b.end, b.totalPfns > 0 ? 1 : 0) };
  const writable = pagesOf(sim, pages).writable;
  // One finding per kind and call: a walk over a zeroed buffer would otherwise report every slot.
  const stale: string[] = [];
  const diag: BatchDiag = {
    warn: (fn, condition) => void sim.warn(fn, condition),
    violation: (kind, fn, detail) => {
      if (kind === 'stale_batch_entry') stale.push(detail);
      else sim.violation(kind as ViolationKind, fn, detail, { pages });
    },
    pfnText: (pfn) => sim.pfnText(pfn),
  };
  const pieces = batchPieces(view, firstOff, n, diag);
  if (stale.length > 0) {
    const more = stale.length > 1 ? ` (and ${stale.length - 1} more runs beyond end)` : '';
    sim.violation('stale_batch_entry', 'batch_unpin', `${stale[0] ?? ''}${more}`, { pages, runs: stale.length });
  }
  // Version 4 reports the call's runs in PagesUnpinnedRuns and its npinned changes in one NpinnedChanged
  // (the two touch different state); the calls, and their checks, stay one per run.
  const unpins = UnpinRuns.forCall(sim, writable, 'batch_unpin');
  const subs = NpinnedSubs.forCall(sim, pages, 'batch_unpin');
  for (const piece of pieces) {
    unpinUserPageRangeDirtyLock(sim, piece.pfn, piece.count, writable, 'batch_unpin', unpins);
    ioptPagesSubNpinned(sim, pages, piece.count, 'batch_unpin', subs);
  }
  unpins?.flush();
  subs?.flush();
}

/** copy_data_page: copy `length` bytes at `offset` of a page to (write) or from (read) data[at..]. */
export function copyDataPage(
  sim: Sim,
  pfn: number,
  data: Uint8Array,
  at: number,
  offset: number,
  length: number,
  write: boolean,
): void {
  if (write) {
    writePhys(sim, pfn, offset, data.subarray(at, at + length));
  } else {
    data.set(readPhys(sim.state, pfn, offset, length), at);
  }
}

/** batch_rw: copy page by page (the first from `offset`) until `length` bytes or the end of the batch. */
export function batchRw(
  sim: Sim,
  batch: BatchBuf,
  data: Uint8Array,
  at: number,
  offset: number,
  length: number,
  write: boolean,
): number {
  const b = batch.b;
  let copied = 0;
  let npage = 0;
  let cur = 0;
  let off = offset;
  let left = length;
  while (cur < b.end) {
    const bytes = Math.min(left, sim.pageSize - off);
    copyDataPage(sim, (b.pfns[cur] ?? 0) + npage, data, at + copied, off, bytes, write);
    off = 0;
    left -= bytes;
    copied += bytes;
    npage++;
    if (npage === (b.npfns[cur] ?? 0)) {
      npage = 0;
      cur++;
    }
    if (left === 0) break;
  }
  return copied;
}
