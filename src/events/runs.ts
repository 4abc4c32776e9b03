// SPDX-License-Identifier: GPL-2.0-only
/**
 * Version 4's list events seen as the single events they stand for, so that a reader written for one
 * PagesPinned / PagesUnpinned / IommuMapped per run reads both trace forms alike.
 */
import type { Event, EventOf } from './events.js';

export type PinEvent = EventOf<'PagesPinned'> | EventOf<'PagesUnpinned'>;

/** The IommuMapped events `e` stands for, in order: itself, one per extent of a list event, or none. */
export function mappedEventsOf(e: Event): EventOf<'IommuMapped'>[] {
  if (e.type === 'IommuMapped') return [e];
  if (e.type !== 'IommuMappedRuns') return [];
  const { domain, read, write, fn } = e;
  return e.extents.map((x) => ({ type: 'IommuMapped', v: 1, domain, read, write, fn, ...x }));
}

/** The pin events `e` stands for, in order: itself, one per run of a list event, or none. */
export function pinEventsOf(e: Event): PinEvent[] {
  switch (e.type) {
    case 'PagesPinned':
    case 'PagesUnpinned':
      return [e];
    case 'PagesPinnedRuns':
      return e.runs.map(([pfn, count]) => ({ type: 'PagesPinned', v: 1, pfn, count, fn: e.fn, mm: e.mm }));
    case 'PagesUnpinnedRuns':
      return e.runs.map(([pfn, count]) => ({ type: 'PagesUnpinned', v: 1, pfn, count, dirty: e.dirty, fn: e.fn }));
    default:
      return [];
  }
}
