// SPDX-License-Identifier: GPL-2.0-only
/**
 * An ordered map made of small plain nodes: the container under every large collection of the state.
 *
 * A B+tree. Leaves hold the entries (`keys[i]` -> `vals[i]`); a branch holds `children` and the separators
 * `keys` between them (`keys.length === children.length - 1`). Every key in `children[i]` is `>= keys[i - 1]`
 * and `< keys[i]`; separators need not be present keys (a delete leaves them in place).
 *
 * Invariants: keys ascend strictly; all leaves are at the same depth; every node except the root holds
 * between `floor(max / 2)` and `max` entries (leaves) or children (branches); an empty tree is an empty leaf
 * root; `size` counts the entries.
 *
 * Why a tree of nodes: the state is mutated through immer drafts for interactive time travel, and a produce
 * copies every object on the path it writes. With nodes of about 32 slots a write copies O(depth) small
 * arrays, never the whole collection. For the same reason nothing here compares nodes by identity across
 * calls (under immer they are proxies), and values are stored as given, never cloned.
 *
 * Keys are all numbers or all bigints within one tree (compared with `<` and `===`). The functions are not
 * re-entrant over one tree: do not mutate a tree while one of its iterators is live. btreeSet and btreeDelete
 * mark the tree written (write-marks.ts): nothing else changes its nodes.
 */

import { markWritten } from './write-marks.js';

export type Key = number | bigint;

export interface BTreeLeaf<K extends Key, V> {
  leaf: true;
  keys: K[];
  vals: V[];
}

export interface BTreeBranch<K extends Key, V> {
  leaf: false;
  keys: K[];
  children: BTreeNode<K, V>[];
}

export type BTreeNode<K extends Key, V> = BTreeLeaf<K, V> | BTreeBranch<K, V>;

export interface BTree<K extends Key, V> {
  root: BTreeNode<K, V>;
  size: number;
  /** Node capacity: most entries in a leaf and most children in a branch. */
  max: number;
}

/** Default node capacity. */
export const BTREE_MAX = 32;

/** Create an empty tree; `max` (at least 4) is the node capacity, small values only for tests. */
export function btreeCreate<K extends Key, V>(max: number = BTREE_MAX): BTree<K, V> {
  if (!Number.isInteger(max) || max < 4)
    throw new RangeError(`btree node capacity must be an integer >= 4, got ${max}`);
  return { root: { leaf: true, keys: [], vals: [] }, size: 0, max };
}

/** First i with keys[i] >= key (keys.length if none). */
function lowerBound<K extends Key>(keys: readonly K[], key: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as K) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First i with keys[i] > key: the child of a branch that may hold `key`. */
function upperBound<K extends Key>(keys: readonly K[], key: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as K) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function leafFor<K extends Key, V>(t: BTree<K, V>, key: K): BTreeLeaf<K, V> {
  let node = t.root;
  while (!node.leaf) node = node.children[upperBound(node.keys, key)] as BTreeNode<K, V>;
  return node;
}

function leftmostLeaf<K extends Key, V>(node: BTreeNode<K, V>): BTreeLeaf<K, V> {
  while (!node.leaf) node = node.children[0] as BTreeNode<K, V>;
  return node;
}

function rightmostLeaf<K extends Key, V>(node: BTreeNode<K, V>): BTreeLeaf<K, V> {
  while (!node.leaf) node = node.children[node.children.length - 1] as BTreeNode<K, V>;
  return node;
}

/** The value stored at `key`. */
export function btreeGet<K extends Key, V>(t: BTree<K, V>, key: K): V | undefined {
  const leaf = leafFor(t, key);
  const i = lowerBound(leaf.keys, key);
  return i < leaf.keys.length && leaf.keys[i] === key ? leaf.vals[i] : undefined;
}

export function btreeHas<K extends Key, V>(t: BTree<K, V>, key: K): boolean {
  const leaf = leafFor(t, key);
  const i = lowerBound(leaf.keys, key);
  return i < leaf.keys.length && leaf.keys[i] === key;
}

// Result slot of locateFloor / locateCeiling, so that the value-only lookups allocate nothing.
let foundLeaf: BTreeLeaf<Key, unknown> | undefined;
let foundIndex = 0;

/** Points foundLeaf/foundIndex at the greatest key <= key; false if there is none. */
function locateFloor<K extends Key, V>(t: BTree<K, V>, key: K): boolean {
  // The nearest subtree left of the descent path holds the answer when the reached leaf does not.
  let left: BTreeNode<K, V> | undefined;
  let node = t.root;
  while (!node.leaf) {
    const i = upperBound(node.keys, key);
    if (i > 0) left = node.children[i - 1];
    node = node.children[i] as BTreeNode<K, V>;
  }
  const i = upperBound(node.keys, key) - 1;
  if (i >= 0) {
    foundLeaf = node;
    foundIndex = i;
    return true;
  }
  if (left === undefined) return false;
  const leaf = rightmostLeaf(left);
  foundLeaf = leaf;
  foundIndex = leaf.keys.length - 1;
  return true;
}

/** Points foundLeaf/foundIndex at the least key >= key; false if there is none. */
function locateCeiling<K extends Key, V>(t: BTree<K, V>, key: K): boolean {
  let right: BTreeNode<K, V> | undefined;
  let node = t.root;
  while (!node.leaf) {
    const i = upperBound(node.keys, key);
    if (i < node.keys.length) right = node.children[i + 1];
    node = node.children[i] as BTreeNode<K, V>;
  }
  const i = lowerBound(node.keys, key);
  if (i < node.keys.length) {
    foundLeaf = node;
    foundIndex = i;
    return true;
  }
  if (right === undefined) return false;
  foundLeaf = leftmostLeaf(right);
  foundIndex = 0;
  return true;
}

function takeEntry<K extends Key, V>(): [K, V] {
  const leaf = foundLeaf as BTreeLeaf<K, V>;
  foundLeaf = undefined;
  return [leaf.keys[foundIndex] as K, leaf.vals[foundIndex] as V];
}

function takeValue<V>(): V {
  const leaf = foundLeaf as BTreeLeaf<Key, V>;
  foundLeaf = undefined;
  return leaf.vals[foundIndex] as V;
}

/** The entry with the greatest key <= key. */
export function btreeFloor<K extends Key, V>(t: BTree<K, V>, key: K): [K, V] | undefined {
  return locateFloor(t, key) ? takeEntry<K, V>() : undefined;
}

/** The entry with the least key >= key. */
export function btreeCeiling<K extends Key, V>(t: BTree<K, V>, key: K): [K, V] | undefined {
  return locateCeiling(t, key) ? takeEntry<K, V>() : undefined;
}

/** The value of btreeFloor without allocating: for values that carry their own key. */
export function btreeFloorValue<K extends Key, V>(t: BTree<K, V>, key: K): V | undefined {
  return locateFloor(t, key) ? takeValue<V>() : undefined;
}

/** The value of btreeCeiling without allocating. */
export function btreeCeilingValue<K extends Key, V>(t: BTree<K, V>, key: K): V | undefined {
  return locateCeiling(t, key) ? takeValue<V>() : undefined;
}

export function btreeFirst<K extends Key, V>(t: BTree<K, V>): [K, V] | undefined {
  if (t.size === 0) return undefined;
  const leaf = leftmostLeaf(t.root);
  return [leaf.keys[0] as K, leaf.vals[0] as V];
}

export function btreeLast<K extends Key, V>(t: BTree<K, V>): [K, V] | undefined {
  if (t.size === 0) return undefined;
  const leaf = rightmostLeaf(t.root);
  const i = leaf.keys.length - 1;
  return [leaf.keys[i] as K, leaf.vals[i] as V];
}

function nodeSize<K extends Key, V>(node: BTreeNode<K, V>): number {
  return node.leaf ? node.keys.length : node.children.length;
}

/** Split parent.children[i], which holds max + 1 entries or children, into two. */
function splitChild<K extends Key, V>(parent: BTreeBranch<K, V>, i: number): void {
  const child = parent.children[i] as BTreeNode<K, V>;
  if (child.leaf) {
    const mid = child.keys.length >>> 1;
    const right: BTreeLeaf<K, V> = { leaf: true, keys: child.keys.splice(mid), vals: child.vals.splice(mid) };
    parent.children.splice(i + 1, 0, right);
    parent.keys.splice(i, 0, right.keys[0] as K);
  } else {
    const mid = (child.children.length + 1) >>> 1;
    const rightKeys = child.keys.splice(mid - 1);
    const promoted = rightKeys.shift() as K;
    const right: BTreeBranch<K, V> = { leaf: false, keys: rightKeys, children: child.children.splice(mid) };
    parent.children.splice(i + 1, 0, right);
    parent.keys.splice(i, 0, promoted);
  }
}

/** Returns true if a new key was added (false: replaced). Children that overflow are split on the way up. */
function insertInto<K extends Key, V>(node: BTreeNode<K, V>, key: K, value: V, max: number): boolean {
  if (node.leaf) {
    const i = lowerBound(node.keys, key);
    if (i < node.keys.length && node.keys[i] === key) {
      node.vals[i] = value;
      return false;
    }
    node.keys.splice(i, 0, key);
    node.vals.splice(i, 0, value);
    return true;
  }
  const i = upperBound(node.keys, key);
  const child = node.children[i] as BTreeNode<K, V>;
  const added = insertInto(child, key, value, max);
  if (added && nodeSize(child) > max) splitChild(node, i);
  return added;
}

/** Insert or replace. */
export function btreeSet<K extends Key, V>(t: BTree<K, V>, key: K, value: V): void {
  markWritten(t);
  const root = t.root;
  if (!insertInto(root, key, value, t.max)) return;
  t.size++;
  if (nodeSize(root) > t.max) {
    t.root = { leaf: false, keys: [], children: [root] };
    splitChild(t.root, 0);
  }
}

/** parent.children[i] holds one entry or child too few: borrow from a sibling, or merge with one. */
function fixChild<K extends Key, V>(parent: BTreeBranch<K, V>, i: number, max: number): void {
  const min = max >>> 1;
  const child = parent.children[i] as BTreeNode<K, V>;
  const left = i > 0 ? (parent.children[i - 1] as BTreeNode<K, V>) : undefined;
  const right = i + 1 < parent.children.length ? (parent.children[i + 1] as BTreeNode<K, V>) : undefined;
  if (left !== undefined && nodeSize(left) > min) {
    if (child.leaf) {
      const l = left as BTreeLeaf<K, V>;
      const k = l.keys.pop() as K;
      child.keys.unshift(k);
      child.vals.unshift(l.vals.pop() as V);
      parent.keys[i - 1] = k;
    } else {
      const l = left as BTreeBranch<K, V>;
      child.keys.unshift(parent.keys[i - 1] as K);
      child.children.unshift(l.children.pop() as BTreeNode<K, V>);
      parent.keys[i - 1] = l.keys.pop() as K;
    }
    return;
  }
  if (right !== undefined && nodeSize(right) > min) {
    if (child.leaf) {
      const r = right as BTreeLeaf<K, V>;
      child.keys.push(r.keys.shift() as K);
      child.vals.push(r.vals.shift() as V);
      parent.keys[i] = r.keys[0] as K;
    } else {
      const r = right as BTreeBranch<K, V>;
      child.keys.push(parent.keys[i] as K);
      child.children.push(r.children.shift() as BTreeNode<K, V>);
      parent.keys[i] = r.keys.shift() as K;
    }
    return;
  }
  // Neither sibling can lend: merge children[j + 1] into children[j].
  const j = left !== undefined ? i - 1 : i;
  const a = parent.children[j] as BTreeNode<K, V>;
  const b = parent.children[j + 1] as BTreeNode<K, V>;
  if (a.leaf) {
    const bl = b as BTreeLeaf<K, V>;
    for (let n = 0; n < bl.keys.length; n++) {
      a.keys.push(bl.keys[n] as K);
      a.vals.push(bl.vals[n] as V);
    }
  } else {
    const bb = b as BTreeBranch<K, V>;
    a.keys.push(parent.keys[j] as K);
    for (let n = 0; n < bb.keys.length; n++) a.keys.push(bb.keys[n] as K);
    for (let n = 0; n < bb.children.length; n++) a.children.push(bb.children[n] as BTreeNode<K, V>);
  }
  parent.keys.splice(j, 1);
  parent.children.splice(j + 1, 1);
}

function deleteFrom<K extends Key, V>(node: BTreeNode<K, V>, key: K, max: number): boolean {
  if (node.leaf) {
    const i = lowerBound(node.keys, key);
    if (i >= node.keys.length || node.keys[i] !== key) return false;
    node.keys.splice(i, 1);
    node.vals.splice(i, 1);
    return true;
  }
  const i = upperBound(node.keys, key);
  const child = node.children[i] as BTreeNode<K, V>;
  if (!deleteFrom(child, key, max)) return false;
  if (nodeSize(child) < max >>> 1) fixChild(node, i, max);
  return true;
}

/** Remove `key`; true if it was present. */
export function btreeDelete<K extends Key, V>(t: BTree<K, V>, key: K): boolean {
  markWritten(t);
  if (!deleteFrom(t.root, key, t.max)) return false;
  t.size--;
  const root = t.root;
  if (!root.leaf && root.children.length === 1) t.root = root.children[0] as BTreeNode<K, V>;
  return true;
}

/**
 * Call `fn` on each entry with key >= `key`, ascending, until it returns false. Allocates only the descent
 * path; the allocation-free counterpart of btreeEntriesFrom for hot paths.
 */
export function btreeForEachFrom<K extends Key, V>(
  t: BTree<K, V>,
  key: K | undefined,
  fn: (key: K, value: V) => boolean | void,
): void {
  const path: BTreeBranch<K, V>[] = [];
  const at: number[] = [];
  let node = t.root;
  while (!node.leaf) {
    const i = key === undefined ? 0 : upperBound(node.keys, key);
    path.push(node);
    at.push(i);
    node = node.children[i] as BTreeNode<K, V>;
  }
  let leaf: BTreeLeaf<K, V> = node;
  let i = key === undefined ? 0 : lowerBound(leaf.keys, key);
  for (;;) {
    for (; i < leaf.keys.length; i++) if (fn(leaf.keys[i] as K, leaf.vals[i] as V) === false) return;
    const next = nextLeaf(path, at);
    if (next === undefined) return;
    leaf = next;
    i = 0;
  }
}

/** Advance the descent path (branches and the child index taken in each) to the next leaf. */
function nextLeaf<K extends Key, V>(path: BTreeBranch<K, V>[], at: number[]): BTreeLeaf<K, V> | undefined {
  let d = path.length - 1;
  while (d >= 0 && (at[d] as number) + 1 >= (path[d] as BTreeBranch<K, V>).children.length) d--;
  if (d < 0) return undefined;
  path.length = d + 1;
  at.length = d + 1;
  const i = (at[d] as number) + 1;
  at[d] = i;
  let node = (path[d] as BTreeBranch<K, V>).children[i] as BTreeNode<K, V>;
  while (!node.leaf) {
    path.push(node);
    at.push(0);
    node = node.children[0] as BTreeNode<K, V>;
  }
  return node;
}

/** Entries with key >= `key`, ascending, produced lazily. */
export function* btreeEntriesFrom<K extends Key, V>(t: BTree<K, V>, key: K): Generator<[K, V]> {
  const path: BTreeBranch<K, V>[] = [];
  const at: number[] = [];
  let node = t.root;
  while (!node.leaf) {
    const i = upperBound(node.keys, key);
    path.push(node);
    at.push(i);
    node = node.children[i] as BTreeNode<K, V>;
  }
  let leaf: BTreeLeaf<K, V> | undefined = node;
  let i = lowerBound(leaf.keys, key);
  while (leaf !== undefined) {
    for (; i < leaf.keys.length; i++) yield [leaf.keys[i] as K, leaf.vals[i] as V];
    leaf = nextLeaf(path, at);
    i = 0;
  }
}

/** All entries, ascending, produced lazily. */
export function* btreeEntries<K extends Key, V>(t: BTree<K, V>): Generator<[K, V]> {
  const path: BTreeBranch<K, V>[] = [];
  const at: number[] = [];
  let node = t.root;
  while (!node.leaf) {
    path.push(node);
    at.push(0);
    node = node.children[0] as BTreeNode<K, V>;
  }
  let leaf: BTreeLeaf<K, V> | undefined = node;
  while (leaf !== undefined) {
    for (let i = 0; i < leaf.keys.length; i++) yield [leaf.keys[i] as K, leaf.vals[i] as V];
    leaf = nextLeaf(path, at);
  }
}

/** Number of node levels (1 for a lone leaf). */
export function btreeHeight<K extends Key, V>(t: BTree<K, V>): number {
  let h = 1;
  for (let node = t.root; !node.leaf; node = node.children[0] as BTreeNode<K, V>) h++;
  return h;
}

/** Structural self-check: null if every invariant of the file comment holds, else the first breach found. */
export function btreeCheck<K extends Key, V>(t: BTree<K, V>): string | null {
  const min = t.max >>> 1;
  let leafDepth = -1;
  let count = 0;
  let keyType: string | undefined;

  const visit = (
    node: BTreeNode<K, V>,
    depth: number,
    lo: K | undefined,
    hi: K | undefined,
    where: string,
  ): string | null => {
    const isRoot = depth === 0;
    const keys = node.keys;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as K;
      const type = typeof k;
      if (type !== 'number' && type !== 'bigint') return `${where}: key ${i} is a ${type}`;
      if (keyType === undefined) keyType = type;
      else if (type !== keyType) return `${where}: key ${i} is a ${type} in a tree of ${keyType} keys`;
      if (i > 0 && !((keys[i - 1] as K) < k)) return `${where}: keys ${i - 1} and ${i} do not ascend`;
      if (lo !== undefined && k < lo) return `${where}: key ${String(k)} below the bound ${String(lo)}`;
      if (hi !== undefined && !(k < hi)) return `${where}: key ${String(k)} not below the bound ${String(hi)}`;
    }
    if (node.leaf) {
      if (node.vals.length !== keys.length) return `${where}: ${keys.length} keys but ${node.vals.length} values`;
      if (leafDepth === -1) leafDepth = depth;
      else if (depth !== leafDepth) return `${where}: leaf at depth ${depth}, another at ${leafDepth}`;
      if (!isRoot && (keys.length < min || keys.length > t.max)) return `${where}: leaf holds ${keys.length} entries`;
      if (isRoot && keys.length > t.max) return `${where}: root leaf holds ${keys.length} entries`;
      count += keys.length;
      return null;
    }
    const n = node.children.length;
    if (keys.length !== n - 1) return `${where}: ${keys.length} separators for ${n} children`;
    if (isRoot ? n < 2 || n > t.max : n < min || n > t.max) return `${where}: branch has ${n} children`;
    for (let i = 0; i < n; i++) {
      const childLo = i === 0 ? lo : (keys[i - 1] as K);
      const childHi = i === n - 1 ? hi : (keys[i] as K);
      const err = visit(node.children[i] as BTreeNode<K, V>, depth + 1, childLo, childHi, `${where}.${i}`);
      if (err !== null) return err;
    }
    return null;
  };

  const err = visit(t.root, 0, undefined, undefined, 'root');
  if (err !== null) return err;
  if (count !== t.size) return `size is ${t.size} but the leaves hold ${count} entries`;
  return null;
}
