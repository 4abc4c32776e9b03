// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { itreeEntries } from '../../../src/structures/interval-tree.js';
import { pagesNodeInTree } from '../../../src/kernel/io-pagetable.js';
import {
  domainAttach,
  domainDetach,
  ioasAlloc,
  ioasCopy,
  ioasHugePages,
  ioasMap,
  ioasUnmap,
  vfioUnmap,
} from '../../../src/kernel/ioas.js';
import { EADDRINUSE, EINVAL, ENOENT } from '../../../src/machine/errno.js';
import {
  BUF,
  PAGE_N as PAGE,
  VARIANT_FLAGS,
  type World,
  areasOf,
  eventsOf,
  expectRebuildEqual,
  mappedRanges,
  totalPins,
  ioasWorld,
} from '../../support/world.js';

const U64_MAX = (1n << 64n) - 1n;
const APERTURE_START = 1n << 24n;
const APERTURE_END = (1n << 31n) - 1n;
const mock = { kind: 'mock' as const };

function map(w: World, ioas: string, uptr: bigint, length: bigint, iova: bigint | null = null) {
  return ioasMap(w.sim, ioas, { uptr, length, iova, read: true, write: true });
}

function findings(w: World): { warns: number; violations: number } {
  return { warns: eventsOf(w.sink, 'Warned').length, violations: eventsOf(w.sink, 'ViolationDetected').length };
}

describe('iopt_table_add_domain', () => {
  it('fills an existing area into a mock domain: alignment 2048, the domain maps exactly the area', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, 'A', BUF, 4n * PAGE, APERTURE_START).rc).toBe(0);
    expect(totalPins(w.sim.state)).toBe(0);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    const io = w.sim.state.ioases['A'];
    expect(io?.iovaAlignment).toBe(2048n);
    expect(io?.domains).toEqual(['D']);
    expect(mappedRanges(w.sim.state, 'D')).toEqual([[APERTURE_START, 4n * PAGE]]);
    expect(totalPins(w.sim.state)).toBe(4);
    const area = Object.values(w.sim.state.areas)[0];
    expect(area?.storageDomain).toBe('D');
    expect(pagesNodeInTree(w.sim.state, area?.id ?? -1)).toBe(true);
    expect(itreeEntries(io?.reserved ?? ({ root: null } as never)).map((e) => [e.start, e.last])).toEqual([
      [0n, APERTURE_START - 1n],
      [APERTURE_END + 1n, U64_MAX],
    ]);
    expect(findings(w)).toEqual({ warns: 0, violations: 0 });
  });

  it('refuses a domain whose aperture excludes an area (-EADDRINUSE) and frees it again', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, 'A', BUF, PAGE, 0x1000n).rc).toBe(0);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(-EADDRINUSE);
    expect(w.sim.state.domains['D']).toBeUndefined();
    expect(w.sim.state.ioases['A']?.reserved.count).toBe(0);
    expect(w.sim.state.ioases['A']?.iovaAlignment).toBe(1n);
    expect(
      Object.values(w.sim.state.heap)
        .map((a) => a.tag)
        .sort(),
    ).toEqual(['iopt_area', 'iopt_pages']);
  });

  it('refuses a domain when an area does not fit its 2 KiB alignment (-EADDRINUSE)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, 'A', BUF + 0x400n, 0x400n, APERTURE_START + 0x400n).rc).toBe(0);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(-EADDRINUSE);
  });
});

describe('iopt_map_user_pages with a mock domain', () => {
  it('allocates above the reserved [0, 2^24 - 1] and maps and pins at once', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    expect(map(w, 'A', BUF, 4n * PAGE)).toEqual({ rc: 0, iova: APERTURE_START });
    expect(mappedRanges(w.sim.state, 'D')).toEqual([[APERTURE_START, 4n * PAGE]]);
    expect(totalPins(w.sim.state)).toBe(4);
  });

  it('answers -EINVAL for lengths and IOVAs off the 2 KiB grid and for reserved IOVAs (v3: -ENOENT)', () => {
    for (const [flags, reservedErrno] of [
      [VARIANT_FLAGS.upstream, -EINVAL],
      [VARIANT_FLAGS.v3, -ENOENT],
    ] as const) {
      const w = ioasWorld(flags);
      expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
      expect(map(w, 'A', BUF, 0x1000n, APERTURE_START + 0x400n).rc).toBe(-EINVAL);
      expect(map(w, 'A', BUF, 0xc00n, APERTURE_START).rc).toBe(-EINVAL);
      expect(map(w, 'A', BUF, PAGE, 0x1000n).rc).toBe(reservedErrno);
      expect(totalPins(w.sim.state)).toBe(0);
    }
  });
});

describe('iopt_alloc_area_pages length check', () => {
  it('refuses an allocated IOVA for a length off the 2 KiB grid before pinning on merged; v3 pins, then the domain refuses', () => {
    const merged = ioasWorld(VARIANT_FLAGS.merged);
    expect(domainAttach(merged.sim, 'A', 'D', mock)).toBe(0);
    expect(map(merged, 'A', BUF, 0xc00n)).toEqual({ rc: -EINVAL, iova: null });
    expect(eventsOf(merged.sink, 'PagesPinned')).toHaveLength(0);
    const v3 = ioasWorld(VARIANT_FLAGS.v3);
    expect(domainAttach(v3.sim, 'A', 'D', mock)).toBe(0);
    expect(map(v3, 'A', BUF, 0xc00n)).toEqual({ rc: -EINVAL, iova: null });
    expect(eventsOf(v3.sink, 'PagesPinned').length).toBeGreaterThan(0);
    expect(areasOf(v3.sim.state, 'A')).toEqual([]);
  });
});

describe('iopt_table_remove_domain', () => {
  it('unfills the last domain: nothing mapped, nothing pinned, reservations gone, alignment 1', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    expect(map(w, 'A', BUF, 4n * PAGE).rc).toBe(0);
    expect(domainDetach(w.sim, 'D')).toBe(0);
    expect(w.sim.state.domains['D']).toBeUndefined();
    expect(totalPins(w.sim.state)).toBe(0);
    const io = w.sim.state.ioases['A'];
    expect([io?.reserved.count, io?.iovaAlignment, io?.domains]).toEqual([0, 1n, []]);
    expect(Object.values(w.sim.state.areas)[0]?.storageDomain).toBeNull();
    expect(Object.values(w.sim.state.pages)[0]?.npinned).toBe(0);
    expect(findings(w)).toEqual({ warns: 0, violations: 0 });
  });

  it('moves storage to the remaining domain and unmaps per area (merged) or per contiguous span (v3)', () => {
    for (const [flags, unmapCalls] of [
      [VARIANT_FLAGS.upstream, 2],
      [VARIANT_FLAGS.v3, 1],
    ] as const) {
      const w = ioasWorld(flags);
      expect(domainAttach(w.sim, 'A', 'D1', mock)).toBe(0);
      expect(domainAttach(w.sim, 'A', 'D2', mock)).toBe(0);
      expect(map(w, 'A', BUF, 2n * PAGE, APERTURE_START).rc).toBe(0);
      expect(map(w, 'A', BUF + 2n * PAGE, 2n * PAGE, APERTURE_START + 2n * PAGE).rc).toBe(0);
      const before = eventsOf(w.sink, 'IommuUnmapped').length;
      expect(domainDetach(w.sim, 'D1')).toBe(0);
      const unmaps = eventsOf(w.sink, 'IommuUnmapped')
        .slice(before)
        .filter((e) => e.domain === 'D1');
      expect(unmaps.length).toBe(unmapCalls);
      expect(w.sim.state.ioases['A']?.domains).toEqual(['D2']);
      expect(Object.values(w.sim.state.areas).map((a) => a.storageDomain)).toEqual(['D2', 'D2']);
      expect(mappedRanges(w.sim.state, 'D2')).toEqual([[APERTURE_START, 4n * PAGE]]);
      expect(totalPins(w.sim.state)).toBe(4);
      expect(findings(w)).toEqual({ warns: 0, violations: 0 });
    }
  });
});

describe('IOMMU_IOAS_COPY with domains', () => {
  it('maps the copy into the destination domain from the already pinned pages (no new pins)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(domainAttach(w.sim, 'A', 'DA', mock)).toBe(0);
    expect(map(w, 'A', BUF, 4n * PAGE, APERTURE_START).rc).toBe(0);
    expect(ioasAlloc(w.sim, 'B', 'c')).toBe(0);
    expect(domainAttach(w.sim, 'B', 'DB', mock)).toBe(0);
    const pinsBefore = eventsOf(w.sink, 'PagesPinned').length;
    const r = ioasCopy(w.sim, {
      src: 'A',
      dst: 'B',
      srcIova: APERTURE_START + PAGE,
      length: 2n * PAGE,
      dstIova: null,
      read: true,
      write: true,
    });
    expect(r).toEqual({ rc: 0, iova: APERTURE_START });
    expect(eventsOf(w.sink, 'PagesPinned').length).toBe(pinsBefore);
    expect(totalPins(w.sim.state)).toBe(4);
    expect(mappedRanges(w.sim.state, 'DB')).toEqual([[APERTURE_START, 2n * PAGE]]);
    const pages = Object.values(w.sim.state.pages);
    expect(pages.map((p) => [p.refs, p.npinned])).toEqual([[2, 4]]);
    expect(ioasUnmap(w.sim, 'A', { all: true })).toEqual({ rc: 0, unmapped: 4n * PAGE });
    expect(totalPins(w.sim.state)).toBe(2);
    expect(findings(w)).toEqual({ warns: 0, violations: 0 });
  });
});

describe('VFIO type1 unmap (iopt_cut_iova + iopt_area_split)', () => {
  function type1(flags: readonly string[]): World {
    const w = ioasWorld(flags, { account: 'mm', vfioType1: true });
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    expect(map(w, 'A', BUF, 4n * PAGE, APERTURE_START).rc).toBe(0);
    return w;
  }

  it('splits the area around a one-page slice and unmaps only the slice', () => {
    const w = type1(VARIANT_FLAGS.upstream);
    expect(w.sim.state.ioases['A']?.iovaAlignment).toBe(PAGE);
    expect(vfioUnmap(w.sim, 'A', APERTURE_START + PAGE, PAGE)).toEqual({ rc: 0, unmapped: PAGE });
    expect(areasOf(w.sim.state, 'A')).toEqual([
      [APERTURE_START, APERTURE_START + PAGE - 1n],
      [APERTURE_START + 2n * PAGE, APERTURE_START + 4n * PAGE - 1n],
    ]);
    expect(mappedRanges(w.sim.state, 'D')).toEqual([
      [APERTURE_START, PAGE],
      [APERTURE_START + 2n * PAGE, 2n * PAGE],
    ]);
    expect(Object.values(w.sim.state.areas).map((a) => pagesNodeInTree(w.sim.state, a.id))).toEqual([true, true]);
    expect(totalPins(w.sim.state)).toBe(3);
    expect(Object.values(w.sim.state.pages)[0]?.refs).toBe(2);
    expect(vfioUnmap(w.sim, 'A', APERTURE_START, 4n * PAGE)).toEqual({ rc: 0, unmapped: 3n * PAGE });
    expect(totalPins(w.sim.state)).toBe(0);
    expect(Object.keys(w.sim.state.pages)).toHaveLength(0);
    expect(findings(w)).toEqual({ warns: 0, violations: 0 });
    expectRebuildEqual(w);
  });

  it('is -ENOENT with 0 bytes for TYPE1v2 (large pages allowed: no cut)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream, { account: 'mm' });
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    expect(map(w, 'A', BUF, 4n * PAGE, APERTURE_START).rc).toBe(0);
    expect(vfioUnmap(w.sim, 'A', APERTURE_START + PAGE, PAGE)).toEqual({ rc: -ENOENT, unmapped: 0n });
    expect(areasOf(w.sim.state, 'A')).toHaveLength(1);
  });

  it('refuses to disable large pages once a domain and an area exist', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(domainAttach(w.sim, 'A', 'D', mock)).toBe(0);
    expect(map(w, 'A', BUF, PAGE, APERTURE_START).rc).toBe(0);
    expect(ioasHugePages(w.sim, 'A', false)).toBe(-EINVAL);
  });

  it('without split-updates-domains-itree leaves the freed area in domains_itree and corrupts it on unmap', () => {
    const w = type1(VARIANT_FLAGS.merged);
    const original = Object.values(w.sim.state.areas)[0]?.id ?? -1;
    const pagesId = Object.values(w.sim.state.pages)[0]?.id ?? -1;
    expect(vfioUnmap(w.sim, 'A', APERTURE_START + PAGE, PAGE).rc).toBe(0);
    const tree = w.sim.state.pages[pagesId]?.domainsTree;
    expect(itreeEntries(tree ?? ({ root: null } as never)).map((e) => e.id)).toEqual([original]);
    expect(w.sim.state.areas[original]).toBeUndefined();
    expect(eventsOf(w.sink, 'ViolationDetected').map((v) => v.kind)).toContain('itree_corruption');
    // The stale node keeps the slice "used": its page stays pinned after the unmap.
    expect(totalPins(w.sim.state)).toBe(4);
  });
});

describe('rebuild from the log with domains', () => {
  it('equals the live state after attach, map, copy, detach and unmap', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    domainAttach(w.sim, 'A', 'D1', mock);
    map(w, 'A', BUF, 8n * PAGE);
    domainAttach(w.sim, 'A', 'D2', mock);
    ioasCopy(w.sim, {
      src: 'A',
      dst: 'A',
      srcIova: APERTURE_START,
      length: PAGE,
      dstIova: null,
      read: true,
      write: false,
    });
    domainDetach(w.sim, 'D1');
    ioasUnmap(w.sim, 'A', { all: true });
    domainDetach(w.sim, 'D2');
    expect(totalPins(w.sim.state)).toBe(0);
    expect(findings(w)).toEqual({ warns: 0, violations: 0 });
    expectRebuildEqual(w);
  });
});
