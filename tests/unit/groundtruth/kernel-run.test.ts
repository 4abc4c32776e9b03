// SPDX-License-Identifier: GPL-2.0-only
// The comparison of `ioptrace kernel run`, on the real model and a kernel output in the exported program's
// format (the VM itself runs in the kernel suite, tests/kernel/).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  compareRun,
  modelRun,
  observedRecording,
  parseKernelOutput,
  warnSite,
} from '../../../src/groundtruth/kernel-run.js';
import { parseVariantSpec } from '../../../src/kernel/variant-spec.js';
import { parseTraceText } from '../../../src/replay/parse.js';

const PATH = 'tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl';
const TEXT = readFileSync(PATH, 'utf8');
const TRACE = parseTraceText(TEXT, PATH);
const WARN = 'WARNING: CPU: 0 PID: 61 at drivers/iommu/iommufd/pages.c:1119 pfn_reader_destroy+0x8d/0xa0';

/** The program's output for the finding, as the 6.12.118 kernel gives it (issue 14: EFAULT and the WARN). */
function kernelText(warnAt: number, lastErrno = 'EFAULT'): string {
  const names = TRACE.entries.map((e) => e.op.op);
  const lines = ['{"begin":"x","ops":10}'];
  names.forEach((name, i) => {
    const errno = i === 9 ? lastErrno : 'ok';
    const value = name === 'ioas_map' ? ',"value":"33554432"' : '';
    lines.push(`{"op":${i + 1},"line":${TRACE.entries[i]?.line},"name":"${name}","errno":"${errno}"${value}}`);
    if (i + 1 === warnAt) lines.push(`{"op":${i + 1},"kmsg":${JSON.stringify(WARN)}}`);
  });
  lines.push('{"end":"x"}');
  return lines.join('\n');
}

describe('kernel run: reading the program and comparing with the model', () => {
  it('reads the WARN site by function', () => {
    expect(warnSite(WARN)).toBe('pfn_reader_destroy');
    expect(
      warnSite('WARNING: CPU: 0 PID: 1 at drivers/iommu/iommufd/pages.c:1 __iopt_area_unfill_domain+0x1/0x2'),
    ).toBe('iopt_area_unfill_domain');
  });

  it('the finding: the WARN in pfn_reader_destroy at op 10 on both sides is agreement on v6.12.y', () => {
    const kernel = parseKernelOutput(kernelText(10));
    expect(kernel.ended).toBe(true);
    expect(kernel.ops[9]?.kmsg).toEqual([WARN]);
    const model = modelRun(TRACE, parseVariantSpec('v6.12.y'));
    expect(model.warns.map((w) => [w.op, w.fn])).toEqual([[10, 'pfn_reader_destroy']]);
    const c = compareRun(TRACE, kernel, model);
    expect(c).toEqual({ ops: 10, compared: 10, notExportable: [], disagreements: [] });
  });

  it('with the proposed fix the model is clean: the kernel WARN is a disagreement at op 10, with the errno', () => {
    const model = modelRun(TRACE, parseVariantSpec('v6.12.y+mm-mode-uncharge-dead-mm'));
    const c = compareRun(TRACE, parseKernelOutput(kernelText(10)), model);
    expect(c.disagreements).toEqual([
      { op: 10, line: 17, name: 'domain_attach', kind: 'warn', kernel: 'pfn_reader_destroy', model: 'none' },
    ]);
  });

  it('a WARN one op later, another errno, and a program that died are disagreements of their kind', () => {
    const model = modelRun(TRACE, parseVariantSpec('v6.12.y'));
    const late = compareRun(TRACE, parseKernelOutput(kernelText(0, 'ENOMEM')), model);
    expect(late.disagreements.map((d) => [d.op, d.kind, d.kernel, d.model])).toEqual([
      [10, 'errno', 'ENOMEM', 'EFAULT'],
      [10, 'warn', 'none', 'pfn_reader_destroy'],
    ]);
    const died = kernelText(10).split('\n').slice(0, 6).join('\n');
    const d = compareRun(TRACE, parseKernelOutput(died), model);
    expect(d.compared).toBe(5);
    expect(d.disagreements).toEqual([
      {
        op: 6,
        line: 13,
        name: 'domain_attach',
        kind: 'missing',
        kernel: 'no result (the program died before this op)',
        model: 'ok',
      },
    ]);
  });

  it('an observed recording that `ioptrace observed` reads: results and WARN sites after each op', () => {
    const rec = observedRecording(TEXT, TRACE, parseKernelOutput(kernelText(10)), '6.12.118 (model variant v6.12.y)');
    const parsed = parseTraceText(rec, 'rec.jsonl');
    expect(parsed.entries).toHaveLength(10);
    expect(parsed.entries[6]?.observed).toEqual([{ observed: 'result', errno: 'ok', iova: 0x2000000n }]);
    expect(parsed.entries[9]?.observed).toEqual([
      { observed: 'result', errno: 'EFAULT' },
      { observed: 'warn', site: 'pfn_reader_destroy' },
    ]);
  });
});
