// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatches, enablePatches, produceWithPatches } from 'immer';
import { btreeCreate, btreeEntries, btreeSet } from '../../../src/structures/btree.js';
import { regroup } from '../../../src/structures/progression.js';
import {
  xaCanonicalBreak,
  xaCheck,
  xaCreate,
  xaDigest,
  xaErase,
  xaFirstAbsent,
  xaFirstPresent,
  xaForEachRun,
  xaLoad,
  xaPresent,
  xaProgressionOps,
  xaRegroupAll,
  xaRunAt,
  xaRunCount,
  xaRuns,
  xaStore,
  xaStoreRuns,
} from '../../../src/structures/xarray.js';
import type { XaAtom, XaRun, Xarray } from '../../../src/structures/xarray.js';
import { digestAdd, zeroDigest } from '../../../src/lib/digest.js';

enablePatches();

/** Writes start below INDEXES; everything lies below WIDTH. */
const INDEXES = 120;
const WIDTH = 200;

/** One xaStore or xaErase. */
type Write =
  { kind: 'store'; index: number; pfn: number; count: number } | { kind: 'erase'; index: number; count: number };

/** How a random store picks its PFN from its index: strided layouts of 4 KiB guests and their near misses. */
const LAYOUTS = [
  (i: number) => 1000 + 2 * i,
  (i: number) => 1000 + 3 * i,
  (i: number) => 2000 - i,
  () => 1000,
  (i: number) => 1000 + i,
] as const;

// A row: `len` stores of `count` pages, each `gap` pages after the last and `pfnStep` PFNs on (in either
// order, so that rows grow at both ends), which the xarray should hold as one progression.
const rowArb = fc
  .record({
    index: fc.integer({ min: 0, max: INDEXES - 1 }),
    len: fc.integer({ min: 1, max: 12 }),
    count: fc.constantFrom(1, 1, 2, 3),
    gap: fc.constantFrom(0, 0, 1, 2),
    pfnStep: fc.constantFrom(2, 3, -1, 0, 'count' as const),
    pfn: fc.integer({ min: 500, max: 600 }),
    backwards: fc.boolean(),
  })
  .map((r): Write[] => {
    const step = r.pfnStep === 'count' ? r.count : r.pfnStep;
    const writes: Write[] = [];
    for (let k = 0; k < r.len; k++) {
      const index = r.index + k * (r.count + r.gap);
      if (index + r.count > WIDTH) break;
      writes.push({ kind: 'store', index, pfn: r.pfn + k * step, count: r.count });
    }
    return r.backwards ? writes.reverse() : writes;
  });

const storeArb = fc
  .record({
    index: fc.integer({ min: 0, max: INDEXES - 1 }),
    count: fc.integer({ min: 0, max: 16 }),
    layout: fc.integer({ min: 0, max: LAYOUTS.length - 1 }),
    pfn: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
  })
  .map((s): Write[] => [
    {
      kind: 'store',
      index: s.index,
      pfn: s.pfn ?? (LAYOUTS[s.layout] as (i: number) => number)(s.index),
      count: s.count,
    },
  ]);

const eraseArb = fc
  .record({ index: fc.integer({ min: 0, max: INDEXES - 1 }), count: fc.integer({ min: 0, max: 20 }) })
  .map((e): Write[] => [{ kind: 'erase', index: e.index, count: e.count }]);

const writesArb = fc
  .array(
    fc.oneof({ arbitrary: rowArb, weight: 3 }, { arbitrary: storeArb, weight: 2 }, { arbitrary: eraseArb, weight: 2 }),
    { maxLength: 25 },
  )
  .map((groups) => groups.flat());

function apply(xa: Xarray, w: Write): number {
  return w.kind === 'store' ? xaStore(xa, w.index, w.pfn, w.count) : xaErase(xa, w.index, w.count);
}

/** The reference: a Map of index -> PFN. Returns how many entries of the range were present. */
function applyModel(model: Map<number, number>, w: Write): number {
  let present = 0;
  for (let i = 0; i < w.count; i++) {
    if (model.has(w.index + i)) present++;
    if (w.kind === 'store') model.set(w.index + i, w.pfn + i);
    else model.delete(w.index + i);
  }
  return present;
}

/** The reference's runs within [first, last]: maximally merged, clipped there. */
function runsOf(model: Map<number, number>, first = 0, last = WIDTH - 1): XaRun[] {
  const out: XaRun[] = [];
  for (let index = first; index <= last; index++) {
    const pfn = model.get(index);
    if (pfn === undefined) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.index + prev.count === index && prev.pfn + prev.count === pfn) prev.count++;
    else out.push({ index, pfn, count: 1 });
  }
  return out;
}

const single = (r: XaRun): XaAtom => ({ index: r.index, pfn: r.pfn, count: r.count, n: 1, indexStep: 0, pfnStep: 0 });
const atomsOf = (xa: Xarray): XaAtom[] => [...btreeEntries(xa.runs)].map(([, a]) => a);
const canonicalAtoms = (runs: readonly XaRun[]): XaAtom[] =>
  regroup(xaProgressionOps, runs.map(single), () => undefined).groups;

/** The digest of the runs from their definition: the sum of hashParts([index, pfn, count]). */
function digestOfRuns(runs: readonly XaRun[]): { lo: number; hi: number } {
  const d = zeroDigest();
  for (const r of runs) digestAdd(d, [r.index, r.pfn, r.count]);
  return d;
}

const key = (runs: readonly XaRun[]): string => runs.map((r) => `${r.index}:${r.pfn}:${r.count}`).join(' ');

/** The first way `xa` differs from the reference, or null (plain comparisons: expect() per step is slow). */
function differs(xa: Xarray, model: Map<number, number>, first: number, last: number): string | null {
  const broken = xaCheck(xa);
  if (broken !== null) return broken;
  const runs = runsOf(model);
  if (key([...xaRuns(xa, 0, WIDTH - 1)]) !== key(runs)) return 'runs differ';
  if (xaRunCount(xa) !== runs.length) return 'run count';
  if (xa.count !== model.size) return 'count';
  const d = digestOfRuns(runs);
  if (xa.digest.lo !== d.lo || xa.digest.hi !== d.hi) return 'digest differs from the runs hashed one by one';
  if (xaCanonicalBreak(xa) !== -1) return 'atoms are not canonical';
  if (JSON.stringify(atomsOf(xa)) !== JSON.stringify(canonicalAtoms(runs))) return 'atoms differ from a regroup';
  for (let index = 0; index < WIDTH; index++) {
    if (xaLoad(xa, index) !== model.get(index)) return `load ${index}`;
    const at = xaRunAt(xa, index);
    const want = runs.find((r) => r.index <= index && index < r.index + r.count);
    if (JSON.stringify(at) !== JSON.stringify(want)) return `run at ${index}`;
  }
  if (key([...xaRuns(xa, first, last)]) !== key(runsOf(model, first, last))) return `runs of [${first}, ${last}]`;
  const seen: XaRun[] = [];
  xaForEachRun(xa, first, last, (index, pfn, count) => void seen.push({ index, pfn, count }));
  if (key(seen) !== key(runsOf(model, first, last))) return `xaForEachRun of [${first}, ${last}]`;
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
  .tuple(fc.integer({ min: 0, max: WIDTH - 1 }), fc.integer({ min: -1, max: 60 }))
  .map(([first, n]) => ({ first, last: first + n }));

/** A row of `pages` single pages frame, gap, frame ... from PFN `pfn`. */
function frameGapFrame(pages: number, pfn: number): Xarray {
  const xa = xaCreate();
  for (let i = 0; i < pages; i++) xaStore(xa, i, pfn + 2 * i);
  return xa;
}

const atom = (index: number, pfn: number, count: number, n: number, indexStep: number, pfnStep: number): XaAtom => ({
  index,
  pfn,
  count,
  n,
  indexStep,
  pfnStep,
});

describe('xarray progressions', () => {
  it('agree with a Map of index to PFN after every write of strided rows, and stay canonical', () => {
    fc.assert(
      fc.property(writesArb, probeArb, (writes, probe) => {
        const xa = xaCreate();
        const model = new Map<number, number>();
        for (const w of writes) {
          const got = apply(xa, w);
          const want = applyModel(model, w);
          if (got !== want) expect.fail(`${JSON.stringify(w)} returned ${got}, expected ${want}`);
          const diff = differs(xa, model, probe.first, probe.last);
          if (diff !== null) expect.fail(`after ${JSON.stringify(w)}: ${diff}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('store a contiguous list of runs in one write as storing each in turn would, present count included', () => {
    const listArb = fc.record({
      index: fc.integer({ min: 0, max: INDEXES - 1 }),
      runs: fc.array(fc.record({ count: fc.constantFrom(1, 1, 2), pfn: fc.integer({ min: 400, max: 700 }) }), {
        minLength: 1,
        maxLength: 40,
      }),
      strided: fc.boolean(),
    });
    fc.assert(
      fc.property(writesArb, listArb, (writes, list) => {
        const one = xaCreate();
        const each = xaCreate();
        for (const w of writes) {
          apply(one, w);
          apply(each, w);
        }
        const runs: [number, number, number][] = [];
        let at = list.index;
        list.runs.forEach((r, k) => {
          // Strided: the PFNs of a scattered guest, frame after frame apart; else any PFNs.
          runs.push([at, list.strided ? 900 + 2 * k : r.pfn, r.count]);
          at += r.count;
        });
        const got = xaStoreRuns(one, runs);
        let want = 0;
        for (const [index, pfn, count] of runs) want += xaStore(each, index, pfn, count);
        expect(got).toBe(want);
        expect([...xaRuns(one, 0, WIDTH)]).toEqual([...xaRuns(each, 0, WIDTH)]);
        expect(one.count).toBe(each.count);
        expect(one.digest).toEqual(each.digest);
        expect(xaCheck(one)).toBeNull();
        expect([...btreeEntries(one.runs)]).toEqual([...btreeEntries(each.runs)]);
      }),
      { numRuns: 400 },
    );
  });

  it('hold a frame-gap-frame row of 4096 pages as one atom, cut by an erase or a new PFN in the middle', () => {
    const xa = frameGapFrame(4096, 0x40000);
    expect(atomsOf(xa)).toEqual([atom(0, 0x40000, 1, 4096, 1, 2)]);
    expect(xa.count).toBe(4096);
    expect(xaRunCount(xa)).toBe(4096);
    expect(xaCheck(xa)).toBeNull();

    expect(xaErase(xa, 2000)).toBe(1);
    expect(atomsOf(xa)).toEqual([atom(0, 0x40000, 1, 2000, 1, 2), atom(2001, 0x40000 + 4002, 1, 2095, 1, 2)]);
    expect(xa.digest).toEqual(digestOfRuns([...xaRuns(xa, 0, 4095)]));
    expect(xaCheck(xa)).toBeNull();

    // Page 2000 back at another frame: 2000 and 2001 pair up (the step from 1999 to 2000 is not the row's).
    expect(xaStore(xa, 2000, 0x90000)).toBe(0);
    expect(atomsOf(xa)).toEqual([
      atom(0, 0x40000, 1, 2000, 1, 2),
      atom(2000, 0x90000, 1, 2, 1, 0x40000 + 4002 - 0x90000),
      atom(2002, 0x40000 + 4004, 1, 2094, 1, 2),
    ]);
    expect(xa.count).toBe(4096);
    expect(xa.digest).toEqual(digestOfRuns([...xaRuns(xa, 0, 4095)]));
    expect(xaCheck(xa)).toBeNull();

    // Its own frame again: one atom as before.
    expect(xaStore(xa, 2000, 0x40000 + 4000)).toBe(1);
    expect(atomsOf(xa)).toEqual([atom(0, 0x40000, 1, 4096, 1, 2)]);
    expect(xa.digest).toEqual(digestOfRuns([...xaRuns(xa, 0, 4095)]));
  });

  it('grow a row of 262,144 single pages at its end as one atom whose listing and digest are per page', () => {
    const pages = 262_144;
    const xa = frameGapFrame(pages, 7);
    expect(atomsOf(xa)).toEqual([atom(0, 7, 1, pages, 1, 2)]);
    expect(xaCheck(xa)).toBeNull();
    expect(xaLoad(xa, pages - 1)).toBe(7 + 2 * (pages - 1));
    expect(xaPresent(xa, 10, pages + 10)).toBe(pages - 10);
    expect(xaFirstAbsent(xa, 0, pages)).toBe(pages);
    expect(xaFirstPresent(xa, pages, pages + 5)).toBeUndefined();
    // A page more: the self-check's digest takes only the new page (the memo holds the rest).
    xaStore(xa, pages, 7 + 2 * pages);
    expect(xaCheck(xa)).toBeNull();
    expect(xa.digest).toEqual(digestOfRuns([...xaRuns(xa, 0, pages)]));
    expect(xaDigest(xa)).toEqual(xa.digest);
  });

  it('keep runs of one atom apart where they touch with a PFN gap (index step = count)', () => {
    const xa = xaCreate();
    xaStore(xa, 0, 1000, 4);
    xaStore(xa, 4, 2000, 4);
    xaStore(xa, 8, 3000, 4);
    expect(atomsOf(xa)).toEqual([atom(0, 1000, 4, 3, 4, 1000)]);
    expect([...xaRuns(xa, 2, 20)]).toEqual([
      { index: 2, pfn: 1002, count: 2 },
      { index: 4, pfn: 2000, count: 4 },
      { index: 8, pfn: 3000, count: 4 },
    ]);
    expect(xaFirstAbsent(xa, 2, 20)).toBe(12);
    // The middle run's PFNs made contiguous with the first: it merges, and the atom breaks in two runs.
    expect(xaStore(xa, 4, 1004, 4)).toBe(4);
    expect(atomsOf(xa)).toEqual([atom(0, 1000, 8, 1, 0, 0), atom(8, 3000, 4, 1, 0, 0)]);
    expect(xaCheck(xa)).toBeNull();
  });

  it('regroup an old-shape xarray (runs without the atom fields) into the atoms built directly', () => {
    fc.assert(
      fc.property(writesArb, (writes) => {
        const direct = xaCreate();
        const model = new Map<number, number>();
        for (const w of writes) {
          apply(direct, w);
          applyModel(model, w);
        }
        // As a snapshot of format 2 decodes: one plain run per tree entry, digest and count as stored.
        const old = xaCreate();
        const tree = btreeCreate<number, XaRun>();
        for (const r of runsOf(model)) btreeSet(tree, r.index, { ...r });
        old.runs = tree as unknown as Xarray['runs'];
        old.digest = { ...direct.digest };
        old.count = direct.count;
        xaRegroupAll(old);
        expect(atomsOf(old)).toEqual(atomsOf(direct));
        for (const a of atomsOf(old))
          expect(Object.keys(a)).toEqual(['index', 'pfn', 'count', 'n', 'indexStep', 'pfnStep']);
        expect(old.digest).toEqual(direct.digest);
        expect(old.count).toBe(direct.count);
        expect(xaCheck(old)).toBeNull();
        // Regrouping a canonical xarray changes nothing.
        xaRegroupAll(direct);
        expect(atomsOf(direct)).toEqual(atomsOf(old));
      }),
      { numRuns: 200 },
    );
  });

  it('replay through produceWithPatches, whose patches and inverse patches map each state to the other', () => {
    fc.assert(
      fc.property(writesArb, (writes) => {
        let state = xaCreate();
        const model = new Map<number, number>();
        for (const w of writes) {
          const [next, patches, inverse] = produceWithPatches(state, (draft) => {
            apply(draft, w);
          });
          applyModel(model, w);
          const diff = differs(next, model, 0, WIDTH - 1);
          if (diff !== null) expect.fail(`after ${JSON.stringify(w)}: ${diff}`);
          expect(applyPatches(state, patches)).toEqual(next);
          expect(applyPatches(next, inverse)).toEqual(state);
          state = next;
        }
      }),
      { numRuns: 40 },
    );
  });

  it('extend a long atom at its end by changing its n in place', () => {
    const xa = frameGapFrame(64, 1000);
    const [, patches] = produceWithPatches(xa, (draft) => {
      xaStore(draft, 64, 1128);
    });
    expect(patches.map((p) => p.path.join('.')).sort()).toEqual([
      'count',
      'digest.hi',
      'digest.lo',
      'runs.root.vals.0.n',
    ]);
  });
});
