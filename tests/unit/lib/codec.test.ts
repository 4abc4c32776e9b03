import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeJson, encodeJson } from '../../../src/lib/codec.js';

describe('encodeJson / decodeJson', () => {
  it('round-trips bigints up to 2^64 - 1 and negative ones', () => {
    const value = { a: 1n, b: [2n, 'x', { c: 18446744073709551615n, d: null }], g: -5n };
    expect(decodeJson(encodeJson(value))).toEqual(value);
    expect(encodeJson({ iova: 4096n })).toBe('{"iova":"4096n"}');
  });

  it('keeps strings that look like bigints or start with the escape as strings', () => {
    const value = { access: '12n', name: '~x', other: '~', plain: 'fn', n: 'n' };
    expect(encodeJson(value)).toBe('{"access":"~12n","name":"~~x","other":"~~","plain":"fn","n":"n"}');
    expect(decodeJson(encodeJson(value))).toEqual(value);
  });

  it('round-trips any JSON value made of strings, safe integers and bigints', () => {
    const leaf = fc.oneof(
      fc.string(),
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    );
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(
          fc.string().filter((k) => k !== '__proto__'),
          tie('node'),
          { maxKeys: 4 },
        ),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (v) => {
        expect(decodeJson(encodeJson(v))).toEqual(v);
      }),
      { numRuns: 500 },
    );
  });
});
