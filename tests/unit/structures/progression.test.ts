import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalBreak, regroup } from '../../../src/structures/progression.js';
import type { ProgressionOps } from '../../../src/structures/progression.js';

/** A test element: `span` units from `key`, a numeric field `v` and a field `tag` that must be equal. */
interface El {
  key: number;
  span: number;
  v: number;
  tag: string;
}
/** A test atom: n elements, element i at key + i*keyStep with v + i*vStep. */
interface Atom extends El {
  n: number;
  keyStep: number;
  vStep: number;
}

const elementsOf = (a: Atom): El[] =>
  Array.from({ length: a.n }, (_, i) => ({ key: a.key + i * a.keyStep, span: a.span, v: a.v + i * a.vStep, tag: a.tag }));
const single = (e: El): Atom => ({ ...e, n: 1, keyStep: 0, vStep: 0 });
const lastOf = (a: Atom): El => elementsOf(a)[a.n - 1] as El;

const ops: ProgressionOps<Atom> = {
  size: (a) => a.n,
  continues(a, b) {
    if (b.span !== a.span || b.tag !== a.tag) return 0;
    const last = lastOf(a);
    const dk = b.key - last.key;
    const dv = b.v - last.v;
    if (a.n >= 2 && (dk !== a.keyStep || dv !== a.vStep)) return 0;
    return b.n >= 2 && b.keyStep === dk && b.vStep === dv ? b.n : 1;
  },
  concat(a, b, k) {
    const keyStep = a.n >= 2 ? a.keyStep : b.key - a.key;
    const vStep = a.n >= 2 ? a.vStep : b.v - a.v;
    return { ...a, n: a.n + k, keyStep, vStep };
  },
  drop(b, k) {
    const e = elementsOf(b)[k] as El;
    const n = b.n - k;
    return { ...e, n, keyStep: n >= 2 ? b.keyStep : 0, vStep: n >= 2 ? b.vStep : 0 };
  },
};

/** The canonical grouping computed the slow way: element by element. */
function greedy(elements: readonly El[]): Atom[] {
  return regroup(ops, elements.map(single), () => undefined).groups;
}

/** Normalise a 1-element atom's unused steps so that atoms compare by contents. */
const norm = (atoms: Atom[]): Atom[] => atoms.map((a) => (a.n === 1 ? { ...a, keyStep: 0, vStep: 0 } : a));

// Elements on a line: each at a key after the previous one's end, shaped from a few choices so that
// progressions (and near misses) are common.
const elementList = fc
  .array(
    fc.record({
      gap: fc.constantFrom(0, 1, 1, 2, 3),
      span: fc.constantFrom(1, 1, 2),
      dv: fc.constantFrom(-1, 2, 2, 3, 5),
      tag: fc.constantFrom('a', 'a', 'a', 'b'),
    }),
    { maxLength: 40 },
  )
  .map((steps) => {
    const out: El[] = [];
    let key = 0;
    let v = 100;
    for (const s of steps) {
      out.push({ key: key + s.gap, span: s.span, v, tag: s.tag });
      key += s.gap + s.span;
      v += s.dv;
    }
    return out;
  });

describe('progressions', () => {
  it('groups a frame-gap-frame row into one atom and breaks it where the step changes', () => {
    const row = Array.from({ length: 6 }, (_, i) => ({ key: i, span: 1, v: 1000 + 2 * i, tag: 'a' }));
    expect(greedy(row)).toEqual([{ key: 0, span: 1, v: 1000, tag: 'a', n: 6, keyStep: 1, vStep: 2 }]);
    const broken = [...row.slice(0, 3), { key: 3, span: 1, v: 1009, tag: 'a' }, ...row.slice(4)];
    expect(norm(greedy(broken))).toEqual([
      { key: 0, span: 1, v: 1000, tag: 'a', n: 3, keyStep: 1, vStep: 2 },
      // 1009 continues 1004 only with step 5, which 1008 does not follow: a new pair, then the rest.
      { key: 3, span: 1, v: 1009, tag: 'a', n: 2, keyStep: 1, vStep: -1 },
      { key: 5, span: 1, v: 1010, tag: 'a', n: 1, keyStep: 0, vStep: 0 },
    ]);
  });

  it('a greedy grouping is canonical and any other grouping of the same elements is not', () => {
    fc.assert(
      fc.property(elementList, (elements) => {
        const atoms = greedy(elements);
        expect(canonicalBreak(ops, atoms)).toBe(-1);
        expect(atoms.flatMap(elementsOf)).toEqual(elements);
        const split = atoms.findIndex((a) => a.n >= 2);
        if (split >= 0) {
          const a = atoms[split] as Atom;
          const pieces = [...atoms.slice(0, split), { ...a, n: 1 }, ops.drop(a, 1), ...atoms.slice(split + 1)];
          expect(canonicalBreak(ops, pieces)).toBe(split + 1);
        }
      }),
    );
  });

  it('regrouping a rewritten window gives the grouping of the whole from scratch', () => {
    fc.assert(
      fc.property(elementList, elementList, fc.nat(), fc.nat(), (before, fresh, a, b) => {
        // Stored: the canonical atoms of `before`. Rewrite the elements of keys [lo, hi) by `fresh`
        // shifted into that window (dropping those that do not fit in it).
        const stored = greedy(before);
        const all = stored.flatMap(elementsOf);
        const end = all.length === 0 ? 0 : (all[all.length - 1] as El).key + 2;
        const lo = end === 0 ? 0 : a % end;
        const hi = lo + (end === 0 ? 0 : b % (end - lo + 1));
        const shifted = fresh.map((e) => ({ ...e, key: e.key + lo })).filter((e) => e.key + e.span <= hi);
        const kept = all.filter((e) => e.key + e.span <= lo || e.key >= hi);
        const expected = greedy([...kept.filter((e) => e.key < lo), ...shifted, ...kept.filter((e) => e.key >= hi)]);

        // The window's atoms: from the atom holding the first element at or after lo (or the atom before,
        // when the window starts on an atom's first element) to the last atom with an element before hi.
        const firstHit = stored.findIndex((s) => elementsOf(s).some((e) => e.key + e.span > lo));
        const lastHit = stored.reduce((k, s, i) => (elementsOf(s).some((e) => e.key < hi) ? i : k), -1);
        const from = firstHit < 0 ? stored.length : firstHit;
        const left: Atom[] = [];
        let start = from;
        const head = stored[from];
        const headKeep = head === undefined ? 0 : elementsOf(head).filter((e) => e.key + e.span <= lo).length;
        if (head !== undefined && headKeep > 0) left.push({ ...head, n: headKeep });
        else if (from > 0) {
          start = from - 1;
          left.push(stored[start] as Atom);
        }
        const to = Math.max(lastHit, from - 1);
        const right: Atom[] = [];
        const tail = stored[to];
        if (to >= from && tail !== undefined) {
          const drop = elementsOf(tail).filter((e) => e.key < hi).length;
          if (drop < tail.n) right.push(ops.drop(tail, drop));
        }
        const rewritten = [...left.map((x) => (x.n === 1 ? { ...x, keyStep: 0, vStep: 0 } : x)), ...shifted.map(single), ...right];
        const after = stored.slice(Math.max(to, from - 1) + 1);
        const r = regroup(ops, rewritten, (i) => after[i]);
        const result = [...stored.slice(0, start), ...r.groups, ...after.slice(r.replaced)];
        expect(norm(result)).toEqual(norm(expected));
        expect(canonicalBreak(ops, result)).toBe(-1);
      }),
      { numRuns: 2000 },
    );
  });
});
