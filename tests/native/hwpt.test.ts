// SPDX-License-Identifier: GPL-2.0-only
// `ioptrace run` of hardware page tables (IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, MOCK_DOMAIN on an IOAS and on
// a hwpt, MOCK_DOMAIN_REPLACE) and of fault injection (the task's fail-nth file, the debugfs knobs), as
// v6.12 answers them: ids, errnos, outputs, pins; the trace it wrote replays to the same digest and head.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, freshDir } from '../support/built-cli.js';
import { expectReplaysTheSame, haveCc, runClient } from '../support/run-client.js';

const dir = freshDir();

describe.skipIf(!haveCc)('ioptrace run: hwpts and fail-nth', () => {
  beforeAll(() => {
    execFileSync('sh', [join(ROOT, 'scripts/build-native.sh')]);
  });

  it('shares automatic domains, allocates and replaces hwpts, reports hw info, and counts fail-nth off', async () => {
    const r = await runClient(dir, 'hwpt', ['--variant', 'v6.12.y']);
    expect(r.status).toBe(0);
    expect(r.stdout).toEqual([
      'ioas_alloc ok id=1',
      'map ok',
      'mock_domain on 1 ok stdev=2 idev=3 hwpt=4',
      'mock_domain on 1 ok stdev=5 idev=6 hwpt=4',
      'refs 1 ok',
      'hw_info idev ok len=8 type=0xfeedbeef caps=0x1 pasid=0 data=00000000efbeadde0000000000000000',
      'hw_info size 32 ok len=8 type=0xfeedbeef caps=0x77 pasid=0 data=00000000efbeadde0000000000000000',
      'hw_info flags=1 EOPNOTSUPP len=16 type=0 caps=0x77 pasid=0 data=ffffffffffffffffffffffffffffffff',
      'hw_info on the ioas ENOENT len=16 type=0 caps=0x77 pasid=0 data=ffffffffffffffffffffffffffffffff',
      'hwpt_alloc paging ok id=7',
      'hwpt_alloc reserved=1 EOPNOTSUPP id=0',
      'hwpt_alloc pt 99 EINVAL id=0',
      'hwpt_alloc dev is the ioas ENOENT id=0',
      'hwpt_alloc FAULT_ID_VALID EOPNOTSUPP id=0',
      'hwpt_alloc data_len without type EINVAL id=0',
      'hwpt_alloc NEST_PARENT ok id=8',
      'destroy 4 EBUSY',
      'destroy 7 ok',
      'hwpt_alloc again ok id=7',
      'replace 2 to 7 ok pt=7',
      'destroy 7 EBUSY',
      'replace 5 to 7 ok pt=7',
      'destroy 4 ENOENT',
      'replace 2 to 1 ok pt=4',
      'replace 99 to 1 ENOENT pt=1',
      'replace 2 to 3 EINVAL pt=3',
      'replace 2 to 98 ENOENT pt=98',
      'mock_domain on 8 ok stdev=9 idev=10 hwpt=8',
      'check_map hwpt 8 ok',
      'destroy 9 ok',
      'destroy 8 ok',
      'refs 1 ok',
      'fail-nth open ok',
      'fail-nth read: 2 0',
      'fail-nth write 1: 1 ok',
      'ioas_alloc EFAULT id=0',
      'fail-nth read: 2 0',
      'fail-nth write 2: 1 ok',
      'ioas_alloc ENOMEM id=0',
      'fail-nth write 100: 3 ok',
      'ioas_alloc ok id=8',
      'fail-nth read: 3 97',
      'fail-nth write 0: 1 ok',
      'fail-nth write 1: 1 ok',
      'fail-nth read: -1 EFAULT',
      'fail-nth read: 2 0',
      'fail-nth write x: -1 EINVAL',
      'debugfs ok',
      'ignore-gfp-wait write 1',
      'ignore-gfp-wait read 2 N',
    ]);
    expect(r.report.unserved).toEqual({});
    expect(r.report.violations).toEqual([]);
    expect(r.report.warns).toEqual([]);
    expect(r.report.mismatches).toEqual([]);
    // The model saw the two armed ops as `fault` ops with the counter's value at that point: 2 minus the
    // struct's copy_from_user, and 100 minus it.
    const faults = readFileSync(r.trace, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"op":"fault"'));
    expect(faults).toEqual(['{"op":"fault","nth":1,"expect":"ok"}', '{"op":"fault","nth":99,"expect":"ok"}']);
    await expectReplaysTheSame(dir, r.trace, r.report, 'v6.12.y');
  });
});
