// SPDX-License-Identifier: GPL-2.0-only
/**
 * IOMMU_IOAS_CHANGE_PROCESS (drivers/iommu/iommufd/ioas.c, commit 829ed626499c, v6.13; [up:ioas-change-process],
 * -ENOTTY before): the exec()-based live update of a VMM. Every iopt_pages reachable from an IOAS of the
 * context gets the caller as its source task, mm and user, and the pinned-page charges move with it.
 *
 * iommufd_ioas_change_process: -EINVAL unless every area of every IOAS is file-backed (user-VA pages could
 * not be re-pinned through the new mm). Then, for each pages need_charge_update() selects, last_npinned is
 * added to the amount per account mode and set to 0 (a pages reached through several areas counts once);
 * the code relies on npinned == last_npinned at rest. charge_current() charges the sums to the caller (a
 * temporary pages naming it as source; on failure it unwinds the modes already charged), and on failure
 * every pages gets last_npinned = npinned back. Otherwise each pages is uncharged from its old source with
 * iopt_pages_update_pinned(pages, npinned, false, NULL), which also restores last_npinned; a failure there
 * is a WARN_ON and becomes the ioctl's result, but change_mm() has moved the pages anyway.
 *
 * In MM accounting mode the old uncharge is update_mm_locked_vm on the old source_mm, which needs
 * mmget_not_zero: once the old process is gone (the exec() flow this ioctl was written for) it fails, the
 * ioctl WARNs and returns -EINVAL, the old mm keeps its charge and last_npinned stays 0 with npinned N
 * (docs/findings/mm-mode-stale-last-npinned.md, consequence 3). [proposed mm-mode-uncharge-dead-mm] the
 * uncharge needs no mm_users reference and cannot fail.
 *
 * Deviations: the locking (ioas_creation_lock, every IOAS's iova_rwsem in object order) is not modelled:
 * one task runs at a time. IOASes are visited in the State's order of names, not by object id; only the
 * order of events depends on it. The race with iopt_map_file_pages fixed in 2026 (an area whose pages is
 * not set yet) cannot happen here: an area is only seen with its pages. get_task_struct/put_task_struct
 * and get_uid/free_uid have no counters in the model (a process record and a user record live for good).
 */
import { ENOTTY, EINVAL } from '../machine/errno.js';
import { mmdrop, mmgrab } from '../machine/mm.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import type { AccountMode } from '../events/events.js';
import { ACCOUNT_MODES } from '../events/events.js';
import { areaIdsIn } from './io-pagetable.js';
import { U64_MAX } from './iova-alloc.js';
import { ioptPagesUpdatePinned, pagesTarget } from './pages-accounting.js';
import type { AccountTarget } from './pages-accounting.js';
import { pagesOf } from './pages-state.js';

const FN = 'iommufd_ioas_change_process';

/** The caller as a source: its process, mm and user (current->group_leader, current->mm, current_user()). */
interface Caller {
  pid: string;
  mm: number;
  uid: number;
}

function callerOf(sim: Sim): Caller {
  const { pid, mm } = sim.current;
  if (pid === null || mm === null) throw new InternalError(`${FN}: an ioctl needs a process as its caller`);
  const proc = sim.state.processes[pid];
  if (proc === undefined) throw new InternalError(`${FN}: no process ${pid}`);
  return { pid, mm, uid: proc.uid };
}

/** The pages of every area of every IOAS of `ctx` (for_each_ioas_area), one entry per area. */
function pagesOfAreas(sim: Sim, ctx: string): (number | null)[] {
  const out: (number | null)[] = [];
  for (const io of Object.values(sim.state.ioases)) {
    if (io.ctx !== ctx) continue;
    for (const id of areaIdsIn(io, 0n, U64_MAX)) out.push(sim.state.areas[id]?.pages ?? null);
  }
  return out;
}

/** need_charge_update: does the pages' charge live somewhere else than with the caller? */
function needChargeUpdate(sim: Sim, pages: number, caller: Caller): boolean {
  const p = pagesOf(sim, pages);
  switch (p.accountMode) {
    case 'none':
      return false;
    case 'mm':
      return p.sourceMm !== caller.mm;
    case 'user':
      // USER mode also charges mm->pinned_vm, so a new mm alone needs the update.
      return p.sourceUid !== caller.uid || p.sourceMm !== caller.mm;
  }
}

/** The charge_current temporary pages of one account mode: the caller as source, nothing pinned. */
function callerTarget(caller: Caller, mode: AccountMode, shares: { pages: number; n: number }[]): AccountTarget {
  return {
    p: {
      accountMode: mode,
      sourcePid: caller.pid,
      sourceMm: caller.mm,
      sourceUid: caller.uid,
      npinned: 0,
      lastNpinned: 0,
    },
    ledger: shares,
    live: false,
  };
}

/**
 * charge_current: charge each mode's sum to the caller, in mode order; on a failure the modes charged
 * before it are uncharged again (their errors ignored, as the kernel does) and the error returned.
 */
function chargeCurrent(sim: Sim, caller: Caller, shares: Map<AccountMode, { pages: number; n: number }[]>): number {
  const sum = (mode: AccountMode): number => (shares.get(mode) ?? []).reduce((a, s) => a + s.n, 0);
  for (let i = 0; i < ACCOUNT_MODES.length; i++) {
    const mode = ACCOUNT_MODES[i] as AccountMode;
    if (sum(mode) === 0) continue;
    const rc = ioptPagesUpdatePinned(sim, callerTarget(caller, mode, shares.get(mode) ?? []), sum(mode), true, null);
    if (!rc) continue;
    for (let j = i - 1; j >= 0; j--) {
      const back = ACCOUNT_MODES[j] as AccountMode;
      if (sum(back) === 0) continue;
      ioptPagesUpdatePinned(sim, callerTarget(caller, back, shares.get(back) ?? []), sum(back), false, null);
    }
    return rc;
  }
  return 0;
}

/** change_mm: the pages now names the caller as its source (mmgrab the new mm, mmdrop the old one). */
function changeMm(sim: Sim, pages: number, caller: Caller): void {
  const oldMm = pagesOf(sim, pages).sourceMm;
  mmgrab(sim, caller.mm, 'change_mm');
  mmdrop(sim, oldMm, 'change_mm');
  sim.emit({
    type: 'PagesSourceChanged',
    v: 1,
    pages,
    sourcePid: caller.pid,
    sourceMm: caller.mm,
    sourceUid: caller.uid,
    fn: 'change_mm',
  });
}

/** IOMMU_IOAS_CHANGE_PROCESS on context `ctx`, issued by the current task: 0 or a negative errno. */
export function iommufdIoasChangeProcess(sim: Sim, ctx: string): number {
  if (!sim.has('ioas-change-process')) return -ENOTTY;
  const caller = callerOf(sim);
  const areas = pagesOfAreas(sim, ctx);
  for (const pages of areas) {
    if (pages === null || pagesOf(sim, pages).file === undefined) return -EINVAL;
  }
  const list = areas.filter((p): p is number => p !== null);

  // Count what each mode moves; last_npinned := 0 so that a pages reached twice counts once.
  const shares = new Map<AccountMode, { pages: number; n: number }[]>();
  for (const pages of list) {
    if (!needChargeUpdate(sim, pages, caller)) continue;
    const p = pagesOf(sim, pages);
    const n = p.lastNpinned;
    const mode = p.accountMode;
    shares.set(mode, [...(shares.get(mode) ?? []), { pages, n }]);
    sim.emit({ type: 'LastNpinnedSet', v: 1, pages, value: 0, fn: FN });
  }

  let rc = chargeCurrent(sim, caller, shares);
  if (rc) {
    for (const pages of list) {
      sim.emit({ type: 'LastNpinnedSet', v: 1, pages, value: pagesOf(sim, pages).npinned, fn: FN });
    }
    return rc;
  }

  for (const pages of list) {
    if (needChargeUpdate(sim, pages, caller)) {
      // Uncharge the old source (this also restores last_npinned).
      const r = ioptPagesUpdatePinned(sim, pagesTarget(sim, pages), pagesOf(sim, pages).npinned, false, null);
      if (r) {
        sim.warn(FN, 'r', { pages, errno: r });
        rc = r;
      }
    }
    changeMm(sim, pages, caller);
  }
  return rc;
}
