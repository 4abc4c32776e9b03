// SPDX-License-Identifier: GPL-2.0-only
// B7's figures: the round-trip program's summary line parsed, and the goal on the median.
import { describe, expect, it } from 'vitest';
import { parseRoundtrip } from '../../../bench/roundtrip.js';
import { roundtripResult } from '../../../bench/run.js';

const LINE = 'IOMMU_IOAS_IOVA_RANGES round trip over 20000 calls: median 61.5 us, p99 2410.0 us, min 40.2 us';

describe('B7', () => {
  it('reads calls, median, p99 and minimum from the program', () => {
    expect(parseRoundtrip(`ioas_alloc ok id=1\n${LINE}\n`)).toEqual({
      calls: 20000,
      medianUs: 61.5,
      p99Us: 2410,
      minUs: 40.2,
    });
    expect(() => parseRoundtrip('ioas_alloc ok id=1\n')).toThrow('printed no summary line');
  });

  it('meets its goal on a median of at most 100 us, whatever the p99, and says so otherwise', () => {
    const m = { ...parseRoundtrip(LINE), loadBefore: 12.5, loadAfter: 14 };
    const met = roundtripResult('full', m);
    expect(met.met).toBe(true);
    expect(met.figures).toEqual({
      calls: 20000,
      medianUs: 61.5,
      p99Us: 2410,
      minUs: 40.2,
      loadAverage: 14,
      loadAverageBefore: 12.5,
    });
    const missed = roundtripResult('full', { ...m, medianUs: 309 });
    expect(missed.met).toBe(false);
    expect(missed.notes.some((n) => n.startsWith('goal not met'))).toBe(true);
  });
});
