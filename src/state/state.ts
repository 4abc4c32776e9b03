// SPDX-License-Identifier: GPL-2.0-only
/**
 * The State: everything the model knows at one point of a run, as plain data.
 *
 * Only reducers (reducers/*.ts) write it; the kernel model reads it and emits events. It is plain objects,
 * arrays and the tree structures of src/kernel (no Map, Set or class instances), so that the same reducers
 * run on a mutable state (bulk replay, rebuild) and on an immer draft (time travel, one produce per op),
 * and so that v8.serialize snapshots it. Large collections are trees of small nodes so that a produce copies
 * only the path it touched.
 *
 * Physical memory, page tables, the xarray and IO page tables are run-length: a 16 GiB guest of 2 MiB
 * pages is thousands of runs, not millions of pages.
 *
 * `digest` is the additive digest of every record (see digest.ts in this folder): two states are equal,
 * with overwhelming probability, iff their digests are.
 */
import type { Digest } from '../lib/digest.js';
import { zeroDigest } from '../lib/digest.js';
import type { AccountMode, FaultSite, HeapOwner, HugeSize } from '../events/events.js';
import type { IntervalTree } from '../structures/interval-tree.js';
import type { Xarray } from '../structures/xarray.js';
import type { RangeMap } from '../structures/range-map.js';
import type { MappingTable } from '../structures/mapping-table.js';
import { rangeMapCreate } from '../structures/range-map.js';
import type { HashPart } from '../lib/digest.js';
import { digestAdd } from '../lib/digest.js';
import { encodeJson } from '../lib/codec.js';
import { recordAdd } from './records.js';

export interface RunConfig {
  pageSize: number;
  testBuild: boolean;
  tempMemoryLimit: number;
  gupZeroOnOverflow: boolean;
  /**
   * Every read-only FOLL_PIN of a non-exclusive anonymous page unshares it (Linux 5.19+), not only long-term
   * ones. Absent (not false) unless the trace turns it on, so the digests of older runs are unchanged.
   */
  gupUnshareReadPins?: true;
}

/** Which kernel the run models. Not part of the digest: two variants in the same state are equal states. */
export interface RunVariant {
  variant: string;
  fixes: string[];
}

/** One physical page's life, shared by a run of identical neighbours. */
export interface Frame {
  pins: number;
  /** Page-table entries that map it (all processes). */
  maps: number;
  huge: HugeSize;
  dirty: boolean;
}

export interface Vma {
  writable: boolean;
  huge: HugeSize;
  /**
   * MAP_SHARED: the frames belong to the mapping, not to one mm. A write goes to the frame itself (no
   * copy-on-write) and fork maps the same frames into the child. Absent for a private mapping.
   */
  shared?: true;
}

export interface Process {
  pid: string;
  mm: number;
  uid: number;
  /** RLIMIT_MEMLOCK in bytes; null = unlimited. */
  memlock: bigint | null;
  capIpcLock: boolean;
  exited: boolean;
}

export interface Mm {
  id: number;
  pid: string;
  /** mm_users: address-space users (mmget / mmput). */
  users: number;
  /** mm_count: struct lifetime (mmgrab / mmdrop). */
  count: number;
  /** Page table: virtual page number -> PFN (run-length). */
  pt: Xarray;
  vmas: RangeMap<Vma>;
  lockedVm: number;
  pinnedVm: number;
}

/**
 * A memfd (shmem file): `npages` pages, each `folio`-sized block one folio; `pt` maps a page index of the
 * file to its PFN (run-length). `refs` counts struct file references (the fd, each iopt_pages).
 */
export interface MemFile {
  name: string;
  pid: string;
  npages: number;
  folio: HugeSize;
  pt: Xarray;
  refs: number;
}

/**
 * A struct file of iommufd (version 2 traces): the file of an opened context (/dev/iommu) or of a selftest
 * access (the anonymous file CREATE_ACCESS installs). `fCount` is f_count: one per descriptor that refers
 * to it, plus the context file's one per access still alive (iommufd_access_create takes iommufd_ctx_get).
 * Keyed `ctx:NAME` / `access:NAME`. The last fput releases it (iommufd_fops_release, or the selftest's
 * iommufd_test_staccess_release) and removes the record.
 */
export interface OpenFile {
  key: string;
  kind: 'ctx' | 'access';
  /** The context or access the file stands for. */
  object: string;
  fCount: number;
  /** The file this one holds a reference to while it lives (an access file: its context's file). */
  holds: string | null;
}

/** One entry of a process's file table: descriptor `fd` of `pid` refers to the open file `file`. */
export interface FdEntry {
  pid: string;
  fd: number;
  file: string;
}

export interface User {
  uid: number;
  lockedVm: number;
}

export interface Allocation {
  id: number;
  size: number;
  owner: HeapOwner;
  tag: string;
  fn: string;
}

export interface Ctx {
  name: string;
  pid: string;
  account: 'user' | 'mm';
  vfioType1: boolean;
}

export interface Ioas {
  name: string;
  ctx: string;
  areas: IntervalTree<bigint>;
  allowed: IntervalTree<bigint>;
  reserved: IntervalTree<bigint>;
  /** Reserved node id -> owner (a domain name, or 'resv'). */
  reservedOwners: Record<number, string>;
  /** The dense domains array: index = domain id inside this io_pagetable. */
  domains: string[];
  iovaAlignment: bigint;
  disableLargePages: boolean;
  accesses: string[];
}

export interface Pages {
  id: number;
  refs: number;
  npages: number;
  npinned: number;
  lastNpinned: number;
  uptr: bigint;
  writable: boolean;
  accountMode: AccountMode;
  sourcePid: string;
  sourceMm: number;
  sourceUid: number;
  xa: Xarray;
  accessTree: IntervalTree<number>;
  domainsTree: IntervalTree<number>;
  /** IOPT_ADDRESS_FILE pages only (absent for user-VA pages): the memfd and the page-aligned byte offset. */
  file?: string;
  fileStart?: bigint;
}

export interface Area {
  id: number;
  ioas: string;
  iova: bigint;
  lastIova: bigint;
  pageOffset: number;
  /** pages_node bounds: [firstIndex, lastIndex] in the pages. */
  firstIndex: number;
  lastIndex: number;
  read: boolean;
  write: boolean;
  pages: number | null;
  storageDomain: string | null;
  numAccesses: number;
  preventAccess: boolean;
  /**
   * area->num_locks ([up:area-num-locks]): pins of internal accesses through the area; while nonzero the area
   * cannot be unmapped. Absent while 0, so the records (and digests) of runs without such pins are unchanged.
   */
  numLocks?: number;
}

/** struct iopt_pages_access: one interval of access_itree with its user count. */
export interface PagesAccess {
  id: number;
  pages: number;
  index: number;
  last: number;
  users: number;
}

export interface AccessItem {
  id: number;
  iova: bigint;
  length: bigint;
}

export interface Access {
  name: string;
  ioas: string | null;
  needsPinPages: boolean;
  /** The selftest driver's list of pinned ranges, unpinned by its unmap callback. */
  items: Record<number, AccessItem>;
  /**
   * An internal access (iommufd_access_create_internal: no ops, no context reference, its pins lock the
   * areas), owned by the HW queue of the same name. Absent for the selftest driver's accesses.
   */
  internal?: true;
  /** The HW queue that owns the internal access, once allocated: its base IOVA and length as given. */
  hwQueue?: HwQueue;
}

/** struct iommufd_hw_queue, the part the model keeps: the guest queue's IOVA range in the nesting parent. */
export interface HwQueue {
  baseAddr: bigint;
  length: bigint;
}

// A domain's IO page table: its pieces are stored as progressions (structures/mapping-table.ts).
export type { Mapping, MappingAtom, MappingTable } from '../structures/mapping-table.js';

export interface Domain {
  name: string;
  kind: 'mock' | 'generic';
  pgsizes: bigint[];
  aperture: [bigint, bigint];
  mappings: MappingTable;
  mappedBytes: bigint;
  /**
   * An iommupt mock domain ([up:mock-iommupt]) only: its allocated interior table levels, keyed by
   * ioPageTableKey(level, iova of the table's span). The top level always exists and is not listed.
   */
  ioPageTables?: Record<string, true>;
  /**
   * The same tables in a version 5 trace, kept as a digested set: each change costs what it changes, where
   * the record above is hashed whole (a 16 GiB guest of 4 KiB pages has 16,384 level-0 tables, and each map
   * of a page that opens one would rehash them all). A domain has one of the two, never both.
   */
  ioPageTableSet?: IoPageTableSet;
}

/** Interior page tables of an iommupt mock domain (version 5): keys as in ioPageTables, digest the sum of their hashes. */
export interface IoPageTableSet {
  keys: Record<string, true>;
  count: number;
  digest: Digest;
}

/** The key of an interior page table in Domain.ioPageTables: its level and the IOVA its span starts at. */
export function ioPageTableKey(level: number, iova: bigint): string {
  return `${level}@0x${iova.toString(16)}`;
}

export interface State {
  config: RunConfig;
  run: RunVariant;
  nextId: number;
  opsDone: number;
  fault: { nth: number; site: FaultSite | null } | null;
  processes: Record<string, Process>;
  mms: Record<number, Mm>;
  users: Record<number, User>;
  frames: RangeMap<Frame>;
  /** Next free PFN of the default physical layout. */
  nextPfn: number;
  /** Contents of pages that were ever written, as hex, keyed by PFN; absent pages read as zeros. */
  pageData: Record<number, string>;
  heap: Record<number, Allocation>;
  ctxs: Record<string, Ctx>;
  ioases: Record<string, Ioas>;
  pages: Record<number, Pages>;
  areas: Record<number, Area>;
  pagesAccesses: Record<number, PagesAccess>;
  accesses: Record<string, Access>;
  domains: Record<string, Domain>;
  /** memfds (IOMMU_IOAS_MAP_FILE): empty in every trace that creates none, so older digests are unchanged. */
  files: Record<string, MemFile>;
  /** iommufd's struct files, by key (version 2 only: empty in version 1, so its digests are unchanged). */
  openFiles: Record<string, OpenFile>;
  /** Every process's file table entries of iommufd files, keyed `PID:FD` (version 2 only). */
  fds: Record<string, FdEntry>;
  counts: { warns: number; violations: number };
  digest: Digest;
}

/**
 * The tables of the State, in the order a diff lists their differences: one home for the list. `cursors`
 * stands for the State's next-free counters (next PFN, next heap address, ...), which have no table of their own.
 */
export const STATE_TABLES = [
  'config',
  'counts',
  'cursors',
  'fault',
  'processes',
  'mms',
  'users',
  'frames',
  'pageData',
  'heap',
  'ctxs',
  'ioases',
  'pages',
  'areas',
  'pagesAccesses',
  'accesses',
  'domains',
  'files',
  'openFiles',
  'fds',
] as const;

/** The tables that do not hold records keyed by id: settings, counters, the fault plan and the frames. */
const UNKEYED_TABLES = ['config', 'counts', 'cursors', 'fault', 'frames'] as const;
type RecordTable = Exclude<(typeof STATE_TABLES)[number], (typeof UNKEYED_TABLES)[number]> & keyof State;

/** The tables of the State whose records are keyed by id (`pages.2`, `accesses.mdev`), in STATE_TABLES order. */
export const RECORD_TABLES: readonly RecordTable[] = STATE_TABLES.filter(
  (table): table is RecordTable => !(UNKEYED_TABLES as readonly string[]).includes(table),
);

export const DEFAULT_CONFIG: RunConfig = {
  pageSize: 4096,
  testBuild: true,
  tempMemoryLimit: 65536,
  gupZeroOnOverflow: true,
};

/** PFNs of the default layout start high so that PFN 0 (what a failed iova_to_phys reads back) is never real. */
export const FIRST_PFN = 0x40000;

/**
 * An empty table keyed by numeric ids. V8 keeps an object whose integer keys lie within about a thousand of
 * each other as a holey array sized by the largest key, and enumerating it (Object.keys, for-in) walks every
 * hole: one user of uid 1000 cost the checker 10 us per op to list. A table that starts with dictionary
 * elements stays one and enumerates in the count of its entries. Keys, their order and values are the same
 * either way, so nothing else can tell.
 */
export function idTable<V>(): Record<number, V> {
  const table: Record<number, V | null> = {};
  // The largest array index is too far for V8 to keep the elements as an array.
  const far = 2 ** 32 - 2;
  table[far] = null;
  delete table[far];
  return table as Record<number, V>;
}

export function initialState(): State {
  const state: State = {
    config: { ...DEFAULT_CONFIG },
    run: { variant: 'upstream', fixes: [] },
    nextId: 1,
    opsDone: 0,
    fault: null,
    processes: {},
    mms: idTable(),
    users: idTable(),
    frames: rangeMapCreate<Frame>(),
    nextPfn: FIRST_PFN,
    pageData: idTable(),
    heap: idTable(),
    ctxs: {},
    ioases: {},
    pages: idTable(),
    areas: idTable(),
    pagesAccesses: idTable(),
    accesses: {},
    domains: {},
    files: {},
    openFiles: {},
    fds: {},
    counts: { warns: 0, violations: 0 },
    digest: zeroDigest(),
  };
  state.digest = recomputeDigest(state);
  return state;
}

/** The digested parts of a state, named as the reducers name them. */
export function digestedTables(s: State): {
  records: Record<string, Record<string | number, object>>;
  entries: Record<string, Record<string | number, HashPart>>;
} {
  return {
    records: {
      process: s.processes,
      mm: s.mms,
      user: s.users,
      heap: s.heap,
      ctx: s.ctxs,
      ioas: s.ioases,
      pages: s.pages,
      area: s.areas,
      pagesAccess: s.pagesAccesses,
      access: s.accesses,
      domain: s.domains,
      file: s.files,
      openFile: s.openFiles,
      fd: s.fds,
      state: { config: s.config, counts: s.counts, memory: { frames: s.frames } },
    },
    entries: { pageData: s.pageData, fault: s.fault ? { armed: encodeJson(s.fault) } : {} },
  };
}

/** Recompute a state's digest from scratch (tests and `verify`: it must equal the incremental one). */
export function recomputeDigest(s: State): Digest {
  const scratch = { digest: zeroDigest() };
  const { records, entries } = digestedTables(s);
  for (const [table, recs] of Object.entries(records)) {
    for (const [key, rec] of Object.entries(recs)) recordAdd(scratch, table, key, rec);
  }
  for (const [table, map] of Object.entries(entries)) {
    for (const [key, value] of Object.entries(map)) digestAdd(scratch.digest, [table, key, value]);
  }
  return scratch.digest;
}
