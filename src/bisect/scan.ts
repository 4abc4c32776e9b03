// SPDX-License-Identifier: GPL-2.0-only
/**
 * The op-by-op comparison of two runs of one trace: where they stop agreeing, and every stretch of ops
 * where they disagree.
 *
 * Two ops agree when the neutral state digest after them (neutral.ts), their errno and their result are
 * equal; the result counts because an op can fail differently without changing the state (-ENOENT versus 0
 * on an empty unmap-all).
 *
 * One merged pass over both op lists, O(ops), rather than a binary search over the digests: digests can
 * re-converge (a difference undone by a later op, as an alignment raised by an access and lowered when the
 * access goes), so "the first op whose digests differ" is not the boundary of a monotone predicate and a
 * binary search could land on any later divergence. Op rows are small and far fewer than events. Over the
 * store the pass is a join in the database that returns only the ops whose raw rows differ (bisect-runs.ts);
 * in memory it is scanOps below.
 */

import type { OpRow } from '../store/index.js';

/** Which parts of an op differ between the two runs. */
export type OpDifference = 'state' | 'errno' | 'result';

export interface OpPair {
  index: number;
  a: OpRow;
  b: OpRow;
  differs: OpDifference[];
}

export interface ScanResult {
  /** Ops compared (indexes 0..compared-1). */
  compared: number;
  /** The first op after which the runs differ; null when every compared op agrees. */
  first: OpPair | null;
  /** Maximal stretches of differing ops, [first, last] inclusive, ascending. */
  ranges: [number, number][];
  differingOps: number;
}

export function opDifferences(a: OpRow, b: OpRow): OpDifference[] {
  const out: OpDifference[] = [];
  if (a.digest !== b.digest) out.push('state');
  if (a.errno !== b.errno) out.push('errno');
  if (a.result !== b.result) out.push('result');
  return out;
}

/** Collects the differing op pairs of a scan, given in ascending index order. */
export class DivergenceCollector {
  private first: OpPair | null = null;
  private readonly ranges: [number, number][] = [];
  private differing = 0;

  /** Record a differing pair (indexes strictly ascending across calls). */
  add(pair: OpPair): void {
    this.first ??= pair;
    this.differing += 1;
    const last = this.ranges[this.ranges.length - 1];
    if (last !== undefined && last[1] === pair.index - 1) last[1] = pair.index;
    else this.ranges.push([pair.index, pair.index]);
  }

  result(compared: number): ScanResult {
    return { compared, first: this.first, ranges: this.ranges, differingOps: this.differing };
  }
}

/**
 * Compare two op streams index by index, up to `limit` ops (or until either ends). Both streams must yield
 * ops in index order from 0; they are read once, in step.
 */
export function scanOps(as: Iterable<OpRow>, bs: Iterable<OpRow>, limit = Number.MAX_SAFE_INTEGER): ScanResult {
  const ia = as[Symbol.iterator]();
  const ib = bs[Symbol.iterator]();
  const collector = new DivergenceCollector();
  let compared = 0;
  try {
    while (compared < limit) {
      const na = ia.next();
      const nb = ib.next();
      if (na.done === true || nb.done === true) break;
      const a = na.value;
      const b = nb.value;
      if (a.index !== compared || b.index !== compared) {
        throw new RangeError(`op stream out of order: expected op ${compared}, got ${a.index} and ${b.index}`);
      }
      const differs = opDifferences(a, b);
      if (differs.length > 0) collector.add({ index: compared, a, b, differs });
      compared += 1;
    }
  } finally {
    ia.return?.();
    ib.return?.();
  }
  return collector.result(compared);
}
