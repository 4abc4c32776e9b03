// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 3: last_npinned = npinned, and each counter (user.locked_vm, mm.locked_vm, mm.pinned_vm)
 * holds exactly what the pages charged to it. An mm whose address space is gone is exempt (see index.ts).
 */
import type { Pages, State } from '../../state/state.js';
import type { InvariantFinding } from './finding.js';

export const mmGone = (state: State, mm: number): boolean => (state.mms[mm]?.users ?? 0) <= 0;

export function checkAccounting(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const userWant = new Map<number, number>();
  const lockedWant = new Map<number, number>();
  const pinnedWant = new Map<number, number>();
  const add = (m: Map<number, number>, k: number, n: number): void => void m.set(k, (m.get(k) ?? 0) + n);
  for (const p of pages) {
    if (p.accountMode === 'user') add(userWant, p.sourceUid, p.lastNpinned);
    if (p.accountMode === 'mm') add(lockedWant, p.sourceMm, p.lastNpinned);
    add(pinnedWant, p.sourceMm, p.lastNpinned);
    if (p.lastNpinned !== p.npinned && !(p.accountMode === 'mm' && mmGone(state, p.sourceMm))) {
      out.push({
        key: `last_npinned:${p.id}`,
        kind: 'accounting_mismatch',
        detail: `iopt_pages ${p.id}: last_npinned is ${p.lastNpinned} but npinned is ${p.npinned} (${p.accountMode} accounting)`,
        objects: { pages: p.id, npinned: p.npinned, lastNpinned: p.lastNpinned },
      });
    }
  }
  for (const key of Object.keys(state.users).sort((a, b) => Number(a) - Number(b))) {
    const u = state.users[Number(key)];
    if (u === undefined) continue;
    const want = userWant.get(u.uid) ?? 0;
    if (u.lockedVm !== want) {
      out.push({
        key: `user.locked_vm:${u.uid}`,
        kind: 'accounting_mismatch',
        detail: `user ${u.uid}: locked_vm is ${u.lockedVm} pages but its pages in user accounting charged ${want}`,
        objects: { uid: u.uid, lockedVm: u.lockedVm, charged: want },
        // The same surplus or shortfall while other pages come and go is the same breach.
        signature: `${u.lockedVm - want}`,
      });
    }
  }
  for (const key of Object.keys(state.mms).sort((a, b) => Number(a) - Number(b))) {
    const mm = state.mms[Number(key)];
    if (mm === undefined || mmGone(state, mm.id)) continue;
    for (const [counter, have, want] of [
      ['mm.locked_vm', mm.lockedVm, lockedWant.get(mm.id) ?? 0],
      ['mm.pinned_vm', mm.pinnedVm, pinnedWant.get(mm.id) ?? 0],
    ] as const) {
      if (have === want) continue;
      out.push({
        key: `${counter}:${mm.id}`,
        kind: 'accounting_mismatch',
        detail: `mm ${mm.id} (process ${mm.pid}): ${counter.slice(3)} is ${have} pages but its pages charged ${want}`,
        objects: { mm: mm.id, counter, value: have, charged: want },
        signature: `${have - want}`,
      });
    }
  }
}
