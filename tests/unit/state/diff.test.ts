import { describe, expect, it } from 'vitest';
import type { Event } from '../../../src/events/events.js';
import { reduce } from '../../../src/state/reduce.js';
import { initialState, FIRST_PFN } from '../../../src/state/state.js';
import type { State } from '../../../src/state/state.js';
import { diffStates, renderDiff, formatValue, rangeText } from '../../../src/state/diff.js';
import { Cursor } from '../../../src/timetravel/cursor.js';
import { scriptedRun, ids, IOVA_BASE } from '../../support/recorded-runs.js';

function build(events: Event[], base: State = initialState()): State {
  const s = structuredClone(base);
  for (const e of events) reduce(s, e);
  return s;
}

const setup: Event[] = [
  { type: 'ProcessCreated', v: 1, pid: 'p1', mm: 1, uid: 1000, memlock: null, capIpcLock: false },
  { type: 'FramesAllocated', v: 1, pfn: FIRST_PFN, count: 64, huge: '4K' },
  { type: 'VmaMapped', v: 1, mm: 1, vpn: 0x100, npages: 64, writable: true, huge: '4K', runs: [[FIRST_PFN, 64]] },
  {
    type: 'PagesAllocated',
    v: 1,
    pages: 7,
    uptr: 0x100000n,
    npages: 64,
    writable: true,
    accountMode: 'user',
    sourcePid: 'p1',
    sourceMm: 1,
    sourceUid: 1000,
    fn: 'f',
  },
  { type: 'PagesPinned', v: 1, pfn: FIRST_PFN, count: 64, fn: 'gup', mm: 1 },
  { type: 'NpinnedChanged', v: 1, pages: 7, delta: 64, fn: 'f' },
  { type: 'XaStored', v: 1, pages: 7, index: 0, pfn: FIRST_PFN, count: 64 },
];

describe('diffStates', () => {
  const base = build(setup);

  it('finds nothing between a state and itself or an equal copy', () => {
    expect(diffStates(base, base).differences).toEqual([]);
    expect(diffStates(base, structuredClone(base)).differences).toEqual([]);
  });

  it('names one changed counter with its value on both sides', () => {
    const after = build([{ type: 'NpinnedChanged', v: 1, pages: 7, delta: -1, fn: 'f' }], base);
    const diff = diffStates(base, after);
    expect(diff.differences).toEqual([{ table: 'pages', key: '7', path: ['npinned'], at: null, a: 64, b: 63 }]);
    expect(renderDiff(diff)).toEqual(['pages 7 npinned: 64 -> 63']);
  });

  it('reports an unpinned run as one range per changed frame field, and the xarray run it erased', () => {
    const after = build(
      [
        { type: 'XaErased', v: 1, pages: 7, index: 4, count: 4 },
        { type: 'PagesUnpinned', v: 1, pfn: FIRST_PFN + 4, count: 4, dirty: true, fn: 'unpin' },
      ],
      base,
    );
    const diff = diffStates(base, after);
    expect(renderDiff(diff)).toEqual([
      'frames pfn 0x40004..0x40007 dirty: no -> yes',
      'frames pfn 0x40004..0x40007 pins: 1 -> 0',
      'pages 7 pinned_pfns index 4..7: pfn 0x40004..0x40007 -> (none)',
    ]);
    expect(diff.differences[0]).toEqual({
      table: 'frames',
      key: null,
      path: ['pfn 0x40004..0x40007', 'dirty'],
      at: { unit: 'pfn', first: FIRST_PFN + 4, last: FIRST_PFN + 7 },
      a: false,
      b: true,
    });
    expect(diff.differences[2]?.at).toEqual({ unit: 'index', first: 4, last: 7 });
  });

  it('reports an xarray index that now holds another PFN with both PFNs', () => {
    const after = build([{ type: 'XaStored', v: 1, pages: 7, index: 10, pfn: 0x90000, count: 2 }], base);
    expect(renderDiff(diffStates(base, after))).toEqual([
      'pages 7 pinned_pfns index 10..11: pfn 0x4000a..0x4000b -> pfn 0x90000..0x90001',
    ]);
  });

  it('merges adjacent pieces with the same change across differently cut runs', () => {
    // Frames 0..9 are mapped once, 10..19 twice: two runs on side A, the same two on side B, one pin change.
    const a = build([
      { type: 'ProcessCreated', v: 1, pid: 'p1', mm: 1, uid: 1000, memlock: null, capIpcLock: false },
      { type: 'ProcessCreated', v: 1, pid: 'p2', mm: 2, uid: 1000, memlock: null, capIpcLock: false },
      { type: 'FramesAllocated', v: 1, pfn: 0x1000, count: 20, huge: '4K' },
      { type: 'VmaMapped', v: 1, mm: 1, vpn: 0, npages: 20, writable: true, huge: '4K', runs: [[0x1000, 20]] },
      { type: 'VmaMapped', v: 1, mm: 2, vpn: 0, npages: 10, writable: true, huge: '4K', runs: [[0x100a, 10]] },
      { type: 'PagesPinned', v: 1, pfn: 0x1000, count: 20, fn: 'gup', mm: 1 },
    ]);
    const b = build([{ type: 'PagesUnpinned', v: 1, pfn: 0x1000, count: 20, dirty: false, fn: 'unpin' }], a);
    expect(a.frames.tree.size).toBe(2);
    expect(renderDiff(diffStates(a, b))).toEqual(['frames pfn 0x1000..0x1013 pins: 1 -> 0']);
  });

  it('compares a million-page run as one run', () => {
    const a = build([{ type: 'FramesAllocated', v: 1, pfn: 0x100000, count: 1 << 20, huge: '2M' }]);
    const b = build([{ type: 'PagesPinned', v: 1, pfn: 0x100000, count: 1 << 20, fn: 'gup', mm: null }], a);
    expect(renderDiff(diffStates(a, b))).toEqual(['frames pfn 0x100000..0x1fffff pins: 0 -> 1']);
  });

  it('lists a new record with its fields, then what its structures hold', () => {
    const a = initialState();
    const b = build([
      {
        type: 'PagesAllocated',
        v: 1,
        pages: 3,
        uptr: 0x2000n,
        npages: 4,
        writable: false,
        accountMode: 'none',
        sourcePid: 'p9',
        sourceMm: 9,
        sourceUid: 0,
        fn: 'f',
      },
      { type: 'XaStored', v: 1, pages: 3, index: 0, pfn: 0x500, count: 4 },
      { type: 'ItreeInserted', v: 1, tree: { kind: 'access', pages: 3 }, node: 12, start: 1, last: 2, owner: null },
    ]);
    expect(renderDiff(diffStates(a, b))).toEqual([
      'next object id: 1 -> 13',
      'pages 3: (none) -> {id 3, refs 1, npages 4, npinned 0, last_npinned 0, uptr 0x2000, writable no, account_mode none, source_task p9, source_mm 9, source_user 0}',
      'pages 3 access_itree node 12: (none) -> {start 1, last 2}',
      'pages 3 pinned_pfns index 0..3: (none) -> pfn 0x500..0x503',
    ]);
    expect(renderDiff(diffStates(b, a))).toEqual([
      'next object id: 13 -> 1',
      'pages 3: {id 3, refs 1, npages 4, npinned 0, last_npinned 0, uptr 0x2000, writable no, account_mode none, source_task p9, source_mm 9, source_user 0} -> (none)',
      'pages 3 access_itree node 12: {start 1, last 2} -> (none)',
      'pages 3 pinned_pfns index 0..3: pfn 0x500..0x503 -> (none)',
    ]);
  });

  it('names tree nodes, domain mappings, counters, config, fault and page data', () => {
    const run = scriptedRun({ snapshotEvery: 0, maps: 2, unmaps: 0 });
    const a = run.live[run.live.length - 1] as State;
    const { area, pages } = ids(1);
    const iova = IOVA_BASE + BigInt(64 * 4096);
    const b = build(
      [
        {
          type: 'ItreeRemoved',
          v: 1,
          tree: { kind: 'area', ioas: 'i1' },
          node: area,
          start: iova,
          last: iova + 0x3ffffn,
        },
        {
          type: 'IommuUnmapped',
          v: 1,
          domain: 'd1',
          iova,
          size: 0x1000n,
          unmapped: 0x1000n,
          removed: [[iova, 0x1000n]],
          fn: 'iommu_unmap',
        },
        { type: 'Warned', v: 1, fn: 'f', condition: 'c', objects: {} },
        { type: 'TempMemoryLimitSet', v: 1, bytes: 100 },
        { type: 'FaultArmed', v: 1, nth: 2, site: 'gup' },
        { type: 'MemoryWritten', v: 1, pfn: 0x40400, offset: 16, data: '00' },
        { type: 'AccountingCharged', v: 1, counter: 'mm.pinned_vm', owner: 1, pages, delta: 3, fn: 'f' },
      ],
      a,
    );
    expect(renderDiff(diffStates(a, b))).toEqual([
      'config temp memory limit: 65536 -> 100',
      'WARNs (count): 1 -> 2',
      'fault: null -> {nth 2, site gup}',
      'mms 1 pinned_vm: 0 -> 3',
      'page data pfn 0x40400: byte 0x10 differs',
      `ioases i1 area_itree node ${area}: {start 0x1040000, last 0x107ffff} -> (none)`,
      'domains d1 mapped bytes: 0x80000 -> 0x7f000',
      'domains d1 mappings iova 0x1040000..0x107ffff: {paddr 0x40040000, size 0x40000, pgsize 0x1000, read yes, write yes, extent 107, start flag yes, last flag yes} -> (none)',
      'domains d1 mappings iova 0x1041000..0x107ffff: (none) -> {paddr 0x40041000, size 0x3f000, pgsize 0x1000, read yes, write yes, extent 107, start flag no, last flag yes}',
    ]);
  });

  it('gives the same differences for states that share structure (a cursor step) as for private copies', async () => {
    const run = scriptedRun({ snapshotEvery: 32 });
    const c = await Cursor.open(run.source, -1);
    for (;;) {
      const before = c.state;
      const step = await c.forward();
      if (step === null) break;
      expect(step.diff.differences).toEqual(diffStates(structuredClone(before), structuredClone(c.state)).differences);
    }
  });

  it('finds differences outside the cursors exactly when the digests differ', () => {
    const run = scriptedRun({ snapshotEvery: 0 });
    for (let seq = 0; seq + 3 < run.live.length; seq += 3) {
      const diff = diffStates(run.live[seq] as State, run.live[seq + 3] as State);
      const real = diff.differences.filter((d) => d.table !== 'cursors');
      expect(real.length > 0, `seq ${seq}`).toBe(diff.digestA !== diff.digestB);
    }
  });
});

describe('formatValue and rangeText', () => {
  it('prints addresses in hex, counts in decimal and absent values as (none)', () => {
    expect(formatValue(0x1000n)).toBe('0x1000');
    expect(formatValue(4096n, 'memlock')).toBe('4096');
    expect(formatValue(0x40000, 'pfn')).toBe('0x40000');
    expect(formatValue(12, 'npinned')).toBe('12');
    expect(formatValue(undefined)).toBe('(none)');
    expect(formatValue([1n, 2n])).toBe('[0x1, 0x2]');
    expect(rangeText({ unit: 'index', first: 3, last: 3 })).toBe('index 3');
    expect(rangeText({ unit: 'iova', first: 0x1000n, last: 0x1fffn })).toBe('iova 0x1000..0x1fff');
  });
});
