// SPDX-License-Identifier: GPL-2.0-only
/**
 * The stored text of an event (encodeJson of the whole event), on the recorder's hot path: one call per
 * event. Most event types hold no bigint, and for them JSON.stringify without encodeJson's replacer gives the
 * same text several times faster; which types may hold one is read off their schemas once, so a new field of
 * type u64 moves its event to the slow path without anyone keeping a list.
 */
import type { z } from 'zod';
import { encodeJson, encodeJsonWithoutBigints } from '../lib/codec.js';
import { EVENT_SCHEMAS } from './events.js';
import type { Event, EventType } from './events.js';

/** Child schemas of a zod 4 schema definition, by the definition's kind; undefined for a kind not known here. */
function childSchemas(def: Record<string, unknown>): unknown[] | undefined {
  switch (def['type']) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'literal':
    case 'enum':
    case 'null':
      return [];
    case 'object':
      return Object.values(def['shape'] as Record<string, unknown>);
    case 'array':
      return [def['element']];
    case 'tuple':
      return [
        ...(def['items'] as unknown[]),
        ...(def['rest'] === null || def['rest'] === undefined ? [] : [def['rest']]),
      ];
    case 'union':
      return def['options'] as unknown[];
    case 'nullable':
    case 'optional':
    case 'default':
    case 'readonly':
      return [def['innerType']];
    case 'record':
      return [def['keyType'], def['valueType']];
    default:
      return undefined;
  }
}

/** Whether a value of this schema may hold a bigint; a kind of schema not known here counts as may. */
export function schemaMayHoldBigint(schema: unknown): boolean {
  const def = (schema as { _zod: { def: Record<string, unknown> } })._zod.def;
  if (def['type'] === 'bigint') return true;
  const children = childSchemas(def);
  return children === undefined || children.some(schemaMayHoldBigint);
}

/** The event types whose payload may hold a bigint (an IOVA, an address, a size). */
export const BIGINT_EVENT_TYPES: ReadonlySet<EventType> = new Set(
  EVENT_SCHEMAS.filter((schema: z.ZodType) => schemaMayHoldBigint(schema)).map((schema) => schema.shape.type.value),
);

/** encodeJson(event), faster for the types that hold no bigint. */
export function encodeEvent(event: Event): string {
  return BIGINT_EVENT_TYPES.has(event.type) ? encodeJson(event) : encodeJsonWithoutBigints(event);
}
