// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 4: an area is in domains_itree ⇔ it has a storage domain ⇔ its IOAS has domains, and every
 * domain of the IOAS maps each such area's IOVA range to its pages' PFNs and nothing else.
 */
import type { Area, State } from '../../state/state.js';
import { mappingsForEachFrom } from '../../structures/mapping-table.js';
import { itreeEntries, itreeFind } from '../../structures/interval-tree.js';
import type { InvariantFinding } from './finding.js';
import { LIST_MAX, SMALL, U64_MASK, hex } from './finding.js';
import type { Step } from './runs.js';
import { zipSteps } from './runs.js';
import type { Held } from './held.js';
import { areaStartByte, forEachContiguous } from './held.js';

/** What a domain must map: phys - iova over a range, or null for "mapped, PFN unknown". */
export type Want = bigint | null;

/** The IOVA layout a filled area must have in every domain, from the PFNs its pages hold. */
export function expectedOfArea(
  state: State,
  area: Area,
  h: Pick<Held, 'pfns'> | undefined,
  out: Step<bigint, Want>[],
): void {
  const page = BigInt(state.config.pageSize);
  const aStart = areaStartByte(area, page);
  const aEnd = aStart + (area.lastIova - area.iova + 1n);
  let cursor = area.iova;
  const push = (start: bigint, end: bigint, value: Want): void => {
    if (start > cursor) out.push({ start: cursor, end: start, value: null });
    out.push({ start, end, value });
    cursor = end;
  };
  // One piece per contiguous run (a stepped row of pages is no linear IOVA -> paddr piece), cut as the
  // segments were before they had a step: the text of a finding names the first piece that differs.
  forEachContiguous(h?.pfns ?? [], (index, count, pfn, known) => {
    if (index + count <= area.firstIndex || index > area.lastIndex) return;
    const b0 = BigInt(index) * page > aStart ? BigInt(index) * page : aStart;
    const b1 = BigInt(index + count) * page < aEnd ? BigInt(index + count) * page : aEnd;
    if (b0 >= b1) return;
    const iova = area.iova + (b0 - aStart);
    const value = known && pfn !== null ? BigInt(pfn) * page - BigInt(index) * page - area.iova + aStart : null;
    push(iova, iova + (b1 - b0), value);
  });
  if (cursor <= area.lastIova) out.push({ start: cursor, end: area.lastIova + 1n, value: null });
}

export interface MapDiff {
  bytes: bigint;
  first: bigint;
  text: string;
}

/** The expected layout as numbers, when every address in it is small enough to be exact. */
export function smallSteps(expected: readonly Step<bigint, Want>[]): Step<number, number | null>[] | null {
  const out: Step<number, number | null>[] = [];
  for (const e of expected) {
    if (e.end >= SMALL || (e.value !== null && (e.value >= SMALL || e.value <= -SMALL))) return null;
    out.push({ start: Number(e.start), end: Number(e.end), value: e.value === null ? null : Number(e.value) });
  }
  return out;
}

/** True when the domain maps exactly the expected layout, compared as numbers; null when they are too big. */
export function mappingsMatchSmall(
  table: State['domains'][string]['mappings'],
  expected: readonly Step<number, number | null>[],
): boolean | null {
  const actual: Step<number, number>[] = [];
  let fits = true;
  mappingsForEachFrom(table, undefined, (m) => {
    if (m.iova >= SMALL || m.size >= SMALL || m.paddr >= SMALL) {
      fits = false;
      return false;
    }
    const iova = Number(m.iova);
    actual.push({ start: iova, end: iova + Number(m.size), value: Number(m.paddr) - iova });
    return true;
  });
  if (!fits) return null;
  let clean = true;
  zipSteps(expected, actual, (_start, _end, a, b) => {
    if (a === undefined || b === undefined ? a !== b : a !== null && a !== b) clean = false;
  });
  return clean;
}

export function checkDomainMappings(
  state: State,
  ioas: string,
  domain: string,
  expected: readonly Step<bigint, Want>[],
  expectedSmall: readonly Step<number, number | null>[] | null,
  out: InvariantFinding[],
): void {
  const d = state.domains[domain];
  if (d === undefined) {
    out.push({
      key: `domain-missing:${ioas}:${domain}`,
      kind: 'invariant',
      detail: `IOAS ${ioas} lists domain ${domain}, which no longer exists`,
      objects: { ioas, domain },
    });
    return;
  }
  // The fast comparison; the exact one below also finds what to report.
  if (expectedSmall !== null && mappingsMatchSmall(d.mappings, expectedSmall) === true) return;
  const actual: Step<bigint, bigint>[] = [];
  mappingsForEachFrom(d.mappings, undefined, (m) => {
    actual.push({ start: m.iova, end: m.iova + m.size, value: m.paddr - m.iova });
  });
  const diffs = new Map<string, MapDiff>();
  const note = (what: string, start: bigint, end: bigint, text: () => string): void => {
    const cur = diffs.get(what);
    if (cur === undefined) diffs.set(what, { bytes: end - start, first: start, text: text() });
    else cur.bytes += end - start;
  };
  zipSteps(expected, actual, (start, end, a, b) => {
    if (a === undefined && b !== undefined) {
      note(
        'extra',
        start,
        end,
        () => `maps ${hex(start)}..${hex(end - 1n)} (to phys ${hex(start + b)}) where no filled area is`,
      );
    } else if (a !== undefined && b === undefined) {
      note('missing', start, end, () => `does not map ${hex(start)}..${hex(end - 1n)} of a filled area`);
    } else if (a !== undefined && a !== null && b !== undefined && a !== b) {
      note(
        'wrong',
        start,
        end,
        () => `maps ${hex(start)} to phys ${hex(start + b)} where the pages hold ${hex(start + a)}`,
      );
    }
  });
  if (diffs.size === 0) return;
  const parts = [...diffs.entries()].map(([, v]) => `${v.text} (${v.bytes} bytes in all)`);
  const firstAt = [...diffs.values()].reduce((m, v) => (v.first < m ? v.first : m), U64_MASK);
  out.push({
    key: `mappings:${ioas}:${domain}`,
    kind: 'invariant',
    detail: `domain ${domain} of IOAS ${ioas} does not map exactly the pages' PFNs: ${parts.join('; ')}`,
    objects: { ioas, domain, iova: firstAt },
  });
}

/**
 * Tells whether a domain of an IOAS is known to map exactly what it must (the incremental checker answers
 * from the ranges the op touched); the full comparison runs only where it does not know.
 */
export type MappingsKnownClean = (ioas: string, domain: string, filled: readonly Area[]) => boolean;

export function checkAreasAndDomains(
  state: State,
  held: ReadonlyMap<number, Held>,
  out: InvariantFinding[],
  knownClean?: MappingsKnownClean,
): void {
  const attached = new Set<string>();
  for (const name of Object.keys(state.ioases).sort()) {
    const io = state.ioases[name];
    if (io === undefined) continue;
    const hasDomains = io.domains.length > 0;
    const filled: Area[] = [];
    for (const node of itreeEntries(io.areas)) {
      const a = state.areas[node.id];
      if (a === undefined) continue;
      if (a.pages === null) {
        out.push({
          key: `area-no-pages:${a.id}`,
          kind: 'invariant',
          detail: `area ${a.id} of IOAS ${name} has no pages between operations`,
          objects: { area: a.id, ioas: name },
        });
        continue;
      }
      const p = state.pages[a.pages];
      if (p === undefined) {
        out.push({
          key: `area-freed-pages:${a.id}`,
          kind: 'invariant',
          detail: `area ${a.id} of IOAS ${name} points to iopt_pages ${a.pages}, which was released`,
          objects: { area: a.id, ioas: name, pages: a.pages },
        });
        continue;
      }
      const inTree = itreeFind(p.domainsTree, a.id, a.firstIndex, a.lastIndex);
      const storage = a.storageDomain;
      const storageOk = storage === null || io.domains.includes(storage);
      if (inTree !== (storage !== null) || (storage !== null) !== hasDomains || !storageOk) {
        out.push({
          key: `area-fill:${a.id}`,
          kind: 'invariant',
          detail:
            `area ${a.id} of IOAS ${name} (${io.domains.length} domain${io.domains.length === 1 ? '' : 's'}): ` +
            `${inTree ? 'in' : 'not in'} domains_itree of iopt_pages ${p.id}, storage domain ${storage ?? 'none'}` +
            (storageOk ? '' : ' (not attached to the IOAS)'),
          objects: { area: a.id, ioas: name, pages: p.id, storageDomain: storage, inDomainsItree: inTree },
        });
      }
      // What the domains must map: the areas that say they are filled (either marker).
      if (hasDomains && (inTree || storage !== null)) filled.push(a);
    }
    let expected: Step<bigint, Want>[] | null = null;
    let expectedSmall: Step<number, number | null>[] | null = null;
    for (const domain of io.domains) {
      attached.add(domain);
      if (knownClean?.(name, domain, filled) === true) continue;
      if (expected === null) {
        expected = [];
        for (const a of filled) expectedOfArea(state, a, held.get(a.pages as number), expected);
        expectedSmall = smallSteps(expected);
      }
      checkDomainMappings(state, name, domain, expected, expectedSmall, out);
    }
  }
  for (const name of Object.keys(state.domains).sort()) {
    const d = state.domains[name];
    if (d === undefined || attached.has(name)) continue;
    let first: bigint | null = null;
    mappingsForEachFrom(d.mappings, undefined, (m) => {
      first = m.iova;
      return false;
    });
    if (first === null) continue;
    out.push({
      key: `mappings:-:${name}`,
      kind: 'invariant',
      detail: `domain ${name} is attached to no IOAS but still maps ${d.mappedBytes} bytes (first at ${hex(first)})`,
      objects: { domain: name, iova: first, bytes: d.mappedBytes },
    });
  }
  // domains_itree nodes must be the pages_node of a live area of this pages.
  for (const h of held.values()) {
    const stale: string[] = [];
    for (const node of itreeEntries(h.pages.domainsTree)) {
      const a = state.areas[node.id];
      if (a === undefined) stale.push(`node ${node.id} [${node.start}, ${node.last}] of a freed area`);
      else if (a.pages !== h.pages.id || a.firstIndex !== node.start || a.lastIndex !== node.last) {
        stale.push(
          `node ${node.id} [${node.start}, ${node.last}] does not match area ${a.id} (pages ${a.pages}, [${a.firstIndex}, ${a.lastIndex}])`,
        );
      }
    }
    if (stale.length > 0) {
      out.push({
        key: `domains-itree:${h.pages.id}`,
        kind: 'invariant',
        detail: `domains_itree of iopt_pages ${h.pages.id} holds ${stale.slice(0, LIST_MAX).join('; ')}${stale.length > LIST_MAX ? ` and ${stale.length - LIST_MAX} more` : ''}`,
        objects: { pages: h.pages.id, nodes: stale.length },
      });
    }
  }
}
