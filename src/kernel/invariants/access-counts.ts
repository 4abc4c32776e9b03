// SPDX-License-Identifier: GPL-2.0-only
/**
 * Invariant 5: an area's num_accesses equals the access users taken through it, and per pages the users
 * of its access nodes add up to its areas' num_accesses. The users are the selftest driver's items and the
 * pinned range of each HW queue; the queues' pins are also the area's num_locks ([up:area-num-locks]).
 */
import type { Access, AccessItem, Pages, State } from '../../state/state.js';
import { ioptAreaContigDone, ioptAreaContigInit, ioptAreaContigNext } from '../io-pagetable.js';
import { itreeEntries, itreeFind } from '../../structures/interval-tree.js';
import type { InvariantFinding } from './finding.js';
import { LIST_MAX, hex } from './finding.js';

/** The ranges an access holds pinned: the selftest driver's items, or the page-aligned range of a HW queue. */
function heldRanges(state: State, acc: Access): AccessItem[] {
  const items = Object.values(acc.items).sort((x, y) => x.id - y.id);
  const q = acc.hwQueue;
  if (q === undefined) return items;
  const page = BigInt(state.config.pageSize);
  const aligned = q.baseAddr - (q.baseAddr % page);
  const end = q.baseAddr + q.length;
  const length = ((end - aligned + page - 1n) / page) * page;
  return [...items, { id: -1, iova: aligned, length }];
}

export function checkAccessCounts(state: State, pages: readonly Pages[], out: InvariantFinding[]): void {
  const taken = new Map<number, number>();
  const locked = new Map<number, number>();
  for (const name of Object.keys(state.accesses).sort()) {
    const acc = state.accesses[name];
    if (acc === undefined || acc.ioas === null || state.ioases[acc.ioas] === undefined) continue;
    for (const item of heldRanges(state, acc)) {
      const last = item.iova + item.length - 1n;
      const iter = ioptAreaContigInit(state, acc.ioas, item.iova, last);
      for (let area = iter.area; area !== null; area = ioptAreaContigNext(state, iter)) {
        taken.set(area.id, (taken.get(area.id) ?? 0) + 1);
        if (acc.internal) locked.set(area.id, (locked.get(area.id) ?? 0) + 1);
      }
      if (!ioptAreaContigDone(state, iter)) {
        out.push({
          key: `item-unmapped:${name}:${item.id}`,
          kind: 'invariant',
          detail: `access ${name} still holds item ${item.id} (${hex(item.iova)} +${item.length}) over IOVA no area of IOAS ${acc.ioas} fully maps`,
          objects: { access: name, item: item.id, iova: item.iova, length: item.length },
        });
      }
    }
  }
  const flaggedPages = new Set<number>();
  for (const key of Object.keys(state.areas).sort((a, b) => Number(a) - Number(b))) {
    const a = state.areas[Number(key)];
    if (a === undefined) continue;
    const wantLocks = locked.get(a.id) ?? 0;
    if ((a.numLocks ?? 0) !== wantLocks) {
      out.push({
        key: `num_locks:${a.id}`,
        kind: 'invariant',
        detail: `area ${a.id} of IOAS ${a.ioas}: num_locks is ${a.numLocks ?? 0} but ${wantLocks} internal access pin${wantLocks === 1 ? '' : 's'} went through it`,
        objects: { area: a.id, ioas: a.ioas, numLocks: a.numLocks ?? 0, pins: wantLocks },
      });
    }
    const want = taken.get(a.id) ?? 0;
    if (a.numAccesses === want) continue;
    if (a.pages !== null) flaggedPages.add(a.pages);
    out.push({
      key: `num_accesses:${a.id}`,
      kind: 'invariant',
      detail: `area ${a.id} of IOAS ${a.ioas}: num_accesses is ${a.numAccesses} but ${want} access pin${want === 1 ? '' : 's'} went through it`,
      objects: { area: a.id, ioas: a.ioas, numAccesses: a.numAccesses, pins: want },
    });
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
    const problems: string[] = [];
    for (const node of itreeEntries(p.accessTree)) {
      const n = state.pagesAccesses[node.id];
      if (n === undefined) problems.push(`node ${node.id} [${node.start}, ${node.last}] has no iopt_pages_access`);
      else if (n.pages !== p.id || n.index !== node.start || n.last !== node.last)
        problems.push(`node ${node.id} disagrees with its iopt_pages_access`);
      else if (n.users <= 0) problems.push(`access ${node.id} [${node.start}, ${node.last}] has ${n.users} users`);
    }
    for (const id of nodesOf.get(p.id) ?? []) {
      const n = state.pagesAccesses[id];
      if (n !== undefined && !itreeFind(p.accessTree, id, n.index, n.last))
        problems.push(`iopt_pages_access ${id} [${n.index}, ${n.last}] is not in access_itree`);
    }
    const u = users.get(p.id) ?? 0;
    const c = areaCounts.get(p.id) ?? 0;
    if (u !== c && !flaggedPages.has(p.id))
      problems.push(`its accesses have ${u} users but its areas count ${c} num_accesses`);
    if (problems.length === 0) continue;
    out.push({
      key: `accesses:${p.id}`,
      kind: 'invariant',
      detail: `iopt_pages ${p.id}: ${problems.slice(0, LIST_MAX).join('; ')}${problems.length > LIST_MAX ? ` and ${problems.length - LIST_MAX} more` : ''}`,
      objects: { pages: p.id, users: u, numAccesses: c },
    });
  }
}
