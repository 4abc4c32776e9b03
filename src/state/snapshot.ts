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
 * `format` is stored beside each snapshot; a new encoding gets a new number and deserializeState keeps
 * reading the old ones. v8's serializer is versioned and reads what older Node versions wrote.
 */
import { deserialize, serialize } from 'node:v8';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { EVENT_SCHEMAS, Event as EventSchema } from '../events/events.js';
import type { Event } from '../events/events.js';
import { decodeJson } from '../lib/codec.js';
import { InternalError } from '../lib/errors.js';
import type { State } from './state.js';

/** 1: v8.serialize, then raw DEFLATE level 1. */
export const SNAPSHOT_FORMAT = 1;

/** Encode a state for the snapshots table. The state is only read. */
export function serializeState(state: State): Uint8Array {
  return deflateRawSync(serialize(state), { level: 1 });
}

/** Decode a snapshot into a fresh, mutable state that shares nothing with any other. */
export function deserializeState(bytes: Uint8Array, format: number = SNAPSHOT_FORMAT): State {
  if (format !== SNAPSHOT_FORMAT)
    throw new InternalError(`snapshot format ${format} is unknown to this version of ioptrace`);
  let value: unknown;
  try {
    value = deserialize(inflateRawSync(bytes));
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
  return value as State;
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
