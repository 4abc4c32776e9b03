// SPDX-License-Identifier: GPL-2.0-only
/**
 * The domain tier of drivers/iommu/iommufd/pages.c (spec section 12): filling an area's PFNs into IOMMU
 * domains and taking them out again.
 *
 * Invariants kept on success: a filled area is in its pages' domains_itree with a storage domain; every
 * domain of its IOAS maps the whole area; the PFNs behind it are pinned once and charged. Security rule of
 * the unfill: a page is never unpinned while still mapped, and an unmap never cuts through a run that one
 * iommu_map installed, so unmaps end where the PFNs stop being contiguous (the "carry").
 *
 * Pre: the pages mutex is held by the caller (12a, 12c) or taken here (12b, 12d); lock order domains_rwsem
 * -> iova_rwsem -> pages mutex. Locks are a contract here, not modelled state.
 *
 * Variants: 12a/12b unwinds per reader-release-pins and fill-domains-unwind-extents; 12c per
 * unpin-domain-batch-last-index (and the batch carry fixes inside pfn-batch.ts); 12d's [test] WARN per
 * split-updates-domains-itree.
 */
import type { Sim } from '../machine/sim.js';
import type { Area } from '../state/state.js';
import { ioptAreaLength } from './area-geometry.js';
import { itreeFind } from '../structures/interval-tree.js';
import { batchClearCarry, batchSkipCarry } from './pfn-batch.js';
import { updateUnpinned } from './pages-accounting.js';
import {
  type BatchBuf,
  BATCH_BACKUP,
  batchBehaviour,
  batchDestroy,
  batchDiag,
  batchFromDomain,
  batchFromDomainContinue,
  batchInitBackup,
  batchToDomain,
  batchUnpin,
  iommuUnmapNofail,
  unmapDomainRange,
} from './pages-batch.js';
import { areaOf, domainAccessSpans, pagesOf } from './pages-state.js';
import {
  pfnReaderDestroy,
  pfnReaderDone,
  pfnReaderFirst,
  pfnReaderNext,
  pfnReaderReleasePins,
  pfnReaderUpdatePinned,
} from './pfn-reader.js';

/** An unsigned int argument: C truncates the unsigned long difference modulo 2^32. */
const u32 = (x: number): number => x >>> 0;

/** iopt_area_unmap_domain_range: unmap [first, last] (page indexes) of the area from domain, no unpin. */
export function ioptAreaUnmapDomainRange(sim: Sim, area: number, domain: string, first: number, last: number): void {
  unmapDomainRange(sim, areaOf(sim, area), domain, first, last);
}

/** iopt_area_unmap_domain: unmap the whole area from domain without unpinning (other domains hold the PFNs). */
export function ioptAreaUnmapDomain(sim: Sim, area: number, domain: string): void {
  const a = areaOf(sim, area);
  iommuUnmapNofail(sim, domain, a.iova, ioptAreaLength(a), 'iopt_area_unmap_domain');
}

/**
 * iopt_area_unpin_domain: for the hole [start, last] of an unfill, read PFNs back from the domain, unmap up
 * to a PFN discontinuity, unpin only the hole, and carry what was unmapped beyond it into the next spans.
 * `unmapped` is the caller's unmapped_end_index (first index not yet unmapped).
 */
function ioptAreaUnpinDomain(
  sim: Sim,
  batch: BatchBuf,
  area: Area,
  pages: number,
  domain: string,
  startIndex: number,
  lastIndex: number,
  unmapped: { end: number },
  realLastIndex: number,
): void {
  const fixed = sim.has('unpin-domain-batch-last-index');
  const bh = batchBehaviour(sim);
  const diag = batchDiag(sim);
  const b = batch.b;
  let start = startIndex;
  let stalled = 0;
  while (start <= lastIndex) {
    let batchLast: number;
    if (unmapped.end <= lastIndex) {
      const from = Math.max(start, unmapped.end);
      if (fixed && sim.testBuild && b.totalPfns !== 0 && unmapped.end - b.totalPfns !== start) {
        sim.warn('iopt_area_unpin_domain', '*unmapped_end_index - batch->total_pfns != start_index', {
          area: area.id,
          unmappedEnd: unmapped.end,
          total: b.totalPfns,
          start,
        });
      }
      batchFromDomain(sim, batch, domain, area, from, lastIndex);
      // [v3, merged to v6.3-rc5] counted from the read position, which overshoots past a carry.
      batchLast = (fixed ? start : from) + b.totalPfns - 1;
    } else {
      batchLast = lastIndex;
    }
    if (fixed && batchLast > realLastIndex) {
      sim.testWarn('iopt_area_unpin_domain', 'batch_last_index > real_last_index', {
        area: area.id,
        batchLast,
        realLast: realLastIndex,
      });
    }
    if (batchLast === lastIndex && lastIndex !== realLastIndex) {
      batchFromDomainContinue(sim, batch, domain, area, lastIndex + 1, realLastIndex);
    }
    if (unmapped.end <= batchLast) {
      unmapDomainRange(sim, area, domain, unmapped.end, start + b.totalPfns - 1);
      unmapped.end = start + b.totalPfns;
    }
    // unpin always follows the unmap
    batchUnpin(sim, batch, pages, 0, batchLast - start + 1);
    // A step that consumed nothing is followed, as in the kernel, by a carry clear and a fresh read; only a
    // run of such steps is a real livelock (the kernel would spin in a soft lockup), reported and left.
    stalled = batchLast < start ? stalled + 1 : 0;
    if (stalled > 2) {
      sim.violation('invariant', 'iopt_area_unpin_domain', `no progress at index ${start}: batch_last ${batchLast}`, {
        area: area.id,
        start,
      });
      return;
    }
    start = batchLast + 1;
    batchClearCarry(b, u32(unmapped.end - batchLast - 1), bh, diag);
  }
}

/**
 * __iopt_area_unfill_domain: unmap [area first, last] from `domain` and unpin every index that no access
 * and no other filled area holds, reading the PFNs back from `domain`. Ends with update_unpinned.
 */
function ioptAreaUnfillDomainRange(sim: Sim, area: number, pages: number, domain: string, lastIndex: number): void {
  const a = areaOf(sim, area);
  const startIndex = a.firstIndex;
  const unmapped = { end: startIndex };
  const bh = batchBehaviour(sim);
  const diag = batchDiag(sim);
  const batch = batchInitBackup(sim, lastIndex + 1, '__iopt_area_unfill_domain');
  for (const span of domainAccessSpans(sim, pages, startIndex, lastIndex)) {
    if (span.isUsed) {
      batchSkipCarry(batch.b, u32(span.last - span.start + 1), bh, diag);
      continue;
    }
    ioptAreaUnpinDomain(sim, batch, areaOf(sim, area), pages, domain, span.start, span.last, unmapped, lastIndex);
  }
  // The range ended inside a used span: the residual unmap needs no unpin.
  if (unmapped.end !== lastIndex + 1) unmapDomainRange(sim, areaOf(sim, area), domain, unmapped.end, lastIndex);
  if (batch.b.totalPfns !== 0) {
    sim.warn('__iopt_area_unfill_domain', 'batch.total_pfns', { area, total: batch.b.totalPfns });
  }
  batchDestroy(sim, batch, BATCH_BACKUP);
  updateUnpinned(sim, pages);
}

/**
 * iopt_area_unfill_domain: unmap the whole area from domain and unpin what nobody else holds. The area
 * must already be out of domains_itree (if it is still in, everything is "used" and this only unmaps).
 */
export function ioptAreaUnfillDomain(sim: Sim, area: number, pages: number, domain: string): void {
  ioptAreaUnfillDomainRange(sim, area, pages, domain, areaOf(sim, area).lastIndex);
}

/** iopt_area_unfill_partial_domain: the same over [area first, end - 1]; nothing when end is the first index. */
export function ioptAreaUnfillPartialDomain(sim: Sim, area: number, pages: number, domain: string, end: number): void {
  if (end !== areaOf(sim, area).firstIndex) ioptAreaUnfillDomainRange(sim, area, pages, domain, end - 1);
}

/**
 * iopt_area_fill_domain (12a): map the area's PFNs into a newly attached domain and charge new pins. The
 * caller sets storage_domain / pages_node when this is the first domain. On failure the domain is as before.
 */
export function ioptAreaFillDomain(sim: Sim, area: number, domain: string): number {
  const a = areaOf(sim, area);
  const pages = a.pages;
  if (pages === null) {
    sim.violation('invariant', 'iopt_area_fill_domain', `area ${area} has no pages`, { area });
    return 0;
  }
  const { rc: firstRc, reader } = pfnReaderFirst(sim, pages, a.firstIndex, a.lastIndex);
  if (firstRc || reader === null) return firstRc;
  let rc = 0;
  let doneEnd = a.firstIndex;
  let failed = false;
  while (!pfnReaderDone(reader)) {
    doneEnd = reader.batchStartIndex;
    rc = batchToDomain(sim, reader.batch, domain, areaOf(sim, area), reader.batchStartIndex);
    if (rc) {
      failed = true;
      break;
    }
    doneEnd = reader.batchEndIndex;
    rc = pfnReaderNext(sim, reader);
    if (rc) {
      failed = true;
      break;
    }
  }
  if (!failed) {
    rc = pfnReaderUpdatePinned(sim, reader);
    failed = rc !== 0;
  }
  if (failed) {
    if (sim.has('reader-release-pins')) {
      pfnReaderReleasePins(sim, reader);
      ioptAreaUnfillPartialDomain(sim, area, pages, domain, doneEnd);
    } else {
      // [v3] the domain's mapping ends at batch_start; the reader still holds its pins.
      ioptAreaUnfillPartialDomain(sim, area, pages, domain, reader.batchStartIndex);
    }
  }
  pfnReaderDestroy(sim, reader);
  return rc;
}

/**
 * iopt_area_fill_domains (12b): a new area in an IOAS with domains: map it into every domain in id order,
 * charge, then storage_domain = domain 0 and pages_node into domains_itree. No domains: 0, nothing pinned.
 * On failure every domain is left as it was.
 */
export function ioptAreaFillDomains(sim: Sim, area: number, pages: number): number {
  const a = areaOf(sim, area);
  const domains = [...(sim.state.ioases[a.ioas]?.domains ?? [])];
  if (domains.length === 0) return 0;
  const first = a.firstIndex;
  const { rc: firstRc, reader } = pfnReaderFirst(sim, pages, first, a.lastIndex);
  if (firstRc || reader === null) return firstRc;
  let rc = 0;
  let failed = false;
  let index = 0;
  let doneFirstEnd = first;
  let doneAllEnd = first;
  outer: while (!pfnReaderDone(reader)) {
    doneFirstEnd = reader.batchEndIndex;
    doneAllEnd = reader.batchStartIndex;
    for (index = 0; index < domains.length; index++) {
      rc = batchToDomain(sim, reader.batch, domains[index] as string, areaOf(sim, area), reader.batchStartIndex);
      if (rc) {
        failed = true;
        break outer;
      }
    }
    // xa_for_each leaves the loop variable at the last domain's id.
    index = domains.length - 1;
    doneAllEnd = doneFirstEnd;
    rc = pfnReaderNext(sim, reader);
    if (rc) {
      failed = true;
      break;
    }
  }
  if (!failed) {
    rc = pfnReaderUpdatePinned(sim, reader);
    failed = rc !== 0;
  }
  if (!failed) {
    const now = areaOf(sim, area);
    sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: domains[0] as string });
    sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'domains', pages },
      node: area,
      start: now.firstIndex,
      last: now.lastIndex,
      owner: null,
    });
    pfnReaderDestroy(sim, reader);
    return 0;
  }
  if (sim.has('reader-release-pins')) pfnReaderReleasePins(sim, reader);
  const lastId = domains.length - 1;
  for (let unmapIndex = 0; unmapIndex < domains.length; unmapIndex++) {
    const domain = domains[unmapIndex] as string;
    let end: number;
    if (sim.has('fill-domains-unwind-extents')) end = unmapIndex < index ? doneFirstEnd : doneAllEnd;
    else end = unmapIndex <= index ? reader.batchEndIndex : reader.batchStartIndex;
    // The area is not in domains_itree: the last domain does the unpins, the others are only unmapped.
    if (unmapIndex !== lastId) {
      if (end !== first) unmapDomainRange(sim, areaOf(sim, area), domain, first, end - 1);
    } else {
      ioptAreaUnfillPartialDomain(sim, area, pages, domain, end);
    }
  }
  pfnReaderDestroy(sim, reader);
  return rc;
}

/**
 * iopt_area_unfill_domains (12d): area destruction. Unmap the area from every domain but the storage one,
 * take pages_node out of domains_itree, unfill the storage domain (unpins), storage_domain = NULL.
 */
export function ioptAreaUnfillDomains(sim: Sim, area: number, pages: number): void {
  const a = areaOf(sim, area);
  const storage = a.storageDomain;
  if (storage === null) return;
  for (const domain of [...(sim.state.ioases[a.ioas]?.domains ?? [])]) {
    if (domain !== storage) unmapDomainRange(sim, areaOf(sim, area), domain, a.firstIndex, a.lastIndex);
  }
  if (
    sim.has('split-updates-domains-itree') &&
    !itreeFind(pagesOf(sim, pages).domainsTree, area, a.firstIndex, a.lastIndex)
  ) {
    sim.testWarn('iopt_area_unfill_domains', 'RB_EMPTY_NODE(&area->pages_node.rb)', { area, pages });
  }
  removePagesNode(sim, area, pages, 'iopt_area_unfill_domains');
  ioptAreaUnfillDomain(sim, area, pages, storage);
  sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: null });
}

/**
 * interval_tree_remove of an area's pages_node from domains_itree. Removing a node that is not in the tree
 * corrupts the kernel's rbtree: reported, and the tree is left alone.
 */
export function removePagesNode(sim: Sim, area: number, pages: number, fn: string): void {
  const a = areaOf(sim, area);
  if (!itreeFind(pagesOf(sim, pages).domainsTree, area, a.firstIndex, a.lastIndex)) {
    sim.violation(
      'itree_corruption',
      fn,
      `interval_tree_remove of area ${area}'s pages_node, which is not in domains_itree`,
      { area, pages },
    );
    return;
  }
  sim.emit({
    type: 'ItreeRemoved',
    v: 1,
    tree: { kind: 'domains', pages },
    node: area,
    start: a.firstIndex,
    last: a.lastIndex,
  });
}
