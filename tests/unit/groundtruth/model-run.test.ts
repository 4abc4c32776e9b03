// The model's column of the selftest table: reasons from the harness's failure lines, agreement per fixture.
import { describe, expect, it } from 'vitest';
import { failureReasons } from '../../../src/groundtruth/model-run.js';
import { agreementOf, oracleDisagreements, oracleExitCode } from '../../../src/groundtruth/selftest-table.js';
import type { SelftestRow } from '../../../src/groundtruth/selftest-table.js';

describe('failureReasons', () => {
  it("gives each test the first failure line printed between its RUN line and its result, not a sibling's", () => {
    const output = [
      '#  RUN           iommufd.cmd_length ...',
      '# iommufd.c:118:cmd_length:Expected 22 (22) == errno (25)',
      '# iommufd.c:119:cmd_length:Expected 7 (7) == errno (25)',
      '# cmd_length: Test failed',
      '#          FAIL  iommufd.cmd_length',
      'not ok 2 iommufd.cmd_length',
      '#  RUN           iommufd.simple_close ...',
      '#            OK  iommufd.simple_close',
      'ok 3 iommufd.simple_close',
      '#  RUN           iommufd_ioas.mock_domain.fork_gone ...',
      '# iommufd.c:229:fork_gone:Expected 0 (0) == _test_cmd_mock_domain_flags(...) (-1)',
      'not ok 4 iommufd_ioas.mock_domain.fork_gone',
      '#  RUN           iommufd_ioas.two_mock_domain.fork_gone ...',
      '# iommufd.c:1125:fork_gone:Expected 0 (0) == memcmp(...) (1)',
      'not ok 5 iommufd_ioas.two_mock_domain.fork_gone',
      '#  RUN           iommufd_ioas.mock_domain_limit.fork_gone ...',
      'ok 6 iommufd_ioas.mock_domain_limit.fork_gone',
      '#  RUN           iommufd_ioas.no_domain.access_rw ...',
      '# access_rw: Test terminated by timeout',
      '#          FAIL  iommufd_ioas.no_domain.access_rw',
      'not ok 7 iommufd_ioas.no_domain.access_rw',
      '# iommufd.c:1125:fork_gone:Expected 0 (0) == memcmp(...) (1)',
    ].join('\n');
    expect(
      failureReasons(output, [
        'iommufd.cmd_length',
        'iommufd.simple_close',
        'iommufd_ioas.mock_domain.fork_gone',
        'iommufd_ioas.two_mock_domain.fork_gone',
        'iommufd_ioas.mock_domain_limit.fork_gone',
        'iommufd_ioas.no_domain.access_rw',
      ]),
    ).toEqual({
      'iommufd.cmd_length': 'iommufd.c:118: Expected 22 (22) == errno (25)',
      'iommufd_ioas.mock_domain.fork_gone': 'iommufd.c:229: Expected 0 (0) == _test_cmd_mock_domain_flags(...) (-1)',
      'iommufd_ioas.two_mock_domain.fork_gone': 'iommufd.c:1125: Expected 0 (0) == memcmp(...) (1)',
      'iommufd_ioas.no_domain.access_rw': 'terminated by timeout',
    });
  });
});

describe('agreementOf', () => {
  const row = (test: string, kernel: SelftestRow['kernel'], model: SelftestRow['model']): SelftestRow => ({
    program: 'iommufd',
    test,
    fixture: test.split('.')[0] ?? test,
    kernel,
    model,
    reason: undefined,
    modelReason: undefined,
  });
  it('counts per fixture, with the variant where the fixture has one', () => {
    expect(
      agreementOf([
        row('iommufd.simple_close', 'pass', 'pass'),
        row('iommufd.cmd_length', 'pass', 'fail'),
        row('iommufd_ioas.no_domain.area', 'pass', 'pass'),
        row('iommufd_ioas.mock_domain.area', 'fail', 'fail'),
        row('iommufd_ioas.mock_domain.copy', 'fail', 'missing'),
      ]),
    ).toEqual([
      { fixture: 'iommufd', agree: 1, disagree: 1 },
      { fixture: 'iommufd_ioas.no_domain', agree: 1, disagree: 0 },
      { fixture: 'iommufd_ioas.mock_domain', agree: 1, disagree: 1 },
    ]);
  });
});

describe('oracleExitCode', () => {
  const row = (test: string, kernel: SelftestRow['kernel'], model: SelftestRow['model']): SelftestRow => ({
    program: test.startsWith('basic_fail_nth') ? 'iommufd_fail_nth' : 'iommufd',
    test,
    fixture: test.split('.')[0] ?? test,
    kernel,
    model,
    reason: undefined,
    modelReason: undefined,
  });
  const report = (rows: SelftestRow[]): Parameters<typeof oracleExitCode>[0] => ({
    vm: { completed: true } as Parameters<typeof oracleExitCode>[0]['vm'],
    programs: [
      { program: 'iommufd', exitStatus: 1, planned: rows.length } as Parameters<
        typeof oracleExitCode
      >[0]['programs'][0],
    ],
    rows,
  });
  const agreeing = [
    row('iommufd.simple_close', 'pass', 'pass'),
    row('iommufd_ioas.mock_domain.area', 'fail', 'fail'),
    // Outside the oracle's fixtures: may differ.
    row('iommufd_dirty_tracking.domain_dirty128k.set_dirty_tracking', 'pass', 'fail'),
  ];

  it('is 0 when every test of the oracle fixtures ends the same, whatever the others do', () => {
    expect(oracleDisagreements(agreeing)).toEqual([]);
    expect(oracleExitCode(report(agreeing))).toBe(0);
  });

  it('is 1 on one in-scope disagreement, a test the model never reported included', () => {
    const forkGone = row('iommufd_ioas.two_mock_domain.fork_gone', 'pass', 'fail');
    expect(oracleDisagreements([...agreeing, forkGone])).toEqual([forkGone]);
    expect(oracleExitCode(report([...agreeing, forkGone]))).toBe(1);
    expect(oracleExitCode(report([...agreeing, row('basic_fail_nth.basic', 'pass', 'missing')]))).toBe(1);
  });

  it('is 1 when the VM did not run to the end, even with every row agreeing', () => {
    expect(
      oracleExitCode({ ...report(agreeing), vm: { completed: false } as Parameters<typeof oracleExitCode>[0]['vm'] }),
    ).toBe(1);
  });
});
