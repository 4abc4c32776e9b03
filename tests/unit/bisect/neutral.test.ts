// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { DigestNeutralizer, neutralDigestOfState, parseDigestHex } from '../../../src/bisect/neutral.js';
import { replay } from '../../../src/replay/replayer.js';
import { digestHex } from '../../../src/lib/digest.js';
import { recordSet } from '../../../src/state/records.js';
import { deserializeState, serializeState } from '../../../src/state/snapshot.js';
import type { State } from '../../../src/state/state.js';
import { ACCESS_DOMAIN_DESTORY, BAD_FREE, FIXTURES, trace, variant } from './helpers.js';

const TRACES = [
  BAD_FREE,
  ACCESS_DOMAIN_DESTORY,
  `${FIXTURES}/split-domains-itree.jsonl`,
  `${FIXTURES}/access-pin-short.jsonl`,
];

describe('DigestNeutralizer', () => {
  for (const path of TRACES) {
    for (const name of ['v3', 'merged', 'upstream']) {
      for (const derived of [true, false]) {
        it(`tracks the state's neutral digest after every op of ${path} on ${name} (derived ${derived})`, () => {
          const n = new DigestNeutralizer({ derived });
          let ops = 0;
          replay(trace(path), {
            ...variant(name),
            sink: n,
            onOp: (record, state) => {
              expect(n.neutral(record.digest)).toBe(neutralDigestOfState(state, { derived }));
              ops++;
            },
          });
          expect(ops).toBeGreaterThan(5);
        });
      }
    }
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
    expect(neutralDigestOfState(a, { derived: false })).toBe(digestHex(a.digest));
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
