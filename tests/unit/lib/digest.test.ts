// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import type { Digest, HashPart } from '../../../src/lib/digest.js';
import {
  digestAdd,
  digestAdd3,
  digestAddTriple,
  digestHex,
  digestRemove3,
  hashBegin,
  hashEnd,
  hashParts,
  hashText,
  hashTextInto,
  tupleAddTo,
  tupleKey,
  tupleLane1,
  tupleLane2,
  tuplePart,
  tupleResume,
  tupleStart,
  zeroDigest,
} from '../../../src/lib/digest.js';

/** The hash as first defined: every part's text form (String, with an `s` tag for strings) mixed char by char. */
function referenceHash(parts: readonly HashPart[]): Digest {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (const part of parts) {
    const text = typeof part === 'string' ? `s${part}` : part === null ? '\u0000' : String(part);
    for (const ch of `${text}|`) {
      h1 = Math.imul(h1 ^ ch.charCodeAt(0), 2654435761);
      h2 = Math.imul(h2 ^ ch.charCodeAt(0), 1597334677);
    }
  }
  let f1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  f1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  let f2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  f2 ^= Math.imul(f1 ^ (f1 >>> 13), 3266489909);
  return { lo: f1 >>> 0, hi: f2 >>> 0 };
}

const PARTS: HashPart[] = [
  0,
  -0,
  7,
  -7,
  9,
  10,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32 + 5,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  2 ** 53,
  1e21,
  1.5,
  -0.25,
  Number.NaN,
  Infinity,
  0n,
  -3n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 64n - 1n,
  -(2n ** 63n),
  true,
  false,
  null,
  '',
  'pages',
  '#',
  '{"1":{"id":1}}',
];

describe('digest', () => {
  it('hashes every kind of part as its text form, numbers without building the text', () => {
    for (const a of PARTS) {
      expect(hashParts([a])).toEqual(referenceHash([a]));
      expect(hashParts(['t', a, 'f'])).toEqual(referenceHash(['t', a, 'f']));
    }
  });

  it('adds and removes three parts without an array as with one', () => {
    const d = zeroDigest();
    const e = zeroDigest();
    for (const a of PARTS) {
      digestAdd3(d, a, 5, 'x');
      digestAdd(e, [a, 5, 'x']);
    }
    expect(d).toEqual(e);
    for (const a of PARTS) digestRemove3(d, a, 5, 'x');
    expect(d).toEqual(zeroDigest());
  });

  it('hashes a numeric record key as its text and resumes a tuple from its lanes', () => {
    for (const key of [0, 42, 1000, 2 ** 40, 'ctx:a']) {
      tupleStart();
      tuplePart('area');
      tupleKey(key);
      const l1 = tupleLane1();
      const l2 = tupleLane2();
      tupleStart();
      tuplePart('something else');
      tupleResume(l1, l2);
      tuplePart(3n);
      const d = zeroDigest();
      tupleAddTo(d);
      expect(d).toEqual(referenceHash(['area', String(key), 3n]));
    }
  });

  it('hashes a text kept as lanes redone in place as the whole text at once', () => {
    const members = ['"1":{"id":1}', '"7":{"id":7}', '"12":{"id":12}'];
    const lanes = [hashText(hashBegin(['access', 'mdev', 'items']), 's{')];
    for (const [i, m] of members.entries()) {
      const at = { h1: 0, h2: 0 };
      hashTextInto(at, lanes[i]!, i === 0 ? 0 : 0x2c, m);
      lanes.push(at);
    }
    const whole = `{${members.join(',')}}`;
    expect(hashEnd(hashText(lanes[3]!, '}'))).toEqual(referenceHash(['access', 'mdev', 'items', whole]));
    // Into the lanes it starts from: the same as into fresh ones.
    const again = { ...lanes[1]! };
    hashTextInto(again, again, 0x2c, members[1]!);
    expect(again).toEqual(lanes[2]);
  });

  it('writes a digest as 16 hex digits, hi lane first, each lane zero-padded', () => {
    const lanes = [0, 1, 0xf, 0x10, 0xabc, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff];
    for (const hi of lanes) {
      for (const lo of lanes) {
        expect(digestHex({ hi, lo })).toBe(hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0'));
      }
    }
    expect(digestHex({ hi: 0x12, lo: 0xabcdef01 })).toBe('00000012abcdef01');
  });

  it('adds a triple from its table of hashes as hashParts would, for numbers, bigints and collisions alike', () => {
    const triples: [HashPart, HashPart, HashPart][] = [
      [0, 0, 0],
      [-0, 0, 1],
      [1, 2, 3],
      [4096, 1 << 30, 2 ** 40],
      [1.5, -7, 2 ** 53 + 2],
      [5n, 6n, 7],
      [Number.NaN, 1, 2],
    ];
    // Many triples through the same table: slots are reused and overwritten, and a second pass hits them.
    for (let i = 0; i < 20000; i++) triples.push([i * 512, i * 512 + 511, (i * 7919) % 10007]);
    for (let pass = 0; pass < 2; pass++) {
      for (const [a, b, c] of triples) {
        const d = { lo: 5, hi: 7 };
        digestAddTriple(d, {}, a, b, c);
        const want = { lo: 5, hi: 7 };
        digestAdd(want, [a, b, c]);
        expect(d).toEqual(want);
      }
    }
  });
});
