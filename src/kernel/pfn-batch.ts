// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct pfn_batch (drivers/iommu/iommufd/pages.c), the pure part: a run-length list of PFNs held in two
 * parallel arrays, `pfns[i]` (first PFN of run i) and `npfns[i]` (its length), with `end` (exclusive: runs
 * in use), `arraySize` (capacity in runs) and `totalPfns`. The kernel function that owns a batch keeps it
 * on its stack, so a batch is never part of the State and has no digest.
 *
 * Invariants of a well-used batch: `end <= arraySize`; `totalPfns` is the sum of `npfns[0..end)`; no run is
 * longer than `runMax`. The v3 carry bugs break the last two on purpose, and nothing here repairs them.
 *
 * Fidelity: `npfns` holds the C element type's value (u16 in v3 07/15, u32 once merged): every store is
 * truncated as C truncates, so a carry above 65535 or a skip past a run's length wraps. `totalPfns` is an
 * unsigned int. Like the kernel's buffer, the arrays keep every slot up to their capacity and a clear zeroes
 * only slot 0, so runs beyond `end` keep their stale values for `batchPieces` to (wrongly) read.
 *
 * Deviations: PFN arithmetic uses JS numbers (exact below 2^53; the kernel's is unsigned long). A read of
 * slot -1 (clear_carry with end 0) is reported and reads as PFN 0, length 0. `batchAddPfnNum` splits an add
 * longer than `runMax` into several runs (upstream never pairs it with u16 runs).
 */

export const U16_MAX = 0xffff;
export const U32_MAX = 0xffffffff;

/** What a variant changes in pfn_batch. */
export interface BatchBehaviour {
  /** Longest run: 65535 for the v3 u16 `npfns`, 4294967295 for u32. Also selects the element type. */
  runMax: number;
  /** [up:carry-store-order]: clear_carry reads the last run before it writes entry 0. */
  carryStoreOrder: boolean;
  /** [up:carry-end-one]: clear_carry leaves end = 1 (v3: 0). */
  carryEndOne: boolean;
  /** [merged, test] the WARNs of clear_carry and skip_carry. */
  mergedChecks: boolean;
}

export interface PfnBatch {
  pfns: number[];
  npfns: number[];
  arraySize: number;
  end: number;
  totalPfns: number;
}

/** Where a batch function reports a WARN or a violation; the caller turns them into events. */
export interface BatchDiag {
  warn(fn: string, condition: string): void;
  violation(kind: string, fn: string, detail: string): void;
  /** A PFN as the finding texts of the run write it (Sim.pfnText). */
  pfnText(pfn: number): string;
}

/** One contiguous piece of a batch walk: `count` PFNs from `pfn`, read from run `index`. */
export interface BatchPiece {
  index: number;
  pfn: number;
  count: number;
}

function isU16(behaviour: BatchBehaviour): boolean {
  return behaviour.runMax <= U16_MAX;
}

/** A value as stored in one `npfns` element. */
function toElement(value: number, behaviour: BatchBehaviour): number {
  return isU16(behaviour) ? value & U16_MAX : value >>> 0;
}

/** Bytes per run: an unsigned long PFN plus the `npfns` element (2 or 4). */
export function entrySize(behaviour: BatchBehaviour): number {
  return 8 + (isU16(behaviour) ? 2 : 4);
}

/** How many runs fit in a buffer of `sizeBytes`. */
export function batchCapacity(sizeBytes: number, behaviour: BatchBehaviour): number {
  return Math.floor(sizeBytes / entrySize(behaviour));
}

/** A cleared batch over a zero-filled buffer of `arraySize` runs. */
export function batchCreate(arraySize: number): PfnBatch {
  const batch: PfnBatch = {
    pfns: new Array<number>(arraySize).fill(0),
    npfns: new Array<number>(arraySize).fill(0),
    arraySize,
    end: 0,
    totalPfns: 0,
  };
  batchClear(batch);
  return batch;
}

/** Empty the batch; only slot 0 is zeroed, later slots keep their stale runs. */
export function batchClear(batch: PfnBatch): void {
  batch.totalPfns = 0;
  batch.end = 0;
  // A zero-capacity buffer has no slot 0; batch_init's [merged, test] WARN stands before this.
  if (batch.pfns.length > 0) {
    batch.pfns[0] = 0;
    batch.npfns[0] = 0;
  }
}

/** Add `nr` (1..runMax) PFNs from `pfn` as one step: grow the last run or start one; false when full. */
function addRun(batch: PfnBatch, pfn: number, nr: number, behaviour: BatchBehaviour): boolean {
  const end = batch.end;
  if (end > 0) {
    const lastPfn = batch.pfns[end - 1] ?? 0;
    const lastLen = batch.npfns[end - 1] ?? 0;
    if (pfn === lastPfn + lastLen && nr <= behaviour.runMax - lastLen) {
      batch.npfns[end - 1] = toElement(lastLen + nr, behaviour);
      batch.totalPfns = (batch.totalPfns + nr) >>> 0;
      return true;
    }
  }
  if (end >= batch.arraySize) return false;
  batch.pfns[end] = pfn;
  batch.npfns[end] = toElement(nr, behaviour);
  batch.end = end + 1;
  batch.totalPfns = (batch.totalPfns + nr) >>> 0;
  return true;
}

/** batch_add_pfn: append one PFN; false (batch unchanged) when it needs a new run and the batch is full. */
export function batchAddPfn(batch: PfnBatch, pfn: number, behaviour: BatchBehaviour): boolean {
  return addRun(batch, pfn, 1, behaviour);
}

/**
 * batch_add_pfn_num: append `nr` contiguous PFNs from `pfn`; returns how many were added. Up to `runMax`
 * PFNs go in whole or not at all, as upstream; a longer add goes in runMax-sized steps.
 */
export function batchAddPfnNum(batch: PfnBatch, pfn: number, nr: number, behaviour: BatchBehaviour): number {
  let added = 0;
  while (added < nr) {
    const step = Math.min(nr - added, behaviour.runMax);
    if (!addRun(batch, pfn + added, step, behaviour)) break;
    added += step;
  }
  return added;
}

/** Read the last run, reporting the out-of-bounds slot -1 when end is 0. */
function readLastRun(batch: PfnBatch, diag: BatchDiag): { pfn: number; npfns: number } {
  if (batch.end === 0) {
    diag.violation('batch_out_of_bounds', 'batch_clear_carry', 'reads run -1: end is 0');
    return { pfn: 0, npfns: 0 };
  }
  return { pfn: batch.pfns[batch.end - 1] ?? 0, npfns: batch.npfns[batch.end - 1] ?? 0 };
}

/**
 * batch_clear_carry: keep the last `keep` PFNs of the last run as the batch's only run (keep 0 clears).
 * Reproduces the v3 order (entry 0's length written before the last run is read) and end = 0 unless the
 * behaviour fixes them.
 */
export function batchClearCarry(batch: PfnBatch, keep: number, behaviour: BatchBehaviour, diag: BatchDiag): void {
  const keepPfns = keep >>> 0;
  if (keepPfns === 0) {
    batchClear(batch);
    return;
  }
  if (behaviour.mergedChecks && (batch.end === 0 || (batch.npfns[batch.end - 1] ?? 0) < keepPfns)) {
    diag.warn('batch_clear_carry', '!batch->end || batch->npfns[batch->end - 1] < keep_pfns');
  }
  batch.totalPfns = keepPfns;
  // The length difference is unsigned int arithmetic in C: a keep above the run wraps to a huge offset.
  if (behaviour.carryStoreOrder) {
    const last = readLastRun(batch, diag);
    batch.pfns[0] = last.pfn + ((last.npfns - keepPfns) >>> 0);
    batch.npfns[0] = toElement(keepPfns, behaviour);
  } else {
    batch.npfns[0] = toElement(keepPfns, behaviour);
    const last = readLastRun(batch, diag);
    batch.pfns[0] = last.pfn + ((last.npfns - keepPfns) >>> 0);
  }
  batch.end = behaviour.carryEndOne ? 1 : 0;
}

/** batch_skip_carry: drop the first `skip` PFNs of entry 0 (at most totalPfns); end is untouched. */
export function batchSkipCarry(batch: PfnBatch, skip: number, behaviour: BatchBehaviour, diag: BatchDiag): void {
  if (batch.totalPfns === 0) return;
  const first = batch.npfns[0] ?? 0;
  if (behaviour.mergedChecks && batch.totalPfns !== first) {
    diag.warn('batch_skip_carry', 'batch->total_pfns != batch->npfns[0]');
  }
  const skipPfns = Math.min(batch.totalPfns, skip >>> 0);
  batch.pfns[0] = (batch.pfns[0] ?? 0) + skipPfns;
  batch.npfns[0] = toElement(first - skipPfns, behaviour);
  batch.totalPfns = (batch.totalPfns - skipPfns) >>> 0;
}

/**
 * The pieces batch_unpin would unpin: skip `firstOffset` PFNs through the runs, then take `n` PFNs run by
 * run. Like the kernel it trusts the run lengths and ignores `end`: every run read at or beyond `end` is
 * reported as `stale_batch_entry`, and walking off the buffer as `batch_out_of_bounds` (the walk stops).
 * Zero-length pieces are not returned.
 */
export function batchPieces(batch: PfnBatch, firstOffset: number, n: number, diag: BatchDiag): BatchPiece[] {
  const pieces: BatchPiece[] = [];
  const capacity = batch.pfns.length;
  let reported = -1;
  // Reads run `cur`; false once the walk has left the buffer.
  const readable = (cur: number): boolean => {
    if (cur >= capacity) {
      diag.violation('batch_out_of_bounds', 'batch_unpin', `walks to run ${cur} of a ${capacity}-run buffer`);
      return false;
    }
    if (cur >= batch.end && cur > reported) {
      reported = cur;
      diag.violation(
        'stale_batch_entry',
        'batch_unpin',
        `reads run ${cur} (pfn ${diag.pfnText(batch.pfns[cur] ?? 0)}, npfns ${batch.npfns[cur] ?? 0}) at or beyond end ${batch.end}`,
      );
    }
    return true;
  };

  let cur = 0;
  let offset = firstOffset >>> 0;
  while (offset !== 0) {
    if (!readable(cur)) return pieces;
    const len = batch.npfns[cur] ?? 0;
    if (len > offset) break;
    offset -= len;
    cur++;
  }

  let remaining = n;
  while (remaining > 0) {
    if (!readable(cur)) return pieces;
    const count = Math.min(remaining, ((batch.npfns[cur] ?? 0) - offset) >>> 0);
    if (count > 0) pieces.push({ index: cur, pfn: (batch.pfns[cur] ?? 0) + offset, count });
    cur++;
    offset = 0;
    remaining -= count;
  }
  return pieces;
}

/** batch_remove_pfn_num: take the last `nr` PFNs off the last run (undoing a batch_add_pfn_num). */
export function batchRemovePfnNum(batch: PfnBatch, nr: number, behaviour: BatchBehaviour): void {
  batch.totalPfns = (batch.totalPfns - nr) >>> 0;
  const last = batch.end - 1;
  batch.npfns[last] = toElement((batch.npfns[last] ?? 0) - nr, behaviour);
  if (batch.npfns[last] === 0) batch.end = last;
}
