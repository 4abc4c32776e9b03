// SPDX-License-Identifier: GPL-2.0-only
// The finding docs/findings/mm-mode-stale-last-npinned.md: its two traces on every variant, the hang they end
// in, the proposed fix, and afb47765f923 (VFIO_IOMMU_UNMAP_DMA of an empty range).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveVariant } from '../../src/kernel/variants.js';
import { parseTraceFile, parseTraceText } from '../../src/replay/parse.js';
import type { ParsedTrace } from '../../src/replay/parse.js';
import { replay } from '../../src/replay/replayer.js';
import type { ReplayResult } from '../../src/replay/replayer.js';
import { MemorySink } from '../../src/state/emit.js';
import type { State } from '../../src/state/state.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/findings');
const STALE = join(FIXTURES, 'mm-mode-stale-last-npinned.jsonl');
const HANG = join(FIXTURES, 'mm-mode-unlock-not-held-hang.jsonl');
const RW_SLOW = join(FIXTURES, 'mm-mode-rw-slow-warn.jsonl');
const FIX = 'mm-mode-uncharge-dead-mm';

interface PerOp {
  errno: string | null;
  npinned: number;
  lastNpinned: number;
  mmLocked: number;
  pinned: number;
}

/** Replays and records, after every op, the one iopt_pages' pin counts and mm 2's counters. */
function run(
  trace: ParsedTrace,
  variant: string,
  add: string[] = [],
  sink?: MemorySink,
): { r: ReplayResult; perOp: PerOp[] } {
  const { fixes } = resolveVariant(variant, add);
  const perOp: PerOp[] = [];
  const r = replay(trace, {
    variant,
    fixes,
    ...(sink ? { sink } : {}),
    onOp: (rec, s: State) => {
      const pages = Object.values(s.pages)[0];
      const mm = s.mms[2];
      perOp.push({
        errno: rec.errno,
        npinned: pages?.npinned ?? -1,
        lastNpinned: pages?.lastNpinned ?? -1,
        mmLocked: mm?.lockedVm ?? -1,
        pinned: mm?.pinnedVm ?? -1,
      });
    },
  });
  return { r, perOp };
}

const findings = (r: ReplayResult) => [...r.violations, ...r.warns].map((f) => `${f.kind} ${f.fn} line ${f.line}`);

describe('stale last_npinned after the mapping process exits (MM mode)', () => {
  it('upstream: the uncharge at the detach fails, the next fill WARNs in pfn_reader_destroy', async () => {
    const { r, perOp } = run(await parseTraceFile(STALE), 'upstream');
    expect(findings(r)).toEqual(['warn pfn_reader_destroy line 17']);
    expect(r.mismatches).toEqual([]);
    expect(r.hung).toBeNull();
    // op 7 map: 1 pin charged to mm 2; op 9 detach: unpinned, but last_npinned and both counters stay.
    expect(perOp[7]).toEqual({ errno: null, npinned: 1, lastNpinned: 1, mmLocked: 1, pinned: 1 });
    expect(perOp[9]).toEqual({ errno: null, npinned: 0, lastNpinned: 1, mmLocked: 1, pinned: 1 });
    expect(perOp[10]).toEqual({ errno: 'EFAULT', npinned: 0, lastNpinned: 1, mmLocked: 1, pinned: 1 });
  });

  it('upstream + the proposed fix: the uncharge goes through, the same fill fails without a WARN', async () => {
    const { r, perOp } = run(await parseTraceFile(STALE), 'upstream', [FIX]);
    expect(findings(r)).toEqual([]);
    expect(r.mismatches).toEqual([]);
    expect(perOp[9]).toEqual({ errno: null, npinned: 0, lastNpinned: 0, mmLocked: 0, pinned: 0 });
    expect(perOp[10]).toEqual({ errno: 'EFAULT', npinned: 0, lastNpinned: 0, mmLocked: 0, pinned: 0 });
  });

  it('the rw_slow consequence: access_rw falls back to rw_slow, fails EFAULT, and the destroy WARNs', async () => {
    const trace = await parseTraceFile(RW_SLOW);
    const broken = run(trace, 'upstream');
    expect(findings(broken.r)).toEqual(['warn pfn_reader_destroy line 15']);
    expect(broken.r.mismatches).toEqual([]);
    expect(broken.perOp[11]).toEqual({ errno: 'EFAULT', npinned: 0, lastNpinned: 1, mmLocked: 1, pinned: 1 });
    const fixed = run(trace, 'upstream', [FIX]);
    expect(findings(fixed.r)).toEqual([]);
    expect(fixed.r.mismatches).toEqual([]);
    expect(fixed.perOp[11]).toEqual({ errno: 'EFAULT', npinned: 0, lastNpinned: 0, mmLocked: 0, pinned: 0 });
  });

  it('the WARN is there on v3 and merged too (the path predates the merge)', async () => {
    const trace = await parseTraceFile(STALE);
    for (const variant of ['v3', 'merged']) {
      expect(findings(run(trace, variant).r)).toContain('warn pfn_reader_destroy line 17');
    }
  });
});

describe('locked == -1: update_mm_locked_vm unlocks an mmap lock nobody holds, then hangs', () => {
  for (const variant of ['v3', 'merged', 'upstream']) {
    it(`${variant}: op 12 ends hung in mmap_write_lock of mm 2; nothing runs after it`, async () => {
      const sink = new MemorySink();
      const { r, perOp } = run(await parseTraceFile(HANG), variant, [], sink);
      expect(findings(r)).toEqual([
        'unlock_not_held update_mm_locked_vm line 20',
        'task_hung update_mm_locked_vm line 20',
      ]);
      expect(r.hung).toEqual({
        op: 12,
        line: 20,
        task: 'kthread',
        lock: 'mmap_lock',
        mm: 2,
        mode: 'write',
        fn: 'update_mm_locked_vm',
        readers: -1,
        writer: null,
      });
      // Ops 0..12: no op after the hung one and no teardown.
      expect(r.ops.map((o) => o.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(r.ops[12]?.errno).toBe('HUNG');
      // op 11 left the stale pair: 2 pins held by the access, 8 still charged.
      expect(perOp[11]).toMatchObject({ npinned: 2, lastNpinned: 8, mmLocked: 8, pinned: 8 });
      const tail = sink.events.filter((_, i) => sink.ops[i] === 12);
      const fromUnlock = tail.slice(tail.findIndex((e) => e.type === 'ViolationDetected'));
      expect(fromUnlock).toEqual([
        {
          type: 'ViolationDetected',
          v: 1,
          kind: 'unlock_not_held',
          fn: 'update_mm_locked_vm',
          detail: 'mmap_read_unlock of mm 2 by a reader that never took the lock (locked == -1)',
          objects: { pages: 3, mm: 2 },
        },
        {
          type: 'OpHung',
          v: 1,
          op: 12,
          task: 'kthread',
          lock: 'mmap_lock',
          mm: 2,
          mode: 'write',
          fn: 'update_mm_locked_vm',
          readers: -1,
          writer: null,
        },
        {
          type: 'ViolationDetected',
          v: 1,
          kind: 'task_hung',
          fn: 'update_mm_locked_vm',
          detail: 'task kthread hung in update_mm_locked_vm: mmap_write_lock of mm 2 (rwsem readers -1, writer none)',
          objects: { task: 'kthread', mm: 2, lock: 'mmap_lock', mode: 'write', readers: -1 },
        },
        { type: 'OpFinished', v: 1, op: 12, errno: 'HUNG', result: {} },
      ]);
      // Nothing was uncharged and no MmPut ran in the hung op.
      expect(tail.some((e) => e.type === 'AccountingUncharged' || e.type === 'MmPut')).toBe(false);
    });
  }

  it('upstream + the proposed fix: clean, and the charges return to zero', async () => {
    const { r, perOp } = run(await parseTraceFile(HANG), 'upstream', [FIX]);
    expect(findings(r)).toEqual([]);
    expect(r.hung).toBeNull();
    expect(r.ops).toHaveLength(14);
    expect(perOp[11]).toMatchObject({ npinned: 2, lastNpinned: 2, mmLocked: 2, pinned: 2 });
    expect(perOp[12]).toMatchObject({ errno: null, npinned: 2, lastNpinned: 2, mmLocked: 2, pinned: 2 });
    expect(perOp[13]).toMatchObject({ npinned: -1, mmLocked: 0, pinned: 0 });
  });
});

describe('afb47765f923: VFIO_IOMMU_UNMAP_DMA of an empty range succeeds with size 0', () => {
  const TEXT = [
    '{"format":"ioptrace-trace","version":1}',
    '{"op":"process","pid":1,"memlock":"unlimited"}',
    '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":65536}',
    '{"op":"open","ctx":"V","pid":1,"account":"mm","vfio_type1":false}',
    '{"op":"ioas_alloc","ioas":"V.ioas","ctx":"V"}',
    '{"op":"domain_attach","domain":"D1","ioas":"V.ioas","kind":"mock"}',
    '{"op":"ioas_map","ioas":"V.ioas","pid":1,"uptr":"0x7f0000000000","length":65536,"iova":"0x1000000"}',
    '{"op":"vfio_unmap","ioas":"V.ioas","iova":"0x1000000","length":65536}',
    '{"op":"vfio_unmap","ioas":"V.ioas","iova":"0x1000000","length":65536}',
    '{"op":"ioas_unmap","ioas":"V.ioas","iova":"0x1000000","length":65536}',
    '{"op":"ioas_unmap","ioas":"V.ioas","all":true}',
  ].join('\n');
  const results = (r: ReplayResult) => r.ops.slice(7, 11).map((o) => [o.errno, o.outputs['unmapped'] ?? null]);

  it('upstream: the second unmap returns 0 with size 0; IOAS_UNMAP of the empty range is still ENOENT', () => {
    const r = replay(parseTraceText(TEXT, 't'), { variant: 'upstream', fixes: resolveVariant('upstream').fixes });
    expect(resolveVariant('upstream').fixes).toContain('vfio-unmap-empty-success');
    expect(results(r)).toEqual([
      [null, 65536n],
      [null, 0n],
      ['ENOENT', null],
      [null, 0n],
    ]);
    expect(findings(r)).toEqual([]);
  });

  it('upstream without the flag (6.17): the empty VFIO unmap is ENOENT', () => {
    const { fixes } = resolveVariant('upstream', [], ['vfio-unmap-empty-success']);
    const r = replay(parseTraceText(TEXT, 't'), { variant: 'upstream', fixes });
    expect(results(r)).toEqual([
      [null, 65536n],
      ['ENOENT', 0n],
      ['ENOENT', null],
      [null, 0n],
    ]);
  });

  it('v3 + the flag: unmap-all of an empty IOAS succeeds too (v3 alone: ENOENT)', () => {
    const withFlag = replay(parseTraceText(TEXT, 't'), {
      variant: 'v3',
      fixes: resolveVariant('v3', ['vfio-unmap-empty-success']).fixes,
    });
    const without = replay(parseTraceText(TEXT, 't'), { variant: 'v3', fixes: [] });
    expect(withFlag.ops[10]?.errno).toBeNull();
    expect(without.ops[10]?.errno).toBe('ENOENT');
  });
});
