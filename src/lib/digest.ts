// SPDX-License-Identifier: GPL-2.0-only
/**
 * Additive state digests.
 *
 * Every structure in the state keeps a digest: the lane-wise sum (mod 2^32) of a 64-bit hash of each of its
 * records. Adding or removing a record is O(1); two structures with the same records have the same digest
 * whatever order they were built in. A structure's records must be canonical (for run-length structures:
 * maximally coalesced), so equal contents give equal digests.
 */

/** Two independent 32-bit lanes; stored as plain numbers so the state stays plain data (immer, v8.serialize). */
export interface Digest {
  lo: number;
  hi: number;
}

export const zeroDigest = (): Digest => ({ lo: 0, hi: 0 });

export type HashPart = number | bigint | string | boolean | null;

/**
 * The running state of the hash: two 32-bit lanes. hashParts is hashBegin of the parts, then hashEnd without
 * a part open; hashBegin/hashText/hashEnd take it in pieces, for a long text part that changes a little at a
 * time (records.ts: an access's items): hashEnd(hashText(hashText(hashBegin(parts), 's'), text)) is
 * hashParts([...parts, text]).
 */
export interface HashLanes {
  h1: number;
  h2: number;
}

const SEPARATOR = 0x7c;
const STRING_TAG = 0x73;

function mixText(l: HashLanes, text: string): void {
  let h1 = l.h1;
  let h2 = l.h2;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  l.h1 = h1;
  l.h2 = h2;
}

function mixChar(l: HashLanes, ch: number): void {
  l.h1 = Math.imul(l.h1 ^ ch, 2654435761);
  l.h2 = Math.imul(l.h2 ^ ch, 1597334677);
}

/** A part's text form ('s' + a string, NUL for null, else String()), closed by the separator. */
function mixPart(l: HashLanes, part: HashPart): void {
  if (typeof part === 'string') {
    // The tag is mixed in by itself: building `s${part}` would copy the part (a whole table's text).
    mixChar(l, STRING_TAG);
    mixText(l, part);
  } else mixText(l, part === null ? '\u0000' : String(part));
  mixChar(l, SEPARATOR);
}

function finish(l: HashLanes): Digest {
  let h1 = Math.imul(l.h1 ^ (l.h1 >>> 16), 2246822507);
  h1 ^= Math.imul(l.h2 ^ (l.h2 >>> 13), 3266489909);
  let h2 = Math.imul(l.h2 ^ (l.h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return { lo: h1 >>> 0, hi: h2 >>> 0 };
}

/** The lanes after the whole `parts` (each closed by its separator). */
export function hashBegin(parts: readonly HashPart[]): HashLanes {
  const l = { h1: 0xdeadbeef, h2: 0x41c6ce57 };
  for (const part of parts) mixPart(l, part);
  return l;
}

/**
 * 64-bit hash of a tuple of parts, as two 32-bit lanes (cyrb53-style mixing over the text form): hashBegin
 * and finish, in local variables (the hot path: a lanes object here costs a tenth more).
 */
export function hashParts(parts: readonly HashPart[]): Digest {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (const part of parts) {
    let text: string;
    if (typeof part === 'string') {
      h1 = Math.imul(h1 ^ STRING_TAG, 2654435761);
      h2 = Math.imul(h2 ^ STRING_TAG, 1597334677);
      text = part;
    } else text = part === null ? '\u0000' : String(part);
    for (let i = 0; i < text.length; i++) {
      h1 = Math.imul(h1 ^ text.charCodeAt(i), 2654435761);
      h2 = Math.imul(h2 ^ text.charCodeAt(i), 1597334677);
    }
    h1 = Math.imul(h1 ^ SEPARATOR, 2654435761);
    h2 = Math.imul(h2 ^ SEPARATOR, 1597334677);
  }
  return finish({ h1, h2 });
}

/** The lanes after `text` more of the current part. */
export function hashText(lanes: HashLanes, text: string): HashLanes {
  const l = { h1: lanes.h1, h2: lanes.h2 };
  mixText(l, text);
  return l;
}

/** Close the current part and finish: the hash. */
export function hashEnd(lanes: HashLanes): Digest {
  const l = { h1: lanes.h1, h2: lanes.h2 };
  mixChar(l, SEPARATOR);
  return finish(l);
}

/** The hash of three parts last taken for an object, with the parts it was taken of. */
interface HashedTriple {
  a: HashPart;
  b: HashPart;
  c: HashPart;
  hash: Digest;
}
const triples = new WeakMap<object, HashedTriple>();

/**
 * hashParts([a, b, c]) for the record `owner` (a tree node, a run), remembered per owner: a self-check that
 * recomputes a structure's digest after every op then hashes only the records that changed since. The
 * parts are compared before the remembered hash is used, so a record changed in place is hashed again.
 */
export function hashTripleOf(owner: object, a: HashPart, b: HashPart, c: HashPart): Digest {
  const seen = triples.get(owner);
  if (seen !== undefined && seen.a === a && seen.b === b && seen.c === c) return seen.hash;
  const hash = hashParts([a, b, c]);
  triples.set(owner, { a, b, c, hash });
  return hash;
}

/** target += h (a hash taken before). */
export function digestAddHash(target: Digest, h: Digest): void {
  target.lo = (target.lo + h.lo) >>> 0;
  target.hi = (target.hi + h.hi) >>> 0;
}

/** target -= h (a hash taken before). */
export function digestRemoveHash(target: Digest, h: Digest): void {
  target.lo = (target.lo - h.lo) >>> 0;
  target.hi = (target.hi - h.hi) >>> 0;
}

/** target += hash(parts) */
export function digestAdd(target: Digest, parts: readonly HashPart[]): void {
  const h = hashParts(parts);
  target.lo = (target.lo + h.lo) >>> 0;
  target.hi = (target.hi + h.hi) >>> 0;
}

/** target -= hash(parts) */
export function digestRemove(target: Digest, parts: readonly HashPart[]): void {
  const h = hashParts(parts);
  target.lo = (target.lo - h.lo) >>> 0;
  target.hi = (target.hi - h.hi) >>> 0;
}

/**
 * Replace a nested structure's contribution in a parent digest: the parent holds mix(path, child digest),
 * a non-linear function, so two children that swap contents change the parent.
 */
export function digestReplaceChild(target: Digest, path: readonly HashPart[], before: Digest, after: Digest): void {
  if (before.lo === after.lo && before.hi === after.hi) return;
  digestRemove(target, [...path, before.lo, before.hi]);
  digestAdd(target, [...path, after.lo, after.hi]);
}

export function digestEquals(a: Digest, b: Digest): boolean {
  return a.lo === b.lo && a.hi === b.hi;
}

/** 16 hex digits, hi lane first. */
export function digestHex(d: Digest): string {
  return d.hi.toString(16).padStart(8, '0') + d.lo.toString(16).padStart(8, '0');
}
