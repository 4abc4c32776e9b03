import { describe, expect, it } from 'vitest';
import { rangeGet } from '../../../src/structures/range-map.js';
import { pinUserPagesFast, unpinUserPages } from '../../../src/machine/gup.js';
import { mmap } from '../../../src/machine/memory.js';
import {
  createProcess,
  currentMm,
  exitProcess,
  mmdrop,
  mmget,
  mmgetNotZero,
  mmgrab,
  mmput,
  rlimitMemlockPages,
  setRlimit,
} from '../../../src/machine/mm.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { eventsOf, expectRebuildEqual, world } from '../../support/world.js';

const VA = 0x7f0000000000n;
const RW = { huge: '4K', writable: true } as const;

function withProcess(memlock: bigint | null = 65536n) {
  const h = world([], { merged: true });
  createProcess(h.sim, '1', { uid: 1000, memlock, capIpcLock: false });
  const mm = h.sim.state.processes['1']?.mm ?? -1;
  h.sim.current = { pid: '1', mm };
  return { ...h, mm };
}

describe('createProcess', () => {
  it('gives the process a fresh mm with mm_users 1 and mm_count 1', () => {
    const h = withProcess();
    expect(h.mm).toBe(1);
    expect(h.sim.state.mms[1]).toMatchObject({ id: 1, pid: '1', users: 1, count: 1, lockedVm: 0, pinnedVm: 0 });
    expect(h.sim.state.users[1000]).toEqual({ uid: 1000, lockedVm: 0 });
    expect(currentMm(h.sim)).toBe(1);
    expectRebuildEqual(h);
  });

  it('numbers the mm of a second process after the first', () => {
    const h = withProcess();
    createProcess(h.sim, '2', { uid: 1000, memlock: null, capIpcLock: true });
    expect(h.sim.state.processes['2']).toMatchObject({ mm: 2, memlock: null, capIpcLock: true, exited: false });
    expectRebuildEqual(h);
  });
});

describe('rlimitMemlockPages', () => {
  it('is RLIMIT_MEMLOCK >> PAGE_SHIFT: 65536 bytes are 16 pages, then 8 after setrlimit(32768)', () => {
    const h = withProcess();
    expect(rlimitMemlockPages(h.sim, '1')).toBe(16);
    setRlimit(h.sim, '1', 32768n);
    expect(rlimitMemlockPages(h.sim, '1')).toBe(8);
    setRlimit(h.sim, '1', null);
    expect(rlimitMemlockPages(h.sim, '1')).toBe(Infinity);
    expectRebuildEqual(h);
  });
});

describe('exitProcess', () => {
  it('tears the address space down: unpinned frames are freed, the pinned one stays with 0 maps', () => {
    const h = withProcess();
    expect(mmap(h.sim, '1', VA, 3n * 4096n, RW)).toBe(0);
    const out = { slots: [] as number[] };
    expect(pinUserPagesFast(h.sim, VA + 4096n, 1, { write: true, longterm: true, force: false }, out, 0)).toBe(1);
    expect(out.slots).toEqual([FIRST_PFN + 2]);

    exitProcess(h.sim, '1');
    const s = h.sim.state;
    expect(s.processes['1']?.exited).toBe(true);
    expect(s.mms[1]).toMatchObject({ users: 0, count: 0 });
    expect(rangeGet(s.frames, FIRST_PFN)).toBeUndefined();
    expect(rangeGet(s.frames, FIRST_PFN + 4)).toBeUndefined();
    expect(rangeGet(s.frames, FIRST_PFN + 2)).toEqual({ pins: 1, maps: 0, huge: '4K', dirty: false });
    expect(s.mms[1]?.vmas.count).toBe(0);
    expect(s.mms[1]?.pt.count).toBe(0);
    expect(eventsOf(h.sink, 'VmaUnmapped')).toEqual([
      { type: 'VmaUnmapped', v: 1, mm: 1, vpn: Number(VA / 4096n), npages: 3 },
    ]);
    expect(mmgetNotZero(h.sim, 1, 'test')).toBe(false);

    // The last pin frees the frame nobody maps any more.
    unpinUserPages(h.sim, [FIRST_PFN + 2], 'test');
    expect(rangeGet(s.frames, FIRST_PFN + 2)).toBeUndefined();
    expect(s.frames.count).toBe(0);
    expectRebuildEqual(h);
  });

  it('leaves the address space to a holder of mmget until its mmput', () => {
    const h = withProcess();
    mmap(h.sim, '1', VA, 4096n, RW);
    expect(mmgetNotZero(h.sim, 1, 'holder')).toBe(true);
    exitProcess(h.sim, '1');
    expect(h.sim.state.mms[1]).toMatchObject({ users: 1, count: 1 });
    expect(rangeGet(h.sim.state.frames, FIRST_PFN)?.maps).toBe(1);
    mmput(h.sim, 1, 'holder');
    expect(h.sim.state.mms[1]).toMatchObject({ users: 0, count: 0 });
    expect(h.sim.state.frames.count).toBe(0);
    expectRebuildEqual(h);
  });

  it('keeps the mm struct while an mmgrab reference is held', () => {
    const h = withProcess();
    mmgrab(h.sim, 1, 'iopt_alloc_pages');
    exitProcess(h.sim, '1');
    expect(h.sim.state.mms[1]).toMatchObject({ users: 0, count: 1 });
    mmdrop(h.sim, 1, 'iopt_release_pages');
    expect(h.sim.state.mms[1]).toMatchObject({ users: 0, count: 0 });
    expect(h.sim.state.counts.violations).toBe(0);
    expectRebuildEqual(h);
  });

  it('does nothing for a process that has already exited', () => {
    const h = withProcess();
    exitProcess(h.sim, '1');
    const n = h.sink.events.length;
    exitProcess(h.sim, '1');
    expect(h.sink.events.length).toBe(n);
  });
});

describe('mmput', () => {
  it('reports mmput_underflow on an mm whose users are gone and drives mm_users to -1', () => {
    const h = withProcess();
    mmgrab(h.sim, 1, 'iopt_alloc_pages');
    exitProcess(h.sim, '1');
    const before = h.sink.events.length;
    mmput(h.sim, 1, 'pfn_reader_user_destroy');
    expect(h.sink.events.slice(before)).toEqual([
      {
        type: 'ViolationDetected',
        v: 1,
        kind: 'mmput_underflow',
        fn: 'pfn_reader_user_destroy',
        detail: 'mmput of mm 1 with mm_users 0',
        objects: { mm: 1, users: 0 },
      },
      { type: 'MmPut', v: 1, mm: 1, fn: 'pfn_reader_user_destroy' },
    ]);
    expect(h.sim.state.mms[1]).toMatchObject({ users: -1, count: 1 });
    expect(h.sim.state.counts.violations).toBe(1);
    expectRebuildEqual(h);
  });

  it('pairs with mmget without a finding', () => {
    const h = withProcess();
    mmget(h.sim, 1, 'a');
    mmput(h.sim, 1, 'a');
    expect(h.sim.state.mms[1]).toMatchObject({ users: 1, count: 1 });
    expect(h.sim.state.counts.violations).toBe(0);
    expectRebuildEqual(h);
  });
});

describe('mmdrop', () => {
  it('reports mmdrop_underflow below zero, and a later mmgrab of the freed struct as use_after_free', () => {
    const h = withProcess();
    exitProcess(h.sim, '1');
    mmdrop(h.sim, 1, 'iopt_release_pages');
    expect(h.sim.state.mms[1]?.count).toBe(-1);
    mmgrab(h.sim, 1, 'iopt_alloc_pages');
    expect(eventsOf(h.sink, 'ViolationDetected').map((v) => [v.kind, v.fn])).toEqual([
      ['mmdrop_underflow', 'iopt_release_pages'],
      ['use_after_free', 'iopt_alloc_pages'],
    ]);
    expectRebuildEqual(h);
  });
});
