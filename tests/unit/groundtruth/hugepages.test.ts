// SPDX-License-Identifier: GPL-2.0-only
// The host's hugetlb pool for the model's column of the selftest table: raised to the VM's when lower and
// allowed, said otherwise; a stand-in file plays the sysctl.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { matchHostHugepages, usesHugetlb, vmHugepages } from '../../../src/groundtruth/hugepages.js';

const sysctl = (value: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'ioptrace-hugepages-')), 'nr_hugepages');
  writeFileSync(path, value);
  return path;
};

describe('the host hugetlb pool against the VM', () => {
  it('reads the VM pool from its /init script', () => {
    expect(vmHugepages()).toBe(128);
  });

  it('raises a smaller pool as root, and says so', () => {
    const path = sysctl('0\n');
    const said: string[] = [];
    const r = matchHostHugepages((m) => said.push(m), { path, vm: 128, root: true });
    expect(r).toEqual({ vm: 128, before: 0, after: 128, shortfall: null });
    expect(readFileSync(path, 'utf8')).toBe('128\n');
    expect(said).toEqual([
      "set vm.nr_hugepages from 0 to 128 (the VM's pool) so the huge-page variants can run under the model",
    ]);
  });

  it('leaves a pool at least as large alone, silently', () => {
    const path = sysctl('256\n');
    const said: string[] = [];
    expect(matchHostHugepages((m) => said.push(m), { path, vm: 128, root: true })).toEqual({
      vm: 128,
      before: 256,
      after: 256,
      shortfall: null,
    });
    expect(readFileSync(path, 'utf8')).toBe('256\n');
    expect(said).toEqual([]);
  });

  it('names the shortfall without root, and does not write', () => {
    const path = sysctl('4\n');
    const said: string[] = [];
    const r = matchHostHugepages((m) => said.push(m), { path, vm: 128, root: false });
    expect(r.after).toBe(4);
    expect(r.shortfall).toBe(
      "vm.nr_hugepages is 4, below the VM's 128, and only root can raise it: the huge-page variants cannot map their memory under the model",
    );
    expect(said).toEqual([r.shortfall]);
    expect(readFileSync(path, 'utf8')).toBe('4\n');
  });

  it('names the tests that map hugetlb memory', () => {
    expect(
      [
        'iommufd_mock_domain.one_domain_hugepage.basic',
        'iommufd_dirty_tracking.domain_dirty64M_huge.enforce_dirty',
        'vfio_compat_mock_domain.Ver1v0.huge_map',
        'iommufd_ioas.no_domain.access_domain_destory',
        'iommufd_mock_domain.one_domain.basic',
        'iommufd_ioas.no_domain.ioas_option_huge_pages',
      ].map(usesHugetlb),
    ).toEqual([true, true, true, true, false, false]);
  });
});
