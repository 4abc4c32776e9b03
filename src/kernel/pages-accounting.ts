// SPDX-License-Identifier: GPL-2.0-only
/**
 * Pin counting and accounting of drivers/iommu/iommufd/pages.c (spec section 8): `npinned` (pins held),
 * `last_npinned` (pins already charged), and the three account modes: NONE (only mm.pinned_vm moves), USER
 * (user.locked_vm against RLIMIT_MEMLOCK, the io_uring way) and MM (mm.locked_vm under the mmap lock, the
 * VFIO way). Charging happens after pinning; a failed charge is undone by the caller's unwind.
 *
 * Events: NpinnedChanged, LastNpinnedSet, AccountingCharged / AccountingUncharged (counter, owner = uid or
 * mm id, pages id, kernel function). Variants: incr-locked-vm-uses-arg; the [merged, test] charge fault point;
 * the proposed mm-mode-uncharge-dead-mm (docs/findings/mm-mode-stale-last-npinned.md).
 */
import type { PageSlots } from '../machine/gup.js';
import { unpinUserPages } from '../machine/gup.js';
import { ENOMEM, EINVAL } from '../machine/errno.js';
import { mmgetNotZero, mmput, rlimitMemlockPages } from '../machine/mm.js';
import { mmapReadUnlock, mmapWriteLock, mmapWriteUnlock } from '../machine/mmap-lock.js';
import type { Sim } from '../machine/sim.js';
import { isRemote, mergedTest, pagesOf } from './pages-state.js';
import type { PfnReaderUser } from './pages-state.js';

// ---- npinned (spec 8) ------------------------------------------------------------------------------------

/** iopt_pages_add_npinned: npinned += n; [test] WARN on overflow or npinned > npages. */
export function ioptPagesAddNpinned(sim: Sim, pages: number, n: number, fn: string): void {
  if (n === 0) return;
  const p = pagesOf(sim, pages);
  const after = p.npinned + n;
  sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: n, fn });
  if (after > p.npages) {
    sim.testWarn('iopt_pages_add_npinned', 'rc || pages->npinned > pages->npages', {
      pages,
      npinned: after,
      npages: p.npages,
    });
  }
}

/** iopt_pages_sub_npinned: npinned -= n; [test] WARN on underflow (size_t wrap) or npinned > npages. */
export function ioptPagesSubNpinned(sim: Sim, pages: number, n: number, fn: string): void {
  if (n === 0) return;
  const p = pagesOf(sim, pages);
  const after = p.npinned - n;
  sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: -n, fn });
  if (after < 0 || after > p.npages) {
    sim.testWarn('iopt_pages_sub_npinned', 'rc || pages->npinned > pages->npages', {
      pages,
      npinned: after,
      npages: p.npages,
    });
  }
}

/** iopt_pages_err_unpin: unpin the handles for [start, last] and take them off npinned. */
export function ioptPagesErrUnpin(
  sim: Sim,
  pages: number,
  start: number,
  last: number,
  list: PageSlots,
  at: number,
): void {
  const n = last - start + 1;
  unpinUserPages(sim, handles(list, at, n), 'iopt_pages_err_unpin');
  ioptPagesSubNpinned(sim, pages, n, 'iopt_pages_err_unpin');
}

/** n handles from slot `at`; a slot never written reads as PFN 0 (garbage). */
export function handles(list: PageSlots, at: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(list.slots[at + i] ?? 0);
  return out;
}

// ---- accounting (spec 8) ---------------------------------------------------------------------------------

/** incr_user_locked_vm: charge n pages to the source user's locked_vm, -ENOMEM above RLIMIT_MEMLOCK. */
function incrUserLockedVm(sim: Sim, pages: number, npages: number): number {
  const p = pagesOf(sim, pages);
  const limit = rlimitMemlockPages(sim, p.sourcePid);
  // [v3] (still in v6) the argument is overwritten with npinned - last_npinned (a size_t: negative wraps).
  const n = sim.has('incr-locked-vm-uses-arg') ? npages : p.npinned - p.lastNpinned;
  const cur = sim.state.users[p.sourceUid]?.lockedVm ?? 0;
  if (n < 0 || cur + n > limit) return -ENOMEM;
  if (n > 0) {
    sim.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: p.sourceUid,
      pages,
      delta: n,
      fn: 'incr_user_locked_vm',
    });
  }
  return 0;
}

/** decr_user_locked_vm: WARN and do nothing if the user has fewer than n pages charged. */
function decrUserLockedVm(sim: Sim, pages: number, n: number): void {
  const p = pagesOf(sim, pages);
  const cur = sim.state.users[p.sourceUid]?.lockedVm ?? 0;
  if (cur < n) {
    sim.warn('decr_user_locked_vm', 'atomic_long_read(&pages->source_user->locked_vm) < npages', {
      pages,
      lockedVm: cur,
      npages: n,
    });
    return;
  }
  if (n > 0) {
    sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: p.sourceUid,
      pages,
      delta: n,
      fn: 'decr_user_locked_vm',
    });
  }
}

/** __account_locked_vm(mm, n, inc, source_task, bypass_rlim = false), under the mmap write lock. */
function accountLockedVm(sim: Sim, pages: number, n: number, inc: boolean): number {
  const p = pagesOf(sim, pages);
  const lockedVm = sim.state.mms[p.sourceMm]?.lockedVm ?? 0;
  if (inc) {
    if (lockedVm + n > rlimitMemlockPages(sim, p.sourcePid)) return -ENOMEM;
    if (n > 0) {
      sim.emit({
        type: 'AccountingCharged',
        v: 1,
        counter: 'mm.locked_vm',
        owner: p.sourceMm,
        pages,
        delta: n,
        fn: '__account_locked_vm',
      });
    }
    return 0;
  }
  // The kernel WARNs once per boot; the model reports every occurrence.
  if (n > lockedVm) sim.warn('__account_locked_vm', 'pages > locked_vm', { mm: p.sourceMm, lockedVm, npages: n });
  if (n > 0) {
    sim.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'mm.locked_vm',
      owner: p.sourceMm,
      pages,
      delta: n,
      fn: '__account_locked_vm',
    });
  }
  return 0;
}

/**
 * update_mm_locked_vm: the VFIO-compatible accounting on source_mm.locked_vm, under the mmap write lock. A
 * reader that holds the mmap read lock drops it first; the test is "locked is non-zero", so a reader at -1
 * (no lock, no mm reference) takes that branch too: its mmap_read_unlock corrupts the rwsem and the
 * mmap_write_lock right after can never be granted, so the task hangs there (mmapWriteLock throws TaskHung).
 * Otherwise a remote mm is pinned with mmget_not_zero, which fails (-EINVAL) once its process is gone.
 *
 * [proposed mm-mode-uncharge-dead-mm] only a reader at 1 unlocks, and an uncharge needs no mm_users
 * reference: the mm_struct stays valid through the mmgrab() iopt_alloc_pages took, and its mmap lock and
 * locked_vm can be used while mm_users is 0 (as account_locked_vm callers that only mmgrab() do), so an
 * uncharge cannot fail. A charge still needs a live address space.
 */
function updateMmLockedVm(sim: Sim, pages: number, n: number, inc: boolean, user: PfnReaderUser | null): number {
  const p = pagesOf(sim, pages);
  const proposed = sim.has('mm-mode-uncharge-dead-mm');
  let doPut = false;
  if (user !== null && (proposed ? user.locked === 1 : user.locked !== 0)) {
    if (!mmapReadUnlock(sim, p.sourceMm)) {
      sim.violation(
        'unlock_not_held',
        'update_mm_locked_vm',
        `mmap_read_unlock of mm ${p.sourceMm} by a reader that never took the lock (locked == ${user.locked})`,
        { pages, mm: p.sourceMm },
      );
    }
    user.locked = 0;
  } else if (
    (user === null || (user.upages === null && user.ufolios === null)) &&
    isRemote(sim, p) &&
    (inc || !proposed)
  ) {
    if (!mmgetNotZero(sim, p.sourceMm, 'update_mm_locked_vm')) return -EINVAL;
    doPut = true;
  }
  mmapWriteLock(sim, p.sourceMm, 'update_mm_locked_vm');
  const rc = accountLockedVm(sim, pages, n, inc);
  mmapWriteUnlock(sim, p.sourceMm);
  if (doPut) mmput(sim, p.sourceMm, 'update_mm_locked_vm');
  return rc;
}

/**
 * do_update_pinned: charge or uncharge n pages in the pages' account mode; on success last_npinned :=
 * npinned and source_mm.pinned_vm moves by n (in every mode). On failure nothing else changes.
 */
export function doUpdatePinned(sim: Sim, pages: number, n: number, inc: boolean, user: PfnReaderUser | null): number {
  const mode = pagesOf(sim, pages).accountMode;
  let rc = 0;
  if (mode === 'user') {
    if (inc) rc = incrUserLockedVm(sim, pages, n);
    else decrUserLockedVm(sim, pages, n);
  } else if (mode === 'mm') {
    rc = updateMmLockedVm(sim, pages, n, inc, user);
  }
  if (rc) return rc;
  const p = pagesOf(sim, pages);
  // last_npinned is a size_t; a negative model npinned (already WARNed) is recorded as 0.
  sim.emit({ type: 'LastNpinnedSet', v: 1, pages, value: Math.max(0, p.npinned), fn: 'do_update_pinned' });
  if (n > 0) {
    sim.emit({
      type: inc ? 'AccountingCharged' : 'AccountingUncharged',
      v: 1,
      counter: 'mm.pinned_vm',
      owner: p.sourceMm,
      pages,
      delta: n,
      fn: 'do_update_pinned',
    });
  }
  return 0;
}

/** update_unpinned: uncharge what was unpinned since the last charge; the result is ignored. */
export function updateUnpinned(sim: Sim, pages: number): void {
  const p = pagesOf(sim, pages);
  if (p.npinned > p.lastNpinned) {
    sim.warn('update_unpinned', 'pages->npinned > pages->last_npinned', {
      pages,
      npinned: p.npinned,
      lastNpinned: p.lastNpinned,
    });
    return;
  }
  if (p.npinned === p.lastNpinned) return;
  doUpdatePinned(sim, pages, p.lastNpinned - p.npinned, false, null);
}

/** pfn_reader_user_update_pinned: apply the difference between npinned and last_npinned. */
export function pfnReaderUserUpdatePinned(sim: Sim, user: PfnReaderUser | null, pages: number): number {
  const p = pagesOf(sim, pages);
  if (p.npinned === p.lastNpinned) return 0;
  if (p.npinned < p.lastNpinned) return doUpdatePinned(sim, pages, p.lastNpinned - p.npinned, false, user);
  if (mergedTest(sim) && sim.faultPoint('charge', 'pfn_reader_user_update_pinned')) return -ENOMEM;
  return doUpdatePinned(sim, pages, p.npinned - p.lastNpinned, true, user);
}
