import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatches, enablePatches, produceWithPatches } from 'immer';
import {
  xaCheck,
  xaCreate,
  xaDigest,
  xaErase,
  xaFirstAbsent,
  xaFirstPresent,
  xaForEachRun,
  xaLoad,
  xaPresent,
  xaRunCount,
  xaRuns,
  xaStore,
} from '../../../src/structures/xarray.js';
import type { Xarray } from '../../../src/structures/xarray.js';
import { zeroDigest } from '../../../src/lib/digest.js';

enablePatches();

/** Ops start below INDEXES and end below WIDTH. */
const INDEXES = 100;
const WIDTH = 128;

type Op =
  { kind: 'store'; index: number; count: number; pfn: number | null } | { kind: 'erase'; index: number; count: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('store' as const),
      index: fc.integer({ min: 0, max: INDEXES - 1 }),
      count: fc.integer({ min: 0, max: 16 }),
      // null: PFN = index + 1000, so that separate stores are often PFN-contiguous.
      pfn: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('erase' as const),
      index: fc.integer({ min: 0, max: INDEXES - 1 }),
      count: fc.integer({ min: 0, max: 20 }),
    }),
    weight: 2,
  },
);

const opsArb = fc.array(opArb, { maxLength: 120, size: 'max' });

const pfnOf = (op: { index: number; pfn: number | null }): number => op.pfn ?? op.index + 1000;

function applyOp(xa: Xarray, op: Op): number {
  return op.kind === 'store' ? xaStore(xa, op.index, pfnOf(op), op.count) : xaErase(xa, op.index, op.count);
}

/** The oracle: a Map of index -> PFN. Returns how many entries of the range were present. */
function applyModel(model: Map<number, number>, op: Op): number {
  let present = 0;
  for (let i = 0; i < op.count; i++) {
    const index = op.index + i;
    if (model.has(index)) present++;
    if (op.kind === 'store') model.set(index, pfnOf(op) + i);
    else model.delete(index);
  }
  return present;
}

/** Maximally coalesced runs of the oracle within [first, last]. */
function canonical(model: Map<number, number>, first = 0, last = WIDTH - 1): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let index = first; index <= last; index++) {
    const pfn = model.get(index);
    if (pfn === undefined) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[0] + prev[2] === index && prev[1] + prev[2] === pfn) prev[2]++;
    else out.push([index, pfn, 1]);
  }
  return out;
}

function stored(xa: Xarray): [number, number, number][] {
  return [...xaRuns(xa, 0, Number.MAX_SAFE_INTEGER)].map((r) => [r.index, r.pfn, r.count]);
}

/** The first way `xa` differs from the oracle, or null (plain comparisons: expect() per step is slow). */
function differs(xa: Xarray, model: Map<number, number>, probe: { first: number; last: number }): string | null {
  const broken = xaCheck(xa);
  if (broken !== null) return broken;
  if (JSON.stringify(stored(xa)) !== JSON.stringify(canonical(model))) return 'runs are not the canonical ones';
  for (let index = 0; index < WIDTH; index++) if (xaLoad(xa, index) !== model.get(index)) return `load ${index}`;
  const { first, last } = probe;
  // canonical() of a window cuts runs at its edges exactly as a clipped listing does.
  const want = canonical(model, first, last);
  const runs = [...xaRuns(xa, first, last)].map((r): [number, number, number] => [r.index, r.pfn, r.count]);
  if (JSON.stringify(runs) !== JSON.stringify(want)) return `runs of [${first}, ${last}]`;
  let present = 0;
  let firstPresent: number | undefined;
  let firstAbsent: number | undefined;
  for (let index = first; index <= last; index++) {
    if (model.has(index)) {
      present++;
      firstPresent ??= index;
    } else firstAbsent ??= index;
  }
  if (xaPresent(xa, first, last) !== present) return `present in [${first}, ${last}]`;
  if (xaFirstPresent(xa, first, last) !== firstPresent) return `first present in [${first}, ${last}]`;
  if (xaFirstAbsent(xa, first, last) !== firstAbsent) return `first absent in [${first}, ${last}]`;
  return null;
}

const probeArb = fc
  .tuple(fc.integer({ min: 0, max: WIDTH - 1 }), fc.integer({ min: -1, max: 40 }))
  .map(([first, n]) => ({ first, last: first + n }));

describe('xaStore and xaErase', () => {
  it('agree with a Map of index to PFN and stay maximally coalesced after every step', () => {
    fc.assert(
      fc.property(opsArb, fc.array(probeArb, { minLength: 1, maxLength: 3 }), (ops, probes) => {
        const xa = xaCreate();
        const model = new Map<number, number>();
        for (const op of ops) {
          const got = applyOp(xa, op);
          const want = applyModel(model, op);
          if (got !== want) expect.fail(`${JSON.stringify(op)} returned ${got}, expected ${want}`);
          for (const probe of probes) {
            const diff = differs(xa, model, probe);
            if (diff !== null) expect.fail(`after ${JSON.stringify(op)}: ${diff}`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('give the same runs and digest whatever order the entries were stored in', () => {
    fc.assert(
      fc.property(opsArb, fc.array(fc.nat(), { minLength: WIDTH, maxLength: WIDTH }), (ops, order) => {
        const a = xaCreate();
        const model = new Map<number, number>();
        for (const op of ops) {
          applyOp(a, op);
          applyModel(model, op);
        }
        const b = xaCreate();
        xaStore(b, 0, 77, WIDTH);
        xaErase(b, 0, WIDTH);
        const indexes = [...model.keys()].sort((x, y) => (order[x] as number) - (order[y] as number) || x - y);
        for (const index of indexes) xaStore(b, index, model.get(index) as number);
        expect(stored(b)).toEqual(stored(a));
        expect(b.digest).toEqual(a.digest);
        expect(a.digest).toEqual(xaDigest(a));
        expect(b.count).toBe(model.size);
      }),
      { numRuns: 200 },
    );
  });
});

describe('xaStore', () => {
  it('holds a 4-million-entry guest of 2 MiB pages as exactly 8192 runs', () => {
    const xa = xaCreate();
    // Huge page h (512 pages) is at PFN 7 + 1024 h: contiguous inside, a gap after; stored 64 pages at a time.
    for (let h = 0; h < 8192; h++) {
      for (let c = 0; c < 512; c += 64) expect(xaStore(xa, h * 512 + c, 7 + h * 1024 + c, 64)).toBe(0);
    }
    expect(xaRunCount(xa)).toBe(8192);
    expect(xa.runs.size).toBe(1);
    expect(xa.count).toBe(4_194_304);
    expect(xaLoad(xa, 4000 * 512 + 511)).toBe(7 + 4000 * 1024 + 511);
    expect(xaLoad(xa, 4_194_304)).toBeUndefined();
    expect(xaPresent(xa, 0, 4_194_303)).toBe(4_194_304);
    expect(xaFirstAbsent(xa, 0, 4_194_303)).toBeUndefined();
    expect(xaCheck(xa)).toBeNull();
  });

  it('merges two physically contiguous huge pages into one run', () => {
    const xa = xaCreate();
    xaStore(xa, 512, 262_656, 512);
    xaStore(xa, 0, 262_144, 512);
    expect(stored(xa)).toEqual([[0, 262_144, 1024]]);
  });

  it('returns how many entries it overwrote and keeps the PFNs around them', () => {
    const xa = xaCreate();
    xaStore(xa, 0, 100, 10);
    expect(xaStore(xa, 8, 500, 4)).toBe(2);
    expect(stored(xa)).toEqual([
      [0, 100, 8],
      [8, 500, 4],
    ]);
    expect(xa.count).toBe(12);
  });
});

describe('xaErase', () => {
  it('erases the middle of a run, leaving its two ends with their PFNs', () => {
    const xa = xaCreate();
    xaStore(xa, 10, 262_146, 510);
    expect(xaErase(xa, 100, 50)).toBe(50);
    expect(stored(xa)).toEqual([
      [10, 262_146, 90],
      [150, 262_286, 370],
    ]);
    expect(xaErase(xa, 0, 1000)).toBe(460);
    expect(xa.count).toBe(0);
    expect(xa.digest).toEqual(zeroDigest());
  });
});

describe('xaFirstAbsent', () => {
  it('walks index-adjacent runs that a PFN gap keeps apart', () => {
    const xa = xaCreate();
    xaStore(xa, 0, 1000, 4);
    xaStore(xa, 4, 2000, 4);
    xaStore(xa, 8, 3000, 4);
    expect(xaRunCount(xa)).toBe(3);
    expect(xaFirstAbsent(xa, 2, 20)).toBe(12);
    expect(xaFirstAbsent(xa, 2, 11)).toBeUndefined();
    expect(xaFirstPresent(xa, 12, 20)).toBeUndefined();
  });
});

describe('xaForEachRun', () => {
  it('clips the runs to [first, last] and stops when fn returns false', () => {
    const xa = xaCreate();
    xaStore(xa, 0, 1000, 10);
    xaStore(xa, 20, 3000, 10);
    xaStore(xa, 40, 5000, 10);
    const seen: [number, number, number][] = [];
    xaForEachRun(xa, 5, 100, (index, pfn, count) => {
      seen.push([index, pfn, count]);
      return index < 20;
    });
    expect(seen).toEqual([
      [5, 1005, 5],
      [20, 3000, 10],
    ]);
  });
});

describe('xarray under immer', () => {
  it('replays through produceWithPatches, and its patches and inverse patches map each state to the other', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60, size: 'max' }), (ops) => {
        let state = xaCreate();
        const model = new Map<number, number>();
        for (const op of ops) {
          const [next, patches, inverse] = produceWithPatches(state, (draft) => {
            applyOp(draft, op);
          });
          applyModel(model, op);
          const diff = differs(next, model, { first: 0, last: WIDTH - 1 });
          if (diff !== null) expect.fail(`after ${JSON.stringify(op)}: ${diff}`);
          expect(applyPatches(state, patches)).toEqual(next);
          expect(applyPatches(next, inverse)).toEqual(state);
          state = next;
        }
      }),
      { numRuns: 60 },
    );
  });

  it('rewrites only the fields of the run it extends', () => {
    const xa = xaCreate();
    xaStore(xa, 0, 1000, 8);
    const [, patches] = produceWithPatches(xa, (draft) => {
      xaStore(draft, 8, 1008, 8);
    });
    expect(patches.map((p) => p.path.join('.')).sort()).toEqual([
      'count',
      'digest.hi',
      'digest.lo',
      'runs.root.vals.0.count',
    ]);
  });
});
