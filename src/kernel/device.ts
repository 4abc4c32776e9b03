// SPDX-License-Identifier: GPL-2.0-only
/**
 * The in-kernel access kAPI of drivers/iommu/iommufd/device.c (spec section 14, "Access kAPI"): how a
 * driver without its own IOMMU domain (a VFIO mdev, the selftest's access object) reads, writes and pins
 * the memory behind an IOAS.
 *
 * An access is attached to one IOAS and joins its access list; with `needs_pin_pages` its alignment is
 * PAGE_SIZE ([merged]; [v3] has no per-access alignment). Pin, unpin and rw walk the IOVA range one
 * contiguous area piece at a time (iopt_for_each_contig_area) and hand each piece to the PFN layer
 * (iopt_area_add_access / iopt_area_remove_access / iopt_pages_rw_access) at the piece's page indexes or
 * start byte. A range that is not fully covered by areas with pages is -ENOENT; pin undoes the pieces it
 * already added.
 *
 * Unmap contract: before an area with accesses can go, io_pagetable marks it prevent_access and calls
 * iommufd_access_notify_unmap, which runs every attached access's unmap callback; the driver must unpin
 * everything it holds in the range before returning. The only driver of this model is the selftest's
 * (selftest-access.ts), so its callback is called directly.
 *
 * Vocabulary: `iova`/`length` in bytes (bigint, u64 arithmetic, `last` inclusive), `index` in pages.
 * Locks (access->ioas_lock, iova_rwsem read, pages mutex) are a contract, not modelled state.
 *
 * Deviations: the access object is not heap-tracked (no State field names its allocation); its
 * allocation is a fault point. Creation and attach are one call, as in the merged v6.2 kAPI
 * (iommufd_access_create took the IOAS id); a failed attach destroys the access again.
 */
import { EINVAL, ENOENT, ENOMEM, EOVERFLOW, EPERM } from '../machine/errno.js';
import type { PageSlots } from '../machine/gup.js';
import type { Ptr } from '../machine/heap.js';
import { ptrAdd } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import type { Access, Area, State } from '../state/state.js';
import { U64_MASK, ioptAreaIovaToIndex, ioptAreaStartByte } from './area-geometry.js';
import type { ContigIter } from './io-pagetable.js';
import {
  ioptAddAccess,
  ioptAreaContigDone,
  ioptAreaContigInit,
  ioptAreaContigNext,
  ioptRemoveAccess,
} from './io-pagetable.js';
import { ioptAreaAddAccess, ioptAreaRemoveAccess, ioptPagesRwAccess } from './pages.js';
import type { AccessOps } from './access-ops.js';
import { callAccessUnmap, clearAccessOps, setAccessOps } from './access-ops.js';

/** sizeof(struct page *): the stride of the caller's out_pages array. */
const PAGE_PTR_BYTES = 8;

export interface AccessRwFlags {
  write: boolean;
  /** IOMMUFD_ACCESS_RW_KTHREAD: the caller is a kernel thread that may borrow the source mm. */
  kthread: boolean;
}

function accessOf(sim: Sim, access: string): Access {
  const a = sim.state.accesses[access];
  if (a === undefined) throw new InternalError(`access ${access} does not exist`);
  return a;
}

/** The live state, read afresh at every step of a walk (the steps emit events between reads). */
const live =
  (sim: Sim): (() => State) =>
  () =>
    sim.state;

/** iopt_area_contig_is_aligned: the piece starts on a page, and ends on one unless it is the last piece. */
function contigIsAligned(sim: Sim, iter: ContigIter, area: Area): boolean {
  const page = sim.pageSize;
  if (ioptAreaStartByte(sim, area, iter.curIova) % page !== 0) return false;
  if (!ioptAreaContigDone(live(sim), iter) && ioptAreaStartByte(sim, area, area.lastIova) % page !== page - 1)
    return false;
  return true;
}

/** check_area_prot: a write needs IOMMU_WRITE on the area, anything else IOMMU_READ. */
function checkAreaProt(area: Area, write: boolean): boolean {
  return write ? area.write : area.read;
}

/**
 * Remove one access user from every contiguous area piece of [iova, lastIova]. Returns
 * iopt_area_contig_done: whether the range was fully covered.
 */
function removeAccessPieces(sim: Sim, ioas: string, iova: bigint, lastIova: bigint, internal: boolean): boolean {
  const state = live(sim);
  const iter = ioptAreaContigInit(state, ioas, iova, lastIova);
  for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter)) {
    const last = lastIova < area.lastIova ? lastIova : area.lastIova;
    ioptAreaRemoveAccess(
      sim,
      area.id,
      ioptAreaIovaToIndex(sim, area, iter.curIova),
      ioptAreaIovaToIndex(sim, area, last),
      internal,
    );
  }
  return ioptAreaContigDone(state, iter);
}

/**
 * iommufd_access_create + attach: a new access of `ioas` ([merged] aligned to PAGE_SIZE when it pins
 * pages). -ENOENT for an IOAS that does not exist, -ENOMEM when the object allocation fails; -EADDRINUSE when an existing area does not fit the
 * access's alignment (the access is destroyed again).
 */
export function iommufdAccessCreate(
  sim: Sim,
  access: string,
  ioas: string,
  needsPinPages: boolean,
  ops: AccessOps,
): number {
  // iommufd_get_ioas: no such object.
  if (sim.state.ioases[ioas] === undefined) return -ENOENT;
  if (sim.faultPoint('kmalloc', 'iommufd_object_alloc')) return -ENOMEM;
  sim.emit({ type: 'AccessCreated', v: 1, access, ioas, needsPinPages });
  setAccessOps(sim, access, ops);
  const rc = ioptAddAccess(sim, ioas, access);
  if (rc) {
    clearAccessOps(sim, access);
    sim.emit({ type: 'AccessDestroyed', v: 1, access });
    return rc;
  }
  return 0;
}

/**
 * iommufd_access_create_internal + iommufd_access_attach_internal ([up:area-num-locks]): an access with no
 * ops and no context reference, aligned to PAGE_SIZE, attached to `ioas`. Its pins lock the areas they go
 * through and iommufd_access_notify_unmap passes it by. -ENOMEM (object allocation) or iopt_add_access's
 * -EADDRINUSE (the access is destroyed again).
 */
export function iommufdAccessCreateInternal(sim: Sim, access: string, ioas: string): number {
  if (sim.faultPoint('kmalloc', 'iommufd_object_alloc')) return -ENOMEM;
  sim.emit({ type: 'AccessCreated', v: 1, access, ioas, needsPinPages: true, internal: true });
  const rc = ioptAddAccess(sim, ioas, access);
  if (rc) {
    sim.emit({ type: 'AccessDestroyed', v: 1, access });
    return rc;
  }
  return 0;
}

/**
 * iommufd_access_destroy (iommufd_access_destroy_object): leave the IOAS's access list (the alignment is
 * recomputed without it) and free the access. The driver must have unpinned everything first.
 */
export function iommufdAccessDestroy(sim: Sim, access: string): void {
  const a = accessOf(sim, access);
  if (a.ioas !== null) ioptRemoveAccess(sim, a.ioas, access);
  clearAccessOps(sim, access);
  sim.emit({ type: 'AccessDestroyed', v: 1, access });
}

/**
 * iommufd_access_replace ([up:access-replace]): move an attached access to `ioas`. -ENOENT when the access
 * is not attached or `ioas` does not exist; 0 without change when it is already there; else the new IOAS
 * takes the access first (iopt_add_access: its alignment may refuse, and then nothing changed), the
 * driver's unmap callback over the whole space drops every pin it holds (it unpins through the old IOAS,
 * which is still the access's ioas_unpin), and only then the old IOAS lets the access go.
 */
export function iommufdAccessReplace(sim: Sim, access: string, ioas: string): number {
  const current = accessOf(sim, access).ioas;
  if (current === null) return -ENOENT;
  if (sim.state.ioases[ioas] === undefined) return -ENOENT;
  if (current === ioas) return 0;
  const rc = ioptAddAccess(sim, ioas, access);
  if (rc) return rc;
  // [up:area-num-locks] an internal access has no unmap callback: its owner unpins it itself.
  if (accessOf(sim, access).internal !== true) callAccessUnmap(sim, access, 0n, U64_MASK);
  ioptRemoveAccess(sim, current, access);
  sim.emit({ type: 'AccessIoasReplaced', v: 1, access, from: current, to: ioas });
  return 0;
}

/**
 * iommufd_access_pin_pages: pin [iova, iova + length) for the access and write one page handle per page
 * to `out` (slot 0 = the first page), `outPtr` being the C pointer to slot 0. Every piece must start on a
 * page (and end on one unless it is the last). -EINVAL (length 0, prevent_access, misaligned piece;
 * [merged, test] WARN for an access that cannot pin), -EOVERFLOW, -ENOENT (not attached or not fully
 * mapped), -EPERM (area protection, read-only pages), or the PFN layer's error. On failure every piece
 * already added is removed again.
 */
export function iommufdAccessPinPages(
  sim: Sim,
  access: string,
  iova: bigint,
  length: bigint,
  out: PageSlots,
  outPtr: Ptr,
  write: boolean,
): number {
  const fn = 'iommufd_access_pin_pages';
  const a = accessOf(sim, access);
  // iommufd_access_is_internal: its pins lock the areas (lock_area).
  const internal = a.internal === true;
  // Access alignment is PAGE_SIZE exactly when the ops need pin_pages; the selftest's ops always unmap.
  if (sim.merged && sim.testBuild && !a.needsPinPages) {
    sim.warn(fn, 'access->iova_alignment != PAGE_SIZE || !access->ops->unmap', { access });
    return -EINVAL;
  }
  if (length === 0n) return -EINVAL;
  let lastIova = iova + length - 1n;
  if (lastIova > U64_MASK) return -EOVERFLOW;
  const ioas = a.ioas;
  if (ioas === null) return -ENOENT;

  const state = live(sim);
  const iter = ioptAreaContigInit(state, ioas, iova, lastIova);
  let slot = 0;
  let rc = 0;
  for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter)) {
    const last = lastIova < area.lastIova ? lastIova : area.lastIova;
    const lastIndex = ioptAreaIovaToIndex(sim, area, last);
    const index = ioptAreaIovaToIndex(sim, area, iter.curIova);
    if (area.preventAccess || !contigIsAligned(sim, iter, area)) {
      rc = -EINVAL;
      break;
    }
    if (!checkAreaProt(area, write)) {
      rc = -EPERM;
      break;
    }
    // The PFN layer writes the piece's handles from its own slot 0; they land at out_pages + slot.
    const piece: PageSlots = { slots: [] };
    const at = ptrAdd(outPtr, slot * PAGE_PTR_BYTES);
    rc = ioptAreaAddAccess(sim, area.id, index, lastIndex, piece, at, write, internal);
    piece.slots.forEach((pfn, i) => {
      out.slots[slot + i] = pfn;
    });
    if (rc) break;
    slot += lastIndex - index + 1;
  }
  if (!rc && !ioptAreaContigDone(state, iter)) rc = -ENOENT;
  if (!rc) return 0;

  // err_remove: undo the pieces before the one that failed (or before the hole).
  if (iova < iter.curIova) {
    lastIova = iter.curIova - 1n;
    removeAccessPieces(sim, ioas, iova, lastIova, internal);
  }
  return rc;
}

/**
 * iommufd_access_unpin_pages: undo iommufd_access_pin_pages of exactly this range. WARN (and do nothing)
 * for length 0, a wrapping range or a detached access; WARN if the range is not fully covered by areas.
 */
export function iommufdAccessUnpinPages(sim: Sim, access: string, iova: bigint, length: bigint): void {
  const fn = 'iommufd_access_unpin_pages';
  if (length === 0n) {
    sim.warn(fn, '!length', { access, iova });
    return;
  }
  const lastIova = iova + length - 1n;
  if (lastIova > U64_MASK) {
    sim.warn(fn, 'check_add_overflow(iova, length - 1, &last_iova)', { access, iova, length });
    return;
  }
  const a = accessOf(sim, access);
  const ioas = a.ioas;
  if (ioas === null) {
    sim.warn(fn, '!access->ioas_unpin', { access });
    return;
  }
  if (!removeAccessPieces(sim, ioas, iova, lastIova, a.internal === true)) {
    sim.warn(fn, '!iopt_area_contig_done(&iter)', { access, ioas, iova, length });
  }
}

/**
 * iommufd_access_rw: copy `data` to (write) or from (read) [iova, iova + data.length) of the access's IOAS,
 * piece by piece, without leaving pins behind. -EINVAL (length 0, prevent_access), -EOVERFLOW, -ENOENT
 * (detached, or not fully mapped), -EPERM (area protection), or iopt_pages_rw_access's error. A read fills
 * `data` in place; pieces before a failure have been copied.
 */
export function iommufdAccessRw(
  sim: Sim,
  access: string,
  iova: bigint,
  data: Uint8Array,
  flags: AccessRwFlags,
): number {
  if (data.length === 0) return -EINVAL;
  const lastIova = iova + BigInt(data.length) - 1n;
  if (lastIova > U64_MASK) return -EOVERFLOW;
  const ioas = accessOf(sim, access).ioas;
  if (ioas === null) return -ENOENT;

  const state = live(sim);
  const iter = ioptAreaContigInit(state, ioas, iova, lastIova);
  let rc = -EINVAL;
  let at = 0;
  for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter)) {
    const last = lastIova < area.lastIova ? lastIova : area.lastIova;
    const bytes = Number(last - iter.curIova + 1n);
    if (area.preventAccess) return -EINVAL;
    if (!checkAreaProt(area, flags.write)) return -EPERM;
    const pages = area.pages;
    if (pages === null) throw new InternalError(`iommufd_access_rw: contiguous area ${area.id} without pages`);
    rc = ioptPagesRwAccess(sim, pages, ioptAreaStartByte(sim, area, iter.curIova), data.subarray(at, at + bytes), {
      write: flags.write,
      kthread: flags.kthread,
    });
    if (rc) return rc;
    at += bytes;
  }
  if (!ioptAreaContigDone(state, iter)) rc = -ENOENT;
  return rc;
}
