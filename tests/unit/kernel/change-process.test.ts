// SPDX-License-Identifier: GPL-2.0-only
/**
 * IOMMU_IOAS_CHANGE_PROCESS (flag ioas-change-process, 829ed626499c, v6.13): the source task, mm and user of
 * file-backed pages move to the caller, and the charges move exactly, in USER and in MM accounting; a pages
 * reached through two areas moves once; a user-VA area refuses the ioctl; a failed charge leaves everything
 * as it was; and in MM mode with the old process gone, the old uncharge fails: the ioctl WARNs and returns
 * -EINVAL, the new process is charged, last_npinned is left at 0 (and with the proposed
 * mm-mode-uncharge-dead-mm the uncharge works and the run is clean).
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
  /** Per iopt_pages: [npinned, last_npinned, source pid, source uid]. */
  pages: [number, number, string, number][];
  /** Per process: [mm_users, mm_count, locked_vm, pinned_vm] of its mm. */
  mms: Record<string, [number, number, number, number]>;
  /** user.locked_vm per uid. */
  users: Record<number, number>;
}

function books(s: State): Books {
  const mms: Books['mms'] = {};
  for (const p of Object.values(s.processes)) {
    const m = s.mms[p.mm];
    if (m !== undefined) mms[p.pid] = [m.users, m.count, m.lockedVm, m.pinnedVm];
  }
  const users: Books['users'] = {};
  for (const u of Object.values(s.users)) users[u.uid] = u.lockedVm;
  return {
    pages: Object.values(s.pages).map((p) => [p.npinned, p.lastNpinned, p.sourcePid, p.sourceUid]),
    mms,
    users,
  };
}

function run(body: string[], variant = 'upstream', add: string[] = []): { r: ReplayResult; at: Map<number, Books> } {
  const at = new Map<number, Books>();
  const trace = parseTraceText([HEADER, ...body].join('\n'), 'change-process');
  const r = replay(trace, { ...resolveVariant(variant, add), onOp: (rec, s) => at.set(rec.line, books(s)) });
  return { r, at };
}

const found = (r: ReplayResult): string[] => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn}`);

/** Process 1 (uid 1000) maps 8 pages of a memfd; process 2 (uid 1001) is the new VMM. Lines 2..9. */
function prologue(account: 'user' | 'mm', memlock2: string | number = '"unlimited"'): string[] {
  return [
    '{"op":"process","pid":1,"memlock":"unlimited"}',
    `{"op":"process","pid":2,"uid":1001,"memlock":${memlock2}}`,
    '{"op":"memfd","pid":1,"file":"mfd","length":32768,"expect":"ok"}',
    `{"op":"open","ctx":"c","pid":1,"account":"${account}"}`,
    '{"op":"ioas_alloc","ioas":"A"}',
    '{"op":"domain_attach","domain":"D","ioas":"A"}',
    '{"op":"map_file","ioas":"A","pid":1,"file":"mfd","start":0,"length":32768,"iova":"0x1000000","expect":"ok"}', // 8
  ];
}

describe('change_process moves the charges exactly', () => {
  it('USER accounting: user 1000 -> 1001 and mm of process 1 -> mm of process 2, 8 pages each', () => {
    const { r, at } = run([
      ...prologue('user'),
      '{"op":"change_process","pid":2,"expect":"ok"}', // 9
      '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x8000"}}', // 10
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(8)).toEqual({
      pages: [[8, 8, '1', 1000]],
      mms: { '1': [1, 2, 0, 8], '2': [1, 1, 0, 0] },
      users: { 1000: 8, 1001: 0 },
    });
    // change_mm: mmgrab of the new mm, mmdrop of the old one.
    expect(at.get(9)).toEqual({
      pages: [[8, 8, '2', 1001]],
      mms: { '1': [1, 1, 0, 0], '2': [1, 2, 0, 8] },
      users: { 1000: 0, 1001: 8 },
    });
    // The unmap uncharges the new source.
    expect(at.get(10)).toEqual({
      pages: [],
      mms: { '1': [1, 1, 0, 0], '2': [1, 1, 0, 0] },
      users: { 1000: 0, 1001: 0 },
    });
  });

  it('MM accounting: locked_vm and pinned_vm of mm 1 -> mm 2, 8 pages each', () => {
    const { r, at } = run([
      ...prologue('mm'),
      '{"op":"change_process","pid":2,"expect":"ok"}', // 9
      '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x8000"}}', // 10
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(8)?.mms).toEqual({ '1': [1, 2, 8, 8], '2': [1, 1, 0, 0] });
    expect(at.get(9)).toEqual({
      pages: [[8, 8, '2', 1001]],
      mms: { '1': [1, 1, 0, 0], '2': [1, 2, 8, 8] },
      users: { 1000: 0, 1001: 0 },
    });
    expect(at.get(10)?.mms).toEqual({ '1': [1, 1, 0, 0], '2': [1, 1, 0, 0] });
  });

  it('a pages reached through two areas (IOAS_COPY) is counted and moved once', () => {
    const { r, at } = run([
      ...prologue('mm'),
      '{"op":"ioas_copy","src":"A","dst":"A","src_iova":"0x1000000","length":32768,"dst_iova":"0x2000000","expect":"ok"}', // 9
      '{"op":"change_process","pid":2,"expect":"ok"}', // 10
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)).toEqual({
      pages: [[8, 8, '2', 1001]],
      // The second area's change_mm grabs and drops mm 2 (already the source): mm_count 2 stays.
      mms: { '1': [1, 1, 0, 0], '2': [1, 2, 8, 8] },
      users: { 1000: 0, 1001: 0 },
    });
  });

  it('the caller that already is the source: nothing to charge, the counters stay', () => {
    const { r, at } = run([...prologue('user'), '{"op":"change_process","pid":1,"expect":"ok"}']);
    expect(found(r)).toEqual([]);
    expect(at.get(9)).toEqual(at.get(8));
  });
});

describe('change_process refuses', () => {
  it('a context with a user-VA area: EINVAL before anything moves', () => {
    const { r, at } = run([
      ...prologue('user'),
      '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192}', // 9
      '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":8192,"iova":"0x3000000","expect":"ok"}', // 10
      '{"op":"change_process","pid":2,"expect":"EINVAL"}', // 11
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(11)).toEqual(at.get(10));
  });

  it('a charge over the new process RLIMIT_MEMLOCK: ENOMEM, last_npinned restored, nothing moved', () => {
    // 4 pages of RLIMIT_MEMLOCK for process 2: charging 8 fails in incr_user_locked_vm.
    const { r, at } = run([...prologue('user', 16384), '{"op":"change_process","pid":2,"expect":"ENOMEM"}']);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(9)).toEqual(at.get(8));
  });

  it('v6.13 has the ioctl (829ed626499c is in the 6.13 merge window pull); v6.12 answers ENOTTY', () => {
    const v613 = run([...prologue('user'), '{"op":"change_process","pid":2,"expect":"ok"}'], 'v6.13');
    expect(v613.r.mismatches).toEqual([]);
    expect(v613.at.get(9)?.pages).toEqual([[8, 8, '2', 1001]]);
    // A 6.12 kernel with MAP_FILE added by --fix still has no CHANGE_PROCESS: nothing moves.
    const v612 = run([...prologue('user'), '{"op":"change_process","pid":2,"expect":"ENOTTY"}'], 'v6.12', [
      'ioas-map-file',
    ]);
    expect(v612.r.mismatches).toEqual([]);
    expect(found(v612.r)).toEqual([]);
    expect(v612.at.get(9)).toEqual(v612.at.get(8));
  });
});

describe('MM accounting with the old process gone', () => {
  const body = [
    ...prologue('mm'),
    '{"op":"exit","pid":1}', // 9: the mapping holds the file and the mm struct (mmgrab), not the address space
    '{"op":"change_process","pid":2,"expect":"EINVAL"}', // 10
    '{"op":"ioas_unmap","ioas":"A","all":true,"expect":{"unmapped":"0x8000"}}', // 11
  ];

  it('on upstream: the old uncharge fails (mmget_not_zero), WARN_ON(r), EINVAL; the pages moved anyway', () => {
    const { r, at } = run(body);
    expect(r.mismatches).toEqual([]);
    expect(r.warns.map((w) => [w.fn, w.objects])).toEqual([['iommufd_ioas_change_process', { pages: 5, errno: -22 }]]);
    expect(at.get(9)).toEqual({
      pages: [[8, 8, '1', 1000]],
      mms: { '1': [0, 1, 8, 8], '2': [1, 1, 0, 0] },
      users: { 1000: 0, 1001: 0 },
    });
    // New mm charged 8, old mm keeps its 8 (freed: mm_count 0), last_npinned left at 0 with npinned 8.
    expect(at.get(10)).toEqual({
      pages: [[8, 0, '2', 1001]],
      mms: { '1': [0, 0, 8, 8], '2': [1, 2, 8, 8] },
      users: { 1000: 0, 1001: 0 },
    });
    // The unpin sees npinned == last_npinned (0 == 0) and uncharges nothing: mm 2 stays charged for good.
    expect(at.get(11)?.mms).toEqual({ '1': [0, 0, 8, 8], '2': [1, 1, 8, 8] });
    expect(r.violations.map((v) => v.detail)).toEqual([
      'iopt_pages 5: last_npinned is 0 but npinned is 8 (mm accounting)',
      'mm 2 (process 2): locked_vm is 8 pages but its pages charged 0',
      'mm 2 (process 2): pinned_vm is 8 pages but its pages charged 0',
      'mm 2 (process 2): locked_vm is 8 pages after everything was closed',
      'mm 2 (process 2): pinned_vm is 8 pages after everything was closed',
    ]);
  });

  it('with the proposed mm-mode-uncharge-dead-mm: the uncharge works, the ioctl succeeds, the run is clean', () => {
    const { r, at } = run(
      body.map((l) => l.replace('"expect":"EINVAL"', '"expect":"ok"')),
      'upstream',
      ['mm-mode-uncharge-dead-mm'],
    );
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)).toEqual({
      pages: [[8, 8, '2', 1001]],
      mms: { '1': [0, 0, 0, 0], '2': [1, 2, 8, 8] },
      users: { 1000: 0, 1001: 0 },
    });
    expect(at.get(11)?.mms).toEqual({ '1': [0, 0, 0, 0], '2': [1, 1, 0, 0] });
  });

  it('USER accounting needs no mm to uncharge: the same exit, then a clean move', () => {
    const { r, at } = run([
      ...prologue('user'),
      '{"op":"exit","pid":1}',
      '{"op":"change_process","pid":2,"expect":"ok"}',
    ]);
    expect(r.mismatches).toEqual([]);
    expect(found(r)).toEqual([]);
    expect(at.get(10)).toEqual({
      pages: [[8, 8, '2', 1001]],
      mms: { '1': [0, 0, 0, 0], '2': [1, 2, 0, 8] },
      users: { 1000: 0, 1001: 8 },
    });
  });
});

describe('the shipped traces', () => {
  const file = (name: string): string => readFileSync(join(import.meta.dirname, '../../../replays', name), 'utf8');
  const replayFile = (name: string, variant: string, add: string[] = []): ReplayResult =>
    replay(parseTraceText(file(name), name), resolveVariant(variant, add));

  it('change-process.jsonl: clean on upstream and v6.13; ENOTTY for both ioctls on v6.12.y', () => {
    for (const v of ['upstream', 'v6.13']) {
      const r = replayFile('change-process.jsonl', v);
      expect(r.mismatches).toEqual([]);
      expect(found(r)).toEqual([]);
    }
    const old = replayFile('change-process.jsonl', 'v6.12.y');
    expect(old.mismatches.filter((m) => m.actual === 'ENOTTY').map((m) => m.line)).toEqual([18, 22, 26, 29, 30]);
  });

  it('change-process-mm-gone.jsonl: the WARN and the stale books on upstream; clean but for the result with the fix', () => {
    const r = replayFile('change-process-mm-gone.jsonl', 'upstream');
    expect(r.mismatches).toEqual([]);
    expect(r.warns.map((w) => `${w.fn} line ${w.line}`)).toEqual(['iommufd_ioas_change_process line 21']);
    // The invariant checker after the ioctl, and the teardown's leftover charges of mm 2.
    expect(r.violations.map((v) => `${v.kind} ${v.fn}`)).toEqual([
      'accounting_mismatch invariants',
      'accounting_mismatch invariants',
      'accounting_mismatch invariants',
      'accounting_mismatch teardown',
      'accounting_mismatch teardown',
    ]);
    expect(r.violations[0]?.line).toBe(21);
    const fixed = replayFile('change-process-mm-gone.jsonl', 'upstream', ['mm-mode-uncharge-dead-mm']);
    expect(fixed.mismatches).toEqual([{ line: 21, op: 9, field: 'errno', expected: 'EINVAL', actual: 'ok' }]);
    expect(found(fixed)).toEqual([]);
  });
});
