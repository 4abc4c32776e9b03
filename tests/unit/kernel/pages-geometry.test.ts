// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import {
  ioptAreaIndex,
  ioptAreaIndexToIova,
  ioptAreaIndexToIovaLast,
  ioptAreaIova,
  ioptAreaIovaToIndex,
  ioptAreaLastIndex,
  ioptAreaLastIova,
  ioptAreaLength,
  ioptAreaStartByte,
} from '../../../src/kernel/area-geometry.js';
import type { Area } from '../../../src/state/state.js';
import { warns, world } from '../../support/world.js';

/** An area starting 2048 bytes into page 3 of its pages, 3 pages long in PFN terms, ending mid-page 5. */
const area: Area = {
  id: 7,
  ioas: 'A',
  iova: 0x1000800n,
  lastIova: 0x10027ffn,
  pageOffset: 2048,
  firstIndex: 3,
  lastIndex: 5,
  read: true,
  write: true,
  pages: 1,
  storageDomain: null,
  numAccesses: 0,
  preventAccess: false,
};

describe('io_pagetable.h area geometry', () => {
  it('reads the bounds of both trees', () => {
    expect([ioptAreaIndex(area), ioptAreaLastIndex(area), ioptAreaIova(area), ioptAreaLastIova(area)]).toEqual([
      3,
      5,
      0x1000800n,
      0x10027ffn,
    ]);
    expect(ioptAreaLength(area)).toBe(0x2000n);
  });

  it('places iova 0x1000800 at byte 14336 of the pages (page 3, offset 2048) and 0x1001000 in page 4', () => {
    const { sim } = world('upstream');
    expect(ioptAreaStartByte(sim, area, 0x1000800n)).toBe(3 * 4096 + 2048);
    expect(ioptAreaIovaToIndex(sim, area, 0x1000800n)).toBe(3);
    expect(ioptAreaIovaToIndex(sim, area, 0x1001000n)).toBe(4);
    expect(ioptAreaIovaToIndex(sim, area, 0x10027ffn)).toBe(5);
  });

  it('gives the partial first page its own iova and later pages page-aligned iovas', () => {
    const { sim } = world('upstream');
    expect(ioptAreaIndexToIova(sim, area, 3)).toBe(0x1000800n);
    expect(ioptAreaIndexToIova(sim, area, 4)).toBe(0x1001000n);
    expect(ioptAreaIndexToIova(sim, area, 5)).toBe(0x1002000n);
    expect(ioptAreaIndexToIovaLast(sim, area, 3)).toBe(0x1000fffn);
    expect(ioptAreaIndexToIovaLast(sim, area, 4)).toBe(0x1001fffn);
    expect(ioptAreaIndexToIovaLast(sim, area, 5)).toBe(0x10027ffn);
  });

  it('WARNs on a test build for an index or iova outside the area, and not on a production build', () => {
    const t = world('upstream');
    ioptAreaIndexToIova(t.sim, area, 6);
    ioptAreaIndexToIovaLast(t.sim, area, 2);
    ioptAreaStartByte(t.sim, area, 0x1002800n);
    expect(warns(t)).toEqual([
      ['iopt_area_index_to_iova', 'index < iopt_area_index(area) || index > iopt_area_last_index(area)'],
      ['iopt_area_index_to_iova_last', 'index < iopt_area_index(area) || index > iopt_area_last_index(area)'],
      ['iopt_area_start_byte', 'iova < iopt_area_iova(area) || iova > iopt_area_last_iova(area)'],
    ]);
    const p = world('upstream', { testBuild: false });
    ioptAreaIndexToIova(p.sim, area, 6);
    expect(warns(p)).toEqual([]);
  });
});
