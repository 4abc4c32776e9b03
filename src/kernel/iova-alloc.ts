// SPDX-License-Identifier: GPL-2.0-only
/**
 * IOVA choice for a new mapping (drivers/iommu/iommufd/io_pagetable.c: iopt_alloc_iova, iopt_check_iova;
 * spec section 14 "Map" step 3 and 14a).
 *
 * Allocation looks for the first place, in address order, inside an allowed range (the whole space
 * [PAGE_SIZE, 2^64 - 1 - PAGE_SIZE] when none is set) that is covered neither by a reserved range nor by an
 * area, where the start rounded up to the target alignment, with the user pointer's offset inside its page
 * OR-ed in, still leaves `length` bytes. The target alignment comes from the length and the user pointer
 * (so a THP-backed buffer can be mapped with huge IOPTEs) and must not be below the IOAS's iova_alignment.
 *
 * All IOVA arithmetic is u64: the ALIGN() of the unfixed variants wraps modulo 2^64 exactly as the
 * kernel's unsigned long does, which is the defect `alloc-iova-align-overflow` fixes.
 *
 * Variants: [v3] walks allowed spans, then reserved-tree holes, then area-tree holes (three nested single
 * span walks, re-aligning at each level); [merged] walks one double span over (reserved, area) inside each
 * allowed span. Without a wrap both find the same IOVA; they differ only in where a wrapped start lands.
 * Fixed IOVAs: [merged] -EINVAL reserved / -EEXIST area; [v3] also checks the length there, and answers
 * -ENOENT / -EADDRINUSE.
 */
import { EADDRINUSE, EEXIST, EINVAL, ENOENT, ENOSPC, EOVERFLOW } from '../machine/errno.js';
import type { Sim } from '../machine/sim.js';
import type { Ioas } from '../state/state.js';
import { U64_MASK, u64 } from './area-geometry.js';
import { itreeIterFirst } from '../structures/interval-tree.js';
import { doubleSpans, spans } from '../structures/span.js';

export const U64_MAX = U64_MASK;
/** ULONG_MAX / 2: the largest length whose roundup_pow_of_two cannot overflow is below this. */
const ALLOC_LENGTH_LIMIT = U64_MAX >> 1n;

/** roundup_pow_of_two(x) for x >= 1. */
export function roundupPowOfTwo(x: bigint): bigint {
  if (x <= 1n) return 1n;
  return 1n << BigInt((x - 1n).toString(2).length);
}

/** 1 << __ffs64(x): the lowest set bit of a non-zero value. */
export function lowestSetBit(x: bigint): bigint {
  return x & -x;
}

/** The PMD-sized huge page (HPAGE_SIZE): PAGE_SIZE times the entries of one page-table page (8-byte PTEs). */
export function hugePageSize(sim: Sim): bigint {
  const page = BigInt(sim.pageSize);
  return page * (page / 8n);
}

/**
 * Does [start, last] (a candidate span, start <= last) hold `length` bytes once its start is aligned?
 * Returns the aligned start or null. Mirrors __alloc_iova_check_hole/_used; with `alloc-iova-align-overflow`
 * the round-up is overflow-checked and an aligned start equal to `last` is refused (upstream's form).
 */
function checkRange(
  sim: Sim,
  start: bigint,
  last: bigint,
  length: bigint,
  align: bigint,
  pageOffset: bigint,
): bigint | null {
  if (sim.has('alloc-iova-align-overflow')) {
    const up = start + align - 1n;
    if (up > U64_MAX) return null;
    const aligned = (up & ~(align - 1n) & U64_MAX) | pageOffset;
    if (aligned >= last || last - aligned < length - 1n) return null;
    return aligned;
  }
  if (last - start < length - 1n) return null;
  const aligned = (u64(start + align - 1n) & ~(align - 1n) & U64_MAX) | pageOffset;
  if (aligned > last || last - aligned < length - 1n) return null;
  return aligned;
}

export interface IovaResult {
  rc: number;
  iova: bigint;
}

/**
 * iopt_alloc_iova: pick an IOVA for `length` bytes mapped from user address `addr` (0 = no pointer).
 * -EOVERFLOW for length 0 or >= 2^63 - 1, -EINVAL if the target alignment is below the IOAS's, -ENOSPC
 * when nothing fits.
 */
export function ioptAllocIova(sim: Sim, ioas: Ioas, addr: bigint, length: bigint): IovaResult {
  const pageSize = BigInt(sim.pageSize);
  const pageOffset = addr % pageSize;
  if (length === 0n || length >= ALLOC_LENGTH_LIMIT) return { rc: -EOVERFLOW, iova: 0n };

  let align = roundupPowOfTwo(length);
  if (addr !== 0n) {
    const low = lowestSetBit(addr);
    if (low < align) align = low;
  }
  if (sim.has('iova-align-cap')) {
    // THP is assumed on, as on the selftest machines: the cap is the PMD size.
    const max = hugePageSize(sim);
    if (align >= max) align = max;
  }
  if (align < ioas.iovaAlignment) return { rc: -EINVAL, iova: 0n };

  const first = pageSize;
  const last = U64_MAX - pageSize;
  const allowedEmpty = ioas.allowed.count === 0;
  for (const span of spans(ioas.allowed, first, last)) {
    let used = !span.isHole;
    let start = span.start;
    let end = span.last;
    if (allowedEmpty) {
      used = true;
      start = first;
      end = last;
    }
    if (!used) continue;
    const aStart = checkRange(sim, start, end, length, align, pageOffset);
    if (aStart === null) continue;

    if (sim.merged) {
      for (const hole of doubleSpans(ioas.reserved, ioas.areas, aStart, end)) {
        if (hole.isUsed !== 0) continue;
        const iova = checkRange(sim, hole.start, hole.last, length, align, pageOffset);
        if (iova !== null) return { rc: 0, iova };
      }
      continue;
    }
    for (const rspan of spans(ioas.reserved, aStart, end)) {
      if (!rspan.isHole) continue;
      const rStart = checkRange(sim, rspan.start, rspan.last, length, align, pageOffset);
      if (rStart === null) continue;
      for (const aspan of spans(ioas.areas, rStart, rspan.last)) {
        if (!aspan.isHole) continue;
        const iova = checkRange(sim, aspan.start, aspan.last, length, align, pageOffset);
        if (iova !== null) return { rc: 0, iova };
      }
    }
  }
  return { rc: -ENOSPC, iova: 0n };
}

/**
 * iopt_check_iova: may `length` bytes be mapped at the fixed `iova`? [merged] -EINVAL misaligned,
 * -EOVERFLOW on wrap, -EINVAL over a reserved range, -EEXIST over an area. [v3] the length alignment and
 * non-zero length are checked here too, and the last two errnos are -ENOENT and -EADDRINUSE.
 */
export function ioptCheckIova(sim: Sim, ioas: Ioas, iova: bigint, length: bigint): number {
  const mask = ioas.iovaAlignment - 1n;
  if (sim.merged) {
    if (iova & mask) return -EINVAL;
  } else if (iova & mask || length & mask || length === 0n) {
    return -EINVAL;
  }
  const last = iova + u64(length - 1n);
  if (last > U64_MAX) return -EOVERFLOW;
  if (itreeIterFirst(ioas.reserved, iova, last) !== null) return sim.merged ? -EINVAL : -ENOENT;
  if (itreeIterFirst(ioas.areas, iova, last) !== null) return sim.merged ? -EEXIST : -EADDRINUSE;
  return 0;
}
