import { describe, expect, it } from 'vitest';
import { rangeGet } from '../../../src/structures/range-map.js';
import { EFAULT, EINVAL, ESRCH } from '../../../src/machine/errno.js';
import { pinUserPagesFast } from '../../../src/machine/gup.js';
import { cpuRead, cpuWrite, mmap, munmap, readPhys, vaToPfn, writePhys } from '../../../src/machine/memory.js';
import { createProcess, exitProcess } from '../../../src/machine/mm.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import { eventsOf, expectRebuildEqual, when, world } from '../../support/world.js';

const VA = 0x7f0000000000n;
const VPN = Number(VA / 4096n);
const MiB2 = 1n << 21n;
const RW = { huge: '4K', writable: true } as const;
const F = FIRST_PFN;

function twoProcesses() {
  const h = world([], { merged: true });
  createProcess(h.sim, '1', { uid: 1000, memlock: 65536n, capIpcLock: false });
  createProcess(h.sim, '2', { uid: 1000, memlock: 65536n, capIpcLock: false });
  h.sim.current = { pid: '1', mm: 1 };
  return h;
}

const bytes = (...b: number[]) => new Uint8Array(b);

describe('mmap', () => {
  it('gives 4K pages PFNs with a gap between each: F, F+2, F+4', () => {
    const h = twoProcesses();
    expect(mmap(h.sim, '1', VA, 3n * 4096n, RW)).toBe(0);
    expect([0, 1, 2].map((i) => vaToPfn(h.sim.state, 1, VPN + i))).toEqual([F, F + 2, F + 4]);
    expect(rangeGet(h.sim.state.frames, F + 1)).toBeUndefined();
    expect(rangeGet(h.sim.state.frames, F + 2)).toEqual({ pins: 0, maps: 1, huge: '4K', dirty: false });
    expect(eventsOf(h.sink, 'VmaMapped')).toEqual([
      {
        type: 'VmaMapped',
        v: 1,
        mm: 1,
        vpn: VPN,
        npages: 3,
        writable: true,
        huge: '4K',
        runs: [
          [F, 1],
          [F + 2, 1],
          [F + 4, 1],
        ],
      },
    ]);
    expect(h.sim.state.nextPfn).toBe(F + 5);
    expectRebuildEqual(h);
  });

  it('places each 2M page on a 512-PFN boundary, never adjacent to the block below', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 4096n, RW);
    expect(mmap(h.sim, '1', VA + MiB2, 2n * MiB2, { huge: '2M', writable: true })).toBe(0);
    const base = VPN + 512;
    expect(vaToPfn(h.sim.state, 1, base)).toBe(F + 512);
    expect(vaToPfn(h.sim.state, 1, base + 511)).toBe(F + 1023);
    // F+1023 is live, so the next block starts above F+1024 and rounds up to F+1536.
    expect(vaToPfn(h.sim.state, 1, base + 512)).toBe(F + 1536);
    expect(rangeGet(h.sim.state.frames, F + 700)).toEqual({ pins: 0, maps: 1, huge: '2M', dirty: false });
    expect(eventsOf(h.sink, 'FramesAllocated').map((e) => [e.pfn, e.count, e.huge])).toEqual([
      [F, 1, '4K'],
      [F + 512, 512, '2M'],
      [F + 1536, 512, '2M'],
    ]);
    expectRebuildEqual(h);
  });

  it('rejects an unaligned address and a zero length with -EINVAL, and rounds the length up to pages', () => {
    const h = twoProcesses();
    const rejected = when(h, () => [
      mmap(h.sim, '1', VA + 1n, 4096n, RW),
      mmap(h.sim, '1', VA, 0n, RW),
      mmap(h.sim, '1', VA + 4096n, MiB2, { huge: '2M', writable: true }),
    ]);
    expect(rejected.result).toEqual([-EINVAL, -EINVAL, -EINVAL]);
    expect(rejected.events).toEqual([]);
    expect(mmap(h.sim, '1', VA, 5000n, RW)).toBe(0);
    expect(h.sim.state.mms[1]?.vmas.count).toBe(2);
    expectRebuildEqual(h);
  });

  it('uses given PFN runs exactly and shares frames that are already live', () => {
    const h = twoProcesses();
    expect(mmap(h.sim, '1', VA, 2n * 4096n, { ...RW, pfns: [[0x50000, 2]] })).toBe(0);
    expect(mmap(h.sim, '2', VA, 3n * 4096n, { ...RW, pfns: [[0x4ffff, 3]] })).toBe(0);
    expect(eventsOf(h.sink, 'FramesAllocated').map((e) => [e.pfn, e.count])).toEqual([
      [0x50000, 2],
      [0x4ffff, 1],
    ]);
    expect(rangeGet(h.sim.state.frames, 0x4ffff)?.maps).toBe(1);
    expect(rangeGet(h.sim.state.frames, 0x50000)?.maps).toBe(2);
    expect(rangeGet(h.sim.state.frames, 0x50001)?.maps).toBe(2);
    expect(vaToPfn(h.sim.state, 2, VPN + 1)).toBe(0x50000);
    expectRebuildEqual(h);
  });

  it('refuses a layout with the wrong page count, a misaligned huge page or PFN 0', () => {
    const h = twoProcesses();
    expect(mmap(h.sim, '1', VA, 2n * 4096n, { ...RW, pfns: [[0x50000, 3]] })).toBe(-EINVAL);
    expect(mmap(h.sim, '1', VA, MiB2, { huge: '2M', writable: true, pfns: [[0x50100, 512]] })).toBe(-EINVAL);
    expect(mmap(h.sim, '1', VA, 4096n, { ...RW, pfns: [[0, 1]] })).toBe(-EINVAL);
    expect(
      mmap(h.sim, '1', VA, 2n * MiB2, {
        huge: '2M',
        writable: true,
        pfns: [
          [0x50000, 512],
          [0x50200, 512],
        ],
      }),
    ).toBe(0);
    expect(vaToPfn(h.sim.state, 1, VPN + 1023)).toBe(0x503ff);
    expectRebuildEqual(h);
  });

  it('replaces an existing mapping in the range as MAP_FIXED does', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 2n * 4096n, RW);
    expect(mmap(h.sim, '1', VA + 4096n, 2n * 4096n, { huge: '4K', writable: false })).toBe(0);
    expect(eventsOf(h.sink, 'VmaUnmapped')).toEqual([{ type: 'VmaUnmapped', v: 1, mm: 1, vpn: VPN + 1, npages: 1 }]);
    expect(rangeGet(h.sim.state.frames, F + 2)).toBeUndefined();
    expect([0, 1, 2].map((i) => vaToPfn(h.sim.state, 1, VPN + i))).toEqual([F, F + 4, F + 6]);
    expect(rangeGet(h.sim.state.mms[1]!.vmas, VPN + 1)).toEqual({ writable: false, huge: '4K' });
    expectRebuildEqual(h);
  });
});

describe('munmap', () => {
  it('frees unpinned frames and keeps a pinned one alive with no map', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 2n * 4096n, RW);
    pinUserPagesFast(h.sim, VA, 1, { write: true, longterm: true, force: false }, { slots: [] }, 0);
    expect(munmap(h.sim, '1', VA, 2n * 4096n)).toBe(0);
    expect(rangeGet(h.sim.state.frames, F)).toEqual({ pins: 1, maps: 0, huge: '4K', dirty: false });
    expect(rangeGet(h.sim.state.frames, F + 2)).toBeUndefined();
    expect(vaToPfn(h.sim.state, 1, VPN)).toBeUndefined();
    expect(munmap(h.sim, '1', VA, 4096n)).toBe(0);
    expectRebuildEqual(h);
  });

  it('refuses to cut a 2M page with -EINVAL', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, MiB2, { huge: '2M', writable: true });
    const n = h.sink.events.length;
    expect(munmap(h.sim, '1', VA + 4096n, 4096n)).toBe(-EINVAL);
    expect(munmap(h.sim, '1', VA, 4096n)).toBe(-EINVAL);
    expect(munmap(h.sim, '1', VA + 1n, 4096n)).toBe(-EINVAL);
    expect(munmap(h.sim, '1', VA, 0n)).toBe(-EINVAL);
    expect(h.sink.events.length).toBe(n);
    expect(munmap(h.sim, '1', VA, MiB2)).toBe(0);
    expect(h.sim.state.frames.count).toBe(0);
    expectRebuildEqual(h);
  });
});

describe('cpuWrite and cpuRead', () => {
  it('reads fresh memory as zeros and reads back a write that crosses a page boundary', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 2n * 4096n, RW);
    expect(cpuRead(h.sim, '1', VA + 4094n, 4n)).toEqual({ rc: 0, data: bytes(0, 0, 0, 0) });
    expect(cpuWrite(h.sim, '1', VA + 4094n, bytes(1, 2, 3, 4))).toBe(0);
    expect(eventsOf(h.sink, 'MemoryWritten')).toEqual([
      { type: 'MemoryWritten', v: 1, pfn: F, offset: 4094, data: '0102' },
      { type: 'MemoryWritten', v: 1, pfn: F + 2, offset: 0, data: '0304' },
    ]);
    expect(cpuRead(h.sim, '1', VA + 4093n, 6n)).toEqual({ rc: 0, data: bytes(0, 1, 2, 3, 4, 0) });
    expect(readPhys(h.sim.state, F + 2, 0, 3)).toEqual(bytes(3, 4, 0));
    expectRebuildEqual(h);
  });

  it('faults with -EFAULT on a read-only VMA and on unmapped memory, after writing the pages before', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 4096n, RW);
    mmap(h.sim, '1', VA + 4096n, 4096n, { huge: '4K', writable: false });
    expect(cpuWrite(h.sim, '1', VA + 4095n, bytes(9, 9))).toBe(-EFAULT);
    expect(readPhys(h.sim.state, F, 4095, 1)).toEqual(bytes(9));
    expect(cpuRead(h.sim, '1', VA + 4096n, 1n)).toEqual({ rc: 0, data: bytes(0) });
    expect(cpuRead(h.sim, '1', VA + 8191n, 2n)).toEqual({ rc: -EFAULT, data: bytes() });
    expect(cpuWrite(h.sim, '1', VA - 1n, bytes(1))).toBe(-EFAULT);
    expectRebuildEqual(h);
  });

  it('breaks COW on a write to a frame mapped twice: the writer gets a copy, the other keeps the old data', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 4096n, { ...RW, pfns: [[0x50000, 1]] });
    cpuWrite(h.sim, '1', VA, bytes(0xaa, 0xbb));
    mmap(h.sim, '2', VA, 4096n, { ...RW, pfns: [[0x50000, 1]] });
    expect(rangeGet(h.sim.state.frames, 0x50000)?.maps).toBe(2);

    expect(cpuWrite(h.sim, '1', VA + 1n, bytes(0xcc))).toBe(0);
    expect(eventsOf(h.sink, 'CowBroken')).toEqual([
      { type: 'CowBroken', v: 1, mm: 1, vpn: VPN, oldPfn: 0x50000, newPfn: 0x50002, fn: 'do_wp_page' },
    ]);
    expect(vaToPfn(h.sim.state, 1, VPN)).toBe(0x50002);
    expect(vaToPfn(h.sim.state, 2, VPN)).toBe(0x50000);
    expect(rangeGet(h.sim.state.frames, 0x50000)?.maps).toBe(1);
    expect(cpuRead(h.sim, '1', VA, 2n).data).toEqual(bytes(0xaa, 0xcc));
    expect(cpuRead(h.sim, '2', VA, 2n).data).toEqual(bytes(0xaa, 0xbb));

    // The old frame is exclusive to process 2 now: its write stays in place.
    expect(cpuWrite(h.sim, '2', VA, bytes(1))).toBe(0);
    expect(vaToPfn(h.sim.state, 2, VPN)).toBe(0x50000);
    expect(eventsOf(h.sink, 'CowBroken')).toHaveLength(1);
    expectRebuildEqual(h);
  });

  it('answers -ESRCH for a process that has exited', () => {
    const h = twoProcesses();
    mmap(h.sim, '1', VA, 4096n, RW);
    exitProcess(h.sim, '1');
    expect(cpuWrite(h.sim, '1', VA, bytes(1))).toBe(-ESRCH);
    expect(cpuRead(h.sim, '1', VA, 1n).rc).toBe(-ESRCH);
    expect(mmap(h.sim, '1', VA, 4096n, RW)).toBe(-ESRCH);
    expect(munmap(h.sim, '1', VA, 4096n)).toBe(-ESRCH);
    expectRebuildEqual(h);
  });
});

describe('writePhys', () => {
  it('reports a write to a frame that is not allocated as use_after_free', () => {
    const h = twoProcesses();
    writePhys(h.sim, 0x60000, 8, bytes(7));
    expect(eventsOf(h.sink, 'ViolationDetected').map((v) => [v.kind, v.objects])).toEqual([
      ['use_after_free', { pfn: 0x60000, offset: 8, length: 1 }],
    ]);
    expect(readPhys(h.sim.state, 0x60000, 8, 1)).toEqual(bytes(7));
    expectRebuildEqual(h);
  });
});
