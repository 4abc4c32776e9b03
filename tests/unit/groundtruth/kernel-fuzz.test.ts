// SPDX-License-Identifier: GPL-2.0-only
// The model side of fuzz --against-kernel: the generator's exportable subset exports every op, the
// disagreement categories, the candidates one shrink boot carries, and the kernel-defect label.
import { describe, expect, it } from 'vitest';
import type { TraceOp } from '../../../src/events/trace.js';
import { generateTrace } from '../../../src/fuzz/generate.js';
import { serializeTrace } from '../../../src/fuzz/write.js';
import { REASONS, exportOps } from '../../../src/groundtruth/export-c.js';
import { categoryStem, exportableTrace, isKernelDefectCandidate } from '../../../src/groundtruth/kernel-fuzz.js';
import { disagreementKey, shrinkCandidates } from '../../../src/groundtruth/kernel-shrink.js';
import type { Disagreement } from '../../../src/groundtruth/kernel-run.js';
import { parseTraceText } from '../../../src/replay/parse.js';

describe('export of a copy between contexts', () => {
  it('is not exportable: IOMMU_IOAS_COPY looks both IOAS ids up in the one iommufd it is issued on', () => {
    const trace = parseTraceText(
      [
        '{"format":"ioptrace-trace","version":1}',
        '{"op":"process","pid":1}',
        '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":4096}',
        '{"op":"open","ctx":"c1","pid":1}',
        '{"op":"ioas_alloc","ioas":"A","ctx":"c1"}',
        '{"op":"ioas_alloc","ioas":"B","ctx":"c1"}',
        '{"op":"open","ctx":"c2","pid":1}',
        '{"op":"ioas_alloc","ioas":"C","ctx":"c2"}',
        '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":4096,"iova":"0x1000000"}',
        '{"op":"ioas_copy","src":"A","dst":"B","src_iova":"0x1000000","length":4096,"dst_iova":"0x1000000"}',
        '{"op":"ioas_copy","src":"A","dst":"C","src_iova":"0x1000000","length":4096,"dst_iova":"0x1000000"}',
      ].join('\n'),
      't',
    );
    expect(exportOps(trace).notExportable).toEqual([{ op: 10, line: 11, name: 'ioas_copy', reason: REASONS.crossCtx }]);
  });
});

describe('the exportable generator', () => {
  it('gives 120 traces in a row that export completely (no op user space cannot perform)', () => {
    const skipped: string[] = [];
    for (let seed = 1; seed <= 120; seed++) {
      const { parsed } = exportableTrace(seed, 40);
      for (const n of exportOps(parsed).notExportable) skipped.push(`seed ${seed} op ${n.op}: ${n.reason}`);
    }
    expect(skipped).toEqual([]);
  });

  it('still pins, reads and writes through accesses and uses huge pages, and arms no fault (fail-nth counts every kernel fault point)', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 120; seed++) {
      for (const op of exportableTrace(seed, 40).ops) {
        seen.add(op.op);
        if (op.op === 'mmap' && op.huge === '2M') seen.add('mmap 2M');
      }
    }
    for (const want of ['access_pin', 'access_unpin', 'access_rw', 'exit', 'vfio_unmap', 'mmap 2M'])
      expect(seen.has(want), want).toBe(true);
    expect(seen.has('fault')).toBe(false);
  });

  it('leaves the default traces as they were (the exportable flag changes only its own draws)', () => {
    const plain = serializeTrace(generateTrace({ seed: 5, maxOps: 40 }));
    expect(serializeTrace(generateTrace({ seed: 5, maxOps: 40, exportable: false }))).toBe(plain);
    expect(serializeTrace(generateTrace({ seed: 5, maxOps: 40, exportable: true }))).not.toBe(plain);
  });
});

const d = (over: Partial<Disagreement>): Disagreement => ({
  op: 3,
  line: 4,
  name: 'ioas_map',
  kind: 'errno',
  kernel: 'ENOMEM',
  model: 'ok',
  ...over,
});

describe('disagreement categories', () => {
  it('keep both answers of errnos and WARNs, but not of values that change with every shrink', () => {
    expect(disagreementKey(d({}))).toBe('errno ioas_map: kernel ENOMEM, model ok');
    expect(disagreementKey(d({ kind: 'warn', name: 'exit', kernel: 'pfn_reader_destroy', model: 'none' }))).toBe(
      'warn exit: kernel pfn_reader_destroy, model none',
    );
    expect(disagreementKey(d({ kind: 'value', kernel: 'iova 0x1000000', model: 'iova 0x2000000' }))).toBe(
      'value ioas_map',
    );
    expect(categoryStem({ kind: 'warn', op: 'teardown', seed: 12 })).toBe('warn-teardown-seed12');
  });

  it('label a kernel WARN on a trace the upstream model replays clean a kernel defect candidate', () => {
    const { parsed } = exportableTrace(3, 12);
    expect(isKernelDefectCandidate(d({ kind: 'warn', kernel: 'pfn_reader_destroy', model: 'none' }), parsed)).toBe(
      true,
    );
    expect(isKernelDefectCandidate(d({ kind: 'warn', kernel: 'none', model: 'iopt_unmap_iova_range' }), parsed)).toBe(
      false,
    );
    expect(isKernelDefectCandidate(d({}), parsed)).toBe(false);
  });
});

describe('the candidates of one shrink boot', () => {
  const header = generateTrace({ seed: 1, maxOps: 1 }).header;
  const ops: TraceOp[] = parseTraceText(
    [
      '{"format":"ioptrace-trace","version":1}',
      '{"op":"process","pid":1}',
      '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192}',
      '{"op":"open","ctx":"c","pid":1}',
      '{"op":"ioas_alloc","ioas":"A","ctx":"c"}',
      '{"op":"ioas_map","ioas":"A","pid":1,"uptr":"0x7f0000000000","length":4096,"iova":"0x1000000"}',
      '{"op":"write","pid":1,"addr":"0x7f0000000000","data":"01"}',
    ].join('\n'),
  ).entries.map((e) => e.op);
  const shape = (c: TraceOp[]): string => c.map((o) => o.op).join(',');

  it('start with the trace itself, then the cut, then every complement down to single ops, closed over dependencies', () => {
    const cands = shrinkCandidates(header, ops, 5, 100).map(shape);
    expect(cands).toEqual([
      'process,mmap,open,ioas_alloc,ioas_map,write',
      // the cut after the op where the disagreement shows
      'process,mmap,open,ioas_alloc,ioas_map',
      // halves (dropping the process leaves nothing: no candidate), quarters, then single ops; repeats dropped
      'process,mmap,open',
      'process,mmap,write',
      'process,mmap,open,ioas_alloc',
      'process,open,ioas_alloc,ioas_map,write',
      'process,mmap,open,write',
      'process,mmap,open,ioas_alloc,write',
    ]);
  });

  it('stops at the limit', () => {
    expect(shrinkCandidates(header, ops, null, 3)).toHaveLength(3);
  });
});
