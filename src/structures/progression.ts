// SPDX-License-Identifier: GPL-2.0-only
/**
 * Progressions: how a structure stores a long row of equal-shaped entries in one object.
 *
 * A structure's *elements* are its canonical entries as its digest counts them (an xarray run of
 * PFN-contiguous pages, a range map segment of one value, a domain's mapping piece). On a guest of 4 KiB
 * pages whose physical frames are never adjacent every element is a single page, so a structure with one
 * object per element would cost memory per page. An *atom* is what the structure stores instead: elements
 * e_0 .. e_{n-1} (n >= 1) where e_{i+1} is e_i shifted by one constant step in its key and in every numeric
 * field, with the same span and the same other fields. A 16 GiB guest laid out frame, gap, frame, gap ... is
 * then one atom per structure, not four million.
 *
 * Canonical form: the atoms are the greedy grouping of the elements in key order: an atom takes the next
 * element while it continues the atom's step (a single element takes any next element of its shape, which
 * fixes the step). Equal contents therefore give equal atoms, whatever the history, and a stored sequence
 * is canonical exactly when no atom's first element continues the atom before it (`canonicalBreak`).
 *
 * What changes with a write is local: the atoms before the written window keep their grouping (greedy
 * goes left to right), and after it the grouping agrees with the stored one again as soon as a stored atom
 * starts a new group (`regroup`). Digests stay sums over elements, so regrouping hashes nothing; only
 * elements that are really added or removed are hashed.
 */

/** What a structure tells `regroup` about its atoms. */
export interface ProgressionOps<A> {
  /** Elements in `a` (at least 1). */
  size(a: A): number;
  /**
   * How many leading elements of `b` (which follows `a` in key order) continue `a`'s group: 0 when `b`'s
   * first element does not, else 1, or size(b) when `b`'s own step is the step of the grown group. Must not
   * answer for a `b` that the structure would merge with `a` into one element: those are one element
   * already.
   */
  continues(a: A, b: A): number;
  /** A new atom: `a` followed by the first `k` elements of `b` (k >= 1, as `continues` said). */
  concat(a: A, b: A, k: number): A;
  /** A new atom: `b` without its first `k` elements (0 < k < size(b)). */
  drop(b: A, k: number): A;
}

/** The result of `regroup`: the canonical atoms, and how many of the stored atoms after the window they replace. */
export interface Regrouped<A> {
  groups: A[];
  replaced: number;
}

/**
 * The canonical grouping of `atoms` (in key order; the first must start a group of the canonical form:
 * a stored atom, or what is left of one before the written window), continued into the stored atoms after
 * the window (`after(0)`, `after(1)`, ... in key order, undefined past the end) until a stored atom starts a
 * group of its own again. Everything from that atom on is canonical as stored.
 */
export function regroup<A>(
  ops: ProgressionOps<A>,
  atoms: readonly A[],
  after: (i: number) => A | undefined,
): Regrouped<A> {
  const groups: A[] = [];
  let open: A | undefined;
  const feed = (b: A): void => {
    if (open === undefined) {
      open = b;
      return;
    }
    const k = ops.continues(open, b);
    if (k === 0) {
      groups.push(open);
      open = b;
    } else if (k === ops.size(b)) {
      open = ops.concat(open, b, k);
    } else {
      // Only the first element joins: the grown group has a step that b's next element does not follow.
      groups.push(ops.concat(open, b, k));
      open = ops.drop(b, k);
    }
  };
  for (const a of atoms) feed(a);
  let replaced = 0;
  for (let next = after(0); next !== undefined; next = after(replaced)) {
    if (open !== undefined && ops.continues(open, next) === 0) break;
    feed(next);
    replaced++;
  }
  if (open !== undefined) groups.push(open);
  return { groups, replaced };
}

/**
 * Where a stored sequence stops being canonical: the position of the first atom whose first element
 * continues the atom before it, or -1. Each atom is a progression by construction.
 */
export function canonicalBreak<A>(ops: ProgressionOps<A>, atoms: Iterable<A>): number {
  let prev: A | undefined;
  let i = 0;
  for (const a of atoms) {
    if (prev !== undefined && ops.continues(prev, a) !== 0) return i;
    prev = a;
    i++;
  }
  return -1;
}
