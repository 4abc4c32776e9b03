// SPDX-License-Identifier: GPL-2.0-only
/**
 * Replacing a window of stored entries by new ones, both ascending by key, writing only what differs: the
 * one algorithm behind the range map's segments and the xarray's runs, which differ only in what an entry
 * holds and how it is stored.
 */

/** How a store keeps its entries: what applyWindow calls for each difference. */
export interface WindowEdits<O, N> {
  /** True when `n` at the same key as `o` holds something else. */
  differs(o: O, n: N): boolean;
  /** Rewrites `o` in place to hold what `n` holds (same key). */
  update(o: O, n: N): void;
  remove(o: O): void;
  add(n: N): void;
}

/**
 * Replaces `olds` by `news` (both ascending by `keyOf`, `news` canonical). Entries at the same key are
 * changed first, in place, before any remove or add moves nodes of the store around; an entry kept at the
 * same key with the same contents is not touched.
 */
export function applyWindow<O, N>(
  olds: readonly O[],
  news: readonly N[],
  keyOf: (entry: O | N) => number,
  edits: WindowEdits<O, N>,
): void {
  let i = 0;
  let j = 0;
  while (i < olds.length && j < news.length) {
    const o = olds[i] as O;
    const n = news[j] as N;
    const ko = keyOf(o);
    const kn = keyOf(n);
    if (ko === kn) {
      if (edits.differs(o, n)) edits.update(o, n);
      i++;
      j++;
    } else if (ko < kn) i++;
    else j++;
  }
  i = 0;
  j = 0;
  while (i < olds.length || j < news.length) {
    const o = olds[i];
    const n = news[j];
    if (o !== undefined && n !== undefined && keyOf(o) === keyOf(n)) {
      i++;
      j++;
    } else if (o !== undefined && (n === undefined || keyOf(o) < keyOf(n))) {
      edits.remove(o);
      i++;
    } else if (n !== undefined) {
      edits.add(n);
      j++;
    }
  }
}
