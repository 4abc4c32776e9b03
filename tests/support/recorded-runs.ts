// SPDX-License-Identifier: GPL-2.0-only
/**
 * Runs for the time-travel tests, built by emitting events through an Emitter on a real State and recording
 * them in a MemoryRecorder (snapshots every K events), with a clone of the live state after every event.
 */
import type { Event } from '../../src/events/events.js';
import { Emitter } from '../../src/state/emit.js';
import type { EventSink } from '../../src/state/emit.js';
import { FIRST_PFN, initialState } from '../../src/state/state.js';
import type { State } from '../../src/state/state.js';
import { MemoryRecorder } from '../../src/timetravel/source.js';
import type { MemorySource } from '../../src/timetravel/source.js';

export const PAGE = 4096;

/** Records the live state after every event (index = seq). */
class CloneSink implements EventSink {
  readonly states: State[];
  constructor(
    private readonly state: State,
    private readonly next: EventSink,
  ) {
    this.states = [structuredClone(state)];
  }
  accept(event: Event, seq: number, op: number): void {
    this.next.accept(event, seq, op);
    this.states.push(structuredClone(this.state));
  }
}

export interface RecordedRun {
  source: MemorySource;
  /** Without snapshots: every seek replays from seq 0. */
  plain: MemorySource;
  recorder: MemoryRecorder;
  /** live[seq]: a copy of the live state after event seq. */
  live: State[];
  events: Event[];
}

/** Drives an Emitter op by op. */
export class RunBuilder {
  readonly state = initialState();
  readonly recorder: MemoryRecorder;
  private readonly clones: CloneSink;
  readonly emitter: Emitter;
  private opIndex = 0;

  constructor(snapshotEvery: number) {
    this.recorder = new MemoryRecorder(this.state, { snapshotEvery });
    this.clones = new CloneSink(this.state, this.recorder);
    this.emitter = new Emitter(this.state, this.clones);
  }

  get seq(): number {
    return this.emitter.seq;
  }

  emit(event: Event): void {
    this.emitter.emit(event);
  }

  /** One trace op: OpStarted, the body's events, OpFinished. Returns the op index. */
  op(name: string, body: () => void): number {
    const op = this.opIndex++;
    this.emitter.op = op;
    this.emit({ type: 'OpStarted', v: 1, op, line: op, name, caller: null });
    body();
    this.emit({ type: 'OpFinished', v: 1, op, errno: null, result: {} });
    return op;
  }

  finish(): RecordedRun {
    const source = this.recorder.source();
    const events = [...this.recorder.events];
    const plain = new MemoryRecorderSource(events, [...this.recorder.opOfEvent]).source;
    return { source, plain, recorder: this.recorder, live: this.clones.states, events };
  }
}

/** The same run without snapshots. */
class MemoryRecorderSource {
  readonly source: MemorySource;
  constructor(events: Event[], ops: number[]) {
    const r = new MemoryRecorder(initialState(), { snapshotEvery: 0 });
    for (let i = 0; i < events.length; i++) r.emit(events[i] as Event, ops[i] as number);
    this.source = r.source();
  }
}

export const P1_MM = 1;
export const UID = 1000;
/** The user pages of p1: vpn 0x100.. maps FIRST_PFN.. one to one. */
export const VPN = 0x100;
export const NFRAMES = 1024;
export const AREA_PAGES = 64;
export const IOVA_BASE = 0x1000000n;

export function pfnOf(k: number): number {
  return FIRST_PFN + k * AREA_PAGES;
}

/** Ids of the k-th mapping's objects. */
export const ids = (k: number): { pages: number; area: number; heap: number; extent: number } => ({
  pages: 100 + k * 4,
  area: 101 + k * 4,
  heap: 102 + k * 4,
  extent: 103 + k * 4,
});

/**
 * A scripted run of a few hundred events: one process with 1024 pages, an IOAS with a mock domain, `maps`
 * areas of 64 pages each (pin, account, store in the xarray, map in the domain), a COW break, a write, a
 * WARN, a violation, then `unmaps` of the areas undone in order.
 */
export function scriptedRun(options: { snapshotEvery: number; maps?: number; unmaps?: number }): RecordedRun {
  const maps = options.maps ?? 12;
  const unmaps = options.unmaps ?? 8;
  const b = new RunBuilder(options.snapshotEvery);
  b.op('setup', () => {
    b.emit({
      type: 'RunConfigured',
      v: 1,
      pageSize: PAGE,
      testBuild: true,
      tempMemoryLimit: 65536,
      gupZeroOnOverflow: true,
      variant: 'v3',
      fixes: [],
    });
  });
  b.op('process', () => {
    b.emit({ type: 'ProcessCreated', v: 1, pid: 'p1', mm: P1_MM, uid: UID, memlock: null, capIpcLock: false });
    b.emit({ type: 'FramesAllocated', v: 1, pfn: FIRST_PFN, count: NFRAMES, huge: '4K' });
    b.emit({
      type: 'VmaMapped',
      v: 1,
      mm: P1_MM,
      vpn: VPN,
      npages: NFRAMES,
      writable: true,
      huge: '4K',
      runs: [[FIRST_PFN, NFRAMES]],
    });
  });
  b.op('open', () => {
    b.emit({ type: 'CtxOpened', v: 1, ctx: 'c1', pid: 'p1', account: 'user', vfioType1: false });
    b.emit({ type: 'IoasAllocated', v: 1, ioas: 'i1', ctx: 'c1' });
    b.emit({
      type: 'DomainAllocated',
      v: 1,
      domain: 'd1',
      kind: 'mock',
      pgsizes: [BigInt(PAGE)],
      aperture: [0n, (1n << 48n) - 1n],
    });
    b.emit({ type: 'IoasDomainsSet', v: 1, ioas: 'i1', domains: ['d1'] });
  });
  for (let k = 0; k < maps; k++) mapArea(b, k);
  b.op('cow', () => {
    b.emit({ type: 'FramesAllocated', v: 1, pfn: FIRST_PFN + NFRAMES, count: 1, huge: '4K' });
    b.emit({
      type: 'CowBroken',
      v: 1,
      mm: P1_MM,
      vpn: VPN + NFRAMES - 1,
      oldPfn: FIRST_PFN + NFRAMES - 1,
      newPfn: FIRST_PFN + NFRAMES,
      fn: 'wp_page_copy',
    });
    b.emit({ type: 'MemoryWritten', v: 1, pfn: FIRST_PFN + NFRAMES, offset: 16, data: 'deadbeef' });
  });
  b.op('findings', () => {
    b.emit({
      type: 'Warned',
      v: 1,
      fn: 'iopt_pages_unfill_xarray',
      condition: 'npinned',
      objects: { pages: ids(1).pages, index: 3 },
    });
    b.emit({
      type: 'ViolationDetected',
      v: 1,
      kind: 'pin_leak',
      fn: 'batch_from_xarray_clear',
      detail: 'lost',
      objects: { pages: ids(1).pages, index: 5, pfn: pfnOf(1) + 5 },
    });
  });
  for (let k = 0; k < unmaps; k++) unmapArea(b, k);
  return b.finish();
}

export function mapArea(b: RunBuilder, k: number): void {
  const { pages, area, heap, extent } = ids(k);
  const pfn = pfnOf(k);
  const iova = IOVA_BASE + BigInt(k * AREA_PAGES * PAGE);
  const lastIova = iova + BigInt(AREA_PAGES * PAGE) - 1n;
  b.op('map', () => {
    b.emit({
      type: 'HeapAllocated',
      v: 1,
      alloc: heap,
      size: 192,
      owner: 'iommufd',
      tag: 'iopt_area',
      fn: 'iopt_area_alloc',
    });
    b.emit({
      type: 'PagesAllocated',
      v: 1,
      pages,
      uptr: BigInt((VPN + k * AREA_PAGES) * PAGE),
      npages: AREA_PAGES,
      writable: true,
      accountMode: 'user',
      sourcePid: 'p1',
      sourceMm: P1_MM,
      sourceUid: UID,
      fn: 'iopt_alloc_pages',
    });
    b.emit({
      type: 'AreaAllocated',
      v: 1,
      area,
      ioas: 'i1',
      iova,
      lastIova,
      pageOffset: 0,
      firstIndex: 0,
      lastIndex: AREA_PAGES - 1,
      prot: { read: true, write: true },
    });
    b.emit({ type: 'AreaPagesSet', v: 1, area, pages });
    b.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'area', ioas: 'i1' },
      node: area,
      start: iova,
      last: lastIova,
      owner: null,
    });
    b.emit({ type: 'PagesPinned', v: 1, pfn, count: AREA_PAGES, fn: 'pin_user_pages_remote', mm: P1_MM });
    b.emit({ type: 'NpinnedChanged', v: 1, pages, delta: AREA_PAGES, fn: 'pfn_reader_user_pin' });
    b.emit({
      type: 'AccountingCharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: UID,
      pages,
      delta: AREA_PAGES,
      fn: 'incr_user_locked_vm',
    });
    b.emit({ type: 'XaStored', v: 1, pages, index: 0, pfn, count: AREA_PAGES });
    b.emit({
      type: 'IommuMapped',
      v: 1,
      domain: 'd1',
      extent,
      iova,
      paddr: BigInt(pfn * PAGE),
      size: BigInt(AREA_PAGES * PAGE),
      read: true,
      write: true,
      fn: 'iommu_map',
    });
    b.emit({ type: 'AreaStorageDomainSet', v: 1, area, domain: 'd1' });
    b.emit({
      type: 'ItreeInserted',
      v: 1,
      tree: { kind: 'domains', pages },
      node: area,
      start: 0,
      last: AREA_PAGES - 1,
      owner: null,
    });
    b.emit({ type: 'LastNpinnedSet', v: 1, pages, value: AREA_PAGES, fn: 'pfn_reader_update_pinned' });
  });
}

export function unmapArea(b: RunBuilder, k: number): void {
  const { pages, area, heap } = ids(k);
  const pfn = pfnOf(k);
  const iova = IOVA_BASE + BigInt(k * AREA_PAGES * PAGE);
  const lastIova = iova + BigInt(AREA_PAGES * PAGE) - 1n;
  const size = BigInt(AREA_PAGES * PAGE);
  b.op('unmap', () => {
    b.emit({
      type: 'IommuUnmapped',
      v: 1,
      domain: 'd1',
      iova,
      size,
      unmapped: size,
      removed: [[iova, size]],
      fn: 'iommu_unmap',
    });
    b.emit({
      type: 'ItreeRemoved',
      v: 1,
      tree: { kind: 'domains', pages },
      node: area,
      start: 0,
      last: AREA_PAGES - 1,
    });
    b.emit({ type: 'XaErased', v: 1, pages, index: 0, count: AREA_PAGES });
    b.emit({ type: 'PagesUnpinned', v: 1, pfn, count: AREA_PAGES, dirty: true, fn: 'unpin_user_pages' });
    b.emit({ type: 'NpinnedChanged', v: 1, pages, delta: -AREA_PAGES, fn: 'iopt_pages_unpin' });
    b.emit({
      type: 'AccountingUncharged',
      v: 1,
      counter: 'user.locked_vm',
      owner: UID,
      pages,
      delta: AREA_PAGES,
      fn: 'decr_user_locked_vm',
    });
    b.emit({ type: 'LastNpinnedSet', v: 1, pages, value: 0, fn: 'pfn_reader_update_pinned' });
    b.emit({ type: 'ItreeRemoved', v: 1, tree: { kind: 'area', ioas: 'i1' }, node: area, start: iova, last: lastIova });
    b.emit({ type: 'AreaFreed', v: 1, area });
    b.emit({ type: 'PagesReleased', v: 1, pages, fn: 'iopt_release_pages' });
    b.emit({ type: 'HeapFreed', v: 1, alloc: heap, fn: 'iopt_area_free' });
  });
}
