import { describe, expect, it } from 'vitest';
import { EFAULT } from '../../../src/machine/errno.js';
import { mmap, vaToPfn } from '../../../src/machine/memory.js';
import { createProcess, exitProcess, mmgetNotZero } from '../../../src/machine/mm.js';
import { KTHREAD } from '../../../src/machine/sim.js';
import { userCopy } from '../../../src/machine/user-copy.js';
import { eventsOf, expectRebuildEqual, world } from '../../support/world.js';

const VA = 0x7f0000000000n;
const VPN = Number(VA / 4096n);

function setup() {
  const h = world([], { merged: true });
  createProcess(h.sim, '1', { uid: 1000, memlock: 65536n, capIpcLock: false });
  createProcess(h.sim, '2', { uid: 1000, memlock: 65536n, capIpcLock: false });
  h.sim.current = KTHREAD;
  return h;
}

describe('userCopy', () => {
  it('copies to and back from a borrowed mm across a page boundary', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 2n * 4096n, { huge: '4K', writable: true });
    expect(userCopy(h.sim, 1, VA + 4095n, new Uint8Array([5, 6, 7]), true)).toBe(0);
    const back = new Uint8Array(4);
    expect(userCopy(h.sim, 1, VA + 4094n, back, false)).toBe(0);
    expect(back).toEqual(new Uint8Array([0, 5, 6, 7]));
    expectRebuildEqual(h);
  });

  it('fails with -EFAULT writing a read-only VMA and reading past the mapping, after copying what it could', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, { huge: '4K', writable: false });
    expect(userCopy(h.sim, 1, VA, new Uint8Array([1]), true)).toBe(-EFAULT);
    const back = new Uint8Array([9, 9, 9]);
    expect(userCopy(h.sim, 1, VA + 4094n, back, false)).toBe(-EFAULT);
    expect(back).toEqual(new Uint8Array([0, 0, 9]));
    expect(eventsOf(h.sink, 'MemoryWritten')).toEqual([]);
  });

  it('breaks COW of a shared page on copy_to_user', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, { huge: '4K', writable: true, pfns: [[0x50000, 1]] });
    mmap(h.sim, '2', VA, 4096n, { huge: '4K', writable: true, pfns: [[0x50000, 1]] });
    expect(userCopy(h.sim, 2, VA, new Uint8Array([1]), true)).toBe(0);
    expect(eventsOf(h.sink, 'CowBroken').map((e) => [e.mm, e.oldPfn, e.newPfn, e.fn])).toEqual([
      [2, 0x50000, 0x50002, 'copy_to_user'],
    ]);
    expect(vaToPfn(h.sim.state, 2, VPN)).toBe(0x50002);
    expectRebuildEqual(h);
  });

  it('faults on an mm whose address space is gone', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, { huge: '4K', writable: true });
    exitProcess(h.sim, '1');
    expect(mmgetNotZero(h.sim, 1, 't')).toBe(false);
    expect(userCopy(h.sim, 1, VA, new Uint8Array(1), false)).toBe(-EFAULT);
    expect(h.sim.state.frames.count).toBe(0);
  });
});
