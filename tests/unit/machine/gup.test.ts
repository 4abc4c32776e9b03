import { describe, expect, it } from 'vitest';
import { rangeGet } from '../../../src/structures/range-map.js';
import { EFAULT, EOVERFLOW } from '../../../src/machine/errno.js';
import {
  pinUserPagesFast,
  pinUserPagesRemote,
  unpinUserPageRangeDirtyLock,
  unpinUserPages,
} from '../../../src/machine/gup.js';
import type { GupFlags } from '../../../src/machine/gup.js';
import { cpuWrite, mmap, vaToPfn } from '../../../src/machine/memory.js';
import { createProcess } from '../../../src/machine/mm.js';
import { KTHREAD } from '../../../src/machine/sim.js';
import { FIRST_PFN } from '../../../src/state/state.js';
import type { RunConfig } from '../../../src/state/state.js';
import { eventsOf, expectRebuildEqual, world } from '../../support/world.js';

const VA = 0x7f0000000000n;
const VPN = Number(VA / 4096n);
const F = FIRST_PFN;
const RW = { huge: '4K', writable: true } as const;
const WRITE: GupFlags = { write: true, longterm: true, force: false };
const RO: GupFlags = { write: false, longterm: true, force: false };

function setup(opts: { flags?: string[]; config?: Partial<RunConfig> } = {}) {
  const h = world(opts.flags ?? [], { merged: true, ...opts.config });
  createProcess(h.sim, '1', { uid: 1000, memlock: 65536n, capIpcLock: false });
  createProcess(h.sim, '2', { uid: 1000, memlock: 65536n, capIpcLock: false });
  h.sim.current = { pid: '1', mm: 1 };
  return h;
}

const pins = (h: ReturnType<typeof setup>, pfn: number) => rangeGet(h.sim.state.frames, pfn)?.pins;

describe('pinUserPagesFast', () => {
  it('pins each page once, fills the slots from `at`, and logs one PagesPinned per PFN run', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 3n * 4096n, RW);
    const out = { slots: [7, 7] };
    expect(pinUserPagesFast(h.sim, VA, 3, WRITE, out, 2)).toBe(3);
    expect(out.slots).toEqual([7, 7, F, F + 2, F + 4]);
    expect([F, F + 2, F + 4].map((p) => pins(h, p))).toEqual([1, 1, 1]);
    expect(eventsOf(h.sink, 'PagesPinned')).toEqual([
      { type: 'PagesPinned', v: 1, pfn: F, count: 1, fn: 'pin_user_pages_fast', mm: 1 },
      { type: 'PagesPinned', v: 1, pfn: F + 2, count: 1, fn: 'pin_user_pages_fast', mm: 1 },
      { type: 'PagesPinned', v: 1, pfn: F + 4, count: 1, fn: 'pin_user_pages_fast', mm: 1 },
    ]);
    expectRebuildEqual(h);
  });

  it('pins a 2M page as one run of 512 PFNs', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 1n << 21n, { huge: '2M', writable: true });
    const out = { slots: [] as number[] };
    expect(pinUserPagesFast(h.sim, VA, 512, WRITE, out, 0)).toBe(512);
    expect(out.slots[511]).toBe(F + 511);
    expect(eventsOf(h.sink, 'PagesPinned')).toEqual([
      { type: 'PagesPinned', v: 1, pfn: F, count: 512, fn: 'pin_user_pages_fast', mm: 1 },
    ]);
    expect(rangeGet(h.sim.state.frames, F + 300)).toEqual({ pins: 1, maps: 1, huge: '2M', dirty: false });
    expectRebuildEqual(h);
  });

  it('returns 0 for npages 0, and -EFAULT for a kernel thread (no mm)', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, RW);
    expect(pinUserPagesFast(h.sim, VA, 0, WRITE, { slots: [] }, 0)).toBe(0);
    h.sim.current = KTHREAD;
    expect(pinUserPagesFast(h.sim, VA, 1, WRITE, { slots: [] }, 0)).toBe(-EFAULT);
    expect(eventsOf(h.sink, 'PagesPinned')).toEqual([]);
  });

  it('stops at the first unmapped page: -EFAULT if it is the first, else the count pinned', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 2n * 4096n, RW);
    expect(pinUserPagesFast(h.sim, VA - 4096n, 3, WRITE, { slots: [] }, 0)).toBe(-EFAULT);
    const out = { slots: [] as number[] };
    expect(pinUserPagesFast(h.sim, VA + 4096n, 5, WRITE, out, 0)).toBe(1);
    expect(out.slots).toEqual([F + 2]);
    expect([pins(h, F), pins(h, F + 2)]).toEqual([0, 1]);
    expectRebuildEqual(h);
  });

  it('refuses FOLL_WRITE on a read-only VMA unless FOLL_FORCE', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, { huge: '4K', writable: false });
    expect(pinUserPagesFast(h.sim, VA, 1, WRITE, { slots: [] }, 0)).toBe(-EFAULT);
    expect(pinUserPagesFast(h.sim, VA, 1, RO, { slots: [] }, 0)).toBe(1);
    expect(pinUserPagesFast(h.sim, VA, 1, { ...WRITE, force: true }, { slots: [] }, 0)).toBe(1);
    expect(pins(h, F)).toBe(2);
    expectRebuildEqual(h);
  });

  it('returns 0 for a range that wraps 2^64 before the mm fix, -EOVERFLOW after it', () => {
    const top = (1n << 64n) - 4096n;
    const before = setup();
    expect(pinUserPagesFast(before.sim, top, 1, WRITE, { slots: [] }, 0)).toBe(0);
    expect(pinUserPagesFast(before.sim, top - 4096n, 2, WRITE, { slots: [] }, 0)).toBe(0);
    const after = setup({ config: { gupZeroOnOverflow: false } });
    expect(pinUserPagesFast(after.sim, top, 1, WRITE, { slots: [] }, 0)).toBe(-EOVERFLOW);
    // Ends just below 2^64: an ordinary unmapped range.
    expect(pinUserPagesFast(after.sim, top - 4096n, 1, WRITE, { slots: [] }, 0)).toBe(-EFAULT);
    expectRebuildEqual(after);
  });

  it('breaks COW for a write pin of a frame mapped twice and pins the new PFN', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 4096n, { ...RW, pfns: [[0x50000, 1]] });
    mmap(h.sim, '2', VA, 4096n, { ...RW, pfns: [[0x50000, 1]] });
    const out = { slots: [] as number[] };
    expect(pinUserPagesFast(h.sim, VA, 1, WRITE, out, 0)).toBe(1);
    expect(out.slots).toEqual([0x50002]);
    expect(vaToPfn(h.sim.state, 1, VPN)).toBe(0x50002);
    expect(rangeGet(h.sim.state.frames, 0x50002)).toEqual({ pins: 1, maps: 1, huge: '4K', dirty: false });
    expect(rangeGet(h.sim.state.frames, 0x50000)).toEqual({ pins: 0, maps: 1, huge: '4K', dirty: false });
    expect(eventsOf(h.sink, 'CowBroken').map((e) => [e.oldPfn, e.newPfn, e.fn])).toEqual([
      [0x50000, 0x50002, 'pin_user_pages_fast'],
    ]);
    expectRebuildEqual(h);
  });

  it('unshares a shared page for a read-only FOLL_LONGTERM pin only with gup-unshare-flags (ro_unshare)', () => {
    for (const [flags, pinned, afterWrite] of [
      [[], 0x50000, 0x50002],
      [['gup-unshare-flags'], 0x50002, 0x50002],
    ] as const) {
      const h = setup({ flags: [...flags] });
      mmap(h.sim, '1', VA, 4096n, { huge: '4K', writable: true, pfns: [[0x50000, 1]] });
      mmap(h.sim, '2', VA, 4096n, { huge: '4K', writable: true, pfns: [[0x50000, 1]] });
      const out = { slots: [] as number[] };
      expect(pinUserPagesFast(h.sim, VA, 1, RO, out, 0)).toBe(1);
      expect(out.slots).toEqual([pinned]);
      // A later CPU write must not move the VA away from the pinned page (it does without unsharing).
      cpuWrite(h.sim, '1', VA, new Uint8Array([1]));
      expect(vaToPfn(h.sim.state, 1, VPN)).toBe(afterWrite);
      expectRebuildEqual(h);
    }
  });
});

describe('pinUserPagesRemote', () => {
  it('pins from another mm and names that mm in the event', () => {
    const h = setup();
    mmap(h.sim, '2', VA, 4096n, RW);
    h.sim.current = KTHREAD;
    const out = { slots: [] as number[] };
    expect(pinUserPagesRemote(h.sim, 2, VA + 100n, 1, { write: false, longterm: false, force: false }, out, 0)).toBe(1);
    expect(out.slots).toEqual([F]);
    expect(eventsOf(h.sink, 'PagesPinned')).toEqual([
      { type: 'PagesPinned', v: 1, pfn: F, count: 1, fn: 'pin_user_pages_remote', mm: 2 },
    ]);
    expectRebuildEqual(h);
  });
});

describe('unpinUserPages', () => {
  it('drops one pin per entry, a repeated PFN twice, with one event per contiguous run', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 2n * 4096n, { ...RW, pfns: [[0x50000, 2]] });
    pinUserPagesFast(h.sim, VA, 2, WRITE, { slots: [] }, 0);
    pinUserPagesFast(h.sim, VA, 2, WRITE, { slots: [] }, 0);
    const from = h.sink.events.length;
    unpinUserPages(h.sim, [0x50000, 0x50001, 0x50000], 'test');
    expect(h.sink.events.slice(from)).toEqual([
      { type: 'PagesUnpinned', v: 1, pfn: 0x50000, count: 2, dirty: false, fn: 'test' },
      { type: 'PagesUnpinned', v: 1, pfn: 0x50000, count: 1, dirty: false, fn: 'test' },
    ]);
    expect([pins(h, 0x50000), pins(h, 0x50001)]).toEqual([0, 1]);
    expectRebuildEqual(h);
  });

  it('reports a double unpin with the PFN and unpins only the pages that held pins', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 3n * 4096n, { ...RW, pfns: [[0x50000, 3]] });
    pinUserPagesFast(h.sim, VA, 1, WRITE, { slots: [] }, 0);
    pinUserPagesFast(h.sim, VA + 8192n, 1, WRITE, { slots: [] }, 0);
    const from = h.sink.events.length;
    unpinUserPages(h.sim, [0x50000, 0x50001, 0x50002], 'iopt_pages_err_unpin');
    expect(h.sink.events.slice(from)).toEqual([
      { type: 'PagesUnpinned', v: 1, pfn: 0x50000, count: 1, dirty: false, fn: 'iopt_pages_err_unpin' },
      {
        type: 'ViolationDetected',
        v: 1,
        kind: 'double_unpin',
        fn: 'iopt_pages_err_unpin',
        detail: 'unpin of 1 page(s) at pfn 327681 that hold no pin',
        objects: { pfn: 0x50001, count: 1 },
      },
      { type: 'PagesUnpinned', v: 1, pfn: 0x50002, count: 1, dirty: false, fn: 'iopt_pages_err_unpin' },
    ]);
    expect(pins(h, 0x50001)).toBe(0);
    // A second unpin of a frame that is gone: nothing left to unpin.
    unpinUserPages(h.sim, [0x50000], 'test');
    expect(eventsOf(h.sink, 'ViolationDetected').map((v) => v.objects)).toEqual([
      { pfn: 0x50001, count: 1 },
      { pfn: 0x50000, count: 1 },
    ]);
    expectRebuildEqual(h);
  });
});

describe('unpinUserPageRangeDirtyLock', () => {
  it('drops a pin from each PFN of the range and marks the frames dirty', () => {
    const h = setup();
    mmap(h.sim, '1', VA, 1n << 21n, { huge: '2M', writable: true });
    pinUserPagesFast(h.sim, VA, 512, WRITE, { slots: [] }, 0);
    unpinUserPageRangeDirtyLock(h.sim, F + 10, 100, true, 'batch_unpin');
    expect(rangeGet(h.sim.state.frames, F + 9)).toEqual({ pins: 1, maps: 1, huge: '2M', dirty: false });
    expect(rangeGet(h.sim.state.frames, F + 10)).toEqual({ pins: 0, maps: 1, huge: '2M', dirty: true });
    expect(rangeGet(h.sim.state.frames, F + 110)?.pins).toBe(1);
    expect(eventsOf(h.sink, 'PagesUnpinned')).toEqual([
      { type: 'PagesUnpinned', v: 1, pfn: F + 10, count: 100, dirty: true, fn: 'batch_unpin' },
    ]);
    expectRebuildEqual(h);
  });
});
