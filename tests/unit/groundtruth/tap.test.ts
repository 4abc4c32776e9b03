import { describe, expect, it } from 'vitest';
import { countOutcomes, parseTap } from '../../../src/groundtruth/tap.js';

// The shape of kselftest_harness output: diagnostics start with '#', results are TAP lines.
const SAMPLE = [
  'TAP version 13',
  '1..4',
  '# Starting 4 tests from 3 test cases.',
  '#  RUN           iommufd.simple_close ...',
  '#            OK  iommufd.simple_close',
  'ok 1 iommufd.simple_close',
  '#  RUN           iommufd_ioas.mock_domain.ioas_area_destroy ...',
  '# iommufd.c:230:ioas_area_destroy:Expected 0 (0) == _test_cmd_mock_domain_flags() (-1)',
  'not ok 2 iommufd_ioas.mock_domain.ioas_area_destroy',
  'ok 3 iommufd_dirty_tracking.domain_dirty128k.set_dirty_tracking # SKIP hugepages unavailable',
  'ok 4 basic_fail_nth.basic #  diagnostic after a pass\r',
  '# FAILED: 2 / 4 tests passed.',
  '# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:1 error:0',
].join('\n');

describe('parseTap', () => {
  it('reads each result line into an outcome, with SKIP reasons and the harness totals', () => {
    const r = parseTap(SAMPLE);
    expect(r.planned).toBe(4);
    expect(r.tests).toEqual([
      { number: 1, name: 'iommufd.simple_close', outcome: 'pass' },
      { number: 2, name: 'iommufd_ioas.mock_domain.ioas_area_destroy', outcome: 'fail' },
      {
        number: 3,
        name: 'iommufd_dirty_tracking.domain_dirty128k.set_dirty_tracking',
        outcome: 'skip',
        reason: 'hugepages unavailable',
      },
      { number: 4, name: 'basic_fail_nth.basic', outcome: 'pass', reason: 'diagnostic after a pass' },
    ]);
    expect(r.totals).toEqual({ pass: 2, fail: 1, xfail: 0, xpass: 0, skip: 1, error: 0 });
    expect(countOutcomes(r.tests)).toEqual({ pass: 2, fail: 1, skip: 1 });
  });

  it('ignores diagnostics that merely contain "ok" and reports no plan when none was printed', () => {
    const r = parseTap('# not ok 5 looks like a result\n#            OK  x\nsome ok 1 noise');
    expect(r.tests).toEqual([]);
    expect(r.planned).toBeUndefined();
    expect(r.totals).toBeUndefined();
  });
});
