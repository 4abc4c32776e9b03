// SPDX-License-Identifier: GPL-2.0-only
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hex } from '../../../src/lib/format.js';
import {
  type BatchBehaviour,
  type BatchDiag,
  type PfnBatch,
  U16_MAX,
  U32_MAX,
  batchAddPfn,
  batchAddPfnNum,
  batchCapacity,
  batchClear,
  batchClearCarry,
  batchCreate,
  batchPieces,
  batchSkipCarry,
  entrySize,
} from '../../../src/kernel/pfn-batch.js';

/** Both carry fixes, u32 runs, test-kernel WARNs: upstream. */
const FIXED: BatchBehaviour = { runMax: U32_MAX, carryStoreOrder: true, carryEndOne: true, mergedChecks: true };
/** The v3 07/15 seed: u16 runs, both carry bugs, no test WARNs. */
const V3: BatchBehaviour = { runMax: U16_MAX, carryStoreOrder: false, carryEndOne: false, mergedChecks: false };

interface Recorder extends BatchDiag {
  warns: [string, string][];
  violations: [string, string, string][];
}

function recorder(): Recorder {
  const warns: [string, string][] = [];
  const violations: [string, string, string][] = [];
  return {
    warns,
    violations,
    warn: (fn, condition) => warns.push([fn, condition]),
    violation: (kind, fn, detail) => violations.push([kind, fn, detail]),
    pfnText: hex,
  };
}

/** A batch of `capacity` runs filled by adding each run PFN by PFN. */
function withRuns(capacity: number, runs: [number, number][], behaviour: BatchBehaviour): PfnBatch {
  const batch = batchCreate(capacity);
  let refused = 0;
  for (const [pfn, n] of runs) for (let i = 0; i < n; i++) if (!batchAddPfn(batch, pfn + i, behaviour)) refused++;
  expect(refused).toBe(0);
  return batch;
}

const used = (b: PfnBatch): [number, number][] => b.pfns.slice(0, b.end).map((p, i) => [p, b.npfns[i] ?? -1]);

describe('entrySize / batchCapacity', () => {
  it('sizes a run at 10 bytes with u16 lengths and 12 with u32', () => {
    expect(entrySize(V3)).toBe(10);
    expect(entrySize(FIXED)).toBe(12);
  });

  it('fits 25 u16 runs or 21 u32 runs in the 256-byte stack backup', () => {
    expect(batchCapacity(256, V3)).toBe(25);
    expect(batchCapacity(256, FIXED)).toBe(21);
    expect(batchCapacity(512 * 12, FIXED)).toBe(512);
  });
});

describe('batchAddPfn', () => {
  it('grows the last run for a contiguous PFN and refuses a new run when full', () => {
    const batch = withRuns(
      3,
      [
        [100, 3],
        [200, 1],
        [300, 1],
      ],
      FIXED,
    );
    expect(batchAddPfn(batch, 400, FIXED)).toBe(false);
    expect(batchAddPfn(batch, 301, FIXED)).toBe(true);
    expect(used(batch)).toEqual([
      [100, 3],
      [200, 1],
      [300, 2],
    ]);
    expect(batch.end).toBe(3);
    expect(batch.totalPfns).toBe(6);
  });

  it('splits 65536 contiguous PFNs into runs of 65535 and 1 with u16 lengths', () => {
    const batch = withRuns(4, [[5000, 65536]], V3);
    expect(used(batch)).toEqual([
      [5000, 65535],
      [70535, 1],
    ]);
    expect(batch.totalPfns).toBe(65536);
  });

  it('keeps 65536 contiguous PFNs in one run with u32 lengths', () => {
    expect(used(withRuns(4, [[5000, 65536]], FIXED))).toEqual([[5000, 65536]]);
  });
});

describe('batchAddPfnNum', () => {
  it('adds a contiguous range to the last run and a discontiguous one as a new run, all or nothing', () => {
    const batch = batchCreate(2);
    expect(batchAddPfnNum(batch, 1000, 512, FIXED)).toBe(512);
    expect(batchAddPfnNum(batch, 1512, 100, FIXED)).toBe(100);
    expect(batchAddPfnNum(batch, 5000, 10, FIXED)).toBe(10);
    expect(batchAddPfnNum(batch, 9000, 10, FIXED)).toBe(0);
    expect(used(batch)).toEqual([
      [1000, 612],
      [5000, 10],
    ]);
    expect(batch.totalPfns).toBe(622);
  });

  it('splits an add longer than a u16 run and stops when the batch is full', () => {
    const roomy = batchCreate(4);
    expect(batchAddPfnNum(roomy, 0, 140000, V3)).toBe(140000);
    expect(used(roomy)).toEqual([
      [0, 65535],
      [65535, 65535],
      [131070, 8930],
    ]);
    const tight = batchCreate(2);
    expect(batchAddPfnNum(tight, 0, 140000, V3)).toBe(131070);
    expect(tight.totalPfns).toBe(131070);
  });
});

describe('batchClear', () => {
  it('zeroes only run 0 and leaves the later runs stale', () => {
    const batch = withRuns(
      3,
      [
        [100, 3],
        [200, 5],
        [300, 2],
      ],
      FIXED,
    );
    batchClear(batch);
    expect(batch).toEqual({ pfns: [0, 200, 300], npfns: [0, 5, 2], arraySize: 3, end: 0, totalPfns: 0 });
  });
});

describe('batchClearCarry', () => {
  it('moves the tail 1412..1511 of run (1000, 512) to the front with both fixes', () => {
    const batch = withRuns(4, [[1000, 512]], FIXED);
    const diag = recorder();
    batchClearCarry(batch, 100, FIXED, diag);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([1412, 100, 1, 100]);
    expect(diag.warns).toEqual([]);
    expect(diag.violations).toEqual([]);
  });

  it('keeps the head 1000..1099 instead of the tail when the length is stored first and end is 1', () => {
    const behaviour = { ...FIXED, carryStoreOrder: false };
    const batch = withRuns(4, [[1000, 512]], behaviour);
    batchClearCarry(batch, 100, behaviour, recorder());
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([1000, 100, 1, 100]);
  });

  it('gets the tail right without the store-order fix when the last run is not run 0', () => {
    const behaviour = { ...FIXED, carryStoreOrder: false };
    const batch = withRuns(
      4,
      [
        [1000, 2],
        [5000, 512],
      ],
      behaviour,
    );
    batchClearCarry(batch, 100, behaviour, recorder());
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([5412, 100, 1, 100]);
  });

  it('leaves end 0 without the end-one fix, so the next add overwrites run 0 while the total still counts the carry', () => {
    const behaviour = { ...FIXED, carryEndOne: false };
    const batch = withRuns(
      4,
      [
        [1000, 512],
        [3000, 50],
      ],
      behaviour,
    );
    const diag = recorder();
    batchClearCarry(batch, 20, behaviour, diag);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([3030, 20, 0, 20]);

    expect(batchAddPfn(batch, 3050, behaviour)).toBe(true);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([3050, 1, 1, 21]);

    // batch_unpin of the whole total reads the stale run 1 and unpins 3000..3019, never pinned by this batch.
    expect(batchPieces(batch, 0, batch.totalPfns, diag)).toEqual([
      { index: 0, pfn: 3050, count: 1 },
      { index: 1, pfn: 3000, count: 20 },
    ]);
    expect(diag.violations).toEqual([
      ['stale_batch_entry', 'batch_unpin', 'reads run 1 (pfn 0xbb8, npfns 50) at or beyond end 1'],
    ]);
  });

  it('keeps the head and leaves end 0 with both v3 bugs', () => {
    const batch = withRuns(4, [[1000, 512]], V3);
    batchClearCarry(batch, 100, V3, recorder());
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([1000, 100, 0, 100]);
  });

  it('clears the batch when keep is 0', () => {
    const batch = withRuns(2, [[7, 3]], FIXED);
    batchClearCarry(batch, 0, FIXED, recorder());
    expect(batch).toEqual({ pfns: [0, 0], npfns: [0, 0], arraySize: 2, end: 0, totalPfns: 0 });
  });

  it('warns when keep exceeds the last run and wraps the u16 length and the unsigned offset', () => {
    const behaviour = { ...FIXED, runMax: U16_MAX };
    const batch = withRuns(2, [[1000, 60000]], behaviour);
    const diag = recorder();
    batchClearCarry(batch, 70000, behaviour, diag);
    expect(diag.warns).toEqual([['batch_clear_carry', '!batch->end || batch->npfns[batch->end - 1] < keep_pfns']]);
    // 1000 + (60000 - 70000 mod 2^32); 70000 mod 2^16
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([4294958296, 4464, 1, 70000]);
  });

  it('reports the read of run -1 when called with end 0 and reads it as PFN 0, length 0', () => {
    const batch = batchCreate(2);
    const diag = recorder();
    batchClearCarry(batch, 5, FIXED, diag);
    expect(diag.warns).toEqual([['batch_clear_carry', '!batch->end || batch->npfns[batch->end - 1] < keep_pfns']]);
    expect(diag.violations).toEqual([['batch_out_of_bounds', 'batch_clear_carry', 'reads run -1: end is 0']]);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([4294967291, 5, 1, 5]);
  });
});

describe('batchSkipCarry', () => {
  it('drops 30 PFNs from the front of the carry, then clamps a skip to the total', () => {
    const batch = withRuns(2, [[1000, 512]], FIXED);
    const diag = recorder();
    batchClearCarry(batch, 100, FIXED, diag);
    batchSkipCarry(batch, 30, FIXED, diag);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([1442, 70, 1, 70]);
    batchSkipCarry(batch, 500, FIXED, diag);
    expect([batch.pfns[0], batch.npfns[0], batch.end, batch.totalPfns]).toEqual([1512, 0, 1, 0]);
    batchSkipCarry(batch, 5, FIXED, diag);
    expect([batch.pfns[0], batch.npfns[0], batch.totalPfns]).toEqual([1512, 0, 0]);
    expect(diag.warns).toEqual([]);
  });

  it('warns when the total is not the length of run 0, and wraps a u16 length', () => {
    const behaviour = { ...FIXED, runMax: U16_MAX };
    const batch = withRuns(2, [[1000, 60000]], behaviour);
    const diag = recorder();
    batchClearCarry(batch, 70000, behaviour, diag);
    batchSkipCarry(batch, 5000, behaviour, diag);
    expect(diag.warns[1]).toEqual(['batch_skip_carry', 'batch->total_pfns != batch->npfns[0]']);
    // 4464 - 5000 mod 2^16
    expect([batch.pfns[0], batch.npfns[0], batch.totalPfns]).toEqual([4294963296, 65000, 65000]);
  });

  it('does not warn without the merged test checks', () => {
    const batch = withRuns(
      2,
      [
        [1000, 2],
        [2000, 3],
      ],
      V3,
    );
    const diag = recorder();
    batchSkipCarry(batch, 1, V3, diag);
    expect(diag.warns).toEqual([]);
    expect([batch.pfns[0], batch.npfns[0], batch.totalPfns]).toEqual([1001, 1, 4]);
  });
});

describe('batchPieces', () => {
  const runs: [number, number][] = [
    [100, 3],
    [200, 5],
    [300, 2],
  ];

  it('skips 4 PFNs into run 1 and returns 201..204 and 300', () => {
    const diag = recorder();
    expect(batchPieces(withRuns(3, runs, FIXED), 4, 5, diag)).toEqual([
      { index: 1, pfn: 201, count: 4 },
      { index: 2, pfn: 300, count: 1 },
    ]);
    expect(diag.violations).toEqual([]);
  });

  it('starts at run 1 when the offset is exactly the length of run 0', () => {
    expect(batchPieces(withRuns(3, runs, FIXED), 3, 2, recorder())).toEqual([{ index: 1, pfn: 200, count: 2 }]);
  });

  it('reads stale runs left after a clear and reports each one', () => {
    const batch = withRuns(3, runs, FIXED);
    batchClear(batch);
    batchAddPfn(batch, 50, FIXED);
    const diag = recorder();
    expect(batchPieces(batch, 0, 8, diag)).toEqual([
      { index: 0, pfn: 50, count: 1 },
      { index: 1, pfn: 200, count: 5 },
      { index: 2, pfn: 300, count: 2 },
    ]);
    expect(diag.violations.map((v) => [v[0], v[1]])).toEqual([
      ['stale_batch_entry', 'batch_unpin'],
      ['stale_batch_entry', 'batch_unpin'],
    ]);
  });

  it('stops with an out-of-bounds violation when it walks past the buffer', () => {
    const diag = recorder();
    expect(batchPieces(withRuns(2, runs.slice(0, 2), FIXED), 0, 10, diag)).toEqual([
      { index: 0, pfn: 100, count: 3 },
      { index: 1, pfn: 200, count: 5 },
    ]);
    expect(diag.violations).toEqual([['batch_out_of_bounds', 'batch_unpin', 'walks to run 2 of a 2-run buffer']]);
  });
});

// ---- property test: the fixed carry never loses or duplicates a PFN ------------------------------------------

type Op =
  | { op: 'add'; contiguous: boolean; pfn: number }
  | { op: 'addNum'; contiguous: boolean; pfn: number; nr: number }
  | { op: 'carry'; frac: number }
  | { op: 'skip'; n: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      contiguous: fc.boolean(),
      pfn: fc.integer({ min: 0, max: 1000 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('addNum' as const),
      contiguous: fc.boolean(),
      pfn: fc.integer({ min: 0, max: 1000 }),
      nr: fc.integer({ min: 1, max: 20 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('carry' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('skip' as const), n: fc.integer({ min: 0, max: 30 }) }) },
);

describe('pfn_batch with both carry fixes', () => {
  it('holds exactly the PFNs a naive list holds after any sequence of add, clear_carry and skip_carry', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(opArb, { maxLength: 60 }), (capacity, ops) => {
        const batch = batchCreate(capacity);
        const diag = recorder();
        let list: number[] = [];
        const nextPfn = (contiguous: boolean, pfn: number): number =>
          contiguous && list.length > 0 ? (list[list.length - 1] as number) + 1 : pfn;

        for (const step of ops) {
          switch (step.op) {
            case 'add': {
              const pfn = nextPfn(step.contiguous, step.pfn);
              const before = structuredClone(batch);
              if (batchAddPfn(batch, pfn, FIXED)) list.push(pfn);
              else expect(batch).toEqual(before);
              break;
            }
            case 'addNum': {
              const pfn = nextPfn(step.contiguous, step.pfn);
              const added = batchAddPfnNum(batch, pfn, step.nr, FIXED);
              expect([0, step.nr]).toContain(added);
              for (let i = 0; i < added; i++) list.push(pfn + i);
              break;
            }
            case 'carry': {
              const lastRun = batch.end > 0 ? (batch.npfns[batch.end - 1] as number) : 0;
              const keep = Math.floor(step.frac * lastRun);
              batchClearCarry(batch, keep, FIXED, diag);
              list = keep === 0 ? [] : list.slice(list.length - keep);
              break;
            }
            case 'skip': {
              // The kernel skips only right after a carry, when the batch is at most one run.
              if (batch.end > 1) break;
              batchSkipCarry(batch, step.n, FIXED, diag);
              list = list.slice(Math.min(step.n, list.length));
              break;
            }
          }
          expect(batch.totalPfns).toBe(list.length);
          expect(batch.npfns.slice(0, batch.end).reduce((a, b) => a + b, 0)).toBe(list.length);
          const walked = batchPieces(batch, 0, batch.totalPfns, diag).flatMap((p) =>
            Array.from({ length: p.count }, (_, i) => p.pfn + i),
          );
          expect(walked).toEqual(list);
        }
        expect(diag.warns).toEqual([]);
        expect(diag.violations).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });
});
