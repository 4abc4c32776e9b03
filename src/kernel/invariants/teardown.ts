// SPDX-License-Identifier: GPL-2.0-only
/**
 * The checks once everything was closed: leaked allocations, pages and pins, and counters not back to zero.
 */
import type { Sim } from '../../machine/sim.js';
import type { Pages } from '../../state/state.js';
import { rangeForEachAll } from '../../structures/range-map.js';
import { TEARDOWN_MAX, hex } from './finding.js';
import { mmGone } from './accounting.js';

/**
 * The checks after the replayer closed everything (accesses destroyed, IOASes unmapped, domains
 * detached): iommufd allocations still live and iopt_pages still alive are leaks, any pinned frame is a
 * leaked pin, and every accounting counter must be back to zero (mms whose address space is gone
 * excepted, see the header).
 */
export function checkTeardown(sim: Sim): void {
  const fn = 'teardown';
  const state = sim.state;

  const pages = Object.keys(state.pages)
    .map(Number)
    .sort((a, b) => a - b);
  for (const id of pages) {
    const p = state.pages[id] as Pages;
    sim.violation(
      'leak',
      fn,
      `iopt_pages ${id} (${p.npages} pages, ${p.refs} reference${p.refs === 1 ? '' : 's'}, npinned ${p.npinned}) is still allocated`,
      {
        pages: id,
        refs: p.refs,
        npinned: p.npinned,
      },
    );
  }

  const leaks = Object.values(state.heap)
    .filter((a) => a.owner === 'iommufd' && state.pages[a.id] === undefined)
    .sort((a, b) => a.id - b.id);
  leaks.slice(0, TEARDOWN_MAX).forEach((a) => {
    sim.violation('leak', fn, `${a.tag} (${a.size} bytes, allocation ${a.id}) allocated in ${a.fn} was never freed`, {
      alloc: a.id,
      size: a.size,
      tag: a.tag,
      allocFn: a.fn,
    });
  });
  if (leaks.length > TEARDOWN_MAX) {
    const rest = leaks.slice(TEARDOWN_MAX);
    sim.violation(
      'leak',
      fn,
      `and ${rest.length} more iommufd allocations (${rest.reduce((n, a) => n + a.size, 0)} bytes) were never freed`,
      {
        count: rest.length,
      },
    );
  }

  const pinned: { pfn: number; count: number; pins: number }[] = [];
  rangeForEachAll(state.frames, (start, count, frame) => {
    if (frame.pins <= 0) return;
    const prev = pinned[pinned.length - 1];
    if (prev !== undefined && prev.pfn + prev.count === start) {
      prev.count += count;
      prev.pins += frame.pins * count;
    } else {
      pinned.push({ pfn: start, count, pins: frame.pins * count });
    }
  });
  pinned.slice(0, TEARDOWN_MAX).forEach((r) => {
    sim.violation(
      'pin_leak',
      fn,
      `pfn ${hex(r.pfn)}${r.count > 1 ? ` +${r.count}` : ''} still holds ${r.pins} pin${r.pins === 1 ? '' : 's'} after everything was closed`,
      {
        pfn: r.pfn,
        count: r.count,
        pins: r.pins,
      },
    );
  });
  if (pinned.length > TEARDOWN_MAX) {
    const rest = pinned.slice(TEARDOWN_MAX);
    sim.violation(
      'pin_leak',
      fn,
      `and ${rest.length} more pinned PFN runs (${rest.reduce((n, r) => n + r.count, 0)} pages) after everything was closed`,
      {
        pfn: (rest[0] as { pfn: number }).pfn,
        count: rest.reduce((n, r) => n + r.count, 0),
      },
    );
  }

  for (const key of Object.keys(state.users).sort((a, b) => Number(a) - Number(b))) {
    const u = state.users[Number(key)];
    if (u === undefined || u.lockedVm === 0) continue;
    sim.violation(
      'accounting_mismatch',
      fn,
      `user ${u.uid}: locked_vm is ${u.lockedVm} pages after everything was closed`,
      {
        uid: u.uid,
        counter: 'user.locked_vm',
        value: u.lockedVm,
      },
    );
  }
  for (const key of Object.keys(state.mms).sort((a, b) => Number(a) - Number(b))) {
    const mm = state.mms[Number(key)];
    if (mm === undefined || mmGone(state, mm.id)) continue;
    for (const [counter, value] of [
      ['mm.locked_vm', mm.lockedVm],
      ['mm.pinned_vm', mm.pinnedVm],
    ] as const) {
      if (value === 0) continue;
      sim.violation(
        'accounting_mismatch',
        fn,
        `mm ${mm.id} (process ${mm.pid}): ${counter.slice(3)} is ${value} pages after everything was closed`,
        {
          mm: mm.id,
          counter,
          value,
        },
      );
    }
  }
}
