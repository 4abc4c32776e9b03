// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { replaceSlice } from '../../../src/lib/arrays.js';

describe('replaceSlice', () => {
  it('rewrites a slice of the same length in place', () => {
    const items = [1, 2, 3, 4, 5];
    const out = replaceSlice(items, 1, 3, [20, 30]);
    expect(out).toBe(items);
    expect(out).toEqual([1, 20, 30, 4, 5]);
  });

  it('returns a new array when the slice grows or shrinks, the input untouched', () => {
    const items = [1, 2, 3, 4, 5];
    expect(replaceSlice(items, 1, 3, [9])).toEqual([1, 9, 4, 5]);
    expect(replaceSlice(items, 2, 2, [7, 8])).toEqual([1, 2, 7, 8, 3, 4, 5]);
    expect(replaceSlice(items, 0, 5, [])).toEqual([]);
    expect(items).toEqual([1, 2, 3, 4, 5]);
  });
});
