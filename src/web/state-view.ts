// SPDX-License-Identifier: GPL-2.0-only
/**
 * The state at one event as the page draws it: flat lists of plain values (numbers, hex strings), each item
 * with the state path it shows (`pages.3.npinned`), so the page can mark what a step's patches touched.
 * xarrays, page tables and IO page tables are runs and extents, never pages: a 16 GiB guest is a handful of
 * rows. Every list is capped at `max` items, with the number left out.
 */
import { mappingsForEachFrom } from '../structures/mapping-table.js';
import { rangeForEachAll } from '../structures/range-map.js';
import { xaForEachRun } from '../structures/xarray.js';
import { itreeEntries } from '../structures/interval-tree.js';
import { digestHex } from '../lib/digest.js';
import { hex } from '../lib/format.js';
import type { State } from '../state/state.js';

export interface Capped<T> {
  items: T[];
  /** Items left out past the cap. */
  more: number;
}

export interface PagesView {
  id: number;
  path: string;
  npages: number;
  npinned: number;
  lastNpinned: number;
  refs: number;
  uptr: string;
  writable: boolean;
  accountMode: string;
  source: string;
  /** pinned_pfns (the xarray) as runs: indexes first..first+count-1 hold pfn..pfn+count-1. */
  pinnedPfns: Capped<{ index: number; count: number; pfn: string }>;
  accessItree: Capped<{ id: number; first: number; last: number; users: number | null }>;
  domainsItree: Capped<{ id: number; first: number; last: number }>;
}

export interface StateView {
  digest: string;
  opsDone: number;
  counts: { warns: number; violations: number };
  processes: { pid: string; mm: number; uid: number; memlock: string; exited: boolean; path: string }[];
  mms: { id: number; pid: string; users: number; count: number; lockedVm: number; pinnedVm: number; path: string }[];
  users: { uid: number; lockedVm: number; path: string }[];
  heap: Capped<{ id: number; size: number; owner: string; tag: string; fn: string; path: string }>;
  frames: Capped<{ pfn: string; count: number; pins: number; maps: number; path: string }>;
  pages: PagesView[];
  domains: {
    name: string;
    kind: string;
    mappedBytes: string;
    path: string;
    extents: Capped<{ iova: string; last: string; paddr: string; pgsize: string; prot: string }>;
  }[];
}

class Cap<T> {
  readonly items: T[] = [];
  more = 0;
  constructor(private readonly max: number) {}
  push(item: T): void {
    if (this.items.length < this.max) this.items.push(item);
    else this.more++;
  }
  done(): Capped<T> {
    return { items: this.items, more: this.more };
  }
}

function byKey<T>(table: Record<string | number, T>): [string, T][] {
  const keys = Object.keys(table);
  const numeric = keys.every((k) => /^\d+$/.test(k));
  keys.sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  const out: [string, T][] = [];
  for (const k of keys) {
    const v = table[k];
    if (v !== undefined) out.push([k, v]);
  }
  return out;
}

export const DEFAULT_VIEW_MAX = 200;

export function stateView(state: State, max = DEFAULT_VIEW_MAX): StateView {
  const heap = new Cap<StateView['heap']['items'][number]>(max);
  for (const [id, h] of byKey(state.heap))
    heap.push({ id: h.id, size: h.size, owner: h.owner, tag: h.tag, fn: h.fn, path: `heap.${id}` });
  const frames = new Cap<StateView['frames']['items'][number]>(max);
  rangeForEachAll(state.frames, (start, count, frame) => {
    frames.push({ pfn: hex(start), count, pins: frame.pins, maps: frame.maps, path: 'frames' });
  });
  const pages: PagesView[] = byKey(state.pages).map(([id, p]) => {
    const pinned = new Cap<PagesView['pinnedPfns']['items'][number]>(max);
    xaForEachRun(p.xa, 0, Number.MAX_SAFE_INTEGER, (index, pfn, count) => {
      pinned.push({ index, count, pfn: hex(pfn) });
    });
    const access = new Cap<PagesView['accessItree']['items'][number]>(max);
    for (const e of itreeEntries(p.accessTree))
      access.push({ id: e.id, first: e.start, last: e.last, users: state.pagesAccesses[e.id]?.users ?? null });
    const domains = new Cap<PagesView['domainsItree']['items'][number]>(max);
    for (const e of itreeEntries(p.domainsTree)) domains.push({ id: e.id, first: e.start, last: e.last });
    return {
      id: p.id,
      path: `pages.${id}`,
      npages: p.npages,
      npinned: p.npinned,
      lastNpinned: p.lastNpinned,
      refs: p.refs,
      uptr: hex(p.uptr),
      writable: p.writable,
      accountMode: p.accountMode,
      source: `pid ${p.sourcePid} mm ${p.sourceMm} uid ${p.sourceUid}`,
      pinnedPfns: pinned.done(),
      accessItree: access.done(),
      domainsItree: domains.done(),
    };
  });
  return {
    digest: digestHex(state.digest),
    opsDone: state.opsDone,
    counts: { ...state.counts },
    processes: byKey(state.processes).map(([pid, p]) => ({
      pid: p.pid,
      mm: p.mm,
      uid: p.uid,
      memlock: p.memlock === null ? 'unlimited' : p.memlock.toString(),
      exited: p.exited,
      path: `processes.${pid}`,
    })),
    mms: byKey(state.mms).map(([id, m]) => ({
      id: m.id,
      pid: m.pid,
      users: m.users,
      count: m.count,
      lockedVm: m.lockedVm,
      pinnedVm: m.pinnedVm,
      path: `mms.${id}`,
    })),
    users: byKey(state.users).map(([uid, u]) => ({ uid: u.uid, lockedVm: u.lockedVm, path: `users.${uid}` })),
    heap: heap.done(),
    frames: frames.done(),
    pages,
    domains: byKey(state.domains).map(([name, d]) => {
      const extents = new Cap<StateView['domains'][number]['extents']['items'][number]>(max);
      mappingsForEachFrom(d.mappings, undefined, (m) => {
        extents.push({
          iova: hex(m.iova),
          last: hex(m.iova + m.size - 1n),
          paddr: hex(m.paddr),
          pgsize: hex(m.pgsize),
          prot: `${m.read ? 'r' : '-'}${m.write ? 'w' : '-'}`,
        });
      });
      return { name, kind: d.kind, mappedBytes: hex(d.mappedBytes), path: `domains.${name}`, extents: extents.done() };
    }),
  };
}
