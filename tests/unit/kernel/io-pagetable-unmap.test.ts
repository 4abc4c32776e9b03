// SPDX-License-Identifier: GPL-2.0-only
/**
 * iopt_unmap_iova_range with accesses. The access ops table (access-ops.ts) is replaced by a scripted stand-in for
 * iommufd_access_notify_unmap, so each test decides what the access unmap callbacks do.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Sim } from '../../../src/machine/sim.js';

type Notify = (sim: Sim, ioas: string, iova: bigint, length: bigint) => void;
const script = vi.hoisted(() => ({ calls: [] as [string, bigint, bigint][], fn: null as Notify | null }));
vi.mock('../../../src/kernel/access-ops.js', () => ({
  iommufdAccessNotifyUnmap: (sim: Sim, ioas: string, iova: bigint, length: bigint): void => {
    script.calls.push([ioas, iova, length]);
    script.fn?.(sim, ioas, iova, length);
  },
}));

const { ioasMap, ioasUnmap, vfioUnmap } = await import('../../../src/kernel/ioas.js');
const { ioptUnmapIovaRange } = await import('../../../src/kernel/io-pagetable.js');
const { EDEADLK, EINVAL, ENOENT } = await import('../../../src/machine/errno.js');
const {
  BUF,
  PAGE_N: PAGE,
  VARIANT_FLAGS,
  eventsOf,
  expectRebuildEqual,
  ioasWorld,
} = await import('../../support/world.js');
type World = ReturnType<typeof ioasWorld>;

/** The area covering `iova`. */
function areaAt(w: World, iova: bigint) {
  return Object.values(w.sim.state.areas).find((a) => a.iova <= iova && iova <= a.lastIova);
}

/** Give the area at `iova` n accesses, as iopt_area_add_access would count them. */
function addAccesses(w: World, iova: bigint, n: number): void {
  const a = areaAt(w, iova);
  if (a === undefined) throw new Error(`no area at ${iova}`);
  w.sim.emit({ type: 'AreaAccessesChanged', v: 1, area: a.id, delta: n, fn: 'test' });
}

/** A callback that behaves like the selftest driver: the access lets go of the area it was told about. */
const releases: Notify = (sim, _ioas, iova) => {
  const a = Object.values(sim.state.areas).find((x) => x.iova === iova);
  if (a !== undefined && a.numAccesses > 0)
    sim.emit({ type: 'AreaAccessesChanged', v: 1, area: a.id, delta: -a.numAccesses, fn: 'test' });
};

function setup(flags: readonly string[], opts: { vfioType1?: boolean } = {}): World {
  const w = ioasWorld(flags, opts);
  expect(ioasMap(w.sim, 'A', { uptr: BUF, length: PAGE, iova: 0x10000n, read: true, write: true }).rc).toBe(0);
  expect(ioasMap(w.sim, 'A', { uptr: BUF, length: 4n * PAGE, iova: 0x20000n, read: true, write: true }).rc).toBe(0);
  addAccesses(w, 0x20000n, 1);
  return w;
}

beforeEach(() => {
  script.calls.length = 0;
  script.fn = null;
});

describe('iopt_unmap_iova_range with accesses', () => {
  it('marks prevent_access, runs the callbacks for the whole area, then unmaps it', () => {
    script.fn = releases;
    const w = setup(VARIANT_FLAGS.upstream);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x10000n, length: 0x20000n })).toEqual({ rc: 0, unmapped: 5n * PAGE });
    expect(script.calls).toEqual([['A', 0x20000n, 4n * PAGE]]);
    expect(eventsOf(w.sink, 'AreaPreventAccessSet').map((e) => e.prevent)).toEqual([true]);
    expect(Object.keys(w.sim.state.areas)).toHaveLength(0);
    expectRebuildEqual(w);
  });

  it('upstream: retries 100 times, then WARN and -EDEADLOCK; VFIO reads back the bytes already unmapped', () => {
    const w = setup(VARIANT_FLAGS.upstream);
    expect(vfioUnmap(w.sim, 'A', 0x10000n, 0x20000n)).toEqual({ rc: -EDEADLK, unmapped: PAGE });
    expect(script.calls).toHaveLength(101);
    expect(eventsOf(w.sink, 'Warned').map((e) => e.condition)).toEqual(['tries > 100']);
    expect(areaAt(w, 0x20000n)?.preventAccess).toBe(true);
  });

  it('without unmap-reports-bytes-on-error the -EDEADLOCK bail-out leaves VFIO reading 0 bytes', () => {
    const w = setup(VARIANT_FLAGS.upstream.filter((f) => f !== 'unmap-reports-bytes-on-error'));
    expect(vfioUnmap(w.sim, 'A', 0x10000n, 0x20000n)).toEqual({ rc: -EDEADLK, unmapped: 0n });
  });

  it('merged: one callback round, WARN on the remaining access, -EDEADLOCK; IOAS_UNMAP writes no length', () => {
    const w = setup(VARIANT_FLAGS.merged);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x10000n, length: 0x20000n })).toEqual({ rc: -EDEADLK, unmapped: null });
    expect(script.calls).toHaveLength(1);
    expect(eventsOf(w.sink, 'Warned').map((e) => e.condition)).toEqual(['READ_ONCE(area->num_accesses)']);
  });

  it('v3: WARN and retry with no limit; the model reports the livelock once a retry cannot progress', () => {
    const w = setup(VARIANT_FLAGS.v3);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x20000n, length: 4n * PAGE }).rc).toBe(-EDEADLK);
    expect(eventsOf(w.sink, 'Warned')).toHaveLength(1);
    expect(eventsOf(w.sink, 'ViolationDetected').map((e) => e.kind)).toEqual(['invariant']);
  });

  it('v3 and merged re-read the area after the callbacks: a use-after-free when it was unmapped meanwhile', () => {
    const concurrentUnmap: Notify = (sim, ioas, iova, length) => {
      releases(sim, ioas, iova, length);
      ioptUnmapIovaRange(sim, ioas, iova, iova + length - 1n);
    };
    for (const [flags, uaf] of [
      [VARIANT_FLAGS.v3, 1],
      [VARIANT_FLAGS.merged, 1],
      [VARIANT_FLAGS.upstream, 0],
    ] as const) {
      script.fn = concurrentUnmap;
      const w = setup(flags);
      expect(ioasUnmap(w.sim, 'A', { iova: 0x20000n, length: 4n * PAGE })).toEqual({ rc: -ENOENT, unmapped: null });
      expect(eventsOf(w.sink, 'ViolationDetected').filter((e) => e.kind === 'use_after_free')).toHaveLength(uaf);
    }
  });
});

describe('iopt_area_split with accesses', () => {
  it('refuses to split an area with accesses (split-blocks-accesses): -EINVAL, VFIO reads back its own size', () => {
    script.fn = releases;
    const w = setup(VARIANT_FLAGS.upstream, { vfioType1: true });
    expect(vfioUnmap(w.sim, 'A', 0x21000n, PAGE)).toEqual({ rc: -EINVAL, unmapped: PAGE });
    expect(areaAt(w, 0x20000n)?.lastIova).toBe(0x23fffn);
  });

  it('v3 copies num_accesses into both halves: one access becomes three counted ones', () => {
    script.fn = releases;
    const w = setup(VARIANT_FLAGS.v3, { vfioType1: true });
    expect(vfioUnmap(w.sim, 'A', 0x21000n, PAGE)).toEqual({ rc: 0, unmapped: PAGE });
    expect([areaAt(w, 0x20000n)?.numAccesses, areaAt(w, 0x22000n)?.numAccesses]).toEqual([1, 1]);
  });
});
