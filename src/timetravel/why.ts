// SPDX-License-Identifier: GPL-2.0-only
/**
 * why: every event that touched one physical page or one index of an iopt_pages, in seq order. What `why
 * RUN --pfn P` and `why RUN --index PAGES:I` print: who allocated and mapped the page, who pinned it, who
 * stored it in an xarray or an IO page table, who unpinned, erased or unmapped it, and the findings that
 * name it.
 *
 * Only the event types that can touch a page are read (the source filters them before decoding), and no
 * state is rebuilt: where an event names the page only indirectly (an unmap names IOVAs, an erase names
 * indexes), the holders of the page seen so far in the stream are tracked to recognise it.
 *
 * For an index, the PFNs it held (stored in its xarray, or mapped at its IOVA in a domain) are followed
 * too, in a second pass over the pins: the answer shows who pinned and unpinned the page behind the index.
 */
import type { Event, EventOf, EventType } from '../events/events.js';
import { INDEX_EVENTS, PFN_EVENTS, PIN_EVENTS } from '../events/groups.js';
import { mappedEventsOf, pinEventsOf, xaEventsOf } from '../events/runs.js';
import { BadInputError } from '../lib/errors.js';
import { hex } from '../state/diff.js';
import { DEFAULT_CONFIG, type Area } from '../state/state.js';
import type { EventSource } from './source.js';

export type WhyTarget = { pfn: number } | { pages: number; index: number };

export interface WhyEntry {
  seq: number;
  op: number;
  type: EventType;
  /** One line saying what the event did to the page. */
  text: string;
  event: Event;
}

const covers = (first: number, count: number, x: number): boolean => x >= first && x < first + count;
const pfnSpan = (pfn: number, count: number): string =>
  count === 1 ? `pfn ${hex(pfn)}` : `pfn ${hex(pfn)}..${hex(pfn + count - 1)}`;
const indexSpan = (index: number, count: number): string =>
  count === 1 ? `index ${index}` : `index ${index}..${index + count - 1}`;

/** Byte ranges [start, end) of IOVA, per domain, that hold the page. */
class IovaHolders {
  private readonly ranges: { domain: string; start: bigint; end: bigint }[] = [];

  add(domain: string, start: bigint, end: bigint): void {
    this.ranges.push({ domain, start, end });
  }

  /** Remove [start, end) of `domain`; true if it overlapped a holder. */
  remove(domain: string, start: bigint, end: bigint): boolean {
    let hit = false;
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      const r = this.ranges[i] as { domain: string; start: bigint; end: bigint };
      if (r.domain !== domain || r.end <= start || r.start >= end) continue;
      hit = true;
      this.ranges.splice(i, 1);
      if (r.start < start) this.ranges.push({ domain, start: r.start, end: start });
      if (r.end > end) this.ranges.push({ domain, start: end, end: r.end });
    }
    return hit;
  }

  dropDomain(domain: string): void {
    for (let i = this.ranges.length - 1; i >= 0; i--) if (this.ranges[i]?.domain === domain) this.ranges.splice(i, 1);
  }
}

function findingText(e: EventOf<'Warned'> | EventOf<'ViolationDetected'>): string {
  return e.type === 'Warned' ? `WARN in ${e.fn}: ${e.condition}` : `violation ${e.kind} in ${e.fn}: ${e.detail}`;
}

async function whyPfn(source: EventSource, pfn: number, first: number, last: number): Promise<WhyEntry[]> {
  const out: WhyEntry[] = [];
  let pageSize = BigInt(DEFAULT_CONFIG.pageSize);
  const inPt = new Set<string>(); // "mm:vpn"
  const inXa = new Set<string>(); // "pages:index"
  const inDomains = new IovaHolders();
  const add = (seq: number, op: number, event: Event, text: string): void =>
    void out.push({ seq, op, type: event.type, text, event });

  for await (const { seq, op, event: e } of source.events(first, last, PFN_EVENTS)) {
    switch (e.type) {
      case 'RunConfigured':
        pageSize = BigInt(e.pageSize);
        break;
      case 'FramesAllocated':
        if (covers(e.pfn, e.count, pfn)) add(seq, op, e, `allocated as part of ${pfnSpan(e.pfn, e.count)} (${e.huge})`);
        break;
      case 'FrameRunsAllocated':
        for (const [runPfn, count] of e.runs) {
          if (covers(runPfn, count, pfn)) add(seq, op, e, `allocated as part of ${pfnSpan(runPfn, count)} (${e.huge})`);
        }
        break;
      case 'VmaMapped': {
        let vpn = e.vpn;
        for (const [runPfn, count] of e.runs) {
          if (covers(runPfn, count, pfn)) {
            const at = vpn + (pfn - runPfn);
            inPt.add(`${e.mm}:${at}`);
            add(seq, op, e, `mapped at vpn ${hex(at)} of mm ${e.mm} (${e.writable ? 'rw' : 'ro'} ${e.huge})`);
          }
          vpn += count;
        }
        break;
      }
      case 'VmaUnmapped':
        for (const holder of [...inPt]) {
          const [mm, vpn] = holder.split(':').map(Number) as [number, number];
          if (mm === e.mm && covers(e.vpn, e.npages, vpn)) {
            inPt.delete(holder);
            add(seq, op, e, `unmapped from vpn ${hex(vpn)} of mm ${mm}`);
          }
        }
        break;
      case 'CowBroken': {
        // One page, or a huge page's run (npages, version 4): the page of `pfn` in it.
        const n = e.npages ?? 1;
        if (covers(e.oldPfn, n, pfn)) {
          const vpn = e.vpn + (pfn - e.oldPfn);
          inPt.delete(`${e.mm}:${vpn}`);
          const now = e.newPfn + (pfn - e.oldPfn);
          add(seq, op, e, `copied on write away from vpn ${hex(vpn)} of mm ${e.mm} (now pfn ${hex(now)}) in ${e.fn}`);
        } else if (covers(e.newPfn, n, pfn)) {
          const vpn = e.vpn + (pfn - e.newPfn);
          const was = e.oldPfn + (pfn - e.newPfn);
          inPt.add(`${e.mm}:${vpn}`);
          add(seq, op, e, `copy on write of pfn ${hex(was)} at vpn ${hex(vpn)} of mm ${e.mm} in ${e.fn}`);
        }
        break;
      }
      case 'MemoryWritten':
        if (e.pfn === pfn) add(seq, op, e, `written: ${e.data.length / 2} bytes at offset ${hex(e.offset)}`);
        break;
      case 'PagesPinned':
      case 'PagesPinnedRuns':
      case 'PagesUnpinned':
      case 'PagesUnpinnedRuns':
        for (const r of pinEventsOf(e)) {
          if (!covers(r.pfn, r.count, pfn)) continue;
          const span = pfnSpan(r.pfn, r.count);
          if (r.type === 'PagesPinned')
            add(seq, op, e, `pinned in ${span} by ${r.fn}${r.mm === null ? '' : ` (mm ${r.mm})`}`);
          else add(seq, op, e, `unpinned in ${span}${r.dirty ? ' dirty' : ''} by ${r.fn}`);
        }
        break;
      case 'XaStored':
      case 'XaStoredRuns':
      case 'XaErased':
      case 'XaErasedRuns':
        for (const x of xaEventsOf(e)) {
          if (x.type === 'XaStored' && covers(x.pfn, x.count, pfn)) {
            const at = x.index + (pfn - x.pfn);
            inXa.add(`${x.pages}:${at}`);
            add(
              seq,
              op,
              e,
              `stored at index ${at} of pages ${x.pages} (${indexSpan(x.index, x.count)} <- ${pfnSpan(x.pfn, x.count)})`,
            );
            continue;
          }
          for (const h of [...inXa]) {
            const [pages, index] = h.split(':').map(Number) as [number, number];
            if (pages !== x.pages || !covers(x.index, x.count, index)) continue;
            inXa.delete(h);
            const what =
              x.type === 'XaStored'
                ? `overwritten at index ${index} of pages ${pages} by ${pfnSpan(x.pfn + (index - x.index), 1)}`
                : `erased from index ${index} of pages ${pages} (${indexSpan(x.index, x.count)})`;
            add(seq, op, e, what);
          }
        }
        break;
      case 'PagesReleased':
        for (const h of [...inXa]) if (h.startsWith(`${e.pages}:`)) inXa.delete(h);
        break;
      case 'IommuMapped':
      case 'IommuMappedRuns': {
        const pageStart = BigInt(pfn) * pageSize;
        for (const m of mappedEventsOf(e)) {
          const start = m.paddr > pageStart ? m.paddr : pageStart;
          const end = m.paddr + m.size < pageStart + pageSize ? m.paddr + m.size : pageStart + pageSize;
          if (start >= end) continue;
          const iova = m.iova + (start - m.paddr);
          inDomains.add(m.domain, iova, iova + (end - start));
          add(
            seq,
            op,
            e,
            `mapped in domain ${m.domain} at iova ${hex(iova)} (iova ${hex(m.iova)} + ${hex(m.size)} -> paddr ${hex(m.paddr)}) by ${m.fn}`,
          );
        }
        break;
      }
      case 'IommuUnmapped': {
        const hits = e.removed.filter(([iova, size]) => inDomains.remove(e.domain, iova, iova + size));
        if (hits.length > 0) {
          const [iova, size] = hits[0] as [bigint, bigint];
          add(seq, op, e, `unmapped from domain ${e.domain} (iova ${hex(iova)} + ${hex(size)}) by ${e.fn}`);
        }
        break;
      }
      case 'DomainFreed':
        inDomains.dropDomain(e.domain);
        break;
      case 'Warned':
      case 'ViolationDetected': {
        const o = e.objects;
        const heldAt =
          typeof o['pages'] === 'number' && typeof o['index'] === 'number' && inXa.has(`${o['pages']}:${o['index']}`);
        if (o['pfn'] === pfn || heldAt) add(seq, op, e, findingText(e));
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** An area as its events describe it, with its pages once they are attached (null before). */
type AreaInfo = Pick<Area, 'ioas' | 'iova' | 'lastIova' | 'pageOffset' | 'firstIndex' | 'lastIndex'> & {
  pages: number | null;
};

async function whyIndex(
  source: EventSource,
  pagesId: number,
  index: number,
  first: number,
  last: number,
): Promise<WhyEntry[]> {
  const out: WhyEntry[] = [];
  let pageSize = BigInt(DEFAULT_CONFIG.pageSize);
  const areas = new Map<number, AreaInfo>();
  // The areas that hold the index now: the only ones a map or unmap is checked against.
  const holding = new Map<number, AreaInfo>();
  const ioasDomains = new Map<string, readonly string[]>();
  const accessNodes = new Set<number>();
  const pfns = new Set<number>();
  const add = (seq: number, op: number, event: Event, text: string): void =>
    void out.push({ seq, op, type: event.type, text, event });
  const coversIndex = (a: AreaInfo): boolean => a.pages === pagesId && index >= a.firstIndex && index <= a.lastIndex;
  // The IOVA bytes of this index in an area: its page, clipped to the area.
  const iovaOf = (a: AreaInfo): [bigint, bigint] => {
    const pageStart = a.iova - BigInt(a.pageOffset) + BigInt(index - a.firstIndex) * pageSize;
    const start = pageStart > a.iova ? pageStart : a.iova;
    const end = pageStart + pageSize - 1n < a.lastIova ? pageStart + pageSize : a.lastIova + 1n;
    return [start, end];
  };
  // A domain holds the area's IOVAs if its IOAS lists it, or if no IOAS lists it (being attached or detached).
  const domainServes = (domain: string, a: AreaInfo): boolean => {
    let listed = false;
    for (const [ioas, domains] of ioasDomains) {
      if (!domains.includes(domain)) continue;
      if (ioas === a.ioas) return true;
      listed = true;
    }
    return !listed;
  };

  for await (const { seq, op, event: e } of source.events(first, last, INDEX_EVENTS)) {
    switch (e.type) {
      case 'RunConfigured':
        pageSize = BigInt(e.pageSize);
        break;
      case 'PagesAllocated':
        if (e.pages === pagesId)
          add(seq, op, e, `pages ${pagesId} allocated: ${e.npages} pages at uptr ${hex(e.uptr)} by ${e.fn}`);
        break;
      case 'PagesReleased':
        if (e.pages === pagesId) add(seq, op, e, `pages ${pagesId} released by ${e.fn}`);
        break;
      case 'XaStored':
      case 'XaStoredRuns':
      case 'XaErased':
      case 'XaErasedRuns':
        for (const x of xaEventsOf(e)) {
          if (x.pages !== pagesId || !covers(x.index, x.count, index)) continue;
          if (x.type === 'XaErased') {
            add(seq, op, e, `xa erased (${indexSpan(x.index, x.count)})`);
            continue;
          }
          const pfn = x.pfn + (index - x.index);
          pfns.add(pfn);
          add(seq, op, e, `xa stored pfn ${hex(pfn)} (${indexSpan(x.index, x.count)} <- ${pfnSpan(x.pfn, x.count)})`);
        }
        break;
      case 'ItreeInserted':
      case 'ItreeRemoved': {
        const t = e.tree;
        if (
          'pages' in t &&
          t.pages === pagesId &&
          typeof e.start === 'number' &&
          typeof e.last === 'number' &&
          index >= e.start &&
          index <= e.last
        ) {
          const tree = t.kind === 'access' ? 'access_itree' : 'domains_itree';
          add(
            seq,
            op,
            e,
            `${e.type === 'ItreeInserted' ? 'inserted into' : 'removed from'} ${tree}: node ${e.node} index ${e.start}..${e.last}`,
          );
        }
        break;
      }
      case 'PagesAccessAllocated':
        if (e.pages === pagesId && index >= e.index && index <= e.last) {
          accessNodes.add(e.node);
          add(seq, op, e, `access node ${e.node} allocated over index ${e.index}..${e.last}`);
        }
        break;
      case 'PagesAccessFreed':
        if (accessNodes.delete(e.node)) add(seq, op, e, `access node ${e.node} freed`);
        break;
      case 'AreaAllocated':
        areas.set(e.area, {
          ioas: e.ioas,
          iova: e.iova,
          lastIova: e.lastIova,
          pageOffset: e.pageOffset,
          firstIndex: e.firstIndex,
          lastIndex: e.lastIndex,
          pages: null,
        });
        break;
      case 'AreaPagesSet': {
        const a = areas.get(e.area);
        if (a === undefined) break;
        const was = coversIndex(a);
        a.pages = e.pages;
        if (coversIndex(a)) {
          holding.set(e.area, a);
          const [start, end] = iovaOf(a);
          add(
            seq,
            op,
            e,
            `area ${e.area} of ${a.ioas} uses pages ${pagesId}: index ${index} at iova ${hex(start)}..${hex(end - 1n)}`,
          );
        } else if (was) {
          holding.delete(e.area);
          add(seq, op, e, `area ${e.area} of ${a.ioas} lets go of pages ${pagesId}`);
        }
        break;
      }
      case 'AreaFreed': {
        const a = areas.get(e.area);
        if (a !== undefined && coversIndex(a)) add(seq, op, e, `area ${e.area} of ${a.ioas} freed`);
        areas.delete(e.area);
        holding.delete(e.area);
        break;
      }
      case 'IoasDomainsSet':
        ioasDomains.set(e.ioas, [...e.domains]);
        break;
      case 'IommuMapped':
      case 'IommuMappedRuns':
        for (const m of mappedEventsOf(e)) {
          for (const [id, a] of holding) {
            if (!domainServes(m.domain, a)) continue;
            const [start, end] = iovaOf(a);
            if (m.iova + m.size <= start || m.iova >= end) continue;
            const pfn = Number((m.paddr + (start - m.iova)) / pageSize);
            pfns.add(pfn);
            add(
              seq,
              op,
              e,
              `mapped in domain ${m.domain} through area ${id}: iova ${hex(start)} -> pfn ${hex(pfn)} by ${m.fn}`,
            );
          }
        }
        break;
      case 'IommuUnmapped':
        for (const [id, a] of holding) {
          if (!domainServes(e.domain, a)) continue;
          const [start, end] = iovaOf(a);
          if (e.removed.some(([iova, size]) => iova < end && iova + size > start)) {
            add(seq, op, e, `unmapped from domain ${e.domain} through area ${id}: iova ${hex(start)} by ${e.fn}`);
          }
        }
        break;
      case 'Warned':
      case 'ViolationDetected': {
        const o = e.objects;
        const inRange = (s: unknown, l: unknown): boolean =>
          typeof s === 'number' && typeof l === 'number' && index >= s && index <= l;
        if (o['pages'] === pagesId && (o['index'] === index || inRange(o['start'], o['last'])))
          add(seq, op, e, findingText(e));
        break;
      }
      default:
        break;
    }
  }
  if (pfns.size === 0) return out;
  // Second pass: the pins of the pages the index held.
  for await (const { seq, op, event: e } of source.events(first, last, PIN_EVENTS)) {
    for (const r of pinEventsOf(e)) {
      const pfn = [...pfns].find((p) => covers(r.pfn, r.count, p));
      if (pfn === undefined) continue;
      const verb = r.type === 'PagesPinned' ? 'pinned' : `unpinned${r.dirty ? ' dirty' : ''}`;
      out.push({
        seq,
        op,
        type: e.type,
        text: `pfn ${hex(pfn)} ${verb} in ${pfnSpan(r.pfn, r.count)} by ${r.fn}`,
        event: e,
      });
    }
  }
  return out.sort((x, y) => x.seq - y.seq);
}

export interface WhyOptions {
  /** Only events first..last (the whole run unless given). */
  first?: number;
  last?: number;
}

/**
 * Every event that touched a PFN, or an index of an iopt_pages, in seq order.
 *
 * @example (await why(source, { pfn: 0x40010 })).map((w) => `${w.seq} ${w.text}`)
 */
export async function why(source: EventSource, target: WhyTarget, options: WhyOptions = {}): Promise<WhyEntry[]> {
  const first = options.first ?? 1;
  const last = options.last ?? source.eventCount();
  if ('pfn' in target) {
    if (!Number.isSafeInteger(target.pfn) || target.pfn < 0)
      throw new BadInputError(`pfn must be a non-negative integer, got ${target.pfn}`, { field: 'pfn' });
    return whyPfn(source, target.pfn, first, last);
  }
  if (
    !Number.isSafeInteger(target.pages) ||
    target.pages < 0 ||
    !Number.isSafeInteger(target.index) ||
    target.index < 0
  ) {
    throw new BadInputError(`--index takes PAGES:INDEX, two non-negative integers`, { field: 'index' });
  }
  return whyIndex(source, target.pages, target.index, first, last);
}
