// SPDX-License-Identifier: GPL-2.0-only
/** Reducers for iommufd objects: contexts, IOASes, iopt_pages, areas, interval trees, xarray, accesses, accounting. */
import type { EventOf, TreeRef } from '../../events/events.js';
import type { IntervalTree } from '../../structures/interval-tree.js';
import { itreeCreate, itreeInsert, itreeRemove } from '../../structures/interval-tree.js';
import { xaCreate, xaErase, xaStore, xaStoreRuns } from '../../structures/xarray.js';
import { InternalError } from '../../lib/errors.js';
import { recordAdd, recordRemove, recordSet, recordSetEntry, recordStructure } from '../records.js';
import type { Access, Area, FdEntry, Ioas, OpenFile, Pages, PagesAccess, State } from '../state.js';
import { mustGet } from './lookup.js';

export function ctxOpened(s: State, e: EventOf<'CtxOpened'>): void {
  const ctx = { name: e.ctx, pid: e.pid, account: e.account, vfioType1: e.vfioType1 };
  s.ctxs[e.ctx] = ctx;
  recordAdd(s, 'ctx', e.ctx, ctx);
}

export function ioasAllocated(s: State, e: EventOf<'IoasAllocated'>): void {
  const ioas: Ioas = {
    name: e.ioas,
    ctx: e.ctx,
    areas: itreeCreate<bigint>(),
    allowed: itreeCreate<bigint>(),
    reserved: itreeCreate<bigint>(),
    reservedOwners: {},
    domains: [],
    iovaAlignment: 1n,
    disableLargePages: false,
    accesses: [],
  };
  s.ioases[e.ioas] = ioas;
  recordAdd(s, 'ioas', e.ioas, ioas);
}

export function iovaAlignmentSet(s: State, e: EventOf<'IovaAlignmentSet'>): void {
  recordSet(s, 'ioas', e.ioas, mustGet(s.ioases, e.ioas, 'ioas'), 'iovaAlignment', e.alignment);
}

export function largePagesDisabled(s: State, e: EventOf<'LargePagesDisabled'>): void {
  recordSet(s, 'ioas', e.ioas, mustGet(s.ioases, e.ioas, 'ioas'), 'disableLargePages', e.disabled);
}

export function ioasDomainsSet(s: State, e: EventOf<'IoasDomainsSet'>): void {
  recordSet(s, 'ioas', e.ioas, mustGet(s.ioases, e.ioas, 'ioas'), 'domains', [...e.domains]);
}

export function pagesAllocated(s: State, e: EventOf<'PagesAllocated'>): void {
  const pages: Pages = {
    id: e.pages,
    refs: 1,
    npages: e.npages,
    npinned: 0,
    lastNpinned: 0,
    uptr: e.uptr,
    writable: e.writable,
    accountMode: e.accountMode,
    sourcePid: e.sourcePid,
    sourceMm: e.sourceMm,
    sourceUid: e.sourceUid,
    xa: xaCreate(),
    accessTree: itreeCreate<number>(),
    domainsTree: itreeCreate<number>(),
  };
  s.pages[e.pages] = pages;
  recordAdd(s, 'pages', e.pages, pages);
  s.nextId = Math.max(s.nextId, e.pages + 1);
}

const pagesOf = (s: State, id: number): Pages => mustGet(s.pages, id, 'pages');

export function pagesFileSet(s: State, e: EventOf<'PagesFileSet'>): void {
  const p = pagesOf(s, e.pages);
  // New fields of the record: added with their digest parts, as recordAdd would.
  recordAdd(s, 'pages', e.pages, { file: e.file, fileStart: e.start });
  p.file = e.file;
  p.fileStart = e.start;
}

export function pagesSourceChanged(s: State, e: EventOf<'PagesSourceChanged'>): void {
  const p = pagesOf(s, e.pages);
  recordSet(s, 'pages', e.pages, p, 'sourcePid', e.sourcePid);
  recordSet(s, 'pages', e.pages, p, 'sourceMm', e.sourceMm);
  recordSet(s, 'pages', e.pages, p, 'sourceUid', e.sourceUid);
}

export function pagesAccountModeSet(s: State, e: EventOf<'PagesAccountModeSet'>): void {
  recordSet(s, 'pages', e.pages, pagesOf(s, e.pages), 'accountMode', e.accountMode);
}

export function pagesRefChanged(s: State, e: EventOf<'PagesRefChanged'>): void {
  const p = pagesOf(s, e.pages);
  recordSet(s, 'pages', e.pages, p, 'refs', p.refs + e.delta);
}

export function pagesReleased(s: State, e: EventOf<'PagesReleased'>): void {
  recordRemove(s, 'pages', e.pages, pagesOf(s, e.pages));
  delete s.pages[e.pages];
}

export function npinnedChanged(s: State, e: EventOf<'NpinnedChanged'>): void {
  const p = pagesOf(s, e.pages);
  recordSet(s, 'pages', e.pages, p, 'npinned', p.npinned + e.delta);
}

export function lastNpinnedSet(s: State, e: EventOf<'LastNpinnedSet'>): void {
  recordSet(s, 'pages', e.pages, pagesOf(s, e.pages), 'lastNpinned', e.value);
}

export function areaAllocated(s: State, e: EventOf<'AreaAllocated'>): void {
  const area: Area = {
    id: e.area,
    ioas: e.ioas,
    iova: e.iova,
    lastIova: e.lastIova,
    pageOffset: e.pageOffset,
    firstIndex: e.firstIndex,
    lastIndex: e.lastIndex,
    read: e.prot.read,
    write: e.prot.write,
    pages: null,
    storageDomain: null,
    numAccesses: 0,
    preventAccess: false,
  };
  s.areas[e.area] = area;
  recordAdd(s, 'area', e.area, area);
  s.nextId = Math.max(s.nextId, e.area + 1);
}

const areaOf = (s: State, id: number): Area => mustGet(s.areas, id, 'area');

export function areaPagesSet(s: State, e: EventOf<'AreaPagesSet'>): void {
  recordSet(s, 'area', e.area, areaOf(s, e.area), 'pages', e.pages);
}

export function areaStorageDomainSet(s: State, e: EventOf<'AreaStorageDomainSet'>): void {
  recordSet(s, 'area', e.area, areaOf(s, e.area), 'storageDomain', e.domain);
}

export function areaAccessesChanged(s: State, e: EventOf<'AreaAccessesChanged'>): void {
  const a = areaOf(s, e.area);
  recordSet(s, 'area', e.area, a, 'numAccesses', a.numAccesses + e.delta);
}

export function areaPreventAccessSet(s: State, e: EventOf<'AreaPreventAccessSet'>): void {
  recordSet(s, 'area', e.area, areaOf(s, e.area), 'preventAccess', e.prevent);
}

export function areaFreed(s: State, e: EventOf<'AreaFreed'>): void {
  recordRemove(s, 'area', e.area, areaOf(s, e.area));
  delete s.areas[e.area];
}

/** Apply fn to the tree named by ref, keeping the digest of its owner. */
function withTree(s: State, ref: TreeRef, fn: (tree: IntervalTree<number> | IntervalTree<bigint>) => void): void {
  if ('pages' in ref) {
    const p = pagesOf(s, ref.pages);
    recordStructure(s, 'pages', ref.pages, p, ref.kind === 'access' ? 'accessTree' : 'domainsTree', fn);
  } else {
    const ioas = mustGet(s.ioases, ref.ioas, 'ioas');
    const field = ref.kind === 'area' ? 'areas' : ref.kind;
    recordStructure(s, 'ioas', ref.ioas, ioas, field, fn);
  }
}

export function itreeInserted(s: State, e: EventOf<'ItreeInserted'>): void {
  withTree(s, e.tree, (tree) => {
    if (!itreeInsert(tree as IntervalTree<typeof e.start>, e.node, e.start, e.last)) {
      throw new InternalError(`reducer: node ${e.node} cannot be inserted into the ${e.tree.kind} tree`);
    }
  });
  const tree = e.tree;
  if (tree.kind === 'reserved' && 'ioas' in tree && e.owner !== null) {
    const ioas = mustGet(s.ioases, tree.ioas, 'ioas');
    recordSet(s, 'ioas', tree.ioas, ioas, 'reservedOwners', { ...ioas.reservedOwners, [e.node]: e.owner });
  }
  s.nextId = Math.max(s.nextId, e.node + 1);
}

export function itreeRemoved(s: State, e: EventOf<'ItreeRemoved'>): void {
  withTree(s, e.tree, (tree) => {
    if (!itreeRemove(tree as IntervalTree<typeof e.start>, e.node, e.start, e.last)) {
      throw new InternalError(`reducer: node ${e.node} is not in the ${e.tree.kind} tree`);
    }
  });
  if (e.tree.kind === 'reserved' && 'ioas' in e.tree) {
    const ioas = mustGet(s.ioases, e.tree.ioas, 'ioas');
    if (ioas.reservedOwners[e.node] !== undefined) {
      const owners = { ...ioas.reservedOwners };
      delete owners[e.node];
      recordSet(s, 'ioas', e.tree.ioas, ioas, 'reservedOwners', owners);
    }
  }
}

export function xaStored(s: State, e: EventOf<'XaStored'>): void {
  recordStructure(s, 'pages', e.pages, pagesOf(s, e.pages), 'xa', (xa) => void xaStore(xa, e.index, e.pfn, e.count));
}

export function xaErased(s: State, e: EventOf<'XaErased'>): void {
  recordStructure(s, 'pages', e.pages, pagesOf(s, e.pages), 'xa', (xa) => void xaErase(xa, e.index, e.count));
}

/** A list of XaStored runs (version 5), in order, with the pages' record out of the digest once for all. */
export function xaStoredRuns(s: State, e: EventOf<'XaStoredRuns'>): void {
  recordStructure(s, 'pages', e.pages, pagesOf(s, e.pages), 'xa', (xa) => void xaStoreRuns(xa, e.runs));
}

/**
 * A list of XaErased runs (version 5), in order. Index-adjacent runs (the pages of scattered frames) are
 * erased as one range: the same entries go.
 */
export function xaErasedRuns(s: State, e: EventOf<'XaErasedRuns'>): void {
  recordStructure(s, 'pages', e.pages, pagesOf(s, e.pages), 'xa', (xa) => {
    let from = 0;
    let end = 0;
    for (const [index, count] of e.runs) {
      if (index !== end) {
        xaErase(xa, from, end - from);
        from = index;
      }
      end = index + count;
    }
    xaErase(xa, from, end - from);
  });
}

export function pagesAccessAllocated(s: State, e: EventOf<'PagesAccessAllocated'>): void {
  const node: PagesAccess = { id: e.node, pages: e.pages, index: e.index, last: e.last, users: 0 };
  s.pagesAccesses[e.node] = node;
  recordAdd(s, 'pagesAccess', e.node, node);
  s.nextId = Math.max(s.nextId, e.node + 1);
}

export function pagesAccessUsersChanged(s: State, e: EventOf<'PagesAccessUsersChanged'>): void {
  const node = mustGet(s.pagesAccesses, e.node, 'pages access');
  recordSet(s, 'pagesAccess', e.node, node, 'users', node.users + e.delta);
}

export function pagesAccessFreed(s: State, e: EventOf<'PagesAccessFreed'>): void {
  recordRemove(s, 'pagesAccess', e.node, mustGet(s.pagesAccesses, e.node, 'pages access'));
  delete s.pagesAccesses[e.node];
}

export function accessCreated(s: State, e: EventOf<'AccessCreated'>): void {
  const access: Access = { name: e.access, ioas: e.ioas, needsPinPages: e.needsPinPages, items: {} };
  if (e.internal) access.internal = true;
  s.accesses[e.access] = access;
  recordAdd(s, 'access', e.access, access);
  const ioas = mustGet(s.ioases, e.ioas, 'ioas');
  recordSet(s, 'ioas', e.ioas, ioas, 'accesses', [...ioas.accesses, e.access]);
}

export function accessItemAdded(s: State, e: EventOf<'AccessItemAdded'>): void {
  const access = mustGet(s.accesses, e.access, 'access');
  recordSetEntry(s, 'access', e.access, access, 'items', e.item, { id: e.item, iova: e.iova, length: e.length });
  s.nextId = Math.max(s.nextId, e.item + 1);
}

export function accessItemRemoved(s: State, e: EventOf<'AccessItemRemoved'>): void {
  const access = mustGet(s.accesses, e.access, 'access');
  recordSetEntry(s, 'access', e.access, access, 'items', e.item, undefined);
}

export function accessDestroyed(s: State, e: EventOf<'AccessDestroyed'>): void {
  const access = mustGet(s.accesses, e.access, 'access');
  if (access.ioas !== null) {
    const ioas = mustGet(s.ioases, access.ioas, 'ioas');
    recordSet(
      s,
      'ioas',
      access.ioas,
      ioas,
      'accesses',
      ioas.accesses.filter((a) => a !== e.access),
    );
  }
  recordRemove(s, 'access', e.access, access);
  delete s.accesses[e.access];
}

/** The access leaves `from`'s access list for `to`'s, and pins from now on through `to`. */
export function accessIoasReplaced(s: State, e: EventOf<'AccessIoasReplaced'>): void {
  const access = mustGet(s.accesses, e.access, 'access');
  const from = mustGet(s.ioases, e.from, 'ioas');
  recordSet(
    s,
    'ioas',
    e.from,
    from,
    'accesses',
    from.accesses.filter((a) => a !== e.access),
  );
  const to = mustGet(s.ioases, e.to, 'ioas');
  recordSet(s, 'ioas', e.to, to, 'accesses', [...to.accesses, e.access]);
  recordSet(s, 'access', e.access, access, 'ioas', e.to);
}

/**
 * area->num_locks += delta. The field exists only while nonzero: an area that was never locked, or is no
 * longer, has the record (and digest) it had before locks were modelled.
 */
export function areaLocksChanged(s: State, e: EventOf<'AreaLocksChanged'>): void {
  const a = areaOf(s, e.area);
  const before = a.numLocks ?? 0;
  const after = before + e.delta;
  if (before !== 0) recordRemove(s, 'area', e.area, { numLocks: before });
  if (after === 0) delete a.numLocks;
  else {
    a.numLocks = after;
    recordAdd(s, 'area', e.area, { numLocks: after });
  }
}

/** The queue's facts go on its internal access (the queue owns exactly that one access for its life). */
export function hwQueueAllocated(s: State, e: EventOf<'HwQueueAllocated'>): void {
  const access = mustGet(s.accesses, e.queue, 'access');
  const hwQueue = { baseAddr: e.baseAddr, length: e.length };
  access.hwQueue = hwQueue;
  recordAdd(s, 'access', e.queue, { hwQueue });
}

export function hwQueueDestroyed(s: State, e: EventOf<'HwQueueDestroyed'>): void {
  const access = mustGet(s.accesses, e.queue, 'access');
  if (access.hwQueue === undefined) return;
  recordRemove(s, 'access', e.queue, { hwQueue: access.hwQueue });
  delete access.hwQueue;
}

const COUNTER_FIELD = { 'mm.locked_vm': 'lockedVm', 'mm.pinned_vm': 'pinnedVm' } as const;

function applyAccounting(
  s: State,
  e: EventOf<'AccountingCharged'> | EventOf<'AccountingUncharged'>,
  sign: 1 | -1,
): void {
  if (e.counter === 'user.locked_vm') {
    const user = mustGet(s.users, e.owner, 'user');
    recordSet(s, 'user', e.owner, user, 'lockedVm', user.lockedVm + sign * e.delta);
    return;
  }
  const mm = mustGet(s.mms, e.owner, 'mm');
  const field = COUNTER_FIELD[e.counter];
  recordSet(s, 'mm', e.owner, mm, field, mm[field] + sign * e.delta);
}

export const accountingCharged = (s: State, e: EventOf<'AccountingCharged'>): void => applyAccounting(s, e, 1);
export const accountingUncharged = (s: State, e: EventOf<'AccountingUncharged'>): void => applyAccounting(s, e, -1);

// ---- iommufd files and descriptors (version 2 traces) ----

export function openFileCreated(s: State, e: EventOf<'OpenFileCreated'>): void {
  const file: OpenFile = { key: e.file, kind: e.kind, object: e.object, fCount: 1, holds: e.holds };
  s.openFiles[e.file] = file;
  recordAdd(s, 'openFile', e.file, file);
}

function fCountBy(s: State, key: string, delta: number): void {
  const file = mustGet(s.openFiles, key, 'open file');
  recordSet(s, 'openFile', key, file, 'fCount', file.fCount + delta);
}

export const openFileGot = (s: State, e: EventOf<'OpenFileGot'>): void => fCountBy(s, e.file, 1);
export const openFilePut = (s: State, e: EventOf<'OpenFilePut'>): void => fCountBy(s, e.file, -1);

export function openFileReleased(s: State, e: EventOf<'OpenFileReleased'>): void {
  const file = mustGet(s.openFiles, e.file, 'open file');
  recordRemove(s, 'openFile', e.file, file);
  delete s.openFiles[e.file];
}

/** The key of a file table entry. */
export const fdKey = (pid: string, fd: number): string => `${pid}:${fd}`;

export function fdInstalled(s: State, e: EventOf<'FdInstalled'>): void {
  mustGet(s.openFiles, e.file, 'open file');
  const key = fdKey(e.pid, e.fd);
  const entry: FdEntry = { pid: e.pid, fd: e.fd, file: e.file };
  s.fds[key] = entry;
  recordAdd(s, 'fd', key, entry);
}

export function fdRemoved(s: State, e: EventOf<'FdRemoved'>): void {
  const key = fdKey(e.pid, e.fd);
  const entry = mustGet(s.fds, key, 'descriptor');
  recordRemove(s, 'fd', key, entry);
  delete s.fds[key];
}
