import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatches, enablePatches, produce, produceWithPatches } from 'immer';
import {
  btreeCeiling,
  btreeCeilingValue,
  btreeCheck,
  btreeCreate,
  btreeDelete,
  btreeEntries,
  btreeEntriesFrom,
  btreeFirst,
  btreeFloor,
  btreeFloorValue,
  btreeForEachFrom,
  btreeGet,
  btreeHas,
  btreeHeight,
  btreeLast,
  btreeSet,
} from '../../../src/structures/btree.js';
import type { BTree, BTreeNode, Key } from '../../../src/structures/btree.js';

enablePatches();

type Op<K> = { kind: 'set'; key: K; value: number } | { kind: 'delete'; key: K };

/** The oracle: entries in a sorted array. */
class SortedModel<K extends Key> {
  readonly entries: [K, number][] = [];

  private lowerBound(key: K): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.entries[mid] as [K, number])[0] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  set(key: K, value: number): void {
    const i = this.lowerBound(key);
    const e = this.entries[i];
    if (e !== undefined && e[0] === key) e[1] = value;
    else this.entries.splice(i, 0, [key, value]);
  }

  delete(key: K): boolean {
    const i = this.lowerBound(key);
    const e = this.entries[i];
    if (e === undefined || e[0] !== key) return false;
    this.entries.splice(i, 1);
    return true;
  }

  get(key: K): number | undefined {
    const e = this.entries[this.lowerBound(key)];
    return e !== undefined && e[0] === key ? e[1] : undefined;
  }

  ceiling(key: K): [K, number] | undefined {
    return this.entries[this.lowerBound(key)];
  }

  floor(key: K): [K, number] | undefined {
    const i = this.lowerBound(key);
    const e = this.entries[i];
    if (e !== undefined && e[0] === key) return e;
    return this.entries[i - 1];
  }

  from(key: K): [K, number][] {
    return this.entries.slice(this.lowerBound(key));
  }
}

function apply<K extends Key>(t: BTree<K, number>, op: Op<K>): boolean | void {
  return op.kind === 'set' ? btreeSet(t, op.key, op.value) : btreeDelete(t, op.key);
}

function sameEntry<K extends Key>(a: [K, number] | undefined, b: [K, number] | undefined): boolean {
  return a === undefined ? b === undefined : b !== undefined && a[0] === b[0] && a[1] === b[1];
}

/** The first way `t` differs from the model, or null; plain comparisons because expect() per probe is slow. */
function differs<K extends Key>(t: BTree<K, number>, model: SortedModel<K>, probes: readonly K[]): string | null {
  const broken = btreeCheck(t);
  if (broken !== null) return broken;
  if (t.size !== model.entries.length) return `size ${t.size}`;
  let i = 0;
  for (const e of btreeEntries(t)) if (!sameEntry(e, model.entries[i++])) return `entry ${i - 1}`;
  if (i !== model.entries.length) return `only ${i} entries`;
  if (!sameEntry(btreeFirst(t), model.entries[0])) return 'first';
  if (!sameEntry(btreeLast(t), model.entries[model.entries.length - 1])) return 'last';
  for (const q of probes) {
    const k = String(q);
    if (btreeGet(t, q) !== model.get(q)) return `get ${k}`;
    if (btreeHas(t, q) !== (model.get(q) !== undefined)) return `has ${k}`;
    if (!sameEntry(btreeFloor(t, q), model.floor(q))) return `floor ${k}`;
    if (!sameEntry(btreeCeiling(t, q), model.ceiling(q))) return `ceiling ${k}`;
    if (btreeFloorValue(t, q) !== model.floor(q)?.[1]) return `floor value ${k}`;
    if (btreeCeilingValue(t, q) !== model.ceiling(q)?.[1]) return `ceiling value ${k}`;
    const from = model.from(q);
    let j = 0;
    for (const e of btreeEntriesFrom(t, q)) if (!sameEntry(e, from[j++])) return `entries from ${k}, entry ${j - 1}`;
    if (j !== from.length) return `entries from ${k}: only ${j}`;
  }
  return null;
}

function runOps<K extends Key>(max: number, ops: readonly Op<K>[], probes: readonly K[]): void {
  const t = btreeCreate<K, number>(max);
  const model = new SortedModel<K>();
  for (const op of ops) {
    const got = apply(t, op);
    if (op.kind === 'set') model.set(op.key, op.value);
    else if (got !== model.delete(op.key)) expect.fail(`delete ${String(op.key)} returned ${String(got)}`);
    const diff = differs(t, model, probes);
    if (diff !== null) expect.fail(`after ${op.kind} ${String(op.key)}: ${diff}`);
  }
}

function opsOf<K extends Key>(key: fc.Arbitrary<K>): fc.Arbitrary<Op<K>[]> {
  const op: fc.Arbitrary<Op<K>> = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('set' as const), key, value: fc.integer() }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('delete' as const), key }), weight: 2 },
  );
  return fc.array(op, { maxLength: 400, size: 'max' });
}

function allNodes<K extends Key, V>(node: BTreeNode<K, V>, out: BTreeNode<K, V>[] = []): BTreeNode<K, V>[] {
  out.push(node);
  if (!node.leaf) for (const child of node.children) allNodes(child, out);
  return out;
}

function filled(n: number): BTree<number, string> {
  const t = btreeCreate<number, string>();
  for (let k = 0; k < n; k++) btreeSet(t, k * 2, `v${k * 2}`);
  return t;
}

const U64_MAX = 2n ** 64n - 1n;

describe('btree', () => {
  it('agrees with a sorted array for number keys, nodes of 4 slots', () => {
    fc.assert(
      fc.property(
        opsOf(fc.integer({ min: -50, max: 250 })),
        fc.array(fc.integer({ min: -60, max: 260 }), { maxLength: 6 }),
        (ops, probes) => runOps(4, ops, probes),
      ),
      { numRuns: 120 },
    );
  });

  it('agrees with a sorted array for number keys, nodes of 32 slots', () => {
    fc.assert(
      fc.property(
        opsOf(fc.integer({ min: 0, max: 1200 })),
        fc.array(fc.integer({ min: -1, max: 1201 }), { maxLength: 6 }),
        (ops, probes) => runOps(32, ops, probes),
      ),
      { numRuns: 60 },
    );
  });

  it('agrees with a sorted array for bigint keys up to 2^64 - 1', () => {
    const key = fc.oneof(
      fc.bigInt({ min: 0n, max: 120n }),
      fc.bigInt({ min: U64_MAX - 120n, max: U64_MAX }),
      fc.bigInt({ min: 0n, max: U64_MAX }),
    );
    fc.assert(
      fc.property(opsOf(key), fc.array(key, { maxLength: 6 }), (ops, probes) => runOps(5, ops, probes)),
      { numRuns: 120 },
    );
  });

  it('keeps its invariants through 20000 ascending inserts and deletes from both ends', () => {
    const t = btreeCreate<number, number>();
    for (let k = 0; k < 20_000; k++) btreeSet(t, k, k);
    expect(btreeCheck(t)).toBeNull();
    expect(btreeHeight(t)).toBe(4);
    for (let k = 0; k < 10_000; k++) {
      expect(btreeDelete(t, k)).toBe(true);
      expect(btreeDelete(t, 19_999 - k)).toBe(true);
    }
    expect(btreeCheck(t)).toBeNull();
    expect(t.size).toBe(0);
    expect(btreeHeight(t)).toBe(1);
    expect(btreeFirst(t)).toBeUndefined();
  });

  it('answers nothing on an empty tree', () => {
    const t = btreeCreate<bigint, string>();
    expect(btreeGet(t, 0n)).toBeUndefined();
    expect(btreeFloor(t, U64_MAX)).toBeUndefined();
    expect(btreeCeiling(t, 0n)).toBeUndefined();
    expect(btreeLast(t)).toBeUndefined();
    expect([...btreeEntries(t)]).toEqual([]);
    expect(btreeDelete(t, 5n)).toBe(false);
    expect(btreeCheck(t)).toBeNull();
  });

  it('replaces the value of an existing key without changing the size', () => {
    const t = filled(100);
    btreeSet(t, 42, 'new');
    expect(t.size).toBe(100);
    expect(btreeGet(t, 42)).toBe('new');
  });

  it('stores values as given, without copying them', () => {
    const t = btreeCreate<number, { pfn: number }>();
    const value = { pfn: 7 };
    btreeSet(t, 1, value);
    expect(btreeGet(t, 1)).toBe(value);
  });

  it('produces entries lazily from the least key >= the start', () => {
    const t = filled(10_000);
    const it = btreeEntriesFrom(t, 1001);
    expect(it.next().value).toEqual([1002, 'v1002']);
    expect(it.next().value).toEqual([1004, 'v1004']);
    expect(btreeEntriesFrom(t, 19_999).next().done).toBe(true);
  });

  it('stops btreeForEachFrom when the callback returns false', () => {
    const t = filled(1000);
    const seen: number[] = [];
    btreeForEachFrom(t, 99, (k) => {
      seen.push(k);
      return seen.length < 3;
    });
    expect(seen).toEqual([100, 102, 104]);
  });

  it('rejects a node capacity below 4', () => {
    expect(() => btreeCreate(3)).toThrow(RangeError);
  });

  it('reports a key out of order', () => {
    const t = filled(10);
    const root = t.root;
    if (!root.leaf) throw new Error('expected a lone leaf');
    root.keys[3] = 100;
    expect(btreeCheck(t)).toBe('root: keys 3 and 4 do not ascend');
  });
});

describe('btree under immer', () => {
  it('shares every node off the written path when one key of 10000 is replaced', () => {
    const base = filled(10_000);
    const height = btreeHeight(base);
    const baseNodes = new Set(allNodes(base.root));
    const next = produce(base, (draft) => {
      btreeSet(draft, 5000, 'changed');
    });
    const nextNodes = allNodes(next.root);
    expect(nextNodes.length).toBe(baseNodes.size);
    expect(nextNodes.filter((n) => !baseNodes.has(n)).length).toBe(height);
    expect(btreeGet(next, 5000)).toBe('changed');
    expect(btreeGet(base, 5000)).toBe('v5000');
    expect(btreeCheck(next)).toBeNull();
  });

  it('copies at most the path and the split halves when a new key is inserted into 10000', () => {
    const base = filled(10_000);
    const height = btreeHeight(base);
    const baseNodes = new Set(allNodes(base.root));
    const next = produce(base, (draft) => {
      btreeSet(draft, 5001, 'new');
    });
    const fresh = allNodes(next.root).filter((n) => !baseNodes.has(n)).length;
    expect(fresh).toBeLessThanOrEqual(height + 1);
    expect(next.size).toBe(10_001);
    expect(base.size).toBe(10_000);
    expect(btreeCheck(next)).toBeNull();
  });

  it('replays through produceWithPatches, and its patches and inverse patches map each state to the other', () => {
    const key = fc.integer({ min: 0, max: 120 });
    fc.assert(
      fc.property(opsOf(key), (ops) => {
        let state = btreeCreate<number, number>(4);
        const model = new SortedModel<number>();
        for (const op of ops) {
          const [next, patches, inverse] = produceWithPatches(state, (draft) => {
            apply(draft, op);
          });
          if (op.kind === 'set') model.set(op.key, op.value);
          else model.delete(op.key);
          expect(btreeCheck(next)).toBeNull();
          expect([...btreeEntries(next)]).toEqual(model.entries);
          expect(applyPatches(state, patches)).toEqual(next);
          expect(applyPatches(next, inverse)).toEqual(state);
          state = next;
        }
      }),
      { numRuns: 40 },
    );
  });
});
