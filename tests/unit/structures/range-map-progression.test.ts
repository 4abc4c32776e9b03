// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { btreeCreate, btreeEntries, btreeSet } from '../../../src/structures/btree.js';
import {
  rangeAtomCount,
  rangeElementAt,
  rangeElementCount,
  rangeForEachAll,
  rangeGet,
  rangeMapCheck,
  rangeMapCreate,
  rangeRegroupAll,
  rangeSegments,
  rangeSet,
  rangeUpdate,
} from '../../../src/structures/range-map.js';
import type { RangeMap, RangeSpec, Segment } from '../../../src/structures/range-map.js';
import { digestAdd3, zeroDigest } from '../../../src/lib/digest.js';
import type { Digest } from '../../../src/lib/digest.js';

interface Val {
  v: number;
}
const spec: RangeSpec<Val> = { keyOf: (x) => `v${x.v}` };

/** [start, count, key] of each segment. */
type Element = [number, number, string];
/** [start, count, key, n, startStep] of each stored atom. */
type Atom = [number, number, string, number, number];

const WIDTH = 256;

type UpdateKind = 'inc' | 'dec' | 'same' | 'fill' | 'eraseOdd';
const updates: Record<UpdateKind, (old: Val | undefined) => Val | undefined> = {
  inc: (old) => (old === undefined ? undefined : { v: old.v + 1 }),
  dec: (old) => (old === undefined || old.v === 0 ? undefined : { v: old.v - 1 }),
  same: (old) => old,
  fill: (old) => old ?? { v: 0 },
  eraseOdd: (old) => (old === undefined || old.v % 2 === 1 ? undefined : old),
};

type Op =
  | { kind: 'set'; first: number; count: number; value: number | undefined }
  | { kind: 'update'; first: number; count: number; fn: UpdateKind }
  // A row of `n` segments of `count` units, `step` apart, written one rangeSet each (as FrameRunsAllocated
  // writes its runs) or updated one rangeUpdate each (as pins of single frames are).
  | {
      kind: 'row';
      base: number;
      step: number;
      count: number;
      n: number;
      value: number;
      values: 'same' | 'alternate' | 'ramp';
      fn: UpdateKind | null;
    };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    first: fc.integer({ min: 0, max: 199 }),
    count: fc.integer({ min: 0, max: 12 }),
    value: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant('update' as const),
    first: fc.integer({ min: 0, max: 199 }),
    count: fc.integer({ min: 0, max: 50 }),
    fn: fc.constantFrom<UpdateKind>('inc', 'dec', 'same', 'fill', 'eraseOdd'),
  }),
  fc
    .record({
      kind: fc.constant('row' as const),
      base: fc.integer({ min: 0, max: 150 }),
      step: fc.constantFrom(2, 3, 5),
      count: fc.integer({ min: 1, max: 4 }),
      n: fc.integer({ min: 1, max: 20 }),
      value: fc.integer({ min: 0, max: 2 }),
      values: fc.constantFrom<'same' | 'alternate' | 'ramp'>('same', 'same', 'alternate', 'ramp'),
      fn: fc.option(fc.constantFrom<UpdateKind>('inc', 'dec', 'fill', 'eraseOdd'), { nil: null }),
    })
    .map((r) => ({
      ...r,
      count: Math.min(r.count, r.step - 1),
      n: Math.min(r.n, Math.floor((WIDTH - 1 - r.base) / r.step)),
    })),
);

function applyOp(m: RangeMap<Val>, op: Op): void {
  if (op.kind === 'set') rangeSet(m, op.first, op.count, op.value === undefined ? undefined : { v: op.value }, spec);
  else if (op.kind === 'update') rangeUpdate(m, op.first, op.count, updates[op.fn], spec);
  else {
    for (let i = 0; i < op.n; i++) {
      const at = op.base + i * op.step;
      if (op.fn === null) rangeSet(m, at, op.count, { v: rowValue(op, i) }, spec);
      else rangeUpdate(m, at, op.count, updates[op.fn], spec);
    }
  }
}

function rowValue(op: Extract<Op, { kind: 'row' }>, i: number): number {
  return op.values === 'same' ? op.value : op.values === 'alternate' ? op.value + (i % 2) : op.value + i;
}

/** The reference: the value of each unit. */
function applyModel(model: Map<number, number>, op: Op): void {
  const write = (at: number, count: number, f: (old: Val | undefined) => Val | undefined): void => {
    for (let u = at; u < at + count; u++) {
      const old = model.get(u);
      const v = f(old === undefined ? undefined : { v: old });
      if (v === undefined) model.delete(u);
      else model.set(u, v.v);
    }
  };
  if (op.kind === 'set') write(op.first, op.count, () => (op.value === undefined ? undefined : { v: op.value }));
  else if (op.kind === 'update') write(op.first, op.count, updates[op.fn]);
  else {
    for (let i = 0; i < op.n; i++) {
      const at = op.base + i * op.step;
      write(at, op.count, op.fn === null ? () => ({ v: rowValue(op, i) }) : updates[op.fn]);
    }
  }
}

/** The canonical segments of the reference: maximal runs of one value. */
function elementsOf(model: Map<number, number>): Element[] {
  const out: Element[] = [];
  for (const u of [...model.keys()].sort((a, b) => a - b)) {
    const key = `v${model.get(u) as number}`;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] + prev[1] === u && prev[2] === key) prev[1]++;
    else out.push([u, 1, key]);
  }
  return out;
}

/** The canonical atoms of a list of segments, the greedy grouping written plainly. */
function atomsOf(elements: readonly Element[]): Atom[] {
  const out: Atom[] = [];
  for (const [start, count, key] of elements) {
    const open = out[out.length - 1];
    if (open !== undefined && open[1] === count && open[2] === key) {
      const step = start - (open[0] + (open[3] - 1) * open[4]);
      if (step > count && (open[3] === 1 || step === open[4])) {
        open[3]++;
        open[4] = step;
        continue;
      }
    }
    out.push([start, count, key, 1, 0]);
  }
  return out;
}

function digestOf(elements: readonly Element[]): Digest {
  const d = zeroDigest();
  for (const [start, count, key] of elements) digestAdd3(d, start, count, key);
  return d;
}

function storedElements(m: RangeMap<Val>): Element[] {
  const out: Element[] = [];
  rangeForEachAll(m, (start, count, value, key) => {
    out.push([start, count, key]);
    if (spec.keyOf(value) !== key) throw new Error(`segment at ${start} has value ${value.v} but key ${key}`);
  });
  return out;
}

function storedAtoms(m: RangeMap<Val>): Atom[] {
  return [...btreeEntries(m.tree)].map(([, a]) => [a.start, a.count, a.key, a.n, a.startStep]);
}

/** The first way `m` differs from the reference, or null (plain comparisons: expect() per step is slow). */
function differs(m: RangeMap<Val>, model: Map<number, number>, probe: { first: number; count: number }): string | null {
  const broken = rangeMapCheck(m, spec);
  if (broken !== null) return broken;
  const elements = elementsOf(model);
  if (JSON.stringify(storedElements(m)) !== JSON.stringify(elements)) return 'segments differ';
  if (JSON.stringify(storedAtoms(m)) !== JSON.stringify(atomsOf(elements))) return 'atoms are not the greedy grouping';
  const d = digestOf(elements);
  if (m.digest.lo !== d.lo || m.digest.hi !== d.hi) return 'digest differs from the sum over segments';
  if (m.count !== model.size) return `count ${m.count}, want ${model.size}`;
  if (rangeElementCount(m) !== elements.length) return `elements ${rangeElementCount(m)}, want ${elements.length}`;
  for (let u = 0; u < WIDTH; u++) {
    const want = model.get(u);
    if (rangeGet(m, u)?.v !== want) return `get ${u}`;
    const e = rangeElementAt(m, u);
    const holder = elements.find(([s, c]) => s <= u && u < s + c);
    if (
      JSON.stringify(e === undefined ? undefined : [e.start, e.count, spec.keyOf(e.value)]) !== JSON.stringify(holder)
    )
      return `element at ${u}`;
  }
  const end = probe.first + probe.count;
  const pieces = [...rangeSegments(m, probe.first, probe.count)].map((p) => [p.start, p.count, spec.keyOf(p.value)]);
  const want: Element[] = [];
  for (const [s, c, key] of elements) {
    const a = Math.max(s, probe.first);
    const b = Math.min(s + c, end);
    if (b > a) want.push([a, b - a, key]);
  }
  if (JSON.stringify(pieces) !== JSON.stringify(want)) return `segments of [${probe.first}, +${probe.count})`;
  return null;
}

const probeArb = fc.record({ first: fc.integer({ min: 0, max: WIDTH - 1 }), count: fc.integer({ min: 0, max: 80 }) });

describe('range map stored as progressions', () => {
  it('agrees with a per-unit map after every write, with greedy atoms, exact counts and the digest of its segments', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40, size: 'max' }), probeArb, (ops, probe) => {
        const m = rangeMapCreate<Val>();
        const model = new Map<number, number>();
        for (const op of ops) {
          applyOp(m, op);
          applyModel(model, op);
          const diff = differs(m, model, probe);
          if (diff !== null) expect.fail(`after ${JSON.stringify(op)}: ${diff}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('stores a frame-gap-frame row of 4,096 pages as one atom, split in 3 by a pin in the middle and in 2 by an erase', () => {
    const m = rangeMapCreate<Val>();
    const base = 0x40000;
    for (let i = 0; i < 4096; i++) rangeSet(m, base + 2 * i, 1, { v: 0 }, spec);
    expect(storedAtoms(m)).toEqual([[base, 1, 'v0', 4096, 2]]);
    expect([m.count, rangeElementCount(m), rangeAtomCount(m)]).toEqual([4096, 4096, 1]);
    const whole = { ...m.digest };
    expect(m.digest).toEqual(digestOf(storedElements(m)));

    rangeUpdate(m, base + 2 * 2000, 1, updates.inc, spec);
    expect(storedAtoms(m)).toEqual([
      [base, 1, 'v0', 2000, 2],
      [base + 4000, 1, 'v1', 1, 0],
      [base + 4002, 1, 'v0', 2095, 2],
    ]);
    expect(m.digest).toEqual(digestOf(storedElements(m)));
    expect(rangeMapCheck(m, spec)).toBeNull();
    // The neighbours keep their values: only the element in the range changed.
    expect([rangeGet(m, base + 3998), rangeGet(m, base + 4000), rangeGet(m, base + 4002)]).toEqual([
      { v: 0 },
      { v: 1 },
      { v: 0 },
    ]);

    rangeUpdate(m, base + 2 * 2000, 1, updates.dec, spec);
    expect(storedAtoms(m)).toEqual([[base, 1, 'v0', 4096, 2]]);
    expect(m.digest).toEqual(whole);

    rangeSet(m, base + 2 * 2000, 1, undefined, spec);
    expect(storedAtoms(m)).toEqual([
      [base, 1, 'v0', 2000, 2],
      [base + 4002, 1, 'v0', 2095, 2],
    ]);
    expect([m.count, rangeElementCount(m)]).toEqual([4095, 4095]);
    expect(m.digest).toEqual(digestOf(storedElements(m)));
    expect(rangeMapCheck(m, spec)).toBeNull();
  });

  it('rangeUpdate across atoms changes only the segments in the range', () => {
    const m = rangeMapCreate<Val>();
    for (let i = 0; i < 10; i++) rangeSet(m, 3 * i, 2, { v: 0 }, spec);
    for (let i = 0; i < 10; i++) rangeSet(m, 100 + 5 * i, 1, { v: 7 }, spec);
    expect(storedAtoms(m)).toEqual([
      [0, 2, 'v0', 10, 3],
      [100, 1, 'v7', 10, 5],
    ]);
    // From the middle of segment 6 of the first row to the middle of the second row.
    rangeUpdate(m, 19, 102, updates.inc, spec);
    expect(storedElements(m)).toEqual([
      ...Array.from({ length: 6 }, (_, i): Element => [3 * i, 2, 'v0']),
      [18, 1, 'v0'],
      [19, 1, 'v1'],
      ...Array.from({ length: 3 }, (_, i): Element => [21 + 3 * i, 2, 'v1']),
      ...Array.from({ length: 5 }, (_, i): Element => [100 + 5 * i, 1, 'v8']),
      ...Array.from({ length: 5 }, (_, i): Element => [125 + 5 * i, 1, 'v7']),
    ]);
    expect(storedAtoms(m)).toEqual([
      [0, 2, 'v0', 6, 3],
      [18, 1, 'v0', 1, 0],
      [19, 1, 'v1', 1, 0],
      [21, 2, 'v1', 3, 3],
      [100, 1, 'v8', 5, 5],
      [125, 1, 'v7', 5, 5],
    ]);
    expect(m.digest).toEqual(digestOf(storedElements(m)));
    expect(rangeMapCheck(m, spec)).toBeNull();
  });

  it('rangeRegroupAll turns the segments of a format-2 snapshot into the atoms built directly', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30, size: 'max' }), (ops) => {
        const direct = rangeMapCreate<Val>();
        for (const op of ops) applyOp(direct, op);
        // As format 2 stored it: one {start, count, value, key} per segment, no element counter.
        const tree = btreeCreate<number, Segment<Val>>();
        rangeForEachAll(direct, (start, count, value, key) => {
          btreeSet(tree, start, { start, count, value, key } as Segment<Val>);
        });
        const old = { tree, digest: { ...direct.digest }, count: direct.count } as RangeMap<Val>;
        rangeRegroupAll(old);
        expect(storedAtoms(old)).toEqual(storedAtoms(direct));
        expect([old.count, old.elements, old.digest]).toEqual([direct.count, direct.elements, direct.digest]);
        expect(rangeMapCheck(old, spec)).toBeNull();
        for (const [, a] of btreeEntries(old.tree))
          expect(Object.keys(a)).toEqual(['start', 'count', 'value', 'key', 'n', 'startStep']);
      }),
      { numRuns: 200 },
    );
  });
});
