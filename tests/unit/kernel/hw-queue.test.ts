// SPDX-License-Identifier: GPL-2.0-only
/**
 * Locked areas (flag area-num-locks, 27b77ea5feaa, v6.17) and their user, the vIOMMU HW queue
 * (IOMMUFD_CMD_HW_QUEUE_ALLOC, iommufd_hw_queue_alloc_phys): the queue's internal access pins its pages and
 * counts area->num_locks on every area it goes through; IOAS_UNMAP of a locked area is EBUSY and unmaps
 * nothing; a second queue over the same pages shares the pin but locks again; the pages must be physically
 * contiguous (EFAULT, nothing left); destroying the queue (or the end of the trace) unlocks and unpins.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveVariant } from '../../../src/kernel/variants.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import { replay } from '../../../src/replay/replayer.js';
import type { ReplayResult } from '../../../src/replay/replayer.js';
import type { State } from '../../../src/state/state.js';

const HEADER = '{"format":"ioptrace-trace","version":1}';

interface Books {
  /** Per area, by IOVA: [num_accesses, num_locks (undefined: the field is absent, i.e. 0)]. */
  areas: Record<string, [number, number | undefined]>;
  /** Per iopt_pages: npinned. */
  npinned: number[];
  /** The HW queues (internal accesses) alive: name -> [base, length]. */
  queues: Record<string, [string, string]>;
  /** user.locked_vm of uid 1000. */
  lockedVm: number;
}

function books(s: State): Books {
  const areas: Books['areas'] = {};
  for (const a of Object.values(s.areas)) areas[`0x${a.iova.toString(16)}`] = [a.numAccesses, a.numLocks];
  const queues: Books['queues'] = {};
  for (const a of Object.values(s.accesses)) {
    if (a.internal && a.hwQueue)
      queues[a.name] = [`0x${a.hwQueue.baseAddr.toString(16)}`, `0x${a.hwQueue.length.toString(16)}`];
  }
  return {
    areas,
    npinned: Object.values(s.pages).map((p) => p.npinned),
    queues,
    lockedVm: s.users[1000]?.lockedVm ?? -1,
  };
}

function run(body: string[], variant = 'upstream'): { r: ReplayResult; at: Map<number, Books> } {
  const at = new Map<number, Books>();
  const trace = parseTraceText([HEADER, ...body].join('\n'), 'hw-queue');
  const r = replay(trace, { ...resolveVariant(variant), onOp: (rec, s) => at.set(rec.line, books(s)) });
  return { r, at };
}

const found = (r: ReplayResult): string[] => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn}`);

/**
 * Lines 2..7: four physically contiguous pages (PFNs 0x1000..0x1003) mapped as two areas of two pages,
 * 0x1000000 and 0x1002000, plus two 4K pages that are not adjacent (0x2000000).
 */
const PROLOGUE = [
  '{"op":"process","pid":1,"memlock":"unlimited"}',
  '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":16384,"pfns":[[4096,4]]}',
  '{"op":"mmap","pid":1,"addr":"0x7f0000100000","length":8192}',
  '{"op":"open","ctx":"c","pid":1}',
  '{"op":"ioas_alloc","ioas":"A"}',
  '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":8192,"iova":"0x1000000","expect":"ok"}', // 7
  '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000002000","length":8192,"iova":"0x1002000","expect":"ok"}', // 8
  '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000100000","length":8192,"iova":"0x2000000","expect":"ok"}', // 9
];

describe('a HW queue locks the areas it pins', () => {
  it('across two areas: num_locks 1 on each, EBUSY for IOAS_UNMAP of either, unlocked by the destroy', () => {
    const { r, at } = run([
      ...PROLOGUE,
      // 0x1800 bytes from 0x1001800: pages 0x1001000 and 0x1002000, one in each area.
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1001800","length":"0x1800","expect":"ok"}', // 10
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1002000","length":8192,"expect":"EBUSY"}', // 11
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":16384,"expect":"EBUSY"}', // 12
      '{"op":"ioas_unmap","ioas":"A","iova":"0x2000000","length":8192,"expect":{"unmapped":"0x2000"}}', // 13
      '{"op":"hw_queue_destroy","queue":"q","expect":"ok"}', // 14
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":16384,"expect":{"unmapped":"0x4000"}}', // 15
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(9)).toEqual({
      areas: { '0x1000000': [0, undefined], '0x1002000': [0, undefined], '0x2000000': [0, undefined] },
      npinned: [0, 0, 0],
      queues: {},
      lockedVm: 0,
    });
    // One page pinned in each pages (no domain: the access pins them), charged to user 1000.
    expect(at.get(10)).toEqual({
      areas: { '0x1000000': [1, 1], '0x1002000': [1, 1], '0x2000000': [0, undefined] },
      npinned: [1, 1, 0],
      queues: { q: ['0x1001800', '0x1800'] },
      lockedVm: 2,
    });
    // The refused unmaps change nothing; the unlocked area goes.
    expect(at.get(12)).toEqual(at.get(10));
    expect(at.get(13)?.areas).toEqual({ '0x1000000': [1, 1], '0x1002000': [1, 1] });
    expect(at.get(14)).toEqual({
      areas: { '0x1000000': [0, undefined], '0x1002000': [0, undefined] },
      npinned: [0, 0],
      queues: {},
      lockedVm: 0,
    });
    expect(at.get(15)?.areas).toEqual({});
  });

  it('two queues over the same pages share the pin and lock twice; the area stays locked until both go', () => {
    const { r, at } = run([
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q1","ioas":"A","iova":"0x1000000","length":8192,"expect":"ok"}', // 10
      '{"op":"hw_queue_alloc","queue":"q2","ioas":"A","iova":"0x1000000","length":8192,"expect":"ok"}', // 11
      '{"op":"hw_queue_destroy","queue":"q1","expect":"ok"}', // 12
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":8192,"expect":"EBUSY"}', // 13
      '{"op":"hw_queue_destroy","queue":"q2","expect":"ok"}', // 14
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":8192,"expect":{"unmapped":"0x2000"}}', // 15
      '{"op":"hw_queue_destroy","queue":"q2","expect":"ENOENT"}', // 16
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)?.areas['0x1000000']).toEqual([1, 1]);
    expect(at.get(11)?.areas['0x1000000']).toEqual([2, 2]);
    expect(at.get(11)?.npinned).toEqual([2, 0, 0]);
    expect(at.get(11)?.lockedVm).toEqual(2);
    expect(at.get(12)?.areas['0x1000000']).toEqual([1, 1]);
    expect(at.get(12)?.npinned).toEqual([2, 0, 0]);
    expect(at.get(14)?.areas['0x1000000']).toEqual([0, undefined]);
    expect(at.get(14)?.npinned).toEqual([0, 0, 0]);
    expect(at.get(14)?.lockedVm).toEqual(0);
  });

  it('the end of the trace destroys a queue still alive before it unmaps: no leak, no finding', () => {
    const { r, at } = run([
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1003000","length":4096,"expect":"ok"}', // 10
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)?.areas['0x1002000']).toEqual([1, 1]);
  });
});

describe('HW_QUEUE_ALLOC refuses', () => {
  it('pages that are not physically contiguous: EFAULT, and nothing is left pinned, locked or accessed', () => {
    const { r, at } = run([
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x2000000","length":8192,"expect":"EFAULT"}', // 10
      '{"op":"ioas_unmap","ioas":"A","iova":"0x2000000","length":8192,"expect":{"unmapped":"0x2000"}}', // 11
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)).toEqual(at.get(9));
  });

  it('bad ranges: EINVAL (length 0), EOVERFLOW (wraps), ERANGE (the page-rounded length wraps), ENOENT (unmapped IOVA or no IOAS), EEXIST (name taken)', () => {
    const { r, at } = run([
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":0,"expect":"EINVAL"}', // 10
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0xfffffffffffff000","length":8192,"expect":"EOVERFLOW"}', // 11
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":0,"length":"0xffffffffffffffff","expect":"ERANGE"}', // 12
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x3000000","length":4096,"expect":"ENOENT"}', // 13
      // Pieces of two areas whose pages are not contiguous in the IOVA (0x1003000 is mapped, 0x1004000 not).
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1003000","length":8192,"expect":"ENOENT"}', // 14
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":4096,"expect":"ok"}', // 15
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":4096,"expect":"EEXIST"}', // 16
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(14)).toEqual(at.get(9));
    expect(at.get(16)?.areas['0x1000000']).toEqual([1, 1]);
  });

  it('the selftest access commands on a queue: EBADF (a queue is no selftest access)', () => {
    const { r } = run([
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":4096,"expect":"ok"}',
      '{"op":"access_pin","access":"q","pid":1,"iova":"0x1000000","length":4096,"expect":"EBADF"}',
      '{"op":"access_unpin","access":"q","iova":"0x1000000","length":4096,"expect":"EBADF"}',
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
  });

  it('before v6.17 (no area-num-locks): ENOTTY, and the unmap that upstream refuses succeeds', () => {
    const body = [
      ...PROLOGUE,
      '{"op":"hw_queue_alloc","queue":"q","ioas":"A","iova":"0x1000000","length":4096}', // 10
      '{"op":"ioas_unmap","ioas":"A","iova":"0x1000000","length":8192}', // 11
    ];
    const last2 = (r: ReplayResult): (string | null)[] =>
      r.ops.filter((o) => o.line === 10 || o.line === 11).map((o) => o.errno);
    const old = run(body, 'v6.16');
    expect(last2(old.r)).toEqual(['ENOTTY', null]);
    const up = run(body, 'upstream');
    expect(last2(up.r)).toEqual([null, 'EBUSY']);
    expect(found(old.r)).toEqual([]);
    expect(found(up.r)).toEqual([]);
  });
});

describe('replays/hw-queue-locked-area.jsonl', () => {
  const path = join(import.meta.dirname, '../../../replays/hw-queue-locked-area.jsonl');
  const text = readFileSync(path, 'utf8');

  it('is clean on upstream: every expectation met (EBUSY, EINVAL of the split, EFAULT, EBADF), no finding', () => {
    const r = replay(parseTraceText(text, path), resolveVariant('upstream'));
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(r.ops.filter((o) => o.errno !== null).map((o) => `${o.line} ${o.errno}`)).toEqual([
      '25 EBUSY',
      '26 EBUSY',
      '27 EINVAL',
      '31 EFAULT',
      '33 ENOENT',
      '38 EBADF',
    ]);
  });
});
