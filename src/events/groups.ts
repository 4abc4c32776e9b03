// SPDX-License-Identifier: GPL-2.0-only
/**
 * Named groups of event types, each the one home of a classification that readers filter on. Every group is
 * checked against the event union, so a misspelt or removed event name fails to compile.
 */
import type { EventType } from './events.js';

/** Physical pins taken and dropped (frames' pin counts, the ledger's `pins` account). */
export const PIN_EVENTS = [
  'PagesPinned',
  'PagesUnpinned',
  'PagesPinnedRuns',
  'PagesUnpinnedRuns',
] as const satisfies readonly EventType[];

/** Every change to a pin counter: the source rows of the accounting ledger. */
export const LEDGER_EVENTS = [
  'AccountingCharged',
  'AccountingUncharged',
  'NpinnedChanged',
  'LastNpinnedSet',
  ...PIN_EVENTS,
] as const satisfies readonly EventType[];

/** Changes to what an iopt_pages holds that name the pages (`pages` or `tree.pages`): xarray, trees, areas. */
export const PAGES_HOLDING_EVENTS = [
  'XaStored',
  'XaErased',
  'XaStoredRuns',
  'XaErasedRuns',
  'ItreeInserted',
  'ItreeRemoved',
  'PagesReleased',
  'AreaPagesSet',
] as const satisfies readonly EventType[];

/** After these, a pages' npinned may differ from the indexes it must hold pinned: the ops audit rechecks. */
export const EVENTS_CHANGING_HELD_PINS = [
  'NpinnedChanged',
  ...PAGES_HOLDING_EVENTS,
] as const satisfies readonly EventType[];

/** Cited as evidence of a holdings break: by pages, or by area for a stale domains_itree node. */
export const HOLDING_EVIDENCE_EVENTS = [
  ...PAGES_HOLDING_EVENTS,
  'AreaStorageDomainSet',
  'AreaFreed',
] as const satisfies readonly EventType[];

/** What the checker found: kernel WARNs and invariant violations. */
export const FINDING_EVENTS = ['Warned', 'ViolationDetected'] as const satisfies readonly EventType[];

/** Events that say what a physical page (a PFN) became: mapped, pinned, stored, translated. */
export const PFN_EVENTS = [
  'RunConfigured',
  'FramesAllocated',
  'FrameRunsAllocated',
  'VmaMapped',
  'VmaUnmapped',
  'CowBroken',
  'MemoryWritten',
  ...PIN_EVENTS,
  'XaStored',
  'XaErased',
  'XaStoredRuns',
  'XaErasedRuns',
  'PagesReleased',
  'IommuMapped',
  'IommuMappedRuns',
  'IommuUnmapped',
  'DomainFreed',
  ...FINDING_EVENTS,
] as const satisfies readonly EventType[];

/** Events that say what an index of an iopt_pages became: stored, covered by an access or area, mapped. */
export const INDEX_EVENTS = [
  'RunConfigured',
  'PagesAllocated',
  'PagesReleased',
  'XaStored',
  'XaErased',
  'XaStoredRuns',
  'XaErasedRuns',
  'ItreeInserted',
  'ItreeRemoved',
  'PagesAccessAllocated',
  'PagesAccessFreed',
  'AreaAllocated',
  'AreaPagesSet',
  'AreaFreed',
  'IoasDomainsSet',
  'IommuMapped',
  'IommuMappedRuns',
  'IommuUnmapped',
  ...FINDING_EVENTS,
] as const satisfies readonly EventType[];

/** Events that set a field bisect leaves out of the digest (IOAS alignment, heap provenance). */
export const NEUTRAL_EVENTS = [
  'IoasAllocated',
  'IovaAlignmentSet',
  'HeapAllocated',
  'HeapFreed',
] as const satisfies readonly EventType[];
