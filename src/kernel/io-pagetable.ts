// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct io_pagetable (drivers/iommu/iommufd/io_pagetable.c, spec section 14): the IOVA side of an IOAS.
 * It holds the area tree (IOVA -> slice of an iopt_pages), the allowed and reserved IOVA trees, the dense
 * array of attached domains and the list of accesses, and drives the PFN layer (pages.ts): map and copy
 * create areas and fill them into every domain, unmap takes them out again (asking accesses to let go
 * first), attach and detach fill and unfill a whole domain.
 *
 * Invariants at rest: areas never overlap; an area with pages is fully set up (pages NULL only inside one
 * of the functions here); every area is aligned to iova_alignment, which is the largest of the domains'
 * smallest IO page, the accesses' alignment and PAGE_SIZE when large pages are disabled; no area, allowed
 * range or other reservation intersects a domain's reserved ranges (outside its aperture).
 *
 * Vocabulary: `iova`/`length` in bytes (bigint, u64 arithmetic), `last` inclusive, `index` in pages. The
 * lock order is domains_rwsem -> iova_rwsem -> pages mutex; locks are a contract, not modelled state, except
 * where unmap drops them around the access callbacks and re-reads what may have changed.
 *
 * Model choices: an area's id is the id of its heap allocation (kmalloc'd at iopt_alloc_area_pages or
 * iopt_area_split, so fail-nth reaches it and a lost area is a leak); its area-tree node and its
 * domains_itree node (pages_node) carry the same id. Reserved nodes are heap allocations too (their id is
 * the node id, the owner is the domain name). Allowed nodes and the IOAS object live as long as the IOAS,
 * which the trace contract never destroys: they keep their fault point but are not heap-tracked.
 */
import {
  EADDRINUSE,
  EBADF,
  EBUSY,
  EDEADLK,
  EEXIST,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOVERFLOW,
  EPERM,
} from '../machine/errno.js';
import { fput, getFile } from '../machine/memfd.js';
import type { Ptr } from '../machine/heap.js';
import { kfree, kmalloc } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import type { Area, Ioas, State } from '../state/state.js';
import { U64_MASK, ioptAreaLength, ioptAreaStartByte, u64 } from './area-geometry.js';
import { iommufdAccessNotifyUnmap } from './access-ops.js';
import type { ItreeEntry } from '../structures/interval-tree.js';
import { itreeEntries, itreeFind, itreeIterFirst, itreeIterNext } from '../structures/interval-tree.js';
import { U64_MAX, ioptAllocIova, ioptCheckIova } from './iova-alloc.js';
import {
  ioptAllocFilePages,
  ioptAllocPages,
  ioptAreaFillDomain,
  ioptAreaFillDomains,
  ioptAreaUnfillDomain,
  ioptAreaUnfillDomains,
  ioptAreaUnmapDomain,
  ioptPagesGet,
  ioptPagesPut,
} from './pages.js';
import { removePagesNode } from './pages-domain.js';
import { iommuUnmapNofail } from './pfn-reader.js';
import { spans } from '../structures/span.js';

/** sizeof(struct iopt_area), sizeof(struct iopt_pages_list), sizeof(struct iopt_reserved) on x86-64. */
export const IOPT_AREA_BYTES = 176;
const IOPT_PAGES_LIST_BYTES = 48;
const IOPT_RESERVED_BYTES = 48;

/** The unmap retry bound of unmap-no-area-deref (and the point where the model stops a v3 livelock). */
const UNMAP_MAX_TRIES = 100;

export interface Prot {
  read: boolean;
  write: boolean;
}

// ---- state access -----------------------------------------------------------------------------------------

export function ioasOf(sim: Sim, ioas: string): Ioas {
  const io = sim.state.ioases[ioas];
  if (io === undefined) throw new InternalError(`ioas ${ioas} does not exist`);
  return io;
}

function areaRec(sim: Sim, area: number): Area {
  const a = sim.state.areas[area];
  if (a === undefined) throw new InternalError(`iopt_area ${area} does not exist`);
  return a;
}

/** The areas intersecting [first, last] in address order (a snapshot of the ids). */
export function areaIdsIn(io: Ioas, first: bigint, last: bigint): number[] {
  const out: number[] = [];
  let e = itreeIterFirst(io.areas, first, last);
  while (e !== null) {
    out.push(e.id);
    e = itreeIterNext(io.areas, e, first, last);
  }
  return out;
}

// ---- contiguous areas (iopt_area_contig_*) ----------------------------------------------------------------

/** A state, or a function returning the current one (when the state object may be replaced between steps). */
export type StateRef = State | (() => State);
const deref = (s: StateRef): State => (typeof s === 'function' ? s() : s);

/** struct iopt_area_contig_iter: `area` null once a hole (or an area without pages) stopped the walk. */
export interface ContigIter {
  ioas: string;
  curIova: bigint;
  lastIova: bigint;
  area: Area | null;
  node: ItreeEntry<bigint> | null;
}

function contigSet(state: State, iter: ContigIter, node: ItreeEntry<bigint> | null): Area | null {
  const area = node === null ? null : (state.areas[node.id] ?? null);
  iter.node = node;
  iter.area = area !== null && area.pages !== null ? area : null;
  return iter.area;
}

/** iopt_area_contig_init: the area holding `iova`, if it has pages. */
export function ioptAreaContigInit(stateRef: StateRef, ioas: string, iova: bigint, lastIova: bigint): ContigIter {
  const state = deref(stateRef);
  const io = state.ioases[ioas];
  if (io === undefined) throw new InternalError(`ioas ${ioas} does not exist`);
  const iter: ContigIter = { ioas, curIova: iova, lastIova, area: null, node: null };
  contigSet(state, iter, itreeIterFirst(io.areas, iova, iova));
  return iter;
}

/** iopt_area_contig_next: the area starting right after the current one, or null (end of range or a hole). */
export function ioptAreaContigNext(stateRef: StateRef, iter: ContigIter): Area | null {
  const state = deref(stateRef);
  if (iter.area === null || iter.node === null) return null;
  const area = state.areas[iter.node.id] ?? iter.area;
  if (iter.lastIova <= area.lastIova) return null;
  iter.curIova = area.lastIova + 1n;
  const io = state.ioases[iter.ioas];
  if (io === undefined) throw new InternalError(`ioas ${iter.ioas} does not exist`);
  const next = itreeIterNext(io.areas, iter.node, iter.curIova, iter.lastIova);
  const got = contigSet(state, iter, next);
  if (got === null) {
    iter.area = null;
    return null;
  }
  if (got.iova !== iter.curIova) {
    iter.area = null;
    return null;
  }
  return got;
}

/** iopt_area_contig_done: the walk reached the end of the range without a hole. */
export function ioptAreaContigDone(stateRef: StateRef, iter: ContigIter): boolean {
  if (iter.area === null || iter.node === null) return false;
  const area = deref(stateRef).areas[iter.node.id] ?? iter.area;
  return iter.lastIova <= area.lastIova;
}

export interface ContigPiece {
  area: Area;
  /** The piece is [iova, lastIova] of `area` (iter.cur_iova .. min(last, area's last)). */
  iova: bigint;
  lastIova: bigint;
}

/**
 * iopt_for_each_contig_area over [iova, lastIova]: yields each area piece in order, reading the tree lazily
 * (after the caller's work on the previous piece), and returns whether the range was fully covered
 * (iopt_area_contig_done).
 * @example
 *   const it = ioptAreaContiguous(() => sim.state, 'A', iova, last);
 *   let r = it.next();
 *   for (; !r.done; r = it.next()) pin(r.value);
 *   if (!r.value) return -ENOENT;
 */
export function* ioptAreaContiguous(
  stateRef: StateRef,
  ioas: string,
  iova: bigint,
  lastIova: bigint,
): Generator<ContigPiece, boolean, undefined> {
  const iter = ioptAreaContigInit(stateRef, ioas, iova, lastIova);
  let area = iter.area;
  while (area !== null) {
    yield { area, iova: iter.curIova, lastIova: lastIova < area.lastIova ? lastIova : area.lastIova };
    area = ioptAreaContigNext(stateRef, iter);
  }
  return ioptAreaContigDone(stateRef, iter);
}

// ---- areas: creation and abort -----------------------------------------------------------------------------

/** An area being created: its allocation, and whether iopt_insert_area put it into the tree. */
export interface AreaSlot {
  ptr: Ptr;
  id: number;
  inserted: boolean;
}

/** struct iopt_pages_list: one slice of an iopt_pages that becomes one area. */
export interface PagesListElm {
  pages: number | null;
  area: AreaSlot | null;
  startByte: bigint;
  length: bigint;
  /** The list element's own allocation (iopt_get_pages); null for the on-stack element of map. */
  ptr: Ptr | null;
}

function areaAlloc(sim: Sim, fn: string): AreaSlot | null {
  const ptr = kmalloc(sim, IOPT_AREA_BYTES, { tag: 'iopt_area', fn });
  if (ptr === null || ptr.space !== 'heap') return null;
  return { ptr, id: ptr.alloc, inserted: false };
}

/**
 * iopt_insert_area: the area takes [startByte, startByte + length) of pages at `iova`, inserted with a NULL
 * pages. -EPERM WRITE on read-only pages, -EINVAL page offset misaligned, -EOVERFLOW on wraps (the last
 * index beyond the pages also WARNs).
 */
export function ioptInsertArea(
  sim: Sim,
  ioas: string,
  slot: AreaSlot,
  pages: number,
  iova: bigint,
  startByte: bigint,
  length: bigint,
  prot: Prot,
): number {
  const io = ioasOf(sim, ioas);
  const p = sim.state.pages[pages];
  if (p === undefined) throw new InternalError(`iopt_pages ${pages} does not exist`);
  if (prot.write && !p.writable) return -EPERM;
  const page = BigInt(sim.pageSize);
  const pageOffset = startByte % page;
  if (pageOffset & (io.iovaAlignment - 1n)) return -EINVAL;
  const last = iova + u64(length - 1n);
  if (last > U64_MAX) return -EOVERFLOW;
  const lastByte = startByte + u64(length - 1n);
  if (lastByte > U64_MAX) return -EOVERFLOW;
  const firstIndex = startByte / page;
  const lastIndex = lastByte / page;
  if (lastIndex >= BigInt(p.npages)) {
    sim.warn('iopt_insert_area', 'area->pages_node.last >= pages->npages', {
      area: slot.id,
      pages,
      lastIndex,
      npages: p.npages,
    });
    return -EOVERFLOW;
  }
  sim.emit({
    type: 'AreaAllocated',
    v: 1,
    area: slot.id,
    ioas,
    iova,
    lastIova: last,
    pageOffset: Number(pageOffset),
    firstIndex: Number(firstIndex),
    lastIndex: Number(lastIndex),
    prot: { read: prot.read, write: prot.write },
  });
  sim.emit({
    type: 'ItreeInserted',
    v: 1,
    tree: { kind: 'area', ioas },
    node: slot.id,
    start: iova,
    last,
    owner: null,
  });
  slot.inserted = true;
  return 0;
}

/** iopt_abort_area: [test] WARN if it still has pages; out of the area tree if it got in; kfree. */
function ioptAbortArea(sim: Sim, slot: AreaSlot): void {
  const fn = 'iopt_abort_area';
  if (slot.inserted) {
    const a = sim.state.areas[slot.id];
    if (a === undefined) {
      sim.violation('use_after_free', fn, `abort of freed iopt_area ${slot.id}`, { area: slot.id });
    } else {
      if (a.pages !== null) sim.testWarn(fn, 'area->pages', { area: slot.id });
      sim.emit({
        type: 'ItreeRemoved',
        v: 1,
        tree: { kind: 'area', ioas: a.ioas },
        node: a.id,
        start: a.iova,
        last: a.lastIova,
      });
      sim.emit({ type: 'AreaFreed', v: 1, area: a.id });
    }
  }
  kfree(sim, slot.ptr, fn);
}

/** iopt_abort_area of an area that is in the tree (its pages already taken away). */
function freeArea(sim: Sim, area: number): void {
  ioptAbortArea(sim, { ptr: { space: 'heap', alloc: area, offset: 0 }, id: area, inserted: true });
}

/** iopt_free_pages_list: abort the areas, drop the pages references, free the elements. */
export function ioptFreePagesList(sim: Sim, list: PagesListElm[]): void {
  for (const elm of list) {
    if (elm.area !== null) ioptAbortArea(sim, elm.area);
    if (elm.pages !== null) ioptPagesPut(sim, elm.pages, 'iopt_free_pages_list');
    elm.area = null;
    elm.pages = null;
    if (elm.ptr !== null) kfree(sim, elm.ptr, 'iopt_free_pages_list');
  }
  list.length = 0;
}

/**
 * iopt_alloc_area_pages: allocate one area per list element, choose the IOVA (allocated, or the fixed one
 * checked) and insert the areas with NULL pages. Returns rc and the IOVA.
 */
function ioptAllocAreaPages(
  sim: Sim,
  ioas: string,
  list: PagesListElm[],
  length: bigint,
  dstIova: bigint,
  allocIova: boolean,
  prot: Prot,
): { rc: number; iova: bigint } {
  for (const elm of list) {
    elm.area = areaAlloc(sim, 'iopt_alloc_area_pages');
    if (elm.area === null) return { rc: -ENOMEM, iova: dstIova };
  }
  const io = ioasOf(sim, ioas);
  if (sim.merged && ((length & (io.iovaAlignment - 1n)) !== 0n || length === 0n)) return { rc: -EINVAL, iova: dstIova };

  let iova = dstIova;
  if (allocIova) {
    const first = list[0];
    if (first === undefined || first.pages === null) throw new InternalError('iopt_alloc_area_pages: empty pages list');
    const p = sim.state.pages[first.pages];
    if (p === undefined) throw new InternalError(`iopt_pages ${first.pages} does not exist`);
    // The alignment hint: the user address, or for file pages the file offset.
    const base = p.fileStart ?? p.uptr;
    const r = ioptAllocIova(sim, io, u64(base + first.startByte), length);
    if (r.rc) return { rc: r.rc, iova: dstIova };
    iova = r.iova;
    if (sim.merged && sim.testBuild && ioptCheckIova(sim, io, iova, length)) {
      sim.warn('iopt_alloc_area_pages', 'iopt_check_iova(iopt, *dst_iova, length)', { ioas, iova, length });
      return { rc: -EINVAL, iova };
    }
  } else {
    const rc = ioptCheckIova(sim, io, iova, length);
    if (rc) return { rc, iova };
  }

  let cur = iova;
  for (const elm of list) {
    if (elm.area === null || elm.pages === null)
      throw new InternalError('iopt_alloc_area_pages: element without area or pages');
    const rc = ioptInsertArea(sim, ioas, elm.area, elm.pages, cur, elm.startByte, elm.length, prot);
    if (rc) return { rc, iova };
    cur = u64(cur + elm.length);
  }
  return { rc: 0, iova };
}

/** iopt_fill_domains_pages: fill every new area into every domain; on failure undo the areas before. */
function ioptFillDomainsPages(sim: Sim, list: PagesListElm[]): number {
  for (let i = 0; i < list.length; i++) {
    const elm = list[i] as PagesListElm;
    if (elm.area === null || elm.pages === null) throw new InternalError('iopt_fill_domains_pages: incomplete element');
    const rc = ioptAreaFillDomains(sim, elm.area.id, elm.pages);
    if (rc) {
      for (let j = 0; j < i; j++) {
        const undo = list[j] as PagesListElm;
        if (undo.area !== null && undo.pages !== null) ioptAreaUnfillDomains(sim, undo.area.id, undo.pages);
      }
      return rc;
    }
  }
  return 0;
}

/**
 * iopt_map_pages: create the areas for a pages list at `dstIova` (or an allocated IOVA), fill them into the
 * domains and hand each list reference to its area. On failure the areas and references stay in the list
 * for the caller to free.
 */
export function ioptMapPages(
  sim: Sim,
  ioas: string,
  list: PagesListElm[],
  length: bigint,
  dstIova: bigint,
  prot: Prot,
  allocIova: boolean,
): { rc: number; iova: bigint } {
  const r = ioptAllocAreaPages(sim, ioas, list, length, dstIova, allocIova, prot);
  if (r.rc) return r;
  const rc = ioptFillDomainsPages(sim, list);
  if (rc) return { rc, iova: r.iova };
  for (const elm of list) {
    if (elm.area === null || elm.pages === null) continue;
    sim.emit({ type: 'AreaPagesSet', v: 1, area: elm.area.id, pages: elm.pages });
    elm.pages = null;
    elm.area = null;
  }
  return r;
}

/**
 * iopt_map_user_pages: map [uptr, uptr + length) of the calling process at `iova` (null = allocate one).
 * With domains the pages are pinned and mapped into each; without, nothing is pinned until an access or a
 * domain needs it. The pages account in MM mode when the context does (VFIO compatible).
 */
export function ioptMapUserPages(
  sim: Sim,
  ioas: string,
  iova: bigint | null,
  uptr: bigint,
  length: bigint,
  prot: Prot,
): { rc: number; iova: bigint | null } {
  const pages = ioptAllocPages(sim, uptr, length, prot.write);
  if (pages < 0) return { rc: pages, iova: null };
  const io = ioasOf(sim, ioas);
  const p = sim.state.pages[pages];
  if (sim.state.ctxs[io.ctx]?.account === 'mm' && p?.accountMode === 'user') {
    sim.emit({ type: 'PagesAccountModeSet', v: 1, pages, accountMode: 'mm' });
  }
  const page = p?.uptr ?? 0n;
  const elm: PagesListElm = { pages, area: null, startByte: uptr - page, length, ptr: null };
  const r = ioptMapPages(sim, ioas, [elm], length, iova ?? 0n, prot, iova === null);
  if (r.rc) {
    if (elm.area !== null) ioptAbortArea(sim, elm.area);
    if (elm.pages !== null) ioptPagesPut(sim, elm.pages, 'iopt_map_user_pages');
    return { rc: r.rc, iova: null };
  }
  return { rc: 0, iova: r.iova };
}

/**
 * iopt_map_file_pages ([up:ioas-map-file]): map `length` bytes of memfd `file` from byte `start` at `iova`
 * (null = allocate). -EINVAL length 0, -EOVERFLOW when start + length - 1 wraps, -EBADF when the fd is closed
 * (its process exited); then iopt_alloc_file_pages (the map's own file reference is dropped at once, the pages keeps
 * one) and the common map path. Nothing is pinned without a domain; a range beyond the end of the file
 * fails when it is first pinned (-EINVAL from memfd_pin_folios).
 */
export function ioptMapFilePages(
  sim: Sim,
  ioas: string,
  iova: bigint | null,
  file: string,
  start: bigint,
  length: bigint,
  prot: Prot,
): { rc: number; iova: bigint | null } {
  if (length === 0n) return { rc: -EINVAL, iova: null };
  if (start + length - 1n > U64_MASK) return { rc: -EOVERFLOW, iova: null };
  // fget: the fd lives in its creator's fd table, closed when that process exits (exit_files), though the
  // file itself may live on while a mapping holds it.
  const f = sim.state.files[file];
  if (f === undefined || sim.state.processes[f.pid]?.exited !== false) return { rc: -EBADF, iova: null };
  getFile(sim, file, 'fget');
  const pages = ioptAllocFilePages(sim, file, start, length, prot.write);
  fput(sim, file, 'iopt_map_file_pages');
  if (pages < 0) return { rc: pages, iova: null };
  const io = ioasOf(sim, ioas);
  const p = sim.state.pages[pages];
  if (sim.state.ctxs[io.ctx]?.account === 'mm' && p?.accountMode === 'user') {
    sim.emit({ type: 'PagesAccountModeSet', v: 1, pages, accountMode: 'mm' });
  }
  const elm: PagesListElm = { pages, area: null, startByte: start % BigInt(sim.pageSize), length, ptr: null };
  const r = ioptMapPages(sim, ioas, [elm], length, iova ?? 0n, prot, iova === null);
  if (r.rc) {
    if (elm.area !== null) ioptAbortArea(sim, elm.area);
    if (elm.pages !== null) ioptPagesPut(sim, elm.pages, 'iopt_map_file_pages');
    return { rc: r.rc, iova: null };
  }
  return { rc: 0, iova: r.iova };
}

/**
 * iopt_get_pages: a pages list for [iova, iova + length) of `ioas`, one element per contiguous area piece,
 * each holding a new pages reference. -EINVAL length 0, -EOVERFLOW on wrap, -ENOMEM, -ENOENT if the range
 * is not fully covered by areas with pages. On failure the list is empty.
 */
export function ioptGetPages(sim: Sim, ioas: string, iova: bigint, length: bigint, list: PagesListElm[]): number {
  const fn = 'iopt_get_pages';
  if (length === 0n) return -EINVAL;
  const last = iova + length - 1n;
  if (last > U64_MAX) return -EOVERFLOW;
  const it = ioptAreaContiguous(() => sim.state, ioas, iova, last);
  let r = it.next();
  for (; !r.done; r = it.next()) {
    const { area, iova: cur, lastIova } = r.value;
    if (area.pages === null) throw new InternalError(`iopt_get_pages: contiguous area ${area.id} without pages`);
    const ptr = kmalloc(sim, IOPT_PAGES_LIST_BYTES, { tag: 'iopt_pages_list', fn });
    if (ptr === null) {
      ioptFreePagesList(sim, list);
      return -ENOMEM;
    }
    const startByte = BigInt(ioptAreaStartByte(sim, area, cur));
    ioptPagesGet(sim, area.pages, fn);
    list.push({ pages: area.pages, area: null, startByte, length: lastIova - cur + 1n, ptr });
  }
  if (!r.value) {
    ioptFreePagesList(sim, list);
    return -ENOENT;
  }
  return 0;
}

// ---- unmap -------------------------------------------------------------------------------------------------

export interface UnmapResult {
  rc: number;
  unmapped: bigint;
  /** False when the function returned without writing *unmapped (the -EDEADLOCK bail-outs). */
  written: boolean;
}

/** Unmap area `id` (entirely inside the range, no accesses): unfill, free, drop its pages. Returns its length. */
function ioptUnmapOneArea(sim: Sim, id: number): bigint {
  const a = areaRec(sim, id);
  const pages = a.pages;
  if (pages === null) throw new InternalError(`iopt_unmap_iova_range: area ${id} has no pages`);
  const length = a.lastIova - a.iova + 1n;
  sim.emit({ type: 'AreaPagesSet', v: 1, area: id, pages: null });
  ioptAreaUnfillDomains(sim, id, pages);
  freeArea(sim, id);
  ioptPagesPut(sim, pages, 'iopt_unmap_iova_range');
  return length;
}

/**
 * iopt_unmap_iova_range: remove every area inside [start, last]. An area cut by the range is -ENOENT, an
 * area being built or torn down -EBUSY, as is a locked area ([up:area-num-locks]); an area with accesses is marked prevent_access and every access's
 * unmap callback runs (locks dropped) before the area is looked up again. 0 if anything was unmapped, else
 * -ENOENT ([up:vfio-unmap-empty-success] 0: an empty range is success here and IOAS_UNMAP checks for 0
 * bytes itself). The variants differ in what happens when the callbacks leave accesses behind (spec 14).
 */
export function ioptUnmapIovaRange(sim: Sim, ioas: string, start: bigint, last: bigint): UnmapResult {
  const fn = 'iopt_unmap_iova_range';
  let unmapped = 0n;
  let tries = 0;
  let rc = sim.has('vfio-unmap-empty-success') ? 0 : -ENOENT;
  let from = start;
  for (;;) {
    const io = ioasOf(sim, ioas);
    const node = itreeIterFirst(io.areas, from, last);
    if (node === null) break;
    const area = areaRec(sim, node.id);
    const areaFirst = area.iova;
    const areaLast = area.lastIova;
    if (area.pages === null) return { rc: -EBUSY, unmapped, written: true };
    // [up:area-num-locks] an object that still lives (a HW queue) locked the area: nothing may remove it.
    if (sim.has('area-num-locks') && area.numLocks) return { rc: -EBUSY, unmapped, written: true };
    if (areaFirst < from || areaLast > last) return { rc: -ENOENT, unmapped, written: true };

    if (area.numAccesses > 0) {
      if (sim.has('unmap-no-area-deref') && areaFirst !== from) tries = 0;
      const length = ioptAreaLength(area);
      const before = area.numAccesses;
      from = areaFirst;
      if (!area.preventAccess) sim.emit({ type: 'AreaPreventAccessSet', v: 1, area: area.id, prevent: true });
      // Locks dropped: the callbacks unpin, and anything may happen to the area meanwhile.
      iommufdAccessNotifyUnmap(sim, ioas, areaFirst, length);
      if (sim.has('unmap-no-area-deref')) {
        tries += 1;
        if (tries > UNMAP_MAX_TRIES) {
          sim.warn(fn, 'tries > 100', { ioas, iova: areaFirst });
          return { rc: -EDEADLK, unmapped, written: sim.has('unmap-reports-bytes-on-error') };
        }
        continue;
      }
      // [v3], [merged]: the area is read again after the locks were dropped.
      const again = sim.state.areas[area.id];
      let remaining = 0;
      if (again === undefined) {
        sim.violation(
          'use_after_free',
          fn,
          `read of num_accesses of iopt_area ${area.id}, freed while the locks were dropped`,
          { area: area.id, ioas },
        );
      } else {
        remaining = again.numAccesses;
      }
      if (remaining === 0) continue;
      sim.warn(fn, 'READ_ONCE(area->num_accesses)', { area: area.id, numAccesses: remaining });
      if (sim.merged) return { rc: -EDEADLK, unmapped, written: sim.has('unmap-reports-bytes-on-error') };
      // [v3] retries forever; the model stops once a retry can no longer change anything.
      tries += 1;
      if (remaining >= before || tries > UNMAP_MAX_TRIES) {
        sim.violation(
          'invariant',
          fn,
          `livelock: area ${area.id} keeps ${remaining} accesses after the unmap callbacks and v3 retries forever`,
          {
            area: area.id,
            numAccesses: remaining,
          },
        );
        return { rc: -EDEADLK, unmapped, written: false };
      }
      continue;
    }

    unmapped += ioptUnmapOneArea(sim, area.id);
    if (sim.has('unmap-advance-start')) {
      if (areaLast >= last) break;
      from = areaLast + 1n;
    }
  }
  if (unmapped) rc = 0;
  return { rc, unmapped, written: true };
}

/** iopt_unmap_iova: -EINVAL for length 0, -EOVERFLOW on wrap, else iopt_unmap_iova_range. */
export function ioptUnmapIova(sim: Sim, ioas: string, iova: bigint, length: bigint): UnmapResult {
  if (length === 0n) return { rc: -EINVAL, unmapped: 0n, written: false };
  const last = iova + length - 1n;
  if (last > U64_MAX) return { rc: -EOVERFLOW, unmapped: 0n, written: false };
  return ioptUnmapIovaRange(sim, ioas, iova, last);
}

/**
 * iopt_unmap_all: the whole space; [merged] an empty IOAS is success, [v3] -ENOENT
 * ([up:vfio-unmap-empty-success] the range walk itself succeeds on an empty IOAS).
 */
export function ioptUnmapAll(sim: Sim, ioas: string): UnmapResult {
  const r = ioptUnmapIovaRange(sim, ioas, 0n, U64_MAX);
  if (sim.merged && r.rc === -ENOENT && !sim.has('vfio-unmap-empty-success')) return { ...r, rc: 0 };
  return r;
}

// ---- allowed and reserved ranges ---------------------------------------------------------------------------

/**
 * IOMMU_IOAS_ALLOW_IOVAS (iommufd_ioas_load_iovas + iopt_set_allow_iova): replace the allowed ranges
 * atomically. Each range must have start < last and not overlap an earlier one (-EINVAL); -ENOMEM;
 * -EADDRINUSE if a new range intersects a reserved one (the old ranges stay).
 */
export function ioptSetAllowIova(sim: Sim, ioas: string, ranges: readonly (readonly [bigint, bigint])[]): number {
  const loaded: [bigint, bigint][] = [];
  for (const [start, last] of ranges) {
    if (start >= last) return -EINVAL;
    if (loaded.some(([s, l]) => s <= last && start <= l)) return -EINVAL;
    if (sim.faultPoint('kmalloc', 'iommufd_ioas_load_iovas')) return -ENOMEM;
    loaded.push([start, last]);
  }
  const io = ioasOf(sim, ioas);
  for (const [start, last] of loaded) {
    if (itreeIterFirst(io.reserved, start, last) !== null) return -EADDRINUSE;
  }
  for (const old of itreeEntries(io.allowed)) {
    sim.emit({
      type: 'ItreeRemoved',
      v: 1,
      tree: { kind: 'allowed', ioas },
      node: old.id,
      start: old.start,
      last: old.last,
    });
  }
  for (const [start, last] of loaded) {
    sim.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'allowed', ioas },
      node: sim.newId(),
      start,
      last,
      owner: null,
    });
  }
  return 0;
}

/** iopt_reserve_iova: reserve [start, last] for `owner`; -EADDRINUSE over an area or an allowed range. */
export function ioptReserveIova(sim: Sim, ioas: string, start: bigint, last: bigint, owner: string | null): number {
  const io = ioasOf(sim, ioas);
  if (itreeIterFirst(io.areas, start, last) !== null || itreeIterFirst(io.allowed, start, last) !== null)
    return -EADDRINUSE;
  const ptr = kmalloc(sim, IOPT_RESERVED_BYTES, { tag: 'iopt_reserved', fn: 'iopt_reserve_iova' });
  if (ptr === null || ptr.space !== 'heap') return -ENOMEM;
  sim.emit({ type: 'ItreeInserted', v: 1, tree: { kind: 'reserved', ioas }, node: ptr.alloc, start, last, owner });
  return 0;
}

/** __iopt_remove_reserved_iova: drop every reserved range of `owner` (null: the selftest's own ones). */
export function ioptRemoveReservedIova(sim: Sim, ioas: string, owner: string | null): void {
  const io = ioasOf(sim, ioas);
  for (const node of itreeEntries(io.reserved)) {
    if ((ioasOf(sim, ioas).reservedOwners[node.id] ?? null) !== owner) continue;
    sim.emit({
      type: 'ItreeRemoved',
      v: 1,
      tree: { kind: 'reserved', ioas },
      node: node.id,
      start: node.start,
      last: node.last,
    });
    kfree(sim, { space: 'heap', alloc: node.id, offset: 0 }, 'iopt_remove_reserved_iova');
  }
}

// ---- alignment ---------------------------------------------------------------------------------------------

/** The smallest IO page size of a domain (1 << __ffs(pgsize_bitmap)). */
function domainMinPage(sim: Sim, domain: string): bigint {
  const d = sim.state.domains[domain];
  if (d === undefined) throw new InternalError(`domain ${domain} does not exist`);
  let min: bigint | null = null;
  for (const p of d.pgsizes) if (min === null || p < min) min = p;
  return min ?? 1n;
}

/** access->iova_alignment: PAGE_SIZE for an access that pins pages, else 1 ([merged]; v3 has none). */
function accessAlignment(sim: Sim, access: string): bigint {
  const a = sim.state.accesses[access];
  return a?.needsPinPages ? BigInt(sim.pageSize) : 1n;
}

/** iopt_check_iova_alignment: every area (iova, length, [merged] page offset) fits the new alignment. */
function ioptCheckIovaAlignment(sim: Sim, ioas: string, alignment: bigint, accesses: readonly string[]): number {
  const mask = alignment - 1n;
  const io = ioasOf(sim, ioas);
  for (const node of itreeEntries(io.areas)) {
    const a = sim.state.areas[node.id];
    if (a === undefined) continue;
    if (a.iova & mask || ioptAreaLength(a) & mask) return -EADDRINUSE;
    if (sim.merged && BigInt(a.pageOffset) & mask) return -EADDRINUSE;
  }
  if (sim.merged && sim.testBuild) {
    for (const access of accesses) {
      if (accessAlignment(sim, access) > alignment) {
        sim.warn('iopt_check_iova_alignment', 'access->iova_alignment > new_iova_alignment', { ioas, access });
        return -EADDRINUSE;
      }
    }
  }
  return 0;
}

function setAlignment(sim: Sim, ioas: string, alignment: bigint): void {
  if (ioasOf(sim, ioas).iovaAlignment !== alignment) sim.emit({ type: 'IovaAlignmentSet', v: 1, ioas, alignment });
}

/**
 * iopt_calculate_iova_alignment over the given access list: PAGE_SIZE with large pages disabled, raised by
 * every domain's smallest IO page and ([merged]) every access; a rise must fit the existing areas.
 */
function ioptCalculateIovaAlignment(sim: Sim, ioas: string, accesses: readonly string[]): number {
  const io = ioasOf(sim, ioas);
  let alignment = io.disableLargePages ? BigInt(sim.pageSize) : 1n;
  for (const d of io.domains) {
    const p = domainMinPage(sim, d);
    if (p > alignment) alignment = p;
  }
  if (sim.merged) {
    for (const access of accesses) {
      const a = accessAlignment(sim, access);
      if (a > alignment) alignment = a;
    }
  }
  if (alignment > io.iovaAlignment) {
    const rc = ioptCheckIovaAlignment(sim, ioas, alignment, accesses);
    if (rc) return rc;
  }
  setAlignment(sim, ioas, alignment);
  return 0;
}

// ---- accesses ----------------------------------------------------------------------------------------------

/**
 * iopt_add_access: `access` joins the IOAS's access list and the alignment is recomputed with it. Call it
 * after AccessCreated (which puts the access in the list); on failure (-EADDRINUSE: an existing area does
 * not fit the access's alignment) the caller takes the access out again. [v3] has no per-access alignment.
 */
export function ioptAddAccess(sim: Sim, ioas: string, access: string): number {
  if (!sim.merged) return 0;
  const list = ioasOf(sim, ioas).accesses;
  const accesses = list.includes(access) ? [...list] : [...list, access];
  return ioptCalculateIovaAlignment(sim, ioas, accesses);
}

/** iopt_remove_access: the alignment is recomputed without `access` (WARN if that fails). */
export function ioptRemoveAccess(sim: Sim, ioas: string, access: string): void {
  if (!sim.merged) return;
  const accesses = ioasOf(sim, ioas).accesses.filter((a) => a !== access);
  if (ioptCalculateIovaAlignment(sim, ioas, accesses))
    sim.warn('iopt_remove_access', 'iopt_calculate_iova_alignment(iopt)', { ioas, access });
}

// ---- large pages -------------------------------------------------------------------------------------------

/** iopt_disable_large_pages: refused (-EINVAL) once domains and areas both exist; alignment PAGE_SIZE. */
export function ioptDisableLargePages(sim: Sim, ioas: string): number {
  const io = ioasOf(sim, ioas);
  if (io.disableLargePages) return 0;
  if (io.domains.length > 0 && io.areas.count > 0) return -EINVAL;
  sim.emit({ type: 'LargePagesDisabled', v: 1, ioas, disabled: true });
  const rc = ioptCalculateIovaAlignment(sim, ioas, ioasOf(sim, ioas).accesses);
  if (rc) sim.emit({ type: 'LargePagesDisabled', v: 1, ioas, disabled: false });
  return rc;
}

/** iopt_enable_large_pages: allow large IOPTEs again and lower the alignment (WARN if that fails). */
export function ioptEnableLargePages(sim: Sim, ioas: string): void {
  if (ioasOf(sim, ioas).disableLargePages) sim.emit({ type: 'LargePagesDisabled', v: 1, ioas, disabled: false });
  if (ioptCalculateIovaAlignment(sim, ioas, ioasOf(sim, ioas).accesses))
    sim.warn('iopt_enable_large_pages', 'rc', { ioas });
}

// ---- domains -----------------------------------------------------------------------------------------------

/** Set the area's storage domain and insert its pages_node (the first domain of the IOAS). */
function insertPagesNode(sim: Sim, area: number, pages: number, domain: string): void {
  const a = areaRec(sim, area);
  sim.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain });
  sim.emit({
    type: 'ItreeInserted',
    v: 1,
    tree: { kind: 'domains', pages },
    node: area,
    start: a.firstIndex,
    last: a.lastIndex,
    owner: null,
  });
}

/** iopt_fill_domain: fill every area with pages into `domain`; on failure the domain is left unchanged. */
function ioptFillDomain(sim: Sim, ioas: string, domain: string): number {
  const nextDomainId = ioasOf(sim, ioas).domains.length;
  const ids = areaIdsIn(ioasOf(sim, ioas), 0n, U64_MAX);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    const pages = areaRec(sim, id).pages;
    if (pages === null) continue;
    const rc = ioptAreaFillDomain(sim, id, domain);
    if (rc) {
      for (let j = 0; j < i; j++) {
        const undo = ids[j] as number;
        const upages = areaRec(sim, undo).pages;
        if (upages === null) continue;
        if (nextDomainId === 0) {
          removePagesNode(sim, undo, upages, 'iopt_fill_domain');
          sim.emit({ type: 'AreaStorageDomainSet', v: 1, area: undo, domain: null });
        }
        ioptAreaUnfillDomain(sim, undo, upages, domain);
      }
      return rc;
    }
    if (areaRec(sim, id).storageDomain === null) {
      if (nextDomainId !== 0) sim.warn('iopt_fill_domain', 'iopt->next_domain_id != 0', { ioas, area: id });
      insertPagesNode(sim, id, pages, domain);
    }
  }
  return 0;
}

/**
 * iopt_table_add_domain: attach an allocated domain to the IOAS. WARN/-EEXIST if already there; -EINVAL if
 * its smallest IO page exceeds PAGE_SIZE; -EADDRINUSE if existing areas do not fit the larger alignment, or
 * an area or allowed range lies outside the aperture; -ENOMEM; any fill error. On failure nothing changed.
 */
export function ioptTableAddDomain(sim: Sim, ioas: string, domain: string): number {
  const io = ioasOf(sim, ioas);
  if (io.domains.includes(domain)) {
    sim.warn('iopt_table_add_domain', 'iter_domain == domain', { ioas, domain });
    return -EEXIST;
  }
  const minPage = domainMinPage(sim, domain);
  const alignment = minPage > io.iovaAlignment ? minPage : io.iovaAlignment;
  if (alignment > BigInt(sim.pageSize)) return -EINVAL;
  if (alignment !== io.iovaAlignment) {
    const rc = ioptCheckIovaAlignment(sim, ioas, alignment, io.accesses);
    if (rc) return rc;
  }
  const d = sim.state.domains[domain];
  if (d === undefined) throw new InternalError(`domain ${domain} does not exist`);
  const [apStart, apEnd] = d.aperture;
  let rc = 0;
  if (apStart !== 0n) rc = ioptReserveIova(sim, ioas, 0n, apStart - 1n, domain);
  if (!rc && apEnd !== U64_MAX) rc = ioptReserveIova(sim, ioas, apEnd + 1n, U64_MAX, domain);
  if (!rc) rc = ioptFillDomain(sim, ioas, domain);
  if (rc) {
    ioptRemoveReservedIova(sim, ioas, domain);
    return rc;
  }
  setAlignment(sim, ioas, alignment);
  sim.emit({ type: 'IoasDomainsSet', v: 1, ioas, domains: [...ioasOf(sim, ioas).domains, domain] });
  return 0;
}

/**
 * iopt_unfill_domain: take every area out of the removed domain. With domains left, storage moves to
 * domain 0 and the removed one is only unmapped ([merged] per area; [v3] one unmap per contiguous span of
 * the area tree). As the last domain, each area leaves domains_itree and the domain is unfilled (unpins).
 */
function ioptUnfillDomain(sim: Sim, ioas: string, domain: string): void {
  const fn = 'iopt_unfill_domain';
  const io = ioasOf(sim, ioas);
  const ids = areaIdsIn(io, 0n, U64_MAX);
  if (io.domains.length !== 0) {
    const storage = io.domains[0] as string;
    for (const id of ids) {
      const a = areaRec(sim, id);
      if (a.pages === null) continue;
      if (sim.merged && a.storageDomain === null) sim.testWarn(fn, '!area->storage_domain', { area: id });
      if (a.storageDomain === domain) sim.emit({ type: 'AreaStorageDomainSet', v: 1, area: id, domain: storage });
      if (sim.has('unfill-domain-per-area')) ioptAreaUnmapDomain(sim, id, domain);
    }
    if (!sim.has('unfill-domain-per-area')) {
      for (const span of spans(ioasOf(sim, ioas).areas, 0n, U64_MAX)) {
        if (span.isHole) continue;
        const size = u64(span.last - span.start + 1n);
        iommuUnmapNofail(sim, domain, span.start, size, 'iopt_unfill_domain');
      }
    }
    return;
  }
  for (const id of ids) {
    const a = areaRec(sim, id);
    const pages = a.pages;
    if (pages === null) continue;
    removePagesNode(sim, id, pages, fn);
    if (a.storageDomain !== domain) sim.warn(fn, 'area->storage_domain != domain', { area: id, domain });
    sim.emit({ type: 'AreaStorageDomainSet', v: 1, area: id, domain: null });
    ioptAreaUnfillDomain(sim, id, pages, domain);
  }
}

/**
 * iopt_table_remove_domain: detach `domain`: the tail domain moves into its slot, every area is unfilled
 * from it, its reserved ranges go and the alignment is recomputed. WARN if it is not attached.
 */
export function ioptTableRemoveDomain(sim: Sim, ioas: string, domain: string): void {
  const io = ioasOf(sim, ioas);
  const index = io.domains.indexOf(domain);
  if (index < 0) {
    sim.warn('iopt_table_remove_domain', 'iter_domain != domain', { ioas, domain });
    return;
  }
  const domains = [...io.domains];
  const tail = domains.pop() as string;
  if (index !== domains.length) domains[index] = tail;
  sim.emit({ type: 'IoasDomainsSet', v: 1, ioas, domains });
  ioptUnfillDomain(sim, ioas, domain);
  ioptRemoveReservedIova(sim, ioas, domain);
  if (ioptCalculateIovaAlignment(sim, ioas, ioasOf(sim, ioas).accesses)) {
    sim.warn('iopt_table_remove_domain', 'iopt_calculate_iova_alignment(iopt)', { ioas, domain });
  }
}

/** Which IOAS has `domain` attached, if any. */
export function ioasOfDomain(state: State, domain: string): string | null {
  for (const name of Object.keys(state.ioases).sort()) {
    if (state.ioases[name]?.domains.includes(domain)) return name;
  }
  return null;
}

/**
 * iommufd_ioas_destroy + iopt_destroy_table: unmap everything (WARN on an error other than -ENOENT), drop
 * the allowed ranges, WARN if reservations, domains, accesses or areas remain. The IOAS record itself stays
 * (the event vocabulary has no IOAS destruction); for a teardown that wants the table empty.
 */
export function ioptDestroyTable(sim: Sim, ioas: string): void {
  const r = ioptUnmapAll(sim, ioas);
  if (r.rc && r.rc !== -ENOENT) sim.warn('iommufd_ioas_destroy', 'rc && rc != -ENOENT', { ioas, rc: r.rc });
  // A test build drops the ranges the selftest reserved (ADD_RESERVED, no owner) before its checks.
  if (sim.testBuild) ioptRemoveReservedIova(sim, ioas, null);
  const io = ioasOf(sim, ioas);
  for (const node of itreeEntries(io.allowed)) {
    sim.emit({
      type: 'ItreeRemoved',
      v: 1,
      tree: { kind: 'allowed', ioas },
      node: node.id,
      start: node.start,
      last: node.last,
    });
  }
  const after = ioasOf(sim, ioas);
  if (after.reserved.count) sim.warn('iopt_destroy_table', '!RB_EMPTY_ROOT(&iopt->reserved_itree.rb_root)', { ioas });
  if (after.domains.length) sim.warn('iopt_destroy_table', '!xa_empty(&iopt->domains)', { ioas });
  if (sim.merged && after.accesses.length) sim.warn('iopt_destroy_table', '!xa_empty(&iopt->access_list)', { ioas });
  if (after.areas.count) sim.warn('iopt_destroy_table', '!RB_EMPTY_ROOT(&iopt->area_itree.rb_root)', { ioas });
}

/** True when the area's pages_node is in its pages' domains_itree (for tests and checks). */
export function pagesNodeInTree(state: State, area: number): boolean {
  const a = state.areas[area];
  if (a === undefined || a.pages === null) return false;
  const p = state.pages[a.pages];
  return p !== undefined && itreeFind(p.domainsTree, area, a.firstIndex, a.lastIndex);
}
