// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page pinning (spec section 6): the FOLL_PIN side of mm/gup.c as iommufd uses it. pin_user_pages_fast
 * pins from the caller's own mm, pin_user_pages_remote from another (the caller holds its mmap lock and an
 * mm_users reference); unpin_user_pages and unpin_user_page_range_dirty_lock drop the pins.
 *
 * A pin is a count on the frame (`frames[pfn].pins`): a pinned frame is never freed, even once no page
 * table maps it; the reducer frees it when its last pin drops and nothing maps it.
 *
 * Pin walk: pages in order, stopping at the first that cannot be pinned (no VMA; a write to a read-only VMA
 * without FOLL_FORCE). The result is the number pinned, or -EFAULT when not even the first page was. Before
 * a page is pinned, a write pin (FOLL_WRITE) of a page that is not exclusive (mapped more than once) breaks
 * copy-on-write, and so does a FOLL_LONGTERM pin when GUP unshares ([up:gup-unshare-flags]); the VA then
 * maps the new PFN and the new PFN is pinned; a page of a shared VMA is pinned where it is. With the trace setting gup_unshare_read_pins every read-only
 * pin unshares (Linux 5.19+ gup_must_unshare, long-term or not): host mm behaviour, the same on every
 * variant, so it is a setting of the run and not a fix flag; off by default so version 1 traces replay as
 * they always did. Quirks: npages 0 pins nothing and returns 0; a range whose end
 * wraps 2^64 returns 0 before the 2023 mm fix (config gupZeroOnOverflow), -EOVERFLOW after it.
 *
 * Events: one PagesPinned / PagesUnpinned per contiguous PFN run (version 4: one PagesPinnedRuns /
 * PagesUnpinnedRuns per call, split at sim.runsPerEvent runs). Unpinning a frame that holds no pin is a
 * refcount underflow: a 'double_unpin' violation per contiguous run of such PFNs, and no unpin event for
 * them (the pin count stays at zero).
 *
 * Deviations: no migration of FOLL_LONGTERM pages out of movable zones (the PFN never changes on pin
 * except by COW); every page is present (mmap populates), so a fault never allocates; no mmap lock and no
 * `locked` out-parameter (the caller models those).
 */
import { xaRunAt } from '../structures/xarray.js';
import { rangeElementAt, rangeSegments } from '../structures/range-map.js';
import { InternalError } from '../lib/errors.js';
import { EFAULT, EOVERFLOW } from './errno.js';
import { breakCow } from './memory.js';
import { RunList } from './sim.js';
import type { Sim } from './sim.js';
import { hex } from '../lib/format.js';

/** The FOLL_* flags iommufd passes. */
export interface GupFlags {
  write: boolean;
  longterm: boolean;
  force: boolean;
}

/** The caller's `struct page **` array, as PFNs; a pin writes slots[at + i] for the i-th page pinned. */
export interface PageSlots {
  slots: number[];
}

/** pin_user_pages_fast: pin from the current task's own mm (a kernel thread has none: -EFAULT). */
export function pinUserPagesFast(
  sim: Sim,
  uptr: bigint,
  npages: number,
  flags: GupFlags,
  out: PageSlots,
  at: number,
): number {
  const mm = sim.current.mm;
  if (mm === null) return npages === 0 ? 0 : -EFAULT;
  return pinPages(sim, mm, uptr, npages, flags, out, at, 'pin_user_pages_fast');
}

/** pin_user_pages_remote: pin from `mm`, which the caller keeps alive with an mm_users reference. */
export function pinUserPagesRemote(
  sim: Sim,
  mm: number,
  uptr: bigint,
  npages: number,
  flags: GupFlags,
  out: PageSlots,
  at: number,
): number {
  return pinPages(sim, mm, uptr, npages, flags, out, at, 'pin_user_pages_remote');
}

/**
 * Whether a read-only FOLL_PIN unshares a non-exclusive anonymous page whatever its other flags: what
 * gup_must_unshare() does since Linux 5.19 (the mm of every variant, v3 included: it was posted on 6.1-rc),
 * on with the trace header setting `gup_unshare_read_pins`. Off, only long-term pins unshare
 * ([up:gup-unshare-flags]), as every trace of version 1 replayed before the setting existed.
 */
function readPinsUnshare(sim: Sim): boolean {
  return sim.state.config.gupUnshareReadPins === true;
}

function pinPages(
  sim: Sim,
  mm: number,
  uptr: bigint,
  npages: number,
  flags: GupFlags,
  out: PageSlots,
  at: number,
  fn: string,
): number {
  const m = sim.state.mms[mm];
  if (m === undefined) throw new InternalError(`${fn}: no mm ${mm}`);
  if (npages <= 0) return 0;
  const page = BigInt(sim.pageSize);
  const start = uptr - (uptr % page);
  if (start + BigInt(npages) * page >= 1n << 64n) return sim.state.config.gupZeroOnOverflow ? 0 : -EOVERFLOW;

  const first = Number(start / page);
  // Version 4 gathers the runs of the call into PagesPinnedRuns events: nothing in the walk reads a pin
  // count, so holding them back until a COW (or the end) changes no decision.
  const runs = pinnedRuns(sim, fn, mm);
  const unshare = readPinsUnshare(sim) || (flags.longterm && sim.has('gup-unshare-flags'));
  const mayCow = flags.write || unshare;
  // The walk goes a piece at a time: pages of one VMA, one page-table run and one frame record (the same
  // `maps` for all) take the same decisions page by page, so they are pinned as one run.
  let pinned = 0;
  while (pinned < npages) {
    const vpn = first + pinned;
    const vmaSeg = rangeElementAt(m.vmas, vpn);
    if (vmaSeg === undefined || vpn >= vmaSeg.start + vmaSeg.count) break;
    const vma = vmaSeg.value;
    if (flags.write && !vma.writable && !flags.force) break;
    const ptRun = xaRunAt(m.pt, vpn);
    if (ptRun === undefined) {
      throw new InternalError(`${fn}: mm ${mm} VMA page ${hex(vpn)} has no PFN`);
    }
    let pfn = ptRun.pfn + (vpn - ptRun.index);
    let n = Math.min(npages - pinned, vmaSeg.start + vmaSeg.count - vpn, ptRun.index + ptRun.count - vpn);
    if (mayCow && vma.shared !== true) {
      const frame = rangeElementAt(sim.state.frames, pfn);
      if (frame === undefined || pfn >= frame.start + frame.count) n = 1;
      else if (frame.value.maps > 1) {
        runs.flush();
        pfn = breakCow(sim, mm, vpn, fn);
        n = 1;
      } else n = Math.min(n, frame.start + frame.count - pfn);
    }
    runs.add([pfn, n]);
    const slots = out.slots;
    for (let i = 0, slot = at + pinned; i < n; i++) slots[slot + i] = pfn + i;
    pinned += n;
  }
  runs.flush();
  return pinned > 0 ? pinned : -EFAULT;
}

/** A [pfn, count] run grows by the next when their PFNs are contiguous. */
function joinPfnRuns(last: [number, number], next: [number, number]): boolean {
  if (last[0] + last[1] !== next[0]) return false;
  last[1] += next[1];
  return true;
}

function pageCount(runs: readonly [number, number][]): number {
  let n = 0;
  for (const run of runs) n += run[1];
  return n;
}

/** The runs one pin call pinned: PagesPinnedRuns lists (version 4) or one PagesPinned per run. */
function pinnedRuns(sim: Sim, fn: string, mm: number): RunList<[number, number]> {
  const perEvent = sim.runsPerEvent;
  const report =
    perEvent === null
      ? (runs: [number, number][]) => {
          for (const [pfn, count] of runs) sim.emit({ type: 'PagesPinned', v: 1, pfn, count, fn, mm });
        }
      : (runs: [number, number][]) =>
          sim.emit({ type: 'PagesPinnedRuns', v: 1, runs, npages: pageCount(runs), fn, mm });
  return new RunList(sim, perEvent ?? 1, report, { join: joinPfnRuns });
}

/**
 * The runs one unpin call has dropped but not yet reported, for version 4's PagesUnpinnedRuns events. A run
 * is reported before anything reads the pin counts it changes: before a violation, and before a later run
 * of the same call that overlaps it is looked at.
 */
export class UnpinRuns extends RunList<[number, number]> {
  /** A list for one call of `fn` in a version 4 trace; null (one event per run) in earlier versions. */
  static forCall(sim: Sim, dirty: boolean, fn: string): UnpinRuns | null {
    if (sim.runsPerEvent === null) return null;
    return new UnpinRuns(sim, sim.runsPerEvent, (runs) =>
      sim.emit({ type: 'PagesUnpinnedRuns', v: 1, runs, npages: pageCount(runs), dirty, fn }),
    );
  }

  /** Report the pending runs first when [pfn, pfn + count) overlaps one of them. */
  before(pfn: number, count: number): void {
    if (this.pending.some(([p, n]) => p < pfn + count && pfn < p + n)) this.flush();
  }
}

/**
 * Drop one pin from each PFN of [pfn, pfn + count), emitting the unpin for the pinned runs (or adding them
 * to `list`) and a 'double_unpin' violation for the runs that hold no pin.
 */
function unpinRun(sim: Sim, pfn: number, count: number, dirty: boolean, fn: string, list: UnpinRuns | null): void {
  list?.before(pfn, count);
  const pieces: { pfn: number; count: number; pinned: boolean }[] = [];
  const push = (at: number, n: number, pinned: boolean): void => {
    const last = pieces[pieces.length - 1];
    if (last !== undefined && last.pinned === pinned && last.pfn + last.count === at) last.count += n;
    else pieces.push({ pfn: at, count: n, pinned });
  };
  let pos = pfn;
  for (const seg of rangeSegments(sim.state.frames, pfn, count)) {
    if (seg.start > pos) push(pos, seg.start - pos, false);
    push(seg.start, seg.count, seg.value.pins > 0);
    pos = seg.start + seg.count;
  }
  if (pos < pfn + count) push(pos, pfn + count - pos, false);
  for (const p of pieces) {
    if (p.pinned) {
      if (list === null) sim.emit({ type: 'PagesUnpinned', v: 1, pfn: p.pfn, count: p.count, dirty, fn });
      else list.add([p.pfn, p.count]);
    } else {
      list?.flush();
      sim.violation('double_unpin', fn, `unpin of ${p.count} page(s) at pfn ${sim.pfnText(p.pfn)} that hold no pin`, {
        pfn: p.pfn,
        count: p.count,
      });
    }
  }
}

/** unpin_user_pages: one pin dropped per entry, in order (an entry may repeat: each drops one pin). */
export function unpinUserPages(sim: Sim, pfns: readonly number[], fn: string): void {
  const list = UnpinRuns.forCall(sim, false, fn);
  let i = 0;
  while (i < pfns.length) {
    const first = pfns[i] as number;
    let n = 1;
    while (i + n < pfns.length && pfns[i + n] === first + n) n++;
    unpinRun(sim, first, n, false, fn, list);
    i += n;
  }
  list?.flush();
}

/**
 * unpin_user_page_range_dirty_lock: drop one pin from each of `count` PFNs from `pfn`, marking them dirty.
 * A caller that unpins several ranges in a row passes one `list` (UnpinRuns.forCall) and flushes it.
 */
export function unpinUserPageRangeDirtyLock(
  sim: Sim,
  pfn: number,
  count: number,
  dirty: boolean,
  fn: string,
  list: UnpinRuns | null = null,
): void {
  if (count <= 0) return;
  unpinRun(sim, pfn, count, dirty, fn, list);
}
