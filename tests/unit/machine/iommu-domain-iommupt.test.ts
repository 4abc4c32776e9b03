// The selftest mock domain of the two eras side by side: the xarray of v3 .. v6.18 and the iommupt page
// table of [up:mock-iommupt] (e93d5945ed5b, v6.19). Each test gives the exact return values, events and
// WARNs of both for one behaviour that differs.
import { describe, expect, it } from 'vitest';
import { mappingsPieces } from '../../../src/structures/mapping-table.js';
import { EADDRINUSE, ENOENT, ENOMEM } from '../../../src/machine/errno.js';
import {
  MOCK_PT_PGSIZES,
  domainAlloc,
  domainFree,
  domainPgsizeMin,
  iommuIovaToPhys,
  iommuMap,
  iommuUnmap,
} from '../../../src/machine/iommu-domain.js';
import { type World, eventsOf, expectRebuildEqual, world } from '../../support/world.js';

const BASE = 1n << 24n;
const PA = 1n << 30n;
const K4 = 4096n;
const M1 = 1n << 20n;
const M2 = 1n << 21n;
const RW = { read: true, write: true };

/** A merged test build with the mock of one era: `xarray` (no flag) or `iommupt` (mock-iommupt). */
function mock(era: 'xarray' | 'iommupt', pageSize = 4096) {
  const h = world(era === 'iommupt' ? ['mock-iommupt'] : [], { merged: true, pageSize });
  domainAlloc(h.sim, 'D', 'mock');
  return h;
}

const pieces = (h: World) => mappingsPieces(h.sim.state.domains['D']!.mappings).map((m) => [m.iova, m.size, m.pgsize]);
const warns = (h: World) => eventsOf(h.sink, 'Warned').map((w) => [w.fn, w.condition, w.objects['iova']]);
const tables = (h: World) => Object.keys(h.sim.state.domains['D']!.ioPageTables ?? {});
const tableEvents = (h: World) => eventsOf(h.sink, 'IoPageTablesChanged').map((e) => [e.allocated, e.freed, e.fn]);
const unmaps = (h: World) =>
  eventsOf(h.sink, 'IommuUnmapped').map((e) => [e.iova, e.size, e.unmapped, e.removed, e.fn]);

describe('IO page sizes', () => {
  it('xarray: PAGE_SIZE / 2 only; iommupt: every power of two from 2 KiB to 128 GiB, whatever PAGE_SIZE is', () => {
    expect(mock('xarray').sim.state.domains['D']!.pgsizes).toEqual([2048n]);
    expect(mock('xarray', 65536).sim.state.domains['D']!.pgsizes).toEqual([32768n]);
    for (const page of [4096, 65536]) {
      const h = mock('iommupt', page);
      expect(h.sim.state.domains['D']!.pgsizes).toEqual(MOCK_PT_PGSIZES);
      expect(domainPgsizeMin(h.sim.state, 'D')).toBe(2048n);
      expect(eventsOf(h.sink, 'DomainAllocated')[0]).toMatchObject({ pageTable: 'iommupt', kind: 'mock' });
      expect(tables(h)).toEqual([]);
      expectRebuildEqual(h);
    }
    expect(MOCK_PT_PGSIZES).toHaveLength(27);
    expect(MOCK_PT_PGSIZES[0]).toBe(2048n);
    expect(MOCK_PT_PGSIZES[26]).toBe(1n << 37n);
  });

  it('a 2 MiB aligned map is one 2 MiB IOPTE on iommupt, one piece of 2 KiB pages on the xarray', () => {
    const old = mock('xarray');
    const pt = mock('iommupt');
    expect(iommuMap(old.sim, 'D', BASE, PA, M2 + K4, RW, 't')).toBe(0);
    expect(iommuMap(pt.sim, 'D', BASE, PA, M2 + K4, RW, 't')).toBe(0);
    expect(pieces(old)).toEqual([[BASE, M2 + K4, 2048n]]);
    expect(pieces(pt)).toEqual([
      [BASE, M2, M2],
      [BASE + M2, K4, K4],
    ]);
    // The 2 MiB leaf lives in the level-1 table, the 4 KiB one needs a level-0 table under it.
    expect(tableEvents(pt)).toEqual([
      [
        [
          [1, 0n],
          [0, BASE + M2],
        ],
        [],
        'pt_iommu_amdv1_mock_map_pages',
      ],
    ]);
    expect(tables(pt)).toEqual(['0@0x1200000', '1@0x0']);
    expectRebuildEqual(old);
    expectRebuildEqual(pt);
  });
});

describe('map over a present entry', () => {
  it('xarray: WARNs per mock page and overwrites; iommupt: -EADDRINUSE, no WARN, the core unmaps what it mapped', () => {
    const old = mock('xarray');
    const pt = mock('iommupt');
    for (const h of [old, pt]) expect(iommuMap(h.sim, 'D', BASE + 2n * K4, PA, K4, RW, 't')).toBe(0);
    // PA + 4 KiB keeps the second map in 4 KiB IOPTEs: two go in before the third meets the present one.
    expect(iommuMap(old.sim, 'D', BASE, PA + K4, 4n * K4, RW, 't')).toBe(0);
    expect(iommuMap(pt.sim, 'D', BASE, PA + K4, 4n * K4, RW, 't')).toBe(-EADDRINUSE);
    expect(warns(old)).toEqual([
      ['mock_domain_map_pages', 'old', BASE + 2n * K4],
      ['mock_domain_map_pages', 'old', BASE + 2n * K4 + 2048n],
    ]);
    expect(warns(pt)).toEqual([]);
    expect(eventsOf(pt.sink, 'IommuMapped').map((e) => [e.iova, e.size])).toEqual([
      [BASE + 2n * K4, K4],
      [BASE, 2n * K4],
    ]);
    expect(unmaps(pt)).toEqual([[BASE, 2n * K4, 2n * K4, [[BASE, 2n * K4]], '__iommu_map']]);
    expect(pieces(pt)).toEqual([[BASE + 2n * K4, K4, K4]]);
    expect(pieces(old)).toEqual([[BASE, 4n * K4, 2048n]]);
    expectRebuildEqual(old);
    expectRebuildEqual(pt);
  });
});

describe('fail-nth points of a map', () => {
  it('xarray: iommufd_should_fail fails the call with -ENOENT; iommupt: each table level allocated is a point (-ENOMEM)', () => {
    const old = mock('xarray');
    old.sim.runFailNth = 1;
    expect(iommuMap(old.sim, 'D', BASE, PA, K4, RW, 'batch_to_domain')).toBe(-ENOENT);
    expect(eventsOf(old.sink, 'FaultInjected').map((e) => [e.site, e.fn])).toEqual([['iommu_map', 'batch_to_domain']]);

    const points: [number, number, string[]][] = [];
    for (let n = 1; n <= 3; n++) {
      const pt = mock('iommupt');
      pt.sim.runFailNth = n;
      const rc = iommuMap(pt.sim, 'D', BASE, PA, K4, RW, 'batch_to_domain');
      points.push([n, rc, tables(pt)]);
      expect(eventsOf(pt.sink, 'IommuMapped')).toHaveLength(rc === 0 ? 1 : 0);
      expect(eventsOf(pt.sink, 'FaultInjected').map((e) => [e.site, e.fn, e.nth])).toEqual(
        rc === 0 ? [] : [['iommu_pages', 'pt_iommu_new_table', n]],
      );
      expectRebuildEqual(pt);
    }
    // N = 1: the level-1 table; N = 2: the level-0 table (the level-1 one stays); N = 3: nothing left to fail.
    expect(points).toEqual([
      [1, -ENOMEM, []],
      [2, -ENOMEM, ['1@0x0']],
      [3, 0, ['0@0x1000000', '1@0x0']],
    ]);
  });

  it('iommupt: a failure halfway maps the leaves before it, then the core unmaps them', () => {
    const pt = mock('iommupt');
    // [BASE + 1 MiB - 4 KiB, + 8 KiB) crosses into the next 1 MiB: its second leaf needs a second level-0 table.
    pt.sim.runFailNth = 3;
    expect(iommuMap(pt.sim, 'D', BASE + M1 - K4, PA, 2n * K4, RW, 't')).toBe(-ENOMEM);
    expect(tables(pt)).toEqual(['0@0x1000000', '1@0x0']);
    expect(eventsOf(pt.sink, 'IommuMapped').map((e) => [e.iova, e.size])).toEqual([[BASE + M1 - K4, K4]]);
    expect(unmaps(pt)).toEqual([[BASE + M1 - K4, K4, K4, [[BASE + M1 - K4, K4]], '__iommu_map']]);
    expect(pieces(pt)).toEqual([]);
    expectRebuildEqual(pt);
  });
});

describe('unmap', () => {
  it('over a hole: xarray returns the whole size and WARNs per missing page; iommupt stops at the hole', () => {
    // v6.6's xarray mock: mock-unmap-skips-holes (v6.7) would erase the same without the '!ent' WARNs.
    const old = mock('xarray');
    const pt = mock('iommupt');
    for (const h of [old, pt]) {
      expect(iommuMap(h.sim, 'D', BASE, PA, K4, RW, 't')).toBe(0);
      expect(iommuMap(h.sim, 'D', BASE + 2n * K4, PA, K4, RW, 't')).toBe(0);
    }
    expect(iommuUnmap(old.sim, 'D', BASE, 3n * K4, 't')).toBe(3n * K4);
    expect(iommuUnmap(pt.sim, 'D', BASE, 3n * K4, 't')).toBe(K4);
    // The call's first and last mock pages carry their START / LAST bits: only the two missing pages WARN.
    expect(warns(old)).toEqual([
      ['mock_domain_unmap_pages', '!ent', BASE + K4],
      ['mock_domain_unmap_pages', '!ent', BASE + K4 + 2048n],
    ]);
    expect(warns(pt)).toEqual([]);
    expect(pieces(pt)).toEqual([[BASE + 2n * K4, K4, K4]]);
    expect(pieces(old)).toEqual([]);
    expectRebuildEqual(old);
    expectRebuildEqual(pt);
  });

  it('iommupt: one that starts inside a large IOPTE removes nothing, one that ends inside removes all of it', () => {
    const pt = mock('iommupt');
    expect(iommuMap(pt.sim, 'D', BASE, PA, M2, RW, 't')).toBe(0);
    expect(iommuUnmap(pt.sim, 'D', BASE + K4, K4, 'inside')).toBe(0n);
    expect(pieces(pt)).toEqual([[BASE, M2, M2]]);
    expect(iommuUnmap(pt.sim, 'D', BASE, K4, 'ends')).toBe(M2);
    expect(unmaps(pt)).toEqual([
      [BASE + K4, K4, 0n, [], 'inside'],
      [BASE, K4, M2, [[BASE, M2]], 'ends'],
    ]);
    expect(pieces(pt)).toEqual([]);
    // The xarray mock has no large pages: the same first unmap erases one 4 KiB of the map, with flag WARNs.
    const old = mock('xarray');
    expect(iommuMap(old.sim, 'D', BASE, PA, M2, RW, 't')).toBe(0);
    expect(iommuUnmap(old.sim, 'D', BASE + K4, K4, 'inside')).toBe(K4);
    expect(warns(old).map((w) => [w[1], w[2]])).toEqual([
      ['!(xa_to_value(ent) & MOCK_PFN_START_IOVA)', BASE + K4],
      ['!(xa_to_value(ent) & MOCK_PFN_LAST_IOVA)', BASE + K4 + 2048n],
    ]);
    expectRebuildEqual(pt);
    expectRebuildEqual(old);
  });

  it('iommupt: frees the tables whose whole span it emptied, and keeps the others', () => {
    const pt = mock('iommupt');
    // PA + 2 KiB: 2 KiB leaves only, all in the level-0 table of [BASE, BASE + 1 MiB).
    expect(iommuMap(pt.sim, 'D', BASE, PA + 2048n, M1, RW, 't')).toBe(0);
    expect(iommuMap(pt.sim, 'D', BASE + M1, PA, K4, RW, 't')).toBe(0);
    expect(tables(pt)).toEqual(['0@0x1000000', '0@0x1100000', '1@0x0']);
    expect(iommuUnmap(pt.sim, 'D', BASE + M1, K4, 't')).toBe(K4);
    expect(iommuUnmap(pt.sim, 'D', BASE, M1, 't')).toBe(M1);
    expect(tableEvents(pt).slice(2)).toEqual([[[], [[0, BASE]], 'pt_iommu_amdv1_mock_unmap_pages']]);
    expect(tables(pt)).toEqual(['0@0x1100000', '1@0x0']);
    expectRebuildEqual(pt);
  });

  it('iommupt: a larger leaf over an empty table frees the table (clear_contig)', () => {
    const pt = mock('iommupt');
    expect(iommuMap(pt.sim, 'D', BASE, PA, K4, RW, 't')).toBe(0);
    expect(iommuUnmap(pt.sim, 'D', BASE, K4, 't')).toBe(K4);
    expect(tables(pt)).toEqual(['0@0x1000000', '1@0x0']);
    expect(iommuMap(pt.sim, 'D', BASE, PA, M1, RW, 't')).toBe(0);
    expect(tableEvents(pt).at(-1)).toEqual([[], [[0, BASE]], 'pt_iommu_amdv1_mock_map_pages']);
    expect(tables(pt)).toEqual(['1@0x0']);
    expect(pieces(pt)).toEqual([[BASE, M1, M1]]);
    expectRebuildEqual(pt);
  });
});

describe('iova_to_phys and free', () => {
  it('xarray WARNs on an unaligned iova and on a hole and answers the mock page; iommupt answers exactly, silently', () => {
    const old = mock('xarray');
    const pt = mock('iommupt');
    for (const h of [old, pt]) expect(iommuMap(h.sim, 'D', BASE, PA, K4, RW, 't')).toBe(0);
    expect(iommuIovaToPhys(old.sim, 'D', BASE + 100n)).toBe(PA);
    expect(iommuIovaToPhys(pt.sim, 'D', BASE + 100n)).toBe(PA + 100n);
    expect(iommuIovaToPhys(old.sim, 'D', BASE + K4)).toBe(0n);
    expect(iommuIovaToPhys(pt.sim, 'D', BASE + K4)).toBe(0n);
    expect(warns(old)).toEqual([
      ['mock_domain_iova_to_phys', 'iova % MOCK_IO_PAGE_SIZE', BASE + 100n],
      ['mock_domain_iova_to_phys', '!ent', BASE + K4],
    ]);
    expect(warns(pt)).toEqual([]);
  });

  it('freeing a domain that still maps something: mock_domain_free WARNs on the xarray, pt_iommu_deinit does not', () => {
    const old = mock('xarray');
    const pt = mock('iommupt');
    for (const h of [old, pt]) {
      expect(iommuMap(h.sim, 'D', BASE, PA, K4, RW, 't')).toBe(0);
      domainFree(h.sim, 'D');
      expect(h.sim.state.domains['D']).toBeUndefined();
      expectRebuildEqual(h);
    }
    expect(warns(old)).toEqual([['mock_domain_free', 'freeing with mappings', undefined]]);
    expect(warns(pt)).toEqual([]);
  });

  it('iommupt: a map with neither READ nor WRITE WARNs in map_pages and fails (-EINVAL) without map-requires-prot', () => {
    const pt = mock('iommupt');
    expect(iommuMap(pt.sim, 'D', BASE, PA, K4, { read: false, write: false }, 't')).toBe(-22);
    expect(warns(pt)).toEqual([['pt_iommu_amdv1_mock_map_pages', '!(prot & (IOMMU_READ | IOMMU_WRITE))', BASE]]);
    expect(pieces(pt)).toEqual([]);
  });
});
