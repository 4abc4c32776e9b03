// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel's interval tree (lib/interval_tree.c, include/linux/interval_tree.h): a multiset of closed
 * intervals `[start, last]` (`last` inclusive) that may overlap, with "first node intersecting [first, last]"
 * and "next intersecting node after this one".
 *
 * Shape: an AVL tree of plain nodes augmented with `maxLast` (the largest `last` in the subtree), ordered by
 * `(start, seq)`. `seq` is a per-tree insertion counter, so among equal starts the node inserted later sorts
 * after, as the kernel's rbtree places an equal start to the right. A second AVL tree (`byId`) indexes the
 * nodes by caller id so duplicate-id inserts and removals of absent nodes are detected in O(log n).
 *
 * Invariants (checked by itreeCheck): `start <= last`; in-order `(start, seq)` strictly ascends; every node
 * has |height(left) - height(right)| <= 1 and correct `height` and `maxLast`; ids are unique and `byId` holds
 * exactly the nodes of `root`; `count` is the number of nodes; `digest` is the sum of
 * hashParts([start, last, id]) over the nodes; all keys of one tree are numbers or all are bigints.
 *
 * Plain data only (immer drafts, v8.serialize): mutators rewrite the root-to-node path in place and never
 * compare nodes by identity, since under immer the same node is a different proxy on each read.
 *
 * Deviations: the kernel's rbtree is replaced by AVL (same order, same results, different shape), and
 * "next" searches from the root by `(start, seq)` instead of walking parent pointers, so it also works when
 * `prev` has since been removed. Removing a node that is not in the tree returns false instead of
 * corrupting the tree; the caller records the violation. An insert or remove that changes the tree marks it
 * written (write-marks.ts).
 */

import { type Digest, digestAdd3, digestAddTriple, digestRemove3, zeroDigest } from '../lib/digest.js';
import { markWritten } from './write-marks.js';

/** Indexes are numbers, IOVAs are bigints; one tree never mixes the two. */
export type Key = number | bigint;

export interface ItreeNode<K extends Key> {
  id: number;
  seq: number;
  start: K;
  last: K;
  /** Largest `last` in this subtree. */
  maxLast: K;
  height: number;
  left: ItreeNode<K> | null;
  right: ItreeNode<K> | null;
}

/** A node of the id index: where the node with this id sits in the interval order. */
export interface ItreeIdNode<K extends Key> {
  id: number;
  seq: number;
  start: K;
  last: K;
  height: number;
  left: ItreeIdNode<K> | null;
  right: ItreeIdNode<K> | null;
}

export interface IntervalTree<K extends Key> {
  root: ItreeNode<K> | null;
  byId: ItreeIdNode<K> | null;
  count: number;
  /** The `seq` the next inserted node gets. */
  nextSeq: number;
  digest: Digest;
}

/** A copy of one node's interval, safe to keep while the tree changes. */
export interface ItreeEntry<K extends Key> {
  id: number;
  seq: number;
  start: K;
  last: K;
}

/** `k + 1` in the key's own type. */
export function keyInc<K extends Key>(k: K): K {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- without it `+` mixes number and bigint
  return (typeof k === 'bigint' ? k + 1n : (k as number) + 1) as K;
}

/** `k - 1` in the key's own type. */
export function keyDec<K extends Key>(k: K): K {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- without it `-` mixes number and bigint
  return (typeof k === 'bigint' ? k - 1n : (k as number) - 1) as K;
}

export function keyMin<K extends Key>(a: K, b: K): K {
  return a < b ? a : b;
}

export function keyMax<K extends Key>(a: K, b: K): K {
  return a < b ? b : a;
}

/** Create an empty tree. */
export function itreeCreate<K extends Key>(): IntervalTree<K> {
  return { root: null, byId: null, count: 0, nextSeq: 0, digest: zeroDigest() };
}

// ---- AVL core, shared by the interval order and the id index ----------------------------------------------

interface AvlNode<N> {
  height: number;
  left: N | null;
  right: N | null;
}

/** Recompute a node's derived fields from its children. */
type Fix<N> = (n: N) => void;

function heightOf<N extends AvlNode<N>>(n: N | null): number {
  return n === null ? 0 : n.height;
}

function rotateRight<N extends AvlNode<N>>(n: N, l: N, fix: Fix<N>): N {
  n.left = l.right;
  l.right = n;
  fix(n);
  fix(l);
  return l;
}

function rotateLeft<N extends AvlNode<N>>(n: N, r: N, fix: Fix<N>): N {
  n.right = r.left;
  r.left = n;
  fix(n);
  fix(r);
  return r;
}

/** Fix `n` and restore the AVL balance at it; returns the subtree's new root. */
function rebalance<N extends AvlNode<N>>(n: N, fix: Fix<N>): N {
  fix(n);
  const balance = heightOf(n.left) - heightOf(n.right);
  if (balance > 1 && n.left !== null) {
    const l = n.left;
    if (heightOf(l.left) < heightOf(l.right) && l.right !== null) n.left = rotateLeft(l, l.right, fix);
    return rotateRight(n, n.left, fix);
  }
  if (balance < -1 && n.right !== null) {
    const r = n.right;
    if (heightOf(r.right) < heightOf(r.left) && r.left !== null) n.right = rotateRight(r, r.left, fix);
    return rotateLeft(n, n.right, fix);
  }
  return n;
}

/** Insert `node` (children null); `before(a, b)` orders nodes. Returns the new root. */
function avlInsert<N extends AvlNode<N>>(root: N | null, node: N, before: (a: N, b: N) => boolean, fix: Fix<N>): N {
  if (root === null) {
    fix(node);
    return node;
  }
  if (before(node, root)) root.left = avlInsert(root.left, node, before, fix);
  else root.right = avlInsert(root.right, node, before, fix);
  return rebalance(root, fix);
}

/** Detach the leftmost node of a non-empty subtree; returns it and the subtree's new root. */
function avlRemoveMin<N extends AvlNode<N>>(root: N, fix: Fix<N>): { root: N | null; min: N } {
  if (root.left === null) {
    const rest = root.right;
    root.right = null;
    return { root: rest, min: root };
  }
  const { root: left, min } = avlRemoveMin(root.left, fix);
  root.left = left;
  return { root: rebalance(root, fix), min };
}

/**
 * Remove the node that `cmp` points at: `cmp(n)` < 0 if the target sorts before n, > 0 after, 0 if n is it.
 * The caller has already established that the target is present.
 */
function avlRemove<N extends AvlNode<N>>(root: N | null, cmp: (n: N) => number, fix: Fix<N>): N | null {
  if (root === null) return null;
  const c = cmp(root);
  if (c < 0) {
    root.left = avlRemove(root.left, cmp, fix);
    return rebalance(root, fix);
  }
  if (c > 0) {
    root.right = avlRemove(root.right, cmp, fix);
    return rebalance(root, fix);
  }
  const { left, right } = root;
  root.left = null;
  root.right = null;
  if (left === null) return right;
  if (right === null) return left;
  const { root: rest, min } = avlRemoveMin(right, fix);
  min.left = left;
  min.right = rest;
  return rebalance(min, fix);
}

// ---- interval order ---------------------------------------------------------------------------------------

function fixNode<K extends Key>(n: ItreeNode<K>): void {
  let maxLast = n.last;
  let height = 0;
  if (n.left !== null) {
    maxLast = keyMax(maxLast, n.left.maxLast);
    height = n.left.height;
  }
  if (n.right !== null) {
    maxLast = keyMax(maxLast, n.right.maxLast);
    height = Math.max(height, n.right.height);
  }
  n.maxLast = maxLast;
  n.height = height + 1;
}

function fixIdNode<K extends Key>(n: ItreeIdNode<K>): void {
  n.height = Math.max(heightOf(n.left), heightOf(n.right)) + 1;
}

/** Does key (aStart, aSeq) sort before (bStart, bSeq)? */
function keyBefore<K extends Key>(aStart: K, aSeq: number, bStart: K, bSeq: number): boolean {
  return aStart < bStart || (aStart === bStart && aSeq < bSeq);
}

function findById<K extends Key>(tree: IntervalTree<K>, id: number): ItreeIdNode<K> | null {
  let n = tree.byId;
  while (n !== null && n.id !== id) n = id < n.id ? n.left : n.right;
  return n;
}

function toEntry<K extends Key>(n: ItreeNode<K>): ItreeEntry<K> {
  return { id: n.id, seq: n.seq, start: n.start, last: n.last };
}

function checkKeyType<K extends Key>(tree: IntervalTree<K>, start: K, last: K): void {
  const kind = typeof start;
  if (typeof last !== kind || (tree.root !== null && typeof tree.root.start !== kind)) {
    throw new TypeError(`interval tree keys must all be numbers or all bigints (got ${kind} and ${typeof last})`);
  }
}

/**
 * Insert `[start, last]` under `id`. Returns false and leaves the tree unchanged if `id` is already in the
 * tree or `start > last`.
 */
export function itreeInsert<K extends Key>(tree: IntervalTree<K>, id: number, start: K, last: K): boolean {
  checkKeyType(tree, start, last);
  if (start > last || findById(tree, id) !== null) return false;
  markWritten(tree);
  const seq = tree.nextSeq;
  const node: ItreeNode<K> = { id, seq, start, last, maxLast: last, height: 1, left: null, right: null };
  tree.root = avlInsert(tree.root, node, (a, b) => keyBefore(a.start, a.seq, b.start, b.seq), fixNode);
  const idNode: ItreeIdNode<K> = { id, seq, start, last, height: 1, left: null, right: null };
  tree.byId = avlInsert(tree.byId, idNode, (a, b) => a.id < b.id, fixIdNode);
  tree.nextSeq = seq + 1;
  tree.count += 1;
  digestAdd3(tree.digest, start, last, id);
  return true;
}

/**
 * Remove the node `id` with bounds `[start, last]`. Returns false and leaves the tree unchanged if no such
 * node is in the tree (the kernel would corrupt its rbtree: the caller reports a violation).
 */
export function itreeRemove<K extends Key>(tree: IntervalTree<K>, id: number, start: K, last: K): boolean {
  const found = findById(tree, id);
  if (found === null || found.start !== start || found.last !== last) return false;
  markWritten(tree);
  const seq = found.seq;
  tree.root = avlRemove(
    tree.root,
    (n) => (keyBefore(start, seq, n.start, n.seq) ? -1 : keyBefore(n.start, n.seq, start, seq) ? 1 : 0),
    fixNode,
  );
  tree.byId = avlRemove(tree.byId, (n) => (id < n.id ? -1 : id > n.id ? 1 : 0), fixIdNode);
  tree.count -= 1;
  digestRemove3(tree.digest, start, last, id);
  return true;
}

/** Is the node `id` with bounds `[start, last]` in the tree? */
export function itreeFind<K extends Key>(tree: IntervalTree<K>, id: number, start: K, last: K): boolean {
  const found = findById(tree, id);
  return found !== null && found.start === start && found.last === last;
}

/**
 * Lowest node of a subtree intersecting [first, last], given that the subtree's maxLast >= first.
 * If the subtree has such a maxLast but no intersecting node, then some node in it starts beyond `last`,
 * and so does every node after it: the caller can stop looking.
 */
function lowestIntersecting<K extends Key>(n: ItreeNode<K>, first: K, last: K): ItreeNode<K> | null {
  let cur: ItreeNode<K> | null = n;
  while (cur !== null) {
    if (cur.left !== null && cur.left.maxLast >= first) {
      cur = cur.left;
      continue;
    }
    if (cur.start > last) return null;
    if (cur.last >= first) return cur;
    cur = cur.right;
    if (cur === null || cur.maxLast < first) return null;
  }
  return null;
}

/** Lowest node after key (aStart, aSeq) intersecting [first, last]. */
function lowestIntersectingAfter<K extends Key>(
  n: ItreeNode<K> | null,
  aStart: K,
  aSeq: number,
  first: K,
  last: K,
): ItreeNode<K> | null {
  if (n === null || n.maxLast < first) return null;
  if (!keyBefore(aStart, aSeq, n.start, n.seq)) return lowestIntersectingAfter(n.right, aStart, aSeq, first, last);
  const inLeft = lowestIntersectingAfter(n.left, aStart, aSeq, first, last);
  if (inLeft !== null) return inLeft;
  if (n.start > last) return null;
  if (n.last >= first) return n;
  if (n.right === null || n.right.maxLast < first) return null;
  return lowestIntersecting(n.right, first, last);
}

/** The lowest `(start, seq)` node intersecting [first, last], or null. O(log n). */
export function itreeIterFirst<K extends Key>(tree: IntervalTree<K>, first: K, last: K): ItreeEntry<K> | null {
  if (tree.root === null || tree.root.maxLast < first) return null;
  const n = lowestIntersecting(tree.root, first, last);
  return n === null ? null : toEntry(n);
}

/**
 * The next node after `prev` in `(start, seq)` order that intersects [first, last], or null. O(log n).
 * `prev` is located by its `(start, seq)`, so it need not still be in the tree.
 */
export function itreeIterNext<K extends Key>(
  tree: IntervalTree<K>,
  prev: ItreeEntry<K>,
  first: K,
  last: K,
): ItreeEntry<K> | null {
  const n = lowestIntersectingAfter(tree.root, prev.start, prev.seq, first, last);
  return n === null ? null : toEntry(n);
}

/** All nodes in `(start, seq)` order. */
export function itreeEntries<K extends Key>(tree: IntervalTree<K>): ItreeEntry<K>[] {
  const out: ItreeEntry<K>[] = [];
  const stack: ItreeNode<K>[] = [];
  let cur = tree.root;
  while (cur !== null || stack.length > 0) {
    while (cur !== null) {
      stack.push(cur);
      cur = cur.left;
    }
    const n = stack.pop();
    if (n === undefined) break;
    out.push(toEntry(n));
    cur = n.right;
  }
  return out;
}

/** Digest of a tree's nodes computed from scratch (what `tree.digest` must equal). */
export function itreeDigestOf<K extends Key>(tree: IntervalTree<K>): Digest {
  const d = zeroDigest();
  for (const e of itreeEntries(tree)) digestAdd3(d, e.start, e.last, e.id);
  return d;
}

/** Structural self-check: null when every invariant of the header comment holds, else what is wrong. */
export function itreeCheck<K extends Key>(tree: IntervalTree<K>): string | null {
  return itreeSound(tree) ? null : itreeProblems(tree);
}

// ---- the self-check's fast path ---------------------------------------------------------------------------

/** What itreeSound's walks carry from node to node (module state: the walks allocate nothing). */
const sound = {
  kind: '' as string,
  nextSeq: 0,
  nodes: 0,
  prevStart: null as Key | null,
  prevSeq: 0,
  prevId: 0,
  ids: 0,
  digest: zeroDigest(),
  seqs: new Float64Array(64),
};

/**
 * True only when itreeProblems finds nothing: the same invariants, asked of each node against its
 * children's stored height and maxLast (which the children's own checks vouch for), without the entries,
 * copies and sorts the problems' text needs. When it says false, itreeProblems names what is wrong.
 */
function itreeSound<K extends Key>(tree: IntervalTree<K>): boolean {
  sound.kind = tree.root === null ? '' : typeof tree.root.start;
  sound.nextSeq = tree.nextSeq;
  sound.nodes = 0;
  sound.prevStart = null;
  sound.ids = 0;
  sound.digest.lo = 0;
  sound.digest.hi = 0;
  if (!soundNodes(tree, tree.root) || !soundIds(tree.byId)) return false;
  if (sound.nodes !== tree.count || sound.ids !== sound.nodes) return false;
  if (sound.digest.lo !== tree.digest.lo || sound.digest.hi !== tree.digest.hi) return false;
  // The id index and the tree agree node for node (soundNodes found each node's id entry): with distinct
  // seqs, itreeProblems' lists sorted by seq are then equal pair by pair.
  const seqs = sound.seqs.subarray(0, sound.nodes).sort();
  for (let i = 1; i < seqs.length; i++) if (!((seqs[i - 1] as number) < (seqs[i] as number))) return false;
  return true;
}

function soundNodes<K extends Key>(tree: IntervalTree<K>, n: ItreeNode<K> | null): boolean {
  if (n === null) return true;
  if (!soundNodes(tree, n.left)) return false;
  const { start, last, seq } = n;
  if (typeof start !== sound.kind || typeof last !== sound.kind || start > last || typeof seq !== 'number')
    return false;
  if (seq < 0 || seq >= sound.nextSeq) return false;
  const prev = sound.prevStart as K | null;
  if (prev !== null && !keyBefore(prev, sound.prevSeq, start, seq)) return false;
  sound.prevStart = start;
  sound.prevSeq = seq;
  const lh = heightOf(n.left);
  const rh = heightOf(n.right);
  if (Math.abs(lh - rh) > 1 || n.height !== Math.max(lh, rh) + 1) return false;
  let maxLast = last;
  if (n.left !== null) maxLast = keyMax(maxLast, n.left.maxLast);
  if (n.right !== null) maxLast = keyMax(maxLast, n.right.maxLast);
  if (n.maxLast !== maxLast) return false;
  const entry = findById(tree, n.id);
  if (entry === null || entry.seq !== seq || entry.start !== start || entry.last !== last) return false;
  if (sound.nodes === sound.seqs.length) {
    const more = new Float64Array(sound.seqs.length * 2);
    more.set(sound.seqs);
    sound.seqs = more;
  }
  sound.seqs[sound.nodes] = seq;
  sound.nodes += 1;
  digestAddTriple(sound.digest, n, start, last, n.id);
  return soundNodes(tree, n.right);
}

function soundIds<K extends Key>(n: ItreeIdNode<K> | null): boolean {
  if (n === null) return true;
  if (!soundIds(n.left)) return false;
  if (sound.ids > 0 && !(sound.prevId < n.id)) return false;
  sound.prevId = n.id;
  sound.ids += 1;
  const lh = heightOf(n.left);
  const rh = heightOf(n.right);
  if (Math.abs(lh - rh) > 1 || n.height !== Math.max(lh, rh) + 1) return false;
  return soundIds(n.right);
}

/** Every problem of a tree, named (the self-check's slow path; exported so tests hold the two together). */
export function itreeProblems<K extends Key>(tree: IntervalTree<K>): string | null {
  const problems: string[] = [];
  const entries: ItreeEntry<K>[] = [];
  let kind: string | null = null;

  // What itreeDigestOf gives, summed during the walk (a node's hash is remembered while its interval stays).
  const digest = zeroDigest();
  const walk = (n: ItreeNode<K> | null): { height: number; maxLast: K | null } => {
    if (n === null) return { height: 0, maxLast: null };
    const l = walk(n.left);
    entries.push(toEntry(n));
    digestAddTriple(digest, n, n.start, n.last, n.id);
    const r = walk(n.right);
    // Named only when something is wrong: building the text for every sound node costs more than the check.
    const where = (): string => `node ${n.id} [${n.start}, ${n.last}]`;
    kind ??= typeof n.start;
    if (typeof n.start !== kind || typeof n.last !== kind) problems.push(`${where()}: keys mix numbers and bigints`);
    if (n.start > n.last) problems.push(`${where()}: start > last`);
    if (n.seq < 0 || n.seq >= tree.nextSeq) problems.push(`${where()}: seq ${n.seq} not below nextSeq ${tree.nextSeq}`);
    if (Math.abs(l.height - r.height) > 1) problems.push(`${where()}: unbalanced (${l.height} vs ${r.height})`);
    const height = Math.max(l.height, r.height) + 1;
    if (n.height !== height) problems.push(`${where()}: height ${n.height}, expected ${height}`);
    let maxLast = n.last;
    if (l.maxLast !== null) maxLast = keyMax(maxLast, l.maxLast);
    if (r.maxLast !== null) maxLast = keyMax(maxLast, r.maxLast);
    if (n.maxLast !== maxLast) problems.push(`${where()}: maxLast ${n.maxLast}, expected ${maxLast}`);
    return { height, maxLast };
  };
  walk(tree.root);

  for (let i = 1; i < entries.length; i++) {
    const a = entries[i - 1] as ItreeEntry<K>;
    const b = entries[i] as ItreeEntry<K>;
    if (!keyBefore(a.start, a.seq, b.start, b.seq)) {
      problems.push(`nodes ${a.id} and ${b.id} out of (start, seq) order`);
    }
  }
  if (entries.length !== tree.count) problems.push(`count ${tree.count}, but ${entries.length} nodes`);

  const ids: ItreeIdNode<K>[] = [];
  const walkIds = (n: ItreeIdNode<K> | null): number => {
    if (n === null) return 0;
    const lh = walkIds(n.left);
    ids.push(n);
    const rh = walkIds(n.right);
    if (Math.abs(lh - rh) > 1) problems.push(`id index node ${n.id}: unbalanced (${lh} vs ${rh})`);
    const height = Math.max(lh, rh) + 1;
    if (n.height !== height) problems.push(`id index node ${n.id}: height ${n.height}, expected ${height}`);
    return height;
  };
  walkIds(tree.byId);
  for (let i = 1; i < ids.length; i++) {
    const a = ids[i - 1] as ItreeIdNode<K>;
    const b = ids[i] as ItreeIdNode<K>;
    if (!(a.id < b.id)) problems.push(`id index: ${a.id} and ${b.id} out of order or duplicated`);
  }
  const byId = [...ids].sort((a, b) => a.seq - b.seq);
  const bySeq = [...entries].sort((a, b) => a.seq - b.seq);
  if (byId.length !== bySeq.length) {
    problems.push(`id index holds ${byId.length} nodes, tree holds ${bySeq.length}`);
  } else {
    for (let i = 0; i < byId.length; i++) {
      const a = byId[i] as ItreeIdNode<K>;
      const b = bySeq[i] as ItreeEntry<K>;
      if (a.id !== b.id || a.seq !== b.seq || a.start !== b.start || a.last !== b.last) {
        problems.push(`id index entry ${a.id} (seq ${a.seq}) disagrees with tree node ${b.id} (seq ${b.seq})`);
        break;
      }
    }
  }

  if (digest.lo !== tree.digest.lo || digest.hi !== tree.digest.hi)
    problems.push('digest differs from its recomputation');
  return problems.length === 0 ? null : problems.join('; ');
}
