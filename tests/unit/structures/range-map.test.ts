import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatches, enablePatches, produceWithPatches } from 'immer';
import {
  rangeCovered,
  rangeElementCount,
  rangeForEach,
  rangeForEachAll,
  rangeGet,
  rangeMapCheck,
  rangeMapCreate,
  rangeMapDigest,
  rangeSegments,
  rangeSet,
  rangeUpdate,
} from '../../../src/structures/range-map.js';
import type { RangeMap, RangeSpec } from '../../../src/structures/range-map.js';
import { zeroDigest } from '../../../src/lib/digest.js';

enablePatches();

interface Page {
  pin: number;
  dirty: boolean;
}

const spec: RangeSpec<Page> = { keyOf: (v) => `${v.pin}:${v.dirty ? 'd' : 'c'}` };

/** Ops start below UNITS; the oracle is wide enough for every op's end. */
const UNITS = 80;
const WIDTH = 128;

type UpdateKind = 'pin' | 'unpin' | 'dirty' | 'same' | 'fill';

type Op =
  | { kind: 'set'; first: number; count: number; value: Page | undefined }
  | { kind: 'update'; first: number; count: number; fn: UpdateKind };

const updates: Record<UpdateKind, (old: Page | undefined) => Page | undefined> = {
  pin: (old) => ({ pin: (old?.pin ?? 0) + 1, dirty: old?.dirty ?? false }),
  unpin: (old) => (old === undefined || old.pin <= 1 ? undefined : { pin: old.pin - 1, dirty: old.dirty }),
  dirty: (old) => (old === undefined ? undefined : { pin: old.pin, dirty: true }),
  same: (old) => old,
  fill: (old) => old ?? { pin: 0, dirty: false },
};

const pageArb: fc.Arbitrary<Page> = fc.record({ pin: fc.integer({ min: 0, max: 2 }), dirty: fc.boolean() });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    first: fc.integer({ min: 0, max: UNITS - 1 }),
    count: fc.integer({ min: 0, max: 15 }),
    value: fc.option(pageArb, { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant('update' as const),
    first: fc.integer({ min: 0, max: UNITS - 1 }),
    count: fc.integer({ min: 0, max: 30 }),
    fn: fc.constantFrom<UpdateKind>('pin', 'unpin', 'dirty', 'same', 'fill'),
  }),
);

const opsArb = fc.array(opArb, { maxLength: 120, size: 'max' });

function applyOp(m: RangeMap<Page>, op: Op): void {
  if (op.kind === 'set') rangeSet(m, op.first, op.count, op.value, spec);
  else rangeUpdate(m, op.first, op.count, updates[op.fn], spec);
}

/** The oracle: one slot per unit. */
function applyModel(model: (Page | undefined)[], op: Op): void {
  const end = op.first + op.count;
  for (let u = op.first; u < end; u++) model[u] = op.kind === 'set' ? op.value : updates[op.fn](model[u]);
}

/** The canonical segments of the oracle, as [start, count, key]. */
function canonical(model: readonly (Page | undefined)[], first = 0, end = model.length): [number, number, string][] {
  const out: [number, number, string][] = [];
  for (let u = first; u < end; u++) {
    const v = model[u];
    if (v === undefined) continue;
    const key = spec.keyOf(v);
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] + prev[1] === u && prev[2] === key) prev[1]++;
    else out.push([u, 1, key]);
  }
  return out;
}

/** The map's segments (elements, however they are stored). */
function stored(m: RangeMap<Page>): [number, number, string][] {
  const out: [number, number, string][] = [];
  rangeForEachAll(m, (start, count, _value, key) => void out.push([start, count, key]));
  return out;
}

/** The first way `m` differs from the oracle, or null (plain comparisons: expect() per step is slow). */
function differs(
  m: RangeMap<Page>,
  model: readonly (Page | undefined)[],
  probe: { first: number; count: number },
): string | null {
  const broken = rangeMapCheck(m, spec);
  if (broken !== null) return broken;
  if (JSON.stringify(stored(m)) !== JSON.stringify(canonical(model))) return 'segments are not the canonical ones';
  for (let u = 0; u < model.length; u++) {
    const v = rangeGet(m, u);
    const want = model[u];
    if ((v === undefined ? undefined : spec.keyOf(v)) !== (want === undefined ? undefined : spec.keyOf(want)))
      return `get ${u}`;
  }
  const end = probe.first + probe.count;
  const pieces = [...rangeSegments(m, probe.first, probe.count)].map((p) => ({
    start: p.start,
    count: p.count,
    key: spec.keyOf(p.value),
  }));
  const want: { start: number; count: number; key: string }[] = [];
  for (const [s, c, key] of canonical(model)) {
    const a = Math.max(s, probe.first);
    const b = Math.min(s + c, end);
    if (b > a) want.push({ start: a, count: b - a, key });
  }
  if (JSON.stringify(pieces) !== JSON.stringify(want)) return `segments of [${probe.first}, +${probe.count})`;
  const covered = want.reduce((n, p) => n + p.count, 0);
  if (rangeCovered(m, probe.first, probe.count) !== covered) return 'covered';
  return null;
}

const probeArb = fc.record({ first: fc.integer({ min: 0, max: UNITS - 1 }), count: fc.integer({ min: 0, max: 40 }) });

describe('rangeSet and rangeUpdate', () => {
  it('agree with a per-unit array and stay canonical after every step', () => {
    fc.assert(
      fc.property(opsArb, probeArb, (ops, probe) => {
        const m = rangeMapCreate<Page>();
        const model: (Page | undefined)[] = new Array<Page | undefined>(WIDTH).fill(undefined);
        for (const op of ops) {
          applyOp(m, op);
          applyModel(model, op);
          const diff = differs(m, model, probe);
          if (diff !== null) expect.fail(`after ${JSON.stringify(op)}: ${diff}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('give the same segments and digest whatever order the contents were written in', () => {
    fc.assert(
      fc.property(opsArb, fc.array(fc.nat(), { minLength: WIDTH, maxLength: WIDTH }), (ops, order) => {
        const a = rangeMapCreate<Page>();
        const model: (Page | undefined)[] = new Array<Page | undefined>(WIDTH).fill(undefined);
        for (const op of ops) {
          applyOp(a, op);
          applyModel(model, op);
        }
        // Unit by unit, in a shuffled order, after some noise that is erased again.
        const b = rangeMapCreate<Page>();
        rangeSet(b, 0, WIDTH, { pin: 9, dirty: true }, spec);
        const units = [...model.keys()].sort((x, y) => (order[x] as number) - (order[y] as number) || x - y);
        for (const u of units) rangeSet(b, u, 1, model[u], spec);
        expect(stored(b)).toEqual(stored(a));
        expect(b.digest).toEqual(a.digest);
        expect(a.digest).toEqual(rangeMapDigest(a, spec));
        expect(b.count).toBe(a.count);
      }),
      { numRuns: 200 },
    );
  });

  it('merge a write that touches equal neighbours on both sides into one segment', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 0, 10, { pin: 1, dirty: false }, spec);
    rangeSet(m, 20, 10, { pin: 1, dirty: false }, spec);
    rangeSet(m, 10, 10, { pin: 1, dirty: false }, spec);
    expect(stored(m)).toEqual([[0, 30, '1:c']]);
    expect(m.count).toBe(30);
  });

  it('split a segment in two when its middle is erased', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 0, 100, { pin: 1, dirty: false }, spec);
    rangeSet(m, 40, 10, undefined, spec);
    expect(stored(m)).toEqual([
      [0, 40, '1:c'],
      [50, 50, '1:c'],
    ]);
    expect(m.count).toBe(90);
    expect(rangeGet(m, 39)).toEqual({ pin: 1, dirty: false });
    expect(rangeGet(m, 40)).toBeUndefined();
  });

  it('return to the zero digest when everything is erased', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 5, 20, { pin: 2, dirty: true }, spec);
    rangeUpdate(m, 0, 40, updates.pin, spec);
    rangeSet(m, 0, 40, undefined, spec);
    expect(m.digest).toEqual(zeroDigest());
    expect(m.count).toBe(0);
    expect(rangeElementCount(m)).toBe(0);
  });
});

describe('rangeUpdate', () => {
  it('calls fn once per stored piece and once per hole, cut at the range edges', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 10, 5, { pin: 1, dirty: false }, spec);
    rangeSet(m, 15, 5, { pin: 2, dirty: false }, spec);
    const calls: (string | undefined)[] = [];
    rangeUpdate(
      m,
      8,
      10,
      (old) => {
        calls.push(old === undefined ? undefined : spec.keyOf(old));
        return old === undefined ? undefined : { pin: old.pin + 1, dirty: old.dirty };
      },
      spec,
    );
    expect(calls).toEqual([undefined, '1:c', '2:c']);
    expect(stored(m)).toEqual([
      [10, 5, '2:c'],
      [15, 3, '3:c'],
      [18, 2, '2:c'],
    ]);
  });

  it('pins a 16 GiB guest of 2 MiB pages twice and keeps one segment per huge page', () => {
    const m = rangeMapCreate<Page>();
    // PFNs of 8192 huge pages, each 512 PFNs, with a gap of one huge page between them.
    for (let h = 0; h < 8192; h++) rangeUpdate(m, h * 1024, 512, updates.pin, spec);
    rangeUpdate(
      m,
      0,
      8192 * 1024,
      (old) => (old === undefined ? undefined : { pin: old.pin + 1, dirty: old.dirty }),
      spec,
    );
    expect(rangeElementCount(m)).toBe(8192);
    expect(m.count).toBe(4 * 1024 * 1024);
    expect(rangeGet(m, 1024 * 4000 + 511)).toEqual({ pin: 2, dirty: false });
    expect(rangeGet(m, 1024 * 4000 + 512)).toBeUndefined();
    expect(rangeMapCheck(m, spec)).toBeNull();
  });
});

describe('rangeForEach', () => {
  it('yields clipped pieces and stops when fn returns false', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 0, 10, { pin: 1, dirty: false }, spec);
    rangeSet(m, 12, 10, { pin: 2, dirty: false }, spec);
    rangeSet(m, 30, 10, { pin: 3, dirty: false }, spec);
    const seen: [number, number, number][] = [];
    rangeForEach(m, 5, 100, (start, count, value) => {
      seen.push([start, count, value.pin]);
      return value.pin < 2;
    });
    expect(seen).toEqual([
      [5, 5, 1],
      [12, 10, 2],
    ]);
  });
});

describe('range map under immer', () => {
  it('replays through produceWithPatches, and its patches and inverse patches map each state to the other', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60, size: 'max' }), (ops) => {
        let state = rangeMapCreate<Page>();
        const model: (Page | undefined)[] = new Array<Page | undefined>(WIDTH).fill(undefined);
        for (const op of ops) {
          const [next, patches, inverse] = produceWithPatches(state, (draft) => {
            applyOp(draft, op);
          });
          applyModel(model, op);
          const diff = differs(next, model, { first: 0, count: WIDTH });
          if (diff !== null) expect.fail(`after ${JSON.stringify(op)}: ${diff}`);
          expect(applyPatches(state, patches)).toEqual(next);
          expect(applyPatches(next, inverse)).toEqual(state);
          state = next;
        }
      }),
      { numRuns: 60 },
    );
  });

  it('writes nothing when an update leaves every value as it was', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 0, 10, { pin: 1, dirty: false }, spec);
    rangeSet(m, 20, 10, { pin: 2, dirty: false }, spec);
    const [, patches] = produceWithPatches(m, (draft) => {
      rangeUpdate(draft, 0, 40, updates.same, spec);
    });
    expect(patches).toEqual([]);
  });

  it('extends a segment in place when a write touches its end', () => {
    const m = rangeMapCreate<Page>();
    rangeSet(m, 0, 10, { pin: 1, dirty: false }, spec);
    const [next, patches] = produceWithPatches(m, (draft) => {
      rangeSet(draft, 10, 5, { pin: 1, dirty: false }, spec);
    });
    expect(patches.map((p) => p.path.join('.')).sort()).toEqual([
      'count',
      'digest.hi',
      'digest.lo',
      'tree.root.vals.0.count',
    ]);
    expect(stored(next)).toEqual([[0, 15, '1:c']]);
  });
});
