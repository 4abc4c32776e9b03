// SPDX-License-Identifier: GPL-2.0-only
/**
 * The events of one op in two runs, side by side: which effects both runs had, which only one had, and the
 * kernel objects (heap allocations, mms, PFNs, pages, areas, domains, counters) that the differing effects
 * and state differences name.
 *
 * Events are matched as a multiset by their whole content (not by position), so the cost is linear in the
 * op's events: no longest-common-subsequence, which would be quadratic. The side-by-side rows keep each
 * run's order; an event present on both sides but in another order is marked '~'.
 */
import type { Event } from '../events/events.js';
import { describeEvent } from '../events/describe.js';
import { pinEventsOf } from '../events/runs.js';
import { encodeJson } from '../lib/codec.js';
import type { Difference } from '../state/diff.js';
import { differencePlace, hex } from '../state/diff.js';
import { kernelPlace } from '../state/kernel-names.js';

/** '=' on both sides in step, '<' only in run A, '>' only in run B, '~' on both sides but out of step. */
export type RowMark = '=' | '<' | '>' | '~';

export interface SideBySideRow {
  mark: RowMark;
  a: string | null;
  b: string | null;
}

export interface EffectsComparison {
  rows: SideBySideRow[];
  /** Effects only one run had (OpStarted/OpFinished included: they carry the caller and the result). */
  onlyA: string[];
  onlyB: string[];
  eventsA: number;
  eventsB: number;
}

/** One event as one line, as `log` shows it but spaced: `HeapFreed alloc 4 fn pfn_reader_user_pin`. */
export function renderEvent(event: Event): string {
  return describeEvent(event, ' ');
}

/** How many times each key occurs in both lists (the matched part of the multisets). */
function matchedCounts(ka: readonly string[], kb: readonly string[]): Map<string, number> {
  const inB = new Map<string, number>();
  for (const k of kb) inB.set(k, (inB.get(k) ?? 0) + 1);
  const matched = new Map<string, number>();
  for (const k of ka) {
    const n = inB.get(k) ?? 0;
    if (n === 0) continue;
    inB.set(k, n - 1);
    matched.set(k, (matched.get(k) ?? 0) + 1);
  }
  return matched;
}

/** Use one of `key`'s remaining matches; false when none is left (the occurrence is unmatched). */
function take(budget: Map<string, number>, key: string): boolean {
  const n = budget.get(key) ?? 0;
  if (n === 0) return false;
  budget.set(key, n - 1);
  return true;
}

/** Compare the events of one op in run A and run B. */
export function compareEffects(a: readonly Event[], b: readonly Event[]): EffectsComparison {
  const ka = a.map((e) => encodeJson(e));
  const kb = b.map((e) => encodeJson(e));
  const matched = matchedCounts(ka, kb);
  // Each side may match each key as often as both sides have it; the first occurrences are the matched ones.
  const budgetA = new Map(matched);
  const budgetB = new Map(matched);
  const rows: SideBySideRow[] = [];
  const onlyA: string[] = [];
  const onlyB: string[] = [];
  let i = 0;
  let j = 0;
  while (i < ka.length || j < kb.length) {
    const x = ka[i];
    const y = kb[j];
    if (x !== undefined && x === y && (budgetA.get(x) ?? 0) > 0 && (budgetB.get(y) ?? 0) > 0) {
      take(budgetA, x);
      take(budgetB, y);
      const text = renderEvent(a[i] as Event);
      rows.push({ mark: '=', a: text, b: text });
      i++;
      j++;
    } else if (x !== undefined && (budgetA.get(x) ?? 0) === 0) {
      const text = renderEvent(a[i] as Event);
      rows.push({ mark: '<', a: text, b: null });
      onlyA.push(text);
      i++;
    } else if (y !== undefined && (budgetB.get(y) ?? 0) === 0) {
      const text = renderEvent(b[j] as Event);
      rows.push({ mark: '>', a: null, b: text });
      onlyB.push(text);
      j++;
    } else if (x !== undefined) {
      take(budgetA, x);
      rows.push({ mark: '~', a: renderEvent(a[i] as Event), b: null });
      i++;
    } else if (y !== undefined) {
      take(budgetB, y);
      rows.push({ mark: '~', a: null, b: renderEvent(b[j] as Event) });
      j++;
    }
  }
  return { rows, onlyA, onlyB, eventsA: a.length, eventsB: b.length };
}

/** The events of `a` that `b` lacks (multiset difference), in `a`'s order. */
export function eventsOnlyIn(a: readonly Event[], b: readonly Event[]): Event[] {
  const budget = matchedCounts(
    a.map((e) => encodeJson(e)),
    b.map((e) => encodeJson(e)),
  );
  return a.filter((e) => !take(budget, encodeJson(e)));
}

/** The kernel objects a divergence names, each list sorted and without repeats. */
export interface NamedObjects {
  /** Heap allocation ids. */
  allocations: number[];
  mms: number[];
  /** PFN ranges [first, last], merged where adjacent. */
  pfns: [number, number][];
  pages: number[];
  areas: number[];
  domains: string[];
  /** Accounting and reference counters: `mm 1 users`, `user 1000 lockedVm`, `pages 7 npinned`. */
  counters: string[];
}

const COUNTER_FIELDS: Readonly<Record<string, readonly string[]>> = {
  mms: ['users', 'count', 'lockedVm', 'pinnedVm'],
  users: ['lockedVm'],
  pages: ['refs', 'npinned', 'lastNpinned'],
  areas: ['numAccesses'],
  pagesAccesses: ['users'],
  counts: ['warns', 'violations'],
};

const COUNTER_EVENTS = new Set(['AccountingCharged', 'AccountingUncharged', 'NpinnedChanged', 'LastNpinnedSet']);

function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const out: [number, number][] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/** Collect the objects named by state differences and by the effects only one run had. */
export function namedObjects(differences: readonly Difference[], onlyEvents: readonly Event[]): NamedObjects {
  const allocations = new Set<number>();
  const mms = new Set<number>();
  const pfns: [number, number][] = [];
  const pages = new Set<number>();
  const areas = new Set<number>();
  const domains = new Set<string>();
  const counters = new Set<string>();
  for (const d of differences) {
    const key = d.key;
    if (d.table === 'heap' && key !== null) allocations.add(Number(key));
    if (d.table === 'mms' && key !== null) mms.add(Number(key));
    if (d.table === 'pages' && key !== null) pages.add(Number(key));
    if (d.table === 'areas' && key !== null) areas.add(Number(key));
    if (d.table === 'domains' && key !== null) domains.add(key);
    if ((d.table === 'frames' || d.table === 'pageData') && d.at !== null)
      pfns.push([Number(d.at.first), Number(d.at.last)]);
    if ((d.table === 'pages' || d.table === 'mms') && (d.path[0] === 'xa' || d.path[0] === 'pt') && d.at !== null) {
      // A differing xarray/page-table run names the PFNs on both sides.
      const n = Number(d.at.last) - Number(d.at.first);
      for (const pfn of [d.a, d.b]) if (typeof pfn === 'number') pfns.push([pfn, pfn + n]);
    }
    const field = d.path[d.path.length - 1];
    if (field !== undefined && COUNTER_FIELDS[d.table]?.includes(field) === true) {
      counters.add(d.path.length === 1 ? differencePlace(d) : kernelPlace(d.table, key, [field]));
    }
  }
  for (const e of onlyEvents) {
    const f = e as unknown as Record<string, unknown>;
    if (typeof f['alloc'] === 'number') allocations.add(f['alloc']);
    if (typeof f['mm'] === 'number') mms.add(f['mm']);
    if (typeof f['pages'] === 'number') pages.add(f['pages']);
    if (typeof f['area'] === 'number') areas.add(f['area']);
    if (typeof f['domain'] === 'string') domains.add(f['domain']);
    for (const r of pinEventsOf(e)) if (r.count > 0) pfns.push([r.pfn, r.pfn + r.count - 1]);
    if (e.type === 'ViolationDetected' || e.type === 'Warned') {
      const o = e.objects;
      if (typeof o['alloc'] === 'number') allocations.add(o['alloc']);
      if (typeof o['mm'] === 'number') mms.add(o['mm']);
      if (typeof o['pages'] === 'number') pages.add(o['pages']);
      if (typeof o['area'] === 'number') areas.add(o['area']);
    }
    if ((e.type === 'ItreeInserted' || e.type === 'ItreeRemoved') && 'pages' in e.tree) pages.add(e.tree.pages);
    if (e.type === 'MmGot' || e.type === 'MmPut') counters.add(kernelPlace('mms', String(e.mm), ['users']));
    if (e.type === 'MmGrabbed' || e.type === 'MmDropped') counters.add(kernelPlace('mms', String(e.mm), ['count']));
    if (COUNTER_EVENTS.has(e.type)) {
      if (e.type === 'AccountingCharged' || e.type === 'AccountingUncharged')
        counters.add(`${e.counter} of ${e.owner}`);
      else
        counters.add(
          kernelPlace('pages', String((e as { pages: number }).pages), [
            e.type === 'NpinnedChanged' ? 'npinned' : 'lastNpinned',
          ]),
        );
    }
  }
  const num = (s: Set<number>): number[] => [...s].sort((x, y) => x - y);
  return {
    allocations: num(allocations),
    mms: num(mms),
    pfns: mergeRanges(pfns),
    pages: num(pages),
    areas: num(areas),
    domains: [...domains].sort(),
    counters: [...counters].sort(),
  };
}

/** `pfn 0x40a02..0x40bff` for each range. */
export function pfnRangesText(ranges: readonly [number, number][]): string[] {
  return ranges.map(([f, l]) => (f === l ? `pfn ${hex(f)}` : `pfn ${hex(f)}..${hex(l)}`));
}
