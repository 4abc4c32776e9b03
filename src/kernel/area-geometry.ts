// SPDX-License-Identifier: GPL-2.0-only
/**
 * The iopt_area geometry helpers of drivers/iommu/iommufd/io_pagetable.h and pages.c (spec section 1,
 * "Helper geometry"): how an area's IOVA range [iova, last_iova] lines up with its slice
 * [firstIndex, lastIndex] of the iopt_pages. `page_offset` is the byte offset of `iova` inside the first
 * page, so the first and the last page of an area may be partial in IOVA space while PFNs always name
 * whole pages.
 *
 * Vocabulary: `index` counts pages inside one iopt_pages, `iova` is a byte address (bigint, up to
 * 2^64 - 1), `last` is inclusive. IOVA results are reduced modulo 2^64 as the kernel's unsigned long is;
 * `last_iova + 1` can wrap, index arithmetic cannot.
 *
 * The [test] WARNs exist only on selftest kernels (sim.testWarn).
 */
import type { Sim } from '../machine/sim.js';
import type { Area } from '../state/state.js';

export const U64_MASK = (1n << 64n) - 1n;

/** An unsigned long result: reduced modulo 2^64. */
export function u64(x: bigint): bigint {
  return x & U64_MASK;
}

/** iopt_area_index: the first page index of the area (pages_node.start). */
export function ioptAreaIndex(area: Area): number {
  return area.firstIndex;
}

/** iopt_area_last_index: the last page index of the area (pages_node.last). */
export function ioptAreaLastIndex(area: Area): number {
  return area.lastIndex;
}

/** iopt_area_iova: the first IOVA of the area (node.start). */
export function ioptAreaIova(area: Area): bigint {
  return area.iova;
}

/** iopt_area_last_iova: the last IOVA of the area (node.last, inclusive). */
export function ioptAreaLastIova(area: Area): bigint {
  return area.lastIova;
}

/** iopt_area_length: last_iova - iova + 1 bytes (wraps to 0 for an area covering the whole space). */
export function ioptAreaLength(area: Area): bigint {
  return u64(area.lastIova - area.iova + 1n);
}

/**
 * iopt_area_start_byte: the byte position of `iova` inside the pages, (iova - area.iova) + page_offset +
 * firstIndex * PAGE_SIZE. [test] WARN when iova lies outside the area.
 */
export function ioptAreaStartByte(sim: Sim, area: Area, iova: bigint): number {
  if (iova < area.iova || iova > area.lastIova) {
    sim.testWarn('iopt_area_start_byte', 'iova < iopt_area_iova(area) || iova > iopt_area_last_iova(area)', {
      area: area.id,
      iova,
    });
  }
  const bytes = u64(iova - area.iova + BigInt(area.pageOffset) + BigInt(area.firstIndex) * BigInt(sim.pageSize));
  return Number(bytes);
}

/** iopt_area_iova_to_index: start_byte / PAGE_SIZE. */
export function ioptAreaIovaToIndex(sim: Sim, area: Area, iova: bigint): number {
  return Math.floor(ioptAreaStartByte(sim, area, iova) / sim.pageSize);
}

function warnOutside(sim: Sim, fn: string, area: Area, index: number): void {
  if (index < area.firstIndex || index > area.lastIndex) {
    sim.testWarn(fn, 'index < iopt_area_index(area) || index > iopt_area_last_index(area)', { area: area.id, index });
  }
}

/**
 * iopt_area_index_to_iova: the IOVA where page `index` starts inside the area: area.iova for the first
 * index (a partial page), else area.iova - page_offset + (index - first) * PAGE_SIZE.
 */
export function ioptAreaIndexToIova(sim: Sim, area: Area, index: number): bigint {
  warnOutside(sim, 'iopt_area_index_to_iova', area, index);
  const rel = index - area.firstIndex;
  if (rel === 0) return area.iova;
  return u64(area.iova - BigInt(area.pageOffset) + BigInt(rel) * BigInt(sim.pageSize));
}

/**
 * iopt_area_index_to_iova_last: the last IOVA of page `index` inside the area: last_iova for the last
 * index (a partial page), else area.iova - page_offset + (index - first + 1) * PAGE_SIZE - 1.
 */
export function ioptAreaIndexToIovaLast(sim: Sim, area: Area, index: number): bigint {
  warnOutside(sim, 'iopt_area_index_to_iova_last', area, index);
  if (index === area.lastIndex) return area.lastIova;
  return u64(area.iova - BigInt(area.pageOffset) + BigInt(index - area.firstIndex + 1) * BigInt(sim.pageSize) - 1n);
}
