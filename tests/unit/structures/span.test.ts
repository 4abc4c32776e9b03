// SPDX-License-Identifier: GPL-2.0-only
import fc from 'fast-check';
import { produce } from 'immer';
import { describe, expect, it } from 'vitest';
import { type IntervalTree, type Key, itreeCreate, itreeInsert } from '../../../src/structures/interval-tree.js';
import {
  type SpanIter,
  doubleSpanIterFirst,
  doubleSpanIterNext,
  doubleSpans,
  spanIterAdvance,
  spanIterDone,
  spanIterFirst,
  spanIterNext,
  spans,
} from '../../../src/structures/span.js';

function build<K extends Key>(items: readonly (readonly [K, K])[]): IntervalTree<K> {
  const tree = itreeCreate<K>();
  items.forEach(([start, last], i) => itreeInsert(tree, i, start, last));
  return tree;
}

const view = <K extends Key>(it: SpanIter<K>): [number, K, K] | 'done' =>
  spanIterDone(it) ? 'done' : [it.isHole, it.start, it.last];

describe('span iterator', () => {
  const tree = build<number>([
    [3, 5],
    [6, 8],
    [12, 14],
  ]);

  it('merges adjacent nodes 3..5 and 6..8 into one used span and clips to the range', () => {
    expect([...spans(tree, 0, 20)]).toEqual([
      { isHole: true, start: 0, last: 2 },
      { isHole: false, start: 3, last: 8 },
      { isHole: true, start: 9, last: 11 },
      { isHole: false, start: 12, last: 14 },
      { isHole: true, start: 15, last: 20 },
    ]);
    expect([...spans(tree, 4, 13)]).toEqual([
      { isHole: false, start: 4, last: 8 },
      { isHole: true, start: 9, last: 11 },
      { isHole: false, start: 12, last: 13 },
    ]);
  });

  it('merges overlapping and nested nodes', () => {
    const t = build<number>([
      [0, 10],
      [2, 3],
      [9, 15],
      [20, 20],
    ]);
    expect([...spans(t, 0, 21)]).toEqual([
      { isHole: false, start: 0, last: 15 },
      { isHole: true, start: 16, last: 19 },
      { isHole: false, start: 20, last: 20 },
      { isHole: true, start: 21, last: 21 },
    ]);
  });

  it('yields one hole for an empty tree', () => {
    expect([...spans(itreeCreate<bigint>(), 5n, 9n)]).toEqual([{ isHole: true, start: 5n, last: 9n }]);
  });

  describe('advance', () => {
    it('moves only the start when the new index is inside the current hole', () => {
      const it0 = spanIterFirst(tree, 0, 20);
      spanIterAdvance(it0, tree, 1);
      expect(view(it0)).toEqual([1, 1, 2]);
    });

    it('moves only the start when the new index is inside the current used span', () => {
      const it0 = spanIterFirst(tree, 0, 20);
      spanIterNext(it0, tree);
      spanIterAdvance(it0, tree, 5);
      expect(view(it0)).toEqual([0, 5, 8]);
    });

    it('behaves as next when the new index is one past the current span', () => {
      const it0 = spanIterFirst(tree, 0, 20);
      spanIterNext(it0, tree);
      spanIterAdvance(it0, tree, 9);
      expect(view(it0)).toEqual([1, 9, 11]);
      spanIterNext(it0, tree);
      expect(view(it0)).toEqual([0, 12, 14]);
    });

    it('searches afresh when the new index is further on', () => {
      const it0 = spanIterFirst(tree, 0, 20);
      spanIterNext(it0, tree);
      spanIterAdvance(it0, tree, 13);
      expect(view(it0)).toEqual([0, 13, 14]);
      spanIterNext(it0, tree);
      expect(view(it0)).toEqual([1, 15, 20]);
      spanIterNext(it0, tree);
      expect(view(it0)).toBe('done');
    });

    it('still visits the last index itself, and is done beyond it', () => {
      const it0 = spanIterFirst(tree, 0, 20);
      spanIterAdvance(it0, tree, 20);
      expect(view(it0)).toEqual([1, 20, 20]);
      spanIterAdvance(it0, tree, 21);
      expect(view(it0)).toBe('done');
    });
  });

  describe('reading the tree lazily', () => {
    it('sees a node inserted beyond what it has read', () => {
      const t = build<number>([
        [0, 3],
        [5, 6],
        [10, 12],
      ]);
      const it0 = spanIterFirst(t, 0, 20);
      itreeInsert(t, 50, 15, 16);
      const seen: unknown[] = [view(it0)];
      for (spanIterNext(it0, t); !spanIterDone(it0); spanIterNext(it0, t)) seen.push(view(it0));
      expect(seen).toEqual([
        [0, 0, 3],
        [1, 4, 4],
        [0, 5, 6],
        [1, 7, 9],
        [0, 10, 12],
        [1, 13, 14],
        [0, 15, 16],
        [1, 17, 20],
      ]);
    });

    it('keeps the node it already looked ahead to, as the kernel does', () => {
      const t = build<number>([
        [0, 3],
        [5, 6],
        [10, 12],
      ]);
      const it0 = spanIterFirst(t, 0, 20);
      spanIterNext(it0, t);
      expect(view(it0)).toEqual([1, 4, 4]);
      itreeInsert(t, 50, 7, 9);
      spanIterNext(it0, t);
      expect(view(it0)).toEqual([0, 5, 6]);
      spanIterNext(it0, t);
      expect(view(it0)).toEqual([1, 7, 9]);
    });

    it('follows a tree replaced by immer between steps when given a getter', () => {
      let t = build<number>([
        [0, 3],
        [10, 12],
      ]);
      const gen = spans(() => t, 0, 20);
      expect(gen.next().value).toEqual({ isHole: false, start: 0, last: 3 });
      t = produce(t, (draft) => {
        itreeInsert(draft, 7, 13, 18);
      });
      expect([...gen]).toEqual([
        { isHole: true, start: 4, last: 9 },
        { isHole: false, start: 10, last: 18 },
        { isHole: true, start: 19, last: 20 },
      ]);
    });
  });
});

describe('double-span iterator', () => {
  it('gives tree A priority and cuts B spans and holes at the nearer boundary', () => {
    const a = build<number>([[2, 4]]);
    const b = build<number>([
      [0, 6],
      [9, 9],
    ]);
    expect([...doubleSpans(a, b, 0, 10)]).toEqual([
      { isUsed: 2, start: 0, last: 1 },
      { isUsed: 1, start: 2, last: 4 },
      { isUsed: 2, start: 5, last: 6 },
      { isUsed: 0, start: 7, last: 8 },
      { isUsed: 2, start: 9, last: 9 },
      { isUsed: 0, start: 10, last: 10 },
    ]);
  });

  it('reports -1 once the emitted span reaches the last index', () => {
    const a = build<bigint>([[0n, 2n ** 64n - 1n]]);
    const b = itreeCreate<bigint>();
    const it0 = doubleSpanIterFirst(a, b, 2n ** 64n - 3n, 2n ** 64n - 1n);
    expect([it0.isUsed, it0.start, it0.last]).toEqual([1, 2n ** 64n - 3n, 2n ** 64n - 1n]);
    doubleSpanIterNext(it0, a, b);
    expect(it0.isUsed).toBe(-1);
  });
});

// ---- per-index oracles ----------------------------------------------------------------------------------------

const DOMAIN = 48;

/** Maximal runs of equal class over [first, last]. */
function runsOf(
  first: number,
  last: number,
  classify: (i: number) => number,
): { cls: number; start: number; last: number }[] {
  const out: { cls: number; start: number; last: number }[] = [];
  for (let i = first; i <= last; i++) {
    const cls = classify(i);
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.cls === cls) prev.last = i;
    else out.push({ cls, start: i, last: i });
  }
  return out;
}

const covers = (items: readonly (readonly [number, number])[], i: number): boolean =>
  items.some(([s, l]) => s <= i && i <= l);

const intervalArb = fc
  .tuple(fc.integer({ min: 0, max: DOMAIN - 1 }), fc.integer({ min: 0, max: 9 }))
  .map(([s, len]) => [s, Math.min(DOMAIN - 1, s + len)] as const);
/** Chains of touching intervals make adjacency common, on top of random overlap and nesting. */
const treeArb = fc
  .tuple(
    fc.array(intervalArb, { maxLength: 8 }),
    fc.integer({ min: 0, max: DOMAIN - 1 }),
    fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }),
  )
  .map(([random, chainStart, chainLens]) => {
    const items: (readonly [number, number])[] = [...random];
    let s = chainStart;
    for (const len of chainLens) {
      if (s + len >= DOMAIN) break;
      items.push([s, s + len]);
      s += len + 1;
    }
    return items;
  });
const rangeArb = fc
  .tuple(fc.integer({ min: 0, max: DOMAIN - 1 }), fc.integer({ min: 0, max: DOMAIN - 1 }))
  .map(([x, y]) => (x <= y ? ([x, y] as const) : ([y, x] as const)));

function checkOracles<K extends Key>(key: (n: number) => K, unkey: (k: K) => number): void {
  fc.assert(
    fc.property(treeArb, treeArb, rangeArb, (itemsA, itemsB, [first, last]) => {
      const a = build<K>(itemsA.map(([s, l]) => [key(s), key(l)] as const));
      const b = build<K>(itemsB.map(([s, l]) => [key(s), key(l)] as const));

      const single = [...spans(a, key(first), key(last))].map((s) => ({
        cls: s.isHole ? 0 : 1,
        start: unkey(s.start),
        last: unkey(s.last),
      }));
      expect(single).toEqual(runsOf(first, last, (i) => (covers(itemsA, i) ? 1 : 0)));

      const double = [...doubleSpans(a, b, key(first), key(last))].map((s) => ({
        cls: s.isUsed,
        start: unkey(s.start),
        last: unkey(s.last),
      }));
      expect(double).toEqual(runsOf(first, last, (i) => (covers(itemsA, i) ? 1 : covers(itemsB, i) ? 2 : 0)));
    }),
    { numRuns: 500 },
  );
}

describe('span iterators against the per-index oracle', () => {
  it('agree on random trees and ranges with number keys', () => {
    checkOracles<number>(
      (n) => n,
      (k) => k,
    );
  });

  it('agree on random trees and ranges with bigint keys ending at 2^64 - 1', () => {
    const base = 2n ** 64n - BigInt(DOMAIN);
    checkOracles<bigint>(
      (n) => base + BigInt(n),
      (k) => Number(k - base),
    );
  });
});
