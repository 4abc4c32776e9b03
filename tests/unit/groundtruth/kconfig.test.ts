import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildKey, kconfigMismatches, parseKconfig } from '../../../src/groundtruth/kconfig.js';

describe('kernel config fragment', () => {
  it('parses set and unset options, ignoring comments', () => {
    const v = parseKconfig('# a comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="text"\nCONFIG_D=17\n');
    expect([...v]).toEqual([
      ['A', 'y'],
      ['B', 'n'],
      ['C', '"text"'],
      ['D', '17'],
    ]);
  });

  it('names every option the final config does not hold, an absent one counting as n', () => {
    const fragment = parseKconfig('CONFIG_IOMMUFD_TEST=y\n# CONFIG_VFIO_CONTAINER is not set\nCONFIG_KALLSYMS=y\n');
    const final = parseKconfig('CONFIG_KALLSYMS=y\nCONFIG_VFIO_CONTAINER=y\n');
    expect(kconfigMismatches(fragment, final)).toEqual([
      { option: 'CONFIG_IOMMUFD_TEST', wanted: 'y', got: 'n' },
      { option: 'CONFIG_VFIO_CONTAINER', wanted: 'n', got: 'y' },
    ]);
  });

  it('keys a build by the package version and the fragment bytes', () => {
    const a = buildKey('6.12.118-1~deb12u1', 'CONFIG_A=y\n');
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(buildKey('6.12.118-1~deb12u1', 'CONFIG_A=y\n')).toBe(a);
    expect(buildKey('6.12.118-2~deb12u1', 'CONFIG_A=y\n')).not.toBe(a);
    expect(buildKey('6.12.118-1~deb12u1', 'CONFIG_A=y\nCONFIG_B=y\n')).not.toBe(a);
  });

  it('the shipped fragment asks for the mock iommu driver and the VFIO container emulation, classic container off', () => {
    const v = parseKconfig(readFileSync('native/kernel/iommufd-test.config', 'utf8'));
    expect(v.get('IOMMUFD_TEST')).toBe('y');
    expect(v.get('IOMMUFD_VFIO_CONTAINER')).toBe('y');
    expect(v.get('VFIO_CONTAINER')).toBe('n');
    expect(v.get('FAULT_INJECTION_USERCOPY')).toBe('y');
    expect(v.get('HUGETLBFS')).toBe('y');
  });
});
