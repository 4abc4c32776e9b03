// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { DigestNeutralizer, neutralDigestOfState, parseDigestHex } from '../../../src/bisect/neutral.js';
import { replay } from '../../../src/replay/replayer.js';
import { digestHex } from '../../../src/lib/digest.js';
import { recordSet } from '../../../src/state/records.js';
import { deserializeState, serializeState } from '../../../src/state/snapshot.js';
import type { Event } from '../../../src/events/events.js';
import type { EventSink } from '../../../src/state/emit.js';
import type { State } from '../../../src/state/state.js';
import { ACCESS_DOMAIN_DESTORY, BAD_FREE, FIXTURES, trace, variant } from '../../support/bisect-traces.js';

const TRACES = [
  BAD_FREE,
  ACCESS_DOMAIN_DESTORY,
  `${FIXTURES}/split-domains-itree.jsonl`,
  `${FIXTURES}/access-pin-short.jsonl`,
  `${FIXTURES}/detach-carry.jsonl`,
];

describe('DigestNeutralizer', () => {
  for (const path of TRACES) {
    for (const name of ['v3', 'merged', 'upstream']) {
      for (const derived of [true, false]) {
        it(`tracks the state's neutral digest after every op of ${path} on ${name} (derived ${derived})`, () => {
          const n = new DigestNeutralizer({ derived, provenance: derived });
          let ops = 0;
          replay(trace(path), {
            ...variant(name),
            sink: n,
            onOp: (record, state) => {
              expect(n.neutral(record.digest)).toBe(neutralDigestOfState(state, { derived, provenance: derived }));
              ops++;
            },
          });
          expect(ops).toBeGreaterThan(5);
        });
      }
    }
  }

  for (const path of TRACES) {
    it(`seeded with the live heap at any op of ${path}, follows the run as if from its start`, () => {
      const states: State[] = [];
      const events: { op: number; event: Event }[] = [];
      let op = 0;
      const sink: EventSink = { accept: (event) => void events.push({ op, event }) };
      replay(trace(path), {
        ...variant('upstream'),
        sink,
        onOp: (record, state) => {
          states.push(deserializeState(serializeState(state)));
          op = record.index + 1;
        },
      });
      const full = new DigestNeutralizer();
      const corrections: string[] = [];
      let next = 0;
      for (let k = 0; k < states.length; k++) {
        for (; events[next] !== undefined && (events[next]?.op ?? 0) <= k; next++) full.accept(events[next]!.event);
        corrections.push(full.correctionHex());
      }
      for (let seedAt = 0; seedAt < states.length; seedAt++) {
        // The alignments followed from the start, the allocations from the state after op seedAt.
        const seeded = new DigestNeutralizer();
        for (const { op: at, event } of events)
          if (at <= seedAt && event.type !== 'HeapAllocated' && event.type !== 'HeapFreed') seeded.accept(event);
        seeded.seedProvenance(Object.values(states[seedAt]!.heap));
        expect(seeded.correctionHex()).toBe(corrections[seedAt]);
        for (const { op: at, event } of events) if (at > seedAt) seeded.accept(event);
        expect(seeded.correctionHex()).toBe(corrections[corrections.length - 1]);
      }
    });
  }

  it('makes states that differ only in an IOAS alignment equal, and strict mode keeps them apart', () => {
    let state: State | null = null;
    replay(trace(BAD_FREE), {
      ...variant('v3'),
      onOp: (r, s) => void (r.index === 6 ? (state = deserializeState(serializeState(s))) : null),
    });
    const a = state as unknown as State;
    const b = deserializeState(serializeState(a));
    const ioas = b.ioases['A'];
    if (ioas === undefined) throw new Error('no IOAS A');
    expect(ioas.iovaAlignment).toBe(1n);
    recordSet(b, 'ioas', 'A', ioas, 'iovaAlignment', 4096n);
    expect(digestHex(a.digest)).not.toBe(digestHex(b.digest));
    expect(neutralDigestOfState(a)).toBe(neutralDigestOfState(b));
    expect(neutralDigestOfState(a, { derived: false })).not.toBe(neutralDigestOfState(b, { derived: false }));
    expect(neutralDigestOfState(a, { derived: false, provenance: false })).toBe(digestHex(a.digest));
  });

  it('makes states that differ only in which function allocated a live allocation equal (provenance)', () => {
    let state: State | null = null;
    replay(trace(BAD_FREE), {
      ...variant('v3'),
      onOp: (r, s) => void (r.index === 6 ? (state = deserializeState(serializeState(s))) : null),
    });
    const a = state as unknown as State;
    const b = deserializeState(serializeState(a));
    const [alloc] = Object.values(b.heap);
    if (alloc === undefined) throw new Error('no live allocation');
    recordSet(b, 'heap', alloc.id, alloc, 'fn', 'renamed_by_a_refactor');
    recordSet(b, 'heap', alloc.id, alloc, 'tag', 'renamed_struct');
    expect(neutralDigestOfState(a)).toBe(neutralDigestOfState(b));
    expect(neutralDigestOfState(a, { provenance: false })).not.toBe(neutralDigestOfState(b, { provenance: false }));
    // The size and the owner are what the kernel holds: they count.
    const c = deserializeState(serializeState(a));
    const other = c.heap[alloc.id];
    if (other === undefined) throw new Error('no copy');
    recordSet(c, 'heap', alloc.id, other, 'size', other.size + 8);
    expect(neutralDigestOfState(c)).not.toBe(neutralDigestOfState(a));
  });
});

describe('DigestNeutralizer.sameNeutral', () => {
  it('says whether two neutral digests are equal, as comparing their text does', () => {
    const a = new DigestNeutralizer();
    const b = new DigestNeutralizer();
    a.accept({
      type: 'HeapAllocated',
      v: 1,
      alloc: 7,
      size: 64,
      fn: 'iopt_pages_add_access',
      tag: 'x',
      owner: null,
    } as unknown as Event);
    b.accept({
      type: 'HeapAllocated',
      v: 1,
      alloc: 7,
      size: 64,
      fn: 'iopt_area_add_access',
      tag: 'x',
      owner: null,
    } as unknown as Event);
    const raws = ['0000000000000000', 'ffffffff00000001', '0123456789abcdef', a.correctionHex(), b.correctionHex()];
    for (const ra of raws) {
      for (const rb of raws) {
        expect(a.sameNeutral(ra, b, rb), `${ra} ${rb}`).toBe(a.neutral(ra) === b.neutral(rb));
        expect(a.sameNeutral(ra, a, rb)).toBe(ra === rb);
      }
    }
    // The raw digests of two states that differ only in the provenance: their difference is the corrections'.
    expect(a.sameNeutral(a.correctionHex(), b, b.correctionHex())).toBe(true);
  });
});

describe('parseDigestHex', () => {
  it('reads the hi lane first, as digestHex writes it', () => {
    expect(parseDigestHex('0000000100000002')).toEqual({ hi: 1, lo: 2 });
    expect(digestHex(parseDigestHex('ffffffff8000abcd'))).toBe('ffffffff8000abcd');
  });

  it('refuses text that is not 16 hex digits', () => {
    expect(() => parseDigestHex('abc')).toThrow('not a state digest: "abc"');
  });
});
