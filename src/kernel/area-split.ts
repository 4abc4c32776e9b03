// SPDX-License-Identifier: GPL-2.0-only
/**
 * Splitting an area in two (drivers/iommu/iommufd/io_pagetable.c: iopt_area_split, iopt_cut_iova; spec
 * section 14 "Split"). Only VFIO type1 compatibility needs it: a type1 unmap may cut into the middle of a
 * mapping. That is safe only when every page was installed by its own iommu_map (disable_large_pages), so
 * the two halves can later be unfilled independently without cutting a huge IOPTE.
 *
 * The halves share the original iopt_pages (one more reference) with their own start byte and page offset;
 * nothing is pinned, unpinned or remapped. The original area is freed.
 *
 * Variants: [v3] copies num_accesses into both halves ([merged, up:split-blocks-accesses] refuses an area
 * with accesses instead); without [up:split-updates-domains-itree] the original area's pages_node stays in
 * domains_itree after the area is freed, and the halves' pages_nodes are never inserted.
 */
import { EBUSY, EINVAL, ENOMEM } from '../machine/errno.js';
import { kfree, kmalloc } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import { ioptAreaStartByte, u64 } from './area-geometry.js';
import { itreeFind, itreeIterFirst } from '../structures/interval-tree.js';
import { type AreaSlot, IOPT_AREA_BYTES, ioasOf, ioptInsertArea } from './io-pagetable.js';
import { ioptPagesGet } from './pages.js';

/**
 * iopt_area_split: split area `id` so that `iova` becomes the last byte of the left half. No-op at either
 * end of the area. -EBUSY while the area is being built, torn down or unmapped (prevent_access); -EINVAL if
 * the right half would start misaligned, if the area has accesses ([merged]), or if it is filled into a
 * domain that may hold large IOPTEs; -ENOMEM.
 */
export function ioptAreaSplit(sim: Sim, id: number, iova: bigint): number {
  const fn = 'iopt_area_split';
  const area = sim.state.areas[id];
  if (area === undefined) throw new InternalError(`iopt_area ${id} does not exist`);
  const ioas = area.ioas;
  const io = ioasOf(sim, ioas);
  const alignment = io.iovaAlignment;
  const start = area.iova;
  const last = area.lastIova;
  const newStart = u64(iova + 1n);
  if (iova === start || iova === last) return 0;
  const pages = area.pages;
  if (pages === null || area.preventAccess) return -EBUSY;
  const rhsStartByte = BigInt(ioptAreaStartByte(sim, area, newStart));
  if (newStart & (alignment - 1n) || rhsStartByte & (alignment - 1n)) return -EINVAL;

  const lhsPtr = kmalloc(sim, IOPT_AREA_BYTES, { tag: 'iopt_area', fn });
  if (lhsPtr === null || lhsPtr.space !== 'heap') return -ENOMEM;
  const rhsPtr = kmalloc(sim, IOPT_AREA_BYTES, { tag: 'iopt_area', fn });
  if (rhsPtr === null || rhsPtr.space !== 'heap') {
    kfree(sim, lhsPtr, fn);
    return -ENOMEM;
  }
  const lhs: AreaSlot = { ptr: lhsPtr, id: lhsPtr.alloc, inserted: false };
  const rhs: AreaSlot = { ptr: rhsPtr, id: rhsPtr.alloc, inserted: false };
  const fail = (rc: number): number => {
    kfree(sim, rhsPtr, fn);
    kfree(sim, lhsPtr, fn);
    return rc;
  };

  // Under the pages mutex.
  if (sim.has('split-blocks-accesses') && area.numAccesses) return fail(-EINVAL);
  if (area.storageDomain !== null && !io.disableLargePages) return fail(-EINVAL);

  const prot = { read: area.read, write: area.write };
  const lhsStartByte = BigInt(ioptAreaStartByte(sim, area, start));
  const reinsert = (): void => {
    sim.emit({ type: 'ItreeInserted', v: 1, tree: { kind: 'area', ioas }, node: id, start, last, owner: null });
  };
  sim.emit({ type: 'ItreeRemoved', v: 1, tree: { kind: 'area', ioas }, node: id, start, last });
  let rc = ioptInsertArea(sim, ioas, lhs, pages, start, lhsStartByte, newStart - start, prot);
  if (rc) {
    sim.warn(fn, 'rc', { area: id, iova, rc });
    reinsert();
    return fail(rc);
  }
  rc = ioptInsertArea(sim, ioas, rhs, pages, newStart, rhsStartByte, last - newStart + 1n, prot);
  if (rc) {
    sim.warn(fn, 'rc', { area: id, iova, rc });
    const l = sim.state.areas[lhs.id];
    if (l !== undefined) {
      sim.emit({
        type: 'ItreeRemoved',
        v: 1,
        tree: { kind: 'area', ioas },
        node: l.id,
        start: l.iova,
        last: l.lastIova,
      });
      sim.emit({ type: 'AreaFreed', v: 1, area: l.id });
    }
    reinsert();
    return fail(rc);
  }

  const storage = area.storageDomain;
  const numAccesses = area.numAccesses;
  for (const half of [lhs.id, rhs.id]) {
    if (storage !== null) sim.emit({ type: 'AreaStorageDomainSet', v: 1, area: half, domain: storage });
    sim.emit({ type: 'AreaPagesSet', v: 1, area: half, pages });
    // [v3] both halves inherit the whole count, though each access was taken through one of them at most.
    if (!sim.has('split-blocks-accesses') && numAccesses) {
      sim.emit({ type: 'AreaAccessesChanged', v: 1, area: half, delta: numAccesses, fn });
    }
  }
  ioptPagesGet(sim, pages, fn);

  if (storage !== null && sim.has('split-updates-domains-itree')) {
    const old = sim.state.areas[id];
    if (old === undefined) throw new InternalError(`iopt_area ${id} vanished during the split`);
    const tree = sim.state.pages[pages]?.domainsTree;
    if (tree !== undefined && itreeFind(tree, id, old.firstIndex, old.lastIndex)) {
      sim.emit({
        type: 'ItreeRemoved',
        v: 1,
        tree: { kind: 'domains', pages },
        node: id,
        start: old.firstIndex,
        last: old.lastIndex,
      });
    } else {
      sim.violation(
        'itree_corruption',
        fn,
        `interval_tree_remove of area ${id}'s pages_node, which is not in domains_itree`,
        { area: id, pages },
      );
    }
    for (const half of [lhs.id, rhs.id]) {
      const h = sim.state.areas[half];
      if (h === undefined) continue;
      sim.emit({
        type: 'ItreeInserted',
        v: 1,
        tree: { kind: 'domains', pages },
        node: half,
        start: h.firstIndex,
        last: h.lastIndex,
        owner: null,
      });
    }
  }
  sim.emit({ type: 'AreaFreed', v: 1, area: id });
  kfree(sim, { space: 'heap', alloc: id, offset: 0 }, fn);
  return 0;
}

/**
 * iopt_cut_iova: split, at each cut point, the area containing it (cut point = last byte of the left
 * half). Stops at the first error.
 */
export function ioptCutIova(sim: Sim, ioas: string, iovas: readonly bigint[]): number {
  for (const iova of iovas) {
    const node = itreeIterFirst(ioasOf(sim, ioas).areas, iova, iova);
    if (node === null) continue;
    const rc = ioptAreaSplit(sim, node.id, iova);
    if (rc) return rc;
  }
  return 0;
}
