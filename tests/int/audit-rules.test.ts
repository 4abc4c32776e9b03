// SPDX-License-Identifier: GPL-2.0-only
/**
 * The reconciliation rules on hand-written event logs: breaches that no variant of the model produces
 * (a USER charge on MM-accounted pages, an unpin that npinned never hears of, books edited behind the
 * reducers' back), each found at its exact op with the events that made it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event } from '../../src/events/events.js';
import { encodeJson } from '../../src/lib/codec.js';
import { reconcile } from '../../src/audit/reconcile.js';
import { auditAll } from '../../src/audit/summary.js';
import { tempStore, type TempStore } from '../fixtures/audit/record.js';

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.close();
});

type Op = { name: string; events: Event[] };

const PFN = 0x40000;

/** Writes ops (index 0.. in order, trace line = index + 1) and finishes the run. */
async function writeRun(ops: Op[]): Promise<number> {
  const writer = await t.store.beginRun({
    tracePath: 'synthetic.jsonl',
    traceSha256: '0'.repeat(64),
    traceText: '',
    variant: 'upstream',
    flags: [],
    faultPlan: null,
    header: {},
  });
  let seq = 0;
  ops.forEach((op, index) => {
    const firstSeq = seq + 1;
    for (const event of op.events)
      writer.append({ seq: ++seq, op: index, type: event.type, v: 1, payload: encodeJson(event) });
    writer.endOp({
      index,
      line: index + 1,
      op: op.name,
      errno: null,
      result: '{}',
      firstSeq,
      lastSeq: seq,
      digest: '0'.repeat(16),
    });
  });
  await writer.finish('complete', { finalDigest: '0'.repeat(16) });
  return writer.run;
}

/** One process (mm 1, uid 1000), four frames, and iopt_pages 2 in `mode` accounting. */
function setup(mode: 'none' | 'user' | 'mm'): Op[] {
  return [
    {
      name: 'setup',
      events: [
        {
          type: 'RunConfigured',
          v: 1,
          pageSize: 4096,
          testBuild: true,
          tempMemoryLimit: 65536,
          gupZeroOnOverflow: true,
          variant: 'upstream',
          fixes: [],
        },
      ],
    },
    {
      name: 'process',
      events: [{ type: 'ProcessCreated', v: 1, pid: '1', mm: 1, uid: 1000, memlock: null, capIpcLock: false }],
    },
    {
      name: 'ioas_map',
      events: [
        { type: 'FramesAllocated', v: 1, pfn: PFN, count: 4, huge: '4K' },
        {
          type: 'PagesAllocated',
          v: 1,
          pages: 2,
          uptr: 0x7f0000000000n,
          npages: 4,
          writable: true,
          accountMode: mode,
          sourcePid: '1',
          sourceMm: 1,
          sourceUid: 1000,
          fn: 'iopt_alloc_pages',
        },
      ],
    },
  ];
}

/** Pin the four pages for an access and charge `counter` (and pinned_vm) for them. */
function pin(counter: 'user.locked_vm' | 'mm.locked_vm' | null): Op {
  return {
    name: 'access_pin',
    events: [
      { type: 'PagesPinned', v: 1, pfn: PFN, count: 4, fn: 'pin_user_pages_fast', mm: 1 },
      { type: 'NpinnedChanged', v: 1, pages: 2, delta: 4, fn: 'pfn_reader_user_pin' },
      { type: 'ItreeInserted', v: 1, tree: { kind: 'access', pages: 2 }, node: 9, start: 0, last: 3, owner: null },
      ...(counter === null
        ? []
        : [
            {
              type: 'AccountingCharged' as const,
              v: 1 as const,
              counter,
              owner: counter === 'user.locked_vm' ? 1000 : 1,
              pages: 2,
              delta: 4,
              fn: 'incr_user_locked_vm',
            },
          ]),
      { type: 'LastNpinnedSet', v: 1, pages: 2, value: 4, fn: 'do_update_pinned' },
      {
        type: 'AccountingCharged',
        v: 1,
        counter: 'mm.pinned_vm',
        owner: 1,
        pages: 2,
        delta: 4,
        fn: 'do_update_pinned',
      },
    ],
  };
}

const brokenRules = (rules: { rule: string; ok: boolean; op: number | null; line: number | null }[]) =>
  rules.filter((r) => !r.ok).map((r) => [r.rule, r.op, r.line]);

describe('reconcile: counters-move-together', () => {
  it('breaks where MM-accounted pages charge user.locked_vm instead of mm.locked_vm', async () => {
    const run = await writeRun([...setup('mm'), pin('user.locked_vm')]);
    const r = await reconcile(t.store, run);
    expect(brokenRules(r.rules)).toEqual([['counters-move-together', 3, 4]]);
    const rule = r.rules.find((x) => x.rule === 'counters-move-together');
    expect(rule?.detail).toBe('iopt_pages 2 (MM accounting): user.locked_vm charged 4, mm.locked_vm 0, mm.pinned_vm 4');
    expect(rule?.accounts).toEqual(['user.locked_vm:1000', 'mm.locked_vm:1', 'mm.pinned_vm:1']);
    expect(rule?.events.map((e) => [e.seq, e.type, e.text])).toEqual([
      [8, 'AccountingCharged', 'user.locked_vm[1000] +4 -> 4 for iopt_pages 2'],
      [10, 'AccountingCharged', 'mm.pinned_vm[1] +4 -> 4 for iopt_pages 2'],
    ]);
    // No teardown op: the zero rule is not checked, and says why.
    expect(r.rules.find((x) => x.rule === 'zero-after-teardown')?.skipped).toBe(
      'the run has no teardown op (incomplete)',
    );
  });

  it('holds for each mode charging what it should', async () => {
    for (const [mode, counter] of [
      ['mm', 'mm.locked_vm'],
      ['user', 'user.locked_vm'],
      ['none', null],
    ] as const) {
      const run = await writeRun([...setup(mode), pin(counter)]);
      expect([mode, brokenRules((await reconcile(t.store, run)).rules)]).toEqual([mode, []]);
    }
  });
});

describe('reconcile: npinned-equals-pins and zero-after-teardown', () => {
  it('breaks where a page is unpinned without npinned moving, and leaves the rest at teardown', async () => {
    const run = await writeRun([
      ...setup('user'),
      pin('user.locked_vm'),
      {
        name: 'access_unpin',
        events: [{ type: 'PagesUnpinned', v: 1, pfn: PFN + 3, count: 1, dirty: false, fn: 'batch_unpin' }],
      },
      { name: 'teardown', events: [] },
    ]);
    const r = await reconcile(t.store, run);
    expect(brokenRules(r.rules)).toEqual([
      ['npinned-equals-pins', 4, 5],
      ['zero-after-teardown', 5, 6],
    ]);
    const pins = r.rules.find((x) => x.rule === 'npinned-equals-pins');
    expect(pins?.detail).toBe('the iopt_pages hold npinned 4 in all, but 3 pins are held on physical pages');
    expect(pins?.events.map((e) => [e.seq, e.text])).toEqual([[11, 'pins -1 -> 3 (pfn 0x40003)']]);
    expect(r.rules.find((x) => x.rule === 'zero-after-teardown')?.detail).toBe(
      'left after teardown: last_npinned:2 = 4, mm.pinned_vm:1 = 4, npinned:2 = 4, pins:- = 3, user.locked_vm:1000 = 4',
    );
  });

  it('breaks where npinned counts pins no access or filled area covers', async () => {
    const run = await writeRun([
      ...setup('user'),
      pin('user.locked_vm'),
      {
        name: 'access_unpin',
        events: [{ type: 'ItreeRemoved', v: 1, tree: { kind: 'access', pages: 2 }, node: 9, start: 0, last: 3 }],
      },
    ]);
    const r = await reconcile(t.store, run);
    expect(brokenRules(r.rules)).toEqual([['npinned-equals-pins', 4, 5]]);
    expect(r.rules.find((x) => x.rule === 'npinned-equals-pins')?.detail).toBe(
      'iopt_pages 2 has npinned 4 but its accesses and filled areas cover 0 indexes',
    );
  });
});

describe('reconcile: charged-equals-pinned', () => {
  it('breaks where last_npinned is left behind npinned at rest', async () => {
    const run = await writeRun([
      ...setup('user'),
      pin('user.locked_vm'),
      {
        name: 'access_pin',
        events: [
          { type: 'PagesPinned', v: 1, pfn: PFN, count: 1, fn: 'pin_user_pages_fast', mm: 1 },
          { type: 'NpinnedChanged', v: 1, pages: 2, delta: 1, fn: 'pfn_reader_user_pin' },
          { type: 'PagesAccessAllocated', v: 1, node: 10, pages: 2, index: 0, last: 0 },
        ],
      },
    ]);
    const r = await reconcile(t.store, run);
    expect(brokenRules(r.rules).find(([rule]) => rule === 'charged-equals-pinned')).toEqual([
      'charged-equals-pinned',
      4,
      5,
    ]);
    expect(r.rules.find((x) => x.rule === 'charged-equals-pinned')?.detail).toBe(
      'iopt_pages 2: npinned 5, last_npinned 4, mm.pinned_vm charged 4',
    );
  });
});

describe('auditAll', () => {
  it('sums each counter over its owners and lists the broken rules of each run', async () => {
    await writeRun([...setup('mm'), pin('mm.locked_vm')]);
    await writeRun([...setup('mm'), pin('user.locked_vm')]);
    const rows = await auditAll(t.store);
    expect(rows.map((r) => [r.run, r.ok, r.final, r.broken])).toEqual([
      [
        1,
        true,
        { 'user.locked_vm': 0, 'mm.locked_vm': 4, 'mm.pinned_vm': 4, npinned: 4, last_npinned: 4, pins: 4 },
        [],
      ],
      [
        2,
        false,
        { 'user.locked_vm': 4, 'mm.locked_vm': 0, 'mm.pinned_vm': 4, npinned: 4, last_npinned: 4, pins: 4 },
        [{ rule: 'counters-move-together', op: 3, line: 4 }],
      ],
    ]);
  });
});
