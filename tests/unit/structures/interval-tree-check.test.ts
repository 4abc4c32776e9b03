// SPDX-License-Identifier: GPL-2.0-only
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type IntervalTree,
  type ItreeIdNode,
  type ItreeNode,
  itreeCheck,
  itreeCreate,
  itreeInsert,
  itreeProblems,
} from '../../../src/structures/interval-tree.js';

function nodesOf<N extends { left: N | null; right: N | null }>(n: N | null, out: N[] = []): N[] {
  if (n === null) return out;
  nodesOf(n.left, out);
  out.push(n);
  nodesOf(n.right, out);
  return out;
}

type Field = 'start' | 'last' | 'seq' | 'height' | 'maxLast' | 'id';
interface Corruption {
  inIds: boolean;
  pick: number;
  field: Field;
  value: number;
  bigint: boolean;
}

const corruption: fc.Arbitrary<Corruption> = fc.record({
  inIds: fc.boolean(),
  pick: fc.nat(),
  field: fc.constantFrom<Field>('start', 'last', 'seq', 'height', 'maxLast', 'id'),
  value: fc.integer({ min: -1, max: 45 }),
  bigint: fc.boolean(),
});

/** Write one field of one node (of the tree or of its id index) as a bug in a mutator might. */
function corrupt(tree: IntervalTree<number>, c: Corruption): void {
  const nodes: (ItreeNode<number> | ItreeIdNode<number>)[] = c.inIds ? nodesOf(tree.byId) : nodesOf(tree.root);
  const n = nodes[c.pick % nodes.length];
  if (n === undefined) return;
  // Keys may turn bigint (a tree must not mix them); seq, height and id stay numbers, as the slow walk's sort needs.
  const key = c.field === 'start' || c.field === 'last' || c.field === 'maxLast';
  const value = c.bigint && key ? BigInt(c.value) : c.value;
  (n as unknown as Record<string, unknown>)[c.field] = value;
}

describe('itreeCheck', () => {
  it('names what the slow walk names on trees with one or two nodes corrupted', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })),
          {
            maxLength: 40,
          },
        ),
        fc.array(corruption, { minLength: 1, maxLength: 2 }),
        (items, corruptions) => {
          const tree = itreeCreate<number>();
          for (const [id, a, b] of items) itreeInsert(tree, id, Math.min(a, b), Math.max(a, b));
          for (const c of corruptions) corrupt(tree, c);
          expect(itreeCheck(tree)).toBe(itreeProblems(tree));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('finds two nodes that share a seq although the id index agrees with them', () => {
    const tree = itreeCreate<number>();
    // Ids fall as starts rise: node 4 (start 20, seq 1) sorts before node 2 (start 40, seq 3) in the tree.
    for (let k = 1; k <= 5; k++) itreeInsert(tree, 6 - k, k * 10, k * 10 + 5);
    for (const n of [...nodesOf(tree.root), ...nodesOf(tree.byId)]) if (n.id === 2) n.seq = 1;
    expect(itreeCheck(tree)).toBe('id index entry 2 (seq 1) disagrees with tree node 4 (seq 1)');
  });

  it('finds a tree and an id index that disagree on one node', () => {
    const tree = itreeCreate<number>();
    for (let id = 1; id <= 5; id++) itreeInsert(tree, id, id * 10, id * 10 + 5);
    for (const n of nodesOf(tree.byId)) if (n.id === 3) n.last = 99;
    expect(itreeCheck(tree)).toBe('id index entry 3 (seq 2) disagrees with tree node 3 (seq 2)');
  });
});
