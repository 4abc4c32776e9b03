// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 5: an area's num_accesses equals the access users taken through it, and per pages the users
 * of its access nodes add up to its areas' num_accesses. The users are the selftest driver's items and the
 * pinned range of each HW queue; the queues' pins are also the area's num_locks ([up:area-num-locks]).
 */
import type { Access, AccessItem, Area, Pages, State } from '../../state/state.js';
import { ioptAreaContigDone, ioptAreaContigInit, ioptAreaContigNext } from '../io-pagetable.js';
import { itreeEntries, itreeFind } from '../../structures/interval-tree.js';
import type { InvariantFinding } from './finding.js';
import { LIST_MAX, hex } from './finding.js';

/** The ranges an access holds pinned: the selftest driver's items, or the page-aligned range of a HW queue. */
export function heldRanges(state: State, acc: Access): AccessItem[] {
  const items = Object.values(acc.items).sort((x, y) => x.id - y.id);
  const q = acc.hwQueue;
  if (q === undefined) return items;
  const page = BigInt(state.config.pageSize);
  const aligned = q.baseAddr - (q.baseAddr % page);
  const end = q.baseAddr + q.length;
  const length = ((end - aligned + page - 1n) / page) * page;
  return [...items, { id: -1, iova: aligned, length }];
}

/** The areas one held range of an access goes through (iopt_area_contig_*), and whether they cover it all. */
export function walkItem(state: State, ioas: string, item: AccessItem): { areas: number[]; done: boolean } {
  const areas: number[] = [];
  const iter = ioptAreaContigInit(state, ioas, item.iova, item.iova + item.length - 1n);
  for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter)) areas.push(area.id);
  return { areas, done: ioptAreaContigDone(state, iter) };
}

export function itemUnmapped(name: string, ioas: string, item: AccessItem): InvariantFinding {
  return {
    key: `item-unmapped:${name}:${item.id}`,
    kind: 'invariant',
    detail: `access ${name} still holds item ${item.id} (${hex(item.iova)} +${item.length}) over IOVA no area of IOAS ${ioas} fully maps`,
    objects: { access: name, item: item.id, iova: item.iova, length: item.length },
  };
}

/**
 * An area's num_locks and num_accesses against the internal pins and all pins that went through it; true
 * when num_accesses is off (its pages' own sum is then not reported again).
 */
export function checkAreaCounts(a: Area, wantLocks: number, want: number, out: InvariantFinding[]): boolean {
  if ((a.numLocks ?? 0) !== wantLocks) {
    out.push({
      key: `num_locks:${a.id}`,
      kind: 'invariant',
      detail: `area ${a.id} of IOAS ${a.ioas}: num_locks is ${a.numLocks ?? 0} but ${wantLocks} internal access pin${wantLocks === 1 ? '' : 's'} went through it`,
      objects: { area: a.id, ioas: a.ioas, numLocks: a.numLocks ?? 0, pins: wantLocks },
    });
  }
  if (a.numAccesses === want) return false;
  out.push({
    key: `num_accesses:${a.id}`,
    kind: 'invariant',
    detail: `area ${a.id} of IOAS ${a.ioas}: num_accesses is ${a.numAccesses} but ${want} access pin${want === 1 ? '' : 's'} went through it`,
    objects: { area: a.id, ioas: a.ioas, numAccesses: a.numAccesses, pins: want },
  });
  return true;
}

export function checkAccessCounts(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const taken = new Map<number, number>();
  const locked = new Map<number, number>();
  for (const name of Object.keys(state.accesses).sort()) {
    const acc = state.accesses[name];
    if (acc === undefined || acc.ioas === null || state.ioases[acc.ioas] === undefined) continue;
    for (const item of heldRanges(state, acc)) {
      const walk = walkItem(state, acc.ioas, item);
      for (const id of walk.areas) {
        taken.set(id, (taken.get(id) ?? 0) + 1);
        if (acc.internal) locked.set(id, (locked.get(id) ?? 0) + 1);
      }
      if (!walk.done) out.push(itemUnmapped(name, acc.ioas, item));
    }
  }
  const flaggedPages = new Set<number>();
  for (const key of Object.keys(state.areas).sort((a, b) => Number(a) - Number(b))) {
    const a = state.areas[Number(key)];
    if (a === undefined) continue;
    if (checkAreaCounts(a, locked.get(a.id) ?? 0, taken.get(a.id) ?? 0, out) && a.pages !== null)
      flaggedPages.add(a.pages);
  }

  const users = new Map<number, number>();
  const nodesOf = new Map<number, number[]>();
  for (const key of Object.keys(state.pagesAccesses).sort((a, b) => Number(a) - Number(b))) {
    const n = state.pagesAccesses[Number(key)];
    if (n === undefined) continue;
    users.set(n.pages, (users.get(n.pages) ?? 0) + n.users);
    const ids = nodesOf.get(n.pages);
    if (ids === undefined) nodesOf.set(n.pages, [n.id]);
    else ids.push(n.id);
  }
  const areaCounts = new Map<number, number>();
  for (const a of Object.values(state.areas))
    if (a.pages !== null) areaCounts.set(a.pages, (areaCounts.get(a.pages) ?? 0) + a.numAccesses);
  for (const p of pages) {
    const u = users.get(p.id) ?? 0;
    const c = areaCounts.get(p.id) ?? 0;
    checkPagesAccesses(state, p, nodesOf.get(p.id) ?? [], u, c, flaggedPages.has(p.id), out);
  }
}

/**
 * The access nodes of one pages against its iopt_pages_access records (`nodes`: the ids of those of `p`,
 * ascending), and its users (`u`) against its areas' num_accesses (`c`) unless an area's count is already
 * reported (`flagged`). True when it found something.
 */
export function checkPagesAccesses(
  state: State,
  p: Pages,
  nodes: readonly number[],
  u: number,
  c: number,
  flagged: boolean,
  out: InvariantFinding[],
): boolean {
  const problems: string[] = [];
  for (const node of itreeEntries(p.accessTree)) {
    const problem = treeNodeProblem(state, p, node.id, node.start, node.last);
    if (problem !== null) problems.push(problem);
  }
  for (const id of nodes) {
    const problem = recordProblem(state, p, id);
    if (problem !== null) problems.push(problem);
  }
  if (u !== c && !flagged) problems.push(`its accesses have ${u} users but its areas count ${c} num_accesses`);
  if (problems.length === 0) return false;
  out.push({
    key: `accesses:${p.id}`,
    kind: 'invariant',
    detail: `iopt_pages ${p.id}: ${problems.slice(0, LIST_MAX).join('; ')}${problems.length > LIST_MAX ? ` and ${problems.length - LIST_MAX} more` : ''}`,
    objects: { pages: p.id, users: u, numAccesses: c },
  });
  return true;
}

/** What is wrong with node `id` [start, last] of p's access_itree, against its iopt_pages_access. */
export function treeNodeProblem(state: State, p: Pages, id: number, start: number, last: number): string | null {
  const n = state.pagesAccesses[id];
  if (n === undefined) return `node ${id} [${start}, ${last}] has no iopt_pages_access`;
  if (n.pages !== p.id || n.index !== start || n.last !== last)
    return `node ${id} disagrees with its iopt_pages_access`;
  if (n.users <= 0) return `access ${id} [${start}, ${last}] has ${n.users} users`;
  return null;
}

/** What is wrong with iopt_pages_access `id` of `p`: it is not in p's access_itree. */
export function recordProblem(state: State, p: Pages, id: number): string | null {
  const n = state.pagesAccesses[id];
  if (n !== undefined && !itreeFind(p.accessTree, id, n.index, n.last))
    return `iopt_pages_access ${id} [${n.index}, ${n.last}] is not in access_itree`;
  return null;
}
