// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { scanOps } from '../../../src/bisect/scan.js';
import type { OpRow } from '../../../src/store/index.js';

/** Ops 0..n-1 with the given digests (and errnos, when given). */
function ops(digests: string[], errnos: (string | null)[] = []): OpRow[] {
  return digests.map((digest, index) => ({
    index,
    line: 10 + index,
    op: `op${index}`,
    errno: errnos[index] ?? null,
    result: '{}',
    firstSeq: index * 3 + 1,
    lastSeq: index * 3 + 3,
    digest,
  }));
}

describe('scanOps', () => {
  it('finds the first differing op and every stretch, including after the digests re-converge', () => {
    const r = scanOps(ops(['a', 'b', 'c', 'd', 'e', 'f', 'g']), ops(['a', 'b', 'X', 'Y', 'e', 'f', 'Z']));
    expect(r.compared).toBe(7);
    expect(r.first?.index).toBe(2);
    expect(r.first?.a.line).toBe(12);
    expect(r.first?.differs).toEqual(['state']);
    expect(r.ranges).toEqual([
      [2, 3],
      [6, 6],
    ]);
    expect(r.differingOps).toBe(3);
  });

  it('counts an op whose errno alone differs (same state, other result)', () => {
    const r = scanOps(ops(['a', 'b', 'c']), ops(['a', 'b', 'c'], [null, 'ENOENT', null]));
    expect(r.first?.index).toBe(1);
    expect(r.first?.differs).toEqual(['errno']);
    expect(r.ranges).toEqual([[1, 1]]);
  });

  it('reports no divergence for equal runs, and stops at the shorter run or the limit', () => {
    expect(scanOps(ops(['a', 'b']), ops(['a', 'b', 'c']))).toEqual({
      compared: 2,
      first: null,
      ranges: [],
      differingOps: 0,
    });
    const limited = scanOps(ops(['a', 'b', 'c']), ops(['a', 'b', 'X']), 2);
    expect(limited.compared).toBe(2);
    expect(limited.first).toBeNull();
  });

  it('refuses op streams that skip an index', () => {
    const gap = ops(['a', 'b', 'c']).filter((o) => o.index !== 1);
    expect(() => scanOps(gap, ops(['a', 'b', 'c']))).toThrow('op stream out of order: expected op 1, got 2 and 1');
  });
});
