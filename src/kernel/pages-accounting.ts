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
import { RunList } from '../machine/sim.js';
import type { Sim } from '../machine/sim.js';
import { isRemote, mergedTest, pagesOf } from './pages-state.js';
import type { PfnReaderUser } from './pages-state.js';
import type { Pages } from '../state/state.js';

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

/**
 * Several iopt_pages_sub_npinned calls of one caller (batch_unpin's, one per PFN run) reported as one
 * NpinnedChanged in version 4 traces. Each call still checks its own WARN on the running value; the delta
 * gathered so far is reported before a WARN so that the finding follows the change it describes.
 */
export class NpinnedSubs extends RunList<{ count: number }> {
  /** One accumulator for a version 4 trace; null (one event per call) in earlier versions. */
  static forCall(sim: Sim, pages: number, fn: string): NpinnedSubs | null {
    if (sim.runsPerEvent === null) return null;
    // Every change joins the one before: the call reports one change, however many runs it unpins.
    const report = (subs: { count: number }[]): void => {
      const total = subs[0]?.count ?? 0;
      if (total !== 0) sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: -total, fn });
    };
    return new NpinnedSubs(sim, sim.runsPerEvent, report, { join: joinSubs });
  }

  /** The pages taken off npinned and not yet reported. */
  get total(): number {
    return this.pending[0]?.count ?? 0;
  }
}

function joinSubs(last: { count: number }, next: { count: number }): boolean {
  last.count += next.count;
  return true;
}

/**
 * iopt_pages_sub_npinned: npinned -= n; [test] WARN on underflow (size_t wrap) or npinned > npages. With
 * `subs` (version 4) the change joins the caller's NpinnedSubs instead of its own event.
 */
export function ioptPagesSubNpinned(sim: Sim, pages: number, n: number, fn: string, subs?: NpinnedSubs | null): void {
  if (n === 0) return;
  const p = pagesOf(sim, pages);
  const acc = subs ?? null;
  const after = p.npinned - (acc?.total ?? 0) - n;
  if (acc === null) sim.emit({ type: 'NpinnedChanged', v: 1, pages, delta: -n, fn });
  else acc.add({ count: n });
  if (after < 0 || after > p.npages) {
    acc?.flush();
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

/**
 * What the charge functions read of a `struct iopt_pages`: its account mode, source task, mm and user, and
 * its two pin counters. For a live pages it is the State record; charge_current of IOMMU_IOAS_CHANGE_PROCESS
 * builds a temporary one on the stack that only names the caller as the source.
 */
export type AccountSource = Pick<
  Pages,
  'accountMode' | 'sourcePid' | 'sourceMm' | 'sourceUid' | 'npinned' | 'lastNpinned'
>;

/**
 * The pages a charge is for. A live pages: its id. charge_current's temporary pages charges the sum of
 * several pages at once: the kernel makes one call (one rlimit check on the sum); the model splits the
 * ledger lines by contributing pages (`shares`, summing to the amount) so that the audit can still tell
 * which pages holds what. The state moves by the same total either way.
 */
export type AccountLedger = number | readonly { pages: number; n: number }[];

export interface AccountTarget {
  p: AccountSource;
  ledger: AccountLedger;
  /** A live pages (last_npinned is written) or charge_current's temporary one (nothing to write). */
  live: boolean;
}

/** The target for a live iopt_pages. */
export function pagesTarget(sim: Sim, pages: number): AccountTarget {
  return { p: pagesOf(sim, pages), ledger: pages, live: true };
}

type Counter = 'user.locked_vm' | 'mm.locked_vm' | 'mm.pinned_vm';

/** The ledger lines of one charge or uncharge of n pages to `counter` of `owner`. */
function emitAccounting(
  sim: Sim,
  t: AccountTarget,
  inc: boolean,
  counter: Counter,
  owner: number,
  n: number,
  fn: string,
): void {
  if (n <= 0) return;
  const type = inc ? 'AccountingCharged' : 'AccountingUncharged';
  if (typeof t.ledger === 'number') {
    sim.emit({ type, v: 1, counter, owner, pages: t.ledger, delta: n, fn });
    return;
  }
  for (const share of t.ledger) {
    if (share.n > 0) sim.emit({ type, v: 1, counter, owner, pages: share.pages, delta: share.n, fn });
  }
}

/** The pages id for findings: a live pages' id, or the first contributor of a temporary one. */
function ledgerPages(t: AccountTarget): number | null {
  return typeof t.ledger === 'number' ? t.ledger : (t.ledger[0]?.pages ?? null);
}

/** incr_user_locked_vm: charge n pages to the source user's locked_vm, -ENOMEM above RLIMIT_MEMLOCK. */
function incrUserLockedVm(sim: Sim, t: AccountTarget, npages: number): number {
  const p = t.p;
  const limit = rlimitMemlockPages(sim, p.sourcePid);
  // [v3] (still in v6) the argument is overwritten with npinned - last_npinned (a size_t: negative wraps).
  const n = sim.has('incr-locked-vm-uses-arg') ? npages : p.npinned - p.lastNpinned;
  const cur = sim.state.users[p.sourceUid]?.lockedVm ?? 0;
  if (n < 0 || cur + n > limit) return -ENOMEM;
  emitAccounting(sim, t, true, 'user.locked_vm', p.sourceUid, n, 'incr_user_locked_vm');
  return 0;
}

/** decr_user_locked_vm: WARN and do nothing if the user has fewer than n pages charged. */
function decrUserLockedVm(sim: Sim, t: AccountTarget, n: number): void {
  const p = t.p;
  const cur = sim.state.users[p.sourceUid]?.lockedVm ?? 0;
  if (cur < n) {
    sim.warn('decr_user_locked_vm', 'atomic_long_read(&pages->source_user->locked_vm) < npages', {
      pages: ledgerPages(t),
      lockedVm: cur,
      npages: n,
    });
    return;
  }
  emitAccounting(sim, t, false, 'user.locked_vm', p.sourceUid, n, 'decr_user_locked_vm');
}

/** __account_locked_vm(mm, n, inc, source_task, bypass_rlim = false), under the mmap write lock. */
function accountLockedVm(sim: Sim, t: AccountTarget, n: number, inc: boolean): number {
  const p = t.p;
  const lockedVm = sim.state.mms[p.sourceMm]?.lockedVm ?? 0;
  if (inc) {
    if (lockedVm + n > rlimitMemlockPages(sim, p.sourcePid)) return -ENOMEM;
    emitAccounting(sim, t, true, 'mm.locked_vm', p.sourceMm, n, '__account_locked_vm');
    return 0;
  }
  // The kernel WARNs once per boot; the model reports every occurrence.
  if (n > lockedVm) sim.warn('__account_locked_vm', 'pages > locked_vm', { mm: p.sourceMm, lockedVm, npages: n });
  emitAccounting(sim, t, false, 'mm.locked_vm', p.sourceMm, n, '__account_locked_vm');
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
function updateMmLockedVm(sim: Sim, t: AccountTarget, n: number, inc: boolean, user: PfnReaderUser | null): number {
  const p = t.p;
  const proposed = sim.has('mm-mode-uncharge-dead-mm');
  let doPut = false;
  if (user !== null && (proposed ? user.locked === 1 : user.locked !== 0)) {
    if (!mmapReadUnlock(sim, p.sourceMm)) {
      sim.violation(
        'unlock_not_held',
        'update_mm_locked_vm',
        `mmap_read_unlock of mm ${p.sourceMm} by a reader that never took the lock (locked == ${user.locked})`,
        { pages: ledgerPages(t), mm: p.sourceMm },
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
  const rc = accountLockedVm(sim, t, n, inc);
  mmapWriteUnlock(sim, p.sourceMm);
  if (doPut) mmput(sim, p.sourceMm, 'update_mm_locked_vm');
  return rc;
}

/**
 * do_update_pinned (iopt_pages_update_pinned since v6.13, exported for IOMMU_IOAS_CHANGE_PROCESS): charge
 * or uncharge n pages in the pages' account mode; on success last_npinned := npinned and source_mm.pinned_vm
 * moves by n (in every mode). On failure nothing else changes.
 */
export function ioptPagesUpdatePinned(
  sim: Sim,
  t: AccountTarget,
  n: number,
  inc: boolean,
  user: PfnReaderUser | null,
): number {
  const mode = t.p.accountMode;
  let rc = 0;
  if (mode === 'user') {
    if (inc) rc = incrUserLockedVm(sim, t, n);
    else decrUserLockedVm(sim, t, n);
  } else if (mode === 'mm') {
    rc = updateMmLockedVm(sim, t, n, inc, user);
  }
  if (rc) return rc;
  const p = t.p;
  // last_npinned is a size_t; a negative model npinned (already WARNed) is recorded as 0. The temporary
  // pages of charge_current has nothing in the State to write.
  if (t.live && typeof t.ledger === 'number') {
    sim.emit({ type: 'LastNpinnedSet', v: 1, pages: t.ledger, value: Math.max(0, p.npinned), fn: 'do_update_pinned' });
  }
  emitAccounting(sim, t, inc, 'mm.pinned_vm', p.sourceMm, n, 'do_update_pinned');
  return 0;
}

/** do_update_pinned on a live iopt_pages. */
export function doUpdatePinned(sim: Sim, pages: number, n: number, inc: boolean, user: PfnReaderUser | null): number {
  return ioptPagesUpdatePinned(sim, pagesTarget(sim, pages), n, inc, user);
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
