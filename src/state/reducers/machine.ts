// SPDX-License-Identifier: GPL-2.0-only
/** Reducers for the simulated machine: processes, mm lifetime, physical frames, page tables, pins, heap. */
import type { EventOf } from '../../events/events.js';
import type { RangeMap } from '../../structures/range-map.js';
import { rangeSet, rangeUpdate } from '../../structures/range-map.js';
import { xaErase, xaForEachRun, xaRuns, xaStore } from '../../structures/xarray.js';
import { rangeMapCreate } from '../../structures/range-map.js';
import { xaCreate } from '../../structures/xarray.js';
import { entrySet, recordAdd, recordRemove, recordSet, recordStructure } from '../records.js';
import type { Frame, MemFile, Mm, State } from '../state.js';
import { FRAME_SPEC, VMA_SPEC, frameOrFree } from '../frames.js';
import { mustGet } from './lookup.js';

type FrameUpdate = (f: Frame | undefined) => Frame | undefined;

/**
 * Write the frame table, keeping the digest. A reducer that writes many runs writes them all in one call:
 * the state's digest holds the table's digest once, so taking it out and putting it back once per event
 * gives the same digest as once per run.
 */
function withFrames(s: State, write: (frames: RangeMap<Frame>) => void): void {
  recordStructure(s, 'state', 'memory', { frames: s.frames }, 'frames', write);
}

function updateFrames(s: State, pfn: number, count: number, fn: FrameUpdate): void {
  withFrames(s, (frames) => rangeUpdate(frames, pfn, count, fn, FRAME_SPEC));
}

const mapFrame: FrameUpdate = (f) => (f ? { ...f, maps: f.maps + 1 } : f);
const unmapFrame: FrameUpdate = (f) => (f ? frameOrFree({ ...f, maps: f.maps - 1 }) : f);
const pinFrame: FrameUpdate = (f) => (f ? { ...f, pins: f.pins + 1 } : f);
const unpinFrame =
  (dirty: boolean): FrameUpdate =>
  // A pin underflow is reported by the model before this event; the count stays at zero here.
  (f) =>
    f ? frameOrFree({ ...f, pins: Math.max(0, f.pins - 1), dirty: f.dirty || dirty }) : f;

function dropPageData(s: State, pfn: number, count: number): void {
  for (const key of Object.keys(s.pageData)) {
    const p = Number(key);
    if (p >= pfn && p < pfn + count) entrySet(s, 'pageData', s.pageData, p, undefined);
  }
}

export function processCreated(s: State, e: EventOf<'ProcessCreated'>): void {
  const proc = { pid: e.pid, mm: e.mm, uid: e.uid, memlock: e.memlock, capIpcLock: e.capIpcLock, exited: false };
  s.processes[e.pid] = proc;
  recordAdd(s, 'process', e.pid, proc);
  const mm: Mm = {
    id: e.mm,
    pid: e.pid,
    users: 1,
    count: 1,
    pt: xaCreate(),
    vmas: rangeMapCreate(),
    lockedVm: 0,
    pinnedVm: 0,
  };
  s.mms[e.mm] = mm;
  recordAdd(s, 'mm', e.mm, mm);
  if (s.users[e.uid] === undefined) {
    const user = { uid: e.uid, lockedVm: 0 };
    s.users[e.uid] = user;
    recordAdd(s, 'user', e.uid, user);
  }
  s.nextId = Math.max(s.nextId, e.mm + 1);
}

export function rlimitSet(s: State, e: EventOf<'RlimitSet'>): void {
  recordSet(s, 'process', e.pid, mustGet(s.processes, e.pid, 'process'), 'memlock', e.memlock);
}

export function processExited(s: State, e: EventOf<'ProcessExited'>): void {
  recordSet(s, 'process', e.pid, mustGet(s.processes, e.pid, 'process'), 'exited', true);
}

function mmCounter(s: State, mmId: number, field: 'users' | 'count', delta: number): void {
  const mm = mustGet(s.mms, mmId, 'mm');
  recordSet(s, 'mm', mmId, mm, field, mm[field] + delta);
}

export const mmGot = (s: State, e: EventOf<'MmGot'>): void => mmCounter(s, e.mm, 'users', 1);
export const mmPut = (s: State, e: EventOf<'MmPut'>): void => mmCounter(s, e.mm, 'users', -1);
export const mmGrabbed = (s: State, e: EventOf<'MmGrabbed'>): void => mmCounter(s, e.mm, 'count', 1);
export const mmDropped = (s: State, e: EventOf<'MmDropped'>): void => mmCounter(s, e.mm, 'count', -1);

export function framesAllocated(s: State, e: EventOf<'FramesAllocated'>): void {
  dropPageData(s, e.pfn, e.count);
  const frame: Frame = { pins: 0, maps: 0, huge: e.huge, dirty: false };
  withFrames(s, (frames) => rangeSet(frames, e.pfn, e.count, frame, FRAME_SPEC));
  s.nextPfn = Math.max(s.nextPfn, e.pfn + e.count);
}

/** Version 4: several blocks at once; the same state as one FramesAllocated per run, in run order. */
export function frameRunsAllocated(s: State, e: EventOf<'FrameRunsAllocated'>): void {
  dropPageDataOfRuns(s, e.runs);
  const frame: Frame = { pins: 0, maps: 0, huge: e.huge, dirty: false };
  let top = s.nextPfn;
  withFrames(s, (frames) => {
    for (const [pfn, count] of e.runs) {
      rangeSet(frames, pfn, count, frame, FRAME_SPEC);
      top = Math.max(top, pfn + count);
    }
  });
  s.nextPfn = top;
}

/** dropPageData of every run, in one pass over the page contents however many runs there are. */
function dropPageDataOfRuns(s: State, runs: readonly [number, number][]): void {
  const keys = Object.keys(s.pageData);
  if (keys.length === 0) return;
  const sorted = [...runs].sort((a, b) => a[0] - b[0]);
  for (const key of keys) {
    const p = Number(key);
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid]?.[0] ?? Infinity) <= p) lo = mid + 1;
      else hi = mid;
    }
    const run = sorted[lo - 1];
    if (run !== undefined && p < run[0] + run[1]) entrySet(s, 'pageData', s.pageData, p, undefined);
  }
}

export function vmaMapped(s: State, e: EventOf<'VmaMapped'>): void {
  const mm = mustGet(s.mms, e.mm, 'mm');
  recordStructure(s, 'mm', e.mm, mm, 'vmas', (vmas) =>
    rangeSet(
      vmas,
      e.vpn,
      e.npages,
      { writable: e.writable, huge: e.huge, ...(e.shared ? { shared: true as const } : {}) },
      VMA_SPEC,
    ),
  );
  // The page table and the frames are apart: all the runs' page table writes, then all their frame writes.
  recordStructure(s, 'mm', e.mm, mm, 'pt', (pt) => {
    let vpn = e.vpn;
    for (const [pfn, count] of e.runs) {
      xaStore(pt, vpn, pfn, count);
      vpn += count;
    }
  });
  withFrames(s, (frames) => {
    for (const [pfn, count] of e.runs) rangeUpdate(frames, pfn, count, mapFrame, FRAME_SPEC);
  });
}

export function vmaUnmapped(s: State, e: EventOf<'VmaUnmapped'>): void {
  const mm = mustGet(s.mms, e.mm, 'mm');
  // Walked, not listed: an unmap of scattered 4 KiB pages has a run per page.
  withFrames(s, (frames) => {
    xaForEachRun(mm.pt, e.vpn, e.vpn + e.npages - 1, (_vpn, pfn, count) => {
      rangeUpdate(frames, pfn, count, unmapFrame, FRAME_SPEC);
    });
  });
  recordStructure(s, 'mm', e.mm, mm, 'pt', (pt) => void xaErase(pt, e.vpn, e.npages));
  recordStructure(s, 'mm', e.mm, mm, 'vmas', (vmas) => rangeSet(vmas, e.vpn, e.npages, undefined, VMA_SPEC));
}

export function cowBroken(s: State, e: EventOf<'CowBroken'>): void {
  const mm = mustGet(s.mms, e.mm, 'mm');
  const n = e.npages ?? 1;
  recordStructure(s, 'mm', e.mm, mm, 'pt', (pt) => xaStore(pt, e.vpn, e.newPfn, n));
  const data: (string | undefined)[] = [];
  for (let i = 0; i < n; i++) data.push(s.pageData[e.oldPfn + i]);
  updateFrames(s, e.newPfn, n, mapFrame);
  updateFrames(s, e.oldPfn, n, unmapFrame);
  data.forEach((hex, i) => {
    if (hex !== undefined) entrySet(s, 'pageData', s.pageData, e.newPfn + i, hex);
  });
}

export function memoryWritten(s: State, e: EventOf<'MemoryWritten'>): void {
  const pageHex = s.config.pageSize * 2;
  const old = s.pageData[e.pfn] ?? '0'.repeat(pageHex);
  const at = e.offset * 2;
  const next = old.slice(0, at) + e.data + old.slice(at + e.data.length);
  entrySet(s, 'pageData', s.pageData, e.pfn, next);
}

export function pagesPinned(s: State, e: EventOf<'PagesPinned'>): void {
  updateFrames(s, e.pfn, e.count, pinFrame);
}

export function pagesUnpinned(s: State, e: EventOf<'PagesUnpinned'>): void {
  updateFrames(s, e.pfn, e.count, unpinFrame(e.dirty));
}

/** A list of PagesPinned runs (version 4): each run in order, as its own event would. */
export function pagesPinnedRuns(s: State, e: EventOf<'PagesPinnedRuns'>): void {
  withFrames(s, (frames) => {
    for (const [pfn, count] of e.runs) rangeUpdate(frames, pfn, count, pinFrame, FRAME_SPEC);
  });
}

/** A list of PagesUnpinned runs (version 4): each run in order, as its own event would. */
export function pagesUnpinnedRuns(s: State, e: EventOf<'PagesUnpinnedRuns'>): void {
  const unpin = unpinFrame(e.dirty);
  withFrames(s, (frames) => {
    for (const [pfn, count] of e.runs) rangeUpdate(frames, pfn, count, unpin, FRAME_SPEC);
  });
}

export function heapAllocated(s: State, e: EventOf<'HeapAllocated'>): void {
  const alloc = { id: e.alloc, size: e.size, owner: e.owner, tag: e.tag, fn: e.fn };
  s.heap[e.alloc] = alloc;
  recordAdd(s, 'heap', e.alloc, alloc);
  s.nextId = Math.max(s.nextId, e.alloc + 1);
}

export function heapFreed(s: State, e: EventOf<'HeapFreed'>): void {
  const alloc = mustGet(s.heap, e.alloc, 'heap allocation');
  recordRemove(s, 'heap', e.alloc, alloc);
  delete s.heap[e.alloc];
}

export function memfdCreated(s: State, e: EventOf<'MemfdCreated'>): void {
  const file: MemFile = { name: e.file, pid: e.pid, npages: e.npages, folio: e.folio, pt: xaCreate(), refs: 1 };
  let index = 0;
  for (const [pfn, count] of e.runs) {
    xaStore(file.pt, index, pfn, count);
    index += count;
  }
  // The page cache holds each folio as one more user of its frames.
  withFrames(s, (frames) => {
    for (const [pfn, count] of e.runs) rangeUpdate(frames, pfn, count, mapFrame, FRAME_SPEC);
  });
  s.files[e.file] = file;
  recordAdd(s, 'file', e.file, file);
}

export function fileRefChanged(s: State, e: EventOf<'FileRefChanged'>): void {
  const file = mustGet(s.files, e.file, 'file');
  recordSet(s, 'file', e.file, file, 'refs', file.refs + e.delta);
}

export function fileReleased(s: State, e: EventOf<'FileReleased'>): void {
  const file = mustGet(s.files, e.file, 'file');
  const runs = [...xaRuns(file.pt, 0, Math.max(0, file.npages - 1))];
  withFrames(s, (frames) => {
    for (const run of runs) rangeUpdate(frames, run.pfn, run.count, unmapFrame, FRAME_SPEC);
  });
  recordRemove(s, 'file', e.file, file);
  delete s.files[e.file];
}
