// SPDX-License-Identifier: GPL-2.0-only
/**
 * Version 4 traces: allocation and mapping events carry bounded lists of PFN runs (at most
 * `sim.runsPerEvent` runs each, split when longer) where versions 1 to 3 emit one FramesAllocated per
 * block and one VmaMapped of any length. The state they build is the same, digest included.
 */
import { describe, expect, it } from 'vitest';
import { rangeGet, rangeSegments } from '../../../src/structures/range-map.js';
import { cpuWrite, mmap, readPhys, vaToPfn, writePhys } from '../../../src/machine/memory.js';
import { memfdCreate } from '../../../src/machine/memfd.js';
import { createProcess } from '../../../src/machine/mm.js';
import type { Event } from '../../../src/events/events.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { eventsOf, expectRebuildEqual, world } from '../../support/world.js';
import type { World } from '../../support/world.js';

const VA = 0x7f0000000000n;
const VPN = Number(VA / 4096n);
const RW = { huge: '4K', writable: true } as const;
const F = FIRST_PFN;

/** A world with one process, allocating in runs of at most `runsPerEvent` (null: versions 1 to 3). */
function oneProcess(runsPerEvent: number | null): World {
  const h = world([], { merged: true });
  h.sim.runsPerEvent = runsPerEvent;
  createProcess(h.sim, '1', { uid: 1000, memlock: 65536n, capIpcLock: false });
  h.sim.current = { pid: '1', mm: 1 };
  return h;
}

const memoryEvents = (h: World): Event[] =>
  h.sink.events.filter(
    (e) => e.type === 'FrameRunsAllocated' || e.type === 'FramesAllocated' || e.type === 'VmaMapped',
  );

describe('allocation in PFN runs (version 4)', () => {
  it('splits a scattered mmap of 5 pages into events of at most 2 runs', () => {
    const h = oneProcess(2);
    expect(mmap(h.sim, '1', VA, 5n * 4096n, RW)).toBe(0);
    const vma = { type: 'VmaMapped', v: 1, mm: 1, writable: true, huge: '4K' } as const;
    expect(memoryEvents(h)).toEqual([
      {
        type: 'FrameRunsAllocated',
        v: 1,
        huge: '4K',
        runs: [
          [F, 1],
          [F + 2, 1],
        ],
      },
      {
        type: 'FrameRunsAllocated',
        v: 1,
        huge: '4K',
        runs: [
          [F + 4, 1],
          [F + 6, 1],
        ],
      },
      { type: 'FrameRunsAllocated', v: 1, huge: '4K', runs: [[F + 8, 1]] },
      {
        ...vma,
        vpn: VPN,
        npages: 2,
        runs: [
          [F, 1],
          [F + 2, 1],
        ],
      },
      {
        ...vma,
        vpn: VPN + 2,
        npages: 2,
        runs: [
          [F + 4, 1],
          [F + 6, 1],
        ],
      },
      { ...vma, vpn: VPN + 4, npages: 1, runs: [[F + 8, 1]] },
    ]);
    // One VMA, as one VmaMapped would leave it.
    expect([...rangeSegments(h.sim.state.mms[1]!.vmas, VPN, 5)]).toHaveLength(1);
    expect(h.sim.state.nextPfn).toBe(F + 9);
    expectRebuildEqual(h);
  });

  it('builds the state, digest included, that versions 1 to 3 build from one event per block', () => {
    const runs = oneProcess(2);
    const blocks = oneProcess(null);
    for (const h of [runs, blocks]) {
      expect(mmap(h.sim, '1', VA, 4096n, RW)).toBe(0);
      expect(mmap(h.sim, '1', VA + (1n << 21n), 3n << 21n, { huge: '2M', writable: true })).toBe(0);
      expect(mmap(h.sim, '1', VA + (1n << 30n), 7n * 4096n, RW)).toBe(0);
      expect(memfdCreate(h.sim, '1', 'f', 5n * 4096n, '4K')).toBe(0);
    }
    expect(eventsOf(blocks, 'FramesAllocated')).toHaveLength(1 + 3 + 7 + 5);
    expect(eventsOf(runs, 'FramesAllocated')).toEqual([]);
    expect(eventsOf(runs, 'FrameRunsAllocated').map((e) => e.runs.length)).toEqual([1, 2, 1, 2, 2, 2, 1, 2, 2, 1]);
    expect(eventsOf(runs, 'FrameRunsAllocated')[1]?.runs).toEqual([
      [F + 512, 512],
      [F + 1536, 512],
    ]);
    expect(runs.sim.state).toEqual(blocks.sim.state);
    expectRebuildEqual(runs);
  });

  it('keeps a contiguous layout in one run, one event each', () => {
    const h = oneProcess(2);
    expect(mmap(h.sim, '1', VA, 5n * 4096n, { ...RW, pfns: [[0x50000, 5]] })).toBe(0);
    expect(memoryEvents(h)).toEqual([
      { type: 'FrameRunsAllocated', v: 1, huge: '4K', runs: [[0x50000, 5]] },
      { type: 'VmaMapped', v: 1, mm: 1, vpn: VPN, npages: 5, writable: true, huge: '4K', runs: [[0x50000, 5]] },
    ]);
    expectRebuildEqual(h);
  });

  it('gathers the holes of a given layout and allocates a PFN given twice once', () => {
    const h = oneProcess(2);
    expect(mmap(h.sim, '1', VA, 4096n, { ...RW, pfns: [[0x50001, 1]] })).toBe(0);
    const layout: [number, number][] = [
      [0x50000, 3],
      [0x50010, 1],
      [0x50020, 1],
      [0x50010, 1],
    ];
    expect(mmap(h.sim, '1', VA + 0x10000n, 6n * 4096n, { ...RW, pfns: layout })).toBe(0);
    // 0x50001 is live: the holes around it; the second 0x50010 overlaps a hole not yet emitted, so the
    // holes gathered so far go first and it finds a live frame.
    expect(eventsOf(h, 'FrameRunsAllocated').map((e) => e.runs)).toEqual([
      [[0x50001, 1]],
      [
        [0x50000, 1],
        [0x50002, 1],
      ],
      [
        [0x50010, 1],
        [0x50020, 1],
      ],
    ]);
    expect(rangeGet(h.sim.state.frames, 0x50010)?.maps).toBe(2);
    expect(vaToPfn(h.sim.state, 1, VPN + 16 + 5)).toBe(0x50010);
    expectRebuildEqual(h);
  });

  it('breaks copy-on-write of a huge page in one CowBroken of its run', () => {
    const huge = { huge: '2M', writable: true } as const;
    const worlds = [oneProcess(2), oneProcess(null)].map((h) => {
      createProcess(h.sim, '2', { uid: 1000, memlock: 65536n, capIpcLock: false });
      expect(mmap(h.sim, '1', VA, 1n << 21n, { ...huge, pfns: [[0x200, 512]] })).toBe(0);
      expect(mmap(h.sim, '2', VA, 1n << 21n, { ...huge, pfns: [[0x200, 512]] })).toBe(0);
      writePhys(h.sim, 0x203, 0, new Uint8Array([0xbb, 0xcc]));
      expect(cpuWrite(h.sim, '1', VA + 0x4000n, new Uint8Array([0xaa]))).toBe(0);
      return h;
    });
    const [runs, pages] = worlds as [World, World];
    const fresh = vaToPfn(runs.sim.state, 1, VPN) ?? 0;
    expect(eventsOf(runs, 'CowBroken')).toEqual([
      { type: 'CowBroken', v: 1, mm: 1, vpn: VPN, oldPfn: 0x200, newPfn: fresh, fn: 'do_wp_page', npages: 512 },
    ]);
    expect(eventsOf(pages, 'CowBroken')).toHaveLength(512);
    expect(runs.sim.state).toEqual(pages.sim.state);
    expect(rangeGet(runs.sim.state.frames, 0x200)?.maps).toBe(1);
    // The contents come along, page by page.
    expect([...readPhys(runs.sim.state, fresh + 3, 0, 2)]).toEqual([0xbb, 0xcc]);
    expect([...readPhys(runs.sim.state, fresh + 4, 0, 1)]).toEqual([0xaa]);
    expect(vaToPfn(runs.sim.state, 2, VPN + 511)).toBe(0x200 + 511);
    expectRebuildEqual(runs);
  });
});
