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

/*
 * The hash in progress, for the allocation-free path: one tuple is hashed at a time (its parts are
 * primitives, so nothing can start another hash halfway), and a tuple's hash is left in `outLo`/`outHi`
 * rather than in a new object. The text of a number part is mixed digit by digit: building String(n) for
 * every index, PFN and count of every event was most of what the digests allocated.
 */
let lane1 = 0;
let lane2 = 0;
let outLo = 0;
let outHi = 0;
/** The decimal digits of the number being mixed, least significant first. */
const digits = new Uint8Array(24);

function tupleBegin(): void {
  lane1 = 0xdeadbeef;
  lane2 = 0x41c6ce57;
}

function tupleCode(ch: number): void {
  lane1 = Math.imul(lane1 ^ ch, 2654435761);
  lane2 = Math.imul(lane2 ^ ch, 1597334677);
}

function tupleChars(text: string): void {
  let h1 = lane1;
  let h2 = lane2;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  lane1 = h1;
  lane2 = h2;
}

/** String(n)'s characters for a safe integer n >= 0 (including -0, which String writes as 0). */
function tupleDecimal(n: number): void {
  let len = 0;
  if (n <= 0x7fffffff) {
    // Integer division by a constant: a multiply, where the general case below divides doubles.
    let x = n | 0;
    do {
      const q = (x / 10) | 0;
      digits[len++] = x - q * 10;
      x = q;
    } while (x !== 0);
  } else {
    do {
      const r = n % 10;
      digits[len++] = r;
      n = (n - r) / 10;
    } while (n > 0);
  }
  let h1 = lane1;
  let h2 = lane2;
  while (len > 0) {
    const ch = 48 + (digits[--len] as number);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  lane1 = h1;
  lane2 = h2;
}

/** String(n)'s characters: safe integers (every number a state holds) without building the text. */
function tupleNumberChars(n: number): void {
  if (Number.isSafeInteger(n)) {
    if (n < 0) {
      tupleCode(0x2d);
      tupleDecimal(-n);
    } else tupleDecimal(n);
  } else tupleChars(String(n));
}

/** One part of a tuple: exactly what hashParts mixes for it (its text form, then the separator). */
export function tuplePart(part: HashPart): void {
  if (typeof part === 'string') {
    tupleCode(STRING_TAG);
    tupleChars(part);
  } else if (typeof part === 'number') tupleNumberChars(part);
  else if (typeof part === 'bigint') {
    // Number() of a bigint past the safe range is never a safe integer (it rounds to 2^53 or beyond).
    const n = Number(part);
    if (Number.isSafeInteger(n)) tupleNumberChars(n);
    else tupleChars(part.toString());
  } else tupleChars(part === null ? '\u0000' : String(part));
  tupleCode(SEPARATOR);
}

/** A string part (what tuplePart does for one, without the type test). */
export function tupleString(part: string): void {
  tupleCode(STRING_TAG);
  tupleChars(part);
  tupleCode(SEPARATOR);
}

/** A string part that is String(key) of a record key, without building the text of a numeric key. */
export function tupleKey(key: string | number): void {
  tupleCode(STRING_TAG);
  if (typeof key === 'number') tupleNumberChars(key);
  else tupleChars(key);
  tupleCode(SEPARATOR);
}

/** Start a tuple's hash: then tuplePart/tupleString/tupleKey each part, then tupleAddTo or tupleRemoveFrom. */
export function tupleStart(): void {
  tupleBegin();
}

/** The first lane of the tuple in progress: with tupleLane2, what tupleResume takes to go on from here. */
export function tupleLane1(): number {
  return lane1;
}

export function tupleLane2(): number {
  return lane2;
}

/**
 * Go on with a tuple from lanes taken earlier (tupleLane1/tupleLane2): two tuples with the same first parts
 * (a field's old and new value) mix those parts once.
 */
export function tupleResume(l1: number, l2: number): void {
  lane1 = l1;
  lane2 = l2;
}

function tupleFinish(): void {
  const l1 = lane1;
  const l2 = lane2;
  let h1 = Math.imul(l1 ^ (l1 >>> 16), 2246822507);
  h1 ^= Math.imul(l2 ^ (l2 >>> 13), 3266489909);
  let h2 = Math.imul(l2 ^ (l2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  outLo = h1 >>> 0;
  outHi = h2 >>> 0;
}

/** target += the hash of the tuple just mixed. */
export function tupleAddTo(target: Digest): void {
  tupleFinish();
  target.lo = (target.lo + outLo) >>> 0;
  target.hi = (target.hi + outHi) >>> 0;
}

/** target -= the hash of the tuple just mixed. */
export function tupleRemoveFrom(target: Digest): void {
  tupleFinish();
  target.lo = (target.lo - outLo) >>> 0;
  target.hi = (target.hi - outHi) >>> 0;
}

function mixTuple(parts: readonly HashPart[]): void {
  tupleBegin();
  for (let i = 0; i < parts.length; i++) tuplePart(parts[i] as HashPart);
}

/** 64-bit hash of a tuple of parts, as two 32-bit lanes (cyrb53-style mixing over the parts' text forms). */
export function hashParts(parts: readonly HashPart[]): Digest {
  mixTuple(parts);
  tupleFinish();
  return { lo: outLo, hi: outHi };
}

/** target += hash([a, b, c]), without the array (a structure's record: a run, a segment, a node). */
export function digestAdd3(target: Digest, a: HashPart, b: HashPart, c: HashPart): void {
  tupleBegin();
  tuplePart(a);
  tuplePart(b);
  tuplePart(c);
  tupleAddTo(target);
}

/** target -= hash([a, b, c]), without the array. */
export function digestRemove3(target: Digest, a: HashPart, b: HashPart, c: HashPart): void {
  tupleBegin();
  tuplePart(a);
  tuplePart(b);
  tuplePart(c);
  tupleRemoveFrom(target);
}

/** The lanes after `text` more of the current part. */
export function hashText(lanes: HashLanes, text: string): HashLanes {
  const l = { h1: lanes.h1, h2: lanes.h2 };
  mixText(l, text);
  return l;
}

/**
 * `into` = the lanes after `before`, then `sep` when it is not 0, then `text` (hashText without the new
 * objects, for lanes kept and redone in place; `into` may be `before`).
 */
export function hashTextInto(into: HashLanes, before: HashLanes, sep: number, text: string): void {
  into.h1 = before.h1;
  into.h2 = before.h2;
  if (sep !== 0) mixChar(into, sep);
  mixText(into, text);
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

/*
 * The hashes of number triples last taken, in a direct-mapped table indexed by a mix of the three: the
 * self-checks hash every node and run of the structures they walk after every op, nearly all of which
 * did not change, and a look-up here costs a few multiplies where the WeakMap of hashTripleOf costs a
 * hash-table probe by identity. A slot holds the triple it was taken for, compared before use (a collision
 * only costs a hash), and nothing of the owner: a triple's hash is a function of its three numbers.
 */
const TRIPLE_SLOTS = 8192;
const tripleA = new Float64Array(TRIPLE_SLOTS);
const tripleB = new Float64Array(TRIPLE_SLOTS);
const tripleC = new Float64Array(TRIPLE_SLOTS);
const tripleLo = new Uint32Array(TRIPLE_SLOTS);
const tripleHi = new Uint32Array(TRIPLE_SLOTS);
const tripleSet = new Uint8Array(TRIPLE_SLOTS);

/**
 * target += hashParts([a, b, c]) for the record `owner` (a tree node, a run): what
 * digestAddHash(target, hashTripleOf(owner, a, b, c)) does, with numbers taken from the table above.
 */
export function digestAddTriple(target: Digest, owner: object, a: HashPart, b: HashPart, c: HashPart): void {
  if (typeof a !== 'number' || typeof b !== 'number' || typeof c !== 'number') {
    digestAddHash(target, hashTripleOf(owner, a, b, c));
    return;
  }
  let h = Math.imul((a | 0) ^ 0x27d4eb2d, 0x9e3779b1);
  h = Math.imul(h ^ (b | 0), 0x85ebca6b);
  h = Math.imul(h ^ (c | 0), 0xc2b2ae35);
  const slot = (h ^ (h >>> 15)) & (TRIPLE_SLOTS - 1);
  // A NaN never equals what a slot holds: it is hashed every time, as it should be (its text is "NaN").
  if (tripleSet[slot] !== 1 || tripleA[slot] !== a || tripleB[slot] !== b || tripleC[slot] !== c) {
    tupleBegin();
    tuplePart(a);
    tuplePart(b);
    tuplePart(c);
    tupleFinish();
    tripleA[slot] = a;
    tripleB[slot] = b;
    tripleC[slot] = c;
    tripleLo[slot] = outLo;
    tripleHi[slot] = outHi;
    tripleSet[slot] = 1;
  }
  target.lo = (target.lo + (tripleLo[slot] as number)) >>> 0;
  target.hi = (target.hi + (tripleHi[slot] as number)) >>> 0;
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
  mixTuple(parts);
  tupleAddTo(target);
}

/** target -= hash(parts) */
export function digestRemove(target: Digest, parts: readonly HashPart[]): void {
  mixTuple(parts);
  tupleRemoveFrom(target);
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

/** The character codes of the hex digits 0-9a-f. */
const HEX_CODES = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

const hexDigit = (n: number, shift: number): number => HEX_CODES[(n >>> shift) & 15] as number;

/**
 * 16 hex digits, hi lane first (each lane's toString(16), zero-padded to 8). Written digit by digit into
 * one string: the replayer takes one per op, and toString(16) with padStart cost a microsecond.
 */
export function digestHex(d: Digest): string {
  const h = d.hi;
  const l = d.lo;
  // Lanes are u32 wherever a digest is kept; anything else is written as it always was.
  if (h >>> 0 !== h || l >>> 0 !== l) return d.hi.toString(16).padStart(8, '0') + d.lo.toString(16).padStart(8, '0');
  return String.fromCharCode(
    hexDigit(h, 28),
    hexDigit(h, 24),
    hexDigit(h, 20),
    hexDigit(h, 16),
    hexDigit(h, 12),
    hexDigit(h, 8),
    hexDigit(h, 4),
    hexDigit(h, 0),
    hexDigit(l, 28),
    hexDigit(l, 24),
    hexDigit(l, 20),
    hexDigit(l, 16),
    hexDigit(l, 12),
    hexDigit(l, 8),
    hexDigit(l, 4),
    hexDigit(l, 0),
  );
}
