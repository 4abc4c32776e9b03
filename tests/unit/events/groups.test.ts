// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { EVENT_SCHEMAS, type EventType } from '../../../src/events/events.js';
import {
  EVENTS_CHANGING_HELD_PINS,
  HOLDING_EVIDENCE_EVENTS,
  PAGES_HOLDING_EVENTS,
} from '../../../src/events/groups.js';

const fieldsOf = (type: EventType): string[] =>
  Object.keys(EVENT_SCHEMAS.find((s) => s.shape.type.value === type)?.shape ?? {});

describe('event groups', () => {
  it('reject a misspelt event name at compile time', () => {
    // @ts-expect-error: 'PagesPined' is no event type.
    const misspelt = ['PagesPined'] as const satisfies readonly EventType[];
    expect(misspelt).toEqual(['PagesPined']);
  });

  it('recheck holdings only on events that name their pages (the ledger query keys them by pages)', () => {
    expect(
      EVENTS_CHANGING_HELD_PINS.filter((t) => !fieldsOf(t).includes('pages') && !fieldsOf(t).includes('tree')),
    ).toEqual([]);
  });

  it('cite as holdings evidence the pages events plus the area events that name no pages', () => {
    const extra = HOLDING_EVIDENCE_EVENTS.filter((t) => !(PAGES_HOLDING_EVENTS as readonly EventType[]).includes(t));
    expect(extra).toEqual(['AreaStorageDomainSet', 'AreaFreed']);
    expect(extra.map((t) => fieldsOf(t).includes('pages'))).toEqual([false, false]);
    expect(extra.map((t) => fieldsOf(t).includes('area'))).toEqual([true, true]);
  });
});
