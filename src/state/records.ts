// SPDX-License-Identifier: GPL-2.0-only
/**
 * Digest-keeping writes. Every record of the State (a process, an area, a pages, ...) contributes one hash
 * per field to State.digest: hash(table, key, field, value). A nested structure (interval tree, xarray,
 * range map, mapping table) contributes hash(table, key, field, its own digest), which the structure keeps
 * up to date itself. So a write costs O(1) hashes whatever the size of the state, and the reducers use only
 * these helpers to write records.
 *
 * The State's digested tables and the from-scratch digest are in state.ts, next to the State.
 *
 * Cursors (nextId, nextPfn, opsDone) are not in the digest: they say how the state was reached, not what
 * it is.
 */
import type { Digest, HashPart } from '../lib/digest.js';
import type { HashLanes } from '../lib/digest.js';
import {
  tupleLane1,
  tupleLane2,
  tupleResume,
  digestAddHash,
  digestRemoveHash,
  hashBegin,
  hashEnd,
  hashParts,
  hashText,
  hashTextInto,
  tupleAddTo,
  tupleKey,
  tuplePart,
  tupleRemoveFrom,
  tupleStart,
  tupleString,
} from '../lib/digest.js';
import { encodeJson } from '../lib/codec.js';

type Key = string | number;

/** The separator of a JSON object's members. */
const COMMA = 0x2c;

/** What the writers touch of a State: only its digest (so this file needs nothing of state.ts). */
export interface Digested {
  digest: Digest;
}

/*
 * Whether the writers below keep the state's digest. A replay of the log that needs only the state at its
 * end (timetravel/state-at.ts replayInto: a rebuild from the initial state, B2, or a seek's long tail)
 * turns it off for each synchronous stretch of reducer calls and recomputes the digest from scratch once at
 * the end (state.ts recomputeDigest: the same sum of the same field hashes). Off, a writer only writes: the
 * record hashing is most of what a reducer costs. Nested structures keep their own digests either way (the
 * recomputed digest folds them in).
 */
let keeping = true;

/**
 * Run `f` (synchronous reducer calls) with the state digest not kept: the digests of the states it writes
 * are stale afterwards and must be recomputed (recomputeDigest) before use. Synchronous, so no other
 * code runs while it is off.
 */
export function withoutStateDigest(f: () => void): void {
  if (!keeping) {
    f();
    return;
  }
  keeping = false;
  try {
    f();
  } finally {
    keeping = true;
  }
}

function isStructure(value: object): value is { digest: Digest } {
  const d = (value as { digest?: unknown }).digest;
  return typeof d === 'object' && d !== null && typeof (d as Digest).lo === 'number';
}

// Keys are hashed as text: Record keys are text in JS, so a rebuilt table hashes like the live one.
/** What one field of one record hashes as (exported for the bisect's neutral digests, which subtract some). */
export function fieldParts(table: string, key: Key, field: string, value: unknown): HashPart[] {
  const k = String(key);
  if (value === null || typeof value !== 'object') return [table, k, field, value as HashPart];
  if (isStructure(value)) return [table, k, field, '#', value.digest.lo, value.digest.hi];
  return [table, k, field, encodeJson(value)];
}

/** What a field's value hashes as when it is neither a primitive nor a structure: its JSON text. */
function jsonOf(value: unknown): string | null {
  return value !== null && typeof value === 'object' && !isStructure(value) ? encodeJson(value) : null;
}

/** Start the hash of a field: the parts fieldParts puts before the value. */
function fieldStart(table: string, key: Key, field: string): void {
  tupleStart();
  tupleString(table);
  tupleKey(key);
  tupleString(field);
}

/** The value part of fieldParts (`json`: jsonOf(value), taken before the hash started). */
function fieldValue(value: unknown, json: string | null): void {
  if (json !== null) tupleString(json);
  else if (value === null || typeof value !== 'object') tuplePart(value as HashPart);
  else {
    const d = (value as { digest: Digest }).digest;
    tupleString('#');
    tuplePart(d.lo);
    tuplePart(d.hi);
  }
}

/**
 * target +/-= hashParts(fieldParts(table, key, field, value)), mixed part by part: no parts array, no text
 * of a numeric key or value, no hash object (this runs for every field of every event's record).
 */
function fieldHash(target: Digest, add: boolean, table: string, key: Key, field: string, value: unknown): void {
  // Encoded before the hash starts: the hasher holds one tuple at a time.
  const json = jsonOf(value);
  fieldStart(table, key, field);
  fieldValue(value, json);
  if (add) tupleAddTo(target);
  else tupleRemoveFrom(target);
}

/**
 * What a record of primitive fields added to the digest, by identity: its fields and their values then,
 * and the sum of their hashes. Removing the record while every field still holds that value (compared,
 * not assumed: a record may have been written in place since) subtracts the sum instead of hashing each
 * field again. Heap allocations and pages_access records come and go on every access op.
 */
interface RecordSeen {
  table: string;
  key: Key;
  fields: string[];
  values: unknown[];
  lo: number;
  hi: number;
}
const recordsSeen = new WeakMap<object, RecordSeen>();

export function recordAdd<R extends object>(s: Digested, table: string, key: Key, rec: R): void {
  if (!keeping) return;
  const fields = Object.keys(rec);
  // The fields' hashes summed apart, then added: the same digest (the lanes add mod 2^32, in any order).
  const sum: Digest = { lo: 0, hi: 0 };
  let primitive = true;
  const values: unknown[] = [];
  for (let i = 0; i < fields.length; i++) {
    const value = rec[fields[i] as keyof R];
    if (value !== null && typeof value === 'object') primitive = false;
    values.push(value);
    fieldHash(sum, true, table, key, fields[i] as string, value);
  }
  digestAddHash(s.digest, sum);
  if (primitive) recordsSeen.set(rec, { table, key, fields, values, lo: sum.lo, hi: sum.hi });
}

export function recordRemove<R extends object>(s: Digested, table: string, key: Key, rec: R): void {
  if (!keeping) return;
  const fields = Object.keys(rec);
  const seen = recordsSeen.get(rec);
  if (seen !== undefined) {
    recordsSeen.delete(rec);
    if (seen.table === table && seen.key === key && unchanged(seen, rec, fields)) {
      digestRemoveHash(s.digest, seen);
      return;
    }
  }
  for (const field of fields) fieldHash(s.digest, false, table, key, field, rec[field as keyof R]);
}

/** Does `rec` have exactly the fields, in the order, and the values `seen` has? */
function unchanged(seen: RecordSeen, rec: object, fields: readonly string[]): boolean {
  if (fields.length !== seen.fields.length) return false;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as string;
    if (field !== seen.fields[i] || (rec as Record<string, unknown>)[field] !== seen.values[i]) return false;
  }
  return true;
}

/**
 * rec[field] = value, keeping the digest. The old and the new value's hashes share their first parts, which
 * are mixed once.
 */
export function recordSet<R extends object, F extends keyof R & string>(
  s: Digested,
  table: string,
  key: Key,
  rec: R,
  field: F,
  value: R[F],
): void {
  if (!keeping) {
    rec[field] = value;
    return;
  }
  const oldJson = jsonOf(rec[field]);
  const newJson = jsonOf(value);
  fieldStart(table, key, field);
  const l1 = tupleLane1();
  const l2 = tupleLane2();
  fieldValue(rec[field], oldJson);
  tupleRemoveFrom(s.digest);
  rec[field] = value;
  tupleResume(l1, l2);
  fieldValue(value, newJson);
  tupleAddTo(s.digest);
}

/**
 * Mutate a nested structure (which keeps its own digest) and fold its new digest into the state's. The
 * structure's hashing in between starts tuples of its own: the field's first parts are resumed after it.
 */
export function recordStructure<R extends object, F extends keyof R & string>(
  s: Digested,
  table: string,
  key: Key,
  rec: R,
  field: F,
  mutate: (structure: R[F]) => void,
): void {
  if (!keeping) {
    mutate(rec[field]);
    return;
  }
  const before = jsonOf(rec[field]);
  fieldStart(table, key, field);
  const l1 = tupleLane1();
  const l2 = tupleLane2();
  fieldValue(rec[field], before);
  tupleRemoveFrom(s.digest);
  mutate(rec[field]);
  const after = jsonOf(rec[field]);
  tupleResume(l1, l2);
  fieldValue(rec[field], after);
  tupleAddTo(s.digest);
}

/**
 * The JSON text of each entry of a nested table (an access's items), by identity. recordSetEntry never
 * changes an entry in place (an entry written is a new object), so what is remembered of an object seen
 * once stays true; an object not seen (an immer draft) is encoded afresh.
 */
const entryText = new WeakMap<object, string>();

/**
 * encodeJson's text of an object whose members are all integers, bigints, booleans or null (an access
 * item), written member by member: the replacer costs a call into JS per member. Null for anything else.
 * Members in Object.keys order, as JSON.stringify writes them; a bigint as its digits and `n` in a string.
 */
function encodeFlat(entry: object): string | null {
  const rec = entry as Record<string, unknown>;
  let text = '{';
  const keys = Object.keys(rec);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const v = rec[k];
    let member: string;
    if (typeof v === 'bigint') member = `"${v.toString()}n"`;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) member = `${v}`;
    else if (typeof v === 'boolean') member = v ? 'true' : 'false';
    else if (v === null) member = 'null';
    else return null;
    text += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${member}`;
  }
  return `${text}}`;
}

function encodeEntry(entry: object): string {
  let text = entryText.get(entry);
  if (text === undefined) {
    text = encodeFlat(entry) ?? encodeJson(entry);
    entryText.set(entry, text);
  }
  return text;
}

/**
 * A nested table's field hash and what it is made of. When every key is an array index: the keys
 * (ascending, as numbers), each entry's `"key":text`, and the hash lanes after each prefix of the text
 * (`lanes[i]`: after `{` and the first i parts with their commas, valid for i < `lanesValid`), so that
 * one entry written changes one element of each and rehashes only the text after it. Otherwise the text.
 */
interface TableSeen {
  keys: number[] | null;
  parts: string[] | null;
  lanes: HashLanes[];
  lanesValid: number;
  /** Only for a table with a key that is not an array index. */
  text: string | null;
  /** The table, key and field the lanes and hash were taken for (compared apart: no path text per write). */
  pathTable: string | null;
  pathKey: Key | null;
  pathField: string | null;
  hash: Digest | null;
}
/**
 * What was seen of each table, by identity. recordSetEntry changes a table in place and what is remembered
 * of it in the same call, so the entry stays true; a table changed by anything else is not in here (it was
 * never seen, or it is a new object).
 */
const tables = new WeakMap<object, TableSeen>();

/** An array index: JSON.stringify writes these keys first, ascending, whatever the insertion order. */
const isIndex = (k: string): boolean => /^(0|[1-9]\d*)$/.test(k) && Number(k) < 2 ** 32 - 1;

/**
 * What encodeJson gives for a table whose values are all objects: JSON.stringify writes `{`, then each
 * own key (array indexes ascending, then the other keys in insertion order) as a JSON string, `:`, the
 * value's text, comma-separated, then `}`. The replacer leaves keys and objects alone, so the value's
 * text is its own encodeJson, which encodeEntry keeps. Equal text means an equal hash: the digest is what
 * it always was.
 */
function seeTable(table: Record<Key, object>): TableSeen {
  let seen = tables.get(table);
  if (seen !== undefined) return seen;
  const parts: string[] = [];
  const keys: number[] = [];
  let indexes = true;
  for (const k of Object.keys(table)) {
    parts.push(`${JSON.stringify(k)}:${encodeEntry(table[k] as object)}`);
    if (indexes && isIndex(k)) keys.push(Number(k));
    else indexes = false;
  }
  seen = {
    keys: indexes ? keys : null,
    parts: indexes ? parts : null,
    lanes: [],
    lanesValid: 0,
    text: indexes ? null : `{${parts.join(',')}}`,
    pathTable: null,
    pathKey: null,
    pathField: null,
    hash: null,
  };
  tables.set(table, seen);
  return seen;
}

/** hashParts(fieldParts(table, key, field, value)) for a nested table `value`, remembered with it. */
function tableHash(table: string, key: Key, field: string, seen: TableSeen): Digest {
  // A key given once as a number and once as text only misses: the hash is redone, the same.
  const samePath = seen.pathTable === table && seen.pathKey === key && seen.pathField === field;
  if (samePath && seen.hash !== null) return seen.hash;
  if (seen.parts === null) {
    seen.hash = hashParts([table, String(key), field, seen.text ?? '']);
  } else {
    // The text is `{` parts joined by `,` then `}`: hash it from the last prefix whose lanes are known.
    if (!samePath) seen.lanesValid = 0;
    const lanes = seen.lanes;
    if (seen.lanesValid === 0) {
      lanes[0] = hashText(hashBegin([table, String(key), field]), 's{');
      seen.lanesValid = 1;
    }
    const parts = seen.parts;
    for (let i = seen.lanesValid; i <= parts.length; i++) {
      // Lanes past the valid ones are stale, not shared: they are redone in place.
      const before = lanes[i - 1] as HashLanes;
      const at = lanes[i] ?? { h1: 0, h2: 0 };
      hashTextInto(at, before, i === 1 ? 0 : COMMA, parts[i - 1] as string);
      lanes[i] = at;
    }
    lanes.length = parts.length + 1;
    seen.lanesValid = lanes.length;
    seen.hash = hashEnd(hashText(lanes[parts.length] as HashLanes, '}'));
  }
  seen.pathTable = table;
  seen.pathKey = key;
  seen.pathField = field;
  return seen.hash;
}

/** The first position in ascending `keys` whose key is >= k. */
function lowerBound(keys: readonly number[], k: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((keys[mid] as number) < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Update what is seen of an index-keyed table for entry `k` set to `entry` (undefined deletes): one element
 * of its keys and parts, and the lanes after it no longer known. False when the table has other keys or
 * `k` is not an index (then the text is rebuilt from the table itself).
 */
function seeEntry(seen: TableSeen, k: string, entry: object | undefined): boolean {
  const keys = seen.keys;
  const parts = seen.parts;
  if (keys === null || parts === null || !isIndex(k)) return false;
  const n = Number(k);
  const at = lowerBound(keys, n);
  const present = keys[at] === n;
  if (entry === undefined) {
    if (!present) return true;
    keys.splice(at, 1);
    parts.splice(at, 1);
  } else {
    const part = `${JSON.stringify(k)}:${encodeEntry(entry)}`;
    if (present) parts[at] = part;
    else if (at === keys.length) {
      keys.push(n);
      parts.push(part);
    } else {
      keys.splice(at, 0, n);
      parts.splice(at, 0, part);
    }
  }
  // lanes[i] covers the first i parts: those up to the changed one stay.
  seen.lanesValid = Math.min(seen.lanesValid, at + 1);
  seen.hash = null;
  return true;
}

/**
 * The keys of a nested table written by recordSetEntry (an access's items), ascending, as numbers: null
 * when the table was never seen or has a key that is not an array index. Read only; it is what the table
 * holds for as long as only recordSetEntry writes it (see `tables`), and lets a reader skip Object.values,
 * which sorts a sparse table's keys on every call.
 */
export function tableKeys(table: object): readonly number[] | null {
  return tables.get(table)?.keys ?? null;
}

/**
 * rec[field][entryKey] = entry (undefined deletes) for a field that is a table of object entries (an
 * access's items), keeping the digest: the digest of the field is what fieldParts gives for it. The table
 * is changed in place (a copy of a table of sparse integer keys costs far more than the write), with what
 * is known of it: its hash (so taking it out costs nothing) and the text of the entries that stay.
 */
export function recordSetEntry<E extends object, R extends { [F in K]: Record<Key, E> }, K extends keyof R & string>(
  s: Digested,
  table: string,
  key: Key,
  rec: R,
  field: K,
  entryKey: Key,
  entry: E | undefined,
): void {
  const items: Record<Key, E> = rec[field];
  if (!keeping) {
    // What is remembered of the table would go stale: forgotten, so a later kept write reads it afresh.
    tables.delete(items);
    if (entry === undefined) delete items[entryKey];
    else items[entryKey] = entry;
    return;
  }
  const seen = seeTable(items);
  digestRemoveHash(s.digest, tableHash(table, key, field, seen));
  const kept = seeEntry(seen, String(entryKey), entry);
  if (entry === undefined) delete items[entryKey];
  else items[entryKey] = entry;
  if (!kept) tables.delete(items);
  digestAddHash(s.digest, tableHash(table, key, field, kept ? seen : seeTable(items)));
}

/** table[key] = value for tables of plain values (undefined deletes), keeping the digest. */
export function entrySet<V extends HashPart>(
  s: Digested,
  table: string,
  map: Record<Key, V>,
  key: Key,
  value: V | undefined,
): void {
  if (!keeping) {
    if (value === undefined) delete map[key];
    else map[key] = value;
    return;
  }
  const old = map[key];
  if (old !== undefined) {
    tupleStart();
    tupleString(table);
    tupleKey(key);
    tuplePart(old);
    tupleRemoveFrom(s.digest);
  }
  if (value === undefined) delete map[key];
  else {
    map[key] = value;
    tupleStart();
    tupleString(table);
    tupleKey(key);
    tuplePart(value);
    tupleAddTo(s.digest);
  }
}
