// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { compareEffects, namedObjects, renderEvent } from '../../../src/bisect/effects.js';
import type { Event } from '../../../src/events/events.js';
import type { Difference } from '../../../src/state/diff.js';

const alloc = (id: number, fn = 'f'): Event => ({
  type: 'HeapAllocated',
  v: 1,
  alloc: id,
  size: 8,
  owner: 'iommufd',
  tag: 't',
  fn,
});
const free = (id: number, fn = 'f'): Event => ({ type: 'HeapFreed', v: 1, alloc: id, fn });
const pin = (pfn: number, count: number): Event => ({ type: 'PagesPinned', v: 1, pfn, count, fn: 'gup', mm: 1 });

describe('renderEvent', () => {
  it('writes the type, then each field, PFNs in hex', () => {
    expect(renderEvent(pin(0x40000, 2))).toBe('PagesPinned pfn 0x40000 count 2 fn gup mm 1');
  });
});

describe('compareEffects', () => {
  it('keeps events in step, lists one-sided ones, and marks shared events out of order with ~', () => {
    const c = compareEffects([alloc(1), free(1, 'x'), pin(5, 1), free(2)], [alloc(1), free(2), pin(5, 1)]);
    expect(c.rows.map((r) => r.mark)).toEqual(['=', '<', '~', '=', '~']);
    expect(c.rows[2]).toEqual({ mark: '~', a: 'PagesPinned pfn 0x5 count 1 fn gup mm 1', b: null });
    expect(c.rows[4]).toEqual({ mark: '~', a: null, b: 'PagesPinned pfn 0x5 count 1 fn gup mm 1' });
    expect(c.onlyA).toEqual(['HeapFreed alloc 1 fn x']);
    expect(c.onlyB).toEqual([]);
    expect(c.eventsA).toBe(4);
    expect(c.eventsB).toBe(3);
  });

  it('matches repeated events as a multiset', () => {
    const c = compareEffects([pin(5, 1), pin(5, 1), pin(5, 1)], [pin(5, 1)]);
    expect(c.rows.map((r) => r.mark)).toEqual(['=', '<', '<']);
    expect(c.onlyA).toHaveLength(2);
  });
});

describe('namedObjects', () => {
  it('collects allocations, mms, merged PFN ranges and counters from differences and one-sided events', () => {
    const differences: Difference[] = [
      { table: 'mms', key: '1', path: ['users'], at: null, a: -1, b: 0 },
      {
        table: 'frames',
        key: null,
        path: ['pfn 0x40002..0x40003', 'pins'],
        at: { unit: 'pfn', first: 0x40002, last: 0x40003 },
        a: 1,
        b: 0,
      },
    ];
    const named = namedObjects(differences, [free(4), pin(0x40004, 2), { type: 'MmPut', v: 1, mm: 1, fn: 'x' }]);
    expect(named).toEqual({
      allocations: [4],
      mms: [1],
      pfns: [[0x40002, 0x40005]],
      pages: [],
      areas: [],
      domains: [],
      counters: ['mms 1 mm_users'],
    });
  });
});
