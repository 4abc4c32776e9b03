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
import { LIST_MAX, hex } from './finding.js';

export function checkStructures(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
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
  for (const p of pages) {
    tree(`itree:${p.id}:access`, `access_itree of iopt_pages ${p.id}`, itreeCheck(p.accessTree), { pages: p.id });
    tree(`itree:${p.id}:domains`, `domains_itree of iopt_pages ${p.id}`, itreeCheck(p.domainsTree), { pages: p.id });
    tree(`xarray:${p.id}:self`, `pinned_pfns of iopt_pages ${p.id}`, xaCheck(p.xa), { pages: p.id });
  }
}
