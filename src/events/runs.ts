// SPDX-License-Identifier: GPL-2.0-only
/**
 * Version 4's and 5's list events seen as the single events they stand for, so that a reader written for
 * one PagesPinned / PagesUnpinned / IommuMapped / XaStored / XaErased per run reads every trace form alike.
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

export type XaEvent = EventOf<'XaStored'> | EventOf<'XaErased'>;

/** The xarray write events `e` stands for, in order: itself, one per run of a version 5 list event, or none. */
export function xaEventsOf(e: Event): XaEvent[] {
  switch (e.type) {
    case 'XaStored':
    case 'XaErased':
      return [e];
    case 'XaStoredRuns':
      return e.runs.map(([index, pfn, count]) => ({ type: 'XaStored', v: 1, pages: e.pages, index, pfn, count }));
    case 'XaErasedRuns':
      return e.runs.map(([index, count]) => ({ type: 'XaErased', v: 1, pages: e.pages, index, count }));
    default:
      return [];
  }
}
