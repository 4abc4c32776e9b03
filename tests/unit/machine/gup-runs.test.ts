// SPDX-License-Identifier: GPL-2.0-only
/**
 * Version 4 pins (sim.runsPerEvent set): a pin or unpin call reports its PFN runs in PagesPinnedRuns /
 * PagesUnpinnedRuns lists of at most runsPerEvent runs, in order, where versions 1 to 3 emit one event per
 * run; a double unpin still gets its violation after the runs unpinned before it, and the state is the same.
 */
import { describe, expect, it } from 'vitest';
import { rangeGet } from '../../../src/structures/range-map.js';
import { pinUserPagesFast, unpinUserPageRangeDirtyLock, unpinUserPages } from '../../../src/machine/gup.js';
import type { GupFlags } from '../../../src/machine/gup.js';
import { mmap } from '../../../src/machine/memory.js';
import { createProcess } from '../../../src/machine/mm.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { expectRebuildEqual, world } from '../../support/world.js';

const VA = 0x7f0000000000n;
const F = FIRST_PFN;
const WRITE: GupFlags = { write: true, longterm: true, force: false };

function setup(runsPerEvent: number | null) {
  const h = world([], { merged: true });
  h.sim.runsPerEvent = runsPerEvent;
  createProcess(h.sim, '1', { uid: 1000, memlock: 65536n, capIpcLock: false });
  h.sim.current = { pid: '1', mm: 1 };
  // Five 4K pages, each its own block: five runs F, F+2, ..., F+8.
  mmap(h.sim, '1', VA, 5n * 4096n, { huge: '4K', writable: true });
  return h;
}

/** The pin, unpin and violation events from the `from`-th event of the log on. */
const pinEvents = (h: ReturnType<typeof setup>, from = 0) =>
  h.sink.events
    .slice(from)
    .filter((e) => (e.type.startsWith('Pages') && e.type.includes('inned')) || e.type === 'ViolationDetected');

describe('pins in run lists (trace version 4)', () => {
  it('pins five runs in lists of at most two runs, in order', () => {
    const h = setup(2);
    const out = { slots: [] as number[] };
    expect(pinUserPagesFast(h.sim, VA, 5, WRITE, out, 0)).toBe(5);
    const fn = 'pin_user_pages_fast';
    expect(pinEvents(h)).toEqual([
      {
        type: 'PagesPinnedRuns',
        v: 1,
        runs: [
          [F, 1],
          [F + 2, 1],
        ],
        npages: 2,
        fn,
        mm: 1,
      },
      {
        type: 'PagesPinnedRuns',
        v: 1,
        runs: [
          [F + 4, 1],
          [F + 6, 1],
        ],
        npages: 2,
        fn,
        mm: 1,
      },
      { type: 'PagesPinnedRuns', v: 1, runs: [[F + 8, 1]], npages: 1, fn, mm: 1 },
    ]);
    expect(rangeGet(h.sim.state.frames, F + 6)?.pins).toBe(1);
    expectRebuildEqual(h);
  });

  it('unpins in lists, reporting the runs before a double unpin ahead of its violation', () => {
    const h = setup(4);
    pinUserPagesFast(h.sim, VA, 2, WRITE, { slots: [] }, 0);
    const from = h.sink.events.length;
    // F and F+2 hold a pin, F+4 none; F again after its pin is gone is a second double unpin.
    unpinUserPages(h.sim, [F, F + 2, F + 4, F], 'test');
    expect(
      pinEvents(h, from).map((e) =>
        e.type === 'ViolationDetected' ? [e.kind, e.objects] : [e.type, 'runs' in e ? e.runs : null],
      ),
    ).toEqual([
      [
        'PagesUnpinnedRuns',
        [
          [F, 1],
          [F + 2, 1],
        ],
      ],
      ['double_unpin', { pfn: F + 4, count: 1 }],
      ['double_unpin', { pfn: F, count: 1 }],
    ]);
    expect(rangeGet(h.sim.state.frames, F)?.pins).toBe(0);
    expectRebuildEqual(h);
  });

  it('reports the pending runs before a later run of the same call reads the same frames', () => {
    const h = setup(4);
    pinUserPagesFast(h.sim, VA, 2, WRITE, { slots: [] }, 0);
    pinUserPagesFast(h.sim, VA, 1, WRITE, { slots: [] }, 0);
    const from = h.sink.events.length;
    // F holds two pins, F+2 one: the second F must see the first one's unpin, so the list ends before it.
    unpinUserPages(h.sim, [F, F + 2, F], 'test');
    expect(pinEvents(h, from).map((e) => [e.type, 'runs' in e ? e.runs : null])).toEqual([
      [
        'PagesUnpinnedRuns',
        [
          [F, 1],
          [F + 2, 1],
        ],
      ],
      ['PagesUnpinnedRuns', [[F, 1]]],
    ]);
    expect(rangeGet(h.sim.state.frames, F)?.pins).toBe(0);
    expectRebuildEqual(h);
  });

  it('emits one PagesUnpinned per run without runsPerEvent (versions 1 to 3)', () => {
    const h = setup(null);
    pinUserPagesFast(h.sim, VA, 2, WRITE, { slots: [] }, 0);
    const from = h.sink.events.length;
    unpinUserPageRangeDirtyLock(h.sim, F, 1, true, 'test');
    expect(pinEvents(h, from)).toEqual([{ type: 'PagesUnpinned', v: 1, pfn: F, count: 1, dirty: true, fn: 'test' }]);
  });
});
