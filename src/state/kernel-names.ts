// SPDX-License-Identifier: GPL-2.0-only
/**
 * What user output calls the state's tables and fields: the kernel's spelling where the field is a kernel
 * one (struct iopt_pages: npinned, last_npinned, pinned_pfns, access_itree, domains_itree; struct
 * iopt_area: page_offset, num_accesses, ...; mm_struct: mm_users, mm_count, locked_vm, pinned_vm), and a
 * plain phrase for the model's own bookkeeping (ops done, next object id, violations (count)).
 *
 * The state's own names are camelCase identifiers for code; a person debugging the kernel reads the kernel's.
 * This is the one home of that mapping: `diff`, `bisect`, `step` and `at` name places with it, and `watch`
 * accepts the same spelling in expressions (WATCH_PAGES_FIELDS, WATCH_MM_FIELDS).
 */
import { RECORD_TABLES } from './state.js';

/** Tables whose state name is not what the kernel calls the object. */
const TABLE_NAMES: Readonly<Record<string, string>> = {
  pagesAccesses: 'iopt_pages_access',
  pageData: 'page data',
  openFiles: 'file',
  fds: 'fdtable',
};

/** Fields named the same in every table they appear in. */
const FIELD_NAMES: Readonly<Record<string, string>> = {
  // struct iopt_pages
  lastNpinned: 'last_npinned',
  xa: 'pinned_pfns',
  accessTree: 'access_itree',
  domainsTree: 'domains_itree',
  accountMode: 'account_mode',
  sourcePid: 'source_task',
  sourceMm: 'source_mm',
  sourceUid: 'source_user',
  // struct iopt_area
  lastIova: 'last_iova',
  pageOffset: 'page_offset',
  firstIndex: 'pages_node.start',
  lastIndex: 'pages_node.last',
  numAccesses: 'num_accesses',
  preventAccess: 'prevent_access',
  numLocks: 'num_locks',
  storageDomain: 'storage_domain',
  // struct io_pagetable
  allowed: 'allowed_itree',
  reserved: 'reserved_itree',
  reservedOwners: 'reserved owners',
  iovaAlignment: 'iova_alignment',
  disableLargePages: 'disable_large_pages',
  // struct iommufd_access
  needsPinPages: 'needs_pin_pages',
  // mm_struct, user_struct
  lockedVm: 'locked_vm',
  pinnedVm: 'pinned_vm',
  // the task
  capIpcLock: 'cap_ipc_lock',
  // iommu domains
  pgsizes: 'pgsize_bitmap',
  mappedBytes: 'mapped bytes',
  // the iommupt mock's interior table levels (level@iova of each table's span)
  ioPageTables: 'table levels',
  // the mock domain's MOCK_PFN_START_IOVA / MOCK_PFN_LAST_IOVA bits on the first / last page of a map
  headFlag: 'start flag',
  tailFlag: 'last flag',
  // struct file
  fCount: 'f_count',
  // the run's configuration
  pageSize: 'page size',
  testBuild: 'test build',
  tempMemoryLimit: 'temp memory limit',
  gupZeroOnOverflow: 'gup zero on overflow',
  gupUnshareReadPins: 'gup unshare read pins',
  vfioType1: 'vfio type1',
};

/** Fields whose kernel name depends on the table. */
const TABLE_FIELD_NAMES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  mms: { users: 'mm_users', count: 'mm_count' },
  ioases: { areas: 'area_itree', accesses: 'access_list' },
};

/** The model's bookkeeping, outside any kernel object: a phrase for the whole place. */
const BOOKKEEPING: Readonly<Record<string, string>> = {
  'counts violations': 'violations (count)',
  'counts warns': 'WARNs (count)',
  'cursors nextId': 'next object id',
  'cursors nextPfn': 'next free pfn',
  'cursors opsDone': 'ops done',
};

/** The top-level state fields that diff files under the table 'cursors'. */
const CURSORS = new Set(['nextId', 'nextPfn', 'opsDone']);

/** A table as user output names it: `iopt_pages_access` for the state's pagesAccesses. */
export function kernelTable(table: string): string {
  return TABLE_NAMES[table] ?? table;
}

/** A field of a record of `table` as user output names it: `last_npinned`, `mm_users`, `pinned_pfns`. */
export function kernelField(table: string, field: string): string {
  return TABLE_FIELD_NAMES[table]?.[field] ?? FIELD_NAMES[field] ?? field;
}

/**
 * A place in the state, named for a person. `table` and `key` locate the record; `path` goes inside it:
 * its first element is the record's field (renamed), the rest are positions inside the field's structure
 * (`node 12`, `pfn 0x40000`, a tree's `root.keys.0`), which pass through unchanged.
 * Joined with `sep`: ' ' for diff (`pages 2 last_npinned`), '.' for step (`pages.2.last_npinned`, which
 * is also how watch spells it).
 */
export function kernelPlace(table: string, key: string | null, path: readonly string[], sep = ' '): string {
  const whole = [table, ...(key === null ? [] : [key]), ...path].join(' ');
  const bookkeeping = BOOKKEEPING[whole];
  if (bookkeeping !== undefined) return bookkeeping;
  const [field, ...inside] = path;
  const parts = [
    kernelTable(table),
    ...(key === null ? [] : [key]),
    ...(field === undefined ? [] : [kernelField(table, field)]),
    ...inside,
  ];
  return parts.join(sep);
}

/**
 * A path of the State object itself (an immer patch path: `['pages', 2, 'lastNpinned']`, `['nextId']`,
 * `['counts', 'violations']`) named for a person, joined with '.'.
 */
export function kernelStatePath(path: readonly (string | number)[]): string {
  const [head, ...rest] = path.map(String);
  if (head === undefined) return '';
  if (rest.length === 0 && CURSORS.has(head)) return kernelPlace('cursors', null, [head]);
  if (head === 'counts' && rest.length === 1) return kernelPlace('counts', null, rest);
  // Tables keyed by record (pages.2...), and state-wide structures (frames, config, digest) without a key.
  const keyed = rest.length > 0 && KEYED_TABLES.has(head);
  return keyed ? kernelPlace(head, rest[0] as string, rest.slice(1), '.') : kernelPlace(head, null, rest, '.');
}

const KEYED_TABLES: ReadonlySet<string> = new Set(RECORD_TABLES);

/** The iopt_pages fields a watch expression reads, by their kernel names. */
export const WATCH_PAGES_FIELDS = { npinned: 'npinned', last_npinned: 'lastNpinned', refs: 'refs' } as const;

/** The mm fields a watch expression reads: the kernel's names, and the short ones watch first accepted. */
export const WATCH_MM_FIELDS = {
  locked_vm: 'lockedVm',
  pinned_vm: 'pinnedVm',
  mm_users: 'users',
  mm_count: 'count',
  users: 'users',
  count: 'count',
} as const;
