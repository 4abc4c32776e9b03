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

/** 64-bit hash of a tuple of parts, as two 32-bit lanes (cyrb53-style mixing over the text form). */
export function hashParts(parts: readonly HashPart[]): Digest {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (const part of parts) {
    let text: string;
    if (typeof part === 'string') {
      // A string's text form is 's' + the string: the 's' is mixed in here rather than prepended (no copy).
      h1 = Math.imul(h1 ^ 0x73, 2654435761);
      h2 = Math.imul(h2 ^ 0x73, 1597334677);
      text = part;
    } else text = part === null ? '\u0000' : String(part);
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ 0x7c, 2654435761);
    h2 = Math.imul(h2 ^ 0x7c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return { lo: h1 >>> 0, hi: h2 >>> 0 };
}

/**
 * hashParts taken in pieces, for a long text part that changes a little at a time (records.ts: an access's
 * items): the running lanes after some whole parts, more text of the next part mixed in, and the end.
 * hashEnd(hashText(hashText(hashBegin(parts), 's'), text)) is hashParts([...parts, text]).
 */
export interface HashLanes {
  h1: number;
  h2: number;
}

/** The lanes after the whole `parts` (each closed by its separator). */
export function hashBegin(parts: readonly HashPart[]): HashLanes {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (const part of parts) {
    const text = part === null ? '\u0000' : typeof part === 'string' ? `s${part}` : String(part);
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ 0x7c, 2654435761);
    h2 = Math.imul(h2 ^ 0x7c, 1597334677);
  }
  return { h1, h2 };
}

/** The lanes after `text` more of the current part. */
export function hashText(lanes: HashLanes, text: string): HashLanes {
  let h1 = lanes.h1;
  let h2 = lanes.h2;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  return { h1, h2 };
}

/** Close the current part and finish: the hash. */
export function hashEnd(lanes: HashLanes): Digest {
  let h1 = Math.imul(lanes.h1 ^ 0x7c, 2654435761);
  let h2 = Math.imul(lanes.h2 ^ 0x7c, 1597334677);
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return { lo: h1 >>> 0, hi: h2 >>> 0 };
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
