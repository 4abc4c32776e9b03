// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { ioasAllowIovas, ioasCopy, ioasHugePages, ioasMap, ioasUnmap } from '../../../src/kernel/ioas.js';
import { ioptAreaContiguous } from '../../../src/kernel/io-pagetable.js';
import { roundupPowOfTwo } from '../../../src/kernel/iova-alloc.js';
import { EADDRINUSE, EEXIST, EINVAL, ENOENT, ENOSPC, EOVERFLOW } from '../../../src/machine/errno.js';
import {
  BUF,
  PAGE_N as PAGE,
  VARIANT_FLAGS,
  areasOf,
  eventsOf,
  expectRebuildEqual,
  ioasWorld,
} from '../../support/world.js';

const U64_MAX = (1n << 64n) - 1n;
const map = (
  w: ReturnType<typeof ioasWorld>,
  uptr: bigint,
  length: bigint,
  iova: bigint | null = null,
  prot = { read: true, write: true },
) => ioasMap(w.sim, 'A', { uptr, length, iova, ...prot });

describe('iopt_alloc_iova', () => {
  it('maps 64 KiB from a pointer aligned to 16 KiB at IOVA 0x4000 (alignment = lowest bit of the pointer)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF + 0x4000n, 0x10000n)).toEqual({ rc: 0, iova: 0x4000n });
    expect(areasOf(w.sim.state, 'A')).toEqual([[0x4000n, 0x13fffn]]);
  });

  it('keeps the page offset of the pointer: 2 KiB from BUF + 0x800 lands at 0x1800', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF + 0x800n, 0x800n)).toEqual({ rc: 0, iova: 0x1800n });
    expect(w.sim.state.areas[Object.keys(w.sim.state.areas).map(Number)[0] ?? -1]?.pageOffset).toBe(0x800);
  });

  it('fills holes in address order with length-sized alignment (the selftest area_auto_iova sequence)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    const got = [1n, 2n, 3n, 4n, 5n].map((n) => map(w, 0x80000000n, n * PAGE).iova);
    expect(got).toEqual([0x1000n, 0x2000n, 0x4000n, 0x8000n, 0x10000n]);
  });

  it('caps the alignment at 2 MiB with iova-align-cap: a 4 MiB map after a page at 0x1000 lands at 0x200000 (v3: 0x400000)', () => {
    for (const [flags, want] of [
      [VARIANT_FLAGS.upstream, 0x200000n],
      [VARIANT_FLAGS.v3, 0x400000n],
    ] as const) {
      const w = ioasWorld(flags);
      expect(map(w, BUF, PAGE).iova).toBe(0x1000n);
      expect(map(w, 0x7f8000000000n, 0x400000n).iova).toBe(want);
    }
  });

  it('allocates inside the allowed ranges only, and -ENOSPC when they are full', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(ioasAllowIovas(w.sim, 'A', [[0xc8000n, 0xcbfffn]])).toBe(0);
    expect(map(w, BUF, PAGE).iova).toBe(0xc8000n);
    expect(map(w, BUF, 0x2000n).iova).toBe(0xca000n);
    expect(map(w, BUF, PAGE).iova).toBe(0xc9000n);
    expect(map(w, BUF, PAGE)).toEqual({ rc: -ENOSPC, iova: null });
  });

  it('wraps ALIGN() past 2^64 without alloc-iova-align-overflow and returns IOVA 0, outside the allowed range', () => {
    const top = U64_MAX + 1n;
    for (const [flags, want] of [
      [VARIANT_FLAGS.upstream, { rc: -ENOSPC, iova: null }],
      [VARIANT_FLAGS.upstream.filter((f) => f !== 'alloc-iova-align-overflow'), { rc: 0, iova: 0n }],
      [VARIANT_FLAGS.v3, { rc: 0, iova: 0n }],
    ] as const) {
      const w = ioasWorld(flags);
      expect(ioasAllowIovas(w.sim, 'A', [[top - 0x3800n, top - 0x1001n]])).toBe(0);
      expect(map(w, 0n, 0x2001n)).toEqual(want);
    }
  });

  it('refuses to allocate for a length of 2^63 or more with -EOVERFLOW', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, 0n, 1n << 63n).rc).toBe(-EOVERFLOW);
    expect(roundupPowOfTwo(0x3001n)).toBe(0x4000n);
  });
});

describe('iopt_check_iova (fixed IOVA)', () => {
  it('refuses an overlapping map with -EEXIST (merged) and -EADDRINUSE (v3)', () => {
    for (const [flags, errno] of [
      [VARIANT_FLAGS.upstream, -EEXIST],
      [VARIANT_FLAGS.merged, -EEXIST],
      [VARIANT_FLAGS.v3, -EADDRINUSE],
    ] as const) {
      const w = ioasWorld(flags);
      expect(map(w, BUF, 2n * PAGE, 0x10000n).rc).toBe(0);
      expect(map(w, BUF, PAGE, 0x11000n)).toEqual({ rc: errno, iova: null });
      expect(map(w, BUF, 2n * PAGE, 0xf000n).rc).toBe(errno);
      expect(areasOf(w.sim.state, 'A')).toEqual([[0x10000n, 0x11fffn]]);
    }
  });

  it('returns -EOVERFLOW for an IOVA range that wraps and for 2^64 - 1 arguments', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF, 2n * PAGE, U64_MAX - PAGE + 1n).rc).toBe(-EOVERFLOW);
    expect(map(w, BUF, U64_MAX, 0n).rc).toBe(-EOVERFLOW);
    expect(map(w, BUF, PAGE, U64_MAX).rc).toBe(-EOVERFLOW);
  });

  it('drops the area and the pages on failure: no area, no pages, no live heap allocation', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF, PAGE, 0x1000n).rc).toBe(0);
    expect(map(w, BUF, PAGE, 0x1000n).rc).toBe(-EEXIST);
    expect(Object.keys(w.sim.state.pages)).toHaveLength(1);
    expect(Object.keys(w.sim.state.areas)).toHaveLength(1);
    expect(
      Object.values(w.sim.state.heap)
        .map((a) => a.tag)
        .sort(),
    ).toEqual(['iopt_area', 'iopt_pages']);
  });
});

describe('IOMMU_IOAS_MAP prot', () => {
  it('refuses neither READ nor WRITE with map-requires-prot; v3 creates an area with prot 0', () => {
    const up = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(up, BUF, PAGE, 0x1000n, { read: false, write: false })).toEqual({ rc: -EINVAL, iova: null });
    const v3 = ioasWorld(VARIANT_FLAGS.v3);
    expect(map(v3, BUF, PAGE, 0x1000n, { read: false, write: false })).toEqual({ rc: 0, iova: 0x1000n });
    const area = Object.values(v3.sim.state.areas)[0];
    expect([area?.read, area?.write]).toEqual([false, false]);
  });

  it('switches the new pages to MM accounting in a VFIO-compatible context', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream, { account: 'mm' });
    expect(map(w, BUF, PAGE, 0x1000n).rc).toBe(0);
    expect(Object.values(w.sim.state.pages)[0]?.accountMode).toBe('mm');
  });
});

describe('iopt_unmap_iova', () => {
  it('answers -ENOENT for nothing mapped and for a range that cuts an area, and writes no length', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x1000n, length: PAGE })).toEqual({ rc: -ENOENT, unmapped: null });
    expect(map(w, BUF, 4n * PAGE, 0x10000n).rc).toBe(0);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x10000n, length: PAGE })).toEqual({ rc: -ENOENT, unmapped: null });
    expect(ioasUnmap(w.sim, 'A', { iova: 0x11000n, length: 0x10000n })).toEqual({ rc: -ENOENT, unmapped: null });
    expect(ioasUnmap(w.sim, 'A', { iova: 0x10000n, length: 0n })).toEqual({ rc: -EINVAL, unmapped: null });
    expect(areasOf(w.sim.state, 'A')).toEqual([[0x10000n, 0x13fffn]]);
  });

  it('unmaps every area fully inside the range and reports their bytes (0x4000 + 0x2000 = 0x6000)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF, 4n * PAGE, 0x10000n).rc).toBe(0);
    expect(map(w, BUF, 2n * PAGE, 0x20000n).rc).toBe(0);
    expect(ioasUnmap(w.sim, 'A', { iova: 0x8000n, length: 0x20000n })).toEqual({ rc: 0, unmapped: 0x6000n });
    expect(areasOf(w.sim.state, 'A')).toEqual([]);
    expect(Object.keys(w.sim.state.pages)).toHaveLength(0);
    expect(Object.keys(w.sim.state.heap)).toHaveLength(0);
  });

  it('unmap-all of an empty IOAS is 0 with 0 bytes on merged, -ENOENT on v3', () => {
    expect(ioasUnmap(ioasWorld(VARIANT_FLAGS.merged).sim, 'A', { all: true })).toEqual({ rc: 0, unmapped: 0n });
    expect(ioasUnmap(ioasWorld(VARIANT_FLAGS.v3).sim, 'A', { all: true })).toEqual({ rc: -ENOENT, unmapped: null });
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    map(w, BUF, PAGE, 0x1000n);
    map(w, BUF, PAGE, U64_MAX - 2n * PAGE + 1n);
    expect(ioasUnmap(w.sim, 'A', { iova: 0n, length: U64_MAX })).toEqual({ rc: 0, unmapped: 2n * PAGE });
  });
});

describe('IOMMU_IOAS_COPY without domains', () => {
  it('shares the source pages: one iopt_pages with two references, nothing pinned', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF, 4n * PAGE, 0x10000n).rc).toBe(0);
    const r = ioasCopy(w.sim, {
      src: 'A',
      dst: 'A',
      srcIova: 0x11000n,
      length: 2n * PAGE,
      dstIova: null,
      read: true,
      write: true,
    });
    expect(r).toEqual({ rc: 0, iova: 0x1000n });
    const pages = Object.values(w.sim.state.pages);
    expect(pages).toHaveLength(1);
    expect(pages[0]?.refs).toBe(2);
    expect(pages[0]?.npinned).toBe(0);
    const copy = Object.values(w.sim.state.areas).find((a) => a.iova === 0x1000n);
    expect([copy?.firstIndex, copy?.lastIndex]).toEqual([1, 2]);
    expect(eventsOf(w.sink, 'HeapFreed').length).toBe(1);
  });

  it('answers -ENOENT for a source range with a hole and leaves the references as they were', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    map(w, BUF, PAGE, 0x10000n);
    map(w, BUF, PAGE, 0x12000n);
    const r = ioasCopy(w.sim, {
      src: 'A',
      dst: 'A',
      srcIova: 0x10000n,
      length: 3n * PAGE,
      dstIova: null,
      read: true,
      write: false,
    });
    expect(r).toEqual({ rc: -ENOENT, iova: null });
    expect(Object.values(w.sim.state.pages).map((p) => p.refs)).toEqual([1, 1]);
  });
});

describe('iopt_for_each_contig_area', () => {
  it('yields the pieces of adjacent areas and reports whether the range was covered', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    map(w, BUF, 2n * PAGE, 0x10000n);
    map(w, BUF, 2n * PAGE, 0x12000n);
    const it = ioptAreaContiguous(w.sim.state, 'A', 0x11000n, 0x12fffn);
    const pieces: [bigint, bigint][] = [];
    let r = it.next();
    for (; !r.done; r = it.next()) pieces.push([r.value.iova, r.value.lastIova]);
    expect(pieces).toEqual([
      [0x11000n, 0x11fffn],
      [0x12000n, 0x12fffn],
    ]);
    expect(r.value).toBe(true);
    const short = ioptAreaContiguous(w.sim.state, 'A', 0x13000n, 0x14fffn);
    let s = short.next();
    while (!s.done) s = short.next();
    expect(s.value).toBe(false);
  });
});

describe('IOMMU_IOAS_ALLOW_IOVAS and the huge pages option', () => {
  it('refuses a one-byte or overlapping range with -EINVAL and keeps the old ranges', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(ioasAllowIovas(w.sim, 'A', [[0x10000n, 0x1ffffn]])).toBe(0);
    expect(ioasAllowIovas(w.sim, 'A', [[0x5000n, 0x5000n]])).toBe(-EINVAL);
    expect(
      ioasAllowIovas(w.sim, 'A', [
        [0x1000n, 0x2fffn],
        [0x2000n, 0x3fffn],
      ]),
    ).toBe(-EINVAL);
    expect(w.sim.state.ioases['A']?.allowed.count).toBe(1);
  });

  it('disabling large pages sets the alignment to PAGE_SIZE; re-enabling lowers it to 1', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(ioasHugePages(w.sim, 'A', false)).toBe(0);
    expect(w.sim.state.ioases['A']?.iovaAlignment).toBe(PAGE);
    expect(map(w, BUF + 0x800n, 0x800n).rc).toBe(-EINVAL);
    expect(ioasHugePages(w.sim, 'A', true)).toBe(0);
    expect(w.sim.state.ioases['A']?.iovaAlignment).toBe(1n);
  });

  it('refuses to disable large pages for an IOAS whose area has a page offset (alignment check, -EADDRINUSE)', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    expect(map(w, BUF + 0x800n, 0x800n, 0x1800n).rc).toBe(0);
    expect(ioasHugePages(w.sim, 'A', false)).toBe(-EADDRINUSE);
    expect(w.sim.state.ioases['A']?.disableLargePages).toBe(false);
  });
});

describe('rebuild from the log', () => {
  it('equals the live state after maps, copies, allowed ranges and unmaps', () => {
    const w = ioasWorld(VARIANT_FLAGS.upstream);
    ioasAllowIovas(w.sim, 'A', [[0x10000n, 0xfffffn]]);
    map(w, BUF, 4n * PAGE);
    ioasCopy(w.sim, {
      src: 'A',
      dst: 'A',
      srcIova: 0x10000n,
      length: PAGE,
      dstIova: 0x40000n,
      read: true,
      write: false,
    });
    ioasUnmap(w.sim, 'A', { iova: 0x10000n, length: 4n * PAGE });
    expectRebuildEqual(w);
  });
});
