// SPDX-License-Identifier: GPL-2.0-only
// The model's side of the fuzz --against-kernel regression pairs (tests/fixtures/kernel-fuzz/): on v6.12.y the
// model gives, op by op, what the 6.12.118 kernel printed for each trace (recorded by the trace runner), so
// the comparison finds nothing; the kernel suite (tests/kernel/kernel-fuzz-regressions.test.ts) runs the same
// traces on the kernel again.
import { describe, expect, it } from 'vitest';
import { compareRun, kernelOutputOf, modelRun, parseKernelOutput } from '../../../src/groundtruth/kernel-run.js';
import { parseVariantSpec } from '../../../src/kernel/variant-spec.js';
import { REGRESSION_PAIRS, recordedKernelRun, regressionTrace } from '../../support/kernel-fuzz-regressions.js';

const V612 = parseVariantSpec('v6.12.y');

describe('fuzz --against-kernel regression pairs: the model on v6.12.y answers as the kernel did', () => {
  for (const pair of REGRESSION_PAIRS) {
    it(pair.name, () => {
      const { trace } = regressionTrace(pair.name);
      const run = recordedKernelRun(pair.name);
      expect(run.how).toBe(pair.how);
      const kernel = kernelOutputOf(run);
      expect(kernel.ops).toHaveLength(pair.answered);
      expect(kernel.ops.flatMap((o) => o.kmsg.map(() => o.op))).toEqual(pair.warns.map(([op]) => op));

      const model = modelRun(trace, V612);
      expect(model.warns.map((w) => [w.op, w.fn])).toEqual(pair.warns);
      for (const [op, errno] of pair.errnos) {
        expect(kernel.ops.find((o) => o.op === op)?.errno ?? 'ok').toBe(errno);
        expect(model.ops.find((o) => o.index === op)?.errno ?? 'ok').toBe(errno);
      }
      const hung = model.ops.filter((o) => o.errno === 'HUNG').map((o) => o.index);
      expect(hung).toEqual(pair.hung === null ? [] : [pair.hung]);

      const cmp = compareRun(trace, kernel, model);
      expect(cmp.disagreements).toEqual([]);
      expect(cmp.notExportable).toEqual([]);
      expect(cmp.compared).toBe(pair.hung ?? trace.entries.length);
    });
  }

  it('a hang is agreement only when the kernel run was killed at that op; a program that died is not', () => {
    const { trace } = regressionTrace('dead-opener-second-domain-hang');
    const run = recordedKernelRun('dead-opener-second-domain-hang');
    const model = modelRun(trace, V612);
    const died = compareRun(trace, parseKernelOutput(run.output), model);
    expect(died.disagreements).toEqual([
      {
        op: 9,
        line: 17,
        name: 'domain_attach',
        kind: 'missing',
        kernel: 'no result (the program died before this op)',
        model: 'HUNG',
      },
    ]);
    // The kernel answered the op the model hangs at: an errno disagreement.
    const answered = `${run.output}\n{"op":9,"line":17,"name":"domain_attach","errno":"ok"}\n{"end":"x"}`;
    const cmp = compareRun(trace, kernelOutputOf({ output: answered, how: 'exit' }), model);
    expect(cmp.disagreements.map((d) => [d.op, d.kind, d.kernel, d.model])).toEqual([[9, 'errno', 'ok', 'HUNG']]);
  });

  it('the dead opener takes the remote path: with the stale pair the attach WARNs, before it did not', () => {
    // The fix is the model's (replay/caller.ts taskOf: an exited process's task has no mm); on every variant,
    // the stale pair follows from the detach. The proposed kernel fix mm-mode-uncharge-dead-mm removes it.
    const { trace } = regressionTrace('dead-opener-stale-attach');
    const fixed = modelRun(trace, parseVariantSpec('v6.12.y+mm-mode-uncharge-dead-mm'));
    expect(fixed.warns).toEqual([]);
    expect(fixed.ops.find((o) => o.index === 9)?.errno).toBe('EFAULT');
    const upstream = modelRun(trace, parseVariantSpec('upstream'));
    expect(upstream.warns.map((w) => [w.op, w.fn])).toEqual([[9, 'pfn_reader_destroy']]);
  });
});
