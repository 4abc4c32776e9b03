// SPDX-License-Identifier: GPL-2.0-only
import { serialize, deserialize } from 'node:v8';
import fc from 'fast-check';
import { produce } from 'immer';
import { describe, expect, it } from 'vitest';
import { digestEquals } from '../../../src/lib/digest.js';
import {
  type IntervalTree,
  type ItreeEntry,
  type ItreeNode,
  type Key,
  itreeCheck,
  itreeCreate,
  itreeDigestOf,
  itreeEntries,
  itreeFind,
  itreeInsert,
  itreeIterFirst,
  itreeIterNext,
  itreeRemove,
} from '../../../src/structures/interval-tree.js';

function build<K extends Key>(items: readonly [number, K, K][]): IntervalTree<K> {
  const tree = itreeCreate<K>();
  for (const [id, start, last] of items) itreeInsert(tree, id, start, last);
  return tree;
}

const bounds = (e: ItreeEntry<Key> | null): [number, Key, Key] | null => (e === null ? null : [e.id, e.start, e.last]);

describe('itreeInsert / itreeEntries', () => {
  it('orders nodes by start and puts a later equal start after the earlier one', () => {
    const tree = build<number>([
      [1, 5, 10],
      [2, 1, 3],
      [3, 5, 7],
      [4, 12, 20],
    ]);
    expect(itreeEntries(tree).map((e) => [e.id, e.start, e.last])).toEqual([
      [2, 1, 3],
      [1, 5, 10],
      [3, 5, 7],
      [4, 12, 20],
    ]);
    expect(tree.count).toBe(4);
    expect(tree.nextSeq).toBe(4);
    expect(tree.root?.maxLast).toBe(20);
    expect(itreeCheck(tree)).toBeNull();
  });

  it('refuses a duplicate id and an interval with start > last, leaving the tree unchanged', () => {
    const tree = build<number>([[7, 0, 4]]);
    const before = structuredClone(tree);
    expect(itreeInsert(tree, 7, 10, 12)).toBe(false);
    expect(itreeInsert(tree, 8, 6, 5)).toBe(false);
    expect(tree).toEqual(before);
  });

  it('throws when a bigint key would join a tree of numbers', () => {
    const tree = build<Key>([[1, 0, 4]]);
    expect(() => itreeInsert(tree, 2, 5n, 6n)).toThrow(TypeError);
  });
});

describe('itreeRemove / itreeFind', () => {
  it('removes only the node whose id and bounds both match', () => {
    const tree = build<number>([
      [1, 0, 9],
      [2, 0, 9],
    ]);
    expect(itreeRemove(tree, 1, 0, 8)).toBe(false);
    expect(itreeRemove(tree, 3, 0, 9)).toBe(false);
    expect(itreeRemove(tree, 1, 0, 9)).toBe(true);
    expect(itreeFind(tree, 1, 0, 9)).toBe(false);
    expect(itreeFind(tree, 2, 0, 9)).toBe(true);
    expect(itreeRemove(tree, 1, 0, 9)).toBe(false);
    expect(itreeEntries(tree).map((e) => e.id)).toEqual([2]);
    expect(itreeCheck(tree)).toBeNull();
  });
});

describe('itreeIterFirst / itreeIterNext', () => {
  const tree = build<number>([
    [1, 5, 10],
    [2, 1, 3],
    [3, 5, 7],
    [4, 12, 20],
  ]);

  it('walks the nodes intersecting [6, 12] in order: 1, 3, 4', () => {
    const first = itreeIterFirst(tree, 6, 12);
    expect(bounds(first)).toEqual([1, 5, 10]);
    const second = first && itreeIterNext(tree, first, 6, 12);
    expect(bounds(second)).toEqual([3, 5, 7]);
    const third = second && itreeIterNext(tree, second, 6, 12);
    expect(bounds(third)).toEqual([4, 12, 20]);
    expect(third && itreeIterNext(tree, third, 6, 12)).toBeNull();
  });

  it('skips node 3 for [8, 11] because it ends at 7', () => {
    const first = itreeIterFirst(tree, 8, 11);
    expect(bounds(first)).toEqual([1, 5, 10]);
    expect(first && itreeIterNext(tree, first, 8, 11)).toBeNull();
  });

  it('returns null for a range that no node touches', () => {
    expect(itreeIterFirst(tree, 21, 30)).toBeNull();
    expect(itreeIterFirst(tree, 4, 4)).toBeNull();
  });

  it('continues after a prev that has been removed since', () => {
    const t = build<number>([
      [1, 0, 2],
      [2, 4, 6],
      [3, 8, 9],
    ]);
    const prev = itreeIterFirst(t, 0, 9);
    expect(prev && itreeRemove(t, prev.id, prev.start, prev.last)).toBe(true);
    expect(bounds(prev && itreeIterNext(t, prev, 0, 9))).toEqual([2, 4, 6]);
  });

  it('handles bigint keys up to 2^64 - 1', () => {
    const top = 2n ** 64n - 1n;
    const t = build<bigint>([
      [1, top - 10n, top],
      [2, top, top],
      [3, 0n, 4095n],
    ]);
    expect(bounds(itreeIterFirst(t, top, top))).toEqual([1, top - 10n, top]);
    const a = itreeIterFirst(t, top, top);
    expect(bounds(a && itreeIterNext(t, a, top, top))).toEqual([2, top, top]);
    expect(itreeIterFirst(t, 4096n, top - 11n)).toBeNull();
  });
});

describe('interval tree digest', () => {
  it('is the same whatever order the nodes were inserted in', () => {
    const items: [number, number, number][] = [
      [1, 0, 3],
      [2, 2, 9],
      [3, 2, 2],
      [4, 40, 41],
    ];
    const a = build<number>(items);
    const b = build<number>([...items].reverse());
    expect(digestEquals(a.digest, b.digest)).toBe(true);
    expect(digestEquals(a.digest, itreeDigestOf(a))).toBe(true);
  });

  it('returns to zero when every node is removed', () => {
    const t = build<bigint>([
      [1, 5n, 6n],
      [2, 7n, 9n],
    ]);
    itreeRemove(t, 2, 7n, 9n);
    itreeRemove(t, 1, 5n, 6n);
    expect(t.digest).toEqual({ lo: 0, hi: 0 });
    expect(t.root).toBeNull();
    expect(t.byId).toBeNull();
  });
});

describe('interval tree as plain state data', () => {
  const makeBig = (): IntervalTree<number> => {
    const t = itreeCreate<number>();
    for (let i = 0; i < 1000; i++) itreeInsert(t, i, (i * 37) % 1000, ((i * 37) % 1000) + (i % 7));
    return t;
  };

  const nodesOf = (n: ItreeNode<number> | null, out: ItreeNode<number>[] = []): ItreeNode<number>[] => {
    if (n !== null) {
      out.push(n);
      nodesOf(n.left, out);
      nodesOf(n.right, out);
    }
    return out;
  };

  it('gives the same tree under an immer produce as in place, copying only a short path', () => {
    const base = makeBig();
    const next = produce(base, (draft) => {
      itreeInsert(draft, 5000, 500, 505);
      itreeRemove(draft, 10, 370, 373);
    });
    const plain = makeBig();
    itreeInsert(plain, 5000, 500, 505);
    itreeRemove(plain, 10, 370, 373);
    expect(next).toEqual(plain);
    expect(itreeCheck(next)).toBeNull();
    const shared = new Set(nodesOf(base.root));
    const copied = nodesOf(next.root).filter((n) => !shared.has(n)).length;
    expect(copied).toBeLessThanOrEqual(40);
    expect(itreeCheck(base)).toBeNull();
    expect(base.count).toBe(1000);
  });

  it('survives a v8 serialize round trip unchanged', () => {
    const t = build<bigint>([
      [1, 2n ** 63n, 2n ** 64n - 1n],
      [2, 0n, 0n],
    ]);
    const copy = deserialize(serialize(t)) as IntervalTree<bigint>;
    expect(copy).toEqual(t);
    expect(itreeCheck(copy)).toBeNull();
  });
});

// ---- property test against a naive model -------------------------------------------------------------------

interface ModelNode {
  id: number;
  start: number;
  last: number;
  seq: number;
}

type Op =
  | { op: 'insert'; id: number; a: number; b: number }
  | { op: 'removePick'; pick: number }
  | { op: 'removeRandom'; id: number; a: number; b: number }
  | { op: 'iterFirst'; a: number; b: number }
  | { op: 'iterNext'; pick: number; a: number; b: number }
  | { op: 'walk'; a: number; b: number };

const SPAN = 40;
const small = fc.integer({ min: 0, max: SPAN - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      id: fc.integer({ min: 0, max: 60 }),
      a: small,
      b: small,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('removePick' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('removeRandom' as const),
      id: fc.integer({ min: 0, max: 60 }),
      a: small,
      b: small,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('iterFirst' as const), a: small, b: small }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('iterNext' as const), pick: fc.nat(), a: small, b: small }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('walk' as const), a: small, b: small }) },
);

function runAgainstModel<K extends Key>(ops: readonly Op[], key: (n: number) => K, unkey: (k: K) => number): void {
  const tree = itreeCreate<K>();
  let model: ModelNode[] = [];
  let nextSeq = 0;
  const ordered = (): ModelNode[] => [...model].sort((x, y) => x.start - y.start || x.seq - y.seq);
  const hits = (first: number, last: number): ModelNode[] =>
    ordered().filter((m) => m.start <= last && m.last >= first);
  const asModel = (e: ItreeEntry<K> | null): ModelNode | null =>
    e === null ? null : { id: e.id, start: unkey(e.start), last: unkey(e.last), seq: e.seq };

  for (const step of ops) {
    switch (step.op) {
      case 'insert': {
        const expected = step.a <= step.b && !model.some((m) => m.id === step.id);
        expect(itreeInsert(tree, step.id, key(step.a), key(step.b))).toBe(expected);
        if (expected) model.push({ id: step.id, start: step.a, last: step.b, seq: nextSeq++ });
        break;
      }
      case 'removePick': {
        if (model.length === 0) break;
        const m = model[step.pick % model.length] as ModelNode;
        expect(itreeRemove(tree, m.id, key(m.start), key(m.last))).toBe(true);
        model = model.filter((x) => x.id !== m.id);
        break;
      }
      case 'removeRandom': {
        const present = model.some((m) => m.id === step.id && m.start === step.a && m.last === step.b);
        expect(itreeFind(tree, step.id, key(step.a), key(step.b))).toBe(present);
        expect(itreeRemove(tree, step.id, key(step.a), key(step.b))).toBe(present);
        if (present) model = model.filter((x) => x.id !== step.id);
        break;
      }
      case 'iterFirst': {
        const [lo, hi] = step.a <= step.b ? [step.a, step.b] : [step.b, step.a];
        expect(asModel(itreeIterFirst(tree, key(lo), key(hi)))).toEqual(hits(lo, hi)[0] ?? null);
        break;
      }
      case 'iterNext': {
        if (model.length === 0) break;
        const [lo, hi] = step.a <= step.b ? [step.a, step.b] : [step.b, step.a];
        const prev = ordered()[step.pick % model.length] as ModelNode;
        const after = hits(lo, hi).find((m) => m.start > prev.start || (m.start === prev.start && m.seq > prev.seq));
        const prevEntry: ItreeEntry<K> = { id: prev.id, seq: prev.seq, start: key(prev.start), last: key(prev.last) };
        expect(asModel(itreeIterNext(tree, prevEntry, key(lo), key(hi)))).toEqual(after ?? null);
        break;
      }
      case 'walk': {
        const [lo, hi] = step.a <= step.b ? [step.a, step.b] : [step.b, step.a];
        const seen: ModelNode[] = [];
        for (let e = itreeIterFirst(tree, key(lo), key(hi)); e !== null; e = itreeIterNext(tree, e, key(lo), key(hi))) {
          seen.push(asModel(e) as ModelNode);
        }
        expect(seen).toEqual(hits(lo, hi));
        break;
      }
    }
    expect(itreeCheck(tree)).toBeNull();
    expect(tree.count).toBe(model.length);
    expect(tree.digest).toEqual(itreeDigestOf(tree));
    expect(itreeEntries(tree).map((e) => e.id)).toEqual(ordered().map((m) => m.id));
  }

  const rebuilt = itreeCreate<K>();
  for (const m of [...model].reverse()) itreeInsert(rebuilt, m.id, key(m.start), key(m.last));
  expect(rebuilt.digest).toEqual(tree.digest);
}

describe('interval tree against a naive model', () => {
  it('agrees on every step with number keys', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        runAgainstModel<number>(
          ops,
          (n) => n,
          (k) => k,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('agrees on every step with bigint keys just below 2^64', () => {
    const base = 2n ** 64n - BigInt(SPAN);
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        runAgainstModel<bigint>(
          ops,
          (n) => base + BigInt(n),
          (k) => Number(k - base),
        );
      }),
      { numRuns: 200 },
    );
  });
});
