// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kmalloc heap (spec section 4), as KASAN and kmemleak see it: every buffer has an owner and a start,
 * so kfree can tell a good free from a BAD_FREE (a pointer that is not the start of a live allocation:
 * the inside of a caller's array, a stack buffer) or a double free (an allocation already freed).
 * Leaks are live iommufd-owned allocations at teardown (checked by the replayer).
 *
 * A pointer is (allocation, byte offset) or a named stack buffer. Allocation ids are never reused, so a
 * pointer to an allocation that is no longer live is a pointer to freed memory.
 *
 * temp_kmalloc is the pages.c helper "get some memory, the size may shrink", with its v3 and merged forms.
 */
import type { HeapOwner } from '../events/events.js';
import type { Sim } from './sim.js';

export type Ptr = { space: 'heap'; alloc: number; offset: number } | { space: 'stack'; name: string };

export interface KmallocOptions {
  owner?: HeapOwner;
  tag: string;
  fn: string;
}

/** kmalloc: a fresh allocation, or null when the fail-nth plan fails this allocation (failslab). */
export function kmalloc(sim: Sim, size: number, opts: KmallocOptions): Ptr | null {
  if (sim.faultPoint('kmalloc', opts.fn)) return null;
  const alloc = sim.newId();
  sim.emit({ type: 'HeapAllocated', v: 1, alloc, size, owner: opts.owner ?? 'iommufd', tag: opts.tag, fn: opts.fn });
  return { space: 'heap', alloc, offset: 0 };
}

/**
 * kfree: NULL is a no-op; anything but the start of a live allocation is reported and nothing is freed.
 * `by` is the subsystem freeing: freeing the start of a buffer someone else owns is reported as a
 * BAD_FREE too (the heap knows owners) and then frees it, as the kernel would, so the owner's own free
 * that follows is a double free.
 */
export function kfree(sim: Sim, ptr: Ptr | null, fn: string, by: HeapOwner = 'iommufd'): void {
  if (ptr === null) return;
  if (ptr.space === 'stack') {
    sim.violation('bad_free', fn, `kfree of stack buffer ${ptr.name}`, { buffer: ptr.name });
    return;
  }
  const live = sim.state.heap[ptr.alloc];
  if (live === undefined) {
    sim.violation('double_free', fn, `kfree of freed allocation ${ptr.alloc}`, {
      alloc: ptr.alloc,
      offset: ptr.offset,
    });
    return;
  }
  if (ptr.offset !== 0) {
    sim.violation(
      'bad_free',
      fn,
      `kfree of a pointer ${ptr.offset} bytes into allocation ${ptr.alloc} (${live.tag}, owned by ${live.owner})`,
      { alloc: ptr.alloc, offset: ptr.offset, owner: live.owner, tag: live.tag },
    );
    return;
  }
  if (live.owner !== by) {
    sim.violation('bad_free', fn, `${by} frees allocation ${ptr.alloc} (${live.tag}) owned by ${live.owner}`, {
      alloc: ptr.alloc,
      offset: 0,
      owner: live.owner,
      tag: live.tag,
    });
  }
  sim.emit({ type: 'HeapFreed', v: 1, alloc: ptr.alloc, fn });
}

/** The pointer `bytes` further into the same buffer (C pointer arithmetic). */
export function ptrAdd(ptr: Ptr, bytes: number): Ptr {
  return ptr.space === 'heap' ? { ...ptr, offset: ptr.offset + bytes } : ptr;
}

export function samePtr(a: Ptr | null, b: Ptr | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.space === 'stack' || b.space === 'stack')
    return a.space === b.space && (a as { name: string }).name === (b as { name: string }).name;
  return a.alloc === b.alloc && a.offset === b.offset;
}

export interface TempBuffer {
  ptr: Ptr | null;
  /** The capacity the caller may use, in bytes (may be smaller than asked). */
  size: number;
}

/**
 * temp_kmalloc(size, backup, backup_len). The fail-nth plan can fail the opportunistic and the normal
 * kmalloc separately (each is its own fault point), and, on merged test kernels, the iommufd fault point.
 */
export function tempKmalloc(
  sim: Sim,
  size: number,
  backup: Ptr | null,
  backupLen: number,
  fn: string,
  tag: string,
): TempBuffer {
  if (sim.merged && size === 0) {
    sim.warn('temp_kmalloc', '!*size');
    return { ptr: null, size };
  }
  if (size < backupLen) return { ptr: backup, size };
  if (sim.merged && sim.testBuild && backup === null && sim.faultPoint('temp_kmalloc', fn)) return { ptr: null, size };
  let want = Math.min(size, sim.state.config.tempMemoryLimit);
  const res = kmalloc(sim, want, { tag, fn });
  if (res !== null) return { ptr: res, size: want };
  want = sim.pageSize;
  if (backupLen) {
    const page = kmalloc(sim, want, { tag, fn });
    if (page !== null) return { ptr: page, size: want };
    return { ptr: backup, size: backupLen };
  }
  return { ptr: kmalloc(sim, want, { tag, fn }), size: want };
}
