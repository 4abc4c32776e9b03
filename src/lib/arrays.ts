// SPDX-License-Identifier: GPL-2.0-only
/**
 * Folds over arrays of any length. Spreading an array into arguments (`Math.max(...xs)`, `out.push(...xs)`)
 * puts every element on the call stack and throws RangeError past about 100k elements, which a long run's
 * ledger or a long report easily reaches; eslint.config.js forbids that spread, these take its place.
 */

/** The largest of `values`, or `floor` when none is larger (an empty array gives `floor`). */
export function maxOf(values: Iterable<number>, floor = -Infinity): number {
  let max = floor;
  for (const v of values) if (v > max) max = v;
  return max;
}

/** The smallest of `values`, or `ceiling` when none is smaller (an empty array gives `ceiling`). */
export function minOf(values: Iterable<number>, ceiling = Infinity): number {
  let min = ceiling;
  for (const v of values) if (v < min) min = v;
  return min;
}

/** Appends every item to `target` (in place) and returns it. */
export function pushAll<T>(target: T[], items: Iterable<T>): T[] {
  for (const item of items) target.push(item);
  return target;
}

/**
 * `items` with [from, to) replaced by `replacement`: `items` itself, changed in place, when the length stays
 * (no allocation on the common path of a splice that rewrites runs one for one), else a new array.
 */
export function replaceSlice<T>(items: T[], from: number, to: number, replacement: readonly T[]): T[] {
  if (replacement.length === to - from) {
    for (let k = 0; k < replacement.length; k++) items[from + k] = replacement[k] as T;
    return items;
  }
  const out = items.slice(0, from);
  for (const r of replacement) out.push(r);
  for (let k = to; k < items.length; k++) out.push(items[k] as T);
  return out;
}
