// SPDX-License-Identifier: GPL-2.0-only
/**
 * The event vocabulary: everything the model can do to the state, as a zod discriminated union on `type`.
 *
 * Three levels (architecture decision 2): operation events (OpStarted / OpFinished, one pair per trace op),
 * effect events (pins, xarray stores, tree inserts, IOMMU maps, heap, accounting, ...), and findings
 * (Warned, ViolationDetected). Effects carry ranges and PFN runs, never one event per page.
 *
 * Vocabulary: `index` counts pages inside one iopt_pages, `last` is inclusive, `pfn`/`count` is a run of
 * physical pages, `vpn` is a user virtual page number (address / PAGE_SIZE), `iova`/`size` are bytes.
 * Object ids: trace-visible objects (process, ctx, ioas, domain, access) use the trace's names; kernel
 * internal objects (mm, pages, area, access node, heap allocation) use numeric ids from State.nextId.
 *
 * Every event has `v`, its schema version. A change to an event's meaning bumps its version and adds an
 * upcaster in upcast.ts; stored logs are never rewritten.
 */
import { z } from 'zod';
import { FAULT_SITES } from './trace.js';
import type { FaultSite } from './trace.js';

export { FAULT_SITES };
export type { FaultSite };

const id = z.number().int().nonnegative();
const count = z.number().int().nonnegative();
const name = z.string();
const u64 = z.bigint().nonnegative();
const fn = z.string();
const treeKey = z.union([z.number(), z.bigint()]);

export const TREE_KINDS = ['area', 'allowed', 'reserved', 'access', 'domains'] as const;
export const COUNTERS = ['user.locked_vm', 'mm.locked_vm', 'mm.pinned_vm'] as const;
export const HEAP_OWNERS = ['iommufd', 'caller', 'stack'] as const;
export const HUGE_SIZES = ['4K', '2M', '1G'] as const;
export const ACCOUNT_MODES = ['none', 'user', 'mm'] as const;

export type TreeKind = (typeof TREE_KINDS)[number];
export type Counter = (typeof COUNTERS)[number];
export type HeapOwner = (typeof HEAP_OWNERS)[number];
export type HugeSize = (typeof HUGE_SIZES)[number];
export type AccountMode = (typeof ACCOUNT_MODES)[number];

/** Which interval tree: the IOVA trees belong to an IOAS, the index trees to an iopt_pages. */
export const TreeRef = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.enum(['area', 'allowed', 'reserved']), ioas: name }),
  z.strictObject({ kind: z.enum(['access', 'domains']), pages: id }),
]);
export type TreeRef = z.infer<typeof TreeRef>;

/**
 * The most PFN runs one event carries in version 4 traces (FrameRunsAllocated, VmaMapped): a guest whose
 * frames are all apart costs events in proportion to its runs, and no single event grows with the guest.
 */
export const MAX_EVENT_RUNS = 1024;

const ev = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.strictObject({ type: z.literal(type), v: z.literal(1), ...shape });

export const EVENT_SCHEMAS = [
  // ---- operations and the run ----
  ev('RunConfigured', {
    pageSize: count,
    testBuild: z.boolean(),
    tempMemoryLimit: count,
    gupZeroOnOverflow: z.boolean(),
    /** Present (true) only when the trace turns it on: runs recorded before it keep their events and heads. */
    gupUnshareReadPins: z.literal(true).optional(),
    variant: z.string(),
    fixes: z.array(z.string()),
  }),
  ev('OpStarted', { op: count, line: count, name: z.string(), caller: z.string().nullable() }),
  ev('OpFinished', {
    op: count,
    errno: z.string().nullable(),
    result: z.record(z.string(), z.unknown()),
  }),
  ev('FaultArmed', { nth: count, site: z.enum(FAULT_SITES).nullable() }),
  ev('FaultInjected', { site: z.enum(FAULT_SITES), fn, nth: count }),
  ev('FaultDisarmed', { fired: z.boolean() }),
  ev('TempMemoryLimitSet', { bytes: count }),

  // ---- machine: processes, memory, pins ----
  ev('ProcessCreated', {
    pid: name,
    mm: id,
    uid: count,
    memlock: u64.nullable(),
    capIpcLock: z.boolean(),
  }),
  ev('RlimitSet', { pid: name, memlock: u64.nullable() }),
  ev('ProcessExited', { pid: name }),
  ev('MmGot', { mm: id, fn }),
  ev('MmPut', { mm: id, fn }),
  ev('MmGrabbed', { mm: id, fn }),
  ev('MmDropped', { mm: id, fn }),
  ev('FramesAllocated', { pfn: count, count, huge: z.enum(HUGE_SIZES) }),
  ev('VmaMapped', {
    mm: id,
    vpn: count,
    npages: count,
    writable: z.boolean(),
    huge: z.enum(HUGE_SIZES),
    runs: z.array(z.tuple([count, count])),
    // Present only on a MAP_SHARED mapping: the events of private mappings are what they always were.
    shared: z.literal(true).optional(),
  }),
  ev('VmaUnmapped', { mm: id, vpn: count, npages: count }),
  /**
   * `npages` (present only in version 4 traces, for a huge page: 2 or more): the pages from `vpn` moved
   * from the run at `oldPfn` to the run at `newPfn`. Absent: one page.
   */
  ev('CowBroken', {
    mm: id,
    vpn: count,
    oldPfn: count,
    newPfn: count,
    fn,
    npages: z.number().int().min(2).optional(),
  }),
  ev('MemoryWritten', { pfn: count, offset: count, data: z.string() }),
  ev('PagesPinned', { pfn: count, count, fn, mm: id.nullable() }),
  ev('PagesUnpinned', { pfn: count, count, dirty: z.boolean(), fn }),

  // ---- machine: heap ----
  ev('HeapAllocated', { alloc: id, size: count, owner: z.enum(HEAP_OWNERS), tag: z.string(), fn }),
  ev('HeapFreed', { alloc: id, fn }),

  // ---- accounting ----
  ev('AccountingCharged', { counter: z.enum(COUNTERS), owner: count, pages: id.nullable(), delta: count, fn }),
  ev('AccountingUncharged', { counter: z.enum(COUNTERS), owner: count, pages: id.nullable(), delta: count, fn }),
  ev('NpinnedChanged', { pages: id, delta: z.number().int(), fn }),
  ev('LastNpinnedSet', { pages: id, value: count, fn }),

  // ---- iommufd objects ----
  ev('CtxOpened', { ctx: name, pid: name, account: z.enum(['user', 'mm']), vfioType1: z.boolean() }),
  ev('IoasAllocated', { ioas: name, ctx: name }),
  ev('IovaAlignmentSet', { ioas: name, alignment: u64 }),
  ev('LargePagesDisabled', { ioas: name, disabled: z.boolean() }),
  ev('IoasDomainsSet', { ioas: name, domains: z.array(name) }),
  ev('PagesAllocated', {
    pages: id,
    uptr: u64,
    npages: count,
    writable: z.boolean(),
    accountMode: z.enum(ACCOUNT_MODES),
    sourcePid: name,
    sourceMm: id,
    sourceUid: count,
    fn,
  }),
  ev('PagesAccountModeSet', { pages: id, accountMode: z.enum(ACCOUNT_MODES) }),
  ev('PagesRefChanged', { pages: id, delta: z.number().int(), fn }),
  ev('PagesReleased', { pages: id, fn }),
  ev('AreaAllocated', {
    area: id,
    ioas: name,
    iova: u64,
    lastIova: u64,
    pageOffset: count,
    firstIndex: count,
    lastIndex: count,
    prot: z.strictObject({ read: z.boolean(), write: z.boolean() }),
  }),
  ev('AreaPagesSet', { area: id, pages: id.nullable() }),
  ev('AreaStorageDomainSet', { area: id, domain: name.nullable() }),
  ev('AreaAccessesChanged', { area: id, delta: z.number().int(), fn }),
  ev('AreaPreventAccessSet', { area: id, prevent: z.boolean() }),
  ev('AreaFreed', { area: id }),
  ev('ItreeInserted', { tree: TreeRef, node: id, start: treeKey, last: treeKey, owner: z.string().nullable() }),
  ev('ItreeRemoved', { tree: TreeRef, node: id, start: treeKey, last: treeKey }),
  ev('XaStored', { pages: id, index: count, pfn: count, count }),
  ev('XaErased', { pages: id, index: count, count }),
  ev('PagesAccessAllocated', { node: id, pages: id, index: count, last: count }),
  ev('PagesAccessUsersChanged', { node: id, delta: z.number().int() }),
  ev('PagesAccessFreed', { node: id }),
  /** `internal` (present only for an internal access, [up:area-num-locks]): no ops, its pins lock areas. */
  ev('AccessCreated', { access: name, ioas: name, needsPinPages: z.boolean(), internal: z.literal(true).optional() }),
  ev('AccessItemAdded', { access: name, item: id, iova: u64, length: u64 }),
  ev('AccessItemRemoved', { access: name, item: id }),
  ev('AccessDestroyed', { access: name }),
  ev('AccessIoasReplaced', { access: name, from: name, to: name }),
  ev('DomainAllocated', {
    domain: name,
    kind: z.enum(['mock', 'generic']),
    pgsizes: z.array(u64),
    aperture: z.tuple([u64, u64]),
    /**
     * Present only for a mock domain built on an iommupt page table ([up:mock-iommupt]): its interior
     * table levels are tracked (IoPageTablesChanged), its pieces are whole IOPTEs like a generic domain's.
     */
    pageTable: z.literal('iommupt').optional(),
    /**
     * Version 5 traces, with `pageTable`: the domain keeps its tables as a digested set
     * (Domain.ioPageTableSet) instead of one record field. Appended.
     */
    tableSet: z.literal(true).optional(),
  }),
  ev('DomainFreed', { domain: name }),
  /**
   * Interior page-table levels of an iommupt mock domain allocated (by map_pages) or freed (by unmap_pages,
   * or by map_pages replacing empty ones with a larger leaf). Each table is [level, iova of its span].
   */
  ev('IoPageTablesChanged', {
    domain: name,
    allocated: z.array(z.tuple([count, u64])),
    freed: z.array(z.tuple([count, u64])),
    fn,
  }),
  ev('IommuMapped', {
    domain: name,
    extent: id,
    iova: u64,
    paddr: u64,
    size: u64,
    read: z.boolean(),
    write: z.boolean(),
    fn,
  }),
  ev('IommuUnmapped', {
    domain: name,
    iova: u64,
    size: u64,
    unmapped: u64,
    /** The byte ranges that were really removed (whole IOPTEs; holes excluded). */
    removed: z.array(z.tuple([u64, u64])),
    fn,
  }),

  // ---- findings ----
  ev('Warned', { fn, condition: z.string(), objects: z.record(z.string(), z.unknown()) }),
  ev('ViolationDetected', {
    kind: z.string(),
    fn,
    detail: z.string(),
    objects: z.record(z.string(), z.unknown()),
  }),

  // ---- an operation that never returns (added after the findings: existing type order is kept) ----
  /**
   * The calling task blocked for good inside the op: `lock` of `mm` could never be granted in `mode`
   * (`readers` is the rwsem's reader count, negative once an unheld unlock corrupted it). No event of the
   * op follows but its ViolationDetected('task_hung') and OpFinished (errno 'HUNG'); the run ends there.
   */
  ev('OpHung', {
    op: count,
    task: z.string(),
    lock: z.literal('mmap_lock'),
    mm: id,
    mode: z.enum(['read', 'write']),
    fn,
    readers: z.number().int(),
    writer: z.string().nullable(),
  }),

  // ---- file-backed pages (IOMMU_IOAS_MAP_FILE, v6.13; appended: existing type order is kept) ----
  /**
   * memfd_create + ftruncate by `pid`: a shmem file of `npages` pages whose page cache holds one folio per
   * `folio`-sized block; `runs` are the folios' PFN blocks in file order (one run per folio). The page
   * cache holds each frame (as a map would) until the file is released. `refs` starts at 1: the fd.
   */
  ev('MemfdCreated', {
    file: name,
    pid: name,
    npages: count,
    folio: z.enum(HUGE_SIZES),
    runs: z.array(z.tuple([count, count])),
  }),
  /** get_file / fput on a memfd (the fd of its process, or an iopt_pages that maps it). */
  ev('FileRefChanged', { file: name, delta: z.number().int(), fn }),
  /** The last reference went: the page cache lets its folios go (pinned frames stay until unpinned). */
  ev('FileReleased', { file: name, fn }),
  // ---- iommufd files and descriptors (version 2 traces) ----
  /** An iommufd file is created with f_count 1 (the reference its first descriptor will hold). */
  ev('OpenFileCreated', { file: name, kind: z.enum(['ctx', 'access']), object: name, holds: name.nullable(), fn }),
  /** get_file: one more reference (dup, fork's dup_fd, SCM_RIGHTS, iommufd_ctx_get). */
  ev('OpenFileGot', { file: name, fn }),
  /** fput: one reference less; at zero the release follows (its teardown, then OpenFileReleased). */
  ev('OpenFilePut', { file: name, fn }),
  /** The release ran to its end: the struct file is gone. */
  ev('OpenFileReleased', { file: name, fn }),
  /** fd_install: descriptor `fd` of `pid` now holds a reference already counted in f_count. */
  ev('FdInstalled', { pid: name, fd: count, file: name, fn }),
  /** The descriptor is taken out of the file table (close, dup2 over it, exit_files); the fput follows. */
  ev('FdRemoved', { pid: name, fd: count, file: name, fn }),
  /** iopt_alloc_file_pages: the pages reads its PFNs from `file` at byte `start` (page aligned). */
  ev('PagesFileSet', { pages: id, file: name, start: u64 }),

  // ---- IOMMU_IOAS_CHANGE_PROCESS (v6.13; appended: existing type order is kept) ----
  /** change_mm: the pages' source task, mm and user become the caller's (its charges moved separately). */
  ev('PagesSourceChanged', { pages: id, sourcePid: name, sourceMm: id, sourceUid: count, fn }),

  // ---- locked areas and the vIOMMU HW queue (v6.17; appended) ----
  /** area->num_locks += delta: an internal access's pin (lock_area) or unpin (unlock_area) through the area. */
  ev('AreaLocksChanged', { area: id, delta: z.number().int(), fn }),
  /** IOMMUFD_CMD_HW_QUEUE_ALLOC finished: the queue owns its internal access `queue` (same name). */
  ev('HwQueueAllocated', { queue: name, ioas: name, baseAddr: u64, length: u64, basePa: u64 }),
  /** iommufd_hw_queue_destroy began: the queue is gone; its access is unpinned and destroyed next. */
  ev('HwQueueDestroyed', { queue: name }),

  // ---- allocation in PFN runs (version 4 traces; appended) ----
  /**
   * Frames allocated as several blocks at once: each run is one block (or one hole of a given layout),
   * never more than MAX_EVENT_RUNS runs per event (a longer list is split into several events). Version 4
   * traces emit it where earlier versions emit one FramesAllocated per block.
   */
  ev('FrameRunsAllocated', { huge: z.enum(HUGE_SIZES), runs: z.array(z.tuple([count, count])).max(MAX_EVENT_RUNS) }),
  /**
   * One pin call's PagesPinned runs (`[pfn, count]`, in order), at most MAX_EVENT_RUNS per event: version 4
   * traces emit it where earlier versions emit one PagesPinned per run. `npages` is the sum of the runs'
   * counts (the accounting ledger's pin delta, readable without walking the list).
   */
  ev('PagesPinnedRuns', {
    runs: z.array(z.tuple([count, count])).max(MAX_EVENT_RUNS),
    npages: count,
    fn,
    mm: id.nullable(),
  }),
  /**
   * One batch_to_domain call's IommuMapped extents (each as its own IommuMapped would carry it), in order,
   * at most MAX_EVENT_RUNS per event: version 4 traces emit it where earlier versions emit one IommuMapped
   * per PFN run.
   */
  ev('IommuMappedRuns', {
    domain: name,
    read: z.boolean(),
    write: z.boolean(),
    fn,
    extents: z.array(z.strictObject({ extent: id, iova: u64, paddr: u64, size: u64 })).max(MAX_EVENT_RUNS),
  }),
  /** One unpin call's PagesUnpinned runs, in order (version 4), at most MAX_EVENT_RUNS per event. */
  ev('PagesUnpinnedRuns', {
    runs: z.array(z.tuple([count, count])).max(MAX_EVENT_RUNS),
    npages: count,
    dirty: z.boolean(),
    fn,
  }),

  // ---- xarray writes in runs (version 5 traces; appended) ----
  /**
   * One pages_to_xarray call's XaStored runs (`[index, pfn, count]`, in order), at most MAX_EVENT_RUNS per
   * event: version 5 traces emit it where earlier versions emit one XaStored per PFN-contiguous run.
   */
  ev('XaStoredRuns', { pages: id, runs: z.array(z.tuple([count, count, count])).max(MAX_EVENT_RUNS) }),
  /**
   * One clear_xarray call's XaErased runs (`[index, count]`, in order), at most MAX_EVENT_RUNS per event:
   * version 5 traces emit it where earlier versions emit one XaErased per present run.
   */
  ev('XaErasedRuns', { pages: id, runs: z.array(z.tuple([count, count])).max(MAX_EVENT_RUNS) }),
] as const;

export const Event = z.discriminatedUnion('type', EVENT_SCHEMAS);
export type Event = z.infer<typeof Event>;
export type EventType = Event['type'];
export type EventOf<T extends EventType> = Extract<Event, { type: T }>;

/** Event types, in vocabulary order. */
export const EVENT_TYPES: readonly EventType[] = EVENT_SCHEMAS.map((s) => s.shape.type.value);

/**
 * The kinds of violation the model reports. `warn` findings are Warned events; the rest are
 * ViolationDetected with one of these kinds.
 */
export const VIOLATION_KINDS = [
  'bad_free',
  'double_free',
  'leak',
  'double_unpin',
  'pin_leak',
  'mmput_underflow',
  'mmdrop_underflow',
  'unlock_not_held',
  'accounting_mismatch',
  'stale_batch_entry',
  'batch_out_of_bounds',
  'itree_corruption',
  'domain_pairing',
  'short_unmap',
  'xarray_missing_entry',
  'use_after_free',
  'invariant',
  'task_hung',
  'uninitialized_read',
] as const;
export type ViolationKind = (typeof VIOLATION_KINDS)[number];
