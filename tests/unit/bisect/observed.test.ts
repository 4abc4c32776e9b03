// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { compareObserved, replayObserved } from '../../../src/bisect/observed.js';
import type { Event } from '../../../src/events/events.js';
import { parseTraceText } from '../../../src/replay/parse.js';
import type { OpRecord } from '../../../src/replay/replayer.js';
import { FIXTURES, trace, variant } from '../../support/bisect-traces.js';

const RECORDED = `${FIXTURES}/recorded-access-pin.jsonl`;

describe('replayObserved', () => {
  it('on v3, the first op that differs from the recording is the pin of line 16: the kernel pinned 0x493e1..0x493e2', () => {
    const { report } = replayObserved(trace(RECORDED), variant('v3'));
    expect(report.opsObserved).toBe(7);
    expect(report.observations).toBe(11);
    expect(report.first).toEqual({
      op: 7,
      line: 16,
      name: 'access_pin',
      kind: 'pin',
      observed: ['pfn 0x493e1..0x493e2 x1'],
      model: [],
    });
    expect(report.divergences.map((d) => [d.line, d.kind])).toEqual([
      [16, 'pin'],
      [16, 'result'],
      [19, 'pin'],
      [23, 'result'],
    ]);
    expect(report.divergences[1]?.observed).toEqual(['errno ok', 'pfns [0x493e1 +2]']);
    expect(report.divergences[1]?.model).toEqual(['errno EFAULT', 'pfns (none)']);
  });

  it('on merged and upstream, the model matches every observation (map, unmap, pins, unpins, results)', () => {
    expect(replayObserved(trace(RECORDED), variant('merged')).report.divergences).toEqual([]);
    expect(replayObserved(trace(RECORDED), variant('upstream')).report.first).toBeNull();
  });

  it('on upstream, tests/fixtures/traces/observed.jsonl differs at the detach of line 18: a WARN the fixed code lacks', () => {
    const { report } = replayObserved(trace('tests/fixtures/traces/observed.jsonl'), variant('upstream'));
    expect(report.first).toEqual({
      op: 9,
      line: 18,
      name: 'domain_detach',
      kind: 'warn',
      observed: ['WARN in iopt_area_unfill_domain'],
      model: [],
    });
    expect(report.divergences).toHaveLength(1);
  });
});

describe('compareObserved', () => {
  const text = [
    '{"op":"process","pid":1}',
    '{"op":"open","ctx":1,"pid":1}',
    '{"op":"ioas_alloc","ioas":"A"}',
    '{"op":"domain_attach","domain":"D","ioas":"A"}',
    '{"observed":"pin","pfn":5,"count":2}',
    '{"observed":"iommu_map","domain":"D","iova":"0x1000","paddr":"0x5000","size":"0x2000"}',
    '{"observed":"iommu_unmap","domain":"D","iova":"0x1000","size":"0x2000","unmapped":"0x1000"}',
    '{"observed":"warn","site":"__batch_clear_carry"}',
  ].join('\n');
  // A hand-made model side: a record per op (setup, 4 ops, teardown), the events of the domain_attach (op 4).
  const ops = [0, 1, 2, 3, 4, 5].map((index) => ({ index, op: 'x', errno: null, outputs: {} }) as unknown as OpRecord);
  const ev = (events: Event[]) => (op: number) => (op === 4 ? events : []);
  const base: Event[] = [
    { type: 'PagesPinned', v: 1, pfn: 6, count: 1, fn: 'gup', mm: 1 },
    { type: 'PagesPinned', v: 1, pfn: 5, count: 1, fn: 'gup', mm: 1 },
    {
      type: 'IommuMapped',
      v: 1,
      domain: 'D',
      extent: 1,
      iova: 0x1000n,
      paddr: 0x5000n,
      size: 0x1000n,
      read: true,
      write: true,
      fn: 'm',
    },
    {
      type: 'IommuMapped',
      v: 1,
      domain: 'D',
      extent: 2,
      iova: 0x2000n,
      paddr: 0x6000n,
      size: 0x1000n,
      read: true,
      write: true,
      fn: 'm',
    },
    { type: 'IommuUnmapped', v: 1, domain: 'D', iova: 0x1000n, size: 0x2000n, unmapped: 0x1000n, removed: [], fn: 'u' },
    { type: 'Warned', v: 1, fn: 'batch_clear_carry', condition: 'c', objects: {} },
  ];

  it('agrees when pins and maps are split differently and the WARN site differs only in leading underscores', () => {
    const report = compareObserved(parseTraceText(text), { ops }, ev(base));
    expect(report.divergences).toEqual([]);
  });

  it('keeps a short unmap as its own call and compares PFNs with their multiplicity', () => {
    const split: Event[] = [
      ...base.slice(0, 4),
      {
        type: 'IommuUnmapped',
        v: 1,
        domain: 'D',
        iova: 0x1000n,
        size: 0x1000n,
        unmapped: 0x1000n,
        removed: [],
        fn: 'u',
      },
      { type: 'IommuUnmapped', v: 1, domain: 'D', iova: 0x2000n, size: 0x1000n, unmapped: 0n, removed: [], fn: 'u' },
      { type: 'PagesPinned', v: 1, pfn: 5, count: 1, fn: 'gup', mm: 1 },
      base[5] as Event,
    ];
    const report = compareObserved(parseTraceText(text), { ops }, ev(split));
    expect(report.divergences.map((d) => [d.kind, d.observed, d.model])).toEqual([
      [
        'iommu_unmap',
        ['D iova 0x1000 size 0x2000 unmapped 0x1000'],
        ['D iova 0x1000 size 0x1000 unmapped 0x1000', 'D iova 0x2000 size 0x1000 unmapped 0x0'],
      ],
      ['pin', ['pfn 0x5..0x6 x1'], ['pfn 0x5 x2', 'pfn 0x6 x1']],
    ]);
  });
});
