// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Immer, enablePatches } from 'immer';
import { btreeCreate, btreeEntries, btreeSet } from '../../../src/structures/btree.js';
import {
  mappingAt,
  mappingOps,
  mappingsCheck,
  mappingsCount,
  mappingsDigest,
  mappingsForEachFrom,
  mappingsPieces,
  mappingsRegroupAll,
} from '../../../src/structures/mapping-table.js';
import type { Mapping, MappingAtom, MappingTable } from '../../../src/structures/mapping-table.js';
import { regroup } from '../../../src/structures/progression.js';
import { digestAdd, zeroDigest } from '../../../src/lib/digest.js';
import type { Digest } from '../../../src/lib/digest.js';
import { pgsizeRuns } from '../../../src/state/reducers/domain.js';
import { reduce } from '../../../src/state/reduce.js';
import { initialState } from '../../../src/state/state.js';
import type { State } from '../../../src/state/state.js';
import type { Event } from '../../../src/events/events.js';

enablePatches();

const PAGE = 0x1000n;
const BASE = 1n << 24n;
const PHYS = 0x40000000n;
/** Ops start below this many pages from BASE; lookups look a little past it. */
const PAGES = 48;

/** Today's table written simply: a sorted list of pieces and the reducer's cut-and-put, as it was. */
interface Reference {
  kind: 'mock' | 'generic';
  pgsizes: bigint[];
  pieces: Mapping[];
  bytes: bigint;
}

function refRemove(r: Reference, start: bigint, end: bigint): bigint {
  let removed = 0n;
  const out: Mapping[] = [];
  for (const m of r.pieces) {
    const mEnd = m.iova + m.size;
    if (mEnd <= start || m.iova >= end) {
      out.push(m);
      continue;
    }
    const cutStart = m.iova > start ? m.iova : start;
    const cutEnd = mEnd < end ? mEnd : end;
    removed += cutEnd - cutStart;
    if (m.iova < cutStart) out.push({ ...m, size: cutStart - m.iova, tailFlag: false });
    if (cutEnd < mEnd)
      out.push({ ...m, iova: cutEnd, paddr: m.paddr + (cutEnd - m.iova), size: mEnd - cutEnd, headFlag: false });
  }
  r.pieces = out;
  return removed;
}

function refMap(
  r: Reference,
  extent: number,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  read: boolean,
  write: boolean,
) {
  r.bytes -= refRemove(r, iova, iova + size);
  if (r.kind === 'mock') {
    r.pieces.push({
      iova,
      size,
      paddr,
      pgsize: r.pgsizes[0] as bigint,
      read,
      write,
      extent,
      headFlag: true,
      tailFlag: true,
    });
  } else {
    for (const run of pgsizeRuns(iova, paddr, size, r.pgsizes)) {
      r.pieces.push({ ...run, read, write, extent, headFlag: false, tailFlag: false });
    }
  }
  r.pieces.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  r.bytes += size;
}

/** The digest as each piece stored on its own gave it: hashParts of its fields, summed. */
function refDigest(pieces: readonly Mapping[]): Digest {
  const d = zeroDigest();
  for (const m of pieces) {
    digestAdd(d, [m.iova, m.size, m.paddr, m.pgsize, m.read, m.write, m.extent, m.headFlag, m.tailFlag]);
  }
  return d;
}

const single = (m: Mapping): MappingAtom => ({
  iova: m.iova,
  size: m.size,
  paddr: m.paddr,
  pgsize: m.pgsize,
  read: m.read,
  write: m.write,
  extent: m.extent,
  headFlag: m.headFlag,
  tailFlag: m.tailFlag,
  n: 1,
  iovaStep: 0n,
  paddrStep: 0n,
  extentStep: 0,
});
const atomsOf = (t: MappingTable): MappingAtom[] => [...btreeEntries(t.tree)].map(([, a]) => a);
/** A piece's own fields, without those of the atom it may be. */
function fieldsOf(m: Mapping): Mapping {
  const { iova, size, paddr, pgsize, read, write, extent, headFlag, tailFlag } = m;
  return { iova, size, paddr, pgsize, read, write, extent, headFlag, tailFlag };
}

/**
 * An op on one of the two domains. A row maps `count` single pages one call each, the page frames `stride`
 * pages apart and the extent ids `extentStep` apart (a guest whose frames are never adjacent); `flip`
 * alternates the write permission so that rows of unequal pieces occur too.
 */
type Op =
  | {
      kind: 'row';
      domain: 0 | 1;
      page: number;
      count: number;
      frame: number;
      stride: number;
      extentStep: number;
      flip: boolean;
      runs: boolean;
    }
  | { kind: 'map'; domain: 0 | 1; page: number; pages: number; frame: number; write: boolean }
  | { kind: 'unmap'; domain: 0 | 1; ranges: [number, number][] };

const domainArb = fc.constantFrom(0 as const, 1 as const);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('row' as const),
      domain: domainArb,
      page: fc.integer({ min: 0, max: PAGES - 1 }),
      count: fc.integer({ min: 1, max: 12 }),
      frame: fc.integer({ min: 0, max: 64 }),
      stride: fc.constantFrom(2, 2, 3, 1, 0, -1),
      extentStep: fc.constantFrom(1, 1, 2),
      flip: fc.boolean(),
      runs: fc.boolean(),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      domain: domainArb,
      page: fc.integer({ min: 0, max: PAGES - 1 }),
      pages: fc.integer({ min: 1, max: 6 }),
      frame: fc.integer({ min: 0, max: 64 }),
      write: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      domain: domainArb,
      // Half pages too: a mock piece is cut at its 2 KiB IO pages.
      ranges: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 * PAGES - 1 }), fc.integer({ min: 1, max: 24 })), {
        minLength: 1,
        maxLength: 2,
      }),
    }),
    weight: 2,
  },
);

const DOMAINS = ['M', 'G'] as const;

function freshWorld(): { state: State; refs: Reference[] } {
  const state = initialState();
  reduce(state, {
    type: 'DomainAllocated',
    v: 1,
    domain: 'M',
    kind: 'mock',
    pgsizes: [0x800n],
    aperture: [BASE, (1n << 31n) - 1n],
  });
  reduce(state, {
    type: 'DomainAllocated',
    v: 1,
    domain: 'G',
    kind: 'generic',
    pgsizes: [PAGE, 2n * PAGE],
    aperture: [0n, (1n << 64n) - 1n],
  });
  return {
    state,
    refs: [
      { kind: 'mock', pgsizes: [0x800n], pieces: [], bytes: 0n },
      { kind: 'generic', pgsizes: [PAGE, 2n * PAGE], pieces: [], bytes: 0n },
    ],
  };
}

/** The events of an op (applied to the state) after applying it to the reference. */
function eventsOf(op: Op, ref: Reference, nextExtent: { id: number }): Event[] {
  const domain = DOMAINS[op.domain];
  const events: Event[] = [];
  if (op.kind === 'unmap') {
    const removed: [bigint, bigint][] = op.ranges.map(([half, halves]) => [
      BASE + BigInt(half) * 0x800n,
      BigInt(halves) * 0x800n,
    ]);
    for (const [iova, size] of removed) ref.bytes -= refRemove(ref, iova, iova + size);
    events.push({ type: 'IommuUnmapped', v: 1, domain, iova: 0n, size: 0n, unmapped: 0n, removed, fn: 't' });
    return events;
  }
  if (op.kind === 'map') {
    const extent = nextExtent.id++;
    const iova = BASE + BigInt(op.page) * PAGE;
    const paddr = PHYS + BigInt(op.frame) * PAGE;
    const size = BigInt(op.pages) * PAGE;
    refMap(ref, extent, iova, paddr, size, true, op.write);
    events.push({ type: 'IommuMapped', v: 1, domain, extent, iova, paddr, size, read: true, write: op.write, fn: 't' });
    return events;
  }
  const extents: { extent: number; iova: bigint; paddr: bigint; size: bigint }[] = [];
  for (let i = 0; i < op.count; i++) {
    const extent = nextExtent.id;
    nextExtent.id += op.extentStep;
    const iova = BASE + BigInt(op.page + i) * PAGE;
    const paddr = PHYS + (BigInt(op.frame) + BigInt(i * op.stride)) * PAGE + (op.stride < 0 ? 64n * PAGE : 0n);
    const write = op.flip ? i % 2 === 0 : true;
    refMap(ref, extent, iova, paddr, PAGE, true, write);
    if (op.runs && !op.flip) extents.push({ extent, iova, paddr, size: PAGE });
    else
      events.push({ type: 'IommuMapped', v: 1, domain, extent, iova, paddr, size: PAGE, read: true, write, fn: 't' });
  }
  if (extents.length > 0)
    events.push({ type: 'IommuMappedRuns', v: 1, domain, read: true, write: true, fn: 't', extents });
  return events;
}

/** Everything a reader can ask of the table agrees with the reference, and the table is canonical. */
function expectSame(t: MappingTable, ref: Reference, mappedBytes: bigint, probe: number): void {
  expect(mappingsPieces(t)).toEqual(ref.pieces);
  expect(mappingsCount(t)).toBe(ref.pieces.length);
  expect(t.digest).toEqual(refDigest(ref.pieces));
  expect(mappingsDigest(t)).toEqual(t.digest);
  expect(mappingsCheck(t)).toBeNull();
  expect(atomsOf(t)).toEqual(regroup(mappingOps, ref.pieces.map(single), () => undefined).groups);
  expect(mappedBytes).toBe(ref.bytes);
  for (let half = 0; half < 2 * PAGES + 16; half++) {
    const iova = BASE + BigInt(half) * 0x800n + BigInt(probe % 0x800);
    const want = ref.pieces.find((m) => m.iova <= iova && iova < m.iova + m.size);
    const got = mappingAt(t, iova);
    expect(got === undefined ? undefined : fieldsOf(got)).toEqual(want);
  }
  const from = BASE + BigInt(probe % (2 * PAGES)) * 0x800n;
  const seen: Mapping[] = [];
  mappingsForEachFrom(t, from, (m) => void seen.push(fieldsOf(m)));
  expect(seen).toEqual(ref.pieces.filter((m) => m.iova >= from));
  const firstTwo: Mapping[] = [];
  mappingsForEachFrom(t, from, (m) => {
    firstTwo.push(fieldsOf(m));
    return firstTwo.length < 2;
  });
  expect(firstTwo).toEqual(ref.pieces.filter((m) => m.iova >= from).slice(0, 2));
}

describe('a domain mapping table stored as progressions', () => {
  it('answers as a sorted list of pieces after random maps and unmaps, canonical and with the same digest', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 24 }), fc.nat(), (ops, probe) => {
        const { state, refs } = freshWorld();
        const nextExtent = { id: 100 };
        for (const op of ops) {
          const ref = refs[op.domain] as Reference;
          for (const e of eventsOf(op, ref, nextExtent)) reduce(state, e);
          const d = state.domains[DOMAINS[op.domain]]!;
          expectSame(d.mappings, ref, d.mappedBytes, probe);
        }
      }),
      { numRuns: 250 },
    );
  });

  it('writes the same table under immer drafts as in place', () => {
    const immer = new Immer({ autoFreeze: false });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 16 }), (ops) => {
        const direct = freshWorld();
        let drafted = freshWorld().state;
        const nextExtent = { id: 100 };
        for (const op of ops) {
          const events = eventsOf(op, direct.refs[op.domain] as Reference, nextExtent);
          for (const e of events) reduce(direct.state, e);
          drafted = immer.produce(drafted, (s: State) => {
            for (const e of events) reduce(s, e);
          });
        }
        for (const name of DOMAINS) {
          const a = direct.state.domains[name]!.mappings;
          const b = drafted.domains[name]!.mappings;
          expect(atomsOf(b)).toEqual(atomsOf(a));
          expect(b.digest).toEqual(a.digest);
          expect(mappingsCheck(b)).toBeNull();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('keeps a row of 4,096 single pages with every frame apart in one atom, and cuts it where it changes', () => {
    const { state } = freshWorld();
    const row = (first: number, count: number, extent: number): Event[] =>
      Array.from({ length: count }, (_, i) => ({
        type: 'IommuMapped' as const,
        v: 1 as const,
        domain: 'G',
        extent: extent + i,
        iova: BASE + BigInt(first + i) * PAGE,
        paddr: PHYS + BigInt(2 * (first + i)) * PAGE,
        size: PAGE,
        read: true,
        write: true,
        fn: 't',
      }));
    for (const e of row(0, 4096, 1000)) reduce(state, e);
    const t = state.domains['G']!.mappings;
    const atom = (first: number, n: number, paddrPage: number, extent: number): MappingAtom => ({
      iova: BASE + BigInt(first) * PAGE,
      size: PAGE,
      paddr: PHYS + BigInt(paddrPage) * PAGE,
      pgsize: PAGE,
      read: true,
      write: true,
      extent,
      headFlag: false,
      tailFlag: false,
      n,
      iovaStep: n === 1 ? 0n : PAGE,
      paddrStep: n === 1 ? 0n : 2n * PAGE,
      extentStep: n === 1 ? 0 : 1,
    });
    expect(atomsOf(t)).toEqual([atom(0, 4096, 0, 1000)]);
    expect(mappingsCount(t)).toBe(4096);
    expect(t.digest).toEqual(refDigest(mappingsPieces(t)));
    const whole = { ...t.digest };

    // One page in the middle unmapped: the row before it and the row after it.
    reduce(state, {
      type: 'IommuUnmapped',
      v: 1,
      domain: 'G',
      iova: 0n,
      size: 0n,
      unmapped: 0n,
      removed: [[BASE + 2000n * PAGE, PAGE]],
      fn: 't',
    });
    expect(atomsOf(t)).toEqual([atom(0, 2000, 0, 1000), atom(2001, 2095, 4002, 3001)]);
    expect(t.digest).toEqual(refDigest(mappingsPieces(t)));

    // Mapped again to a frame off the row: greedy takes it and the next page as a pair, then the rest.
    reduce(state, {
      type: 'IommuMapped',
      v: 1,
      domain: 'G',
      extent: 9000,
      iova: BASE + 2000n * PAGE,
      paddr: PHYS + 0x100000n * PAGE,
      size: PAGE,
      read: true,
      write: true,
      fn: 't',
    });
    const pair: MappingAtom = {
      ...atom(2000, 1, 0x100000, 9000),
      n: 2,
      iovaStep: PAGE,
      paddrStep: (4002n - 0x100000n) * PAGE,
      extentStep: 3001 - 9000,
    };
    expect(atomsOf(t)).toEqual([atom(0, 2000, 0, 1000), pair, atom(2002, 2094, 4004, 3002)]);
    expect(mappingsCheck(t)).toBeNull();
    expect(t.digest).toEqual(refDigest(mappingsPieces(t)));

    // Mapped back as it was: one atom again, and the digest of the first row.
    reduce(state, {
      type: 'IommuUnmapped',
      v: 1,
      domain: 'G',
      iova: 0n,
      size: 0n,
      unmapped: 0n,
      removed: [[BASE + 2000n * PAGE, PAGE]],
      fn: 't',
    });
    reduce(state, row(2000, 1, 3000)[0] as Event);
    expect(atomsOf(t)).toEqual([atom(0, 4096, 0, 1000)]);
    expect(t.digest).toEqual(whole);
    expect(mappingsCheck(t)).toBeNull();
  });

  it('regroups an old-shape table (one piece per entry, no progression fields) to the table built directly', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 24 }), (ops) => {
        const { state, refs } = freshWorld();
        const nextExtent = { id: 100 };
        for (const op of ops) for (const e of eventsOf(op, refs[op.domain] as Reference, nextExtent)) reduce(state, e);
        for (const name of DOMAINS) {
          const built = state.domains[name]!.mappings;
          const oldTree = btreeCreate<bigint, Mapping>();
          for (const m of mappingsPieces(built)) btreeSet(oldTree, m.iova, m);
          const old = { tree: oldTree, digest: { ...built.digest } } as unknown as MappingTable;
          mappingsRegroupAll(old);
          expect(atomsOf(old)).toEqual(atomsOf(built));
          expect(old.digest).toEqual(built.digest);
          expect(mappingsCheck(old)).toBeNull();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('finds what is wrong with a table', () => {
    const { state } = freshWorld();
    for (let i = 0; i < 3; i++) {
      reduce(state, {
        type: 'IommuMapped',
        v: 1,
        domain: 'G',
        extent: 10 + i,
        iova: BASE + BigInt(i) * PAGE,
        paddr: PHYS + BigInt(3 * i) * PAGE,
        size: PAGE,
        read: true,
        write: true,
        fn: 't',
      });
    }
    const t = state.domains['G']!.mappings;
    expect(mappingsCheck(t)).toBeNull();
    const [a] = atomsOf(t) as [MappingAtom];
    // Split into two atoms: the same pieces, not the canonical grouping.
    const split = btreeCreate<bigint, MappingAtom>();
    btreeSet(split, a.iova, { ...a, n: 1, iovaStep: 0n, paddrStep: 0n, extentStep: 0 });
    btreeSet(split, a.iova + PAGE, { ...a, iova: a.iova + PAGE, paddr: a.paddr + 3n * PAGE, extent: 11, n: 2 });
    expect(mappingsCheck({ tree: split, digest: t.digest })).toBe(
      `atom at 0x${(BASE + PAGE).toString(16)} continues the atom before it`,
    );
    const off = btreeCreate<bigint, MappingAtom>();
    btreeSet(off, a.iova, a);
    expect(mappingsCheck({ tree: off, digest: zeroDigest() })).toBe('digest differs from the sum over the pieces');
    // The from-scratch digest remembers a long atom's sum, but not past a change of the atom in place.
    const kept = { ...t.digest };
    expect(mappingsDigest(t)).toEqual(kept);
    a.paddr += PAGE;
    expect(mappingsCheck(t)).toBe('digest differs from the sum over the pieces');
    a.paddr -= PAGE;
    expect(mappingsCheck(t)).toBeNull();
    const overlapping = btreeCreate<bigint, MappingAtom>();
    btreeSet(overlapping, a.iova, { ...a, iovaStep: 0x800n });
    expect(mappingsCheck({ tree: overlapping, digest: t.digest })).toBe(
      `atom at 0x${BASE.toString(16)}: pieces overlap (step 2048, size 4096)`,
    );
  });
});
