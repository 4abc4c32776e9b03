// SPDX-License-Identifier: GPL-2.0-only
/**
 * The selftest's access driver (drivers/iommu/iommufd/selftest.c, the iommufd_test_access_* family): the
 * object a trace's access_* ops drive. It stands in for a VFIO mdev: it creates an access on an IOAS,
 * pins ranges through iommufd_access_pin_pages into a page array it allocates per call, remembers each
 * successful pin as an item (iova, length), reads and writes through iommufd_access_rw with a bounce
 * buffer, and unpins from its unmap callback.
 *
 * Items: one per successful pin, in a list (oldest first). The unmap callback drops and unpins every item
 * that intersects the range it is given; closing the access (access_destroy) runs the callback over the
 * whole space and then destroys the access, so nothing the driver pinned outlives it. An item is a heap
 * allocation owned by iommufd (selftest.c is part of the module) whose id is the item id, so an item that
 * is never freed is a leak at teardown.
 *
 * Buffers: the page array (kvcalloc, npages * 8 bytes) and the rw bounce buffer (kvzalloc) belong to the
 * caller ('caller' owner): the kAPI only borrows them, and the driver frees them on every path. Both are
 * failslab sites, as is every kzalloc here.
 *
 * Deviations: the driver's object and its anonymous file are not heap-tracked (fault points only); the
 * check of the returned pages against the user VA (iommufd_test_check_pages) is not done, because the
 * trace op carries no user pointer; the 16 MiB length guard that later selftests added against syzkaller
 * is not modelled (only kvmalloc's own INT_MAX limit is). The driver is the upstream one for every variant:
 * the [v3] posting's harness differences are not kernel defects.
 */
import { EEXIST, ENOENT, ENOMEM, EOPNOTSUPP } from '../machine/errno.js';
import type { PageSlots } from '../machine/gup.js';
import type { Ptr } from '../machine/heap.js';
import { kfree, kmalloc } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { InternalError } from '../lib/errors.js';
import { tableKeys } from '../state/records.js';
import type { Access, AccessItem } from '../state/state.js';
import type { AccessOps } from './access-ops.js';
import { U64_MASK } from './area-geometry.js';
import {
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessPinPages,
  iommufdAccessReplace,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
} from './device.js';

/** sizeof(struct selftest_access_item): a list head, iova, length, id. */
const ITEM_BYTES = 40;
/** kvmalloc refuses (with a WARN) anything above INT_MAX bytes. */
const INT_MAX = 0x7fffffffn;
/** What kmalloc(0) returns: not an allocation, no fault point, and kfree ignores it. */
const ZERO_SIZE_PTR: Ptr = { space: 'stack', name: 'ZERO_SIZE_PTR' };

function accessOf(sim: Sim, access: string): Access {
  const a = sim.state.accesses[access];
  if (a === undefined) throw new InternalError(`access ${access} does not exist`);
  return a;
}

/** The driver's item list, oldest first (ids grow with allocation order). */
function itemsOf(a: Access): AccessItem[] {
  return Object.values(a.items).sort((x, y) => x.id - y.id);
}

/** kvmalloc's size check: above INT_MAX it WARNs and fails. */
function kvmallocTooBig(sim: Sim, bytes: bigint, fn: string): boolean {
  if (bytes <= INT_MAX) return false;
  sim.warn('kvmalloc_node', 'size > INT_MAX', { fn, size: bytes });
  return true;
}

/** kvzalloc / kvcalloc of `bytes` owned by the driver's caller side; null when it fails. */
function kvalloc(sim: Sim, bytes: number, tag: string, fn: string): Ptr | null {
  if (bytes === 0) return ZERO_SIZE_PTR;
  return kmalloc(sim, bytes, { owner: 'caller', tag, fn });
}

function kvfree(sim: Sim, ptr: Ptr, fn: string): void {
  if (ptr !== ZERO_SIZE_PTR) kfree(sim, ptr, fn, 'caller');
}

/** Drop an item from the list, unpin its range and free it. */
function itemDestroy(sim: Sim, access: string, item: AccessItem, fn: string): void {
  sim.emit({ type: 'AccessItemRemoved', v: 1, access, item: item.id });
  iommufdAccessUnpinPages(sim, access, item.iova, item.length);
  kfree(sim, { space: 'heap', alloc: item.id, offset: 0 }, fn);
}

/**
 * iommufd_test_access_unmap, the access's unmap callback: unpin and drop every item intersecting
 * [iova, iova + length - 1] (u64 arithmetic: the whole-space call (0, ULONG_MAX) ends at ULONG_MAX - 1).
 */
export function iommufdTestAccessUnmap(sim: Sim, access: string, iova: bigint, length: bigint): void {
  const fn = 'iommufd_test_access_unmap';
  const a = sim.state.accesses[access];
  if (a === undefined) return;
  const iovaLast = (iova + length - 1n) & U64_MASK;
  for (const item of itemsOf(a)) {
    const itemLast = (item.iova + item.length - 1n) & U64_MASK;
    if (iova > itemLast || iovaLast < item.iova) continue;
    itemDestroy(sim, access, item, fn);
  }
}

/** selftest_access_ops: the driver's callbacks. */
const SELFTEST_ACCESS_OPS: AccessOps = { unmap: iommufdTestAccessUnmap };

/**
 * IOMMU_TEST_OP_CREATE_ACCESS: the driver's object, then iommufd_access_create on `ioas`. -EEXIST for a
 * name already in use, -ENOMEM, or the kAPI's error (the access does not exist afterwards).
 */
export function accessCreate(sim: Sim, access: string, ioas: string, needsPinPages: boolean): number {
  // The trace names accesses; a second one under a taken name cannot be told apart from the first.
  if (sim.state.accesses[access] !== undefined) return -EEXIST;
  if (sim.faultPoint('kmalloc', 'iommufd_test_alloc_access')) return -ENOMEM;
  return iommufdAccessCreate(sim, access, ioas, needsPinPages, SELFTEST_ACCESS_OPS);
}

/**
 * Closing the access (iommufd_test_staccess_release): the unmap callback over the whole space unpins
 * every item still held, then the access is destroyed. Always 0.
 */
export function accessDestroy(sim: Sim, access: string): number {
  accessOf(sim, access);
  iommufdTestAccessUnmap(sim, access, 0n, U64_MASK);
  iommufdAccessDestroy(sim, access);
  return 0;
}

/**
 * IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: move the driver's access to `ioas` through iommufd_access_replace.
 * Before [up:access-replace] the mock has no such command and answers -EOPNOTSUPP whatever the arguments;
 * with it, -ENOENT for an access that does not exist, else the kAPI's answer.
 */
export function accessReplace(sim: Sim, access: string, ioas: string): number {
  if (!sim.has('access-replace')) return -EOPNOTSUPP;
  if (sim.state.accesses[access] === undefined) return -ENOENT;
  return iommufdAccessReplace(sim, access, ioas);
}

/**
 * IOMMU_TEST_OP_ACCESS_PAGES: allocate a page array for every page the range touches, pin through the
 * kAPI, record the item, free the array. -EOPNOTSUPP for an access created without NEEDS_PIN_PAGES
 * ([merged]; [v3] has no such flag), -ENOMEM (array or item allocation; the pin is undone), or the
 * kAPI's error. `pfns`: the pinned pages' PFNs as runs [first, count], in page order.
 */
export function accessPin(
  sim: Sim,
  access: string,
  iova: bigint,
  length: bigint,
  write: boolean,
): { rc: number; pfns: [number, number][] } {
  const fn = 'iommufd_test_access_pages';
  const a = accessOf(sim, access);
  if (sim.merged && !a.needsPinPages) return { rc: -EOPNOTSUPP, pfns: [] };

  // (ALIGN(iova + length, PAGE_SIZE) - ALIGN_DOWN(iova, PAGE_SIZE)) / PAGE_SIZE in unsigned long.
  const page = BigInt(sim.pageSize);
  const mask = ~(page - 1n) & U64_MASK;
  const end = (((iova + length) & U64_MASK) + page - 1n) & mask;
  const npages = ((end - (iova & mask)) & U64_MASK) / page;
  if (kvmallocTooBig(sim, npages * 8n, fn)) return { rc: -ENOMEM, pfns: [] };
  const outPtr = kvalloc(sim, Number(npages) * 8, 'out_pages', fn);
  if (outPtr === null) return { rc: -ENOMEM, pfns: [] };

  const out: PageSlots = { slots: [] };
  let rc = iommufdAccessPinPages(sim, access, iova, length, out, outPtr, write);
  let pfns: [number, number][] = [];
  if (!rc) {
    const item = kmalloc(sim, ITEM_BYTES, { tag: 'selftest_access_item', fn });
    if (item === null || item.space !== 'heap') {
      iommufdAccessUnpinPages(sim, access, iova, length);
      rc = -ENOMEM;
    } else {
      sim.emit({ type: 'AccessItemAdded', v: 1, access, item: item.alloc, iova, length });
      pfns = pfnRuns(out.slots);
    }
  }
  kvfree(sim, outPtr, fn);
  return { rc, pfns };
}

/** IOMMU_TEST_OP_DESTROY_ACCESS_PAGES for the oldest item of exactly [iova, iova + length); -ENOENT if none. */
export function accessUnpin(sim: Sim, access: string, iova: bigint, length: bigint): number {
  // The oldest match is the lowest id: a scan, not a sort of every item per call. The digest keeper's list
  // of the table's keys saves Object.values (which collects and sorts the sparse keys each time).
  const items = accessOf(sim, access).items;
  const keys = tableKeys(items) ?? Object.keys(items).map(Number);
  let item: AccessItem | undefined;
  for (let k = 0; k < keys.length; k++) {
    const it = items[keys[k] as number];
    if (it === undefined) continue;
    if (it.iova === iova && it.length === length && (item === undefined || it.id < item.id)) item = it;
  }
  if (item === undefined) return -ENOENT;
  itemDestroy(sim, access, item, 'iommufd_test_access_item_destroy');
  return 0;
}

/**
 * IOMMU_TEST_OP_ACCESS_RW: copy through a bounce buffer with iommufd_access_rw. A write sends
 * `opts.data` (length bytes); a read returns the bytes read. -ENOMEM (buffer), or the kAPI's error
 * (then no data).
 */
export function accessRw(
  sim: Sim,
  access: string,
  iova: bigint,
  length: bigint,
  opts: { write: boolean; data: Uint8Array | null; kthread: boolean },
): { rc: number; data: Uint8Array | null } {
  const fn = 'iommufd_test_access_rw';
  accessOf(sim, access);
  if (kvmallocTooBig(sim, length, fn)) return { rc: -ENOMEM, data: null };
  const tmpPtr = kvalloc(sim, Number(length), 'access_rw_buf', fn);
  if (tmpPtr === null) return { rc: -ENOMEM, data: null };
  const tmp = new Uint8Array(Number(length));
  if (opts.write) {
    if (opts.data === null || opts.data.length !== tmp.length) {
      kvfree(sim, tmpPtr, fn);
      throw new InternalError(`access_rw: a write of ${length} bytes needs exactly that many bytes of data`);
    }
    tmp.set(opts.data);
  }
  const rc = iommufdAccessRw(sim, access, iova, tmp, { write: opts.write, kthread: opts.kthread });
  kvfree(sim, tmpPtr, fn);
  if (rc) return { rc, data: null };
  return { rc: 0, data: opts.write ? null : tmp };
}

/** A page array as runs of consecutive PFNs [first, count], in order. */
function pfnRuns(slots: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < slots.length; i++) {
    const pfn = slots[i] ?? 0;
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] + last[1] === pfn) last[1] += 1;
    else runs.push([pfn, 1]);
  }
  return runs;
}
