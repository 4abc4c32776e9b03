import { describe, expect, it } from 'vitest';
import {
  btreeCreate,
  btreeDelete,
  btreeEntries,
  btreeFloorValue,
  btreeForEachFrom,
  btreeGet,
  btreeHeight,
  btreeSet,
} from '../../../src/structures/btree.js';
import type { BTree } from '../../../src/structures/btree.js';
import {
  itreeCreate,
  itreeEntries,
  itreeFind,
  itreeInsert,
  itreeIterFirst,
  itreeRemove,
} from '../../../src/structures/interval-tree.js';
import { rangeForEach, rangeGet, rangeMapCreate, rangeSet, rangeUpdate } from '../../../src/structures/range-map.js';
import type { RangeSpec } from '../../../src/structures/range-map.js';
import { xaCreate, xaErase, xaFirstAbsent, xaLoad, xaPresent, xaStore } from '../../../src/structures/xarray.js';
import { markWritten, writeClock, writtenSince } from '../../../src/structures/write-marks.js';

/** Is `container` marked by `write`, and by nothing that only reads it? */
function marks(containers: object[], read: () => void, write: () => void): boolean[] {
  const before = writeClock();
  read();
  const unread = containers.map((c) => writtenSince(c, before));
  expect(unread).toEqual(containers.map(() => false));
  write();
  return containers.map((c) => writtenSince(c, before));
}

const spec: RangeSpec<number> = { keyOf: (v) => String(v) };

describe('write marks', () => {
  it('answer exactly against the clock: a mark after t is seen from t, not from after it', () => {
    const a = {};
    const b = {};
    const t0 = writeClock();
    expect(writtenSince(a, t0)).toBe(false);
    markWritten(a);
    const t1 = writeClock();
    expect(t1).toBe(t0 + 1);
    expect([writtenSince(a, t0), writtenSince(a, t1), writtenSince(b, t0)]).toEqual([true, false, false]);
  });

  it('btree: set (insert, replace), delete, and the splits and merges they cause mark the tree', () => {
    const t: BTree<number, string> = btreeCreate(4);
    const read = (): void => {
      btreeGet(t, 3);
      btreeFloorValue(t, 7);
      btreeForEachFrom(t, undefined, () => true);
      for (const entry of btreeEntries(t)) expect(entry).toHaveLength(2);
    };
    expect(marks([t], read, () => btreeSet(t, 1, 'a'))).toEqual([true]);
    expect(marks([t], read, () => btreeSet(t, 1, 'b'))).toEqual([true]);
    // Enough keys for leaf and branch splits at capacity 4.
    expect(
      marks([t], read, () => {
        for (let k = 2; k <= 40; k++) btreeSet(t, k, String(k));
      }),
    ).toEqual([true]);
    expect(btreeHeight(t)).toBeGreaterThan(2);
    expect(marks([t], read, () => btreeDelete(t, 1))).toEqual([true]);
    // Deleting down to one leaf merges every level.
    expect(
      marks([t], read, () => {
        for (let k = 2; k <= 38; k++) btreeDelete(t, k);
      }),
    ).toEqual([true]);
    expect(btreeHeight(t)).toBe(1);
    expect([...btreeEntries(t)]).toEqual([
      [39, '39'],
      [40, '40'],
    ]);
  });

  it('range map: a write marks the map, also one that only changes a stored segment in place', () => {
    const m = rangeMapCreate<number>();
    const read = (): void => {
      rangeGet(m, 5);
      rangeForEach(m, 0, 100, () => true);
    };
    expect(marks([m], read, () => rangeSet(m, 0, 10, 1, spec))).toEqual([true]);
    // Another value: two equal segments of one length would be stored as one atom, which the update splits.
    expect(marks([m], read, () => rangeSet(m, 20, 10, 3, spec))).toEqual([true]);
    // Same start, new value: the segment is rewritten in place and its tree is not written at all, which is
    // why a part covers the map itself and not only its tree.
    expect(marks([m, m.tree], read, () => rangeUpdate(m, 0, 10, (v) => (v ?? 0) + 1, spec))).toEqual([true, false]);
    expect(rangeGet(m, 3)).toBe(2);
    // Split a segment, then merge it back.
    expect(marks([m, m.tree], read, () => rangeSet(m, 4, 2, 7, spec))).toEqual([true, true]);
    expect(marks([m, m.tree], read, () => rangeSet(m, 4, 2, 2, spec))).toEqual([true, true]);
    expect(marks([m], read, () => rangeSet(m, 0, 30, undefined, spec))).toEqual([true]);
    expect(m.count).toBe(0);
  });

  it('xarray: store, erase, and a store that rewrites a run in place mark the xarray', () => {
    const xa = xaCreate();
    const read = (): void => {
      xaLoad(xa, 3);
      xaPresent(xa, 0, 100);
      xaFirstAbsent(xa, 0, 100);
    };
    expect(marks([xa], read, () => xaStore(xa, 0, 100, 8))).toEqual([true]);
    // Same index, another PFN: the run changes in place, its tree is not written.
    expect(marks([xa, xa.runs], read, () => xaStore(xa, 0, 200, 8))).toEqual([true, false]);
    expect(xaLoad(xa, 3)).toBe(203);
    expect(marks([xa, xa.runs], read, () => xaErase(xa, 2, 2))).toEqual([true, true]);
    expect(marks([xa], read, () => xaErase(xa, 0, 8))).toEqual([true]);
    expect(xa.count).toBe(0);
  });

  it('interval tree: insert and remove (with their rotations) mark the tree; a refused write need not', () => {
    const t = itreeCreate<number>();
    const read = (): void => {
      itreeIterFirst(t, 0, 100);
      itreeFind(t, 1, 0, 5);
      itreeEntries(t);
    };
    expect(
      marks([t], read, () => {
        for (let id = 1; id <= 20; id++) itreeInsert(t, id, id * 2, id * 2 + 3);
      }),
    ).toEqual([true]);
    expect(marks([t], read, () => itreeRemove(t, 7, 14, 17))).toEqual([true]);
    expect(marks([t], read, () => itreeInsert(t, 3, 0, 1))).toEqual([false]);
    expect(marks([t], read, () => itreeRemove(t, 7, 14, 17))).toEqual([false]);
    expect(t.count).toBe(19);
  });
});
