// SPDX-License-Identifier: GPL-2.0-only
/**
 * Span iterators over interval trees: the kernel's span iterator (lib/interval_tree.c,
 * CONFIG_INTERVAL_TREE_SPAN_ITER) and the double-span iterator of iommufd (drivers/iommu/iommufd/double_span.h).
 *
 * A span iterator partitions [first, last] (`last` inclusive) into alternating HOLE spans (no node
 * intersects) and USED spans (covered); nodes that overlap or touch (one ends at x, the next starts at
 * x + 1) form one USED span, and every span is clipped to [first, last]. The double-span iterator runs one
 * span iterator per tree and classifies each index as used by tree A (`isUsed` 1, A has priority), used by
 * tree B only (2), or a hole (0), yielding the maximal runs in order and then -1 (done).
 *
 * The mechanics mirror the kernel step for step: the iterator remembers two nodes (`nodes[0]` ends the
 * current or last used span, `nodes[1]` starts the next one) and queries the tree lazily, one "next
 * intersecting node" per step. So it sees tree changes beyond what it has already read, and, like the
 * kernel, not changes to the nodes it holds. `start`/`last` stand for the kernel's aliased
 * `start_hole`/`start_used` and `last_hole`/`last_used`.
 *
 * Iterator state is a small mutable object local to one kernel function, never part of the State.
 * Deviations: the tree is passed on every step (the kernel walks node pointers), so an iterator keeps
 * working when the caller's state object is replaced between steps (immer); `advance` follows the fixed
 * upstream limit test (a new index beyond `last` is done; v3 also ended at exactly `last`); `next` on a
 * finished iterator stays finished.
 */

import {
  type IntervalTree,
  type ItreeEntry,
  type Key,
  itreeIterFirst,
  itreeIterNext,
  keyDec,
  keyInc,
  keyMin,
} from './interval-tree.js';

/** State of one span iterator. */
export interface SpanIter<K extends Key> {
  /** Lower bound of the node queries; moved by advance. */
  firstIndex: K;
  lastIndex: K;
  /** [0]: node ending the current (or last) used span; [1]: first node of the next used span. */
  nodes: [ItreeEntry<K> | null, ItreeEntry<K> | null];
  /** 1 hole, 0 used, -1 done. */
  isHole: number;
  start: K;
  last: K;
}

/** State of one double-span iterator; `spans[0]` runs over tree A, `spans[1]` over tree B. */
export interface DoubleSpanIter<K extends Key> {
  spans: [SpanIter<K>, SpanIter<K>];
  /** 0 hole, 1 used by A, 2 used by B and not A, -1 done. */
  isUsed: number;
  start: K;
  last: K;
}

/** A tree, or a function returning the current tree (for callers whose state object changes between steps). */
export type TreeRef<K extends Key> = IntervalTree<K> | (() => IntervalTree<K>);

export interface Span<K extends Key> {
  isHole: boolean;
  start: K;
  last: K;
}

export interface DoubleSpan<K extends Key> {
  isUsed: 0 | 1 | 2;
  start: K;
  last: K;
}

function held<K extends Key>(n: ItreeEntry<K> | null): ItreeEntry<K> {
  if (n === null) throw new Error('span iterator invariant broken: expected a held node');
  return n;
}

/**
 * Starting from nodes[1], fold in every following node that overlaps or touches the span built so far:
 * nodes[0] becomes the node with the largest last of that used span, nodes[1] the first node after it.
 */
function nextGap<K extends Key>(iter: SpanIter<K>, tree: IntervalTree<K>): void {
  let cur: ItreeEntry<K> | null = held(iter.nodes[1]);
  let top = cur;
  do {
    if (cur.last > top.last) top = cur;
    cur = itreeIterNext(tree, cur, iter.firstIndex, iter.lastIndex);
  } while (cur !== null && (top.last >= cur.start || keyInc(top.last) === cur.start));
  iter.nodes[0] = top;
  iter.nodes[1] = cur;
}

/** Clip a used span at lastIndex; once clipped there is nothing left to read. */
function clipUsed<K extends Key>(iter: SpanIter<K>): void {
  if (iter.last >= iter.lastIndex) {
    iter.last = iter.lastIndex;
    iter.nodes[0] = null;
    iter.nodes[1] = null;
  }
}

function spanIterInit<K extends Key>(iter: SpanIter<K>, tree: IntervalTree<K>, first: K, last: K): void {
  iter.firstIndex = first;
  iter.lastIndex = last;
  iter.nodes[0] = null;
  iter.nodes[1] = itreeIterFirst(tree, first, last);
  const head = iter.nodes[1];
  if (head === null) {
    iter.start = first;
    iter.last = last;
    iter.isHole = 1;
    return;
  }
  if (head.start > first) {
    iter.start = first;
    iter.last = keyDec(head.start);
    iter.isHole = 1;
    nextGap(iter, tree);
    return;
  }
  iter.start = first;
  iter.isHole = 0;
  nextGap(iter, tree);
  iter.last = held<K>(iter.nodes[0]).last;
  clipUsed(iter);
}

/** Start a span iterator over [first, last] of `tree` (first <= last). */
export function spanIterFirst<K extends Key>(tree: IntervalTree<K>, first: K, last: K): SpanIter<K> {
  if (first > last) throw new RangeError(`span iterator range [${first}, ${last}] is empty`);
  const iter: SpanIter<K> = { firstIndex: first, lastIndex: last, nodes: [null, null], isHole: 1, start: first, last };
  spanIterInit(iter, tree, first, last);
  return iter;
}

/** Step to the next span (hole after used, used after hole), or to done. */
export function spanIterNext<K extends Key>(iter: SpanIter<K>, tree: IntervalTree<K>): void {
  if (iter.isHole === -1) return;
  if (iter.nodes[0] === null && iter.nodes[1] === null) {
    iter.isHole = -1;
    return;
  }
  if (iter.isHole === 1) {
    iter.start = keyInc(iter.last);
    iter.last = held(iter.nodes[0]).last;
    iter.isHole = 0;
    clipUsed(iter);
    return;
  }
  const prevUsedLast = held(iter.nodes[0]).last;
  if (iter.nodes[1] === null) {
    iter.start = keyInc(prevUsedLast);
    iter.last = iter.lastIndex;
    iter.nodes[0] = null;
    iter.isHole = 1;
    return;
  }
  iter.start = keyInc(prevUsedLast);
  iter.last = keyDec(iter.nodes[1].start);
  iter.isHole = 1;
  nextGap(iter, tree);
}

/**
 * Restart at `newIndex`: inside the current span only its start moves; one past it behaves as next;
 * beyond `lastIndex` the iterator is done; anywhere else it searches afresh from `newIndex`.
 */
export function spanIterAdvance<K extends Key>(iter: SpanIter<K>, tree: IntervalTree<K>, newIndex: K): void {
  if (iter.isHole === -1) return;
  iter.firstIndex = newIndex;
  if (newIndex > iter.lastIndex) {
    iter.isHole = -1;
    return;
  }
  if (iter.start <= newIndex && newIndex <= iter.last) {
    iter.start = newIndex;
    return;
  }
  if (newIndex === keyInc(iter.last)) spanIterNext(iter, tree);
  else spanIterInit(iter, tree, newIndex, iter.lastIndex);
}

export function spanIterDone<K extends Key>(iter: SpanIter<K>): boolean {
  return iter.isHole === -1;
}

/** Classify the current position from the two span iterators (tree A wins, a hole ends at the nearer end). */
function doubleSpanUpdate<K extends Key>(iter: DoubleSpanIter<K>): void {
  let lastHole: K | null = null;
  for (let i = 0; i < 2; i++) {
    const span = iter.spans[i] as SpanIter<K>;
    if (span.isHole === -1) {
      iter.isUsed = -1;
      return;
    }
    if (span.isHole === 1) {
      lastHole = lastHole === null ? span.last : keyMin(lastHole, span.last);
      continue;
    }
    iter.isUsed = i + 1;
    iter.start = span.start;
    iter.last = lastHole === null ? span.last : keyMin(span.last, lastHole);
    return;
  }
  iter.isUsed = 0;
  iter.start = iter.spans[0].start;
  iter.last = keyMin(iter.spans[0].last, iter.spans[1].last);
}

/** Start a double-span iterator over [first, last] of trees A (priority) and B. */
export function doubleSpanIterFirst<K extends Key>(
  treeA: IntervalTree<K>,
  treeB: IntervalTree<K>,
  first: K,
  last: K,
): DoubleSpanIter<K> {
  const iter: DoubleSpanIter<K> = {
    spans: [spanIterFirst(treeA, first, last), spanIterFirst(treeB, first, last)],
    isUsed: 0,
    start: first,
    last,
  };
  doubleSpanUpdate(iter);
  return iter;
}

/** Step past the current span; done once the emitted span reached the range's last index. */
export function doubleSpanIterNext<K extends Key>(
  iter: DoubleSpanIter<K>,
  treeA: IntervalTree<K>,
  treeB: IntervalTree<K>,
): void {
  if (iter.isUsed === -1 || iter.last === iter.spans[0].lastIndex) {
    iter.isUsed = -1;
    return;
  }
  const resume = keyInc(iter.last);
  spanIterAdvance(iter.spans[0], treeA, resume);
  spanIterAdvance(iter.spans[1], treeB, resume);
  doubleSpanUpdate(iter);
}

export function doubleSpanIterDone<K extends Key>(iter: DoubleSpanIter<K>): boolean {
  return iter.isUsed === -1;
}

function deref<K extends Key>(ref: TreeRef<K>): IntervalTree<K> {
  return typeof ref === 'function' ? ref() : ref;
}

/**
 * The spans of one tree over [first, last], lazily: each step reads the tree as it is then.
 * @example [...spans(tree, 0, 9)] // [{isHole: true, start: 0, last: 2}, {isHole: false, start: 3, last: 9}]
 */
export function* spans<K extends Key>(tree: TreeRef<K>, first: K, last: K): Generator<Span<K>, void, undefined> {
  const iter = spanIterFirst(deref(tree), first, last);
  while (!spanIterDone(iter)) {
    yield { isHole: iter.isHole === 1, start: iter.start, last: iter.last };
    spanIterNext(iter, deref(tree));
  }
}

/** The double spans of trees A (priority) and B over [first, last], lazily. */
export function* doubleSpans<K extends Key>(
  treeA: TreeRef<K>,
  treeB: TreeRef<K>,
  first: K,
  last: K,
): Generator<DoubleSpan<K>, void, undefined> {
  const iter = doubleSpanIterFirst(deref(treeA), deref(treeB), first, last);
  while (!doubleSpanIterDone(iter)) {
    yield { isUsed: iter.isUsed as 0 | 1 | 2, start: iter.start, last: iter.last };
    doubleSpanIterNext(iter, deref(treeA), deref(treeB));
  }
}
