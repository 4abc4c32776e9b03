// SPDX-License-Identifier: GPL-2.0-only
/**
 * A domain's IO page table as the model keeps it: disjoint pieces (`size` bytes from `iova` map `paddr` as
 * IOPTEs of `pgsize`, made by iommu_map call `extent`), stored as progressions (progression.ts).
 *
 * The elements are the pieces, exactly as the reducers write them; the table never merges two of them. What
 * the B-tree holds, keyed by `iova`, is an atom: n >= 1 pieces where piece i has iova + i*iovaStep,
 * paddr + i*paddrStep and extent + i*extentStep, and the atom's size, pgsize, prot and flags. A guest of 4 KiB
 * pages whose frames are never adjacent maps each page with its own iommu_map call (its own extent, the
 * extents one apart), so millions of pieces become one atom. The atoms are the canonical (greedy) grouping of
 * the pieces, so equal contents give equal atoms whatever the history.
 *
 * `digest` is the sum of mappingHash over the pieces, as when each piece was stored on its own: regrouping
 * hashes nothing, a write hashes only the pieces it really removes or adds.
 *
 * Atoms are never changed in place once stored (a write stores new ones), and every atom has one object
 * shape (the literal in atomOf): readers of the table stay monomorphic. A one-piece atom is itself a piece:
 * readers get it as is; a piece of a longer atom is built on demand.
 */
import { btreeCeilingValue, btreeCreate, btreeDelete, btreeFloorValue, btreeForEachFrom, btreeSet } from './btree.js';
import type { BTree } from './btree.js';
import { canonicalBreak, regroup } from './progression.js';
import type { ProgressionOps } from './progression.js';
import { tupleAddTo, tuplePart, tupleRemoveFrom, tupleStart, zeroDigest } from '../lib/digest.js';
import type { Digest } from '../lib/digest.js';

/** A piece of IO page table: `size` bytes from `iova` map `paddr`, as IOPTEs of `pgsize` bytes. */
export interface Mapping {
  iova: bigint;
  size: bigint;
  paddr: bigint;
  pgsize: bigint;
  read: boolean;
  write: boolean;
  /** Which iommu_map call made it (pairing checks). */
  extent: number;
  /** Mock domain: the START/LAST flag bit is set on the first / last mock page of this piece. */
  headFlag: boolean;
  tailFlag: boolean;
}

/** What the table stores: `n` pieces in arithmetic progression (the steps are 0 when n is 1). */
export interface MappingAtom extends Mapping {
  n: number;
  iovaStep: bigint;
  paddrStep: bigint;
  extentStep: number;
}

export interface MappingTable {
  tree: BTree<bigint, MappingAtom>;
  digest: Digest;
}

export function mappingsCreate(): MappingTable {
  return { tree: btreeCreate<bigint, MappingAtom>(), digest: zeroDigest() };
}

function atomOf(
  iova: bigint,
  size: bigint,
  paddr: bigint,
  pgsize: bigint,
  read: boolean,
  write: boolean,
  extent: number,
  headFlag: boolean,
  tailFlag: boolean,
  n: number,
  iovaStep: bigint,
  paddrStep: bigint,
  extentStep: number,
): MappingAtom {
  return { iova, size, paddr, pgsize, read, write, extent, headFlag, tailFlag, n, iovaStep, paddrStep, extentStep };
}

const singleOf = (m: Mapping): MappingAtom =>
  atomOf(m.iova, m.size, m.paddr, m.pgsize, m.read, m.write, m.extent, m.headFlag, m.tailFlag, 1, 0n, 0n, 0);

/** The `n` pieces of `a` from its piece `k` on, as an atom of their own. */
function piecesOf(a: MappingAtom, k: number, n: number): MappingAtom {
  const bk = BigInt(k);
  return atomOf(
    a.iova + bk * a.iovaStep,
    a.size,
    a.paddr + bk * a.paddrStep,
    a.pgsize,
    a.read,
    a.write,
    a.extent + k * a.extentStep,
    a.headFlag,
    a.tailFlag,
    n,
    n >= 2 ? a.iovaStep : 0n,
    n >= 2 ? a.paddrStep : 0n,
    n >= 2 ? a.extentStep : 0,
  );
}

/** Piece i of `a` as an atom of its own (`a` itself when it is its only piece). */
function pieceOf(a: MappingAtom, i: number): MappingAtom {
  return a.n === 1 ? a : piecesOf(a, i, 1);
}

/** How many pieces of `a` start below `x`. */
function countBelow(a: MappingAtom, x: bigint): number {
  if (x <= a.iova) return 0;
  if (a.n === 1) return 1;
  const q = (x - a.iova - 1n) / a.iovaStep + 1n;
  return q >= BigInt(a.n) ? a.n : Number(q);
}

/** digest +/-= hashParts of the piece's fields in this order, mixed without building the parts. */
export function mappingHash(digest: Digest, add: boolean, m: Mapping): void {
  tupleStart();
  tuplePart(m.iova);
  tuplePart(m.size);
  tuplePart(m.paddr);
  tuplePart(m.pgsize);
  tuplePart(m.read);
  tuplePart(m.write);
  tuplePart(m.extent);
  tuplePart(m.headFlag);
  tuplePart(m.tailFlag);
  if (add) tupleAddTo(digest);
  else tupleRemoveFrom(digest);
}

/** mappingHash of pieces [from, to) of `a`, without building them. */
function hashPieces(digest: Digest, add: boolean, a: MappingAtom, from: number, to: number): void {
  if (a.n === 1) {
    if (from === 0 && to === 1) mappingHash(digest, add, a);
    return;
  }
  let iova = a.iova + BigInt(from) * a.iovaStep;
  let paddr = a.paddr + BigInt(from) * a.paddrStep;
  let extent = a.extent + from * a.extentStep;
  for (let i = from; i < to; i++) {
    tupleStart();
    tuplePart(iova);
    tuplePart(a.size);
    tuplePart(paddr);
    tuplePart(a.pgsize);
    tuplePart(a.read);
    tuplePart(a.write);
    tuplePart(extent);
    tuplePart(a.headFlag);
    tuplePart(a.tailFlag);
    if (add) tupleAddTo(digest);
    else tupleRemoveFrom(digest);
    iova += a.iovaStep;
    paddr += a.paddrStep;
    extent += a.extentStep;
  }
}

/** The greedy grouping of pieces (progression.ts): what makes atoms canonical. */
export const mappingOps: ProgressionOps<MappingAtom> = {
  size: (a) => a.n,
  continues(a, b) {
    if (
      b.size !== a.size ||
      b.pgsize !== a.pgsize ||
      b.read !== a.read ||
      b.write !== a.write ||
      b.headFlag !== a.headFlag ||
      b.tailFlag !== a.tailFlag
    )
      return 0;
    let di: bigint;
    let dp: bigint;
    let de: number;
    if (a.n === 1) {
      di = b.iova - a.iova;
      dp = b.paddr - a.paddr;
      de = b.extent - a.extent;
    } else {
      const last = BigInt(a.n - 1);
      di = b.iova - (a.iova + last * a.iovaStep);
      if (di !== a.iovaStep) return 0;
      dp = b.paddr - (a.paddr + last * a.paddrStep);
      de = b.extent - (a.extent + (a.n - 1) * a.extentStep);
      if (dp !== a.paddrStep || de !== a.extentStep) return 0;
    }
    return b.n >= 2 && b.iovaStep === di && b.paddrStep === dp && b.extentStep === de ? b.n : 1;
  },
  concat(a, b, k) {
    const grown = a.n >= 2;
    return atomOf(
      a.iova,
      a.size,
      a.paddr,
      a.pgsize,
      a.read,
      a.write,
      a.extent,
      a.headFlag,
      a.tailFlag,
      a.n + k,
      grown ? a.iovaStep : b.iova - a.iova,
      grown ? a.paddrStep : b.paddr - a.paddr,
      grown ? a.extentStep : b.extent - a.extent,
    );
  },
  drop: (b, k) => piecesOf(b, k, b.n - k),
};

/** The first `k` pieces of `a` (0 < k < a.n): the same key. */
function prefixOf(a: MappingAtom, k: number): MappingAtom {
  return piecesOf(a, 0, k);
}

/** The piece that maps the byte at `iova`. */
export function mappingAt(t: MappingTable, iova: bigint): Mapping | undefined {
  const a = btreeFloorValue(t.tree, iova);
  if (a === undefined) return undefined;
  if (a.n === 1) return iova < a.iova + a.size ? a : undefined;
  let i = (iova - a.iova) / a.iovaStep;
  const last = BigInt(a.n - 1);
  if (i > last) i = last;
  if (iova >= a.iova + i * a.iovaStep + a.size) return undefined;
  return pieceOf(a, Number(i));
}

/** Call `f` on pieces [from, a.n) of `a` in order until it returns false; false when it did. */
function eachPiece(a: MappingAtom, from: number, f: (m: Mapping) => boolean | void): boolean {
  if (a.n === 1) return f(a) !== false;
  let iova = a.iova + BigInt(from) * a.iovaStep;
  let paddr = a.paddr + BigInt(from) * a.paddrStep;
  let extent = a.extent + from * a.extentStep;
  for (let i = from; i < a.n; i++) {
    const m = atomOf(iova, a.size, paddr, a.pgsize, a.read, a.write, extent, a.headFlag, a.tailFlag, 1, 0n, 0n, 0);
    if (f(m) === false) return false;
    iova += a.iovaStep;
    paddr += a.paddrStep;
    extent += a.extentStep;
  }
  return true;
}

/**
 * Call `f` on each piece whose iova is >= `from` (every piece when undefined), ascending, until it returns
 * false. Do not write the table meanwhile.
 */
export function mappingsForEachFrom(
  t: MappingTable,
  from: bigint | undefined,
  f: (m: Mapping) => boolean | void,
): void {
  if (from !== undefined) {
    const a = btreeFloorValue(t.tree, from);
    if (a !== undefined && a.iova < from) {
      const i = countBelow(a, from);
      if (i < a.n && !eachPiece(a, i, f)) return;
    }
  }
  btreeForEachFrom(t.tree, from, (_iova, a) => eachPiece(a, 0, f));
}

/** Every piece, ascending, as a plain Mapping. */
export function mappingsPieces(t: MappingTable): Mapping[] {
  const out: Mapping[] = [];
  mappingsForEachFrom(t, undefined, (m) => {
    out.push({
      iova: m.iova,
      size: m.size,
      paddr: m.paddr,
      pgsize: m.pgsize,
      read: m.read,
      write: m.write,
      extent: m.extent,
      headFlag: m.headFlag,
      tailFlag: m.tailFlag,
    });
  });
  return out;
}

/** How many pieces the table holds (a walk over the atoms). */
export function mappingsCount(t: MappingTable): number {
  let n = 0;
  btreeForEachFrom(t.tree, undefined, (_iova, a) => {
    n += a.n;
  });
  return n;
}

export function mappingsEmpty(t: MappingTable): boolean {
  return t.tree.size === 0;
}

/**
 * Replace the pieces whose iova lies in [lo, hi) by `added` (ascending, disjoint, each after every kept
 * piece below lo and before every kept piece at or above hi; a piece may start at or after hi when nothing
 * kept is in its way). Returns the total size of the pieces removed. Costs O(log) per atom touched plus the
 * pieces removed and added: a long atom is split or joined without visiting its pieces.
 */
export function mappingsReplace(t: MappingTable, lo: bigint, hi: bigint, added: readonly Mapping[]): bigint {
  const tree = t.tree;
  // The stored atoms with a piece in [lo, hi), or with pieces on both sides of it (the window splits them).
  const window: MappingAtom[] = [];
  let headKeep = 0;
  let before: MappingAtom | undefined;
  const floor = btreeFloorValue(tree, lo);
  if (floor !== undefined) {
    if (floor.iova < lo) {
      const below = countBelow(floor, lo);
      if (below < floor.n) {
        window.push(floor);
        headKeep = below;
      } else before = floor;
    } else before = btreeFloorValue(tree, lo - 1n);
  }
  let next = btreeCeilingValue(tree, lo);
  while (next !== undefined && next.iova < hi) {
    window.push(next);
    next = btreeCeilingValue(tree, next.iova + 1n);
  }
  if (window.length === 0 && added.length === 0) return 0n;

  let removed = 0n;
  let tailKeep: MappingAtom | undefined;
  const lastW = window.length - 1;
  for (let w = 0; w <= lastW; w++) {
    const a = window[w] as MappingAtom;
    const from = w === 0 ? headKeep : 0;
    const to = w === lastW ? countBelow(a, hi) : a.n;
    if (to > from) {
      hashPieces(t.digest, false, a, from, to);
      removed += a.n === 1 ? a.size : BigInt(to - from) * a.size;
    }
    if (w === lastW && to < a.n) tailKeep = to === 0 ? a : mappingOps.drop(a, to);
  }
  for (let i = 0; i < added.length; i++) mappingHash(t.digest, true, added[i] as Mapping);

  const atoms: MappingAtom[] = [];
  if (headKeep > 0) atoms.push(prefixOf(window[0] as MappingAtom, headKeep));
  else if (before !== undefined) atoms.push(before);
  for (let i = 0; i < added.length; i++) atoms.push(singleOf(added[i] as Mapping));
  if (tailKeep !== undefined) atoms.push(tailKeep);
  const later: MappingAtom[] = [];
  const { groups, replaced } = regroup(mappingOps, atoms, (i) => {
    while (later.length <= i) {
      const last = later[later.length - 1];
      const a = last === undefined ? next : btreeCeilingValue(tree, last.iova + 1n);
      if (a === undefined) return undefined;
      later.push(a);
    }
    return later[i];
  });

  // The stored atoms replaced, ascending; the groups take their place (same key: one write, not two).
  const olds: MappingAtom[] = [];
  if (headKeep === 0 && before !== undefined) olds.push(before);
  for (const a of window) olds.push(a);
  for (let i = 0; i < replaced; i++) olds.push(later[i] as MappingAtom);
  let g = 0;
  for (const o of olds) {
    for (; g < groups.length && (groups[g] as MappingAtom).iova < o.iova; g++) {
      const n = groups[g] as MappingAtom;
      btreeSet(tree, n.iova, n);
    }
    const n = groups[g];
    if (n !== undefined && n.iova === o.iova) {
      if (n !== o) btreeSet(tree, n.iova, n);
      g++;
    } else btreeDelete(tree, o.iova);
  }
  for (; g < groups.length; g++) {
    const n = groups[g] as MappingAtom;
    btreeSet(tree, n.iova, n);
  }
  return removed;
}

/** What an atom's pieces sum to, remembered with the atom's fields so that a changed atom is hashed again. */
interface AtomDigest {
  fields: MappingAtom;
  digest: Digest;
}
const atomDigests = new WeakMap<MappingAtom, AtomDigest>();

const sameAtom = (a: MappingAtom, b: MappingAtom): boolean =>
  a.iova === b.iova &&
  a.size === b.size &&
  a.paddr === b.paddr &&
  a.pgsize === b.pgsize &&
  a.read === b.read &&
  a.write === b.write &&
  a.extent === b.extent &&
  a.headFlag === b.headFlag &&
  a.tailFlag === b.tailFlag &&
  a.n === b.n &&
  a.iovaStep === b.iovaStep &&
  a.paddrStep === b.paddrStep &&
  a.extentStep === b.extentStep;

/** The digest of the table computed from its atoms (a long atom's sum is remembered, not hashed again). */
export function mappingsDigest(t: MappingTable): Digest {
  const d = zeroDigest();
  btreeForEachFrom(t.tree, undefined, (_iova, a) => {
    if (a.n === 1) {
      mappingHash(d, true, a);
      return;
    }
    let memo = atomDigests.get(a);
    if (memo === undefined || !sameAtom(memo.fields, a)) {
      const sum = zeroDigest();
      hashPieces(sum, true, a, 0, a.n);
      memo = { fields: { ...a }, digest: sum };
      atomDigests.set(a, memo);
    }
    d.lo = (d.lo + memo.digest.lo) >>> 0;
    d.hi = (d.hi + memo.digest.hi) >>> 0;
  });
  return d;
}

/** What is wrong with the table, or null: keys, atom shapes, disjoint ascending pieces, canonical grouping, digest. */
export function mappingsCheck(t: MappingTable): string | null {
  const atoms: MappingAtom[] = [];
  let problem: string | null = null;
  let end = -1n;
  btreeForEachFrom(t.tree, undefined, (key, a) => {
    const at = `atom at 0x${key.toString(16)}`;
    if (key !== a.iova) problem = `${at}: iova 0x${a.iova.toString(16)}`;
    else if (!Number.isInteger(a.n) || a.n < 1) problem = `${at}: ${a.n} pieces`;
    else if (a.size <= 0n) problem = `${at}: size ${a.size}`;
    else if (a.n === 1 && (a.iovaStep !== 0n || a.paddrStep !== 0n || a.extentStep !== 0))
      problem = `${at}: one piece with nonzero steps`;
    else if (a.n >= 2 && a.iovaStep < a.size) problem = `${at}: pieces overlap (step ${a.iovaStep}, size ${a.size})`;
    else if (a.iova < end) problem = `${at}: overlaps the piece before, which ends at 0x${end.toString(16)}`;
    if (problem !== null) return false;
    end = a.iova + BigInt(a.n - 1) * a.iovaStep + a.size;
    atoms.push(a);
    return true;
  });
  if (problem !== null) return problem;
  const brk = canonicalBreak(mappingOps, atoms);
  if (brk >= 0) return `atom at 0x${(atoms[brk] as MappingAtom).iova.toString(16)} continues the atom before it`;
  const d = mappingsDigest(t);
  if (d.lo !== t.digest.lo || d.hi !== t.digest.hi) return 'digest differs from the sum over the pieces';
  return null;
}

/**
 * Put a table whose entries may lack the progression fields (one piece each, as snapshots of formats 1 and
 * 2 hold them) into canonical form, in place: O(entries). The digest is the same sum and is kept.
 */
export function mappingsRegroupAll(t: MappingTable): void {
  const fresh = btreeCreate<bigint, MappingAtom>(t.tree.max);
  // `open` is built here and not stored yet, so it may grow in place.
  let open: MappingAtom | undefined;
  btreeForEachFrom(t.tree, undefined, (_iova, e) => {
    const old = e as Partial<MappingAtom> & Mapping;
    const b =
      old.n === undefined || old.n === 1
        ? singleOf(old)
        : atomOf(
            old.iova,
            old.size,
            old.paddr,
            old.pgsize,
            old.read,
            old.write,
            old.extent,
            old.headFlag,
            old.tailFlag,
            old.n,
            old.iovaStep ?? 0n,
            old.paddrStep ?? 0n,
            old.extentStep ?? 0,
          );
    if (open === undefined) {
      open = b;
      return;
    }
    const k = mappingOps.continues(open, b);
    if (k === 0) {
      btreeSet(fresh, open.iova, open);
      open = b;
      return;
    }
    if (open.n === 1) {
      open.iovaStep = b.iova - open.iova;
      open.paddrStep = b.paddr - open.paddr;
      open.extentStep = b.extent - open.extent;
    }
    open.n += k;
    if (k < b.n) {
      btreeSet(fresh, open.iova, open);
      open = mappingOps.drop(b, k);
    }
  });
  if (open !== undefined) btreeSet(fresh, open.iova, open);
  t.tree = fresh;
}
