// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { parseVariantSpec } from '../../../src/bisect/variant-spec.js';
import { PRE_MERGE_FLAGS } from '../../../src/kernel/variants.js';

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
    expect(u.fixes).toHaveLength(25);
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
