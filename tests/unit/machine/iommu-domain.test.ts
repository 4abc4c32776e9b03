import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mappingsPieces } from '../../../src/structures/mapping-table.js';
import { EEXIST, EINVAL, ENOENT } from '../../../src/machine/errno.js';
import {
  domainAlloc,
  domainFree,
  domainPgsizeMin,
  iommuIovaToPhys,
  iommuMap,
  iommuUnmap,
} from '../../../src/machine/iommu-domain.js';
import type { Mapping } from '../../../src/state/state.js';
import { type World, eventsOf, expectRebuildEqual, typesSince, world } from '../../support/world.js';

const BASE = 1n << 24n;
const PA = 0x40000n * 4096n;
const K4 = 4096n;
const M2 = 1n << 21n;
const RW = { read: true, write: true };

function mock(flags: string[] = [], merged = true) {
  const h = world(flags, { merged });
  domainAlloc(h.sim, 'D', 'mock');
  return h;
}

function generic() {
  const h = world([], { merged: true });
  domainAlloc(h.sim, 'G', 'generic');
  return h;
}

const pieces = (h: World, d: string): Mapping[] => mappingsPieces(h.sim.state.domains[d]!.mappings);

const warns = (h: World) => eventsOf(h.sink, 'Warned').map((w) => [w.fn, w.condition, w.objects['iova']]);

describe('domainAlloc', () => {
  it('gives the mock 2048-byte IO pages and the aperture [2^24, 2^31 - 1]', () => {
    const h = mock();
    expect(h.sim.state.domains['D']).toMatchObject({
      kind: 'mock',
      pgsizes: [2048n],
      aperture: [BASE, (1n << 31n) - 1n],
      mappedBytes: 0n,
    });
    expect(domainPgsizeMin(h.sim.state, 'D')).toBe(2048n);
    expectRebuildEqual(h);
  });

  it('gives a generic domain 4K, 2M and 1G pages over the whole 64-bit space unless told otherwise', () => {
    const h = generic();
    domainAlloc(h.sim, 'H', 'generic', { pgsizes: [M2, 1n << 16n], aperture: [0n, 0xffffffffn] });
    expect(h.sim.state.domains['G']).toMatchObject({ pgsizes: [K4, M2, 1n << 30n], aperture: [0n, (1n << 64n) - 1n] });
    expect(h.sim.state.domains['H']).toMatchObject({ pgsizes: [1n << 16n, M2], aperture: [0n, 0xffffffffn] });
    expect(domainPgsizeMin(h.sim.state, 'H')).toBe(1n << 16n);
    expectRebuildEqual(h);
  });
});

describe('iommuMap on the mock domain', () => {
  it('stores one piece per call with the START/LAST bit on its first and last mock page', () => {
    const h = mock();
    expect(iommuMap(h.sim, 'D', BASE, PA, 8192n, RW, 'batch_to_domain')).toBe(0);
    const [mapped] = eventsOf(h.sink, 'IommuMapped');
    expect(mapped).toEqual({
      type: 'IommuMapped',
      v: 1,
      domain: 'D',
      extent: 1,
      iova: BASE,
      paddr: PA,
      size: 8192n,
      read: true,
      write: true,
      fn: 'batch_to_domain',
    });
    expect(pieces(h, 'D')).toEqual([
      {
        iova: BASE,
        size: 8192n,
        paddr: PA,
        pgsize: 2048n,
        read: true,
        write: true,
        extent: 1,
        headFlag: true,
        tailFlag: true,
      },
    ]);
    expect(h.sim.state.domains['D']?.mappedBytes).toBe(8192n);
    expectRebuildEqual(h);
  });

  it('rejects an iova, paddr or size that is not a multiple of 2048 with -EINVAL', () => {
    const h = mock();
    expect(iommuMap(h.sim, 'D', BASE + 1024n, PA, 2048n, RW, 't')).toBe(-EINVAL);
    expect(iommuMap(h.sim, 'D', BASE, PA + 1n, 2048n, RW, 't')).toBe(-EINVAL);
    expect(iommuMap(h.sim, 'D', BASE, PA, 1000n, RW, 't')).toBe(-EINVAL);
    expect(iommuMap(h.sim, 'D', BASE, PA + 2048n, 2048n, RW, 't')).toBe(0);
    expect(eventsOf(h.sink, 'IommuMapped')).toHaveLength(1);
  });

  it('refuses a map with neither READ nor WRITE only with map-requires-prot', () => {
    const none = { read: false, write: false };
    const fixed = mock(['map-requires-prot']);
    expect(iommuMap(fixed.sim, 'D', BASE, PA, 2048n, none, 't')).toBe(-EINVAL);
    expect(iommuMap(fixed.sim, 'D', BASE, PA, 2048n, { read: true, write: false }, 't')).toBe(0);
    const old = mock();
    expect(iommuMap(old.sim, 'D', BASE, PA, 2048n, none, 't')).toBe(0);
    expectRebuildEqual(fixed);
    expectRebuildEqual(old);
  });

  it('fails the armed iommu_map fault point with -ENOENT on merged kernels only', () => {
    for (const [merged, rc] of [
      [true, -ENOENT],
      [false, 0],
    ] as const) {
      const h = mock([], merged);
      h.sim.emit({ type: 'FaultArmed', v: 1, nth: 1, site: 'iommu_map' });
      expect(iommuMap(h.sim, 'D', BASE, PA, 4096n, RW, 'batch_to_domain')).toBe(rc);
      expect(eventsOf(h.sink, 'FaultInjected')).toHaveLength(merged ? 1 : 0);
      expect(eventsOf(h.sink, 'IommuMapped')).toHaveLength(merged ? 0 : 1);
      expectRebuildEqual(h);
    }
  });

  it('WARNs once per mock page already mapped and overwrites it', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 4096n, RW, 't');
    expect(iommuMap(h.sim, 'D', BASE + 2048n, PA + 0x10000n, 4096n, RW, 't')).toBe(0);
    expect(warns(h)).toEqual([['mock_domain_map_pages', 'old', BASE + 2048n]]);
    expect(pieces(h, 'D').map((m) => [m.iova, m.size, m.paddr, m.extent, m.headFlag, m.tailFlag])).toEqual([
      [BASE, 2048n, PA, 1, true, false],
      [BASE + 2048n, 4096n, PA + 0x10000n, 2, true, true],
    ]);
    expect(h.sim.state.domains['D']?.mappedBytes).toBe(6144n);
    expectRebuildEqual(h);
  });
});

describe('iommuUnmap on the mock domain', () => {
  it('unmaps a whole map call silently and returns its size', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 8192n, RW, 't');
    const from = h.sink.events.length;
    expect(iommuUnmap(h.sim, 'D', BASE, 8192n, 'iopt_area_unmap_domain')).toBe(8192n);
    expect(h.sink.events.slice(from)).toEqual([
      {
        type: 'IommuUnmapped',
        v: 1,
        domain: 'D',
        iova: BASE,
        size: 8192n,
        unmapped: 8192n,
        removed: [[BASE, 8192n]],
        fn: 'iopt_area_unmap_domain',
      },
    ]);
    expect(h.sim.state.domains['D']?.mappings.tree.size).toBe(0);
    expectRebuildEqual(h);
  });

  it('reports [2^24 + 2048, +2048) inside an 8192-byte map as a pairing violation and WARNs on both flag checks', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 8192n, RW, 't');
    const from = h.sink.events.length;
    expect(iommuUnmap(h.sim, 'D', BASE + 2048n, 2048n, 'test')).toBe(2048n);
    expect(typesSince(h.sink, from)).toEqual(['ViolationDetected', 'Warned', 'Warned', 'IommuUnmapped']);
    const [v] = eventsOf(h.sink, 'ViolationDetected');
    expect(v).toMatchObject({
      kind: 'domain_pairing',
      fn: 'test',
      detail:
        'unmap [0x1000800, 0x1001000) begins inside extent 1 [0x1000000, 0x1002000) and ends inside extent 1 [0x1000000, 0x1002000)',
      objects: { domain: 'D', iova: BASE + 2048n, size: 2048n, beginExtent: 1, endExtent: 1 },
    });
    expect(warns(h)).toEqual([
      ['mock_domain_unmap_pages', '!(xa_to_value(ent) & MOCK_PFN_START_IOVA)', BASE + 2048n],
      ['mock_domain_unmap_pages', '!(xa_to_value(ent) & MOCK_PFN_LAST_IOVA)', BASE + 2048n],
    ]);
    expect(pieces(h, 'D').map((m) => [m.iova, m.size, m.headFlag, m.tailFlag])).toEqual([
      [BASE, 2048n, true, false],
      [BASE + 4096n, 4096n, false, true],
    ]);
    expectRebuildEqual(h);
  });

  it('WARNs for a missing page (and its flag check) before mock-unmap-skips-holes, silently after; returns the full size', () => {
    for (const [flags, expected] of [
      [
        [],
        [
          ['mock_domain_unmap_pages', '!ent', BASE + 2048n],
          ['mock_domain_unmap_pages', '!(xa_to_value(ent) & MOCK_PFN_LAST_IOVA)', BASE + 2048n],
        ],
      ],
      [['mock-unmap-skips-holes'], []],
    ] as const) {
      const h = mock([...flags]);
      iommuMap(h.sim, 'D', BASE, PA, 2048n, RW, 't');
      expect(iommuUnmap(h.sim, 'D', BASE, 4096n, 't')).toBe(4096n);
      expect(warns(h)).toEqual(expected);
      expect(eventsOf(h.sink, 'IommuUnmapped')[0]).toMatchObject({ unmapped: 4096n, removed: [[BASE, 2048n]] });
      expect(eventsOf(h.sink, 'ViolationDetected')).toEqual([]);
      expectRebuildEqual(h);
    }
  });

  it('accepts an unmap that ends on the last page of one map and starts on the first of another', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 4096n, RW, 't');
    iommuMap(h.sim, 'D', BASE + 4096n, PA + 0x10000n, 2048n, RW, 't');
    expect(iommuUnmap(h.sim, 'D', BASE, 6144n, 't')).toBe(6144n);
    expect(h.sim.state.counts).toEqual({ warns: 0, violations: 0 });
    expectRebuildEqual(h);
  });

  it('emits nothing for a zero-size or unaligned call and returns 0', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 4096n, RW, 't');
    const n = h.sink.events.length;
    expect(iommuUnmap(h.sim, 'D', BASE, 0n, 't')).toBe(0n);
    expect(iommuUnmap(h.sim, 'D', BASE + 1n, 2048n, 't')).toBe(0n);
    expect(h.sink.events.length).toBe(n);
  });
});

describe('iommuIovaToPhys', () => {
  it('answers the mock page start, WARNs on an unaligned iova, and WARNs and answers 0 when unmapped', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 4096n, RW, 't');
    expect(iommuIovaToPhys(h.sim, 'D', BASE + 2048n)).toBe(PA + 2048n);
    expect(warns(h)).toEqual([]);
    expect(iommuIovaToPhys(h.sim, 'D', BASE + 2050n)).toBe(PA + 2048n);
    expect(iommuIovaToPhys(h.sim, 'D', BASE + 4096n)).toBe(0n);
    expect(warns(h)).toEqual([
      ['mock_domain_iova_to_phys', 'iova % MOCK_IO_PAGE_SIZE', BASE + 2050n],
      ['mock_domain_iova_to_phys', '!ent', BASE + 4096n],
    ]);
    expectRebuildEqual(h);
  });

  it('answers the exact byte on a generic domain, 0 without a WARN when unmapped', () => {
    const h = generic();
    iommuMap(h.sim, 'G', M2, 4n * M2, M2, RW, 't');
    expect(iommuIovaToPhys(h.sim, 'G', M2 + 0x1234n)).toBe(4n * M2 + 0x1234n);
    expect(iommuIovaToPhys(h.sim, 'G', 0n)).toBe(0n);
    expect(warns(h)).toEqual([]);
  });
});

describe('iommuMap and iommuUnmap on a generic domain', () => {
  it('maps a 2M-aligned 2 MiB range as one IOPTE, and a 4 KiB unmap inside it removes and returns 2 MiB', () => {
    const h = generic();
    expect(iommuMap(h.sim, 'G', M2, 4n * M2, M2, RW, 't')).toBe(0);
    expect(pieces(h, 'G').map((m) => [m.iova, m.size, m.pgsize])).toEqual([[M2, M2, M2]]);
    const from = h.sink.events.length;
    expect(iommuUnmap(h.sim, 'G', M2 + 0x10000n, K4, 'test')).toBe(M2);
    expect(typesSince(h.sink, from)).toEqual(['ViolationDetected', 'IommuUnmapped']);
    expect(eventsOf(h.sink, 'ViolationDetected')[0]?.kind).toBe('domain_pairing');
    expect(eventsOf(h.sink, 'IommuUnmapped')[0]).toMatchObject({
      iova: M2 + 0x10000n,
      size: K4,
      unmapped: M2,
      removed: [[M2, M2]],
    });
    expect(h.sim.state.domains['G']?.mappings.tree.size).toBe(0);
    expectRebuildEqual(h);
  });

  it('splits an unaligned map into 4K, 2M and 4K IOPTEs, as the core chooses', () => {
    const h = generic();
    expect(iommuMap(h.sim, 'G', M2 - K4, 4n * M2 - K4, M2 + 2n * K4, RW, 't')).toBe(0);
    expect(pieces(h, 'G').map((m) => [m.iova, m.size, m.pgsize, m.extent])).toEqual([
      [M2 - K4, K4, K4, 1],
      [M2, M2, M2, 1],
      [2n * M2, K4, K4, 1],
    ]);
    expect(iommuUnmap(h.sim, 'G', M2 - K4, M2 + 2n * K4, 't')).toBe(M2 + 2n * K4);
    expect(h.sim.state.counts).toEqual({ warns: 0, violations: 0 });
    expectRebuildEqual(h);
  });

  it('stops at a hole and returns less', () => {
    const h = generic();
    iommuMap(h.sim, 'G', 0n, PA, 2n * K4, RW, 't');
    iommuMap(h.sim, 'G', 3n * K4, PA + 0x10000n, K4, RW, 't');
    expect(iommuUnmap(h.sim, 'G', 0n, 4n * K4, 't')).toBe(2n * K4);
    expect(eventsOf(h.sink, 'IommuUnmapped')[0]).toMatchObject({ unmapped: 2n * K4, removed: [[0n, 2n * K4]] });
    expect(pieces(h, 'G').map((m) => m.iova)).toEqual([3n * K4]);
    expect(h.sim.state.counts).toEqual({ warns: 0, violations: 0 });
    expectRebuildEqual(h);
  });

  it('refuses a map over a present IOPTE with -EEXIST and a WARN, mapping nothing', () => {
    const h = generic();
    iommuMap(h.sim, 'G', 0n, PA, 2n * K4, RW, 't');
    expect(iommuMap(h.sim, 'G', K4, PA, 2n * K4, RW, 't')).toBe(-EEXIST);
    expect(warns(h)).toEqual([['iommu_map', 'IOPTE already present', K4]]);
    expect(eventsOf(h.sink, 'IommuMapped')).toHaveLength(1);
    expect(h.sim.state.domains['G']?.mappedBytes).toBe(2n * K4);
    expectRebuildEqual(h);
  });
});

describe('domainFree', () => {
  it('WARNs when mappings remain, then frees', () => {
    const h = mock();
    iommuMap(h.sim, 'D', BASE, PA, 2048n, RW, 't');
    domainFree(h.sim, 'D');
    expect(eventsOf(h.sink, 'Warned').map((w) => [w.fn, w.condition, w.objects])).toEqual([
      ['mock_domain_free', 'freeing with mappings', { domain: 'D', mappedBytes: 2048n }],
    ]);
    expect(h.sim.state.domains['D']).toBeUndefined();
    domainAlloc(h.sim, 'E', 'mock');
    domainFree(h.sim, 'E');
    expect(h.sim.state.counts.warns).toBe(1);
    expectRebuildEqual(h);
  });
});

describe('the mock domain against a per-page model of its xarray', () => {
  it('WARNs exactly as the page-by-page driver does and maps the same pages, with and without mock-unmap-skips-holes', () => {
    const step = fc.record({
      unmap: fc.boolean(),
      at: fc.integer({ min: 0, max: 15 }),
      n: fc.integer({ min: 1, max: 6 }),
      pa: fc.integer({ min: 1, max: 1000 }),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), fc.boolean(), (steps, skip) => {
        const h = mock(skip ? ['mock-unmap-skips-holes'] : []);
        const pages = new Map<number, { pa: bigint; flag: boolean }>();
        for (const s of steps) {
          const iova = BASE + BigInt(s.at) * 2048n;
          const size = BigInt(s.n) * 2048n;
          let warnsExpected = 0;
          if (!s.unmap) {
            for (let i = 0; i < s.n; i++) {
              if (pages.has(s.at + i)) warnsExpected++;
              pages.set(s.at + i, { pa: BigInt(s.pa + i) * 2048n, flag: i === 0 || i === s.n - 1 });
            }
          } else {
            for (let i = 0; i < s.n; i++) {
              const ent = pages.get(s.at + i);
              pages.delete(s.at + i);
              if (!skip && ent === undefined) warnsExpected++;
              const bad = skip ? ent !== undefined && !ent.flag : ent === undefined || !ent.flag;
              if (i === 0 && bad) warnsExpected++;
              if (i === s.n - 1 && bad) warnsExpected++;
            }
          }
          const before = h.sim.state.counts.warns;
          if (s.unmap) expect(iommuUnmap(h.sim, 'D', iova, size, 't')).toBe(size);
          else expect(iommuMap(h.sim, 'D', iova, BigInt(s.pa) * 2048n, size, RW, 't')).toBe(0);
          expect(h.sim.state.counts.warns - before).toBe(warnsExpected);
          for (let p = 0; p < 24; p++) {
            const at = BASE + BigInt(p) * 2048n;
            const m = pieces(h, 'D').find((x) => x.iova <= at && at < x.iova + x.size);
            expect([p, m === undefined ? null : m.paddr + (at - m.iova)]).toEqual([p, pages.get(p)?.pa ?? null]);
          }
        }
        expect(h.sim.state.domains['D']?.mappedBytes).toBe(BigInt(pages.size) * 2048n);
        expectRebuildEqual(h);
      }),
      { numRuns: 300 },
    );
  });
});
