// SPDX-License-Identifier: GPL-2.0-only
/**
 * The vIOMMU HW queue of drivers/iommu/iommufd/viommu.c ([up:area-num-locks], v6.17): the one user of
 * internal accesses and locked areas. IOMMUFD_CMD_HW_QUEUE_ALLOC (iommufd_hw_queue_alloc_ioctl) gives a
 * guest queue that the hardware reads by physical address; iommufd_hw_queue_alloc_phys pins the queue's
 * pages through an internal access so that, for the queue's whole life, IOMMU_IOAS_UNMAP of those areas
 * fails with -EBUSY instead of pulling the memory from under the hardware. Destroying the queue
 * (iommufd_hw_queue_destroy, iommufd_hw_queue_destroy_access) unpins, detaches and destroys the access.
 *
 * The queue and its internal access share one name and one record (Access with `internal` and `hwQueue`):
 * the queue owns exactly that access from its allocation to its destruction (hw_queue->access).
 *
 * Deviations: no vIOMMU object or nesting-parent HWPT is modelled; the queue names the IOAS the vIOMMU's
 * HWPT belongs to (viommu->hwpt->ioas), and the vIOMMU is taken to support queues (the selftest's mock
 * vIOMMU does). The mock driver's own rules in hw_queue_init_phys (queue index range, one queue per index,
 * index order and iommufd_hw_queue_depend) are not modelled; nor is the quick iommu_iova_to_phys probe of
 * earlier postings. The queue object is not heap-tracked (its allocation is a fault point).
 */
import { EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENOTTY, EOVERFLOW, ERANGE } from '../machine/errno.js';
import type { PageSlots } from '../machine/gup.js';
import { kfree, kmalloc } from '../machine/heap.js';
import type { Sim } from '../machine/sim.js';
import { U64_MASK } from './area-geometry.js';
import {
  iommufdAccessCreateInternal,
  iommufdAccessDestroy,
  iommufdAccessPinPages,
  iommufdAccessUnpinPages,
} from './device.js';

/** sizeof(struct page *): the pages array kvcalloc'ed per queue allocation. */
const PAGE_PTR_BYTES = 8;

/** The page-aligned range the queue pins: [aligned, aligned + length) and the queue's offset in page 0. */
interface PinRange {
  aligned: bigint;
  offset: bigint;
  length: bigint;
}

/** PAGE_ALIGN_DOWN(base) and PAGE_ALIGN(offset + length), with the -ERANGE of the overflow checks. */
function pinRange(sim: Sim, base: bigint, length: bigint): PinRange | null {
  const page = BigInt(sim.pageSize);
  const aligned = base - (base % page);
  const offset = base - aligned;
  const rounded = offset + length + page - 1n;
  if (rounded > U64_MASK) return null;
  return { aligned, offset, length: (rounded / page) * page };
}

/**
 * iommufd_hw_queue_alloc_phys: an internal access on `ioas` pins the queue's pages (locking their areas)
 * and the pages must be physically contiguous (-EFAULT, everything undone). Returns the queue's physical
 * base address, or a negative errno with nothing left behind.
 */
function hwQueueAllocPhys(sim: Sim, queue: string, ioas: string, base: bigint, length: bigint): bigint | number {
  const fn = 'iommufd_hw_queue_alloc_phys';
  const range = pinRange(sim, base, length);
  if (range === null) return -ERANGE;
  const npages = Number(range.length / BigInt(sim.pageSize));
  // kvcalloc(max_npages, sizeof(*pages), GFP_KERNEL | __GFP_NOWARN): lent to the pin, freed on every path.
  const array = kmalloc(sim, npages * PAGE_PTR_BYTES, { owner: 'caller', tag: 'hw_queue_pages', fn });
  if (array === null) return -ENOMEM;
  const free = (): void => kfree(sim, array, fn, 'caller');

  let rc = iommufdAccessCreateInternal(sim, queue, ioas);
  if (rc) {
    free();
    return rc;
  }
  const out: PageSlots = { slots: [] };
  rc = iommufdAccessPinPages(sim, queue, range.aligned, range.length, out, array, false);
  if (!rc) {
    for (let i = 1; i < npages; i++) {
      if ((out.slots[i] ?? 0) === (out.slots[i - 1] ?? 0) + 1) continue;
      rc = -EFAULT;
      iommufdAccessUnpinPages(sim, queue, range.aligned, range.length);
      break;
    }
  }
  if (rc) {
    // out_detach + out_destroy: iommufd_access_detach_internal, iommufd_access_destroy_internal.
    iommufdAccessDestroy(sim, queue);
    free();
    return rc;
  }
  const basePa = BigInt(out.slots[0] ?? 0) * BigInt(sim.pageSize) + range.offset;
  free();
  return basePa;
}

/**
 * IOMMUFD_CMD_HW_QUEUE_ALLOC of a queue at IOVA `base` (nesting_parent_iova), `length` bytes, in `ioas`.
 * -ENOTTY before [up:area-num-locks]; -EINVAL for length 0; -EOVERFLOW when the range wraps; -ENOENT for an
 * IOAS that does not exist; -EEXIST for a name in use; -ENOMEM; -ERANGE; or the pin's error (-ENOENT when
 * the range is not fully mapped, -EINVAL when an area is being unmapped, ...); -EFAULT when the pages are
 * not physically contiguous. On success the queue holds its pins until hwQueueDestroy.
 */
export function hwQueueAlloc(sim: Sim, queue: string, ioas: string, base: bigint, length: bigint): number {
  if (!sim.has('area-num-locks')) return -ENOTTY;
  if (length === 0n) return -EINVAL;
  if (base + length - 1n > U64_MASK) return -EOVERFLOW;
  if (sim.state.ioases[ioas] === undefined) return -ENOENT;
  // The trace names queues and accesses in one namespace; a second object under a taken name is refused.
  if (sim.state.accesses[queue] !== undefined) return -EEXIST;
  if (sim.faultPoint('kmalloc', 'iommufd_hw_queue_alloc_ioctl')) return -ENOMEM;
  const basePa = hwQueueAllocPhys(sim, queue, ioas, base, length);
  if (typeof basePa === 'number') return basePa;
  sim.emit({ type: 'HwQueueAllocated', v: 1, queue, ioas, baseAddr: base, length, basePa });
  return 0;
}

/**
 * IOMMU_DESTROY of a HW queue (iommufd_hw_queue_destroy): the queue goes, then its access unpins exactly
 * what the allocation pinned (unlocking the areas), is detached and destroyed. -ENOENT when `queue` names no
 * HW queue (an access of the selftest driver is not one).
 */
export function hwQueueDestroy(sim: Sim, queue: string): number {
  const q = sim.state.accesses[queue]?.hwQueue;
  if (q === undefined) return -ENOENT;
  sim.emit({ type: 'HwQueueDestroyed', v: 1, queue });
  const range = pinRange(sim, q.baseAddr, q.length);
  if (range !== null) iommufdAccessUnpinPages(sim, queue, range.aligned, range.length);
  iommufdAccessDestroy(sim, queue);
  return 0;
}
