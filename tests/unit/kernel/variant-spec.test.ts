// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { parseVariantSpec, variantFromOptions, variantLabel } from '../../../src/kernel/variant-spec.js';
import { FLAG_NAMES, PRE_MERGE_FLAGS } from '../../../src/kernel/variants.js';

describe('parseVariantSpec', () => {
  it('reads a bare variant', () => {
    expect(parseVariantSpec('v3')).toEqual({ variant: 'v3', fixes: [], label: 'v3' });
    expect(parseVariantSpec('merged').fixes).toEqual(PRE_MERGE_FLAGS);
  });

  it('adds and removes flags whose names hold hyphens, in upstream order', () => {
    expect(parseVariantSpec('v3+fill-xarray-upages-bytes+mmget-fail-no-kfree').fixes).toEqual([
      'mmget-fail-no-kfree',
      'fill-xarray-upages-bytes',
    ]);
    const u = parseVariantSpec('upstream-carry-end-one-carry-store-order');
    expect(u.fixes).not.toContain('carry-end-one');
    expect(u.fixes).not.toContain('carry-store-order');
    expect(u.fixes).toHaveLength(30);
    expect(u.label).toBe('upstream-carry-end-one-carry-store-order');
  });

  it('names what is wrong with a bad spec', () => {
    expect(() => parseVariantSpec('v4')).toThrow('variant "v4" must start with one of v3, merged, upstream');
    expect(() => parseVariantSpec('v3+carry')).toThrow(
      'variant "v3+carry": "+carry" is not +FLAG or -FLAG with a known flag',
    );
    expect(() => parseVariantSpec('v3*x')).toThrow('variant "v3*x" must start with one of');
  });
});

describe('variantLabel', () => {
  it('writes a flag set in the one syntax, relative to the variant it was recorded under', () => {
    expect(variantLabel('v3', ['mmget-fail-no-kfree'])).toBe('v3+mmget-fail-no-kfree');
    expect(variantLabel('v3', [])).toBe('v3');
    expect(variantLabel('v3+mmget-fail-no-kfree', ['mmget-fail-no-kfree', 'carry-end-one'])).toBe(
      'v3+mmget-fail-no-kfree+carry-end-one',
    );
    expect(
      variantLabel(
        'upstream',
        FLAG_NAMES.filter((f) => f !== 'carry-end-one'),
      ),
    ).toBe('upstream-carry-end-one');
    expect(variantLabel('merged', [...PRE_MERGE_FLAGS, 'carry-store-order'])).toBe('merged+carry-store-order');
    expect(variantLabel('something-else', ['carry-end-one'])).toBe('something-else');
  });

  it('reads back to the same flags', () => {
    for (const label of ['v3+npfns-u32+carry-end-one', 'upstream-unmap-advance-start', 'merged']) {
      const spec = parseVariantSpec(label);
      expect(variantLabel(spec.variant, spec.fixes)).toBe(label);
    }
  });
});

describe('variantFromOptions', () => {
  it('takes a spec, then --fix and --without; the label is canonical', () => {
    expect(variantFromOptions('v3', ['mmget-fail-no-kfree'])).toEqual({
      variant: 'v3',
      fixes: ['mmget-fail-no-kfree'],
      label: 'v3+mmget-fail-no-kfree',
    });
    expect(variantFromOptions('v3+mmget-fail-no-kfree')).toEqual(variantFromOptions('v3', ['mmget-fail-no-kfree']));
    expect(variantFromOptions(undefined).label).toBe('upstream');
    expect(variantFromOptions('upstream', [], ['carry-end-one']).label).toBe('upstream-carry-end-one');
    expect(() => variantFromOptions('v3', ['carry'])).toThrow('unknown fix flag "carry"');
    expect(() => variantFromOptions('v3+carry')).toThrow('"+carry" is not +FLAG or -FLAG with a known flag');
  });
});
