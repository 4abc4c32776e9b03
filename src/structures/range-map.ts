// SPDX-License-Identifier: GPL-2.0-only
/**
 * A coalescing map from runs of units (pages, PFNs) to attributes: per-page state stored run-length.
 *
 * Holds disjoint segments `{start, count, value}` (unit `start + i` for i < count has `value`) in a BTree
 * keyed by `start`. Used for the physical page table (PFN -> pin count, map count, dirty, ...) and similar
 * tables, where a 16 GiB guest must cost a handful of segments, not millions of entries.
 *
 * Invariants (canonical form): segments are disjoint and non-empty; two segments that touch
 * (`a.start + a.count === b.start`) never have the same `keyOf(value)`; `count` is the number of covered
 * units; `digest` is the sum of hashParts([start, count, keyOf(value)]) over segments. Equal contents
 * therefore give equal trees and equal digests, whatever the history.
 *
 * Vocabulary: `first` and `count` give a range of units; `end = first + count` is exclusive.
 *
 * Deviations: each segment also stores `key`, the keyOf of its value, so that removing a segment from the
 * digest and comparing neighbours never calls keyOf again. Values must therefore be treated as immutable:
 * change them through rangeSet / rangeUpdate, never in place. Writes touch only the segments whose extent
 * or value actually changes, so immer patches show the real difference. rangeSet and rangeUpdate mark the map
 * written (write-marks.ts), the map itself and not only its tree: a segment may change in place.
 */

import { btreeCreate, btreeDelete, btreeEntriesFrom, btreeFloorValue, btreeForEachFrom, btreeSet } from './btree.js';
import type { BTree } from './btree.js';
import { applyWindow } from './sorted-window.js';
import { markWritten } from './write-marks.js';
import { digestAdd3, digestRemove3, zeroDigest } from '../lib/digest.js';
import type { Digest } from '../lib/digest.js';

export interface Segment<V> {
  start: number;
  count: number;
  value: V;
  /** keyOf(value), cached. */
  key: string;
}

export interface RangeMap<V> {
  tree: BTree<number, Segment<V>>;
  digest: Digest;
  /** Units covered by segments. */
  count: number;
}

/** How a map's values are compared and hashed. */
export interface RangeSpec<V> {
  /** Canonical text of a value: equal texts merge, and the text is what the digest hashes. */
  keyOf(value: V): string;
}

/** A present piece of a map, clipped to the range asked for. */
export interface RangePiece<V> {
  start: number;
  count: number;
  value: V;
}

export function rangeMapCreate<V>(): RangeMap<V> {
  return { tree: btreeCreate<number, Segment<V>>(), digest: zeroDigest(), count: 0 };
}

/** The value at unit `at`. */
export function rangeGet<V>(m: RangeMap<V>, at: number): V | undefined {
  const seg = btreeFloorValue(m.tree, at);
  return seg !== undefined && at < seg.start + seg.count ? seg.value : undefined;
}

/** The present pieces of [first, first + count), ascending, clipped to the range, produced lazily. */
export function* rangeSegments<V>(m: RangeMap<V>, first: number, count: number): Generator<RangePiece<V>> {
  if (count <= 0) return;
  const end = first + count;
  const head = btreeFloorValue(m.tree, first);
  if (head !== undefined && head.start < first && head.start + head.count > first) {
    yield { start: first, count: Math.min(head.start + head.count, end) - first, value: head.value };
  }
  for (const [start, seg] of btreeEntriesFrom(m.tree, first)) {
    if (start >= end) return;
    yield { start, count: Math.min(start + seg.count, end) - start, value: seg.value };
  }
}

/** Call `fn` on each present piece of [first, first + count), ascending, clipped; stops when it returns false. */
export function rangeForEach<V>(
  m: RangeMap<V>,
  first: number,
  count: number,
  fn: (start: number, count: number, value: V) => boolean | void,
): void {
  if (count <= 0) return;
  const end = first + count;
  const head = btreeFloorValue(m.tree, first);
  if (head !== undefined && head.start < first && head.start + head.count > first) {
    if (fn(first, Math.min(head.start + head.count, end) - first, head.value) === false) return;
  }
  btreeForEachFrom(m.tree, first, (start, seg) => {
    if (start >= end) return false;
    return fn(start, Math.min(start + seg.count, end) - start, seg.value);
  });
}

/** Units covered in [first, first + count). */
export function rangeCovered<V>(m: RangeMap<V>, first: number, count: number): number {
  let n = 0;
  rangeForEach(m, first, count, (_start, c) => {
    n += c;
  });
  return n;
}

interface Piece<V> {
  start: number;
  count: number;
  value: V;
  key: string;
}

/**
 * The stored segments that overlap [first, end) or touch it on either side, ascending: everything a write
 * to the range may change, including the neighbours it may merge with.
 */
function windowOf<V>(m: RangeMap<V>, first: number, end: number): Segment<V>[] {
  const olds: Segment<V>[] = [];
  const head = btreeFloorValue(m.tree, first - 1);
  if (head !== undefined && head.start + head.count >= first) olds.push(head);
  btreeForEachFrom(m.tree, first, (start, seg) => {
    if (start > end) return false;
    olds.push(seg);
    return true;
  });
  return olds;
}

/** Append a piece, merging it into the previous one when they touch and have the same key. */
function pushPiece<V>(news: Piece<V>[], start: number, count: number, value: V, key: string): void {
  const prev = news[news.length - 1];
  if (prev !== undefined && prev.start + prev.count === start && prev.key === key) {
    prev.count += count;
    return;
  }
  news.push({ start, count, value, key });
}

/**
 * Replace the window `olds` by `news` (both ascending, `news` canonical), writing only what differs: a
 * segment kept at the same start with the same key and count is not touched.
 */
function replaceWindow<V>(m: RangeMap<V>, olds: Segment<V>[], news: Piece<V>[]): void {
  const tree = m.tree;
  const digest = m.digest;
  applyWindow<Segment<V>, Piece<V>>(olds, news, (entry) => entry.start, {
    differs: (o, n) => o.count !== n.count || o.key !== n.key,
    update: (o, n) => {
      digestRemove3(digest, o.start, o.count, o.key);
      digestAdd3(digest, n.start, n.count, n.key);
      m.count += n.count - o.count;
      o.count = n.count;
      if (o.key !== n.key) {
        o.value = n.value;
        o.key = n.key;
      }
    },
    remove: (o) => {
      digestRemove3(digest, o.start, o.count, o.key);
      m.count -= o.count;
      btreeDelete(tree, o.start);
    },
    add: (n) => {
      digestAdd3(digest, n.start, n.count, n.key);
      m.count += n.count;
      btreeSet(tree, n.start, { start: n.start, count: n.count, value: n.value, key: n.key });
    },
  });
}

/**
 * Rewrite [first, end): `inner` appends to `news` the new pieces inside the range (ascending), given the
 * stored segments olds[from..to) that overlap it. The parts of the window outside the range keep their values.
 */
function rewrite<V>(
  m: RangeMap<V>,
  first: number,
  end: number,
  inner: (olds: Segment<V>[], from: number, to: number, news: Piece<V>[]) => void,
): void {
  const olds = windowOf(m, first, end);
  const news: Piece<V>[] = [];
  let from = 0;
  let to = olds.length;
  // Only the first segment can start before the range and only the last can reach past it.
  const head = olds[0];
  if (head !== undefined && head.start < first) {
    pushPiece(news, head.start, Math.min(head.start + head.count, first) - head.start, head.value, head.key);
    if (head.start + head.count === first) from = 1;
  }
  const tail = olds[to - 1];
  if (tail !== undefined && tail.start === end) to--;
  inner(olds, from, to, news);
  if (tail !== undefined && tail.start + tail.count > end) {
    const s = Math.max(tail.start, end);
    pushPiece(news, s, tail.start + tail.count - s, tail.value, tail.key);
  }
  replaceWindow(m, olds, news);
}

/** Assign `value` to every unit of [first, first + count); undefined erases. */
export function rangeSet<V>(
  m: RangeMap<V>,
  first: number,
  count: number,
  value: V | undefined,
  spec: RangeSpec<V>,
): void {
  if (count <= 0) return;
  markWritten(m);
  const end = first + count;
  rewrite(m, first, end, (_olds, _from, _to, news) => {
    if (value !== undefined) pushPiece(news, first, count, value, spec.keyOf(value));
  });
}

/**
 * Replace each piece of [first, first + count) by `fn(old)`: one call per stored segment clipped to the range
 * and one per hole (with `old` undefined); returning undefined erases the piece. Pieces are cut at the range
 * edges and at the existing segment edges only, then coalesced.
 */
export function rangeUpdate<V>(
  m: RangeMap<V>,
  first: number,
  count: number,
  fn: (old: V | undefined) => V | undefined,
  spec: RangeSpec<V>,
): void {
  if (count <= 0) return;
  markWritten(m);
  const end = first + count;
  rewrite(m, first, end, (olds, from, to, news) => {
    let pos = first;
    const put = (start: number, n: number, old: V | undefined, oldKey: string | undefined): void => {
      const value = fn(old);
      if (value === undefined) return;
      pushPiece(news, start, n, value, value === old && oldKey !== undefined ? oldKey : spec.keyOf(value));
    };
    for (let k = from; k < to; k++) {
      const o = olds[k] as Segment<V>;
      const s = Math.max(o.start, first);
      if (s > pos) put(pos, s - pos, undefined, undefined);
      const e = Math.min(o.start + o.count, end);
      put(s, e - s, o.value, o.key);
      pos = e;
    }
    if (pos < end) put(pos, end - pos, undefined, undefined);
  });
}

/** Digest of the map's segments recomputed from scratch (for checks and tests). */
export function rangeMapDigest<V>(m: RangeMap<V>, spec?: RangeSpec<V>): Digest {
  const d = zeroDigest();
  btreeForEachFrom(m.tree, undefined, (start, seg) => {
    digestAdd3(d, start, seg.count, spec === undefined ? seg.key : spec.keyOf(seg.value));
  });
  return d;
}

/** Self-check: null if the tree holds and the map is canonical with a correct count and digest. */
export function rangeMapCheck<V>(m: RangeMap<V>, spec?: RangeSpec<V>): string | null {
  let err: string | null = null;
  let prevEnd = -Infinity;
  let prevKey: string | undefined;
  let covered = 0;
  btreeForEachFrom(m.tree, undefined, (start, seg) => {
    if (seg.start !== start) err = `segment at ${start} says it starts at ${seg.start}`;
    else if (!Number.isInteger(seg.count) || seg.count <= 0) err = `segment at ${start} has count ${seg.count}`;
    else if (start < prevEnd) err = `segment at ${start} overlaps the previous one`;
    else if (start === prevEnd && seg.key === prevKey) err = `segment at ${start} should merge with the previous one`;
    else if (spec !== undefined && spec.keyOf(seg.value) !== seg.key) err = `segment at ${start} has a stale key`;
    if (err !== null) return false;
    covered += seg.count;
    prevEnd = start + seg.count;
    prevKey = seg.key;
    return true;
  });
  if (err !== null) return err;
  if (covered !== m.count) return `count is ${m.count} but segments cover ${covered}`;
  const d = rangeMapDigest(m);
  if (d.lo !== m.digest.lo || d.hi !== m.digest.hi) return 'digest differs from the digest of the segments';
  return null;
}
