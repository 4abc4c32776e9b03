// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { parseVariantSpec, variantFromOptions, variantLabel } from '../../../src/kernel/variant-spec.js';
import {
  FIX_FLAGS,
  FLAG_NAMES,
  PRE_MERGE_FLAGS,
  RELEASES,
  STABLE_SERIES,
  VARIANTS,
  releaseFlags,
} from '../../../src/kernel/variants.js';
import { releaseTable } from '../../../src/cli/commands/variants.js';

const V62 = [...PRE_MERGE_FLAGS, 'gup-unshare-flags'];
const V63 = [...V62, 'uptr-overflow-check', 'unpin-domain-batch-last-index', 'carry-store-order'];
const V65 = [...V63, 'unmap-no-area-deref', 'carry-end-one'];
const V66 = [...V65, 'access-replace'];
const V612 = [
  ...V66,
  'split-updates-domains-itree',
  'mock-unmap-skips-holes',
  'access-list-id',
  'map-requires-prot',
  'iova-align-cap',
];
const V613 = [...V612, 'ioas-map-file', 'ioas-change-process'];
const V612Y = [
  ...V612,
  'unmap-reports-bytes-on-error',
  'alloc-iova-align-overflow',
  'vfio-unmap-empty-success',
  'unmap-advance-start',
];

describe('release variants: the flags whose fix commit a release contains', () => {
  it('v6.2 is the merged code plus the GUP change of the same merge window', () => {
    expect(VARIANTS['v6.2']).toEqual(V62);
    expect(V62).toHaveLength(13);
  });

  it('exact flag sets of several releases', () => {
    expect(VARIANTS['v6.3']).toEqual(V63);
    expect(VARIANTS['v6.4']).toEqual(V63);
    expect(VARIANTS['v6.5']).toEqual(V65);
    expect(VARIANTS['v6.6']).toEqual(V66);
    expect(VARIANTS['v6.12']).toEqual(V612);
    expect(VARIANTS['v6.13']).toEqual(V613);
    expect(VARIANTS['v6.16']).toEqual(V613);
    expect(VARIANTS['v6.17']).toEqual([
      ...V613,
      'unmap-reports-bytes-on-error',
      'alloc-iova-align-overflow',
      'area-num-locks',
    ]);
    expect(VARIANTS['v6.18']).toEqual([
      ...V613,
      'unmap-reports-bytes-on-error',
      'alloc-iova-align-overflow',
      'area-num-locks',
      'vfio-unmap-empty-success',
    ]);
    // v6.19 brings the iommupt mock domain (e93d5945ed5b), nothing else of the table.
    expect(VARIANTS['v6.19']).toEqual([...(VARIANTS['v6.18'] ?? []), 'mock-iommupt']);
    expect(VARIANTS['v7.0']).toEqual(VARIANTS['v6.19']);
    expect(VARIANTS['v7.1']).toEqual(FLAG_NAMES);
  });

  it('a release never loses a flag, and the newest has every flag of a tree (no proposed fix)', () => {
    for (let i = 1; i < RELEASES.length; i++) {
      const before = VARIANTS[RELEASES[i - 1] ?? ''] ?? [];
      expect(before.every((f) => (VARIANTS[RELEASES[i] ?? ''] ?? []).includes(f))).toBe(true);
    }
    expect(VARIANTS[RELEASES[RELEASES.length - 1] ?? '']).toEqual(FLAG_NAMES);
    expect(RELEASES[0]).toBe('v6.2');
    expect(RELEASES).toHaveLength(21);
    expect(VARIANTS['v6.1']).toBeUndefined();
  });

  it('every flag of a tree has a first release in the table, the proposed one has none', () => {
    for (const f of FIX_FLAGS) {
      if (f.proposed === true) expect(f.firstRelease).toBeNull();
      else expect(RELEASES).toContain(f.firstRelease);
    }
  });
});

describe('stable series: the release plus the fixes backported to it', () => {
  it('names the series that have backports', () => {
    expect(STABLE_SERIES).toEqual(['v6.4.y', 'v6.6.y', 'v6.7.y', 'v6.12.y', 'v7.0.y']);
  });

  it('v6.12.y (to 6.12.118) has the four later fixes the 6.12.118 source carries', () => {
    expect(VARIANTS['v6.12.y']).toEqual(V612Y);
    // Which is every flag of a tree but the v6.13 features IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS,
    // the v6.17 locked areas of the HW queue and the v6.19 iommupt mock (features are not backported).
    const features = ['ioas-map-file', 'ioas-change-process', 'area-num-locks', 'mock-iommupt'];
    expect(VARIANTS['v6.12.y']).toEqual(FLAG_NAMES.filter((f) => !features.includes(f)));
  });

  it('exact sets of the older series', () => {
    expect(VARIANTS['v6.4.y']).toEqual([...V63, 'carry-end-one']);
    expect(VARIANTS['v6.6.y']).toEqual([...V66, 'vfio-unmap-empty-success', 'unmap-advance-start']);
    expect(VARIANTS['v6.7.y']).toEqual([
      ...V66,
      'split-updates-domains-itree',
      'mock-unmap-skips-holes',
      'access-list-id',
    ]);
    expect(VARIANTS['v7.0.y']).toEqual([...(VARIANTS['v7.0'] ?? []), 'unmap-advance-start']);
  });

  it('keeps the evidence per backport: afb47765f923 went to 6.12.y', () => {
    const flag = FIX_FLAGS.find((f) => f.name === 'vfio-unmap-empty-success');
    expect(flag?.commit).toBe('afb47765f923');
    expect(flag?.firstRelease).toBe('v6.18');
    expect(flag?.backports.map((b) => b.series)).toEqual(['v6.12.y', 'v6.6.y']);
    const bytes = FIX_FLAGS.find((f) => f.name === 'unmap-reports-bytes-on-error');
    expect(bytes?.backports.map((b) => [b.series, b.version])).toEqual([['v6.12.y', '6.12.43']]);
    expect(bytes?.backports[0]?.evidence).toContain('Debian linux-6.12 changelog, 6.12.43');
  });
});

describe('release variants in the one variant syntax', () => {
  it('parses releases and series, with +FLAG and -FLAG', () => {
    expect(parseVariantSpec('v6.12.y').fixes).toEqual(V612Y);
    expect(parseVariantSpec('v6.12').fixes).toEqual(V612);
    expect(parseVariantSpec('v6.12+mm-mode-uncharge-dead-mm').fixes).toEqual([...V612, 'mm-mode-uncharge-dead-mm']);
    const without = parseVariantSpec('v6.12.y-unmap-advance-start');
    expect(without.variant).toBe('v6.12.y');
    expect(without.fixes).toEqual(V612Y.filter((f) => f !== 'unmap-advance-start'));
    expect(variantFromOptions('v6.5', ['access-replace']).label).toBe('v6.5+access-replace');
    expect(variantLabel('v6.12.y', V612Y)).toBe('v6.12.y');
    expect(variantLabel('v6.12.y', FLAG_NAMES)).toBe(
      'v6.12.y+ioas-map-file+ioas-change-process+area-num-locks+mock-iommupt',
    );
  });

  it('refuses a release outside the table, naming the range', () => {
    expect(() => parseVariantSpec('v6.1')).toThrow(
      'variant "v6.1" must start with one of v3, merged, upstream, a release v6.2 ... v7.2 or a stable series v6.4.y, v6.6.y, v6.7.y, v6.12.y, v7.0.y (then +FLAG or -FLAG to add or remove fixes)',
    );
    expect(releaseFlags('v6.2')).toEqual(V62);
  });
});

describe('ioptrace variants: the release table', () => {
  it('one row per release with the flags new in it, then one per stable series with its backports', () => {
    const rows = releaseTable();
    expect(rows[0]).toEqual(['v6.2', '13', `+ ${V62.join(', ')}`]);
    expect(rows.find((r) => r[0] === 'v6.4')).toEqual(['v6.4', '16', '(no flag fixed)']);
    expect(rows.find((r) => r[0] === 'v6.12.y')).toEqual([
      'v6.12.y',
      '28',
      'v6.12 + unmap-reports-bytes-on-error (b23e09f99977, 6.12.43), alloc-iova-align-overflow (b42497e3c0e7, 6.12.43), vfio-unmap-empty-success (afb47765f923), unmap-advance-start (8602018b1f17)',
    ]);
    expect(rows).toHaveLength(RELEASES.length + STABLE_SERIES.length);
  });
});
