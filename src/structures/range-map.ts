// SPDX-License-Identifier: GPL-2.0-only
/**
 * A coalescing map from runs of units (pages, PFNs) to attributes: per-page state stored run-length.
 *
 * Its *elements* (segments) are disjoint `{start, count, value}`: unit `start + i` for i < count has `value`.
 * Used for the physical page table (PFN -> pin count, map count, dirty, ...) and similar tables, where a
 * 16 GiB guest must cost a handful of objects, not millions, also when its frames are never adjacent.
 *
 * Invariants (canonical form): segments are disjoint and non-empty; two segments that touch
 * (`a.start + a.count === b.start`) never have the same `keyOf(value)`; `count` is the number of covered
 * units and `elements` the number of segments; `digest` is the sum of hashParts([start, count, keyOf(value)])
 * over segments. Equal contents therefore give equal trees and equal digests, whatever the history.
 *
 * Storage: the BTree keyed by `start` holds *atoms* (progression.ts): n >= 1 segments of the same count and
 * value whose starts are `startStep` apart (startStep > count, so they neither touch nor overlap), grouped
 * greedily in key order. A row of frames laid out frame, gap, frame, ... is one atom. Reading goes through
 * the functions here, which yield segments as if each were stored alone.
 *
 * Vocabulary: `first` and `count` give a range of units; `end = first + count` is exclusive.
 *
 * Deviations: each atom also stores `key`, the keyOf of its value, so that removing a segment from the
 * digest and comparing neighbours never calls keyOf again. Values must therefore be treated as immutable:
 * change them through rangeSet / rangeUpdate, never in place. The segments of one atom share one value
 * object (equal keys stand for equal values, as when segments merge). Writes touch only the atoms whose
 * extent, grouping or value actually changes, so immer patches show the real difference. rangeSet and
 * rangeUpdate mark the map written (write-marks.ts), the map itself and not only its tree: an atom may change
 * in place.
 */

import { btreeCeilingValue, btreeCreate, btreeDelete, btreeFloorValue, btreeForEachFrom, btreeSet } from './btree.js';
import type { BTree } from './btree.js';
import { canonicalBreak, regroup } from './progression.js';
import type { ProgressionOps } from './progression.js';
import { markWritten } from './write-marks.js';
import { digestAdd3, digestAddHash, digestRemove3, zeroDigest } from '../lib/digest.js';
import type { Digest } from '../lib/digest.js';

/** A stored atom: segments i < n, each [start + i*startStep, + count) with `value`. */
export interface Segment<V> {
  start: number;
  count: number;
  value: V;
  /** keyOf(value), cached. */
  key: string;
  /** Segments in the atom, >= 1. */
  n: number;
  /** Distance between the starts of consecutive segments: 0 when n is 1, else > count. */
  startStep: number;
}

export interface RangeMap<V> {
  tree: BTree<number, Segment<V>>;
  digest: Digest;
  /** Units covered by segments. */
  count: number;
  /** Segments (elements, not atoms). */
  elements: number;
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
  return { tree: btreeCreate<number, Segment<V>>(), digest: zeroDigest(), count: 0, elements: 0 };
}

/** Segments of the map (what a user is told the map holds: runs of frames, VMAs). */
export function rangeElementCount<V>(m: RangeMap<V>): number {
  return m.elements;
}

/** Objects stored for the map (what its storage costs). */
export function rangeAtomCount<V>(m: RangeMap<V>): number {
  return m.tree.size;
}

function atom<V>(start: number, count: number, value: V, key: string, n: number, startStep: number): Segment<V> {
  return { start, count, value, key, n, startStep };
}

/** The end of the atom's last segment. */
function hullEnd<V>(a: Segment<V>): number {
  return a.start + (a.n - 1) * a.startStep + a.count;
}

/** The index of the segment of `a` that starts at or last before `at` (at >= a.start). */
function indexAtOrBefore<V>(a: Segment<V>, at: number): number {
  if (a.n === 1) return 0;
  const i = Math.floor((at - a.start) / a.startStep);
  return i < a.n - 1 ? i : a.n - 1;
}

/** The index of the first segment of `a` that ends at or after `at` (n when none does). */
function firstEndingFrom<V>(a: Segment<V>, at: number): number {
  if (a.n === 1) return a.start + a.count >= at ? 0 : 1;
  const i = Math.ceil((at - a.count - a.start) / a.startStep);
  return i <= 0 ? 0 : i < a.n ? i : a.n;
}

/** The segment holding unit `at`, unclipped, or undefined. Read-only: it may be the stored atom itself. */
export function rangeElementAt<V>(m: RangeMap<V>, at: number): Readonly<RangePiece<V>> | undefined {
  const a = btreeFloorValue(m.tree, at);
  if (a === undefined) return undefined;
  if (a.n === 1) return at < a.start + a.count ? a : undefined;
  const s = a.start + indexAtOrBefore(a, at) * a.startStep;
  return at < s + a.count ? { start: s, count: a.count, value: a.value } : undefined;
}

/** The value at unit `at`. */
export function rangeGet<V>(m: RangeMap<V>, at: number): V | undefined {
  const a = btreeFloorValue(m.tree, at);
  if (a === undefined) return undefined;
  const s = a.n === 1 ? a.start : a.start + indexAtOrBefore(a, at) * a.startStep;
  return at < s + a.count ? a.value : undefined;
}

/** The present pieces of [first, first + count), ascending, clipped to the range, produced lazily. */
export function* rangeSegments<V>(m: RangeMap<V>, first: number, count: number): Generator<RangePiece<V>> {
  if (count <= 0) return;
  const end = first + count;
  let a = btreeFloorValue(m.tree, first);
  if (a === undefined || hullEnd(a) <= first) a = btreeCeilingValue(m.tree, first);
  while (a !== undefined && a.start < end) {
    const step = a.startStep;
    for (let i = a.start < first ? firstEndingFrom(a, first + 1) : 0; i < a.n; i++) {
      const s = a.start + i * step;
      if (s >= end) return;
      const from = s < first ? first : s;
      yield { start: from, count: Math.min(s + a.count, end) - from, value: a.value };
    }
    a = btreeCeilingValue(m.tree, a.start + 1);
  }
}

/**
 * Call `fn` on each segment of the map with its key, ascending, unclipped; stops when it returns false.
 * For whole-map walks (checks, views, diffs).
 */
export function rangeForEachAll<V>(
  m: RangeMap<V>,
  fn: (start: number, count: number, value: V, key: string) => boolean | void,
): void {
  btreeForEachFrom(m.tree, undefined, (_start, a) => {
    for (let i = 0; i < a.n; i++) if (fn(a.start + i * a.startStep, a.count, a.value, a.key) === false) return false;
    return true;
  });
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
  let a = btreeFloorValue(m.tree, first);
  if (a === undefined || hullEnd(a) <= first) a = btreeCeilingValue(m.tree, first);
  while (a !== undefined && a.start < end) {
    const step = a.startStep;
    for (let i = a.start < first ? firstEndingFrom(a, first + 1) : 0; i < a.n; i++) {
      const s = a.start + i * step;
      if (s >= end) return;
      const from = s < first ? first : s;
      if (fn(from, Math.min(s + a.count, end) - from, a.value) === false) return;
    }
    a = btreeCeilingValue(m.tree, a.start + 1);
  }
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

/** The canonical grouping of segments into atoms (progression.ts). */
const RANGE_OPS: ProgressionOps<Segment<unknown>> = {
  size: (a) => a.n,
  continues(a, b) {
    if (b.count !== a.count || b.key !== a.key) return 0;
    const step = b.start - (a.start + (a.n - 1) * a.startStep);
    // Touching segments of one key are one segment, never two elements of an atom.
    if (step <= a.count || (a.n >= 2 && step !== a.startStep)) return 0;
    return b.n >= 2 && b.startStep === step ? b.n : 1;
  },
  concat(a, b, k) {
    return atom(a.start, a.count, a.value, a.key, a.n + k, a.n >= 2 ? a.startStep : b.start - a.start);
  },
  drop(b, k) {
    const n = b.n - k;
    return atom(b.start + k * b.startStep, b.count, b.value, b.key, n, n >= 2 ? b.startStep : 0);
  },
};

function opsFor<V>(): ProgressionOps<Segment<V>> {
  return RANGE_OPS as ProgressionOps<Segment<V>>;
}

/** Append a segment, merging it into the previous one when they touch and have the same key. */
function pushPiece<V>(news: Segment<V>[], start: number, count: number, value: V, key: string): void {
  const prev = news[news.length - 1];
  if (prev !== undefined && prev.start + prev.count === start && prev.key === key) {
    prev.count += count;
    return;
  }
  news.push(atom(start, count, value, key, 1, 0));
}

/**
 * Count the change from the window's old segments to its new ones (both ascending) in the digest and
 * the counters: a segment kept at the same start with the same count and key is not hashed.
 */
function countChange<V>(m: RangeMap<V>, olds: readonly Piece<V>[], news: readonly Piece<V>[]): void {
  const digest = m.digest;
  let count = m.count;
  let elements = m.elements;
  let i = 0;
  let j = 0;
  while (i < olds.length || j < news.length) {
    const o = olds[i];
    const n = news[j];
    if (o !== undefined && n !== undefined && o.start === n.start) {
      if (o.count !== n.count || o.key !== n.key) {
        digestRemove3(digest, o.start, o.count, o.key);
        digestAdd3(digest, n.start, n.count, n.key);
        count += n.count - o.count;
      }
      i++;
      j++;
    } else if (o !== undefined && (n === undefined || o.start < n.start)) {
      digestRemove3(digest, o.start, o.count, o.key);
      count -= o.count;
      elements--;
      i++;
    } else if (n !== undefined) {
      digestAdd3(digest, n.start, n.count, n.key);
      count += n.count;
      elements++;
      j++;
    }
  }
  if (count !== m.count) m.count = count;
  if (elements !== m.elements) m.elements = elements;
}

/**
 * Replace the stored atoms `olds` by `news` (both ascending): an atom at the same start is rewritten in
 * place when it differs, first (before removes and adds move tree nodes), and left alone when equal.
 */
function replaceAtoms<V>(m: RangeMap<V>, olds: readonly Segment<V>[], news: readonly Segment<V>[]): void {
  const tree = m.tree;
  let i = 0;
  let j = 0;
  while (i < olds.length && j < news.length) {
    const o = olds[i] as Segment<V>;
    const n = news[j] as Segment<V>;
    if (o.start === n.start) {
      if (o !== n) {
        if (o.count !== n.count) o.count = n.count;
        if (o.key !== n.key) {
          o.value = n.value;
          o.key = n.key;
        }
        if (o.n !== n.n) o.n = n.n;
        if (o.startStep !== n.startStep) o.startStep = n.startStep;
      }
      i++;
      j++;
    } else if (o.start < n.start) i++;
    else j++;
  }
  i = 0;
  j = 0;
  while (i < olds.length || j < news.length) {
    const o = olds[i];
    const n = news[j];
    if (o !== undefined && n !== undefined && o.start === n.start) {
      i++;
      j++;
    } else if (o !== undefined && (n === undefined || o.start < n.start)) {
      btreeDelete(tree, o.start);
      i++;
    } else if (n !== undefined) {
      // A new atom: built by this write, referenced by nothing stored.
      btreeSet(tree, n.start, n);
      j++;
    }
  }
}

/**
 * Rewrite [first, end): `inner` appends to `news` the new segments inside the range (ascending), given the
 * old segments olds[from..to) that overlap it. The parts of the window outside the range keep their values.
 *
 * The window is every segment that overlaps [first, end) or touches it, as without atoms; only those are
 * taken out of their atoms, hashed when they change, and regrouped with what is left of their atoms and
 * the stored atoms around them (progression.ts: regroup).
 */
function rewrite<V>(
  m: RangeMap<V>,
  first: number,
  end: number,
  inner: (olds: Piece<V>[], from: number, to: number, news: Segment<V>[]) => void,
): void {
  const tree = m.tree;
  // The stored atoms holding window segments or spanning the window.
  const win: Segment<V>[] = [];
  const head = btreeFloorValue(tree, first - 1);
  // One walk from the head (or from the range) collects the window and the first stored atom after it.
  walkEnd = end;
  walkInto = win;
  walkNext = undefined;
  btreeForEachFrom(tree, head !== undefined && hullEnd(head) >= first ? head.start : first, collectWindow);
  const next = walkNext as Segment<V> | undefined;
  walkInto = undefined;
  walkNext = undefined;

  const olds: Piece<V>[] = [];
  let prefix = 0;
  let suffix: Segment<V> | undefined;
  const last = win.length - 1;
  for (let w = 0; w <= last; w++) {
    const a = win[w] as Segment<V>;
    if (a.n === 1) {
      olds.push(a);
      continue;
    }
    const lo = w === 0 && a.start < first ? firstEndingFrom(a, first) : 0;
    const hi = w === last ? indexAtOrBefore(a, end) : a.n - 1;
    if (w === 0) prefix = lo;
    if (w === last && hi + 1 < a.n) suffix = RANGE_OPS.drop(a, hi + 1) as Segment<V>;
    for (let i = lo; i <= hi; i++)
      olds.push({ start: a.start + i * a.startStep, count: a.count, value: a.value, key: a.key });
  }

  const news: Segment<V>[] = [];
  let from = 0;
  let to = olds.length;
  // Only the first segment can start before the range and only the last can reach past it.
  const headSeg = olds[0];
  if (headSeg !== undefined && headSeg.start < first) {
    pushPiece(
      news,
      headSeg.start,
      Math.min(headSeg.start + headSeg.count, first) - headSeg.start,
      headSeg.value,
      headSeg.key,
    );
    if (headSeg.start + headSeg.count === first) from = 1;
  }
  const tailSeg = olds[to - 1];
  if (tailSeg !== undefined && tailSeg.start === end) to--;
  inner(olds, from, to, news);
  if (tailSeg !== undefined && tailSeg.start + tailSeg.count > end) {
    const s = Math.max(tailSeg.start, end);
    pushPiece(news, s, tailSeg.start + tailSeg.count - s, tailSeg.value, tailSeg.key);
  }
  countChange(m, olds, news);

  // Regroup from the first atom that starts a canonical group: what is left of the first window atom
  // before the window, or else the stored atom before it, which is then replaced too.
  const firstWin = win[0];
  const replaced: Segment<V>[] = [];
  const atoms: Segment<V>[] = [];
  if (firstWin !== undefined && prefix > 0) {
    atoms.push(
      atom(firstWin.start, firstWin.count, firstWin.value, firstWin.key, prefix, prefix >= 2 ? firstWin.startStep : 0),
    );
  } else {
    const before = firstWin === undefined || firstWin !== head ? head : btreeFloorValue(tree, firstWin.start - 1);
    if (before !== undefined) {
      replaced.push(before);
      atoms.push(before);
    }
  }
  for (const w of win) replaced.push(w);
  for (const s of news) atoms.push(s);
  if (suffix !== undefined) atoms.push(suffix);
  laterTree = tree;
  laterCount = 0;
  if (next !== undefined) later[laterCount++] = next;
  const { groups, replaced: taken } = regroup(opsFor<V>(), atoms, storedAfter as (i: number) => Segment<V> | undefined);
  for (let i = 0; i < taken; i++) replaced.push(later[i] as Segment<V>);
  laterTree = undefined;
  replaceAtoms(m, replaced, groups);
}

/*
 * What collectWindow fills: the window's atoms (start <= walkEnd) and the first atom after them. Module
 * state rather than a closure per write: the walk calls no code of the caller's.
 */
let walkEnd = 0;
let walkInto: Segment<unknown>[] | undefined;
let walkNext: Segment<unknown> | undefined;

function collectWindow(start: number, a: Segment<unknown>): boolean {
  if (start > walkEnd) {
    walkNext = a;
    return false;
  }
  walkInto?.push(a);
  return true;
}

/*
 * The stored atoms after a write's window, fetched as regroup asks for them: module state rather than a
 * closure per write (regroup calls no code of the caller's, so no other write can run meanwhile).
 */
let laterTree: BTree<number, Segment<unknown>> | undefined;
/** later[0 .. laterCount): the atoms fetched so far (a count, not the length: setting that is a call). */
const later: Segment<unknown>[] = [];
let laterCount = 0;

function storedAfter(i: number): Segment<unknown> | undefined {
  while (laterCount <= i) {
    if (laterCount === 0 || laterTree === undefined) return undefined;
    const a = btreeCeilingValue(laterTree, (later[laterCount - 1] as Segment<unknown>).start + 1);
    if (a === undefined) return undefined;
    later[laterCount++] = a;
  }
  return later[i];
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
      const o = olds[k] as Piece<V>;
      const s = Math.max(o.start, first);
      if (s > pos) put(pos, s - pos, undefined, undefined);
      const e = Math.min(o.start + o.count, end);
      put(s, e - s, o.value, o.key);
      pos = e;
    }
    if (pos < end) put(pos, end - pos, undefined, undefined);
  });
}

/** An atom's digest contribution, remembered with the fields it was taken of. */
interface AtomDigest {
  start: number;
  count: number;
  key: string;
  n: number;
  startStep: number;
  digest: Digest;
}
const atomDigests = new WeakMap<object, AtomDigest>();

/**
 * The sum of the hashes of the atom's segments under `key`: remembered per atom, so that a check after
 * every op hashes a long atom again only when it changed.
 */
function atomDigest<V>(a: Segment<V>, key: string): Digest {
  const seen = atomDigests.get(a);
  if (
    seen !== undefined &&
    seen.start === a.start &&
    seen.count === a.count &&
    seen.key === key &&
    seen.n === a.n &&
    seen.startStep === a.startStep
  )
    return seen.digest;
  const digest = zeroDigest();
  for (let i = 0; i < a.n; i++) digestAdd3(digest, a.start + i * a.startStep, a.count, key);
  atomDigests.set(a, { start: a.start, count: a.count, key, n: a.n, startStep: a.startStep, digest });
  return digest;
}

/** Digest of the map's segments recomputed from scratch (for checks and tests). */
export function rangeMapDigest<V>(m: RangeMap<V>, spec?: RangeSpec<V>): Digest {
  const d = zeroDigest();
  btreeForEachFrom(m.tree, undefined, (start, a) => {
    const key = spec === undefined ? a.key : spec.keyOf(a.value);
    if (a.n === 1) digestAdd3(d, start, a.count, key);
    else digestAddHash(d, atomDigest(a, key));
  });
  return d;
}

/** Self-check: null if the tree holds and the map is canonical with correct counts and digest. */
export function rangeMapCheck<V>(m: RangeMap<V>, spec?: RangeSpec<V>): string | null {
  let err: string | null = null;
  let prevEnd = -Infinity;
  let prevKey: string | undefined;
  let covered = 0;
  let elements = 0;
  btreeForEachFrom(m.tree, undefined, (start, a) => {
    if (a.start !== start) err = `segment at ${start} says it starts at ${a.start}`;
    else if (!Number.isInteger(a.count) || a.count <= 0) err = `segment at ${start} has count ${a.count}`;
    else if (!Number.isInteger(a.n) || a.n < 1) err = `atom at ${start} has ${a.n} segments`;
    else if (a.n === 1 ? a.startStep !== 0 : !Number.isInteger(a.startStep) || a.startStep <= a.count)
      err = `atom at ${start} has step ${a.startStep} for segments of ${a.count}`;
    else if (start < prevEnd) err = `segment at ${start} overlaps the previous one`;
    else if (start === prevEnd && a.key === prevKey) err = `segment at ${start} should merge with the previous one`;
    else if (spec !== undefined && spec.keyOf(a.value) !== a.key) err = `segment at ${start} has a stale key`;
    if (err !== null) return false;
    covered += a.count * a.n;
    elements += a.n;
    prevEnd = hullEnd(a);
    prevKey = a.key;
    return true;
  });
  if (err !== null) return err;
  if (covered !== m.count) return `count is ${m.count} but segments cover ${covered}`;
  if (elements !== m.elements) return `elements is ${m.elements} but there are ${elements} segments`;
  const atoms: Segment<V>[] = [];
  btreeForEachFrom(m.tree, undefined, (_start, a) => void atoms.push(a));
  const broken = canonicalBreak(opsFor<V>(), atoms);
  if (broken !== -1) return `atom at ${(atoms[broken] as Segment<V>).start} continues the one before it`;
  const d = rangeMapDigest(m);
  if (d.lo !== m.digest.lo || d.hi !== m.digest.hi) return 'digest differs from the digest of the segments';
  return null;
}

/**
 * Put a map whose stored segments lack the atom fields (as a format-2 snapshot holds them: one segment
 * per entry) into canonical form, in place: O(segments). The digest and count do not change.
 */
export function rangeRegroupAll<V>(m: RangeMap<V>): void {
  markWritten(m);
  const singles: Segment<V>[] = [];
  btreeForEachFrom(m.tree, undefined, (start, s) => {
    const stored = s as Partial<Segment<V>> & Piece<V>;
    const n = stored.n ?? 1;
    const step = stored.startStep ?? 0;
    for (let i = 0; i < n; i++) singles.push(atom(start + i * step, stored.count, stored.value, stored.key, 1, 0));
  });
  const { groups } = regroup(opsFor<V>(), singles, () => undefined);
  const tree = btreeCreate<number, Segment<V>>();
  for (const g of groups) btreeSet(tree, g.start, g);
  m.tree = tree;
  m.elements = singles.length;
}
