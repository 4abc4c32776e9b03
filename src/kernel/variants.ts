// SPDX-License-Identifier: GPL-2.0-only
/**
 * Variants and fix flags (spec section 17). A variant is the v3 posting plus a set of named fixes; each
 * flag changes only the behaviour its spec section describes. `merged` = v3 + every pre-merge flag,
 * `upstream` = every flag of a kernel tree. Flags are listed in upstream order, which is the order fix bisect
 * walks; the proposed fixes (in no tree, from this model's findings) come last and only `--fix` turns them on.
 */

export interface FixFlag {
  name: string;
  /** Upstream commit, or the posting that carried it for pre-merge fixes. */
  commit: string;
  /** First release (or posting) with the fix, as the commit history names it. */
  release: string;
  /**
   * The first upstream release (a final tag, `vX.Y`) that contains the fix; null for a proposed fix in no
   * tree. Pre-merge fixes are in v6.2, the first release with iommufd. The release variants are built from this.
   */
  firstRelease: string | null;
  /** Stable series the fix was backported to, with the evidence for each (release variants `vX.Y.y`). */
  backports: readonly Backport[];
  /** Spec sections whose behaviour the flag changes. */
  sections: string;
  preMerge: boolean;
  summary: string;
  /** A fix proposed from a finding of this model, in no kernel tree: never part of a variant, only --fix. */
  proposed?: true;
}

export interface Backport {
  /** The stable series, as a variant name: `v6.12.y`. */
  series: string;
  /** The first stable release of the series with the fix, when the evidence names it. */
  version: string | null;
  /** Where this was seen (a changelog entry, a stable review mail, the package's source). */
  evidence: string;
}

export const FIX_FLAGS: readonly FixFlag[] = [
  {
    name: 'mmget-fail-no-kfree',
    commit: 'v4 posting (review of v3 07/15)',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '9a',
    preMerge: true,
    summary: 'pfn_reader_user_pin no longer kfrees upages (BAD_FREE) or leaves locked = 0 when mmget_not_zero fails',
  },
  {
    name: 'xarray-clear-after-add',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '5',
    preMerge: true,
    summary: 'batch_from_xarray_clear erases an entry only after it was added to the batch',
  },
  {
    name: 'unfill-xarray-loop',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '13b',
    preMerge: true,
    summary: 'iopt_pages_unfill_xarray loops clear+unpin until the hole is done',
  },
  {
    name: 'fill-xarray-upages-bytes',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '13a',
    preMerge: true,
    summary: 'iopt_pages_fill_xarray sets upages_len in bytes, not entries',
  },
  {
    name: 'reader-release-pins',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '10, 12a, 12b',
    preMerge: true,
    summary:
      'pfn_reader_release_pins: guarded tail unpin with npinned decrement, release before unwind, done_end tracking',
  },
  {
    name: 'fill-domains-unwind-extents',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '12b',
    preMerge: true,
    summary: 'iopt_area_fill_domains unwinds each domain over exactly what it mapped',
  },
  {
    name: 'area-add-access-locking',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '13d',
    preMerge: true,
    summary: 'iopt_area_add_access/remove_access take the pages mutex and count num_accesses themselves',
  },
  {
    name: 'split-blocks-accesses',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '14',
    preMerge: true,
    summary: 'iopt_area_split refuses an area with accesses instead of copying num_accesses into both halves',
  },
  {
    name: 'unfill-domain-per-area',
    commit: 'v4..v6 posting',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '14',
    preMerge: true,
    summary: 'detach unmaps each area from the removed domain instead of each contiguous span of the area tree',
  },
  {
    name: 'npfns-u32',
    commit: 'v3 08/15',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '5',
    preMerge: true,
    summary: 'pfn_batch run lengths are u32 instead of u16',
  },
  {
    name: 'incr-locked-vm-uses-arg',
    commit: 'a26fa392068d',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '8',
    preMerge: true,
    summary: 'incr_user_locked_vm charges its argument instead of npinned - last_npinned',
  },
  {
    name: 'reader-destroy-locked-reset',
    commit: 'a26fa392068d',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '9',
    preMerge: true,
    summary: 'pfn_reader_user_destroy sets locked = -1, not 0',
  },
  {
    name: 'gup-unshare-flags',
    commit: 'v6.2-rc1 (GUP FOLL_UNSHARE)',
    release: 'v6.2-rc1',
    firstRelease: 'v6.2',
    backports: [],
    sections: '6, 9',
    preMerge: false,
    summary: 'read-only pins use FOLL_LONGTERM only (GUP unshares) and remote GUP reports a dropped mmap lock',
  },
  {
    name: 'uptr-overflow-check',
    commit: 'e4395701330f',
    release: 'v6.3-rc6',
    firstRelease: 'v6.3',
    backports: [],
    sections: '11',
    preMerge: false,
    summary: 'iopt_alloc_pages returns -EOVERFLOW when uptr + length wraps',
  },
  {
    name: 'unpin-domain-batch-last-index',
    commit: '727c28c1cef2',
    release: 'v6.3-rc6',
    firstRelease: 'v6.3',
    backports: [],
    sections: '12c',
    preMerge: false,
    summary: 'iopt_area_unpin_domain computes batch_last from the hole start, not past the carry',
  },
  {
    name: 'carry-store-order',
    commit: '13a0d1ae7ee6',
    release: 'v6.3-rc6',
    firstRelease: 'v6.3',
    backports: [],
    sections: '5',
    preMerge: false,
    summary: 'batch_clear_carry reads the last run before overwriting entry 0',
  },
  {
    name: 'unmap-no-area-deref',
    commit: '804ca14d04df',
    release: 'v6.5-rc1',
    firstRelease: 'v6.5',
    backports: [],
    sections: '14',
    preMerge: false,
    summary: 'iopt_unmap_iova no longer dereferences the area after dropping the locks; retries are counted',
  },
  {
    name: 'carry-end-one',
    commit: 'b7c822fa6b77',
    release: 'v6.5-rc4',
    firstRelease: 'v6.5',
    backports: [
      {
        series: 'v6.4.y',
        version: '6.4.8',
        evidence: 'Debian linux-6.12 changelog, ChangeLog-6.4.8: iommufd: Set end correctly when doing batch carry',
      },
    ],
    sections: '5',
    preMerge: false,
    summary: 'batch_clear_carry leaves end = 1 so the carried entry stays visible',
  },
  {
    name: 'access-replace',
    commit: '70c16123d865',
    release: 'v6.6-rc1',
    firstRelease: 'v6.6',
    backports: [],
    sections: '14',
    preMerge: false,
    summary:
      'iommufd_access_replace moves an access to another IOAS (IOMMU_TEST_OP_ACCESS_REPLACE_IOAS); before it the mock refuses the command with -EOPNOTSUPP',
  },
  {
    name: 'split-updates-domains-itree',
    commit: 'e7250ab7ca49',
    release: 'v6.7-rc',
    firstRelease: 'v6.7',
    backports: [],
    sections: '14, 12d',
    preMerge: false,
    summary: 'iopt_area_split moves the domains_itree node to the two halves',
  },
  {
    name: 'mock-unmap-skips-holes',
    commit: 'v6.7 dirty-tracking selftest rework of the mock domain',
    release: 'v6.7-rc1',
    firstRelease: 'v6.7',
    backports: [],
    sections: '15',
    preMerge: false,
    summary:
      'the selftest mock domain skips unmapped pages silently instead of WARNing per missing page (not a section 17 flag: added so the mock of each era can be chosen)',
  },
  {
    name: 'access-list-id',
    commit: 'aeb004c0cd69',
    release: 'v6.8-rc7',
    firstRelease: 'v6.8',
    backports: [
      {
        series: 'v6.7.y',
        version: null,
        evidence: '6.7-stable review patch, commit aeb004c0cd69 upstream (2024-03-04)',
      },
    ],
    sections: '14',
    preMerge: false,
    summary: 'iopt_add_access does not overwrite the access list id on failure',
  },
  {
    name: 'map-requires-prot',
    commit: '996dc53ac289',
    release: 'v6.11-rc',
    firstRelease: 'v6.11',
    backports: [],
    sections: '14',
    preMerge: false,
    summary: 'IOAS_MAP and IOAS_COPY refuse a mapping with neither READ nor WRITE',
  },
  {
    name: 'iova-align-cap',
    commit: '8f6887349b2f',
    release: 'v6.12-rc1',
    firstRelease: 'v6.12',
    backports: [],
    sections: '14a',
    preMerge: false,
    summary: 'IOVA allocation alignment is capped at the huge page size',
  },
  {
    name: 'ioas-map-file',
    commit: 'f4986a72d6e4',
    release: 'v6.13-rc1',
    firstRelease: 'v6.13',
    backports: [],
    sections: '9, 10, 11, 14',
    preMerge: false,
    summary:
      'IOMMU_IOAS_MAP_FILE maps a memfd: iopt_alloc_file_pages holds the file, pfn_reader_user_pin pins by folio (memfd_pin_folios, folio_add_pins), batch_from_folios with its rollback, unpin_folios in pfn_reader_release_pins (pfn_reader for file mappings: 92687c793644); -ENOTTY before',
  },
  {
    name: 'ioas-change-process',
    commit: '829ed626499c',
    release: 'v6.13-rc1',
    firstRelease: 'v6.13',
    backports: [],
    sections: '8, 14',
    preMerge: false,
    summary:
      'IOMMU_IOAS_CHANGE_PROCESS (iommufd_ioas_change_process, need_charge_update, charge_current, change_mm; do_update_pinned exported as iopt_pages_update_pinned by 10caa8b45119) moves the source task, mm and user of file-backed pages to the caller and moves their charges; -ENOTTY before',
  },
  {
    name: 'unmap-reports-bytes-on-error',
    commit: 'b23e09f99977',
    release: 'v6.17-rc1',
    firstRelease: 'v6.17',
    backports: [
      {
        series: 'v6.12.y',
        version: '6.12.43',
        evidence:
          'Debian linux-6.12 changelog, 6.12.43: Report unmapped bytes in the error path of iopt_unmap_iova_range; present in the 6.12.118 source of Debian linux-source-6.12',
      },
    ],
    sections: '14',
    preMerge: false,
    summary: 'IOAS_UNMAP writes the unmapped length on the -EDEADLOCK bail-out too',
  },
  {
    name: 'alloc-iova-align-overflow',
    commit: 'b42497e3c0e7',
    release: 'v6.17-rc1',
    firstRelease: 'v6.17',
    backports: [
      {
        series: 'v6.12.y',
        version: '6.12.43',
        evidence:
          'Debian linux-6.12 changelog, 6.12.43: Prevent ALIGN() overflow; present in the 6.12.118 source of Debian linux-source-6.12',
      },
    ],
    sections: '14a',
    preMerge: false,
    summary: 'the IOVA allocation alignment step is overflow-checked',
  },
  {
    name: 'area-num-locks',
    commit: '27b77ea5feaa',
    release: 'v6.17-rc1',
    firstRelease: 'v6.17',
    backports: [],
    sections: '13d, 14',
    preMerge: false,
    summary:
      'internal accesses lock the areas they pin: iopt_area_add_access(..., lock_area) counts area->num_locks for an internal access (the vIOMMU HW queue of IOMMUFD_CMD_HW_QUEUE_ALLOC, 2238ddc2b056: iommufd_hw_queue_alloc_phys), iopt_area_remove_access(..., unlock_area) drops it, iopt_unmap_iova_range refuses a locked area with -EBUSY and iommufd_access_notify_unmap skips internal accesses; -ENOTTY for HW_QUEUE_ALLOC before',
  },
  {
    name: 'vfio-unmap-empty-success',
    commit: 'afb47765f923',
    release: 'v6.18 (6.12.y, 6.6.y)',
    firstRelease: 'v6.18',
    backports: [
      {
        series: 'v6.12.y',
        version: null,
        evidence:
          '6.12-stable review patch [ Upstream commit afb47765f923 ]; present in the 6.12.118 source of Debian linux-source-6.12',
      },
      {
        series: 'v6.6.y',
        version: null,
        evidence: 'earlier entry of this table (release v6.18 (6.12.y, 6.6.y)); not re-checked',
      },
    ],
    sections: '14',
    preMerge: false,
    summary:
      'iopt_unmap_iova_range succeeds when nothing is mapped: VFIO_IOMMU_UNMAP_DMA of an empty range returns 0 with size 0, IOAS_UNMAP checks for 0 bytes itself (-ENOENT)',
  },
  {
    name: 'mock-iommupt',
    commit: 'e93d5945ed5b',
    release: 'v6.19-rc1',
    firstRelease: 'v6.19',
    backports: [],
    sections: '15',
    preMerge: false,
    summary:
      'the selftest mock domain is an iommupt page table (the amdv1 format\'s "mock" variant, e5359dcc617a) instead of an xarray: IO pages of 2 KiB to 128 GiB, map_pages fails with -EADDRINUSE over a present entry instead of WARNing and overwriting, page-table levels are allocated on map (each a fail-nth point, -ENOMEM) instead of iommufd_should_fail\'s -ENOENT, unmap_pages stops at a hole and refuses to start inside a large entry, and iova_to_phys and mock_domain_free no longer WARN (not a section 17 flag: added so the mock of each era can be chosen)',
  },
  {
    name: 'unmap-advance-start',
    commit: '8602018b1f17',
    release: '2026',
    firstRelease: 'v7.1',
    backports: [
      { series: 'v7.0.y', version: null, evidence: 'stable review [PATCH 7.0 012/307], 2026-05-12' },
      {
        series: 'v6.12.y',
        version: null,
        evidence:
          'stable review [PATCH 6.12 010/206], 2026-05-12; present in the 6.12.118 source of Debian linux-source-6.12',
      },
      { series: 'v6.6.y', version: null, evidence: 'stable review [PATCH 6.6 152/474], 2026-05-15' },
    ],
    sections: '14',
    preMerge: false,
    summary: 'iopt_unmap_iova continues after the unmapped area instead of restarting at the range start',
  },
  {
    name: 'mm-mode-uncharge-dead-mm',
    commit: 'none: proposed in docs/findings/mm-mode-stale-last-npinned.md',
    release: 'proposed',
    firstRelease: null,
    backports: [],
    sections: '8',
    preMerge: false,
    summary:
      'update_mm_locked_vm uncharges through the mmgrab()ed source_mm without mmget_not_zero, so an uncharge cannot fail and last_npinned always follows npinned; it drops the mmap read lock only when the reader holds it (locked == 1)',
    proposed: true,
  },
];

/** Every flag the model knows, proposed ones included (what --fix accepts). */
export const ALL_FLAG_NAMES: readonly string[] = FIX_FLAGS.map((f) => f.name);
/** The flags of kernel trees: `upstream` has all of them. */
export const FLAG_NAMES: readonly string[] = FIX_FLAGS.filter((f) => f.proposed !== true).map((f) => f.name);
/** Fixes proposed from this model's findings, in no tree. */
export const PROPOSED_FLAGS: readonly string[] = FIX_FLAGS.filter((f) => f.proposed === true).map((f) => f.name);
export const PRE_MERGE_FLAGS: readonly string[] = FIX_FLAGS.filter((f) => f.preMerge).map((f) => f.name);

/**
 * The upstream releases a release variant can name, oldest first: v6.2 (the first with iommufd) up to the
 * newest final tag confirmed when the table was last updated (v7.3-rc1 exists, so v7.2 is out).
 */
export const RELEASES: readonly string[] = [
  ...Array.from({ length: 18 }, (_, i) => `v6.${i + 2}`),
  'v7.0',
  'v7.1',
  'v7.2',
];

/** `v6.12` -> [6, 12]; undefined for anything else. */
function releaseNumber(release: string): [number, number] | undefined {
  const m = /^v(\d+)\.(\d+)$/.exec(release);
  return m?.[1] === undefined || m[2] === undefined ? undefined : [Number(m[1]), Number(m[2])];
}

function releaseAtOrBefore(a: string, b: string): boolean {
  const x = releaseNumber(a);
  const y = releaseNumber(b);
  if (x === undefined || y === undefined) throw new RangeError(`not a release: ${x === undefined ? a : b}`);
  return x[0] < y[0] || (x[0] === y[0] && x[1] <= y[1]);
}

/** The flags whose fix release `release` (`v6.12`) contains, in upstream order. */
export function releaseFlags(release: string): string[] {
  return FIX_FLAGS.filter((f) => f.firstRelease !== null && releaseAtOrBefore(f.firstRelease, release)).map(
    (f) => f.name,
  );
}

/** The stable series some flag was backported to (`v6.12.y`), oldest first. */
export const STABLE_SERIES: readonly string[] = RELEASES.map((r) => `${r}.y`).filter((series) =>
  FIX_FLAGS.some((f) => f.backports.some((b) => b.series === series)),
);

/** A stable series `vX.Y.y`: the release's flags plus the fixes backported to that series, in upstream order. */
export function stableSeriesFlags(series: string): string[] {
  const release = series.replace(/\.y$/, '');
  const own = new Set(releaseFlags(release));
  for (const f of FIX_FLAGS) if (f.backports.some((b) => b.series === series)) own.add(f.name);
  return FLAG_NAMES.filter((f) => own.has(f));
}

/** Every release and stable-series variant: `v6.2` ... `v7.2`, then the `.y` series with backports. */
export const RELEASE_VARIANTS: Readonly<Record<string, readonly string[]>> = Object.fromEntries([
  ...RELEASES.map((r): [string, string[]] => [r, releaseFlags(r)]),
  ...STABLE_SERIES.map((s): [string, string[]] => [s, stableSeriesFlags(s)]),
]);

export const VARIANTS: Record<string, readonly string[]> = {
  v3: [],
  merged: PRE_MERGE_FLAGS,
  upstream: FLAG_NAMES,
  ...RELEASE_VARIANTS,
};

export interface VariantSpec {
  variant: string;
  fixes: string[];
}

/** Resolve `--variant V --fix F... --without F...` into the set of flags, in upstream order. */
export function resolveVariant(
  variant: string,
  add: readonly string[] = [],
  remove: readonly string[] = [],
): VariantSpec {
  const base = VARIANTS[variant];
  if (base === undefined)
    throw new RangeError(`unknown variant "${variant}" (known: ${Object.keys(VARIANTS).join(', ')})`);
  for (const f of [...add, ...remove]) {
    if (!ALL_FLAG_NAMES.includes(f))
      throw new RangeError(`unknown fix flag "${f}" (known: ${ALL_FLAG_NAMES.join(', ')})`);
  }
  const set = new Set([...base, ...add].filter((f) => !remove.includes(f)));
  return { variant, fixes: ALL_FLAG_NAMES.filter((f) => set.has(f)) };
}

/** True when every pre-merge flag is on: then the spec's unflagged [merged] text applies. */
export function isMerged(fixes: ReadonlySet<string>): boolean {
  return PRE_MERGE_FLAGS.every((f) => fixes.has(f));
}
