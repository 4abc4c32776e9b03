// SPDX-License-Identifier: GPL-2.0-only
/**
 * The XArray of `iopt_pages::pinned_pfns` (kernel-model.md section 3): page index -> PFN value entry.
 *
 * Stored run-length: a BTree keyed by `index` of runs `{index, pfn, count}`, each meaning index + i -> pfn + i
 * for i < count, so that a guest of huge pages costs one run per physically contiguous extent, not one entry
 * per page. Entries are only ever values (PFNs), as in iommufd.
 *
 * Invariants (canonical form): runs are disjoint and non-empty; two runs are merged iff they are
 * index-adjacent and PFN-contiguous (`a.index + a.count === b.index && a.pfn + a.count === b.pfn`), so
 * adjacent runs that stay separate have a PFN gap; `count` is the number of present entries; `digest` is the
 * sum of hashParts([index, pfn, count]) over runs. Equal contents give equal runs and digests, whatever
 * the history.
 *
 * Vocabulary: `index` counts pages; `last` is inclusive (as in the kernel's xa_for_each_range), `count`
 * gives a length.
 *
 * Deviations from the kernel's xarray: no node memory and so no -ENOMEM here (the caller's fault plan models
 * a failing store); a store returns how many entries it overwrote, where xa_store returns the old entry.
 * Writes touch only the runs that change, so immer patches show the real difference. xaStore and xaErase mark
 * the xarray written (write-marks.ts), the xarray itself and not only its tree: a run may change in place.
 */

import { btreeCreate, btreeDelete, btreeEntriesFrom, btreeFloorValue, btreeForEachFrom, btreeSet } from './btree.js';
import type { BTree } from './btree.js';
import { applyWindow } from './sorted-window.js';
import { markWritten } from './write-marks.js';
import { digestAdd3, digestAddTriple, digestRemove3, zeroDigest } from '../lib/digest.js';
import type { Digest } from '../lib/digest.js';

export interface XaRun {
  index: number;
  pfn: number;
  count: number;
}

export interface Xarray {
  runs: BTree<number, XaRun>;
  digest: Digest;
  /** Present entries. */
  count: number;
}

export function xaCreate(): Xarray {
  return { runs: btreeCreate<number, XaRun>(), digest: zeroDigest(), count: 0 };
}

/** The PFN stored at `index`. */
export function xaLoad(xa: Xarray, index: number): number | undefined {
  const run = btreeFloorValue(xa.runs, index);
  return run !== undefined && index < run.index + run.count ? run.pfn + (index - run.index) : undefined;
}

/**
 * Call `fn` on each present run of [first, last], clipped, ascending, until it returns false. The
 * allocation-free counterpart of xaRuns.
 */
export function xaForEachRun(
  xa: Xarray,
  first: number,
  last: number,
  fn: (index: number, pfn: number, count: number) => boolean | void,
): void {
  if (last < first) return;
  const head = btreeFloorValue(xa.runs, first);
  if (head !== undefined && head.index < first && head.index + head.count > first) {
    const n = Math.min(head.index + head.count - 1, last) - first + 1;
    if (fn(first, head.pfn + (first - head.index), n) === false) return;
  }
  btreeForEachFrom(xa.runs, first, (index, run) => {
    if (index > last) return false;
    return fn(index, run.pfn, Math.min(index + run.count - 1, last) - index + 1);
  });
}

/** The present runs of [first, last], clipped, ascending, produced lazily (fresh objects). */
export function* xaRuns(xa: Xarray, first: number, last: number): Generator<XaRun> {
  if (last < first) return;
  const head = btreeFloorValue(xa.runs, first);
  if (head !== undefined && head.index < first && head.index + head.count > first) {
    const count = Math.min(head.index + head.count - 1, last) - first + 1;
    yield { index: first, pfn: head.pfn + (first - head.index), count };
  }
  for (const [index, run] of btreeEntriesFrom(xa.runs, first)) {
    if (index > last) return;
    yield { index, pfn: run.pfn, count: Math.min(index + run.count - 1, last) - index + 1 };
  }
}

/** Number of present entries in [first, last]. */
export function xaPresent(xa: Xarray, first: number, last: number): number {
  let n = 0;
  xaForEachRun(xa, first, last, (_index, _pfn, count) => {
    n += count;
  });
  return n;
}

/** The lowest present index in [first, last]. */
export function xaFirstPresent(xa: Xarray, first: number, last: number): number | undefined {
  let found: number | undefined;
  xaForEachRun(xa, first, last, (index) => {
    found = index;
    return false;
  });
  return found;
}

/** The lowest absent index in [first, last]. */
export function xaFirstAbsent(xa: Xarray, first: number, last: number): number | undefined {
  if (last < first) return undefined;
  let pos = first;
  const head = btreeFloorValue(xa.runs, first);
  if (head !== undefined && head.index + head.count > first) pos = head.index + head.count;
  // Runs that stay separate may still be index-adjacent (a PFN gap): walk them.
  btreeForEachFrom(xa.runs, pos, (index, run) => {
    if (index !== pos || pos > last) return false;
    pos = index + run.count;
    return true;
  });
  return pos <= last ? pos : undefined;
}

/** Append a run, merging it into the previous one when they are index-adjacent and PFN-contiguous. */
function pushRun(news: XaRun[], index: number, pfn: number, count: number): void {
  const prev = news[news.length - 1];
  if (prev !== undefined && prev.index + prev.count === index && prev.pfn + prev.count === pfn) {
    prev.count += count;
    return;
  }
  news.push({ index, pfn, count });
}

/** Replace the stored runs `olds` by `news` (both ascending, `news` canonical), writing only what differs. */
function applyRuns(xa: Xarray, olds: XaRun[], news: XaRun[]): void {
  const digest = xa.digest;
  applyWindow<XaRun, XaRun>(olds, news, (run) => run.index, {
    differs: (o, n) => o.pfn !== n.pfn || o.count !== n.count,
    update: (o, n) => {
      digestRemove3(digest, o.index, o.pfn, o.count);
      digestAdd3(digest, n.index, n.pfn, n.count);
      xa.count += n.count - o.count;
      o.pfn = n.pfn;
      o.count = n.count;
    },
    remove: (o) => {
      digestRemove3(digest, o.index, o.pfn, o.count);
      xa.count -= o.count;
      btreeDelete(xa.runs, o.index);
    },
    add: (n) => {
      digestAdd3(digest, n.index, n.pfn, n.count);
      xa.count += n.count;
      btreeSet(xa.runs, n.index, n);
    },
  });
}

/**
 * The stored runs overlapping [index, end), ascending; with `touching`, also the runs that end at `index` or
 * start at `end` (the neighbours a store may merge with).
 */
function windowOf(xa: Xarray, index: number, end: number, touching: boolean): XaRun[] {
  const olds: XaRun[] = [];
  const lo = touching ? index - 1 : index;
  const head = btreeFloorValue(xa.runs, lo);
  if (head !== undefined && head.index < index && head.index + head.count > lo) olds.push(head);
  const hi = touching ? end : end - 1;
  btreeForEachFrom(xa.runs, index, (at, run) => {
    if (at > hi) return false;
    olds.push(run);
    return true;
  });
  return olds;
}

/**
 * Rewrite [index, end) as `inner` says, keeping what lies outside the range; returns how many entries of the
 * range were present before.
 */
function rewrite(xa: Xarray, index: number, end: number, touching: boolean, inner: (news: XaRun[]) => void): number {
  const olds = windowOf(xa, index, end, touching);
  const news: XaRun[] = [];
  let present = 0;
  for (const o of olds) {
    const s = Math.max(o.index, index);
    const e = Math.min(o.index + o.count, end);
    if (e > s) present += e - s;
  }
  // Only the first run can start before the range and only the last can reach past it.
  const head = olds[0];
  if (head !== undefined && head.index < index) {
    pushRun(news, head.index, head.pfn, Math.min(head.index + head.count, index) - head.index);
  }
  inner(news);
  const tail = olds[olds.length - 1];
  if (tail !== undefined && tail.index + tail.count > end) {
    const s = Math.max(tail.index, end);
    pushRun(news, s, tail.pfn + (s - tail.index), tail.index + tail.count - s);
  }
  applyRuns(xa, olds, news);
  return present;
}

/**
 * Store pfn..pfn+count-1 at index..index+count-1, overwriting what is there; returns how many of those
 * entries were present before (the kernel's callers WARN when that is not 0).
 */
export function xaStore(xa: Xarray, index: number, pfn: number, count = 1): number {
  if (count <= 0) return 0;
  markWritten(xa);
  return rewrite(xa, index, index + count, true, (news) => pushRun(news, index, pfn, count));
}

/** Erase the entries index..index+count-1; returns how many of them were present. */
export function xaErase(xa: Xarray, index: number, count = 1): number {
  if (count <= 0) return 0;
  markWritten(xa);
  return rewrite(xa, index, index + count, false, () => {});
}

/** Digest of the runs recomputed from scratch (for checks and tests). */
export function xaDigest(xa: Xarray): Digest {
  const d = zeroDigest();
  btreeForEachFrom(xa.runs, undefined, (index, run) => {
    // Remembered per run while it stays the same: a self-check after every op hashes only the changed runs.
    digestAddTriple(d, run, index, run.pfn, run.count);
  });
  return d;
}

/** Self-check: null if the runs are disjoint, canonical, and agree with `count` and `digest`. */
export function xaCheck(xa: Xarray): string | null {
  let err: string | null = null;
  let prevEnd = -Infinity;
  let prevPfnEnd = -Infinity;
  let present = 0;
  btreeForEachFrom(xa.runs, undefined, (index, run) => {
    if (run.index !== index) err = `run at ${index} says it starts at ${run.index}`;
    else if (!Number.isInteger(run.count) || run.count <= 0) err = `run at ${index} has count ${run.count}`;
    else if (index < prevEnd) err = `run at ${index} overlaps the previous one`;
    else if (index === prevEnd && run.pfn === prevPfnEnd) err = `run at ${index} should merge with the previous one`;
    if (err !== null) return false;
    present += run.count;
    prevEnd = index + run.count;
    prevPfnEnd = run.pfn + run.count;
    return true;
  });
  if (err !== null) return err;
  if (present !== xa.count) return `count is ${xa.count} but runs hold ${present} entries`;
  const d = xaDigest(xa);
  if (d.lo !== xa.digest.lo || d.hi !== xa.digest.hi) return 'digest differs from the digest of the runs';
  return null;
}
