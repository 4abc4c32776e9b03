// SPDX-License-Identifier: GPL-2.0-only
/**
 * The coverage of an iopt_pages (held.ts, heldCover) for the incremental checker: the kept runs, redone
 * over the index windows an op touched only. Coverage inside a window is what the tree's nodes that meet
 * the window give, clipped; runs are canonical (adjacent runs are one), so splicing the window's runs in,
 * merged at its two edges, gives what a from-scratch walk gives.
 *
 * Invariant 2 (pinned_pfns keys = access_itree coverage) is answered the same way when it held after the
 * last op: it still holds if the xarray and the access coverage agree inside every touched window.
 * Otherwise the caller runs heldCover, so every finding's text is the full checker's.
 */
import { replaceSlice } from '../../lib/arrays.js';
import type { Pages } from '../../state/state.js';
import type { IntervalTree } from '../../structures/interval-tree.js';
import { itreeIterFirst, itreeIterNext } from '../../structures/interval-tree.js';
import { xaForEachRun } from '../../structures/xarray.js';
import type { InvariantFinding } from './finding.js';
import { npinnedFinding } from './held.js';
import type { PagesMemo } from './memo.js';
import type { Run } from './runs.js';
import { runsSize, unionRuns } from './runs.js';

export type HeldKept = NonNullable<PagesMemo['held']>;

/** Which of the pages' structures changed: the access tree, the domains tree, the xarray. */
export interface HeldChange {
  access: boolean;
  domains: boolean;
  xa: boolean;
}

function pushRun(out: Run[], s: number, l: number): void {
  const prev = out[out.length - 1];
  if (prev !== undefined && s <= prev[1] + 1) {
    if (l > prev[1]) prev[1] = l;
  } else out.push([s, l]);
}

/** The coverage of a tree inside [a, b], as coverageOf gives it for the whole tree, clipped. */
export function coverageWithin(tree: IntervalTree<number>, a: number, b: number): Run[] {
  const out: Run[] = [];
  for (let e = itreeIterFirst(tree, a, b); e !== null; e = itreeIterNext(tree, e, a, b)) {
    if (e.last < e.start) continue;
    pushRun(out, Math.max(e.start, a), Math.min(e.last, b));
  }
  return out;
}

/** The first run of `runs` that ends at or after `a`. */
function firstEndingFrom(runs: readonly Run[], a: number): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((runs[mid] as Run)[1] >= a) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** `runs` clipped to [a, b]. */
export function clipRuns(runs: readonly Run[], a: number, b: number): Run[] {
  const out: Run[] = [];
  for (let k = firstEndingFrom(runs, a); k < runs.length; k++) {
    const r = runs[k] as Run;
    const s = r[0];
    const l = r[1];
    if (s > b) break;
    out.push([Math.max(s, a), Math.min(l, b)]);
  }
  return out;
}

/**
 * Replace [a, b] of canonical `runs` by `fresh` (runs inside [a, b]), merging at the edges: `runs` itself,
 * changed in place, when the number of runs stays, else a new list.
 */
export function spliceRuns(runs: Run[], a: number, b: number, fresh: readonly Run[]): Run[] {
  const lo = firstEndingFrom(runs, a - 1);
  let hi = lo;
  while (hi < runs.length && (runs[hi] as Run)[0] <= b + 1) hi++;
  const rebuilt: Run[] = [];
  const left = runs[lo];
  if (left !== undefined && lo < hi && left[0] < a) pushRun(rebuilt, left[0], a - 1);
  for (let k = 0; k < fresh.length; k++) pushRun(rebuilt, (fresh[k] as Run)[0], (fresh[k] as Run)[1]);
  const right = runs[hi - 1];
  if (right !== undefined && lo < hi && right[1] > b) pushRun(rebuilt, b + 1, right[1]);
  return replaceSlice(runs, lo, hi, rebuilt);
}

/** The indexes the xarray holds inside [a, b], as runs (adjacent entries are one run, whatever their PFNs). */
function xaCoverWithin(p: Pages, a: number, b: number): Run[] {
  const out: Run[] = [];
  xaForEachRun(p.xa, a, b, (index, _pfn, count) => pushRun(out, index, index + count - 1));
  return out;
}

const sameRuns = (x: readonly Run[], y: readonly Run[]): boolean =>
  x.length === y.length && x.every((r, k) => r[0] === (y[k] as Run)[0] && r[1] === (y[k] as Run)[1]);

/**
 * `before` (what heldCover gave after the last op, its runs taken over) updated over the merged index
 * windows `wins`, inside which every change of the pages' trees and xarray lies; undefined when heldCover
 * must run (invariant 2 was broken, or is broken inside a window).
 */
export function updateHeld(p: Pages, before: HeldKept, wins: readonly Run[], change: HeldChange): HeldKept | undefined {
  // A sound pages has no findings: its key is built only when there is one to look for.
  const xaKey = before.findings.length > 0 ? `xarray:${p.id}` : null;
  const xaFinding = xaKey === null ? undefined : before.findings.find((f) => f.key === xaKey);
  const accessOrXa = change.access || change.xa;
  if (xaFinding !== undefined && accessOrXa) return undefined;
  let { access, domains, cover } = before;
  for (let w = 0; w < wins.length; w++) {
    const a = (wins[w] as Run)[0];
    const b = (wins[w] as Run)[1];
    if (change.access) access = spliceRuns(access, a, b, coverageWithin(p.accessTree, a, b));
    if (change.domains) domains = spliceRuns(domains, a, b, coverageWithin(p.domainsTree, a, b));
    const accessHere = clipRuns(access, a, b);
    if (change.access || change.domains)
      cover = spliceRuns(cover, a, b, unionRuns(accessHere, clipRuns(domains, a, b)));
    if (accessOrXa && !sameRuns(xaCoverWithin(p, a, b), accessHere)) return undefined;
  }
  const findings: InvariantFinding[] = [];
  const npinned = npinnedFinding(p, cover, runsSize(cover));
  if (npinned !== null) findings.push(npinned);
  if (xaFinding !== undefined) findings.push(xaFinding);
  return { access, domains, cover, findings };
}
