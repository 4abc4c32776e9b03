// SPDX-License-Identifier: GPL-2.0-only
/**
 * The self-checks of every interval tree and xarray ('itree_corruption'), and areas that are allocated
 * but in no IOAS's area_itree.
 */
import type { FindingObjects } from '../../machine/sim.js';
import type { Pages, State } from '../../state/state.js';
import { itreeCheck, itreeEntries, itreeFind } from '../../structures/interval-tree.js';
import { xaCheck } from '../../structures/xarray.js';
import type { InvariantFinding } from './finding.js';
import type { LayoutMemo, PagesMemo } from './memo.js';
import { LIST_MAX, hex } from './finding.js';

/**
 * `memos[k]`, when given, keeps what the self-checks of `pages[k]` found, and `layout` what the IOAS-level
 * ones found (index.ts, PagesMemo, LayoutMemo).
 */
export function checkStructures(
  state: State,
  pages: readonly Pages[],
  out: InvariantFinding[],
  memos?: readonly PagesMemo[],
  layout?: LayoutMemo,
): void {
  let found = layout?.structures;
  if (found === undefined) {
    found = [];
    checkLayout(state, found);
    if (layout !== undefined) layout.structures = found;
  }
  for (const f of found) out.push(f);
  for (let k = 0; k < pages.length; k++) {
    const p = pages[k] as Pages;
    const memo = memos?.[k] ?? {};
    // The keys and texts are built only for a problem found (a sound pages has none, op after op).
    memo.accessTree ??= own(p, 'access', itreeCheck(p.accessTree));
    memo.domainsTree ??= own(p, 'domains', itreeCheck(p.domainsTree));
    memo.xa ??= own(p, 'xa', xaCheck(p.xa));
    for (const f of memo.accessTree) out.push(f);
    for (const f of memo.domainsTree) out.push(f);
    for (const f of memo.xa) out.push(f);
  }
}

/** A pages' own structure's self-check result as findings: none, or its one problem. */
function own(p: Pages, which: 'access' | 'domains' | 'xa', problem: string | null): InvariantFinding[] {
  if (problem === null) return [];
  const [key, what] =
    which === 'xa'
      ? [`xarray:${p.id}:self`, `pinned_pfns of iopt_pages ${p.id}`]
      : [`itree:${p.id}:${which}`, `${which}_itree of iopt_pages ${p.id}`];
  return [{ key, kind: 'itree_corruption', detail: `${what}: ${problem}`, objects: { pages: p.id } }];
}

/** The IOASes' trees and their areas, and allocated areas in no IOAS's area_itree. */
function checkLayout(state: State, out: InvariantFinding[]): void {
  const tree = (key: string, what: string, problem: string | null, objects: FindingObjects): void => {
    if (problem !== null) out.push({ key, kind: 'itree_corruption', detail: `${what}: ${problem}`, objects });
  };
  for (const name of Object.keys(state.ioases).sort()) {
    const io = state.ioases[name];
    if (io === undefined) continue;
    tree(`itree:${name}:area`, `area_itree of IOAS ${name}`, itreeCheck(io.areas), { ioas: name });
    tree(`itree:${name}:allowed`, `allowed_itree of IOAS ${name}`, itreeCheck(io.allowed), { ioas: name });
    tree(`itree:${name}:reserved`, `reserved_itree of IOAS ${name}`, itreeCheck(io.reserved), { ioas: name });
    const problems: string[] = [];
    let prevLast: bigint | null = null;
    for (const node of itreeEntries(io.areas)) {
      const a = state.areas[node.id];
      if (a === undefined) problems.push(`node ${node.id} [${hex(node.start)}, ${hex(node.last)}] of a freed area`);
      else if (a.ioas !== name || a.iova !== node.start || a.lastIova !== node.last)
        problems.push(`node ${node.id} does not match its area`);
      if (prevLast !== null && node.start <= prevLast)
        problems.push(`node ${node.id} at ${hex(node.start)} overlaps the area before it`);
      prevLast = prevLast === null || node.last > prevLast ? node.last : prevLast;
    }
    if (problems.length > 0) {
      out.push({
        key: `areas:${name}`,
        kind: 'invariant',
        detail: `area_itree of IOAS ${name}: ${problems.slice(0, LIST_MAX).join('; ')}${problems.length > LIST_MAX ? ` and ${problems.length - LIST_MAX} more` : ''}`,
        objects: { ioas: name },
      });
    }
  }
  for (const key of Object.keys(state.areas).sort((a, b) => Number(a) - Number(b))) {
    const a = state.areas[Number(key)];
    const io = a === undefined ? undefined : state.ioases[a.ioas];
    if (a === undefined || (io !== undefined && itreeFind(io.areas, a.id, a.iova, a.lastIova))) continue;
    out.push({
      key: `area-orphan:${a.id}`,
      kind: 'invariant',
      detail: `area ${a.id} [${hex(a.iova)}, ${hex(a.lastIova)}] is allocated but not in the area_itree of IOAS ${a.ioas}`,
      objects: { area: a.id, ioas: a.ioas },
    });
  }
}
