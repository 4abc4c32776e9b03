// SPDX-License-Identifier: GPL-2.0-only
/**
 * Run algebra: disjoint ascending index runs (union, difference, size, text) and step functions over
 * ranges, merged in one pass. Everything the checks compare is run-length, never per page.
 */
import type { IntervalTree } from '../../structures/interval-tree.js';
import { itreeEntries } from '../../structures/interval-tree.js';
import { LIST_MAX } from './finding.js';

/** Disjoint, ascending, inclusive index runs [first, last]. */
export type Run = [number, number];

/** The union of a tree's intervals as disjoint runs (overlapping or adjacent nodes merge). */
export function coverageOf(tree: IntervalTree<number>): Run[] {
  const out: Run[] = [];
  for (const e of itreeEntries(tree)) {
    // A node with last < start is reported by the tree's self-check; it covers nothing.
    if (e.last < e.start) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && e.start <= prev[1] + 1) prev[1] = Math.max(prev[1], e.last);
    else out.push([e.start, e.last]);
  }
  return out;
}

/** Do the runs' starts never descend? */
function ascending(runs: readonly Run[]): boolean {
  for (let k = 1; k < runs.length; k++) if ((runs[k] as Run)[0] < (runs[k - 1] as Run)[0]) return false;
  return true;
}

export function unionRuns(a: readonly Run[], b: readonly Run[]): Run[] {
  // A corrupt tree's coverage may not ascend: such lists are sorted first (the merge needs ascending starts).
  if (!ascending(a) || !ascending(b))
    return mergeAscending(
      [...a, ...b].sort((x, y) => x[0] - y[0]),
      [],
    );
  return mergeAscending(a, b);
}

/**
 * The union of two lists that each ascend by start, merged in one pass with no copy to sort. Each step takes
 * the lowest start left, as the sorted concatenation would (equal starts may come in another order, which
 * the merging does not see: the run that follows extends the same `prev` either way).
 */
function mergeAscending(a: readonly Run[], b: readonly Run[]): Run[] {
  const out: Run[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    let r: Run;
    if (y === undefined || (x !== undefined && x[0] <= y[0])) {
      r = x as Run;
      i++;
    } else {
      r = y;
      j++;
    }
    const s = r[0];
    const l = r[1];
    const prev = out[out.length - 1];
    if (prev !== undefined && s <= prev[1] + 1) prev[1] = Math.max(prev[1], l);
    else out.push([s, l]);
  }
  return out;
}

/** a − b. */
export function subtractRuns(a: readonly Run[], b: readonly Run[]): Run[] {
  const out: Run[] = [];
  let j = 0;
  for (const [s0, l] of a) {
    let s = s0;
    while (j < b.length && (b[j] as Run)[1] < s) j++;
    let k = j;
    while (s <= l && k < b.length && (b[k] as Run)[0] <= l) {
      const [bs, bl] = b[k] as Run;
      if (bs > s) out.push([s, bs - 1]);
      s = Math.max(s, bl + 1);
      k++;
    }
    if (s <= l) out.push([s, l]);
  }
  return out;
}

export const runsSize = (runs: readonly Run[]): number => runs.reduce((n, [s, l]) => n + l - s + 1, 0);

export function listRuns(runs: readonly Run[]): string {
  const shown = runs.slice(0, LIST_MAX).map(([s, l]) => (s === l ? `${s}` : `${s}..${l}`));
  return shown.join(', ') + (runs.length > LIST_MAX ? ` and ${runs.length - LIST_MAX} more` : '');
}

/** A value over [start, end) (end exclusive). Lists are ascending and, for a sound state, disjoint. */
export interface Step<K extends number | bigint, V> {
  start: K;
  end: K;
  value: V;
}

/**
 * Walk two step lists together: `fn` gets each piece of their union where either has a value, with both
 * values (undefined where a list has none), ascending.
 */
export function zipSteps<K extends number | bigint, A, B>(
  as: readonly Step<K, A>[],
  bs: readonly Step<K, B>[],
  fn: (start: K, end: K, a: A | undefined, b: B | undefined) => void,
): void {
  let i = 0;
  let j = 0;
  let a = as[0];
  let b = bs[0];
  if (a === undefined && b === undefined) return;
  let pos: K = a === undefined ? (b as Step<K, B>).start : b === undefined || a.start < b.start ? a.start : b.start;
  for (;;) {
    while (a !== undefined && a.end <= pos) a = as[++i];
    while (b !== undefined && b.end <= pos) b = bs[++j];
    if (a === undefined && b === undefined) return;
    const aIn = a !== undefined && a.start <= pos;
    const bIn = b !== undefined && b.start <= pos;
    // The next boundary: the end of what covers pos, or the start of what comes next.
    let next: K | undefined;
    if (a !== undefined) next = aIn ? a.end : a.start;
    if (b !== undefined) {
      const nb = bIn ? b.end : b.start;
      if (next === undefined || nb < next) next = nb;
    }
    const to = next as K;
    if (aIn || bIn) fn(pos, to, aIn ? (a as Step<K, A>).value : undefined, bIn ? (b as Step<K, B>).value : undefined);
    pos = to;
  }
}
