// SPDX-License-Identifier: GPL-2.0-only
// B7's figures: the round-trip program's summary line parsed, and the goal on the median.
import { describe, expect, it } from 'vitest';
import { parseRoundtrip } from '../../../bench/roundtrip.js';
import { roundtripResult, withSelftestRuns } from '../../../bench/run.js';

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

  it('adds the selftests under ioptrace run (--kernel) to its figures and notes, its goal unchanged', () => {
    const b7 = roundtripResult('full', { ...parseRoundtrip(LINE), loadBefore: 2, loadAfter: 2 });
    expect(b7.notes[0]).toMatch(/; the selftests' wall time under run comes with --kernel$/);
    const both = withSelftestRuns(b7, [
      { program: 'iommufd', wallSeconds: 352, pass: 132, fail: 58, exitStatus: 1, load: 2.5 },
      { program: 'iommufd_fail_nth', wallSeconds: 28, pass: 7, fail: 0, exitStatus: 0, load: 2.5 },
    ]);
    expect(both.figures).toMatchObject({
      iommufdUnderRunSeconds: 352,
      iommufdUnderRunPass: 132,
      iommufdUnderRunFail: 58,
      iommufd_fail_nthUnderRunSeconds: 28,
      iommufd_fail_nthUnderRunPass: 7,
      iommufd_fail_nthUnderRunFail: 0,
    });
    expect(both.met).toBe(true);
    expect(both.notes[0]).not.toMatch(/comes with --kernel/);
    expect(both.notes.at(-1)).toBe(
      "the kernel's selftests under ioptrace run --variant v6.12.y (wall time, as npm run test:kernel runs them): " +
        'iommufd 352 s (pass 132, fail 58, load 2.5), iommufd_fail_nth 28 s (pass 7, fail 0, load 2.5)',
    );
  });
});
