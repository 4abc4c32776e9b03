// SPDX-License-Identifier: GPL-2.0-only
/**
 * Snapshots of the State and decoding of stored events: the two halves of every seek (load the nearest
 * snapshot, reduce the events after it).
 *
 * A snapshot is v8.serialize of the State (plain objects, arrays, bigints and shared references survive it
 * exactly), compressed with raw DEFLATE at level 1. Measured on a state of 9,000 records (67,000 objects,
 * 3.7 MB serialized): level 1 shrinks it 10x for a few ms each way, where level 6 saves 10% more for 4x the
 * write time; JSON (bigints as strings, revived by a walk) decodes no faster than v8.deserialize, since
 * either way the cost is building the objects, and is a third larger. Writes happen on the live path every
 * 256 to 4,096 events (snapshot-spacing.ts), loads on every seek: both must stay a few ms.
 *
 * Format 2 (snapshot-parts.ts) encodes the large structures as parts of their own, so that a recorder
 * holding a SnapshotEncoder re-encodes only the parts written since its last snapshot: on a 16 GiB guest
 * the page tables and IO page tables are most of the bytes and rarely change between snapshots, and
 * encoding the whole state every time cost a quarter of a recording's CPU. Each snapshot is still one
 * self-contained blob.
 *
 * `format` is stored beside each snapshot; a new encoding gets a new number and deserializeState keeps
 * reading the old ones. v8's serializer is versioned and reads what older Node versions wrote.
 */
import { deserialize } from 'node:v8';
import { inflateRawSync } from 'node:zlib';
import { EVENT_SCHEMAS, Event as EventSchema } from '../events/events.js';
import type { Event } from '../events/events.js';
import { decodeJson } from '../lib/codec.js';
import { InternalError } from '../lib/errors.js';
import type { State } from './state.js';
import { SnapshotEncoder, decodeParts } from './snapshot-parts.js';
import { mappingsRegroupAll } from '../structures/mapping-table.js';
import { rangeRegroupAll } from '../structures/range-map.js';
import { xaRegroupAll } from '../structures/xarray.js';

export { SnapshotEncoder } from './snapshot-parts.js';

/**
 * 1: v8.serialize of the whole state, then raw DEFLATE level 1 (still read). 2: the same per part, behind a
 * header (snapshot-parts.ts). 3: format 2 with the structures stored as progressions
 * (structures/progression.ts); formats 1 and 2 hold one object per entry and are regrouped as they are read.
 */
export const SNAPSHOT_FORMAT = 3;

/**
 * Encode one state for the snapshots table, with nothing reused: a recorder that snapshots one state over
 * and over keeps a SnapshotEncoder instead. The state is only read.
 */
export function serializeState(state: State): Uint8Array {
  return new SnapshotEncoder().encode(state);
}

/** Decode a snapshot into a fresh, mutable state that shares nothing with any other. */
export function deserializeState(bytes: Uint8Array, format: number = SNAPSHOT_FORMAT): State {
  if (format !== 1 && format !== 2 && format !== 3)
    throw new InternalError(`snapshot format ${format} is unknown to this version of ioptrace`);
  let value: unknown;
  try {
    value = format === 1 ? deserialize(inflateRawSync(bytes)) : decodeParts(bytes);
  } catch (err) {
    throw new InternalError(`snapshot does not decode: ${(err as Error).message}`);
  }
  const s = value as Partial<State> | null;
  if (s === null || typeof s !== 'object' || typeof s.digest !== 'object' || typeof s.processes !== 'object') {
    throw new InternalError('snapshot does not hold a state');
  }
  // Snapshots stored before version 2 traces existed have no file tables: they were empty then.
  s.openFiles ??= {};
  s.fds ??= {};
  if (format < 3) regroupStructures(value as State);
  return value as State;
}

/** Put the structures of a state decoded from format 1 or 2 (one object per entry) into progressions. */
function regroupStructures(state: State): void {
  rangeRegroupAll(state.frames);
  for (const mm of Object.values(state.mms)) {
    xaRegroupAll(mm.pt);
    rangeRegroupAll(mm.vmas);
  }
  for (const file of Object.values(state.files)) xaRegroupAll(file.pt);
  for (const pages of Object.values(state.pages)) xaRegroupAll(pages.xa);
  for (const domain of Object.values(state.domains)) mappingsRegroupAll(domain.mappings);
}

const CURRENT_VERSION: ReadonlyMap<string, number> = new Map(
  EVENT_SCHEMAS.map((schema) => [schema.shape.type.value, schema.shape.v.value]),
);

// A bigint is written as "<digits>n"; a payload without a digit before `n"` has none, and plain JSON.parse
// (no reviver: several times faster) reads it exactly as decodeJson would.
const MAY_HOLD_BIGINT = /\dn"/;

/**
 * Decode a stored event payload (encodeJson of the whole event) with a cheap check of its type and version;
 * the hot path of every seek. Throws InternalError for a payload that is not an event of this vocabulary.
 */
export function decodeEvent(payload: string): Event {
  let value: unknown;
  try {
    value = MAY_HOLD_BIGINT.test(payload) ? decodeJson(payload) : JSON.parse(payload);
  } catch {
    throw new InternalError(`event payload is not JSON: ${payload.slice(0, 80)}`);
  }
  const e = value as { type?: unknown; v?: unknown } | null;
  const type = e !== null && typeof e === 'object' ? e.type : undefined;
  const version = typeof type === 'string' ? CURRENT_VERSION.get(type) : undefined;
  if (version === undefined) throw new InternalError(`event payload has unknown type ${JSON.stringify(type)}`);
  if (e?.v !== version)
    throw new InternalError(`event ${String(type)} has version ${String(e?.v)}, expected ${version}`);
  return value as Event;
}

/** Decode and fully validate a payload against the event schemas (boundaries: imports, verify). */
export function parseEvent(payload: string): Event {
  let value: unknown;
  try {
    value = decodeJson(payload);
  } catch {
    throw new InternalError(`event payload is not JSON: ${payload.slice(0, 80)}`);
  }
  const parsed = EventSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue === undefined || issue.path.length === 0 ? '(event)' : issue.path.join('.');
    throw new InternalError(`event payload: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
