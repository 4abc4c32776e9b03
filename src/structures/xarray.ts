// SPDX-License-Identifier: GPL-2.0-only
/**
 * The XArray of `iopt_pages::pinned_pfns` (kernel-model.md section 3): page index -> PFN value entry.
 *
 * Stored run-length: the elements are runs `{index, pfn, count}`, each meaning index + i -> pfn + i for
 * i < count, so that a guest of huge pages costs one run per physically contiguous extent, not one entry
 * per page. Entries are only ever values (PFNs), as in iommufd.
 *
 * Invariants of the runs (canonical form): runs are disjoint and non-empty; two runs are merged iff they are
 * index-adjacent and PFN-contiguous (`a.index + a.count === b.index && a.pfn + a.count === b.pfn`), so
 * adjacent runs that stay separate have a PFN gap; `count` is the number of present entries; `digest` is the
 * sum of hashParts([index, pfn, count]) over runs. Equal contents give equal runs and digests, whatever
 * the history.
 *
 * The tree `runs` stores atoms, keyed by their first index (progression.ts): an atom is n >= 1 runs of one
 * `count`, run i at index + i * indexStep holding pfn + i * pfnStep, grouped greedily in index order. A guest
 * laid out frame, gap, frame ... (every run a single page two PFNs after the last) is then one atom, not one
 * run per page. An atom of one run has both steps 0; inside an atom the steps never make two runs mergeable
 * (that would be one run). Only the functions below look inside the tree: everyone else sees runs.
 *
 * Vocabulary: `index` counts pages; `last` is inclusive (as in the kernel's xa_for_each_range), `count`
 * gives a length.
 *
 * Deviations from the kernel's xarray: no node memory and so no -ENOMEM here (the caller's fault plan models
 * a failing store); a store returns how many entries it overwrote, where xa_store returns the old entry.
 * Writes touch only the atoms that change (an atom kept at its key changes in place), so immer patches show
 * the real difference. xaStore and xaErase mark the xarray written (write-marks.ts), the xarray itself and
 * not only its tree: an atom may change in place.
 */

import { btreeCeilingValue, btreeCreate, btreeDelete, btreeFloorValue, btreeForEachFrom, btreeSet } from './btree.js';
import type { BTree } from './btree.js';
import { canonicalBreak, regroup } from './progression.js';
import type { ProgressionOps } from './progression.js';
import { markWritten } from './write-marks.js';
import { digestAdd3, digestAddTriple, digestRemove3, zeroDigest } from '../lib/digest.js';
import type { Digest } from '../lib/digest.js';

/** A run: what the xarray holds and what its listings yield. */
export interface XaRun {
  index: number;
  pfn: number;
  count: number;
}

/** What the tree stores: `n` runs of `count` entries, run i at index + i * indexStep -> pfn + i * pfnStep. */
export interface XaAtom extends XaRun {
  n: number;
  indexStep: number;
  pfnStep: number;
}

export interface Xarray {
  runs: BTree<number, XaAtom>;
  digest: Digest;
  /** Present entries. */
  count: number;
}

/** The one way an atom is made: every atom has the same fields in the same order. */
function atomOf(index: number, pfn: number, count: number, n: number, indexStep: number, pfnStep: number): XaAtom {
  return { index, pfn, count, n, indexStep, pfnStep };
}

/** An atom's digest (the sum over its runs) as last taken, with the fields it was taken of. */
interface AtomSum {
  index: number;
  pfn: number;
  count: number;
  n: number;
  indexStep: number;
  pfnStep: number;
  lo: number;
  hi: number;
}
const atomSums = new WeakMap<object, AtomSum>();

/** The remembered digest of `a` (of two runs or more) when it was taken of `a` as it is now. */
function sumOf(a: XaAtom): AtomSum | undefined {
  const m = atomSums.get(a);
  return m !== undefined &&
    m.n === a.n &&
    m.index === a.index &&
    m.pfn === a.pfn &&
    m.count === a.count &&
    m.indexStep === a.indexStep &&
    m.pfnStep === a.pfnStep
    ? m
    : undefined;
}

function remember(a: XaAtom, lo: number, hi: number): void {
  atomSums.set(a, {
    index: a.index,
    pfn: a.pfn,
    count: a.count,
    n: a.n,
    indexStep: a.indexStep,
    pfnStep: a.pfnStep,
    lo,
    hi,
  });
}

/** The digest of runs from..to-1 of `a` (scratch: one result at a time). */
const partSum: Digest = zeroDigest();
function sumRuns(a: XaAtom, from: number, to: number): Digest {
  partSum.lo = 0;
  partSum.hi = 0;
  for (let i = from; i < to; i++) digestAdd3(partSum, a.index + i * a.indexStep, a.pfn + i * a.pfnStep, a.count);
  return partSum;
}

/*
 * A new atom cut from or joined of remembered ones inherits their digest, at the cost of the runs that differ
 * at most (never more than hashing the new atom would): a self-check after a pin in a long atom, or after the
 * unpin that joins it again, then hashes a few runs, not the atom. Nothing is hashed when nothing is remembered.
 */

/** The first n runs of `a`. */
function prefixOf(a: XaAtom, n: number): XaAtom {
  if (n < 2) return atomOf(a.index, a.pfn, a.count, 1, 0, 0);
  const r = atomOf(a.index, a.pfn, a.count, n, a.indexStep, a.pfnStep);
  const m = a.n - n <= n ? sumOf(a) : undefined;
  if (m !== undefined) {
    const rest = sumRuns(a, n, a.n);
    remember(r, (m.lo - rest.lo) >>> 0, (m.hi - rest.hi) >>> 0);
  }
  return r;
}

/** `a` without its first k runs (0 < k < a.n). */
function suffixOf(a: XaAtom, k: number): XaAtom {
  const n = a.n - k;
  const index = a.index + k * a.indexStep;
  const pfn = a.pfn + k * a.pfnStep;
  if (n < 2) return atomOf(index, pfn, a.count, 1, 0, 0);
  const r = atomOf(index, pfn, a.count, n, a.indexStep, a.pfnStep);
  const m = k <= n ? sumOf(a) : undefined;
  if (m !== undefined) {
    const head = sumRuns(a, 0, k);
    remember(r, (m.lo - head.lo) >>> 0, (m.hi - head.hi) >>> 0);
  }
  return r;
}

/** `a` followed by the first k runs of `b`. */
function concatOf(a: XaAtom, b: XaAtom, k: number): XaAtom {
  const r =
    a.n >= 2
      ? atomOf(a.index, a.pfn, a.count, a.n + k, a.indexStep, a.pfnStep)
      : atomOf(a.index, a.pfn, a.count, 1 + k, b.index - a.index, b.pfn - a.pfn);
  const ma = a.n >= 2 ? sumOf(a) : undefined;
  const mb = k >= 2 && k === b.n ? sumOf(b) : undefined;
  // Worth it only when a long side is remembered; a side of one run is one hash.
  if ((ma !== undefined || mb !== undefined) && (ma !== undefined || a.n === 1) && (mb !== undefined || k === 1)) {
    let lo = 0;
    let hi = 0;
    if (ma !== undefined) {
      lo = ma.lo;
      hi = ma.hi;
    } else {
      const one = sumRuns(a, 0, 1);
      lo = one.lo;
      hi = one.hi;
    }
    const other = mb ?? sumRuns(b, 0, 1);
    remember(r, (lo + other.lo) >>> 0, (hi + other.hi) >>> 0);
  }
  return r;
}

/** Position of the last run of `a` that starts at or before `at` (a.index <= at). */
function posOf(a: XaAtom, at: number): number {
  if (a.n === 1) return 0;
  const i = Math.floor((at - a.index) / a.indexStep);
  return i < a.n - 1 ? i : a.n - 1;
}

/** One past the last index of `a`'s last run. */
function atomEnd(a: XaAtom): number {
  return a.index + (a.n - 1) * a.indexStep + a.count;
}

/** How progression.ts groups the xarray's runs into atoms. */
export const xaProgressionOps: ProgressionOps<XaAtom> = {
  size: (a) => a.n,
  continues(a, b) {
    if (b.count !== a.count) return 0;
    const di = b.index - (a.index + (a.n - 1) * a.indexStep);
    const dp = b.pfn - (a.pfn + (a.n - 1) * a.pfnStep);
    if (a.n >= 2 && (di !== a.indexStep || dp !== a.pfnStep)) return 0;
    return b.n >= 2 && b.indexStep === di && b.pfnStep === dp ? b.n : 1;
  },
  concat: concatOf,
  drop: suffixOf,
};

export function xaCreate(): Xarray {
  return { runs: btreeCreate<number, XaAtom>(), digest: zeroDigest(), count: 0 };
}

/** The PFN stored at `index`. */
export function xaLoad(xa: Xarray, index: number): number | undefined {
  const a = btreeFloorValue(xa.runs, index);
  if (a === undefined) return undefined;
  if (a.n === 1) return index < a.index + a.count ? a.pfn + (index - a.index) : undefined;
  const i = posOf(a, index);
  const start = a.index + i * a.indexStep;
  return index < start + a.count ? a.pfn + i * a.pfnStep + (index - start) : undefined;
}

/** The whole run that holds `index` (a fresh object), or undefined when `index` is absent. */
export function xaRunAt(xa: Xarray, index: number): XaRun | undefined {
  const a = btreeFloorValue(xa.runs, index);
  if (a === undefined) return undefined;
  const i = posOf(a, index);
  const start = a.index + i * a.indexStep;
  return index < start + a.count ? { index: start, pfn: a.pfn + i * a.pfnStep, count: a.count } : undefined;
}

/** Number of runs (what a listing of the whole xarray yields; the tree holds fewer atoms). */
export function xaRunCount(xa: Xarray): number {
  let n = 0;
  btreeForEachFrom(xa.runs, undefined, (_index, a) => {
    n += a.n;
  });
  return n;
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
  if (head !== undefined && head.index < first && atomEnd(head) > first) {
    let i = posOf(head, first);
    let start = head.index + i * head.indexStep;
    if (start + head.count > first) {
      const n = Math.min(start + head.count - 1, last) - first + 1;
      if (fn(first, head.pfn + i * head.pfnStep + (first - start), n) === false) return;
    }
    for (i++, start += head.indexStep; i < head.n && start <= last; i++, start += head.indexStep) {
      const n = Math.min(start + head.count - 1, last) - start + 1;
      if (fn(start, head.pfn + i * head.pfnStep, n) === false) return;
    }
  }
  btreeForEachFrom(xa.runs, first, (index, a) => {
    if (index > last) return false;
    if (a.n === 1) return fn(index, a.pfn, Math.min(index + a.count - 1, last) - index + 1);
    for (let i = 0, start = index; i < a.n && start <= last; i++, start += a.indexStep) {
      if (fn(start, a.pfn + i * a.pfnStep, Math.min(start + a.count - 1, last) - start + 1) === false) return false;
    }
    return true;
  });
}

/** The present runs of [first, last], clipped, ascending, produced lazily (fresh objects). */
export function* xaRuns(xa: Xarray, first: number, last: number): Generator<XaRun> {
  const runs: XaRun[] = [];
  // A bounded batch at a time, by the walk of xaForEachRun: a long listing is never held whole.
  let from = first;
  while (from <= last) {
    runs.length = 0;
    xaForEachRun(xa, from, last, (index, pfn, count) => {
      runs.push({ index, pfn, count });
      return runs.length < 256;
    });
    if (runs.length === 0) return;
    const tail = runs[runs.length - 1] as XaRun;
    from = tail.index + tail.count;
    yield* runs;
  }
}

/** Number of present entries of `a` in [first, last]. */
function presentIn(a: XaAtom, first: number, last: number): number {
  if (a.n === 1) return Math.max(0, Math.min(a.index + a.count - 1, last) - Math.max(a.index, first) + 1);
  const step = a.indexStep;
  // Runs lo..hi are the ones that reach first and start at or before last.
  const lo = Math.max(0, Math.floor((first - a.index - a.count) / step) + 1);
  const hi = Math.min(a.n - 1, Math.floor((last - a.index) / step));
  if (lo > hi) return 0;
  const loStart = a.index + lo * step;
  const hiEnd = a.index + hi * step + a.count;
  return (hi - lo + 1) * a.count - Math.max(0, first - loStart) - Math.max(0, hiEnd - 1 - last);
}

/** Number of present entries in [first, last]. */
export function xaPresent(xa: Xarray, first: number, last: number): number {
  if (last < first) return 0;
  let n = 0;
  const head = btreeFloorValue(xa.runs, first);
  if (head !== undefined && head.index < first) n += presentIn(head, first, last);
  btreeForEachFrom(xa.runs, first, (index, a) => {
    if (index > last) return false;
    n += presentIn(a, first, last);
    return true;
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
  if (head !== undefined && atomEnd(head) > first) {
    const i = posOf(head, first);
    const start = head.index + i * head.indexStep;
    if (start + head.count <= first) return first;
    // Runs of one atom touch only when its index step is its count: then it is present to its end.
    pos = head.n >= 2 && head.indexStep === head.count ? atomEnd(head) : start + head.count;
    if (pos < atomEnd(head)) return pos <= last ? pos : undefined;
  }
  // Runs that stay separate may still be index-adjacent (a PFN gap): walk them.
  btreeForEachFrom(xa.runs, pos, (index, a) => {
    if (index !== pos || pos > last) return false;
    if (a.n === 1 || a.indexStep === a.count) {
      pos = atomEnd(a);
      return true;
    }
    pos = index + a.count;
    return false;
  });
  return pos <= last ? pos : undefined;
}

/*
 * The runs a write leaves in its window, built without arrays: at most three (what is left of the first run
 * it touches, the stored run, what is left of the last), merged as pushNew says. `newKept[k]` is set when the
 * same run was there before (neither hashed nor counted again).
 */
let newLen = 0;
const newIndex = [0, 0, 0];
const newPfn = [0, 0, 0];
const newCount = [0, 0, 0];
const newKept = [false, false, false];

/** Append a run, merging it into the previous one when they are index-adjacent and PFN-contiguous. */
function pushNew(index: number, pfn: number, count: number): void {
  const k = newLen - 1;
  if (
    k >= 0 &&
    (newIndex[k] as number) + (newCount[k] as number) === index &&
    (newPfn[k] as number) + (newCount[k] as number) === pfn
  ) {
    newCount[k] = (newCount[k] as number) + count;
    return;
  }
  newIndex[newLen] = index;
  newPfn[newLen] = pfn;
  newCount[newLen] = count;
  newKept[newLen] = false;
  newLen++;
}

/** How far dropOld has looked in the new runs: the old runs come in ascending order, as the new ones. */
let dropAt = 0;

/** The old run (index, pfn, count) leaves the window: kept when a new run equals it, else unhashed and uncounted. */
function dropOld(xa: Xarray, index: number, pfn: number, count: number): void {
  while (dropAt < newLen && (newIndex[dropAt] as number) < index) dropAt++;
  const k = dropAt;
  if (k < newLen && newIndex[k] === index && newPfn[k] === pfn && newCount[k] === count && !newKept[k]) {
    newKept[k] = true;
    return;
  }
  digestRemove3(xa.digest, index, pfn, count);
  xa.count -= count;
}

/** A write's new runs given as a list ([index, pfn, count], contiguous), or null for the one run of xaStore. */
let storeList: readonly (readonly [number, number, number])[] | null = null;

/** The new runs of a store over [index, end): the list's, or the one run pfn.. at index. */
function pushStored(index: number, pfn: number, end: number): void {
  if (storeList === null) pushNew(index, pfn, end - index);
  else for (const run of storeList) pushNew(run[0], run[1], run[2]);
}

/** Whether new run k is the run at position i of `a`. */
function newIsRun(k: number, a: XaAtom, i: number): boolean {
  return newIndex[k] === a.index + i * a.indexStep && newPfn[k] === a.pfn + i * a.pfnStep && newCount[k] === a.count;
}

/** Stored atoms a write replaces, in key order (reused: writes do not nest). */
const oldAtoms: XaAtom[] = [];
/** Stored atoms after the window that `regroup` was shown, in key order. */
const laterAtoms: XaAtom[] = [];
let laterFrom: XaAtom | undefined;
let laterTree: BTree<number, XaAtom> | undefined;

/** The i-th stored atom after the window (asked for in order 0, 1, ...). */
function laterAtom(i: number): XaAtom | undefined {
  while (laterAtoms.length <= i) {
    const prev = laterAtoms[laterAtoms.length - 1];
    const next = prev === undefined ? laterFrom : btreeCeilingValue(laterTree as BTree<number, XaAtom>, prev.index + 1);
    if (next === undefined) return undefined;
    laterAtoms.push(next);
  }
  return laterAtoms[i];
}

/** Copy `g`'s fields into the stored atom `o` (same key), writing only the fields that differ. */
function updateAtom(o: XaAtom, g: XaAtom): void {
  if (o.pfn !== g.pfn) o.pfn = g.pfn;
  if (o.count !== g.count) o.count = g.count;
  if (o.n !== g.n) o.n = g.n;
  if (o.indexStep !== g.indexStep) o.indexStep = g.indexStep;
  if (o.pfnStep !== g.pfnStep) o.pfnStep = g.pfnStep;
  const m = o.n >= 2 ? sumOf(g) : undefined;
  if (m !== undefined) atomSums.set(o, m);
}

/** Replace the stored atoms `olds` by `groups` (both ascending): same key in place, then removes and adds. */
function applyAtoms(tree: BTree<number, XaAtom>, olds: readonly XaAtom[], groups: readonly XaAtom[]): void {
  let i = 0;
  let j = 0;
  while (i < olds.length && j < groups.length) {
    const o = olds[i] as XaAtom;
    const g = groups[j] as XaAtom;
    if (o.index === g.index) {
      updateAtom(o, g);
      i++;
      j++;
    } else if (o.index < g.index) i++;
    else j++;
  }
  i = 0;
  j = 0;
  while (i < olds.length || j < groups.length) {
    const o = olds[i];
    const g = groups[j];
    if (o !== undefined && g !== undefined && o.index === g.index) {
      i++;
      j++;
    } else if (o !== undefined && (g === undefined || o.index < g.index)) {
      btreeDelete(tree, o.index);
      i++;
    } else if (g !== undefined) {
      btreeSet(tree, g.index, g);
      j++;
    }
  }
}

/**
 * Rewrite [index, end): store pfn.. there (`store`) or erase it, keeping what lies outside; returns how many
 * entries of the range were present before. A store also takes in the runs that end at `index` or start at
 * `end`, which it may merge with.
 */
function rewrite(xa: Xarray, index: number, end: number, store: boolean, pfn: number): number {
  const tree = xa.runs;
  // Runs that end after lo and start at or before hi are the window; the window is F .. T.
  const lo = store ? index - 1 : index;
  const hi = store ? end : end - 1;

  // B: the last run before the window; F: the first run after B.
  let bAtom: XaAtom | undefined;
  let bPos = 0;
  let fAtom: XaAtom | undefined;
  let fPos = 0;
  const p = btreeFloorValue(tree, lo);
  if (p !== undefined) {
    const i = posOf(p, lo);
    if (p.index + i * p.indexStep + p.count > lo) {
      fAtom = p;
      fPos = i;
      if (i > 0) {
        bAtom = p;
        bPos = i - 1;
      } else {
        bAtom = btreeFloorValue(tree, p.index - 1);
        if (bAtom !== undefined) bPos = bAtom.n - 1;
      }
    } else {
      bAtom = p;
      bPos = i;
      if (i + 1 < p.n) {
        fAtom = p;
        fPos = i + 1;
      } else fAtom = btreeCeilingValue(tree, lo + 1);
    }
  } else fAtom = btreeCeilingValue(tree, lo + 1);

  // A: the first run after the window; T: the last run before A.
  let aAtom: XaAtom | undefined;
  let aPos = 0;
  let tAtom: XaAtom | undefined;
  let tPos = 0;
  const q = btreeFloorValue(tree, hi);
  if (q !== undefined) {
    tAtom = q;
    tPos = posOf(q, hi);
    if (tPos + 1 < q.n) {
      aAtom = q;
      aPos = tPos + 1;
    } else aAtom = btreeCeilingValue(tree, hi + 1);
  } else aAtom = btreeCeilingValue(tree, hi + 1);

  const fIndex = fAtom === undefined ? Infinity : fAtom.index + fPos * fAtom.indexStep;
  const window = fAtom !== undefined && tAtom !== undefined && fIndex <= hi;

  newLen = 0;
  if (window) {
    const f = fAtom as XaAtom;
    const t = tAtom as XaAtom;
    const fPfn = f.pfn + fPos * f.pfnStep;
    if (fIndex < index) pushNew(fIndex, fPfn, Math.min(fIndex + f.count, index) - fIndex);
    if (store) pushStored(index, pfn, end);
    const tIndex = t.index + tPos * t.indexStep;
    const tEnd = tIndex + t.count;
    if (tEnd > end) {
      const s = Math.max(tIndex, end);
      pushNew(s, t.pfn + tPos * t.pfnStep + (s - tIndex), tEnd - s);
    }
  } else if (store) pushStored(index, pfn, end);

  // Unhash the window's runs (keeping those a new run repeats), counting the entries of the range.
  let present = 0;
  dropAt = 0;
  if (window) {
    let a = fAtom as XaAtom;
    let i = fPos;
    const t = tAtom as XaAtom;
    for (;;) {
      const lastPos = a.index === t.index ? tPos : a.n - 1;
      for (let start = a.index + i * a.indexStep; i <= lastPos; i++, start += a.indexStep) {
        const s = Math.max(start, index);
        const e = Math.min(start + a.count, end);
        if (e > s) present += e - s;
        dropOld(xa, start, a.pfn + i * a.pfnStep, a.count);
      }
      if (a.index === t.index) break;
      a = btreeCeilingValue(tree, a.index + 1) as XaAtom;
      i = 0;
    }
  }
  let keptAll = true;
  for (let k = 0; k < newLen; k++) {
    if (newKept[k]) continue;
    keptAll = false;
    digestAdd3(xa.digest, newIndex[k] as number, newPfn[k] as number, newCount[k] as number);
    xa.count += newCount[k] as number;
  }
  // Nothing changed: the window's runs are the new ones.
  if (keptAll && (!window || ((fAtom as XaAtom).index === (tAtom as XaAtom).index && fPos === tPos && newLen === 1)))
    return present;

  // A run kept at either edge stays where it is: the window shrinks to what changed.
  let newFrom = 0;
  let newTo = newLen;
  if (window && newLen > 0 && newKept[0] && newIsRun(0, fAtom as XaAtom, fPos)) {
    bAtom = fAtom;
    bPos = fPos;
    newFrom = 1;
  }
  if (window && newTo > newFrom && newKept[newTo - 1] && newIsRun(newTo - 1, tAtom as XaAtom, tPos)) {
    aAtom = tAtom;
    aPos = tPos;
    newTo--;
  }

  // Regroup from the atom holding B (cut after B) through the new runs into the atom holding A (cut before A).
  const input: XaAtom[] = [];
  if (bAtom !== undefined) input.push(bPos === bAtom.n - 1 ? bAtom : prefixOf(bAtom, bPos + 1));
  for (let k = newFrom; k < newTo; k++)
    input.push(atomOf(newIndex[k] as number, newPfn[k] as number, newCount[k] as number, 1, 0, 0));
  if (aAtom !== undefined && aPos > 0) input.push(suffixOf(aAtom, aPos));

  // The stored atoms replaced: from B's to A's (A's only when A is not its first run).
  oldAtoms.length = 0;
  const lastKey = aAtom === undefined ? Infinity : aPos > 0 ? aAtom.index : aAtom.index - 1;
  btreeForEachFrom(tree, bAtom?.index, (key, a) => {
    if (key > lastKey) return false;
    oldAtoms.push(a);
    return true;
  });
  if (input.length === 0) {
    applyAtoms(tree, oldAtoms, []);
    return present;
  }
  laterAtoms.length = 0;
  laterTree = tree;
  laterFrom = aAtom === undefined ? undefined : aPos > 0 ? btreeCeilingValue(tree, aAtom.index + 1) : aAtom;
  const { groups, replaced } = regroup(xaProgressionOps, input, laterAtom);
  for (let k = 0; k < replaced; k++) oldAtoms.push(laterAtoms[k] as XaAtom);
  laterFrom = undefined;
  laterTree = undefined;
  laterAtoms.length = 0;
  applyAtoms(tree, oldAtoms, groups);
  oldAtoms.length = 0;
  return present;
}

/**
 * Store pfn..pfn+count-1 at index..index+count-1, overwriting what is there; returns how many of those
 * entries were present before (the kernel's callers WARN when that is not 0).
 */
export function xaStore(xa: Xarray, index: number, pfn: number, count = 1): number {
  if (count <= 0) return 0;
  markWritten(xa);
  return rewrite(xa, index, index + count, true, pfn);
}

/**
 * Store the runs `[index, pfn, count]` (ascending, each starting where the one before ends, as one call of
 * pages_to_xarray stores them) as one write: the entries and digest of storing each in turn, with one
 * regroup. Returns how many entries of their range were present before.
 */
export function xaStoreRuns(xa: Xarray, runs: readonly (readonly [number, number, number])[]): number {
  const first = runs[0];
  if (first === undefined) return 0;
  let end = first[0];
  for (const run of runs) {
    if (run[0] !== end || run[2] <= 0) {
      // Not one contiguous range: store them one by one.
      let present = 0;
      for (const r of runs) present += xaStore(xa, r[0], r[1], r[2]);
      return present;
    }
    end += run[2];
  }
  markWritten(xa);
  storeList = runs;
  try {
    return rewrite(xa, first[0], end, true, 0);
  } finally {
    storeList = null;
  }
}

/** Erase the entries index..index+count-1; returns how many of them were present. */
export function xaErase(xa: Xarray, index: number, count = 1): number {
  if (count <= 0) return 0;
  markWritten(xa);
  return rewrite(xa, index, index + count, false, 0);
}

/**
 * d += the digest of the atom `a`'s runs, remembered per atom: a self-check after every op hashes only the
 * atoms that changed, and of an atom that grew or shrank at its end only the runs it gained or lost.
 */
function addAtomDigest(d: Digest, a: XaAtom): void {
  if (a.n === 1) {
    digestAddTriple(d, a, a.index, a.pfn, a.count);
    return;
  }
  let memo = atomSums.get(a);
  if (
    memo === undefined ||
    memo.index !== a.index ||
    memo.pfn !== a.pfn ||
    memo.count !== a.count ||
    (memo.n >= 2 && (memo.indexStep !== a.indexStep || memo.pfnStep !== a.pfnStep)) ||
    // Cut to a short head: hashing the head again is cheaper than taking the rest away.
    memo.n - a.n > a.n
  ) {
    memo = {
      index: a.index,
      pfn: a.pfn,
      count: a.count,
      n: 0,
      indexStep: a.indexStep,
      pfnStep: a.pfnStep,
      lo: 0,
      hi: 0,
    };
    atomSums.set(a, memo);
  }
  const sum = { lo: memo.lo, hi: memo.hi };
  // Runs the memo lacks are added, runs it has beyond the atom's end are taken away.
  for (let i = memo.n; i < a.n; i++) digestAdd3(sum, a.index + i * a.indexStep, a.pfn + i * a.pfnStep, a.count);
  for (let i = a.n; i < memo.n; i++) digestRemove3(sum, a.index + i * a.indexStep, a.pfn + i * a.pfnStep, a.count);
  memo.n = a.n;
  memo.indexStep = a.indexStep;
  memo.pfnStep = a.pfnStep;
  memo.lo = sum.lo;
  memo.hi = sum.hi;
  d.lo = (d.lo + sum.lo) >>> 0;
  d.hi = (d.hi + sum.hi) >>> 0;
}

/** Digest of the runs recomputed from scratch (for checks and tests). */
export function xaDigest(xa: Xarray): Digest {
  const d = zeroDigest();
  btreeForEachFrom(xa.runs, undefined, (_index, a) => {
    addAtomDigest(d, a);
  });
  return d;
}

/** Self-check: null if the runs are disjoint, canonical, and agree with `count` and `digest`. */
export function xaCheck(xa: Xarray): string | null {
  let err: string | null = null;
  let prev: XaAtom | undefined;
  let prevEnd = -Infinity;
  let prevPfnEnd = -Infinity;
  let present = 0;
  btreeForEachFrom(xa.runs, undefined, (index, a) => {
    const { count, n } = a;
    if (a.index !== index) err = `atom at ${index} says it starts at ${a.index}`;
    else if (!Number.isInteger(count) || count <= 0) err = `atom at ${index} has count ${count}`;
    else if (!Number.isInteger(n) || n <= 0) err = `atom at ${index} has ${n} runs`;
    else if (n === 1 && (a.indexStep !== 0 || a.pfnStep !== 0)) err = `atom at ${index} of one run has steps`;
    else if (n >= 2 && !(Number.isInteger(a.indexStep) && a.indexStep >= count && Number.isInteger(a.pfnStep)))
      err = `atom at ${index} has runs that overlap or are out of order (index step ${a.indexStep})`;
    else if (n >= 2 && a.indexStep === count && a.pfnStep === count)
      err = `atom at ${index} holds runs that should merge`;
    else if (index < prevEnd) err = `atom at ${index} overlaps the previous one`;
    else if (index === prevEnd && a.pfn === prevPfnEnd) err = `run at ${index} should merge with the previous one`;
    else if (prev !== undefined && xaProgressionOps.continues(prev, a) !== 0)
      err = `atom at ${index} continues the progression of the atom before it`;
    if (err !== null) return false;
    present += n * count;
    prevEnd = atomEnd(a);
    prevPfnEnd = a.pfn + (n - 1) * a.pfnStep + count;
    prev = a;
    return true;
  });
  if (err !== null) return err;
  if (present !== xa.count) return `count is ${xa.count} but runs hold ${present} entries`;
  const d = xaDigest(xa);
  if (d.lo !== xa.digest.lo || d.hi !== xa.digest.hi) return 'digest differs from the digest of the runs';
  return null;
}

/** Where the stored atoms stop being the canonical grouping of the runs, or -1 (for tests). */
export function xaCanonicalBreak(xa: Xarray): number {
  const atoms: XaAtom[] = [];
  btreeForEachFrom(xa.runs, undefined, (_index, a) => void atoms.push(a));
  return canonicalBreak(xaProgressionOps, atoms);
}

/**
 * Put an xarray whose tree may hold runs without the atom fields (as a snapshot of format 1 or 2 holds
 * them: each one run) into canonical form, in place. The runs, count and digest stay as they are.
 */
export function xaRegroupAll(xa: Xarray): void {
  const tree = btreeCreate<number, XaAtom>();
  let open: XaAtom | undefined;
  btreeForEachFrom(xa.runs, undefined, (_key, stored) => {
    const old = stored as XaRun & Partial<XaAtom>;
    const n = old.n ?? 1;
    const indexStep = n >= 2 ? (old.indexStep as number) : 0;
    const pfnStep = n >= 2 ? (old.pfnStep as number) : 0;
    for (let i = 0; i < n; i++) {
      const index = old.index + i * indexStep;
      const pfn = old.pfn + i * pfnStep;
      if (open !== undefined && open.count === old.count) {
        const di = index - (open.index + (open.n - 1) * open.indexStep);
        const dp = pfn - (open.pfn + (open.n - 1) * open.pfnStep);
        if (open.n === 1) {
          open.n = 2;
          open.indexStep = di;
          open.pfnStep = dp;
          continue;
        }
        if (di === open.indexStep && dp === open.pfnStep) {
          open.n++;
          continue;
        }
      }
      if (open !== undefined) btreeSet(tree, open.index, open);
      open = atomOf(index, pfn, old.count, 1, 0, 0);
    }
  });
  if (open !== undefined) btreeSet(tree, open.index, open);
  markWritten(xa);
  xa.runs = tree;
}
