// SPDX-License-Identifier: GPL-2.0-only
/**
 * Specs of the area fill/unfill and access paths of pages.c, each as given (a state built from events), when
 * (one kernel function), then (the exact events it emitted and the state it left). One pin per page backs
 * every user of an index (the domains and the access xarray share it), which is what these specs pin down.
 */
import { describe, expect, it } from 'vitest';
import {
  ioptAllocPages,
  ioptAreaAddAccess,
  ioptAreaFillDomains,
  ioptAreaRemoveAccess,
  ioptAreaUnfillDomains,
} from '../../../../src/kernel/pages.js';
import {
  PAGE,
  type World,
  area,
  callerArray,
  expectRebuildEqual,
  findings,
  ioas,
  mapRuns,
  mappedRanges,
  mockDomain,
  ofType,
  pinRuns,
  proc,
  setAreaPages,
  when,
  world,
  xaContents,
} from '../../../support/world.js';

const UPTR = 0x7f0000000000n;
const IOVA = 1n << 24n;
const P = 0x40000;
const Q = 0x40010;

/** Given: process p1 with 4 pages at UPTR in two physical runs (P, P+1 and Q, Q+1), their iopt_pages, and an
 * area of IOAS A over all of it, with mock domain d1 attached to A. */
function givenArea(): { w: World; pages: number; area: number } {
  const w = world('upstream');
  const mm = proc(w, 'p1');
  mapRuns(w, mm, Number(UPTR / BigInt(PAGE)), [
    [P, 2],
    [Q, 2],
  ]);
  const pages = ioptAllocPages(w.sim, UPTR, BigInt(4 * PAGE), true);
  mockDomain(w, 'd1');
  ioas(w, 'A', ['d1']);
  return { w, pages, area: area(w, 'A', IOVA, 0, 3) };
}

/** Given the area filled into d1 and linked to its pages, as IOAS_MAP leaves it. */
function givenFilledArea(): { w: World; pages: number; area: number } {
  const g = givenArea();
  expect(ioptAreaFillDomains(g.w.sim, g.area, g.pages)).toBe(0);
  setAreaPages(g.w, g.area, g.pages);
  return g;
}

/** Given also an access holding indexes 1..2 of the filled area. */
function givenAccessOnFilledArea(): { w: World; pages: number; area: number } {
  const g = givenFilledArea();
  const out = callerArray(g.w, 2);
  expect(ioptAreaAddAccess(g.w.sim, g.area, 1, 2, { slots: [] }, out, true)).toBe(0);
  return g;
}

describe('iopt_area_fill_domains', () => {
  it('pins each physical run once, maps it into the domain, charges the user and the mm, and links the area', () => {
    const { w, pages, area: a } = givenArea();
    const fill = when(w, () => ioptAreaFillDomains(w.sim, a, pages));
    expect(fill.result).toBe(0);
    expect(fill.types).toEqual([
      'HeapAllocated', // pfn_reader_init: the batch
      'HeapAllocated', // pfn_reader_user_pin: the page list
      'PagesPinned',
      'PagesPinned',
      'NpinnedChanged',
      'IommuMapped',
      'IommuMapped',
      'AccountingCharged',
      'LastNpinnedSet',
      'AccountingCharged',
      'AreaStorageDomainSet',
      'ItreeInserted',
      'HeapFreed',
      'HeapFreed',
    ]);
    expect(ofType(fill.events, 'PagesPinned').map((e) => [e.pfn, e.count, e.fn])).toEqual([
      [P, 2, 'pin_user_pages_fast'],
      [Q, 2, 'pin_user_pages_fast'],
    ]);
    expect(ofType(fill.events, 'IommuMapped').map((e) => [e.iova, e.paddr, e.size])).toEqual([
      [IOVA, BigInt(P * PAGE), 0x2000n],
      [IOVA + 0x2000n, BigInt(Q * PAGE), 0x2000n],
    ]);
    expect(ofType(fill.events, 'AccountingCharged').map((e) => [e.counter, e.delta])).toEqual([
      ['user.locked_vm', 4],
      ['mm.pinned_vm', 4],
    ]);
    expect(ofType(fill.events, 'ItreeInserted').map((e) => [e.tree, e.start, e.last])).toEqual([
      [{ kind: 'domains', pages }, 0, 3],
    ]);
    const p = w.sim.state.pages[pages];
    expect([p?.npinned, p?.lastNpinned]).toEqual([4, 4]);
    expect(mappedRanges(w.sim.state, 'd1')).toEqual([[IOVA, 0x4000n]]);
    expect(findings(w)).toBe(0);
    expectRebuildEqual(w);
  });
});

describe('iopt_area_add_access', () => {
  it('takes the PFNs of a domain-filled range from the domain without pinning them again', () => {
    const { w, area: a, pages } = givenFilledArea();
    const out = callerArray(w, 2);
    const add = when(w, () => ioptAreaAddAccess(w.sim, a, 1, 2, { slots: [] }, out, true));
    expect(add.result).toBe(0);
    expect(add.types).toEqual([
      'HeapAllocated',
      'XaStored',
      'XaStored',
      'PagesAccessAllocated',
      'PagesAccessUsersChanged',
      'AreaAccessesChanged',
      'ItreeInserted',
    ]);
    expect(xaContents(w.sim.state, pages)).toEqual([
      [1, P + 1, 1],
      [2, Q, 1],
    ]);
    expect(w.sim.state.pages[pages]?.npinned).toBe(4);
    expect(pinRuns(w.sim.state, P, 2)).toEqual([[1, 2]]);
    expect(findings(w)).toBe(0);
    expectRebuildEqual(w);
  });
});

describe('iopt_area_remove_access', () => {
  it('erases the xarray entries and keeps the pins the domain still needs', () => {
    const { w, area: a, pages } = givenAccessOnFilledArea();
    const remove = when(w, () => ioptAreaRemoveAccess(w.sim, a, 1, 2));
    expect(remove.types).toEqual([
      'AreaAccessesChanged',
      'PagesAccessUsersChanged',
      'ItreeRemoved',
      'XaErased',
      'XaErased',
      'PagesAccessFreed',
      'HeapFreed',
    ]);
    expect(xaContents(w.sim.state, pages)).toEqual([]);
    expect(pinRuns(w.sim.state, P, 2)).toEqual([[1, 2]]);
    expect(w.sim.state.pages[pages]?.npinned).toBe(4);
    expectRebuildEqual(w);
  });
});

describe('iopt_area_unfill_domains', () => {
  it('unmaps the last domain and unpins and uncharges every index when nothing else holds them', () => {
    const { w, area: a, pages } = givenFilledArea();
    const unfill = when(w, () => ioptAreaUnfillDomains(w.sim, a, pages));
    expect(unfill.types).toEqual([
      'ItreeRemoved',
      'IommuUnmapped',
      'PagesUnpinned',
      'NpinnedChanged',
      'PagesUnpinned',
      'NpinnedChanged',
      'AccountingUncharged',
      'LastNpinnedSet',
      'AccountingUncharged',
      'AreaStorageDomainSet',
    ]);
    expect(ofType(unfill.events, 'PagesUnpinned').map((e) => [e.pfn, e.count, e.dirty])).toEqual([
      [P, 2, true],
      [Q, 2, true],
    ]);
    expect(pinRuns(w.sim.state, P, 2)).toEqual([[0, 2]]);
    expect(mappedRanges(w.sim.state, 'd1')).toEqual([]);
    expect([w.sim.state.pages[pages]?.npinned, w.sim.state.pages[pages]?.lastNpinned]).toEqual([0, 0]);
    expectRebuildEqual(w);
  });

  it('leaves the indexes an access holds pinned and charged, unpinning only the rest', () => {
    const { w, area: a, pages } = givenAccessOnFilledArea();
    const unfill = when(w, () => ioptAreaUnfillDomains(w.sim, a, pages));
    expect(ofType(unfill.events, 'PagesUnpinned').map((e) => [e.pfn, e.count])).toEqual([
      [P, 1],
      [Q + 1, 1],
    ]);
    expect(ofType(unfill.events, 'AccountingUncharged').map((e) => [e.counter, e.delta])).toEqual([
      ['user.locked_vm', 2],
      ['mm.pinned_vm', 2],
    ]);
    expect(pinRuns(w.sim.state, P, 2)).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(pinRuns(w.sim.state, Q, 2)).toEqual([
      [1, 1],
      [0, 1],
    ]);
    expect([w.sim.state.pages[pages]?.npinned, w.sim.state.pages[pages]?.lastNpinned]).toEqual([2, 2]);
    expect(xaContents(w.sim.state, pages)).toEqual([
      [1, P + 1, 1],
      [2, Q, 1],
    ]);
    expect(findings(w)).toBe(0);
    expectRebuildEqual(w);
  });
});
